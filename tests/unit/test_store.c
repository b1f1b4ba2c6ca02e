/*
 * test_store.c - the cache's semantics without a socket: two-phase puts,
 * visibility, pins, leaf-first LRU eviction, limits, owners that vanish,
 * statistics, and a random run against a model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evict/policy.h"
#include "lib/errors.h"
#include "kvstore/store.h"
#include "lib/log.h"
#include "lib/util.h"

#define MiB (1ull << 20)
#define NS 3

static struct kv_store *open_store(uint64_t bytes, uint32_t max_pins,
				   uint64_t max_unc)
{
	struct kv_store_conf conf = {
		.dram_bytes = bytes,
		.align = 4096,
		.dram_policy = "lru",
		.max_pins = max_pins,
		.max_uncommitted = max_unc,
	};
	struct kv_store *s = NULL;

	assert_int_equal(kv_store_open(&s, &conf), 0);
	return s;
}

static struct kv_key K(uint64_t i)
{
	return (struct kv_key){ .lo = i * 0x9e3779b97f4a7c15ull, .hi = i };
}

static struct kv_store_put A(uint64_t i, uint64_t bytes)
{
	return (struct kv_store_put){ .key = K(i), .bytes = bytes, .tokens = 256 };
}

static struct kv_store_put child_of(uint64_t i, uint64_t parent, uint64_t bytes)
{
	struct kv_store_put a = A(i, bytes);

	a.parent = K(parent);
	a.has_parent = true;
	return a;
}

/* Allocate, fill with a pattern, commit. */
static void put(struct kv_store *s, struct kv_owner *o, const struct kv_store_put *a)
{
	uint64_t off;

	assert_int_equal(kv_store_alloc(s, o, NS, a, &off), 0);
	memset((char *)kv_store_dram_base(s, 0) + off, (int)(a->key.hi & 0xff), a->bytes);
	assert_int_equal(kv_store_commit(s, o, NS, &a->key), 0);
}

static bool all_ns(uint32_t ns, void *arg)
{
	return true;
}

static bool present(struct kv_store *s, uint64_t i)
{
	struct kv_key k = K(i);
	uint8_t tier;

	return kv_store_lookup(s, NS, &k, 1, &tier) == 1;
}

static struct kv_store_tier_stats dram_stats(struct kv_store *s, struct kv_store_stats *g)
{
	struct kv_store_tier_stats t[KV_TIER_MAX];
	struct kv_store_stats gg;

	assert_int_equal(kv_store_stats(s, g ? g : &gg, t, KV_TIER_MAX), 1);
	assert_string_equal(t[0].name, "dram");
	return t[0];
}

static void test_open_args(void **state)
{
	struct kv_store_conf conf = {
		.dram_bytes = 4 * MiB, .align = 4096, .dram_policy = "nope",
		.max_pins = 1, .max_uncommitted = MiB,
	};
	struct kv_store *s = (struct kv_store *)0x1;

	assert_int_equal(kv_store_open(&s, &conf), -EINVAL);
	conf.dram_policy = "lru";
	conf.max_pins = 0;
	assert_int_equal(kv_store_open(&s, &conf), -EINVAL);
	assert_ptr_equal(s, (struct kv_store *)0x1);
	kv_store_close(NULL);
}

