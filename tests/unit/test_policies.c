/*
 * test_policies.c - every registered eviction policy through the same
 * scenarios, then the order guarantees that each policy makes on its own.
 *
 * The generic groups run once per entry of kv_evict_list(), so a new policy
 * is covered as soon as it is registered. Nodes live in struct item, which
 * embeds the kv_evict_node the way a chunk does in the daemon; the
 * evictable() callback finds the item with kv_container_of() and says no
 * for pinned ones and for ones with live children (the store's leaf-first
 * rule). Like the store, the harness calls on_hold() whenever that answer
 * changes for a live item: every pin flip goes through fx_pin() and every
 * children count through fx_link() / fx_remove(). Every scenario checks
 * what pick() returns against a shadow of the policy's membership kept here
 * (item.live, fx->live[]).
 *
 * Moving a chunk between instances (another tier, a policy switch) is
 * modelled two ways: fx_switch() replays kv_store_set_policy() on one
 * fixture, and carry() copies a node's carried fields from an item of one
 * fixture to an item of another, which is what the core's node memory
 * amounts to.
 *
 * Locking: none; single-threaded. Randomness comes from a fixed-seed
 * xorshift so that failures reproduce.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "evict/policy.h"
#include "lib/util.h"

#define NITEMS		512
#define SMALL		64		/* items in the non-stress scenarios */
#define STRESS_OPS	100000
#define PICK_BATCH	16		/* as the store's tier_alloc_evicting() */
#define UNIT		4096		/* bytes of a small item */
#define FX_MAGIC	0x6b7665766963746full

struct item {
	struct kv_evict_node node;
	unsigned id;
	bool pinned;		/* evictable() says no */
	bool live;		/* between on_insert() and on_remove() */
	struct item *up;	/* parent, while both are live */
	unsigned children;	/* live items whose up is this one */
	uint64_t size;		/* core fields for the next insert */
	double cost;
	uint32_t freq0;		/* carried freq, as the last switch saw it */
	size_t slot;		/* index in fx->live[] while live */
	uint64_t stamp;		/* last insert or access, for the LRU model */
	uint64_t seen;		/* pick generation, to spot duplicates */
};

struct fixture {
	uint64_t magic;		/* evictable() checks it got conf->arg */
	const struct kv_evict_ops *ops;
	void *state;
	struct kv_evict_conf conf;
	uint64_t rng;
	uint64_t clock;
	uint64_t gen;
	size_t nlive;
	size_t live[NITEMS];
	struct item items[NITEMS];
	/* room for max > NITEMS plus a canary after max */
	struct kv_evict_node *out[2 * NITEMS + 2];
	struct kv_evict_node *out2[2 * NITEMS + 2];
};

/* The policy the current group runs against; set by main(). */
static const struct kv_evict_ops *cur_ops;

static uint64_t rnd(struct fixture *fx)
{
	uint64_t x = fx->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fx->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(struct fixture *fx, size_t n)
{
	return n ? (size_t)(rnd(fx) % n) : 0;
}

static bool item_held(const struct item *it)
{
	return it->pinned || it->children;
}

static bool item_evictable(const struct kv_evict_node *n, void *arg)
{
	struct fixture *fx = arg;
	const struct item *it = kv_container_of(n, struct item, node);

	assert_int_equal(fx->magic, FX_MAGIC);
	/* A policy must only ask about its own members. */
	assert_true(it->live);
	return !item_held(it);
}

static void assert_close(double got, double want, double rel)
{
	if (fabs(got - want) <= rel * fabs(want))
		return;
	fail_msg("got %.17g, want %.17g (relative error %g allowed)",
		 got, want, rel);
}

/* A fixture for ops; conf may be NULL for the default one. */
static struct fixture *fx_open(const struct kv_evict_ops *ops,
			       const struct kv_evict_conf *conf)
{
	struct fixture *fx;

	fx = kv_xcalloc(1, sizeof(*fx));
	fx->magic = FX_MAGIC;
	fx->ops = ops;
	fx->rng = 0x9e3779b97f4a7c15ull;
	if (conf)
		fx->conf = *conf;
	else
		fx->conf.capacity = (uint64_t)NITEMS * 4 * UNIT;
	fx->conf.evictable = item_evictable;
	fx->conf.arg = fx;
	for (unsigned i = 0; i < NITEMS; i++) {
		fx->items[i].id = i;
		fx->items[i].size = UNIT * (1 + i % 4);
		fx->items[i].cost = 1e-3 * (1 + i % 7);
	}
	assert_int_equal(ops->init(&fx->state, &fx->conf), 0);
	return fx;
}

static void fx_close(struct fixture *fx)
{
	fx->ops->fini(fx->state);
	free(fx);
}

static int fx_setup(void **state)
{
	*state = fx_open(cur_ops, NULL);
	return 0;
}

static int fx_teardown(void **state)
{
	fx_close(*state);
	return 0;
}

/* it's evictable() answer may have changed from !was: tell the policy. */
static void fx_hold_changed(struct fixture *fx, struct item *it, bool was)
{
	bool now = item_held(it);

	if (it->live && now != was && fx->ops->on_hold)
		fx->ops->on_hold(fx->state, &it->node, now);
}

static void fx_pin(struct fixture *fx, unsigned i, bool pinned)
{
	struct item *it = &fx->items[i];
	bool was = item_held(it);

	it->pinned = pinned;
	fx_hold_changed(fx, it, was);
}

/* Make live item p the parent of item c, which is not live yet. */
static void fx_link(struct fixture *fx, unsigned c, unsigned p)
{
	struct item *child = &fx->items[c];
	struct item *parent = &fx->items[p];
	bool was = item_held(parent);

	assert_true(parent->live);
	assert_false(child->live);
	assert_null(child->up);
	child->up = parent;
	parent->children++;
	fx_hold_changed(fx, parent, was);
}

/* Policy fields are the policy's to set: hand it garbage. */
static void garble(struct kv_evict_node *n)
{
	n->link.prev = (struct kv_list *)(uintptr_t)0xdead0001;
	n->link.next = (struct kv_list *)(uintptr_t)0xdead0002;
	n->prio = 1e300;
	n->heap_idx = UINT64_MAX;
	n->stamp = UINT64_MAX;
	n->flags = UINT32_MAX;
}

/* Insert item i; carried fields as they are (carry) or zero (a new chunk). */
static void fx_insert_as(struct fixture *fx, unsigned i, bool carry)
{
	struct item *it = &fx->items[i];

	assert_false(it->live);
	garble(&it->node);
	if (!carry) {
		it->node.freq = 0;
		it->node.score = 0;
	}
	/* Core fields are ours. */
	it->node.tokens = 16;
	it->node.position = 16 * (i % 64);
	it->node.size = it->size;
	it->node.cost = it->cost;

	it->live = true;
	it->slot = fx->nlive;
	it->stamp = ++fx->clock;
	fx->live[fx->nlive++] = i;
	fx->ops->on_insert(fx->state, &it->node);
}

static void fx_insert(struct fixture *fx, unsigned i)
{
	fx_insert_as(fx, i, false);
}

static void fx_access(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];

	assert_true(it->live);
	it->stamp = ++fx->clock;
	fx->ops->on_access(fx->state, &it->node);
}

static void fx_score(struct fixture *fx, unsigned i, float score)
{
	assert_true(fx->items[i].live);
	if (fx->ops->on_score)
		fx->ops->on_score(fx->state, &fx->items[i].node, score);
}

