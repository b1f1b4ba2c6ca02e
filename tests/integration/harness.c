/*
 * harness.c - a real kvstored per test, on a private socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/tmpdir.h"

const char *kvt_daemon_path(void)
{
	const char *p = getenv("KVSTORED");

	return p && *p ? p : "build/kvstored";
}

void kvt_dump_log(const struct kvt_daemon *d)
{
	char buf[4096];
	FILE *f = fopen(d->log, "r");
	size_t n;

	if (!f)
		return;
	fprintf(stderr, "---- kvstored log (%s) ----\n", d->log);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of log ----\n");
	fclose(f);
}

bool kvt_log_has(const struct kvt_daemon *d, const char *needle)
{
	return kvt_file_has(d->log, needle);
}

bool kvt_file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static int spawn(struct kvt_daemon *d, const char *const *args,
		 const struct kvt_opts *o)
{
	const char *tmp = getenv("TMPDIR");
	const char *argv[64];
	bool has_dram = false, has_hbm = false;
	int n = 0;

	memset(d, 0, sizeof(*d));
	if (kvt_tmpdir(d->dir, sizeof(d->dir), tmp && *tmp ? tmp : "/tmp", "kvt.")) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/kv.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/kvstored.log", d->dir);
	argv[n++] = kvt_daemon_path();
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	for (int i = 0; args && args[i] && n < 60; i++) {
		if (!strcmp(args[i], "--dram-bytes"))
			has_dram = true;
		if (!strcmp(args[i], "--hbm-bytes"))
			has_hbm = true;
		argv[n++] = args[i];
	}
	if (!has_dram) {
		argv[n++] = "--dram-bytes";
		argv[n++] = "64M";
	}
	/* No HBM tier unless a test asks: on a GPU machine the tests of the
	 * other tiers see the same daemon as on one without. */
	if (!has_hbm) {
		argv[n++] = "--hbm-bytes";
		argv[n++] = "0";
	}
	argv[n] = NULL;

	d->pid = fork();
	if (d->pid < 0) {
		perror("fork");
		return -1;
	}
	if (d->pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* A test or benchmark killed mid-run takes its daemon along. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (o && o->nofile) {
			struct rlimit rl = { o->nofile,
					     o->nofile_hard ? o->nofile_hard : o->nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
				fprintf(stderr, "cannot set RLIMIT_NOFILE: %s\n", strerror(errno));
				_exit(127);
			}
		}
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return 0;
}

static bool accepts(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool pings(const char *path)
{
	struct kvc *c;
	int ret;

	if (kvc_connect(path, &c))
		return false;
	ret = kvc_ping(c, NULL);
	kvc_close(c);
	return ret == 0;
}

/* Start the daemon and wait up to 10 s for ready(socket). */
static int start_until(struct kvt_daemon *d, const char *const *args,
		       const struct kvt_opts *o, bool (*ready)(const char *))
{
	if (spawn(d, args, o))
		return -1;
	if (o && o->no_wait)
		return 0;
	for (int i = 0; i < 1000 && kvt_alive(d); i++) {
		if (ready(d->sock))
			return 0;
		kvt_sleep_ms(10);
	}
	fprintf(stderr, "kvstored did not come up on %s\n", d->sock);
	kvt_dump_log(d);
	if (kvt_alive(d))
		kvt_kill(d);
	return -1;
}

int kvt_spawn(struct kvt_daemon *d, const char *const *args)
{
	return start_until(d, args, NULL, accepts);
}

int kvt_start(struct kvt_daemon *d, const char *const *args)
{
	return start_until(d, args, NULL, pings);
}

int kvt_start_opts(struct kvt_daemon *d, const char *const *args,
		   const struct kvt_opts *o)
{
	return start_until(d, args, o, pings);
}

int kvt_wait_exit(struct kvt_daemon *d, int ms)
{
	int st;

	for (int i = 0; d->pid > 0; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (i * 5 >= ms)
			break;
		kvt_sleep_ms(5);
	}
	return -1;
}

bool kvt_alive(struct kvt_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = 0;
		return false;
	}
	return true;
}

void kvt_kill(struct kvt_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
}

void kvt_cleanup(struct kvt_daemon *d)
{
	if (!d->dir[0])
		return;
	unlink(d->sock);
	unlink(d->log);
	if (kvt_rmtree(d->dir))
		fprintf(stderr, "cannot remove %s\n", d->dir);
	d->dir[0] = '\0';
}

int kvt_stop(struct kvt_daemon *d)
{
	int st = 0, ret = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		for (int i = 0; i < 1000; i++) {
			if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
				ret = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
				d->pid = 0;
				break;
			}
			kvt_sleep_ms(10);
		}
		if (d->pid > 0) {
			fprintf(stderr, "kvstored did not stop in 10 s\n");
			kvt_kill(d);
		}
	}
	if (ret != 0)
		kvt_dump_log(d);
	kvt_cleanup(d);
	return ret;
}

int kvt_as_user(unsigned id, int (*fn)(const char *), const char *arg)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return 98;
	if (pid == 0) {
		if (setgid((gid_t)id) || setuid((uid_t)id))
			_exit(99);
		_exit(fn(arg));
	}
	if (waitpid(pid, &st, 0) != pid)
		return 98;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}
