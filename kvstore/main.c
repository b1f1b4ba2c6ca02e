/*
 * main.c - kvstored: read the configuration, open the store and the
 * server, run the loop until SIGINT or SIGTERM, then close in order.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the
 * mask is set before the store starts its threads) and taken by a thread
 * of their own with sigtimedwait(), so they are answered even while the
 * loop or the close is stuck, say on a disk that stopped answering:
 *   SIGHUP reopens log_file (for logrotate) and never ends the process;
 *   SIGINT or SIGTERM is passed to the loop through a pipe: the first
 *   writes DRAM back for at most shutdown_flush_ms, a second stops that at
 *   once; then the server closes (the socket goes, its lock is let go) and
 *   the store closes.
 * The process must be gone SHUTDOWN_GRACE_MS after the write-back's
 * deadline (SECOND_GRACE_MS after a second signal). If it is not, the
 * close waits for a thread stuck in a system call: the signal thread logs
 * it and _exit()s with status 1. Nothing durable is lost that way: the SSD
 * index is committed only after its data, as a kill -9 relies on.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kv_gpu.h"
#include "kvstore/config.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "kvstore/server.h"
#include "kvstore/store.h"
#include "lib/util.h"
#include "tiers/codec.h"

#define SHUTDOWN_GRACE_MS	2000	/* to close, after the write-back's deadline */
#define SECOND_GRACE_MS		1000	/* to close, after a second signal */
#define FD_RESERVE		64	/* the daemon's own descriptors, beside one per
					 * SSD data file: listener, spare, lock, log,
					 * memfd, epoll, pipes, eventfds, io_uring,
					 * LMDB, a GPU's device files */
#define SSD_FILE_BYTES		(1ull << 30)	/* tiers/ssd.c: data files of 1 GiB */

/*
 * Shutting down with an SSD tier: write the DRAM tier back first, so the
 * next start comes back warm, for at most shutdown_flush_ms. The loop
 * keeps running meanwhile (SSD completions arrive through it).
 */
struct shutdown {
	struct event_base *base;
	struct kv_store *store;
	struct event *timer;
	uint64_t deadline_ns;
	uint64_t written0;
	uint64_t bytes0;
	bool started;
};

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct shutdown *sd = arg;
	uint64_t written, bytes, failed;
	int ret = kv_store_writeback(sd->store, false);

	if (ret == -EINPROGRESS && kv_now_ns() < sd->deadline_ns)
		return;
	if (ret == -EINPROGRESS)
		kv_log(KV_WARN, KV_LOG_MAIN, "shutdown: DRAM write-back cut short after shutdown_flush_ms");
	kv_store_wb_counters(sd->store, &written, &bytes, &failed);
	kv_log(KV_INFO, KV_LOG_MAIN, "shutdown: %llu chunks (%llu bytes) written back to SSD",
	       (unsigned long long)(written - sd->written0),
	       (unsigned long long)(bytes - sd->bytes0));
	event_base_loopexit(sd->base, NULL);
}

static void stop(struct shutdown *sd, int sig)
{
	uint64_t failed;
	struct timeval tick = { 0, 10000 };

	kv_log(KV_INFO, KV_LOG_MAIN, "%s: shutting down", strsignal((int)sig));
	kv_store_wb_counters(sd->store, &sd->written0, &sd->bytes0, &failed);
	if (sd->started || kv_store_writeback(sd->store, true) == -KV_ENOTIER) {
		event_base_loopexit(sd->base, NULL);	/* a second signal: now */
		return;
	}
	sd->started = true;
	sd->deadline_ns = kv_now_ns() + sd->deadline_ns * 1000000ull;
	sd->timer = event_new(sd->base, -1, EV_PERSIST, on_drain, sd);
	event_add(sd->timer, &tick);
	on_drain(-1, 0, sd);
}

/* The signal thread wrote signal numbers into the pipe. */
static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	unsigned char sig;

	while (read(fd, &sig, 1) == 1)
		stop(arg, sig);
}

struct sigctl {
	sigset_t set;			/* SIGINT, SIGTERM, SIGHUP */
	int pipe[2];			/* to the loop: signal numbers */
	uint64_t flush_ms;
	const char *log_file;		/* "": none */
};

