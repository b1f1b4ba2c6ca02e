/*
 * remote.h - the remote tier: chunks as values in a Redis Cluster that
 * every node's daemon shares (docs/cluster.md), moved by one I/O thread of
 * the tier's own.
 *
 * The store decides on the loop thread what goes to the cluster and what
 * comes back; this module moves the bytes. It submits jobs and reaps them
 * when kv_remote_event_fd() is readable, like the SSD tier's:
 *
 *   STORE  (kv_move) the host extent -> the cluster: encoded with the codec
 *          m->rec.codec asks for (raw when that does not shrink it), split
 *          into parts (tiers/remote_fmt.h), each one SET as its header and
 *          payload. m->rec comes back with the stored size, the codec used
 *          and the whole stored chunk's checksum.
 *   LOAD   (kv_move) the cluster -> the host extent, for a chunk whose
 *          part 0 header a PROBE brought (job->want): every part read, its
 *          header checked against want, its payload against its checksum,
 *          the whole against its own; then copied or decoded into the host
 *          extent (m->bytes, which must be want.bytes). Any mismatch fails
 *          the job with -KV_ECORRUPT; the host extent may hold garbage
 *          then, as after a failed SSD read, and must not be shown.
 *   PROBE  (the tier's own) a batch of (salt, key): for each, part 0's
 *          header (read with GETRANGE, never the payload), checked: the
 *          chunk is there (and its header says what LOAD needs), or not.
 *
 * A chunk is the daemon's only while it holds it: the cluster's servers
 * evict by their own policy, so a part gone, a header of another write, a
 * deadline passed or a node down are all misses, counted, never errors
 * that stop the daemon, and never bytes handed on.
 *
 * The cluster: kv_remote_open() only starts the thread. The thread
 * connects when it first has work (tiers/rcluster.h), and while the
 * cluster cannot be reached it fails jobs at once as misses, tries again
 * after a back-off, and logs the outage once, and its end once.
 *
 * Locking: everything here is called on the loop thread; the I/O thread is
 * internal. Jobs belong to the tier from submit to reap.
 */
#ifndef KV_REMOTE_H
#define KV_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/key.h"
#include "tiers/remote_fmt.h"
#include "tiers/tier.h"

/* Values of 1 MiB: redis-benchmark's SET is fastest from 64 KiB to 1 MiB
 * here and halves at 4 MiB, GET holds to 4 MiB and both fall off above it
 * (docs/cluster.md, "Value size"). */
#define KV_REMOTE_PART_DEFAULT	(1u << 20)

struct kv_remote;			/* opaque */

struct kv_remote_conf {
	const char *seeds;		/* "host:port,..." (copied) */
	const char *user;		/* NULL: none (copied) */
	const char *password;		/* NULL: none (copied, never logged) */
	bool tls;			/* TLS to every node (kv_rc_conf) */
	const char *tls_ca_file;	/* with tls: PEM CA file (copied) */
	const char *tls_cert_file;	/* NULL or a PEM client certificate */
	const char *tls_key_file;	/* NULL or its PEM key (copied) */
	unsigned timeout_ms;		/* each batch's deadline */
	unsigned conns;			/* connections per node */
	uint32_t part_bytes;		/* 0: KV_REMOTE_PART_DEFAULT */
	int level;			/* zstd level */
	unsigned batch;			/* jobs run in one pipelined batch; 0: 64 */
};

/* A key a PROBE asks about. */
struct kv_remote_probe {
	uint64_t salt;			/* its namespace name's */
	struct kv_key key;
	int result;			/* out: 0 (present: hdr), -ENOENT, or why
					 * not (a miss either way) */
	struct kv_remote_hdr hdr;	/* out, with 0: part 0's header */
};

enum kv_remote_own {
	KV_REMOTE_PROBE,
};

struct kv_remote_job {
	struct kv_move m;		/* STORE, LOAD; own jobs: m.op KV_MOVE_OWN */
	uint8_t own;			/* enum kv_remote_own, with KV_MOVE_OWN */
	struct kv_remote_hdr want;	/* LOAD: the chunk's part 0 header */
	struct kv_remote_probe *probes;	/* PROBE: borrowed until reaped (may
					 * be &one) */
	uint32_t n_probes;
	struct kv_remote_probe one;	/* a PROBE of one key may use this */
	/* the tier's own while the job is in it */
	void *stage;			/* staging buffer */
	size_t stage_cap;
	struct kv_remote_job *next;
};