static void test_two_phase_put(void **state)
{
	struct kv_store *s = open_store(16 * MiB, 64, 16 * MiB);
	struct kv_owner *w = kv_store_owner_open(s, 0);
	struct kv_owner *r = kv_store_owner_open(s, 0);
	struct kv_store_put a = A(1, 100000);
	struct kv_store_loc loc;
	uint64_t off, off2;
	uint8_t tier;

	assert_int_equal(kv_store_alloc(s, w, NS, &a, &off), 0);
	assert_int_equal(off % 4096, 0);
	/* Invisible until committed, but its key is taken. */
	assert_int_equal(kv_store_lookup(s, NS, &a.key, 1, &tier), 0);
	assert_int_equal(tier, KV_TIER_NONE);
	assert_int_equal(kv_store_pin(s, r, NS, &a.key, 0, &loc), -ENOENT);
	assert_int_equal(kv_store_inspect(s, NS, &a.key, &(struct kv_store_entry){ 0 }), -ENOENT);
	assert_int_equal(kv_store_alloc(s, r, NS, &a, &off2), -EEXIST);
	/* Only the writer commits. */
	assert_int_equal(kv_store_commit(s, r, NS, &a.key), -ENOENT);
	memset((char *)kv_store_dram_base(s, 0) + off, 0x5a, a.bytes);
	assert_int_equal(kv_store_commit(s, w, NS, &a.key), 0);
	assert_int_equal(kv_store_commit(s, w, NS, &a.key), -ENOENT);
	assert_int_equal(kv_store_alloc(s, r, NS, &a, &off2), -EEXIST);
	/* Another namespace is another key space. */
	assert_int_equal(kv_store_lookup(s, NS + 1, &a.key, 1, &tier), 0);

	assert_int_equal(kv_store_lookup(s, NS, &a.key, 1, &tier), 1);
	assert_int_equal(tier, KV_TIER_DRAM);
	assert_int_equal(kv_store_pin(s, r, NS, &a.key, 0, &loc), 0);
	assert_int_equal(loc.offset, off);
	assert_int_equal(loc.bytes, a.bytes);
	assert_int_equal(((unsigned char *)kv_store_dram_base(s, 0))[loc.offset + 99999], 0x5a);
	assert_int_equal(kv_store_release(s, r, NS, &a.key), 0);
	assert_int_equal(kv_store_release(s, r, NS, &a.key), -ENOENT);

	/* Abort frees the space. */
	a = A(2, 5 * MiB);
	assert_int_equal(kv_store_alloc(s, w, NS, &a, &off), 0);
	assert_int_equal(kv_store_abort(s, r, NS, &a.key), -ENOENT);
	assert_int_equal(kv_store_abort(s, w, NS, &a.key), 0);
	assert_int_equal(dram_stats(s, NULL).used_bytes, 102400);	/* 100000 rounded */
	kv_store_close(s);	/* owners go with it */
}

static void test_owner_close_releases(void **state)
{
	struct kv_store *s = open_store(16 * MiB, 64, 16 * MiB);
	struct kv_owner *w = kv_store_owner_open(s, 0);
	struct kv_owner *dead = kv_store_owner_open(s, 0);
	struct kv_store_loc loc;
	struct kv_store_stats g;
	uint64_t used0, off;

	for (int i = 0; i < 4; i++) {
		struct kv_store_put a = A(i, MiB);

		put(s, w, &a);
	}
	used0 = dram_stats(s, NULL).used_bytes;
	for (int i = 0; i < 4; i++) {
		struct kv_key k = K(i);

		assert_int_equal(kv_store_pin(s, dead, NS, &k, 0, &loc), 0);
		assert_int_equal(kv_store_pin(s, dead, NS, &k, 0, &loc), 0);
	}
	for (int i = 10; i < 13; i++) {
		struct kv_store_put a = A(i, 2 * MiB);

		assert_int_equal(kv_store_alloc(s, dead, NS, &a, &off), 0);
	}
	dram_stats(s, &g);
	assert_int_equal(g.pinned_chunks, 4);
	assert_int_equal(g.pending_chunks, 3);
	kv_store_owner_close(s, dead);
	dram_stats(s, &g);
	assert_int_equal(g.pinned_chunks, 0);
	assert_int_equal(g.pending_chunks, 0);
	assert_int_equal(dram_stats(s, NULL).used_bytes, used0);
	/* Unpinned now: evictable. */
	for (int i = 0; i < 4; i++) {
		struct kv_key k = K(i);

		assert_int_equal(kv_store_evict(s, NS, &k), 0);
	}
	assert_int_equal(dram_stats(s, NULL).used_bytes, 0);
	kv_store_close(s);
}

static void test_lru_eviction(void **state)
{
	struct kv_store *s = open_store(8 * MiB, 64, 8 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_put a;
	struct kv_key k0 = K(0);
	uint8_t tier;

	for (int i = 0; i < 8; i++) {
		a = A(i, MiB);
		put(s, o, &a);
	}
	kv_store_lookup(s, NS, &k0, 1, &tier);	/* 0 is now the most recent */
	a = A(100, MiB);
	put(s, o, &a);
	assert_true(present(s, 0));
	assert_false(present(s, 1));		/* the least recent went */
	assert_true(present(s, 2));
	assert_true(present(s, 100));
	assert_int_equal(dram_stats(s, NULL).evictions, 1);
	kv_store_close(s);
}

static void test_pinned_never_evicted(void **state)
{
	struct kv_store *s = open_store(4 * MiB, 64, 4 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_loc loc;
	struct kv_store_put a;
	uint64_t off;

	for (int i = 0; i < 4; i++) {
		struct kv_key k = K(i);

		a = A(i, MiB);
		put(s, o, &a);
		assert_int_equal(kv_store_pin(s, o, NS, &k, 0, &loc), 0);
	}
	a = A(50, MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), -KV_EFULL);
	assert_int_equal(dram_stats(s, NULL).alloc_failures, 1);
	for (int i = 0; i < 4; i++)
		assert_true(present(s, i));
	/* Release the oldest: it and only it can go. */
	a = A(0, MiB);
	assert_int_equal(kv_store_release(s, o, NS, &a.key), 0);
	a = A(50, MiB);
	put(s, o, &a);
	assert_false(present(s, 0));
	for (int i = 1; i < 4; i++)
		assert_true(present(s, i));
	/* A chunk larger than the tier can never fit. */
	a = A(51, 5 * MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), -KV_ETOOBIG);
	a = A(52, 0);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), -EINVAL);
	kv_store_close(s);
}