/* Remove item i (evicted or deleted), as chunk_drop() does. */
static void fx_remove(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];
	struct item *p = it->up;
	unsigned last;

	assert_true(it->live);
	fx->ops->on_remove(fx->state, &it->node);
	it->live = false;
	last = fx->live[--fx->nlive];
	fx->live[it->slot] = last;
	fx->items[last].slot = it->slot;

	if (p) {		/* the parent may be a leaf again */
		bool was = item_held(p);

		it->up = NULL;
		p->children--;
		fx_hold_changed(fx, p, was);
	}
	if (it->children) {	/* deleted under its children: orphan them */
		for (unsigned k = 0; k < NITEMS; k++) {
			if (fx->items[k].up == it)
				fx->items[k].up = NULL;
		}
		it->children = 0;
	}
}

static void fx_insert_n(struct fixture *fx, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fx_insert(fx, i);
}

static size_t fx_count_evictable(const struct fixture *fx)
{
	size_t cnt = 0;

	for (size_t k = 0; k < fx->nlive; k++)
		cnt += !item_held(&fx->items[fx->live[k]]);
	return cnt;
}

/* Map a node pointer back to our item, failing if it is not one of ours. */
static struct item *node_item(struct fixture *fx, struct kv_evict_node *n)
{
	uintptr_t p = (uintptr_t)n;
	uintptr_t first = (uintptr_t)&fx->items[0].node;
	uintptr_t last = (uintptr_t)&fx->items[NITEMS - 1].node;

	assert_non_null(n);
	assert_true(p >= first && p <= last);
	assert_int_equal((p - first) % sizeof(struct item), 0);
	return kv_container_of(n, struct item, node);
}

/*
 * Call pick(max) into out[] and check every answer: one of our items, live,
 * evictable (unpinned, no children), no duplicates, and nothing written
 * past out[max - 1].
 */
static size_t fx_pick_into(struct fixture *fx, struct kv_evict_node **out,
			   size_t max)
{
	struct kv_evict_node *canary = (struct kv_evict_node *)fx;
	size_t cnt;

	assert_true(max <= 2 * NITEMS);
	out[max] = canary;
	cnt = fx->ops->pick(fx->state, out, max);
	assert_true(cnt <= max);
	assert_ptr_equal(out[max], canary);

	fx->gen++;
	for (size_t k = 0; k < cnt; k++) {
		struct item *it = node_item(fx, out[k]);

		assert_true(it->live);
		assert_false(it->pinned);
		assert_int_equal(it->children, 0);
		assert_int_not_equal(it->seen, fx->gen);
		it->seen = fx->gen;
	}
	return cnt;
}

static size_t fx_pick(struct fixture *fx, size_t max)
{
	return fx_pick_into(fx, fx->out, max);
}

/* pick(max) must return exactly min(max, evictable nodes). */
static size_t fx_pick_exact(struct fixture *fx, size_t max, size_t op)
{
	size_t want = fx_count_evictable(fx);
	size_t got = fx_pick(fx, max);

	if (max < want)
		want = max;
	if (got != want)
		fail_msg("%s op %zu: pick(%zu) gave %zu, want %zu",
			 fx->ops->name, op, max, got, want);
	return got;
}

static unsigned out_id(const struct fixture *fx, size_t k)
{
	return kv_container_of(fx->out[k], struct item, node)->id;
}

/* The policy's victim, or -1 if it has none. */
static int fx_victim(struct fixture *fx)
{
	return fx_pick(fx, 1) ? (int)out_id(fx, 0) : -1;
}

/* Evict the policy's victim as the core does; return its id. */
static unsigned fx_evict(struct fixture *fx)
{
	int v = fx_victim(fx);

	assert_true(v >= 0);
	fx_remove(fx, (unsigned)v);
	return (unsigned)v;
}

/* Copy item i's history from one fixture to item j of another. */
static void carry(struct fixture *to, unsigned j, const struct fixture *from,
		  unsigned i)
{
	assert_false(from->items[i].live);
	to->items[j].node.freq = from->items[i].node.freq;
	to->items[j].node.score = from->items[i].node.score;
}

static int cmp_stamp(const void *a, const void *b)
{
	const struct item *x = *(const struct item *const *)a;
	const struct item *y = *(const struct item *const *)b;

	return (x->stamp > y->stamp) - (x->stamp < y->stamp);
}

/*
 * Replay kv_store_set_policy(): every live node leaves the old instance,
 * oldest first, then enters a new instance of ops in the same order. Links
 * and pins stay: the chunks never left the tier.
 */
static void fx_switch(struct fixture *fx, const struct kv_evict_ops *ops)
{
	struct item *v[NITEMS];
	size_t n = fx->nlive;

	for (size_t k = 0; k < n; k++)
		v[k] = &fx->items[fx->live[k]];
	qsort(v, n, sizeof(v[0]), cmp_stamp);
	for (size_t k = 0; k < n; k++) {
		fx->ops->on_remove(fx->state, &v[k]->node);
		v[k]->freq0 = v[k]->node.freq;
	}
	fx->ops->fini(fx->state);
	fx->ops = ops;
	assert_int_equal(ops->init(&fx->state, &fx->conf), 0);
	for (size_t k = 0; k < n; k++) {
		garble(&v[k]->node);
		v[k]->stamp = ++fx->clock;
		ops->on_insert(fx->state, &v[k]->node);
		/* carried: a policy may count the use, never forget uses */
		assert_true(v[k]->node.freq >= v[k]->freq0);
	}
}

/*
 * One random step of a tree-shaped workload: inserts under live parents,
 * deletes, accesses, pin flips and scores, and picks whose victims are
 * evicted in order as tier_alloc_evicting() does. pins is the chance of a
 * pin flip in percent.
 */
static void tree_step(struct fixture *fx, size_t op, unsigned pins)
{
	unsigned r = (unsigned)rnd_below(fx, 100);
	struct item *it = &fx->items[rnd_below(fx, NITEMS)];
	unsigned any = fx->nlive ? fx->live[rnd_below(fx, fx->nlive)] : 0;
	size_t got;
	size_t n;

	if (r < 30) {
		if (it->live)
			return;
		if (fx->nlive && rnd_below(fx, 2))
			fx_link(fx, it->id, any);
		fx_insert(fx, it->id);
	} else if (r < 42) {
		if (fx->nlive)
			fx_remove(fx, any);
	} else if (r < 55) {
		if (fx->nlive)
			fx_access(fx, any);
	} else if (r < 55 + pins) {
		fx_pin(fx, it->id, !it->pinned);
	} else if (r < 60 + pins) {
		if (fx->nlive)
			fx_score(fx, any, (float)rnd_below(fx, 1001) / 1000);
	} else {
		got = fx_pick_exact(fx, rnd_below(fx, PICK_BATCH + 1), op);
		n = rnd_below(fx, got + 1);
		for (size_t k = 0; k < n; k++)
			fx_remove(fx, node_item(fx, fx->out[k])->id);
	}
}

/* ---- the registry ------------------------------------------------------ */

