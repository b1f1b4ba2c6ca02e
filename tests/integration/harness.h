/*
 * harness.h - start and stop a real kvstored for integration tests and
 * benchmarks.
 *
 * The daemon binary is $KVSTORED (tests/run.sh sets it to $O/kvstored),
 * else build/kvstored. Each daemon gets a fresh directory under $TMPDIR
 * (or /tmp) holding its socket and its log (stderr), removed by
 * kvt_stop()/kvt_cleanup().
 */
#ifndef KVT_HARNESS_H
#define KVT_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

struct kvt_daemon {
	pid_t pid;
	char dir[256];
	char sock[320];
	char log[320];
};

/*
 * Start a daemon with --socket in a new directory, a small DRAM tier and
 * no HBM tier (--dram-bytes 64M --hbm-bytes 0 unless args give them) and
 * the extra flags in args (a NULL-terminated list, may be NULL). Waits up
 * to 10 s for it to answer a ping. Returns 0, or -1 with the daemon's log
 * copied to stderr.
 */
int kvt_start(struct kvt_daemon *d, const char *const *args);

/* Like kvt_start(), but wait only until the socket accepts connections
 * (for a daemon that will refuse this process). */
int kvt_spawn(struct kvt_daemon *d, const char *const *args);

/* What kvt_start_opts() does beyond kvt_start(). */
struct kvt_opts {
	unsigned long nofile;	/* RLIMIT_NOFILE (soft and hard) for the
				 * daemon; 0: this process's */
	unsigned long nofile_hard;	/* with nofile: a hard limit above it */
	bool no_wait;		/* return once it runs, without waiting for
				 * its socket (a daemon meant to refuse) */
};

/* kvt_start() with options (o may be NULL). */
int kvt_start_opts(struct kvt_daemon *d, const char *const *args,
		   const struct kvt_opts *o);

/* Wait up to ms for the daemon to exit by itself. Returns its exit status,
 * 128 + the signal that ended it, or -1 if it still runs. */
int kvt_wait_exit(struct kvt_daemon *d, int ms);

/* SIGTERM, wait for exit, remove the directory. Returns the daemon's exit
 * status (0 on a clean shutdown) or -1 if it had died by a signal. */
int kvt_stop(struct kvt_daemon *d);

/* SIGKILL and reap, keeping the directory (for a restart on it). */
void kvt_kill(struct kvt_daemon *d);

/* Is the daemon still running? */
bool kvt_alive(struct kvt_daemon *d);

/* Remove the directory of a daemon that is no longer running. */
void kvt_cleanup(struct kvt_daemon *d);

/* Copy the daemon's log to stderr (for a failing test). */
void kvt_dump_log(const struct kvt_daemon *d);

/* Does the daemon's log contain needle? */
bool kvt_log_has(const struct kvt_daemon *d, const char *needle);

/*
 * Run fn(arg) in a child process as uid and gid id (the caller must be
 * root); return its exit status, 99 when the switch failed, 98 when it died.
 */
int kvt_as_user(unsigned id, int (*fn)(const char *), const char *arg);
/* Does the file at path (a log_file, say) contain needle? */
bool kvt_file_has(const char *path, const char *needle);

/* Path of the kvstored binary under test. */
const char *kvt_daemon_path(void);

#endif
