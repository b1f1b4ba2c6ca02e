/*
 * lru.c - least recently used eviction.
 *
 * The nodes of a tier sit on one circular doubly linked list threaded
 * through their prev/next fields, around a sentinel in the state:
 * sentinel.next is the least recently used node, sentinel.prev the most
 * recently used. Insert, access and remove are O(1); pick walks from the
 * LRU end and costs O(nodes skipped + max).
 *
 * Invariants: a node is on the list exactly while it is inserted; removed
 * nodes have prev == next == NULL so that a stray access trips an assert.
 * Locking: none; runs on the loop thread only (DESIGN.md section 3).
 * Ownership: nodes are borrowed from the core between on_insert() and
 * on_remove(); the state is owned by the caller of init() and freed by fini().
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "evict/policy.h"
#include "lib/util.h"

struct lru {
	struct kv_evict_node head;	/* sentinel: next = LRU, prev = MRU */
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;
};

static void list_unlink(struct kv_evict_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
}

static void list_add_mru(struct lru *l, struct kv_evict_node *n)
{
	n->prev = l->head.prev;
	n->next = &l->head;
	l->head.prev->next = n;
	l->head.prev = n;
}

static int lru_init(void **state, const struct kv_evict_conf *conf)
{
	struct lru *l;

	if (!state || !conf || !conf->evictable)
		return -EINVAL;

	l = kv_xcalloc(1, sizeof(*l));
	l->head.prev = &l->head;
	l->head.next = &l->head;
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
	if (n->freq == 0)
		n->freq = 1;
	list_add_mru(state, n);
}

static void lru_access(void *state, struct kv_evict_node *n)
{
	assert(n->prev && n->next);
	n->freq++;
	list_unlink(n);
	list_add_mru(state, n);
}

static void lru_remove(void *state, struct kv_evict_node *n)
{
	assert(n->prev && n->next);
	list_unlink(n);
	n->prev = NULL;
	n->next = NULL;
}

static size_t lru_pick(void *state, struct kv_evict_node **out, size_t max)
{
	struct lru *l = state;
	struct kv_evict_node *n;
	size_t cnt = 0;

	for (n = l->head.next; n != &l->head && cnt < max; n = n->next) {
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