static void test_registry(void **state)
{
	const struct kv_evict_ops *const *list;
	size_t n = kv_evict_list(&list);

	assert_int_equal(n, 3);
	assert_ptr_equal(list[0], &kv_evict_lru);
	assert_ptr_equal(list[1], &kv_evict_gdsf);
	assert_ptr_equal(list[2], &kv_evict_h2o);
	assert_ptr_equal(kv_evict_find("lru"), &kv_evict_lru);
	assert_ptr_equal(kv_evict_find("gdsf"), &kv_evict_gdsf);
	assert_ptr_equal(kv_evict_find("h2o"), &kv_evict_h2o);
	assert_null(kv_evict_find("no-such-policy"));
	assert_null(kv_evict_find(""));
	assert_null(kv_evict_find(NULL));
	assert_null(kv_evict_find("LRU"));

	for (size_t i = 0; i < n; i++) {
		const struct kv_evict_ops *ops = list[i];

		assert_non_null(ops);
		assert_non_null(ops->name);
		assert_ptr_equal(kv_evict_find(ops->name), ops);
		assert_non_null(ops->init);
		assert_non_null(ops->fini);
		assert_non_null(ops->on_insert);
		assert_non_null(ops->on_access);
		assert_non_null(ops->on_remove);
		assert_non_null(ops->pick);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(list[j]->name, ops->name);
	}
}

/* ---- generic scenarios, run for every registered policy --------------- */

static void test_init_rejects_bad_conf(void **state)
{
	const struct kv_evict_ops *ops = cur_ops;
	struct kv_evict_conf conf = { .capacity = 1 << 20 };
	void *sentinel = &conf;
	void *st = sentinel;

	assert_int_equal(ops->init(&st, &conf), -EINVAL);
	assert_ptr_equal(st, sentinel);
	assert_int_equal(ops->init(&st, NULL), -EINVAL);
	assert_ptr_equal(st, sentinel);
	conf.evictable = item_evictable;
	assert_int_equal(ops->init(NULL, &conf), -EINVAL);

	ops->fini(NULL);

	/* And a good conf does work, so the rejections above mean something. */
	assert_int_equal(ops->init(&st, &conf), 0);
	assert_ptr_not_equal(st, sentinel);
	ops->fini(st);
}

static void test_pick_returns_all(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(fx_pick(fx, SMALL), 0);
	fx_insert_n(fx, SMALL);

	/* distinct, live, ours: SMALL of them means every inserted node */
	assert_int_equal(fx_pick(fx, SMALL), SMALL);
	assert_int_equal(fx_pick(fx, SMALL + 7), SMALL);
	assert_int_equal(fx_pick(fx, 1), 1);
	assert_int_equal(fx_pick(fx, SMALL - 1), SMALL - 1);
	assert_int_equal(fx_pick(fx, 0), 0);
}

static void test_pick_skips_pinned(void **state)
{
	struct fixture *fx = *state;

	fx_insert_n(fx, SMALL);
	for (int round = 0; round < 200; round++) {
		/* pin a random subset, denser or sparser from round to round */
		unsigned density = 1 + round % 7;
		size_t want;
		size_t max;

		for (unsigned i = 0; i < SMALL; i++)
			fx_pin(fx, i, rnd_below(fx, 8) < density);
		want = fx_count_evictable(fx);

		assert_int_equal(fx_pick(fx, SMALL), want);
		max = rnd_below(fx, SMALL + 1);
		assert_int_equal(fx_pick(fx, max), max < want ? max : want);
	}
}

static void test_all_pinned(void **state)
{
	struct fixture *fx = *state;

	fx_insert_n(fx, SMALL);
	for (unsigned i = 0; i < SMALL; i++)
		fx_pin(fx, i, true);
	assert_int_equal(fx_pick(fx, SMALL), 0);
	assert_int_equal(fx_pick(fx, 1), 0);

	/* one unpinned node is found wherever it sits */
	fx_pin(fx, SMALL / 2, false);
	assert_int_equal(fx_pick(fx, SMALL), 1);
	assert_int_equal(out_id(fx, 0), SMALL / 2);

	/* nodes pinned before they enter are held from the start */
	fx_pin(fx, SMALL, true);
	fx_insert(fx, SMALL);
	assert_int_equal(fx_pick(fx, SMALL + 1), 1);
	fx_pin(fx, SMALL, false);
	assert_int_equal(fx_pick(fx, SMALL + 1), 2);
}

static void test_removed_not_returned(void **state)
{
	struct fixture *fx = *state;

	fx_insert_n(fx, SMALL);
	for (unsigned i = 0; i < SMALL; i++) {
		if (rnd_below(fx, 2))
			fx_remove(fx, i);
	}
	assert_true(fx->nlive > 0 && fx->nlive < SMALL);
	/* fx_pick() fails on any node that is no longer live */
	assert_int_equal(fx_pick(fx, SMALL), fx->nlive);

	while (fx->nlive)
		fx_remove(fx, fx->live[0]);
	assert_int_equal(fx_pick(fx, SMALL), 0);

	/* removed nodes can come back */
	fx_insert(fx, 3);
	fx_insert(fx, 5);
	assert_int_equal(fx_pick(fx, SMALL), 2);

	/* held nodes can be removed too, and stay gone when released */
	fx_pin(fx, 3, true);
	fx_remove(fx, 3);
	fx_pin(fx, 3, false);
	assert_int_equal(fx_pick(fx, SMALL), 1);
	assert_int_equal(out_id(fx, 0), 5);
}

static void test_pick_is_pure(void **state)
{
	struct fixture *fx = *state;
	size_t a;
	size_t b;

	fx_insert_n(fx, SMALL);
	for (unsigned i = 0; i < SMALL; i += 3)
		fx_access(fx, i);
	for (unsigned i = 0; i < SMALL; i += 4)
		fx_score(fx, i, 0.5f);
	for (unsigned i = 0; i < SMALL; i += 5)
		fx_pin(fx, i, true);

	for (size_t max = 1; max <= SMALL; max += 9) {
		a = fx_pick_into(fx, fx->out, max);
		b = fx_pick_into(fx, fx->out2, max);
		assert_int_equal(a, b);
		assert_memory_equal(fx->out, fx->out2, a * sizeof(fx->out[0]));
	}

	/* nothing left the policy: unpinned, every node is still there */
	for (unsigned i = 0; i < SMALL; i++)
		fx_pin(fx, i, false);
	assert_int_equal(fx_pick(fx, SMALL), SMALL);
}

/* One pick as the core would do it, checked against the shadow set. */
static void stress_pick(struct fixture *fx, size_t op)
{
	size_t max;
	size_t got;
	size_t n;

	switch (rnd_below(fx, 4)) {
	case 0:
		max = 0;
		break;
	case 1:
		max = fx->nlive;
		break;
	default:
		max = rnd_below(fx, fx->nlive + 8);
		break;
	}
	got = fx_pick_exact(fx, max, op);

	/* the core evicts some of what it was offered */
	n = rnd_below(fx, 2) ? rnd_below(fx, got + 1) : 0;
	for (size_t k = 0; k < n; k++)
		fx_remove(fx, node_item(fx, fx->out[k])->id);
}

static void test_stress(void **state)
{
	struct fixture *fx = *state;
	size_t picks = 0;

	for (size_t op = 0; op < STRESS_OPS; op++) {
		/* alternate growing and shrinking phases to sweep the size */
		unsigned grow = (op / 5000) % 2 ? 20 : 45;
		unsigned r = (unsigned)rnd_below(fx, 100);
		struct item *it = &fx->items[rnd_below(fx, NITEMS)];
		unsigned any = fx->nlive ? fx->live[rnd_below(fx, fx->nlive)]
					 : 0;
		float score = (float)rnd_below(fx, 1000) / 1000;

		if (r < grow) {
			if (!it->live)
				fx_insert(fx, it->id);
		} else if (r < 65) {
			if (fx->nlive)
				fx_remove(fx, any);
		} else if (r < 80) {
			if (fx->nlive)
				fx_access(fx, any);
		} else if (r < 88) {
			fx_pin(fx, it->id, !it->pinned);
		} else if (r < 90) {
			if (it->live)
				fx_score(fx, it->id, score);
		} else {
			stress_pick(fx, op);
			picks++;
		}
	}
	assert_true(picks > STRESS_OPS / 20);
}

