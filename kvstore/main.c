/*
 * main.c - kvstored: read the configuration, open the store and the
 * server, run the loop until SIGINT or SIGTERM, then close in order.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kv_gpu.h"
#include "kvstore/config.h"
#include "kvstore/errors.h"
#include "kvstore/log.h"
#include "kvstore/server.h"
#include "kvstore/store.h"
#include "kvstore/util.h"
#include "tiers/codec.h"

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

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct shutdown *sd = arg;
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

int main(int argc, char **argv)
{
	struct kv_config cfg;
	struct kv_store_conf sc;
	struct kv_server_conf vc;
	struct kv_store *store = NULL;
	struct kv_server *srv = NULL;
	struct event_base *base;
	struct event *sigint, *sigterm;
	struct shutdown sd = { 0 };
	char err[512];
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
	signal(SIGPIPE, SIG_IGN);


	sc = (struct kv_store_conf){
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
	};
	ret = kv_store_open(&store, &sc);
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
	make_socket_dir(cfg.socket);
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
	sigint = evsignal_new(base, SIGINT, on_signal, &sd);
	sigterm = evsignal_new(base, SIGTERM, on_signal, &sd);
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);
	kv_log(KV_INFO, KV_LOG_MAIN, "kvstored ready (pid %d)", (int)getpid());

	event_base_dispatch(base);

	kv_server_close(srv);
	if (sd.timer)
		event_free(sd.timer);
	event_free(sigint);
	event_free(sigterm);
	event_base_free(base);
	kv_store_close(store);
	kv_log(KV_INFO, KV_LOG_MAIN, "stopped");
	return 0;
}
