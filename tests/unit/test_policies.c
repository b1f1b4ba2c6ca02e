/*
 * test_policies.c - every registered eviction policy through the same
 * scenarios.
 *
 * The generic group runs once per entry of kv_evict_list(), so a new
 * policy is covered as soon as it is registered; then a chunk's history
 * carried across policies. The order guarantees that each policy makes on
 * its own are in test_policy_order.c; the fixture both use, and how it
 * models the store, is in policy_fx.c.
 *
 * Locking: none; single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "evict/policy.h"
#include "tests/unit/policy_fx.h"

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
	return failed ? 1 : 0;
}