/*
 * Leaf-first, as the store does it: an item is held while it has live
 * children, and the harness calls on_hold() when a children count crosses
 * zero. pick() must never offer a parent, and evicting the offered leaves
 * must drain the whole forest bottom-up.
 */
static void test_leaf_first(void **state)
{
	struct fixture *fx = *state;
	size_t order[NITEMS];
	int parent[NITEMS];
	size_t gone = 0;
	size_t round = 0;

	for (unsigned i = 0; i < NITEMS; i++) {
		parent[i] = -1;
		if (i && rnd_below(fx, 8)) {	/* chains and bushes */
			parent[i] = rnd_below(fx, 2) ? (int)i - 1
				  : (int)rnd_below(fx, i);
			fx_link(fx, i, (unsigned)parent[i]);
		}
		fx_insert(fx, i);
		if (rnd_below(fx, 10) == 0)
			fx_pin(fx, i, true);
	}

	for (;;) {
		size_t got = fx_pick_exact(fx, PICK_BATCH, round);

		if (got == 0) {
			if (!fx->nlive)
				break;
			/* only pins hold the rest: let them go */
			for (unsigned i = 0; i < NITEMS; i++)
				fx_pin(fx, i, false);
			continue;
		}
		/* the core evicts the batch in order, one at a time */
		for (size_t k = 0; k < got; k++) {
			unsigned id = node_item(fx, fx->out[k])->id;

			order[id] = gone++;
			fx_remove(fx, id);
		}
		/* hold churn meanwhile */
		if (fx->nlive && round % 3 == 0) {
			unsigned any = fx->live[rnd_below(fx, fx->nlive)];

			fx_pin(fx, any, !fx->items[any].pinned);
		}
		if (fx->nlive && round % 5 == 0)
			fx_access(fx, fx->live[rnd_below(fx, fx->nlive)]);
		round++;
	}
	assert_int_equal(fx->nlive, 0);
	assert_int_equal(gone, NITEMS);
	for (unsigned i = 0; i < NITEMS; i++) {
		if (parent[i] >= 0 && order[i] > order[parent[i]])
			fail_msg("%u evicted after its parent %d", i, parent[i]);
	}
}

/* pick()'s count contract under heavy hold churn on a tree. */
static void test_stress_hold(void **state)
{
	struct fixture *fx = *state;

	for (size_t op = 0; op < STRESS_OPS; op++)
		tree_step(fx, op, 25);
}

/*
 * A node's history survives a move to another instance of the same policy
 * and back: freq is never forgotten, score keeps its value (H2O's decays
 * only with its own clock, and no clock ticks between remove and insert).
 */
static void test_carried(void **state)
{
	struct fixture *a = fx_open(cur_ops, NULL);
	struct fixture *b = fx_open(cur_ops, NULL);
	uint32_t freq;
	double score;

	fx_insert_n(a, 16);
	for (unsigned k = 0; k < 5; k++)
		fx_access(a, 3);
	fx_score(a, 3, 0.75f);
	fx_score(a, 3, 0.25f);
	for (unsigned k = 0; k < 40; k++)	/* let a's clock run */
		fx_access(a, 7);
	fx_remove(a, 3);
	freq = a->items[3].node.freq;
	score = a->items[3].node.score;
	if (cur_ops->on_score)
		assert_true(score > 0 && score <= 1.0);

	/* into b (another tier), out again at once */
	fx_insert_n(b, 8);
	carry(b, 20, a, 3);
	fx_insert_as(b, 20, true);
	fx_remove(b, 20);
	assert_true(b->items[20].node.freq >= freq);
	assert_close(b->items[20].node.score, score, 1e-12);

	/* and back into a, whose clock is elsewhere */
	carry(a, 3, b, 20);
	fx_insert_as(a, 3, true);
	fx_remove(a, 3);
	assert_true(a->items[3].node.freq >= freq);
	assert_close(a->items[3].node.score, score, 1e-12);

	/* a new chunk starts from nothing again */
	fx_insert(a, 3);
	fx_remove(a, 3);
	assert_true(a->items[3].node.freq <= 1);
	assert_true(a->items[3].node.score == 0);

	fx_close(a);
	fx_close(b);
}

/*
 * Switching policy at run time (kv_store_set_policy()) from this policy to
 * every registered one and back: afterwards pick() offers all evictable
 * nodes and only those, under further churn too.
 */
static void test_switch(void **state)
{
	const struct kv_evict_ops *const *list;
	size_t n = kv_evict_list(&list);

	for (size_t i = 0; i < n; i++) {
		struct fixture *fx = fx_open(cur_ops, NULL);
		size_t op = 0;

		for (; op < 3000; op++)
			tree_step(fx, op, 10);
		fx_switch(fx, list[i]);
		fx_pick_exact(fx, 2 * NITEMS, op);
		fx_pick_exact(fx, 1, op);
		for (; op < 6000; op++)
			tree_step(fx, op, 10);
		fx_switch(fx, cur_ops);
		fx_pick_exact(fx, 2 * NITEMS, op);
		for (; op < 9000; op++)
			tree_step(fx, op, 10);

		/* everything still drains */
		for (unsigned k = 0; k < NITEMS; k++)
			fx_pin(fx, k, false);
		while (fx->nlive) {
			assert_int_equal(fx_pick_exact(fx, 1, op), 1);
			fx_remove(fx, out_id(fx, 0));
		}
		fx_close(fx);
	}
}

/* ---- LRU order ---------------------------------------------------------- */

static void assert_order(struct fixture *fx, size_t max, const unsigned *ids,
			 size_t n)
{
	assert_int_equal(fx_pick(fx, max), n);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(out_id(fx, k), ids[k]);
}

static void test_lru_insertion_order(void **state)
{
	struct fixture *fx = *state;
	unsigned ids[SMALL];

	/* insert in a scrambled order so that id order cannot pass by luck */
	for (unsigned k = 0; k < SMALL; k++) {
		ids[k] = (k * 37 + 11) % SMALL;
		fx_insert(fx, ids[k]);
	}
	assert_order(fx, SMALL, ids, SMALL);
	assert_order(fx, 3, ids, 3);
	assert_order(fx, SMALL + 4, ids, SMALL);
}

static void test_lru_access_moves_to_mru(void **state)
{
	struct fixture *fx = *state;
	static const unsigned after_2[] = { 0, 1, 3, 4, 5, 2 };
	static const unsigned after_0[] = { 1, 3, 4, 5, 2, 0 };
	static const unsigned after_0_again[] = { 1, 3, 4, 5, 2, 0 };
	static const unsigned after_1_4[] = { 3, 5, 2, 0, 1, 4 };

	fx_insert_n(fx, 6);
	fx_access(fx, 2);
	assert_order(fx, 6, after_2, 6);
	fx_access(fx, 0);		/* the LRU end itself */
	assert_order(fx, 6, after_0, 6);
	fx_access(fx, 0);		/* already MRU: no change */
	assert_order(fx, 6, after_0_again, 6);
	fx_access(fx, 1);
	fx_access(fx, 4);
	assert_order(fx, 6, after_1_4, 6);
	assert_order(fx, 2, after_1_4, 2);
}

