/*
 * test_policies.c - every registered eviction policy through the same
 * scenarios, then the order guarantees that only LRU makes.
 *
 * The generic groups run once per entry of kv_evict_list(), so a new policy
 * is covered as soon as it is registered. Nodes live in struct item, which
 * embeds the kv_evict_node the way a chunk does in the daemon; the
 * evictable() callback finds the item with kv_container_of() and says no
 * for pinned ones. Every scenario checks what pick() returns against a
 * shadow of the policy's membership kept here (item.live, fx->live[]).
 *
 * Locking: none; single-threaded. Randomness comes from a fixed-seed
 * xorshift so that failures reproduce.
 */
#include <errno.h>
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
#include "kvstore/util.h"

#define NITEMS		512
#define SMALL		64		/* items in the non-stress scenarios */
#define STRESS_OPS	100000
#define FX_MAGIC	0x6b7665766963746full

struct item {
	struct kv_evict_node node;
	unsigned id;
	bool pinned;		/* evictable() says no */
	bool live;		/* between on_insert() and on_remove() */
	size_t slot;		/* index in fx->live[] while live */
	uint64_t stamp;		/* last insert or access, for the LRU model */
	uint64_t seen;		/* pick generation, to spot duplicates */
};

struct fixture {
	uint64_t magic;		/* evictable() checks it got conf->arg */
	const struct kv_evict_ops *ops;
	void *state;
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

/* The policy the current group runs against; set by run_group(). */
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

static bool item_evictable(const struct kv_evict_node *n, void *arg)
{
	struct fixture *fx = arg;
	const struct item *it = kv_container_of(n, struct item, node);

	assert_int_equal(fx->magic, FX_MAGIC);
	/* A policy must only ask about its own members. */
	assert_true(it->live);
	return !it->pinned;
}

static int fx_setup(void **state)
{
	struct kv_evict_conf conf = {
		.capacity = (uint64_t)NITEMS * 4 * 4096,
		.evictable = item_evictable,
	};
	struct fixture *fx;

	fx = kv_xcalloc(1, sizeof(*fx));
	fx->magic = FX_MAGIC;
	fx->ops = cur_ops;
	fx->rng = 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < NITEMS; i++)
		fx->items[i].id = i;

	conf.arg = fx;
	if (fx->ops->init(&fx->state, &conf)) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	fx->ops->fini(fx->state);
	free(fx);
	return 0;
}

static void fx_insert(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];

	assert_false(it->live);
	/* Policy fields are the policy's to set: hand it garbage. */
	it->node.prev = (struct kv_evict_node *)(uintptr_t)0xdead0001;
	it->node.next = (struct kv_evict_node *)(uintptr_t)0xdead0002;
	it->node.prio = 1e300;
	it->node.heap_idx = UINT64_MAX;
	it->node.freq = UINT32_MAX;
	/* Core fields are ours. */
	it->node.tokens = 16;
	it->node.position = 16 * (i % 64);
	it->node.size = 4096 * (1 + i % 4);

	it->live = true;
	it->slot = fx->nlive;
	it->stamp = ++fx->clock;
	fx->live[fx->nlive++] = i;
	fx->ops->on_insert(fx->state, &it->node);
}

static void fx_access(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];

	assert_true(it->live);
	it->stamp = ++fx->clock;
	fx->ops->on_access(fx->state, &it->node);
}

static void fx_remove(struct fixture *fx, unsigned i)
{
	struct item *it = &fx->items[i];
	unsigned last;

	assert_true(it->live);
	fx->ops->on_remove(fx->state, &it->node);
	it->live = false;
	last = fx->live[--fx->nlive];
	fx->live[it->slot] = last;
	fx->items[last].slot = it->slot;
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
		cnt += !fx->items[fx->live[k]].pinned;
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
 * evictable, no duplicates, and nothing written past out[max - 1].
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
		assert_int_not_equal(it->seen, fx->gen);
		it->seen = fx->gen;
	}
	return cnt;
}

static size_t fx_pick(struct fixture *fx, size_t max)
{
	return fx_pick_into(fx, fx->out, max);
}

static unsigned out_id(const struct fixture *fx, size_t k)
{
	return kv_container_of(fx->out[k], struct item, node)->id;
}