static void test_leaf_first(void **state)
{
	struct kv_store *s = open_store(4 * MiB, 64, 4 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_put a;
	struct kv_store_entry e;
	struct kv_key k0 = K(0);

	/* A chain 0 <- 1 <- 2 <- 3 fills the tier; 0 is the oldest. */
	a = A(0, MiB);
	put(s, o, &a);
	for (int i = 1; i < 4; i++) {
		a = child_of(i, i - 1, MiB);
		put(s, o, &a);
	}
	assert_int_equal(kv_store_inspect(s, NS, &k0, &e), 0);
	assert_int_equal(e.children, 1);
	a = A(9, MiB);
	put(s, o, &a);
	/* The leaf went, not the least recently used parent. */
	assert_true(present(s, 0));
	assert_true(present(s, 1));
	assert_true(present(s, 2));
	assert_false(present(s, 3));
	assert_true(present(s, 9));
	kv_store_close(s);
}

static void test_lookup_leading(void **state)
{
	struct kv_store *s = open_store(16 * MiB, 64, 16 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_key keys[5];
	struct kv_store_tier_stats t;
	uint8_t tiers[5];

	for (int i = 0; i < 5; i++) {
		struct kv_store_put a = A(i, 4096);

		keys[i] = K(i);
		if (i != 2)
			put(s, o, &a);
	}
	assert_int_equal(kv_store_lookup(s, NS, keys, 5, tiers), 2);
	assert_int_equal(tiers[0], KV_TIER_DRAM);
	assert_int_equal(tiers[2], KV_TIER_NONE);
	assert_int_equal(tiers[3], KV_TIER_DRAM);	/* present past the gap */
	t = dram_stats(s, NULL);
	assert_int_equal(t.hits, 4);
	assert_int_equal(t.misses, 1);
	kv_store_close(s);
}

static void test_limits(void **state)
{
	struct kv_store *s = open_store(16 * MiB, 3, 3 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_loc loc;
	struct kv_store_put a = A(1, MiB);
	uint64_t off;

	put(s, o, &a);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kv_store_pin(s, o, NS, &a.key, 0, &loc), 0);
	assert_int_equal(kv_store_pin(s, o, NS, &a.key, 0, &loc), -KV_EPINS);
	assert_int_equal(kv_store_release(s, o, NS, &a.key), 0);
	assert_int_equal(kv_store_pin(s, o, NS, &a.key, 0, &loc), 0);
	/* Evicting a pinned or pending chunk is refused. */
	assert_int_equal(kv_store_evict(s, NS, &a.key), -EBUSY);
	a = A(2, 2 * MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), 0);
	assert_int_equal(kv_store_evict(s, NS, &a.key), -EBUSY);
	a = A(3, 2 * MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), -KV_EUNCOMMITTED);
	a = A(2, 2 * MiB);
	assert_int_equal(kv_store_commit(s, o, NS, &a.key), 0);
	a = A(3, 2 * MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), 0);
	a = A(77, MiB);
	assert_int_equal(kv_store_evict(s, NS, &a.key), -ENOENT);
	kv_store_close(s);
}