static void test_lru_pick_skips_pinned(void **state)
{
	struct fixture *fx = *state;
	static const unsigned want[] = { 1, 2, 4, 6, 8, 9 };
	static const unsigned want_after[] = { 0, 1, 2, 4, 9 };

	fx_insert_n(fx, 10);
	fx_pin(fx, 0, true);
	fx_pin(fx, 3, true);
	fx_pin(fx, 5, true);
	fx_pin(fx, 7, true);
	assert_order(fx, 10, want, 6);
	assert_order(fx, 2, want, 2);
	assert_order(fx, 4, want, 4);

	/* unpinning brings a node back at its old place, not the MRU end */
	fx_pin(fx, 0, false);
	fx_pin(fx, 6, true);
	fx_pin(fx, 8, true);
	assert_order(fx, 10, want_after, 5);
}

static void test_lru_remove_keeps_order(void **state)
{
	struct fixture *fx = *state;
	static const unsigned want[] = { 1, 2, 4, 5, 6 };
	static const unsigned want_back[] = { 1, 2, 4, 5, 6, 0, 3 };

	fx_insert_n(fx, 8);
	fx_remove(fx, 0);		/* LRU end */
	fx_remove(fx, 3);		/* middle */
	fx_remove(fx, 7);		/* MRU end */
	assert_order(fx, 8, want, 5);

	/* reinserted nodes count as just used */
	fx_insert(fx, 0);
	fx_insert(fx, 3);
	assert_order(fx, 8, want_back, 7);
}

/* Random ops against a model: the order is by last insert or access. */
static void test_lru_model(void **state)
{
	struct fixture *fx = *state;
	struct item *model[NITEMS];

	for (size_t op = 0; op < 20000; op++) {
		unsigned r = (unsigned)rnd_below(fx, 100);
		unsigned i = (unsigned)rnd_below(fx, 128);
		size_t n = 0;
		size_t max;
		size_t got;

		if (r < 35) {
			if (!fx->items[i].live)
				fx_insert(fx, i);
		} else if (r < 55) {
			if (fx->items[i].live)
				fx_remove(fx, i);
		} else if (r < 80) {
			if (fx->items[i].live)
				fx_access(fx, i);
		} else if (r < 90) {
			fx_pin(fx, i, !fx->items[i].pinned);
		} else {
			for (size_t k = 0; k < fx->nlive; k++) {
				struct item *it = &fx->items[fx->live[k]];

				if (!it->pinned)
					model[n++] = it;
			}
			qsort(model, n, sizeof(model[0]), cmp_stamp);
			max = rnd_below(fx, n + 4);
			if (max < n)
				n = max;
			got = fx_pick(fx, max);
			if (got != n)
				fail_msg("op %zu: pick(%zu) gave %zu, want %zu",
					 op, max, got, n);
			for (size_t k = 0; k < n; k++) {
				if (fx->out[k] == &model[k]->node)
					continue;
				fail_msg("op %zu: pick[%zu] is %u, want %u", op,
					 k, out_id(fx, k), model[k]->id);
			}
		}
	}
}

/* ---- GDSF order --------------------------------------------------------- */

/* Insert item i with cost c and size s (a new chunk). */
static void fx_put(struct fixture *fx, unsigned i, double c, uint64_t s)
{
	fx->items[i].cost = c;
	fx->items[i].size = s;
	fx_insert(fx, i);
}

/* Equal F and C: the larger node is worth less per byte and goes first. */
static void test_gdsf_size(void **state)
{
	struct fixture *fx = *state;

	for (unsigned k = 0; k < 8; k++) {
		unsigned i = (k * 5 + 3) % 8;	/* scrambled */

		fx_put(fx, i, 1.0, UNIT * (1 + i));
	}
	for (unsigned k = 0; k < 8; k++)
		assert_int_equal(fx_evict(fx), 7 - k);
}

/* A cheap node used often against an expensive one used once. */
static void test_gdsf_tradeoff(void **state)
{
	struct fixture *fx = *state;

	/* F*C/S: 20 * 1 vs 1 * 10: the frequent cheap node stays */
	fx_put(fx, 0, 1.0, UNIT);
	fx_put(fx, 1, 10.0, UNIT);
	for (unsigned k = 0; k < 19; k++)
		fx_access(fx, 0);
	assert_int_equal(fx_victim(fx), 1);
	fx_remove(fx, 0);
	fx_remove(fx, 1);

	/* 6 * 1 vs 1 * 10: now the expensive one stays */
	fx_put(fx, 2, 1.0, UNIT);
	fx_put(fx, 3, 10.0, UNIT);
	for (unsigned k = 0; k < 5; k++)
		fx_access(fx, 2);
	assert_int_equal(fx_victim(fx), 2);
	fx_remove(fx, 2);
	fx_remove(fx, 3);

	/* cost per byte: 4 over 2 units beats 1 over 1 unit */
	fx_put(fx, 4, 4.0, 2 * UNIT);
	fx_put(fx, 5, 1.0, UNIT);
	assert_int_equal(fx_victim(fx), 5);
	/* and uses tip it back: 3 * 1 over 1 unit beats 2 */
	fx_access(fx, 5);
	fx_access(fx, 5);
	assert_int_equal(fx_victim(fx), 4);
}

/* L rises to each victim's H, so later nodes outrank stale ones. */
static void test_gdsf_clock(void **state)
{
	struct fixture *fx = *state;
	struct fixture *ctl = fx_open(&kv_evict_gdsf, NULL);

	/* without an eviction, the cheaper newcomer would go first */
	fx_put(ctl, 1, 3.0, UNIT);
	fx_put(ctl, 2, 1.0, UNIT);
	assert_int_equal(fx_victim(ctl), 2);
	fx_close(ctl);

	fx_put(fx, 1, 3.0, UNIT);	/* B: H = 3 units */
	fx_put(fx, 0, 2.5, UNIT);	/* A: H = 2.5 */
	assert_int_equal(fx_evict(fx), 0);	/* L = 2.5 */
	fx_put(fx, 2, 1.0, UNIT);	/* C: H = 3.5 > B's 3 */
	assert_int_equal(fx_victim(fx), 1);

	/* a node deleted from the middle (not the victim) ages nobody */
	fx_remove(fx, 2);		/* H 3.5: L must stay 2.5 */
	fx_put(fx, 3, 0.4, UNIT);	/* G: H = 2.9 < B's 3 */
	assert_int_equal(fx_victim(fx), 3);

	/* an access re-prices at the current L: B = 2.5 + 2 * 3 */
	fx_access(fx, 1);
	fx_put(fx, 4, 5.0, UNIT);	/* H = 7.5 < 8.5 */
	assert_int_equal(fx_evict(fx), 3);	/* L = 2.9 */
	assert_int_equal(fx_evict(fx), 4);
	assert_int_equal(fx_evict(fx), 1);

	/* released nodes come back with a fresh H: L + F*C/S */
	fx_put(fx, 5, 1.0, UNIT);	/* H = 8.5 + 1 */
	fx_put(fx, 6, 2.0, UNIT);	/* H = 10.5 */
	fx_pin(fx, 6, true);
	assert_int_equal(fx_evict(fx), 5);	/* L = 9.5 */
	fx_put(fx, 7, 1.5, UNIT);	/* H = 11 */
	fx_pin(fx, 6, false);		/* H = 9.5 + 2 = 11.5, not 10.5 */
	assert_int_equal(fx_victim(fx), 7);
}