static inline struct kv_remote_job *kv_remote_job_of(struct kv_move *m)
{
	return (struct kv_remote_job *)((char *)m - offsetof(struct kv_remote_job, m));
}

struct kv_remote_stats {
	uint64_t stores, store_bytes, store_failures;
	uint64_t loads, load_bytes, load_failures;
	uint64_t probes, probe_hits;	/* keys asked, found */
	uint64_t corrupt;		/* values that failed a check */
	uint64_t timeouts;		/* commands past their deadline */
	uint64_t errors;		/* commands failed otherwise */
	bool up;			/* the cluster answered last time */
	unsigned masters, masters_down;
};

/*
 * The cluster as the I/O thread last saw it (kv_remote_view()): the
 * client's counters and its nodes, each master with the slot ranges the
 * map gives it. Bounded, so that a copy is small (about 10 KiB) and fits
 * one CLUSTER reply (lib/proto.h):
 * nodes past KV_REMOTE_VIEW_NODES are left out (nodes_known still counts
 * them), ranges past KV_REMOTE_VIEW_RANGES of a node are left out
 * (ranges_total still counts them; slots counts every slot), and a node's
 * name longer than KV_REMOTE_ADDR - 1 bytes is cut.
 */
#define KV_REMOTE_VIEW_NODES	64
#define KV_REMOTE_VIEW_RANGES	16
#define KV_REMOTE_ADDR		64

struct kv_remote_range {
	uint16_t first, last;		/* slots, inclusive */
};

struct kv_remote_node {
	char addr[KV_REMOTE_ADDR];	/* "host:port", NUL-terminated */
	unsigned slots;			/* slots the map gives it (0: no master) */
	unsigned conns_open;
	int state;			/* 0: up or never tried; else -errno of
					 * its last failure, while in back-off */
	unsigned n_ranges;		/* in ranges[], ascending */
	unsigned ranges_total;		/* it serves, n_ranges or more */
	struct kv_remote_range ranges[KV_REMOTE_VIEW_RANGES];
};

struct kv_remote_view {
	struct kv_remote_stats st;	/* kv_remote_stats(), as of the call */
	/* The rest as of the end of the last batch: */
	uint64_t taken_ns;		/* when (kv_now_ns()) */
	uint64_t moved, asks;		/* redirections followed */
	uint64_t refreshes;		/* slot maps loaded */
	uint64_t conn_errors;		/* connections that failed (protocol
					 * errors included) */
	unsigned nodes_known;		/* n_nodes or more */
	unsigned n_nodes;
	struct kv_remote_node nodes[KV_REMOTE_VIEW_NODES];
};

/* Start the tier's thread. 0 and *out, or -EINVAL (no seeds, timeout 0,
 * part_bytes too small for a header's worth; with tls, TLS files that do
 * not load, logged). Never touches the network. */
int kv_remote_open(struct kv_remote **out, const struct kv_remote_conf *conf);

/* Stop the thread after the jobs submitted, then free everything; jobs
 * not reaped are freed. Accepts NULL. */
void kv_remote_close(struct kv_remote *r);

/* A zeroed job (never fails); free a reaped one with kv_remote_free(). */
struct kv_remote_job *kv_remote_new(void);
void kv_remote_free(struct kv_remote_job *j);

void kv_remote_submit(struct kv_remote *r, struct kv_remote_job *j);
int kv_remote_event_fd(const struct kv_remote *r);
/* The finished jobs, oldest first, linked by next (NULL: none). */
struct kv_remote_job *kv_remote_reap(struct kv_remote *r);

void kv_remote_stats(struct kv_remote *r, struct kv_remote_stats *st);

/*
 * Copy the cluster as the I/O thread last saw it into *out (the caller's;
 * about 10 KiB). Returns 0, or -ENOTCONN when the thread has not connected
 * yet: then *out holds the counters and no nodes. Never waits for the
 * network: the thread publishes a view after each batch.
 */
int kv_remote_view(struct kv_remote *r, struct kv_remote_view *out);

#endif
