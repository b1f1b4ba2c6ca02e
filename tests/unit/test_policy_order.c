/*
 * test_policy_order.c - the order guarantees that each eviction policy
 * makes on its own: LRU's recency order and its model, GDSF's frequency,
 * cost and size trade-off, its clock and rebase, and H2O's scores, their
 * decay and rebase, and its protected recent segment.
 *
 * The scenarios every policy goes through are in test_policies.c; the
 * fixture both use, and how it models the store, is in policy_fx.c.
 *
 * Locking: none; single-threaded.
 */
#include <errno.h>
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

/* ------------------------------------------------------------------------ */

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
	int failed = 0;

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