/* A node that brings many uses outranks an equal fresh one. */
static void test_gdsf_carried_freq(void **state)
{
	struct fixture *fx = *state;

	fx->items[0].node.freq = 10;
	fx->items[0].cost = 1.0;
	fx->items[0].size = UNIT;
	fx_insert_as(fx, 0, true);
	fx_put(fx, 1, 1.0, UNIT);
	assert_int_equal(fx_victim(fx), 1);
	fx_remove(fx, 0);
	assert_int_equal(fx->items[0].node.freq, 10);

	/* and uses in this tier add to it */
	fx_insert_as(fx, 0, true);
	fx_access(fx, 0);
	fx_remove(fx, 0);
	assert_int_equal(fx->items[0].node.freq, 11);
}

/* Drain fx, writing the victims' ids to ids[]; returns how many. */
static size_t drain(struct fixture *fx, unsigned *ids)
{
	size_t n = 0;

	while (fx->nlive)
		ids[n++] = fx_evict(fx);
	return n;
}

/*
 * A huge L is shifted back to 0: the order of the heap survives the shift,
 * and nodes priced after it keep their full precision.
 */
static void test_gdsf_rebase(void **state)
{
	struct fixture *ref = *state;
	struct fixture *fx = fx_open(&kv_evict_gdsf, NULL);
	unsigned want[32];
	unsigned got[32];
	double cost[32];
	unsigned k;

	for (k = 0; k < 32; k++) {	/* distinct, scattered worths */
		unsigned j;

		cost[k] = 1.0 + (double)rnd_below(ref, 1u << 16) / (1u << 10);
		for (j = 0; j < k && cost[j] != cost[k]; j++)
			;
		if (j < k)
			k--;		/* a repeat: draw again */
	}
	for (k = 0; k < 32; k++)
		fx_put(ref, k, cost[k], UNIT);
	assert_int_equal(drain(ref, want), 32);

	/* L = 2^20 with 32 nodes priced just above it, then a shift */
	for (k = 0; k < 32; k++) {
		fx_put(fx, k, cost[k], UNIT);
		fx_pin(fx, k, true);
	}
	fx_put(fx, 100, 0x1p32, UNIT);	/* worth 2^20 */
	assert_int_equal(fx_evict(fx), 100);
	for (k = 0; k < 32; k++)
		fx_pin(fx, k, false);	/* H = 2^20 + worth */
	for (k = 0; k < 1000; k++) {
		/* tiny nodes pull the mean worth down until L dwarfs it */
		fx_put(fx, 101, 1e-30, UNIT);
		assert_int_equal(fx_evict(fx), 101);
	}
	assert_int_equal(drain(fx, got), 32);
	assert_memory_equal(got, want, sizeof(want));

	/* L = 2^187: without the shift every H would be the same double */
	for (k = 0; k < 32; k++) {
		fx_put(fx, k, cost[k], UNIT);
		fx_pin(fx, k, true);
	}
	fx_put(fx, 100, 1e60, UNIT);
	assert_int_equal(fx_evict(fx), 100);
	for (k = 0; k < 32; k++)
		fx_pin(fx, k, false);
	assert_int_equal(drain(fx, got), 32);
	assert_memory_equal(got, want, sizeof(want));
	fx_close(fx);
}

/*
 * Random ops against a model of H and L: the victim always has the least
 * H among evictable nodes. Costs stay in one narrow band, so L never gets
 * shifted and the model's H values are the policy's, bit for bit.
 */
static void test_gdsf_model(void **state)
{
	struct fixture *fx = *state;
	double h[NITEMS];
	double L = 0;

	for (unsigned i = 0; i < NITEMS; i++)
		fx->items[i].cost = 1.0 + (double)rnd_below(fx, 1000) / 100;

	for (size_t op = 0; op < 30000; op++) {
		unsigned r = (unsigned)rnd_below(fx, 100);
		unsigned i = (unsigned)rnd_below(fx, 200);
		struct item *it = &fx->items[i];
		double min = INFINITY;
		bool was;

		if (r < 30) {
			if (it->live)
				continue;
			fx_insert(fx, i);
			h[i] = L + (double)it->node.freq * it->cost / it->size;
		} else if (r < 40) {
			if (!it->live)
				continue;
			for (size_t k = 0; k < fx->nlive; k++) {
				struct item *x = &fx->items[fx->live[k]];

				if (!item_held(x) && h[x->id] < min)
					min = h[x->id];
			}
			/* a delete, not an eviction: spare the heap top, whose
			 * removal moves L (and a tie would leave it unclear) */
			if (item_held(it) || h[i] > min)
				fx_remove(fx, i);
		} else if (r < 65) {
			if (!it->live)
				continue;
			fx_access(fx, i);
			h[i] = L + (double)it->node.freq * it->cost / it->size;
		} else if (r < 75) {
			was = item_held(it);
			fx_pin(fx, i, !it->pinned);
			if (it->live && was && !item_held(it))
				h[i] = L + (double)it->node.freq * it->cost /
					   it->size;
		} else {
			unsigned v;

			for (size_t k = 0; k < fx->nlive; k++) {
				struct item *x = &fx->items[fx->live[k]];

				if (!item_held(x) && h[x->id] < min)
					min = h[x->id];
			}
			if (fx_pick_exact(fx, 1, op) == 0)
				continue;
			v = out_id(fx, 0);
			if (h[v] != min)
				fail_msg("op %zu: victim %u has H %.17g, least %.17g",
					 op, v, h[v], min);
			fx_remove(fx, v);
			if (h[v] > L)
				L = h[v];
		}
	}
}

/* ---- H2O order ---------------------------------------------------------- */

/* An h2o fixture whose recent segment holds `recent` items of UNIT bytes. */
static struct fixture *h2o_open(unsigned recent, double half_life)
{
	struct kv_evict_conf conf = {
		.capacity = (uint64_t)NITEMS * UNIT,
		.recent_fraction = (double)recent / NITEMS,
		.half_life = half_life,
	};
	struct fixture *fx = fx_open(&kv_evict_h2o, &conf);

	for (unsigned i = 0; i < NITEMS; i++)
		fx->items[i].size = UNIT;
	return fx;
}

static void test_h2o_bad_conf(void **state)
{
	static const double bad_frac[] = { -0.1, 1.5, NAN };
	static const double bad_half[] = { -1, 0.5, NAN, INFINITY };
	struct kv_evict_conf conf = {
		.capacity = 1 << 20,
		.evictable = item_evictable,
	};
	void *st = NULL;

	for (size_t k = 0; k < KV_ARRAY_SIZE(bad_frac); k++) {
		conf.recent_fraction = bad_frac[k];
		assert_int_equal(kv_evict_h2o.init(&st, &conf), -EINVAL);
	}
	conf.recent_fraction = 1;
	for (size_t k = 0; k < KV_ARRAY_SIZE(bad_half); k++) {
		conf.half_life = bad_half[k];
		assert_int_equal(kv_evict_h2o.init(&st, &conf), -EINVAL);
	}
	assert_null(st);
	conf.half_life = 1;
	assert_int_equal(kv_evict_h2o.init(&st, &conf), 0);
	kv_evict_h2o.fini(st);
}