static void hangup(const struct sigctl *sc)
{
	int ret;

	if (!sc->log_file[0]) {
		kv_log(KV_INFO, KV_LOG_MAIN, "hangup: no log_file to reopen; logging to stderr as before");
		return;
	}
	ret = kv_log_open(sc->log_file);
	if (ret)
		kv_log(KV_WARN, KV_LOG_MAIN, "cannot reopen log file '%s': %s; logging where it did",
		       sc->log_file, kv_strerror(ret));
	else
		kv_log(KV_INFO, KV_LOG_MAIN, "hangup: reopened log file '%s'", sc->log_file);
}

static void *signal_thread(void *arg)
{
	const struct sigctl *sc = arg;
	uint64_t deadline = 0;		/* 0: not shutting down */
	uint64_t first = 0;

	for (;;) {
		uint64_t now = kv_now_ns(), grace;
		struct timespec ts;
		unsigned char b;
		int sig;

		if (deadline && now >= deadline)
			break;
		if (deadline) {
			ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
			ts.tv_nsec = (long)((deadline - now) % 1000000000u);
			sig = sigtimedwait(&sc->set, NULL, &ts);
		} else {
			sig = sigwaitinfo(&sc->set, NULL);
		}
		if (sig < 0)
			continue;	/* EINTR, or the deadline (checked above) */
		if (sig == SIGHUP) {
			hangup(sc);
			continue;
		}
		now = kv_now_ns();
		grace = deadline ? SECOND_GRACE_MS : sc->flush_ms + SHUTDOWN_GRACE_MS;
		if (!deadline)
			first = now;
		if (!deadline || now + grace * 1000000u < deadline)
			deadline = now + grace * 1000000u;
		b = (unsigned char)sig;
		if (write(sc->pipe[1], &b, 1) < 0) {
			/* the pipe is full of signals already */
		}
	}
	kv_log(KV_ERR, KV_LOG_MAIN, "cannot finish shutting down: still closing %llu ms after the signal (a disk that does not answer?); exiting without waiting",
	       (unsigned long long)((kv_now_ns() - first) / 1000000u));
	_exit(1);
}

/* Block the signals here (threads started later inherit the mask) and
 * start the thread that takes them. */
static int start_signals(struct sigctl *sc)
{
	pthread_t t;
	int ret;

	sigemptyset(&sc->set);
	sigaddset(&sc->set, SIGINT);
	sigaddset(&sc->set, SIGTERM);
	sigaddset(&sc->set, SIGHUP);
	ret = pthread_sigmask(SIG_BLOCK, &sc->set, NULL);
	if (ret)
		return -ret;
	if (pipe2(sc->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	ret = pthread_create(&t, NULL, signal_thread, sc);
	if (ret)
		return -ret;
	pthread_detach(t);
	return 0;
}

/*
 * Every connection is a descriptor: make room for max_conns of them beside
 * the daemon's own, raising the soft RLIMIT_NOFILE as far as the hard
 * limit allows, else lowering max_conns (one WARN line).
 */
static void fit_fd_limit(struct kv_config *cfg)
{
	uint64_t reserve = FD_RESERVE;
	struct rlimit rl;
	uint64_t need;

	if (cfg->ssd_dir[0])
		reserve += (cfg->ssd_bytes + SSD_FILE_BYTES - 1) / SSD_FILE_BYTES;
	need = cfg->max_conns + reserve;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur) {
		struct rlimit nl = { rl.rlim_max, rl.rlim_max };

		if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need)
			nl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
			kv_log(KV_INFO, KV_LOG_MAIN, "open-file limit raised from %llu to %llu",
			       (unsigned long long)rl.rlim_cur,
			       (unsigned long long)nl.rlim_cur);
			rl.rlim_cur = nl.rlim_cur;
		}
	}
	if (rl.rlim_cur >= need)
		return;
	kv_log(KV_WARN, KV_LOG_MAIN, "open-file limit %llu (hard %llu) is too low for max_conns %llu and %llu of the daemon's own: max_conns lowered to %llu",
	       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
	       (unsigned long long)cfg->max_conns, (unsigned long long)reserve,
	       (unsigned long long)(rl.rlim_cur > reserve + 1 ? rl.rlim_cur - reserve : 1));
	cfg->max_conns = rl.rlim_cur > reserve + 1 ? rl.rlim_cur - reserve : 1;
}

/*
 * The socket's directory (./var by default) is created when missing, 0755:
 * the socket's own mode (0600, or 0660 with socket_group) is the gate.
 */
static void make_socket_dir(const char *path)
{
	char dir[sizeof(((struct kv_config *)0)->socket)];
	char *slash;

	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		kv_log(KV_WARN, KV_LOG_MAIN, "cannot create '%s': %s", dir, strerror(errno));
}

