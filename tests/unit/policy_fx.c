/*
 * policy_fx.c - the fixture of the eviction policy tests (test_policies.c,
 * test_policy_order.c).
 *
 * Nodes live in struct item, which embeds the kv_evict_node the way a
 * chunk does in the daemon; the evictable() callback finds the item with
 * kv_container_of() and says no for pinned ones and for ones with live
 * children (the store's leaf-first rule). Like the store, the fixture
 * calls on_hold() whenever that answer changes for a live item: every pin
 * flip goes through fx_pin() and every children count through fx_link() /
 * fx_remove(). pick() is checked against a shadow of the policy's
 * membership kept here (item.live, fx->live[]).
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
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "evict/policy.h"
#include "lib/util.h"
#include "tests/unit/policy_fx.h"

/* The policy the current group runs against; set by main(). */
const struct kv_evict_ops *cur_ops;

static uint64_t rnd(struct fixture *fx)
{
	uint64_t x = fx->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fx->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

size_t rnd_below(struct fixture *fx, size_t n)
{
	return n ? (size_t)(rnd(fx) % n) : 0;
}

bool item_held(const struct item *it)
{
	return it->pinned || it->children;
}

bool item_evictable(const struct kv_evict_node *n, void *arg)
{
	struct fixture *fx = arg;
	const struct item *it = kv_container_of(n, struct item, node);

	assert_int_equal(fx->magic, FX_MAGIC);
	/* A policy must only ask about its own members. */
	assert_true(it->live);
	return !item_held(it);
}

void assert_close(double got, double want, double rel)
{
	if (fabs(got - want) <= rel * fabs(want))
		return;
	fail_msg("got %.17g, want %.17g (relative error %g allowed)",
		 got, want, rel);
}

/* A fixture for ops; conf may be NULL for the default one. */
struct fixture *fx_open(const struct kv_evict_ops *ops,
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

void fx_close(struct fixture *fx)
{
	fx->ops->fini(fx->state);
	free(fx);
}

int fx_setup(void **state)
{
	*state = fx_open(cur_ops, NULL);
	return 0;
}

int fx_teardown(void **state)
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

void fx_pin(struct fixture *fx, unsigned i, bool pinned)
{
	struct item *it = &fx->items[i];
	bool was = item_held(it);

	it->pinned = pinned;
	fx_hold_changed(fx, it, was);
}

/* Make live item p the parent of item c, which is not live yet. */
void fx_link(struct fixture *fx, unsigned c, unsigned p)
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
void fx_insert_as(struct fixture *fx, unsigned i, bool carry)
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

void fx_insert(struct fixture *fx, unsigned i)
{
	fx_insert_as(fx, i, false);
}

void fx_access(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];

	assert_true(it->live);
	it->stamp = ++fx->clock;
	fx->ops->on_access(fx->state, &it->node);
}

void fx_score(struct fixture *fx, unsigned i, float score)
{
	assert_true(fx->items[i].live);
	if (fx->ops->on_score)
		fx->ops->on_score(fx->state, &fx->items[i].node, score);
}

/* Remove item i (evicted or deleted), as chunk_drop() does. */
void fx_remove(struct fixture *fx, unsigned i)
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

void fx_insert_n(struct fixture *fx, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fx_insert(fx, i);
}

size_t fx_count_evictable(const struct fixture *fx)
{
	size_t cnt = 0;

	for (size_t k = 0; k < fx->nlive; k++)
		cnt += !item_held(&fx->items[fx->live[k]]);
	return cnt;
}

/* Map a node pointer back to our item, failing if it is not one of ours. */
struct item *node_item(struct fixture *fx, struct kv_evict_node *n)
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
size_t fx_pick_into(struct fixture *fx, struct kv_evict_node **out,
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

size_t fx_pick(struct fixture *fx, size_t max)
{
	return fx_pick_into(fx, fx->out, max);
}

/* pick(max) must return exactly min(max, evictable nodes). */
size_t fx_pick_exact(struct fixture *fx, size_t max, size_t op)
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

unsigned out_id(const struct fixture *fx, size_t k)
{
	return kv_container_of(fx->out[k], struct item, node)->id;
}

/* The policy's victim, or -1 if it has none. */
int fx_victim(struct fixture *fx)
{
	return fx_pick(fx, 1) ? (int)out_id(fx, 0) : -1;
}

/* Evict the policy's victim as the core does; return its id. */
unsigned fx_evict(struct fixture *fx)
{
	int v = fx_victim(fx);

	assert_true(v >= 0);
	fx_remove(fx, (unsigned)v);
	return (unsigned)v;
}

/* Copy item i's history from one fixture to item j of another. */
void carry(struct fixture *to, unsigned j, const struct fixture *from,
	   unsigned i)
{
	assert_false(from->items[i].live);
	to->items[j].node.freq = from->items[i].node.freq;
	to->items[j].node.score = from->items[i].node.score;
}

int cmp_stamp(const void *a, const void *b)
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
void fx_switch(struct fixture *fx, const struct kv_evict_ops *ops)
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
void tree_step(struct fixture *fx, size_t op, unsigned pins)
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

/* Insert item i with cost c and size s (a new chunk). */
void fx_put(struct fixture *fx, unsigned i, double c, uint64_t s)
{
	fx->items[i].cost = c;
	fx->items[i].size = s;
	fx_insert(fx, i);
}

/* An h2o fixture whose recent segment holds `recent` items of UNIT bytes. */
struct fixture *h2o_open(unsigned recent, double half_life)
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