/*
 * With no scores, H2O's victim is LRU's: the same random ops (inserts,
 * removes, accesses, pin flips) through both, for several segment sizes.
 */
static void test_h2o_is_lru_unscored(void **state)
{
	static const double fracs[] = { 0.5, 0.05, 1.0, 1e-9 };

	for (size_t f = 0; f < KV_ARRAY_SIZE(fracs); f++) {
		struct kv_evict_conf conf = {
			.capacity = (uint64_t)NITEMS * UNIT,
			.recent_fraction = fracs[f],
		};
		struct fixture *l = fx_open(&kv_evict_lru, &conf);
		struct fixture *h = fx_open(&kv_evict_h2o, &conf);
		size_t victims = 0;

		for (size_t op = 0; op < 30000; op++) {
			unsigned r = (unsigned)rnd_below(l, 100);
			unsigned i = (unsigned)rnd_below(l, 160);
			size_t n;

			if (r < 30) {
				if (l->items[i].live)
					continue;
				fx_insert(l, i);
				fx_insert(h, i);
			} else if (r < 40) {
				if (!l->items[i].live)
					continue;
				fx_remove(l, i);
				fx_remove(h, i);
			} else if (r < 65) {
				if (!l->items[i].live)
					continue;
				fx_access(l, i);
				fx_access(h, i);
			} else if (r < 78) {
				fx_pin(l, i, !l->items[i].pinned);
				fx_pin(h, i, !h->items[i].pinned);
			} else {
				n = fx_pick_exact(l, 1, op);
				assert_int_equal(fx_pick_exact(h, 1, op), n);
				if (n == 0)
					continue;
				if (fx_victim(h) != fx_victim(l))
					fail_msg("fraction %g op %zu: h2o's victim %d, lru's %d",
						 fracs[f], op, fx_victim(h),
						 fx_victim(l));
				victims++;
				if (rnd_below(l, 2)) {
					fx_remove(h, out_id(l, 0));
					fx_remove(l, out_id(l, 0));
				}
			}
		}
		assert_true(victims > 1000);
		fx_close(l);
		fx_close(h);
	}
}

/* Tick h2o's clock n times without moving anyone but a filler item. */
static void tick(struct fixture *fx, unsigned filler, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		fx_access(fx, filler);
}

/*
 * Scores decay: after k half-lives a score counts 2^-k, so a big score
 * long ago can rank below a small one now.
 */
static void test_h2o_decay(void **state)
{
	/* one item of segment: the filler, always MRU */
	struct fixture *fx = h2o_open(1, 100);
	static const unsigned want[] = { 5, 7, 8, 0, 1, 6, 2, 3, 4 };
	uint64_t t[10];
	uint64_t now;

	for (unsigned i = 0; i < 9; i++)
		fx_insert(fx, i);
	fx_insert(fx, 9);		/* the filler */
	for (unsigned j = 0; j < 5; j++) {
		fx_score(fx, j, 1.0f);
		t[j] = fx->clock;
		tick(fx, 9, 100);
	}
	fx_score(fx, 6, 0.1f);		/* 0.1 now beats 1.0 four half-lives ago */
	t[6] = fx->clock;
	now = fx->clock;

	/* unscored 5, 7, 8 by age; 0 (1/32), 1 (1/16), 6 (0.1), 2 (1/8), 3, 4 */
	for (size_t k = 0; k < KV_ARRAY_SIZE(want); k++) {
		unsigned v = fx_evict(fx);
		double s = fx->items[v].node.score;

		if (v != want[k])
			fail_msg("victim %zu is %u, want %u", k, v, want[k]);
		if (v == 6)
			assert_close(s, 0.1f, 1e-9);
		else if (v < 5)
			assert_close(s, pow(2, -(double)(now - t[v]) / 100), 1e-9);
		else
			assert_true(s == 0);
	}
	assert_close(pow(2, -(double)(now - t[0]) / 100), 1.0 / 32, 1e-12);
	fx_close(fx);
}

/*
 * A tiny half-life forces re-bases (every ~721 ticks at 1): the victim
 * order and the decayed values survive them. Stamps run against the score
 * order, so scores lost to a re-base would show.
 */
static void test_h2o_rebase(void **state)
{
	struct fixture *fx = h2o_open(1, 1);
	uint64_t t[10];
	uint64_t now;

	for (unsigned i = 10; i-- > 0;)
		fx_insert(fx, i);
	fx_insert(fx, 10);		/* the filler */
	tick(fx, 10, 700);
	for (unsigned j = 0; j < 10; j++) {
		fx_score(fx, j, 1.0f);	/* straddles the re-base at ~722 */
		t[j] = fx->clock;
		tick(fx, 10, 10);
	}
	tick(fx, 10, 90);
	now = fx->clock;
	/* lambda * (t - landmark) passes ~500 at t ~ 722: scores on both sides */
	assert_true(t[0] < 722 && t[9] > 722);

	for (unsigned j = 0; j < 10; j++) {
		assert_int_equal(fx_evict(fx), j);
		assert_close(fx->items[j].node.score,
			     pow(2, -(double)(now - t[j])), 1e-9);
	}
	assert_int_equal(fx_evict(fx), 10);

	/* many re-bases over a long run: a fresh score still counts fully */
	for (unsigned i = 0; i < 4; i++)
		fx_insert(fx, i);
	fx_insert(fx, 10);
	tick(fx, 10, 5000);
	fx_score(fx, 2, 0.5f);
	fx_score(fx, 1, 0.25f);
	assert_int_equal(fx_evict(fx), 0);
	assert_int_equal(fx_evict(fx), 3);
	assert_int_equal(fx_evict(fx), 1);
	assert_close(fx->items[1].node.score, 0.25, 1e-12);
	assert_int_equal(fx_evict(fx), 2);
	assert_close(fx->items[2].node.score, 0.5, 1e-12);
	fx_close(fx);

	/* scores in the segment and on held nodes outside it are re-based
	 * too: a segment of 4, item 1 in it, item 0 held outside */
	fx = h2o_open(4, 1);
	fx_insert(fx, 0);
	fx_score(fx, 0, 1.0f);
	t[0] = fx->clock;
	fx_pin(fx, 0, true);
	for (unsigned i = 1; i < 5; i++)
		fx_insert(fx, i);	/* 0 leaves the segment, held */
	fx_score(fx, 1, 1.0f);
	t[1] = fx->clock;
	tick(fx, 4, 800);		/* 1 stays in the segment */
	now = fx->clock;
	fx_remove(fx, 1);
	assert_close(fx->items[1].node.score, pow(2, -(double)(now - t[1])),
		     1e-9);
	fx_pin(fx, 0, false);
	assert_int_equal(fx_evict(fx), 0);
	assert_close(fx->items[0].node.score, pow(2, -(double)(now - t[0])),
		     1e-9);
	fx_close(fx);

	/* scores that decay past what a double holds fall back to LRU
	 * order, like no score at all, and the heap stays a heap */
	fx = h2o_open(1, 1);
	fx_insert(fx, 0);
	fx_insert(fx, 1);
	fx_insert(fx, 2);		/* the filler */
	fx_score(fx, 1, 1.0f);		/* 1 ranks below 0 ... */
	tick(fx, 2, 10);
	fx_score(fx, 0, 1.0f);
	assert_int_equal(fx_victim(fx), 1);
	tick(fx, 2, 2000);		/* ... until both are gone */
	assert_int_equal(fx_evict(fx), 0);
	assert_int_equal(fx_evict(fx), 1);
	fx_close(fx);
}

