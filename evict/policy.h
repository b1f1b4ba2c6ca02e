/*
 * policy.h - the eviction policy interface (DESIGN.md section 5).
 *
 * A policy ranks the chunks of one tier and names victims. It knows nothing
 * of chunks, tiers or the index: the core embeds a struct kv_evict_node in
 * each chunk, fills in the fields marked "core", and hands the node to the
 * policy; the policy owns the fields marked "policy". Whether a node may go
 * right now (not pinned, no resident children) is the core's to say, through
 * conf->evictable, and the core reports every change of that answer through
 * on_hold(), so a policy may keep its evictable nodes apart (a heap of
 * leaves) instead of skipping held ones in pick().
 *
 * Each tier has its own policy instance (state). Policies run on the daemon's
 * loop thread: they never lock, sleep, log, allocate in pick(), or free
 * nodes.
 */
#ifndef KV_POLICY_H
#define KV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/list.h"

struct kv_evict_node {
	/* policy: private; any value before on_insert() */
	struct kv_list link;	/* on a list of the policy's */
	double prio;
	uint64_t heap_idx;
	uint64_t stamp;		/* H2O: last use, in the policy's own clock */
	uint32_t flags;
	/*
	 * carried: the chunk's history, kept by the core when the chunk moves
	 * to another tier (demotion, promotion, a policy switch) and zero for
	 * a new chunk. The policy reads them at on_insert() and keeps them
	 * current by on_remove() at the latest.
	 */
	uint32_t freq;		/* uses since the chunk entered the cache */
	double score;		/* decayed attention mass, as of on_remove() */
	/* core: set before on_insert() and kept up to date */
	uint32_t tokens;	/* tokens in the chunk */
	uint32_t position;	/* index of the chunk's first token in its prompt */
	uint64_t size;		/* bytes the chunk takes in this tier; fixed
				 * while the node is inserted */
	double cost;		/* what keeping it saves (GDSF's C), > 0, in
				 * any unit: policies compare costs only */
};

struct kv_evict_conf {
	uint64_t capacity;	/* bytes of the tier */
	/* May this node be evicted now? Called from pick(). Required. */
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;		/* passed to evictable() */
	/* H2O: share of capacity (bytes) kept as the recent segment, (0, 1]. */
	double recent_fraction;
	/* H2O: half-life of a score, in the policy's own clock, which counts
	 * on_insert() and on_access() calls (scores do not advance it); 0
	 * picks a default. */
	double half_life;
};

struct kv_evict_ops {
	const char *name;	/* config name: "lru", ... */
	/* Returns 0 and stores the state in *state, or -ENOMEM / -EINVAL. */
	int (*init)(void **state, const struct kv_evict_conf *conf);
	void (*fini)(void *state);	/* accepts NULL */
	/* A node enters the tier (it counts as just used). It may be held
	 * already (pinned): evictable() says. */
	void (*on_insert)(void *state, struct kv_evict_node *n);
	/* An inserted node was used (looked up, pinned, written). */
	void (*on_access)(void *state, struct kv_evict_node *n);
	/* A node leaves the tier (evicted, demoted, deleted). The policy
	 * brings the carried fields up to date first. */
	void (*on_remove)(void *state, struct kv_evict_node *n);
	/*
	 * Store up to max evictable nodes in out[] without removing them and
	 * return how many: min(max, the number of evictable nodes). out[0] is
	 * the policy's victim; the rest follow in the policy's order as far as
	 * it keeps one (a heap policy may list them in heap order). The caller
	 * removes the ones it evicts with on_remove().
	 */
	size_t (*pick)(void *state, struct kv_evict_node **out, size_t max);
	/* Optional (may be NULL): an attention score in [0, 1] reported for a
	 * node (H2O); the share of a request's attention its tokens got. */
	void (*on_score)(void *state, struct kv_evict_node *n, float score);
	/* Optional (may be NULL): evictable() for n changed to !held. */
	void (*on_hold)(void *state, struct kv_evict_node *n, bool held);
};

/* Find a registered policy by its config name; NULL if there is none. */
const struct kv_evict_ops *kv_evict_find(const char *name);

/*
 * The registered policies, for listing: stores the table in *out and
 * returns its length.
 */
size_t kv_evict_list(const struct kv_evict_ops *const **out);

extern const struct kv_evict_ops kv_evict_lru;
extern const struct kv_evict_ops kv_evict_gdsf;
extern const struct kv_evict_ops kv_evict_h2o;

#endif
