/*
 * issue_11.h - what the regression tests of issue 11 (issue_11_ssd.c,
 * issue_11_ns.c) share: chunk patterns, a small loop-mounted filesystem to
 * fill up, and a daemon run that is expected to exit.
 *
 * Include it after cmocka.h. Everything is static inline: each test
 * includes what it uses. A loop
 * filesystem needs root and a loop device; loopfs_make() says why not when
 * it cannot, and the test skips. Whatever a test made is undone by
 * loopfs_drop(), also when it failed (from the teardown).
 */
#ifndef ISSUE_11_H
#define ISSUE_11_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"

#define MIB (1u << 20)

/* The bytes of chunk i of namespace seed s: a pattern no other chunk has. */
static inline void i11_fill(void *buf, size_t len, uint64_t s, uint64_t i)
{
	uint64_t *p = buf;

	for (size_t w = 0; w < len / 8; w++)
		p[w] = kvt_mix((s * 0x9e37 + i) * 0x100000001b3ull + w);
}

static inline struct kvc_key i11_key(uint64_t i)
{
	return (struct kvc_key){ kvt_mix(i), i };
}

static inline double i11_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Put chunks [from, to) of pattern s, len bytes each; returns how many were
 * stored. */
static inline unsigned i11_put(struct kvc *c, uint32_t ns, uint64_t s,
			       uint64_t from, uint64_t to, size_t len)
{
	void *buf = malloc(len);
	unsigned n = 0;

	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = i11_key(i);

		i11_fill(buf, len, s, i);
		n += kvc_put(c, ns, &k, NULL, 16, 0, buf, len) == 0;
	}
	free(buf);
	return n;
}

/*
 * Read chunks [from, to) back: the number that hold exactly pattern s.
 * *wrong (may be NULL) counts those that came back with other bytes: a
 * cache may forget, it must never lie.
 */
static inline unsigned i11_check(struct kvc *c, uint32_t ns, uint64_t s,
				 uint64_t from, uint64_t to, size_t len,
				 unsigned *wrong)
{
	void *want = malloc(len), *got = malloc(len);
	unsigned exact = 0, bad = 0;

	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = i11_key(i);
		size_t n = 0;

		memset(got, 0x5a, len);
		if (kvc_get(c, ns, &k, got, len, &n))
			continue;
		i11_fill(want, len, s, i);
		if (n == len && !memcmp(got, want, len))
			exact++;
		else
			bad++;
	}
	free(want);
	free(got);
	if (wrong)
		*wrong = bad;
	return exact;
}

/*
 * Run kvstored with args (NULL-terminated) and its log in log, and wait up
 * to ms for it to exit. Returns its exit status, 128 + the signal that
 * ended it, or -1 when it was still running (then it is killed).
 */
