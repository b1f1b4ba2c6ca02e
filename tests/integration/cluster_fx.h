/*
 * cluster_fx.h - what the programs that test the remote tier against a
 * real Redis Cluster share (cluster_fx.c): the cluster, one per program,
 * started by the group's setup, and a daemon's remote figures. The
 * functions fail the running cmocka test on any error.
 */
#ifndef KVT_CLUSTER_FX_H
#define KVT_CLUSTER_FX_H

#include <stddef.h>
#include <stdint.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/rcluster_fx.h"

#define WAIT_MS		30000		/* the longest a write-through may take */
#define CMAX		(64u << 10)	/* the largest chunk put_chunks() puts */

extern struct kvt_cluster cl;
extern char remote[600];		/* "redis-cluster://SEEDS", for --remote
					 * ("rediss-cluster://" with TLS) */

/* The group's setup and teardown: start the cluster, stop it. */
int cluster_setup(void **state);
/* The same with a TLS-only cluster (kvt_cluster_start_tls(): its files
 * in cl.tls). */
int cluster_setup_tls(void **state);
int cluster_teardown(void **state);

/* Chunk i's key, of a salt of the test's own; its length (1 byte to
 * CMAX) and bytes (a pattern of its own). */
struct kvc_key key_of(uint64_t i, uint64_t salt);
size_t len_of(uint64_t i);
void fill(unsigned char *p, size_t len, uint64_t i);

/* A daemon on the cluster (128 MiB of DRAM, a 2 s deadline), with the
 * flags in extra (NULL-terminated, may be NULL), connected. */
struct kvc *start(struct kvt_daemon *d, const char *const *extra);

/* Put chunks [from, to) of salt. */
void put_chunks(struct kvc *c, uint32_t ns, uint64_t salt, uint64_t from, uint64_t to);

/* Register namespace "<what>/<salt in hex>" on both daemons' handles: the
 * same name, so the same chunks in the cluster. */
void shared_ns(struct kvc *ca, struct kvc *cb, const char *what, uint64_t salt,
	       uint32_t *na, uint32_t *nb);

/* kvc_get of chunk i of salt: 1 byte-exact, 0 a miss; a wrong byte or
 * another error fails. */
int get_chunk(struct kvc *c, uint32_t ns, uint64_t salt, uint64_t i);

/* Two daemons started with extra share n chunks (a multiple of 100): B
 * looks up and reads byte-exact what A put and wrote through, then holds
 * them itself; neither logs a failed connection. */
void share(const char *const *extra, uint64_t n);

/* Close c, stop its daemon, which must exit 0. */
void stop(struct kvt_daemon *d, struct kvc *c);

/* STATS' remote tier line, the rest of STATS in *st. */
const struct kvc_tier_stats *remote_stats(struct kvc *c, struct kvc_stats *st);

/* Wait up to WAIT_MS until c's daemon has written n chunks through. */
void wait_written(struct kvc *c, uint64_t n);

#endif
