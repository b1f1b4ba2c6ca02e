/*
 * kvtrace_int.h - what the parts of kvtrace share (tools/kvtrace/; no other
 * directory includes it).
 *
 *   kvtrace.c  the options, main() and the helpers below
 *   trace.c    the JSON-lines trace: loaded, checked, flattened; block costs
 *   min.c      an infinite cache and Belady's MIN with bypass
 *   sim.c      the daemon's own store driven as kvstored drives it; the
 *              simulation's tables
 *   live.c     the same calls through libkvc against a running kvstored
 *
 * kvtrace.c's header comment says what the tool measures and how.
 * Single-threaded; every buffer is owned by the function that made it,
 * except struct trace's arrays (trace_free()) and cost_sum (main()).
 */
#ifndef KVTRACE_INT_H
#define KVTRACE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/kvc.h"
#include "kvstore/store.h"
#include "lib/proto.h"

#define NONE		UINT32_MAX	/* no parent; never used again */
#define MAX_LINE	(64u << 20)	/* bytes of one trace line */
#define MAX_REQ_IDS	(1u << 20)	/* ids in one request */
#define MAX_REFS	(1ull << 28)	/* ids in the whole trace */
#define MAX_REQS	(UINT32_MAX - 1)	/* request indices fit next_use */
#define MAX_POLICIES	16
#define MAX_CAPS	64
#define MAX_BLOCK_TOKENS (1u << 20)
#define MAX_CAP_TOKENS	(1ull << 60)
#define SIM_BLOCK_BYTES	64		/* the smallest granule */
#define LIVE_NS		"kvtrace"

enum { RC_OK = 0, RC_FAIL = 1, RC_USAGE = 2 };

struct opts {
	const char *trace;
	const char *live;		/* socket, or NULL: simulate */
	uint64_t caps[MAX_CAPS];	/* tokens */
	size_t n_caps;
	const char *policies[MAX_POLICIES];
	size_t n_policies;
	char *policy_buf;		/* owns the names above */
	uint32_t block_tokens;
	uint64_t block_bytes;		/* live */
	uint64_t max_uncommitted;	/* live; 0: half the daemon's DRAM */
	struct kv_cost_model model;
	bool model_set;
	uint64_t max_requests;		/* 0: all */
	bool json;
	bool check;
};

/*
 * The trace, flattened: request r references ids[off[r] .. off[r + 1]).
 * Each id also gets a dense number (first-seen order) so per-block state is
 * an array, and each reference the index of the next request that
 * references the same id (NONE: never again).
 */
struct trace {
	const char *path;
	size_t n_req;
	size_t *off;
	uint64_t *ids;
	uint32_t *dense;
	uint32_t *next_use;
	size_t n_refs;
	size_t max_len;
	uint32_t n_distinct;
	uint32_t *parent;		/* by dense id: first-seen parent */
	size_t inconsistent;		/* references with another parent */
};

struct result {
	uint64_t hits;
	double saved;			/* cost of the hit blocks */
	uint64_t evictions;
	uint64_t refused[5];		/* EEXIST, ENOPARENT, EFULL, EUNCOMMITTED, other */
};

struct sim_conf {
	const char *policy;
	uint64_t blocks;
	uint64_t block_bytes;
	uint64_t dram_bytes;
	uint64_t max_uncommitted;
	struct kv_cost_model model;
	uint32_t block_tokens;
	bool check;
};

struct replay_buf {
	struct kv_key *keys;		/* the store's */
	struct kvc_key *ckeys;		/* live: the same keys, as libkvc's */
	uint8_t *tiers;
	uint32_t *miss;
	bool *ok;
};

/* By trace.c's costs_init(): */
extern double *cost_sum;		/* cost_sum[k]: blocks 0 .. k-1 */
extern double total_cost;

/* kvtrace.c */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct kv_key key_of(uint64_t id);
double ratio(double num, double den);

/* trace.c */
int trace_load(struct trace *t, const struct opts *o);
void trace_free(struct trace *t);
void costs_init(const struct trace *t, const struct kv_cost_model *m,
		uint32_t block_tokens);

/* min.c */
void ideal_run(const struct trace *t, struct result *res);
int min_run(const struct trace *t, uint64_t blocks, bool check,
	    struct result *res);

/* sim.c */
void tally(struct result *res, int status);
void replay_buf_init(struct replay_buf *rb, size_t n);
void replay_buf_release(struct replay_buf *rb);
int store_run(const struct trace *t, const struct sim_conf *sc,
	      struct result *res);
int emit_json(json_t *doc);
int simulate(const struct opts *o, const struct trace *t);

/* live.c */
int live(const struct opts *o, const struct trace *t);

#endif
