/*
 * issue_11_shutdown.c - issue 11: "a frozen SSD filesystem makes SIGTERM,
 * and a second signal, unable to end the daemon". Shutdown must honour
 * shutdown_flush_ms even when the disk hangs, and a second signal must
 * always end the process promptly.
 *
 * The disk: a small ext4 image, loop-mounted in a temporary directory and
 * frozen with FIFREEZE while write-backs are in flight. Needs root and
 * loop devices; exits 77 with the reason otherwise. Whatever happens, the
 * filesystem is thawed and unmounted (teardown, atexit, and a handler for
 * the signals that end a test run).
 *
 * Run (as root): KVSTORED=$PWD/build/kvstored build/tests/regress/issue_11_shutdown
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/tmpdir.h"

#define FLUSH_MS	1000		/* --shutdown-flush-ms of the first case */
#define CHUNK		(1u << 20)

static char dir[256], img[320], mnt[320], ssd[340];
static volatile sig_atomic_t mounted, frozen;

/* Only system calls: also run from a signal handler. */
static void thaw_and_unmount(void)
{
	if (frozen) {
		int fd = open(mnt, O_RDONLY | O_DIRECTORY);

		if (fd >= 0) {
			ioctl(fd, FITHAW, 0);
			close(fd);
		}
		frozen = 0;
	}
	if (mounted) {
		if (umount2(mnt, 0) < 0)
			umount2(mnt, MNT_DETACH);
		mounted = 0;
	}
}

static void on_fatal(int sig)
{
	thaw_and_unmount();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run(const char *cmd)
{
	int st = system(cmd);

	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A fresh 128 MiB ext4 on a loop device at mnt; false (and why) if not. */
static bool make_disk(char *why, size_t len)
{
	char cmd[1024];
	int fd;

	if (kvt_tmpdir(dir, sizeof(dir),
		       getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		       "kvt11.")) {
		snprintf(why, len, "mkdtemp: %s", strerror(errno));
		return false;
	}
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(ssd, sizeof(ssd), "%s/ssd", mnt);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 128u << 20) < 0) {
		snprintf(why, len, "cannot make %s: %s", img, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	mkdir(mnt, 0700);
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F '%s' >/dev/null 2>&1", img);
	if (run(cmd) != 0) {
		snprintf(why, len, "mkfs.ext4 failed or is missing");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "mount -o loop '%s' '%s' 2>/dev/null", img, mnt);
	if (run(cmd) != 0) {
		snprintf(why, len, "cannot loop-mount an image (no loop devices?)");
		return false;
	}
	mounted = 1;
	return true;
}

static void remove_disk(void)
{
	thaw_and_unmount();
	if (dir[0]) {
		if (kvt_rmtree(dir))
			fprintf(stderr, "cannot remove %s\n", dir);
		dir[0] = '\0';
	}
}

static void freeze(void)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	frozen = 1;
	if (ioctl(fd, FIFREEZE, 0) < 0) {
		frozen = 0;
		fail_msg("FIFREEZE: %s", strerror(errno));
	}
	close(fd);
}

static struct kvt_daemon d;

static int setup(void **state)
{
	char why[512];

	if (!make_disk(why, sizeof(why))) {
		fprintf(stderr, "%s\n", why);
		remove_disk();
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	thaw_and_unmount();	/* first: the daemon may wait for the disk */
	if (d.pid > 0)
		kvt_kill(&d);
	kvt_cleanup(&d);
	remove_disk();
	return 0;
}

/* Start a daemon on the disk, put chunks and make them durable, freeze the
 * disk, then put more so write-backs are in flight against it. */
static void daemon_on_frozen_disk(const char *flush_ms)
{
	const char *args[] = { "--ssd-dir", ssd, "--ssd-bytes", "64M", "--dram-bytes", "64M",
			       "--shutdown-flush-ms", flush_ms, NULL };
	static char buf[CHUNK];
	struct kvc *c;
	uint32_t ns;

	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "issue11/shutdown", &ns), 0);
	for (uint64_t i = 0; i < 16; i++) {
		struct kvc_key k = { i, 11 };

		memset(buf, (int)i, sizeof(buf));
		assert_int_equal(kvc_put(c, ns, &k, NULL, 1, 0, buf, sizeof(buf)), 0);
	}
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, NULL), 0);
	freeze();
	for (uint64_t i = 16; i < 32; i++) {
		struct kvc_key k = { i, 11 };

		memset(buf, (int)i, sizeof(buf));
		assert_int_equal(kvc_put(c, ns, &k, NULL, 1, 0, buf, sizeof(buf)), 0);
	}
	kvc_close(c);
	usleep(200000);
}