static void test_flush_drop(void **state)
{
	struct kv_store *s = open_store(16 * MiB, 64, 16 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_flushed fr;
	struct kv_store_loc loc;
	struct kv_key k1 = K(1);

	for (int i = 0; i < 6; i++) {
		struct kv_store_put a = i ? child_of(i, i - 1, MiB) : A(0, MiB);

		put(s, o, &a);
	}
	assert_int_equal(kv_store_pin(s, o, NS, &k1, 0, &loc), 0);
	/* No tier below DRAM yet: a write-back flush has nothing to do. */
	assert_int_equal(kv_store_flush(s, KV_TIER_DRAM, 0, all_ns, NULL, &fr), 0);
	assert_int_equal(fr.chunks, 0);
	assert_int_equal(kv_store_flush(s, KV_TIER_SSD, 0, all_ns, NULL, &fr), -KV_ENOTIER);
	assert_int_equal(kv_store_flush(s, KV_TIER_NONE, true, all_ns, NULL, &fr), 0);
	assert_int_equal(fr.chunks, 5);
	assert_int_equal(fr.skipped, 1);
	assert_int_equal(fr.bytes, 5 * MiB);
	assert_true(present(s, 1));
	assert_false(present(s, 0));
	assert_false(present(s, 2));
	assert_int_equal(dram_stats(s, NULL).chunks, 1);
	kv_store_close(s);
}

static void test_fault_injection(void **state)
{
	struct kv_store *s = open_store(4 * MiB, 64, 4 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_put a = A(1, MiB);
	uint64_t off;

	/* Arm the N-th arena allocation to fail for N = 1, 2, ...: the put
	 * reports an error or succeeds, and nothing leaks (ASan). */
	for (unsigned n = 1; n <= 4; n++) {
		kv_fault_arm(KV_FAULT_ARENA, n);
		for (unsigned i = 0; i < n; i++) {
			a = A(100 * n + i, MiB);
			int ret = kv_store_alloc(s, o, NS, &a, &off);

			if (i + 1 == n && n == 1)
				assert_int_equal(ret, -KV_EFULL);	/* nothing to evict */
			if (ret == 0)
				assert_int_equal(kv_store_commit(s, o, NS, &a.key), 0);
		}
		kv_fault_arm(KV_FAULT_ARENA, 0);
	}
	kv_store_close(s);
}

/*
 * Random operations by three owners against a model of what each key
 * holds. A cache may forget (eviction) but never lie: whatever a pin
 * finds must carry the bytes last committed under that key.
 */
static void test_random_model(void **state)
{
	enum { KEYS = 64, OWNERS = 3 };
	struct kv_store *s = open_store(8 * MiB, 1000, 8 * MiB);
	struct kv_owner *o[OWNERS];
	unsigned char fill[KEYS];	/* byte each committed key holds */
	int pending[KEYS];		/* owner writing it, or -1 */
	int pins[OWNERS][KEYS];
	struct kv_store_stats g;

	memset(fill, 0, sizeof(fill));
	memset(pins, 0, sizeof(pins));
	for (int i = 0; i < KEYS; i++)
		pending[i] = -1;
	for (int i = 0; i < OWNERS; i++)
		o[i] = kv_store_owner_open(s, 0);
	srand(11);
	for (int step = 0; step < 50000; step++) {
		int w = rand() % OWNERS, k = rand() % KEYS;
		struct kv_store_put a = A(k, 4096 * (1 + (uint64_t)(k % 7) * 37));
		struct kv_store_loc loc;
		uint64_t off;
		int ret;

		switch (rand() % 6) {
		case 0:
			ret = kv_store_alloc(s, o[w], NS, &a, &off);
			if (ret == 0) {
				assert_int_equal(pending[k], -1);
				pending[k] = w;
				fill[k] = (unsigned char)(rand() | 1);
				memset((char *)kv_store_dram_base(s, 0) + off, fill[k], a.bytes);
			} else {
				assert_true(ret == -EEXIST || ret == -KV_EFULL ||
					    ret == -KV_EUNCOMMITTED);
			}
			break;
		case 1:
			ret = kv_store_commit(s, o[w], NS, &a.key);
			assert_int_equal(ret == 0, pending[k] == w);
			if (ret == 0)
				pending[k] = -1;
			break;
		case 2:
			ret = kv_store_abort(s, o[w], NS, &a.key);
			assert_int_equal(ret == 0, pending[k] == w);
			if (ret == 0)
				pending[k] = -1;
			break;
		case 3:
			ret = kv_store_pin(s, o[w], NS, &a.key, 0, &loc);
			if (ret == 0) {
				const unsigned char *p =
					(unsigned char *)kv_store_dram_base(s, 0) + loc.offset;

				assert_int_equal(pending[k], -1);
				assert_int_equal(loc.bytes, a.bytes);
				assert_int_equal(p[0], fill[k]);
				assert_int_equal(p[loc.bytes - 1], fill[k]);
				pins[w][k]++;
			} else {
				assert_int_equal(ret, -ENOENT);
				assert_int_equal(pins[w][k], 0);	/* pinned never goes */
			}
			break;
		case 4:
			ret = kv_store_release(s, o[w], NS, &a.key);
			assert_int_equal(ret == 0, pins[w][k] > 0);
			if (ret == 0)
				pins[w][k]--;
			break;
		case 5:
			if (rand() % 50 == 0) {	/* an owner dies */
				kv_store_owner_close(s, o[w]);
				o[w] = kv_store_owner_open(s, 0);
				for (int i = 0; i < KEYS; i++) {
					pins[w][i] = 0;
					if (pending[i] == w)
						pending[i] = -1;
				}
			}
			break;
		}
	}
	for (int i = 0; i < OWNERS; i++)
		kv_store_owner_close(s, o[i]);
	dram_stats(s, &g);
	assert_int_equal(g.pinned_chunks, 0);
	assert_int_equal(g.pending_chunks, 0);
	kv_store_close(s);
}

static void test_pending_child_holds_parent(void **state)
{
	struct kv_store *s = open_store(4 * MiB, 64, 4 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_put a;
	uint64_t off;

	a = A(1, MiB);
	put(s, o, &a);			/* the parent, oldest */
	a = A(2, MiB);
	put(s, o, &a);			/* unrelated */
	a = child_of(3, 1, MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), 0);	/* pending */
	/* The tier is full after 4; room for 8 means one eviction: not the
	 * parent of a chunk being written, though it is the least recently
	 * used. */
	a = A(4, MiB);
	put(s, o, &a);
	a = A(8, MiB);
	put(s, o, &a);
	assert_true(present(s, 1));
	assert_false(present(s, 2));
	assert_true(present(s, 4));
	a = child_of(3, 1, MiB);
	assert_int_equal(kv_store_commit(s, o, NS, &a.key), 0);
	assert_true(present(s, 3));
	/* A chunk whose parent is not cached would be unreachable. */
	a = child_of(5, 99, MiB);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), -KV_ENOPARENT);
	/* A pending parent is enough: a batch allocates a chain at once. */
	a = A(4, MiB);
	assert_int_equal(kv_store_evict(s, NS, &a.key), 0);
	a = A(6, 4096);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), 0);
	a = child_of(7, 6, 4096);
	assert_int_equal(kv_store_alloc(s, o, NS, &a, &off), 0);
	/* Aborting the parent orphans nothing visible: the child is still
	 * pending and commits unlinked. */
	a = A(6, 4096);
	assert_int_equal(kv_store_abort(s, o, NS, &a.key), 0);
	a = child_of(7, 6, 4096);
	assert_int_equal(kv_store_commit(s, o, NS, &a.key), 0);
	kv_store_close(s);
}