static inline int i11_run_daemon(const char *const *args, const char *log, int ms,
				 double *secs)
{
	const char *argv[40];
	double t0 = i11_now();
	pid_t pid;
	int n = 0, st;

	argv[n++] = kvt_daemon_path();
	for (int i = 0; args[i] && n < 38; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < ms; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			if (secs)
				*secs = i11_now() - t0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static inline bool i11_file_has(const char *path, const char *needle)
{
	struct kvt_daemon d = { .pid = 0 };

	if (strlen(path) >= sizeof(d.log))
		return false;
	memcpy(d.log, path, strlen(path) + 1);
	return kvt_log_has(&d, needle);
}

/* Register name on c and put n chunks of pattern pat, len bytes each, in
 * it (cmocka asserts that all went in); returns its id. */
static inline uint32_t i11_ns_with(struct kvc *c, const char *name, uint64_t pat,
				   unsigned n, size_t len)
{
	uint32_t ns;

	assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	assert_int_equal(i11_put(c, ns, pat, 0, n, len), n);
	return ns;
}

/*
 * Run kvctl (the binary $KVCTL, else build/kvctl) with args on the daemon
 * d; its stdout and stderr in out (len bytes, NUL-terminated). Returns its
 * exit status.
 */
static inline int i11_kvctl(const struct kvt_daemon *d, const char *args, char *out,
			    size_t len)
{
	const char *bin = getenv("KVCTL");
	char cmd[1024], path[400];
	FILE *f;
	size_t n;
	int st;

	snprintf(path, sizeof(path), "%s/kvctl.out", d->dir);
	snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' %s >'%s' 2>&1",
		 bin && *bin ? bin : "build/kvctl", d->sock, args, path);
	st = system(cmd);
	f = fopen(path, "r");
	n = f ? fread(out, 1, len - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void i11_dump(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "sed 's/^/    log: /' '%s' >&2", path);
	if (system(cmd)) {
		/* nothing more to show */
	}
}

/* ---- a small filesystem to fill up ---------------------------------------- */

struct i11_loopfs {
	char dir[256];			/* holds the image and the mount point */
	char img[300];
	char mnt[300];
	bool mounted;
};

static inline int i11_sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Make an ext4 filesystem of mib MiB (no blocks reserved for root) in an
 * image under /var/tmp and mount it at fs->mnt. Returns 0, or -1 with the
 * reason in why (not root, no mkfs.ext4, no loop device).
 */
static inline int i11_loopfs_make(struct i11_loopfs *fs, unsigned mib, char *why,
				  size_t len)
{
	char cmd[1024];

	memset(fs, 0, sizeof(*fs));
	if (geteuid() != 0) {
		snprintf(why, len, "a loop-mounted filesystem needs root");
		return -1;
	}
	if (kvt_tmpdir(fs->dir, sizeof(fs->dir), "/var/tmp", "kvt-i11-")) {
		snprintf(why, len, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(fs->img, sizeof(fs->img), "%s/fs.img", fs->dir);
	snprintf(fs->mnt, sizeof(fs->mnt), "%s/mnt", fs->dir);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s %uM '%s' && mkfs.ext4 -q -F -m 0 '%s' >/dev/null 2>&1 && mkdir '%s'",
		 mib, fs->img, fs->img, fs->mnt);
	if (i11_sh(cmd)) {
		snprintf(why, len, "cannot make an ext4 image (mkfs.ext4 missing?)");
		goto out_rm;
	}
	snprintf(cmd, sizeof(cmd), "mount -o loop '%s' '%s' 2>/dev/null", fs->img, fs->mnt);
	if (i11_sh(cmd)) {
		snprintf(why, len, "cannot mount a loop device here");
		goto out_rm;
	}
	fs->mounted = true;
	return 0;

out_rm:
	kvt_rmtree(fs->dir);
	fs->dir[0] = '\0';
	return -1;
}

/* Unmount and remove everything; accepts a filesystem never made. */
static inline void i11_loopfs_drop(struct i11_loopfs *fs)
{
	if (fs->mounted) {
		for (int i = 0; i < 50; i++) {	/* a daemon may still be exiting */
			if (umount(fs->mnt) == 0 || errno == EINVAL)
				break;
			usleep(100000);
		}
		if (umount2(fs->mnt, MNT_DETACH) && errno != EINVAL)
			fprintf(stderr, "cannot unmount %s: %s\n", fs->mnt, strerror(errno));
		fs->mounted = false;
	}
	if (fs->dir[0]) {
		kvt_rmtree(fs->dir);
		fs->dir[0] = '\0';
	}
}

/* Bytes free on the filesystem of path (for root). */
static inline uint64_t i11_free(const char *path)
{
	char cmd[600];
	FILE *p;
	unsigned long long kb = 0;

	snprintf(cmd, sizeof(cmd), "df -k --output=avail '%s' | tail -n 1", path);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%llu", &kb) != 1)
			kb = 0;
		pclose(p);
	}
	return (uint64_t)kb << 10;
}

/*
 * Fill the filesystem of dir to the last block with a file dir/filler
 * (synced, so that delayed allocation cannot hide room). Returns its size.
 */
static inline uint64_t i11_fill_fs(const char *dir)
{
	static char block[65536];
	char path[400];
	uint64_t total = 0;
	size_t step = sizeof(block);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return 0;
	memset(block, 0xf1, sizeof(block));
	while (step >= 512) {
		n = write(fd, block, step);
		if (n > 0) {
			total += (uint64_t)n;
			continue;
		}
		if (fsync(fd) == 0 && step > 512)
			step /= 2;	/* smaller pieces into the last gaps */
		else
			break;
	}
	fsync(fd);
	close(fd);
	return total;
}

static inline void i11_unfill_fs(const char *dir)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/filler", dir);
	unlink(path);
	sync();
}

#endif
