/*
 * lru.c - least recently used eviction.
 *
 * The nodes of a tier sit on one list (lib/list.h) threaded through their
 * link fields, around a head in the state: its first node is the least
 * recently used, its last the most recently used. Insert, access and
 * remove are O(1); pick walks from the LRU end and costs
 * O(nodes skipped + max).
 *
 * Invariants: a node is on the list exactly while it is inserted; removed
 * nodes are unlinked (NULL pointers) so that a stray access trips an assert.
 * Locking: none; runs on the loop thread only (DESIGN.md section 3).
 * Ownership: nodes are borrowed from the core between on_insert() and
 * on_remove(); the state is owned by the caller of init() and freed by fini().
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "evict/policy.h"
#include "lib/list.h"
#include "lib/util.h"

struct lru {
	struct kv_list head;		/* first = LRU, last = MRU */
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;
};

static int lru_init(void **state, const struct kv_evict_conf *conf)
{
	struct lru *l;

	if (!state || !conf || !conf->evictable)
		return -EINVAL;

	l = kv_xcalloc(1, sizeof(*l));
	kv_list_init(&l->head);
	/* Copy the callback: conf is only borrowed for the call. */
	l->evictable = conf->evictable;
	l->arg = conf->arg;

	*state = l;
	return 0;
}

static void lru_fini(void *state)
{
	/* Nodes belong to the core; only the state is ours to free. */
	free(state);
}

/* LRU ranks by recency alone, but keeps the carried use count current,
 * so a chunk that moves to a frequency-aware tier brings its history. */
static void lru_insert(void *state, struct kv_evict_node *n)
{
	struct lru *l = state;

	if (n->freq == 0)
		n->freq = 1;
	kv_list_add_tail(&l->head, &n->link);
}

static void lru_access(void *state, struct kv_evict_node *n)
{
	struct lru *l = state;

	assert(kv_list_is_linked(&n->link));
	n->freq++;
	kv_list_move_tail(&l->head, &n->link);
}

static void lru_remove(void *state, struct kv_evict_node *n)
{
	assert(kv_list_is_linked(&n->link));
	kv_list_del(&n->link);
}

static size_t lru_pick(void *state, struct kv_evict_node **out, size_t max)
{
	struct lru *l = state;
	struct kv_evict_node *n;
	size_t cnt = 0;

	kv_list_for_each_entry(n, &l->head, link) {
		if (cnt == max)
			break;
		if (l->evictable(n, l->arg))
			out[cnt++] = n;
	}
	return cnt;
}

const struct kv_evict_ops kv_evict_lru = {
	.name		= "lru",
	.init		= lru_init,
	.fini		= lru_fini,
	.on_insert	= lru_insert,
	.on_access	= lru_access,
	.on_remove	= lru_remove,
	.pick		= lru_pick,
	.on_score	= NULL,		/* LRU ignores attention scores */
};