static void test_switch_policy(void **state)
{
	const struct kv_evict_ops *const *pols;
	size_t npol = kv_evict_list(&pols);
	struct kv_store *s = open_store(8 * MiB, 64, 8 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_loc loc;
	struct kv_store_put a;

	for (int i = 0; i < 8; i++) {
		a = i ? child_of(i, i - 1, MiB) : A(0, MiB);
		put(s, o, &a);
	}
	a = A(3, MiB);
	assert_int_equal(kv_store_pin(s, o, NS, &a.key, 0, &loc), 0);
	assert_int_equal(kv_store_set_policy(s, KV_TIER_DRAM, "nope"), -ENOENT);
	assert_int_equal(kv_store_set_policy(s, KV_TIER_SSD, "lru"), -KV_ENOTIER);
	assert_null(kv_store_policy(s, KV_TIER_SSD));
	for (size_t p = 0; p < npol; p++) {
		assert_int_equal(kv_store_set_policy(s, KV_TIER_DRAM, pols[p]->name), 0);
		assert_string_equal(kv_store_policy(s, KV_TIER_DRAM), pols[p]->name);
		for (int i = 0; i < 8; i++)
			assert_true(present(s, i));
	}
	/* Still leaf-first and still pin-respecting after the switches: new
	 * chunks push out the chain from its leaf, never the pinned 3 or
	 * anything above it. */
	for (int i = 0; i < 6; i++) {
		a = A(100 + i, MiB);
		put(s, o, &a);
	}
	for (int i = 0; i <= 3; i++)
		assert_true(present(s, i));
	for (int i = 4; i < 8; i++)
		assert_false(present(s, i));
	kv_store_close(s);
}

static void test_scores(void **state)
{
	struct kv_store *s = open_store(4 * MiB, 64, 4 * MiB);
	struct kv_owner *o = kv_store_owner_open(s, 0);
	struct kv_store_put a = A(1, 4096);

	put(s, o, &a);
	assert_int_equal(kv_store_score(s, NS, &a.key, 0.25f), 0);
	assert_int_equal(kv_store_score(s, NS, &a.key, 1.5f), -EINVAL);
	assert_int_equal(kv_store_score(s, NS, &a.key, -0.1f), -EINVAL);
	assert_int_equal(kv_store_score(s, NS, &a.key, 0.0f / 0.0f), -EINVAL);
	a = A(2, 4096);
	assert_int_equal(kv_store_score(s, NS, &a.key, 0.5f), -ENOENT);
	kv_store_close(s);
}

/*
 * Property: with every registered policy, a replay of prompts sharing
 * prefixes (the traffic of a chat service) never leaves a cached chunk
 * whose parent is gone. Checked after every request over every chunk.
 */
static void check_prefix_closed(struct kv_store *s)
{
	struct kv_store_entry e[64], pe;
	uint64_t cursor = 0;
	uint32_t n;

	do {
		n = kv_store_ls(s, NS, KV_TIER_NONE, NULL, NULL, &cursor, e, 64);
		for (uint32_t i = 0; i < n; i++)
			if (e[i].has_parent)
				assert_int_equal(kv_store_inspect(s, NS, &e[i].parent, &pe), 0);
	} while (cursor);
}

static void test_prefix_closed_replay(void **state)
{
	const struct kv_evict_ops *const *pols;
	size_t npol = kv_evict_list(&pols);

	for (size_t p = 0; p < npol; p++) {
		struct kv_store_conf conf = {
			.dram_bytes = 2 * MiB, .align = 4096,
			.dram_policy = pols[p]->name, .max_pins = 1000,
			.max_uncommitted = 2 * MiB,
		};
		struct kv_owner *o, *reader;
		struct kv_store *s;

		assert_int_equal(kv_store_open(&s, &conf), 0);
		o = kv_store_owner_open(s, 0);
		reader = kv_store_owner_open(s, 0);
		srand(5 + (unsigned)p);
		for (int req = 0; req < 3000; req++) {
			/* 8 system prompts, each followed by a private tail */
			uint64_t sys = (uint64_t)rand() % 8, chain[40];
			int len = 2 + rand() % 38, pinned = -1;
			struct kv_key keys[40];
			struct kv_store_loc loc;
			uint8_t tiers[40];
			uint32_t hit;

			for (int i = 0; i < len; i++) {
				chain[i] = i < 4 ? sys * 1000 + (uint64_t)i :
						   1000000 + (uint64_t)req * 64 + (uint64_t)i;
				keys[i] = K(chain[i]);
			}
			hit = kv_store_lookup(s, NS, keys, (uint32_t)len, tiers);
			if (hit && rand() % 4 == 0) {	/* a reader holds one */
				pinned = rand() % (int)hit;
				assert_int_equal(kv_store_pin(s, reader, NS, &keys[pinned],
							      0, &loc), 0);
			}
			for (int i = (int)hit; i < len; i++) {
				struct kv_store_put a = A(chain[i], 4096 * 16);
				uint64_t off;
				int ret;

				if (i)
					a = child_of(chain[i], chain[i - 1], 4096 * 16);
				ret = kv_store_alloc(s, o, NS, &a, &off);
				if (ret)
					break;	/* no room, or the chain was cut */
				assert_int_equal(kv_store_commit(s, o, NS, &a.key), 0);
			}
			if (pinned >= 0)
				assert_int_equal(kv_store_release(s, reader, NS, &keys[pinned]), 0);
			check_prefix_closed(s);
		}
		kv_store_close(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_args),
		cmocka_unit_test(test_two_phase_put),
		cmocka_unit_test(test_owner_close_releases),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_pinned_never_evicted),
		cmocka_unit_test(test_leaf_first),
		cmocka_unit_test(test_lookup_leading),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_flush_drop),
		cmocka_unit_test(test_fault_injection),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_pending_child_holds_parent),
		cmocka_unit_test(test_switch_policy),
		cmocka_unit_test(test_scores),
		cmocka_unit_test(test_prefix_closed_replay),
	};

	kv_log_level = KV_WARN;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
