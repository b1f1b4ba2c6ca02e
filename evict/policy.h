/*
 * policy.h - the eviction policy interface (DESIGN.md section 5).
 *
 * A policy ranks the chunks of one tier and names victims. It knows nothing
 * of chunks, tiers or the index: the core embeds a struct kv_evict_node in
 * each chunk, fills in the fields marked "core", and hands the node to the
 * policy; the policy owns the fields marked "policy". Whether a node may go
 * right now (not pinned, no resident children) is the core's to say, through
 * conf->evictable.
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

struct kv_evict_node {
	/* policy: free for the policy's use while the node is inserted */
	struct kv_evict_node *prev;
	struct kv_evict_node *next;
	double prio;
	uint64_t heap_idx;
	uint32_t freq;
	/* core: set before on_insert() and kept up to date */
	uint32_t tokens;	/* tokens in the chunk */
	uint32_t position;	/* index of the chunk's first token in its prompt */
	uint64_t size;		/* bytes the chunk takes in this tier */
};

struct kv_evict_conf {
	uint64_t capacity;	/* bytes of the tier */
	/* May this node be evicted now? Called from pick(). Required. */
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;		/* passed to evictable() */
};

struct kv_evict_ops {
	const char *name;	/* config name: "lru", ... */
	/* Returns 0 and stores the state in *state, or -ENOMEM / -EINVAL. */
	int (*init)(void **state, const struct kv_evict_conf *conf);
	void (*fini)(void *state);	/* accepts NULL */
	/* A node enters the tier (it counts as just used). */
	void (*on_insert)(void *state, struct kv_evict_node *n);
	/* An inserted node was used (looked up, pinned, written). */
	void (*on_access)(void *state, struct kv_evict_node *n);
	/* A node leaves the tier (evicted, demoted, deleted). */
	void (*on_remove)(void *state, struct kv_evict_node *n);
	/*
	 * Store up to max evictable nodes in out[], best victim first, without
	 * removing them; return how many. Fewer than max (or 0) means no more
	 * evictable nodes exist. The caller removes the ones it evicts with
	 * on_remove().
	 */
	size_t (*pick)(void *state, struct kv_evict_node **out, size_t max);
	/* Optional (may be NULL): attention score reported for a node. */
	void (*on_score)(void *state, struct kv_evict_node *n, float score);
};

/* Find a registered policy by its config name; NULL if there is none. */
const struct kv_evict_ops *kv_evict_find(const char *name);

/*
 * The registered policies, for listing: stores the table in *out and
 * returns its length.
 */
size_t kv_evict_list(const struct kv_evict_ops *const **out);

extern const struct kv_evict_ops kv_evict_lru;

#endif