/*
 * The daemon is gone: its exit reported, or, since a thread stuck in the
 * frozen filesystem cannot leave before the thaw (not even for SIGKILL),
 * its socket removed and its log saying it exits without waiting.
 */
static bool gone(void)
{
	char path[64];
	struct stat st;

	if (kvt_wait_exit(&d, 0) >= 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)d.pid, (int)d.pid);
	return stat(d.sock, &st) < 0 && (stat(path, &st) < 0 ||
					 kvt_log_has(&d, "exiting without waiting"));
}

static double wait_gone(double limit)
{
	double t0 = kvt_now_s();

	while (!gone() && kvt_now_s() - t0 < limit)
		usleep(20000);
	return kvt_now_s() - t0;
}

/* The socket is free again: another daemon starts on it at once. */
static void socket_free(void)
{
	const char *args[] = { "--socket", d.sock, NULL };
	struct kvt_opts nowait = { .no_wait = true };
	struct kvt_daemon next;
	struct kvc *c = NULL;

	assert_int_equal(kvt_start_opts(&next, args, &nowait), 0);
	for (int i = 0; i < 500 && kvc_connect(d.sock, &c); i++) {
		c = NULL;
		usleep(10000);
	}
	if (!c)
		kvt_dump_log(&next);
	assert_non_null(c);
	assert_int_equal(kvc_ping(c, NULL), 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&next), 0);
}

static void test_sigterm_frozen_disk(void **state)
{
	double t;

	daemon_on_frozen_disk("1000");
	kill(d.pid, SIGTERM);
	t = wait_gone(15);
	printf("figure: SIGTERM with the SSD filesystem frozen (shutdown_flush_ms %d): gone after %.2f s (%s)\n",
	       FLUSH_MS, t, d.pid ? "a thread waits in the filesystem until the thaw" : "exited");
	if (t >= FLUSH_MS / 1000.0 + 3.5) {
		kvt_dump_log(&d);
		fail_msg("still running %.1f s after SIGTERM", t);
	}
	assert_true(kvt_log_has(&d, "write-back cut short"));
	assert_true(kvt_log_has(&d, "exiting without waiting"));
	socket_free();
	thaw_and_unmount();
	assert_true(kvt_wait_exit(&d, 10000) >= 0);
}

static void test_second_signal_frozen_disk(void **state)
{
	double t;

	daemon_on_frozen_disk("60000");
	kill(d.pid, SIGTERM);
	usleep(300000);
	assert_true(kvt_alive(&d));	/* writing back, for up to a minute */
	kill(d.pid, SIGINT);
	t = wait_gone(15);
	printf("figure: a second signal with the SSD filesystem frozen: gone after %.2f s (%s)\n",
	       t, d.pid ? "a thread waits in the filesystem until the thaw" : "exited");
	if (t >= 2.5) {
		kvt_dump_log(&d);
		fail_msg("still running %.1f s after a second signal", t);
	}
	socket_free();
	thaw_and_unmount();
	assert_true(kvt_wait_exit(&d, 10000) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sigterm_frozen_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_signal_frozen_disk, setup, teardown),
	};
	char why[512];

	if (geteuid() != 0) {
		printf("needs root: a loop-mounted filesystem and FIFREEZE\n");
		return 77;
	}
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);
	signal(SIGHUP, on_fatal);
	signal(SIGABRT, on_fatal);
	atexit(thaw_and_unmount);
	/* Can this machine do it at all? */
	if (!make_disk(why, sizeof(why))) {
		remove_disk();
		printf("%s\n", why);
		return 77;
	}
	{
		int fd = open(mnt, O_RDONLY | O_DIRECTORY);

		frozen = 1;
		if (fd < 0 || ioctl(fd, FIFREEZE, 0) < 0) {
			frozen = 0;
			printf("cannot freeze a filesystem here (FIFREEZE: %s)\n", strerror(errno));
			if (fd >= 0)
				close(fd);
			remove_disk();
			return 77;
		}
		ioctl(fd, FITHAW, 0);
		frozen = 0;
		close(fd);
	}
	remove_disk();
	if (getenv("KVT_ONLY"))		/* one case: KVT_ONLY=test_name */
		cmocka_set_test_filter(getenv("KVT_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