/*
 * The recent segment protects what was just used, scored or not; outside
 * it, heavy hitters outlive newer unscored nodes.
 */
static void test_h2o_recent_protects(void **state)
{
	struct fixture *fx = h2o_open(4, 0);

	for (unsigned i = 4; i < 8; i++)	/* heavy hitters, oldest */
		fx_insert(fx, i);
	for (unsigned i = 4; i < 8; i++)
		fx_score(fx, i, 0.9f - 0.1f * (float)(i - 4));
	for (unsigned i = 0; i < 4; i++)	/* unscored, newer */
		fx_insert(fx, i);
	for (unsigned i = 8; i < 12; i++)	/* the segment: unscored */
		fx_insert(fx, i);

	/* pick(max) lists the segment last, LRU end first */
	assert_int_equal(fx_pick(fx, 12), 12);
	for (unsigned k = 8; k < 12; k++)
		assert_int_equal(out_id(fx, k), k);

	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(fx_evict(fx), k);
	/* score 0 in the segment outlives the hitters: least score first */
	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(fx_evict(fx), 7 - k);

	/* only the segment is left: LRU order there, skipping held nodes */
	fx_pin(fx, 8, true);
	assert_int_equal(fx_evict(fx), 9);
	fx_pin(fx, 8, false);
	assert_int_equal(fx_victim(fx), 8);

	/* a use brings a node into the segment and pushes the LRU end out */
	fx_insert(fx, 0);		/* segment 8 10 11 0 */
	fx_insert(fx, 1);		/* 8 leaves: 10 11 0 1 */
	fx_score(fx, 8, 0.5f);
	assert_int_equal(fx_victim(fx), 8);	/* the heap's only node */
	fx_access(fx, 8);		/* 10 leaves: 11 0 1 8 */
	assert_int_equal(fx_victim(fx), 10);

	/* a segment node pinned as it leaves is parked, then comes back */
	fx_pin(fx, 11, true);
	fx_insert(fx, 2);		/* 11 leaves, held */
	assert_int_equal(fx_victim(fx), 10);
	fx_remove(fx, 10);
	assert_int_equal(fx_victim(fx), 0);	/* segment: 0 1 8 2 */
	fx_pin(fx, 11, false);
	assert_int_equal(fx_victim(fx), 11);
	fx_close(fx);
}

/*
 * A chunk's history across policies: h2o -> lru -> gdsf -> h2o keeps freq
 * and the score, and each policy ranks with what it brings.
 */
static void test_carry_chain(void **state)
{
	struct fixture *h = h2o_open(1, 1e12);
	struct fixture *l = fx_open(&kv_evict_lru, NULL);
	struct fixture *g = fx_open(&kv_evict_gdsf, NULL);
	struct fixture *h2 = h2o_open(1, 1e12);

	fx_insert(h, 0);
	for (unsigned k = 0; k < 4; k++)
		fx_access(h, 0);
	fx_score(h, 0, 0.5f);
	fx_remove(h, 0);
	assert_int_equal(h->items[0].node.freq, 5);
	assert_close(h->items[0].node.score, 0.5, 1e-9);

	/* LRU counts uses (the history travels on) but does not decay */
	carry(l, 0, h, 0);
	fx_insert_as(l, 0, true);
	fx_access(l, 0);
	fx_remove(l, 0);
	assert_int_equal(l->items[0].node.freq, 6);
	assert_close(l->items[0].node.score, 0.5, 1e-9);

	/* GDSF: six uses outrank a fresh node of equal cost and size */
	carry(g, 0, l, 0);
	g->items[0].cost = 1.0;
	g->items[0].size = UNIT;
	fx_insert_as(g, 0, true);
	fx_put(g, 1, 1.0, UNIT);
	assert_int_equal(fx_victim(g), 1);
	fx_access(g, 0);
	fx_remove(g, 0);
	assert_int_equal(g->items[0].node.freq, 7);
	assert_close(g->items[0].node.score, 0.5, 1e-9);

	/* H2O again: the carried score outranks a fresh node outside the
	 * segment, although the fresh one is newer */
	carry(h2, 0, g, 0);
	fx_insert_as(h2, 0, true);
	fx_insert(h2, 1);
	fx_insert(h2, 2);		/* the segment: 0 and 1 are outside */
	assert_int_equal(fx_victim(h2), 1);
	fx_remove(h2, 0);
	assert_int_equal(h2->items[0].node.freq, 7);
	assert_close(h2->items[0].node.score, 0.5, 1e-9);

	fx_close(h);
	fx_close(l);
	fx_close(g);
	fx_close(h2);
}

/* ------------------------------------------------------------------------ */

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

static const struct CMUnitTest registry_tests[] = {
	cmocka_unit_test(test_registry),
	cmocka_unit_test(test_carry_chain),
};

static const struct CMUnitTest generic_tests[] = {
	cmocka_unit_test(test_init_rejects_bad_conf),
	FX_TEST(test_pick_returns_all),
	FX_TEST(test_pick_skips_pinned),
	FX_TEST(test_all_pinned),
	FX_TEST(test_removed_not_returned),
	FX_TEST(test_pick_is_pure),
	FX_TEST(test_stress),
	FX_TEST(test_leaf_first),
	FX_TEST(test_stress_hold),
	cmocka_unit_test(test_carried),
	cmocka_unit_test(test_switch),
};

static const struct CMUnitTest lru_tests[] = {
	FX_TEST(test_lru_insertion_order),
	FX_TEST(test_lru_access_moves_to_mru),
	FX_TEST(test_lru_pick_skips_pinned),
	FX_TEST(test_lru_remove_keeps_order),
	FX_TEST(test_lru_model),
};

static const struct CMUnitTest gdsf_tests[] = {
	FX_TEST(test_gdsf_size),
	FX_TEST(test_gdsf_tradeoff),
	FX_TEST(test_gdsf_clock),
	FX_TEST(test_gdsf_carried_freq),
	FX_TEST(test_gdsf_rebase),
	FX_TEST(test_gdsf_model),
};

static const struct CMUnitTest h2o_tests[] = {
	cmocka_unit_test(test_h2o_bad_conf),
	cmocka_unit_test(test_h2o_is_lru_unscored),
	cmocka_unit_test(test_h2o_decay),
	cmocka_unit_test(test_h2o_rebase),
	cmocka_unit_test(test_h2o_recent_protects),
};

int main(void)
{
	const struct kv_evict_ops *const *list;
	size_t n = kv_evict_list(&list);
	char name[64];
	int failed = 0;

	failed += cmocka_run_group_tests_name("registry", registry_tests,
					      NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		cur_ops = list[i];
		snprintf(name, sizeof(name), "policy %s", cur_ops->name);
		failed += cmocka_run_group_tests_name(name, generic_tests,
						      NULL, NULL);
	}

	cur_ops = &kv_evict_lru;
	failed += cmocka_run_group_tests_name("lru order", lru_tests,
					      NULL, NULL);
	cur_ops = &kv_evict_gdsf;
	failed += cmocka_run_group_tests_name("gdsf order", gdsf_tests,
					      NULL, NULL);
	cur_ops = &kv_evict_h2o;
	failed += cmocka_run_group_tests_name("h2o order", h2o_tests,
					      NULL, NULL);
	return failed ? 1 : 0;
}