/*
 * The cluster's password: the first line of a regular file of at most
 * 4 KiB (the setting names the file, so the password is never on a command
 * line, in ps, or in a log). A file others may read is used, with a
 * warning. 0, or -errno / -EINVAL with a message in err.
 */
static int read_password(const char *path, char *buf, size_t len, char *err,
			 size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	ssize_t n;
	int ret = 0;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "remote_password_file '%s': %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > 4096 ||
	    (size_t)st.st_size >= len) {
		snprintf(err, errlen, "remote_password_file '%s': not a regular file of at most 4 KiB",
			 path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 0077)
		kv_log(KV_WARN, KV_LOG_MAIN, "remote_password_file '%s' may be read by others (mode %o)",
		       path, (unsigned)(st.st_mode & 0777));
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "remote_password_file '%s': %s", path, strerror(errno));
		return -EIO;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	/* static: the signal thread uses them until _exit() or exit() */
	static struct sigctl sc;
	static struct kv_config cfg;
	struct kv_store_conf sc_store;
	struct kv_server_conf vc;
	struct kv_store *store = NULL;
	struct kv_server *srv = NULL;
	struct event_base *base;
	struct event *sigev;
	struct shutdown sd = { 0 };
	static char password[4097];
	char err[512];
	int lock_fd;
	int ret;

	kv_config_defaults(&cfg);
	ret = kv_config_args(&cfg, argc, argv, err, sizeof(err));
	if (ret == 1)
		return 0;
	if (ret) {
		fprintf(stderr, "kvstored: %s\n", err);
		return 2;
	}
	if (cfg.max_uncommitted == 0)
		cfg.max_uncommitted = cfg.dram_bytes / 2;
	if (cfg.alloc_granule & (cfg.alloc_granule - 1) ||
	    cfg.dram_bytes % cfg.alloc_granule) {
		fprintf(stderr, "kvstored: alloc_granule %llu must be a power of two dividing dram_bytes\n",
			(unsigned long long)cfg.alloc_granule);
		return 2;
	}
	if (kv_config_remote_check(&cfg, err, sizeof(err))) {
		fprintf(stderr, "kvstored: %s\n", err);
		return 2;
	}
	if (cfg.remote_password_file[0] &&
	    read_password(cfg.remote_password_file, password, sizeof(password), err,
			  sizeof(err))) {
		fprintf(stderr, "kvstored: %s\n", err);
		return 2;
	}
	if (cfg.log_file[0]) {
		ret = kv_log_open(cfg.log_file);
		if (ret) {
			fprintf(stderr, "kvstored: cannot open log_file '%s': %s\n",
				cfg.log_file, kv_strerror(ret));
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	sc.flush_ms = cfg.shutdown_flush_ms;
	sc.log_file = cfg.log_file;
	ret = start_signals(&sc);
	if (ret) {
		fprintf(stderr, "kvstored: cannot set up signal handling: %s\n", kv_strerror(ret));
		return 1;
	}
	fit_fd_limit(&cfg);

	/* The socket first: a second daemon stops here, before it touches
	 * anything the first one uses. */
	make_socket_dir(cfg.socket);
	lock_fd = kv_server_lock(cfg.socket);
	if (lock_fd < 0) {
		fprintf(stderr, "kvstored: cannot serve on '%s': %s\n", cfg.socket,
			kv_strerror(lock_fd));
		return 1;
	}

	sc_store = (struct kv_store_conf){
		.dram_bytes = cfg.dram_bytes,
		.align = cfg.alloc_granule,
		.dram_policy = cfg.policy_dram,
		.max_pins = (uint32_t)cfg.max_pins,
		.max_uncommitted = cfg.max_uncommitted,
		.cost_mode = strcmp(cfg.cost_mode, "reload") ? KV_COST_COMPUTE :
							       KV_COST_RELOAD,
		.cost_model = { cfg.cost_hidden, cfg.cost_a, cfg.cost_b },
		.reload_bw = (double)cfg.reload_bandwidth,
		.reload_latency = (double)cfg.reload_latency_us / 1e6,
		.recent_fraction = cfg.h2o_recent_fraction,
		.half_life = (double)cfg.h2o_half_life,
		.ssd_dir = cfg.ssd_dir[0] ? cfg.ssd_dir : NULL,
		.ssd_bytes = cfg.ssd_bytes,
		.ssd_policy = cfg.policy_ssd,
		.ssd_queue_depth = (unsigned)cfg.ssd_queue_depth,
		.ssd_writes = (unsigned)cfg.ssd_writes,
		.ssd_codec = (uint8_t)kv_codec_parse(cfg.ssd_codec),
		.ssd_level = (int)cfg.ssd_level,
		.ssd_sync = cfg.ssd_sync != 0,
		.ssd_io_sync = !strcmp(cfg.ssd_io, "sync"),
		.hbm_bytes = cfg.hbm_bytes,
		.gpu = (int)cfg.gpu,
		.hbm_policy = cfg.policy_hbm,
		.hbm_promote = !strcmp(cfg.hbm_promote, "off") ? KV_PROMOTE_OFF :
			       !strcmp(cfg.hbm_promote, "always") ? KV_PROMOTE_ALWAYS :
								    KV_PROMOTE_SECOND,
		.tenants = cfg.tenants,
		.n_tenants = cfg.n_tenants,
		.allow_uids = cfg.allow_uids,
		.n_allow = cfg.n_allow_uids,
		.self_uid = getuid(),
		.max_namespaces = (uint32_t)cfg.max_namespaces,
		.max_chunks = cfg.max_chunks,
		.remote_seeds = kv_config_remote_seeds(&cfg),
		.remote_user = cfg.remote_user[0] ? cfg.remote_user : NULL,
		.remote_password = cfg.remote_password_file[0] ? password : NULL,
		.remote_tls = kv_config_remote_tls(&cfg),
		.remote_tls_ca_file = cfg.remote_tls_ca_file[0] ? cfg.remote_tls_ca_file : NULL,
		.remote_tls_cert_file = cfg.remote_tls_cert_file[0] ? cfg.remote_tls_cert_file :
								      NULL,
		.remote_tls_key_file = cfg.remote_tls_key_file[0] ? cfg.remote_tls_key_file : NULL,
		.remote_timeout_ms = (unsigned)cfg.remote_timeout_ms,
		.remote_ns = cfg.remote_ns,
		.remote_write = !strcmp(cfg.remote_write, "through"),
	};
	ret = kv_store_open(&store, &sc_store);
	explicit_bzero(password, sizeof(password));
	if (ret) {
		fprintf(stderr, "kvstored: cannot open the store: %s\n", kv_strerror(ret));
		return 1;
	}
	base = event_base_new();
	if (!base) {
		fprintf(stderr, "kvstored: cannot create the event loop\n");
		kv_store_close(store);
		return 1;
	}
	vc = (struct kv_server_conf){
		.socket_path = cfg.socket,
		.socket_group = cfg.socket_group,
		.max_conns = (uint32_t)cfg.max_conns,
		.max_msg = (uint32_t)cfg.max_msg,
		.max_batch = (uint32_t)cfg.max_batch,
		.max_namespaces = (uint32_t)cfg.max_namespaces,
		.max_pins = (uint32_t)cfg.max_pins,
		.max_uncommitted = cfg.max_uncommitted,
		.codec_ns = cfg.ssd_codec_ns[0] ? cfg.ssd_codec_ns : NULL,
		.max_client_memory = cfg.max_client_memory,
		.hello_timeout_ms = (uint32_t)cfg.hello_timeout_ms,
		.frame_timeout_ms = (uint32_t)cfg.frame_timeout_ms,
		.alloc_lease_ms = (uint32_t)cfg.alloc_lease_ms,
	};
	ret = kv_server_open(&srv, &vc, store, base);
	if (ret) {
		fprintf(stderr, "kvstored: cannot serve on '%s': %s\n", cfg.socket,
			kv_strerror(ret));
		event_base_free(base);
		kv_store_close(store);
		return 1;
	}
	sd.base = base;
	sd.store = store;
	sd.deadline_ns = cfg.shutdown_flush_ms;	/* made absolute at the signal */
	sigev = event_new(base, sc.pipe[0], EV_READ | EV_PERSIST, on_signal, &sd);
	event_add(sigev, NULL);
	kv_log(KV_INFO, KV_LOG_MAIN, "kvstored ready (pid %d)", (int)getpid());

	event_base_dispatch(base);

	kv_server_close(srv);
	close(lock_fd);
	if (sd.timer)
		event_free(sd.timer);
	event_free(sigev);
	event_base_free(base);
	kv_store_close(store);	/* a hung disk: the signal thread ends it */
	kv_log(KV_INFO, KV_LOG_MAIN, "stopped");
	return 0;
}