/* ---- the registry ------------------------------------------------------ */

static void test_registry(void **state)
{
	const struct kv_evict_ops *const *list;
	size_t n = kv_evict_list(&list);

	assert_true(n >= 1);
	assert_ptr_equal(kv_evict_find("lru"), &kv_evict_lru);
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

	ops->fini(NULL);

	/* And a good conf does work, so the rejections above mean something. */
	conf.evictable = item_evictable;
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
			fx->items[i].pinned = rnd_below(fx, 8) < density;
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
		fx->items[i].pinned = true;
	assert_int_equal(fx_pick(fx, SMALL), 0);
	assert_int_equal(fx_pick(fx, 1), 0);

	/* one unpinned node is found wherever it sits */
	fx->items[SMALL / 2].pinned = false;
	assert_int_equal(fx_pick(fx, SMALL), 1);
	assert_int_equal(out_id(fx, 0), SMALL / 2);
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
}

static void test_pick_is_pure(void **state)
{
	struct fixture *fx = *state;
	size_t a;
	size_t b;

	fx_insert_n(fx, SMALL);
	for (unsigned i = 0; i < SMALL; i += 3)
		fx_access(fx, i);
	for (unsigned i = 0; i < SMALL; i += 5)
		fx->items[i].pinned = true;

	for (size_t max = 1; max <= SMALL; max += 9) {
		a = fx_pick_into(fx, fx->out, max);
		b = fx_pick_into(fx, fx->out2, max);
		assert_int_equal(a, b);
		assert_memory_equal(fx->out, fx->out2, a * sizeof(fx->out[0]));
	}

	/* nothing left the policy: unpinned, every node is still there */
	for (unsigned i = 0; i < SMALL; i++)
		fx->items[i].pinned = false;
	assert_int_equal(fx_pick(fx, SMALL), SMALL);
}

/* One pick as the core would do it, checked against the shadow set. */
static void stress_pick(struct fixture *fx, size_t op)
{
	size_t max;
	size_t want;
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
	want = fx_count_evictable(fx);
	if (max < want)
		want = max;
	got = fx_pick(fx, max);
	if (got != want)
		fail_msg("op %zu: pick(%zu) gave %zu, want %zu",
			 op, max, got, want);

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
			it->pinned = !it->pinned;
		} else if (r < 90) {
			if (fx->ops->on_score && it->live)
				fx->ops->on_score(fx->state, &it->node, score);
		} else {
			stress_pick(fx, op);
			picks++;
		}
	}
	assert_true(picks > STRESS_OPS / 20);
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
	fx->items[0].pinned = true;
	fx->items[3].pinned = true;
	fx->items[5].pinned = true;
	fx->items[7].pinned = true;
	assert_order(fx, 10, want, 6);
	assert_order(fx, 2, want, 2);
	assert_order(fx, 4, want, 4);

	/* unpinning brings a node back at its old place, not the MRU end */
	fx->items[0].pinned = false;
	fx->items[6].pinned = true;
	fx->items[8].pinned = true;
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

static int cmp_stamp(const void *a, const void *b)
{
	const struct item *x = *(const struct item *const *)a;
	const struct item *y = *(const struct item *const *)b;

	return (x->stamp > y->stamp) - (x->stamp < y->stamp);
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
			fx->items[i].pinned = !fx->items[i].pinned;
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

/* ------------------------------------------------------------------------ */

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

static const struct CMUnitTest registry_tests[] = {
	cmocka_unit_test(test_registry),
};

static const struct CMUnitTest generic_tests[] = {
	cmocka_unit_test(test_init_rejects_bad_conf),
	FX_TEST(test_pick_returns_all),
	FX_TEST(test_pick_skips_pinned),
	FX_TEST(test_all_pinned),
	FX_TEST(test_removed_not_returned),
	FX_TEST(test_pick_is_pure),
	FX_TEST(test_stress),
};

static const struct CMUnitTest lru_tests[] = {
	FX_TEST(test_lru_insertion_order),
	FX_TEST(test_lru_access_moves_to_mru),
	FX_TEST(test_lru_pick_skips_pinned),
	FX_TEST(test_lru_remove_keeps_order),
	FX_TEST(test_lru_model),
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
	return failed ? 1 : 0;
}
