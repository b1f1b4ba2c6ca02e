/*
 * test_index.c - the chunk hash table: find/add/del against a shadow
 * model, growth, namespaces kept apart, and a full walk with the cursor.
 * The records are the test's own, embedding the index's entry as the
 * store's chunks do.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore/index.h"

struct rec {
	struct kv_index_entry e;	/* first: a rec's address is its entry's */
	uint32_t tokens;
};

static struct rec *rec_add(struct kv_index *idx, uint32_t ns, const struct kv_key *k)
{
	struct rec *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->e.ns = ns;
	r->e.key = *k;
	kv_index_add(idx, &r->e);
	return r;
}

static struct rec *rec_find(struct kv_index *idx, uint32_t ns, const struct kv_key *k)
{
	return (struct rec *)kv_index_find(idx, ns, k);
}

static void rec_del(struct kv_index *idx, struct rec *r)
{
	kv_index_del(idx, &r->e);
	free(r);
}

static void rec_drop(struct kv_index_entry *e)
{
	free(e);
}

static struct kv_key key_of(uint64_t i)
{
	/* Keys are hashes in real use; spread these the same way. */
	uint64_t x = i * 0x9e3779b97f4a7c15ull;

	return (struct kv_key){ .lo = x ^ (x >> 29), .hi = ~x };
}

static void test_open_args(void **state)
{
	struct kv_index *idx = (struct kv_index *)0x1;

	assert_int_equal(kv_index_open(&idx, 3), -EINVAL);
	assert_int_equal(kv_index_open(&idx, 31), -EINVAL);
	assert_ptr_equal(idx, (struct kv_index *)0x1);
	assert_int_equal(kv_index_open(&idx, 4), 0);
	kv_index_close(idx, NULL);
	kv_index_close(NULL, NULL);
}

static void test_model(void **state)
{
	enum { N = 20000 };
	struct rec **shadow = calloc(N, sizeof(*shadow));
	struct kv_index *idx;
	uint64_t live = 0;

	assert_int_equal(kv_index_open(&idx, 4), 0);	/* grows many times */
	srand(7);
	for (int op = 0; op < 200000; op++) {
		uint64_t i = (uint64_t)rand() % N;
		struct kv_key k = key_of(i);
		struct rec *c = rec_find(idx, 1, &k);

		assert_ptr_equal(c, shadow[i]);
		if (c && rand() % 2) {
			rec_del(idx, c);
			shadow[i] = NULL;
			live--;
		} else if (!c) {
			c = rec_add(idx, 1, &k);
			assert_non_null(c);
			assert_int_equal(c->e.ns, 1);
			assert_memory_equal(&c->e.key, &k, sizeof(k));
			c->tokens = (uint32_t)i;
			shadow[i] = c;
			live++;
		} else {
			assert_int_equal(c->tokens, (uint32_t)i);
		}
		assert_int_equal(kv_index_count(idx), live);
	}
	for (uint64_t i = 0; i < N; i++) {
		struct kv_key k = key_of(i);

		assert_ptr_equal(rec_find(idx, 1, &k), shadow[i]);
	}
	kv_index_close(idx, rec_drop);	/* frees what is left: ASan checks */
	free(shadow);
}

static void test_namespaces_apart(void **state)
{
	struct kv_key k = key_of(42);
	struct kv_index *idx;
	struct rec *a, *b;

	assert_int_equal(kv_index_open(&idx, 4), 0);
	a = rec_add(idx, 1, &k);
	assert_null(rec_find(idx, 2, &k));
	b = rec_add(idx, 2, &k);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(rec_find(idx, 1, &k), a);
	assert_ptr_equal(rec_find(idx, 2, &k), b);
	rec_del(idx, a);
	assert_null(rec_find(idx, 1, &k));
	assert_ptr_equal(rec_find(idx, 2, &k), b);
	kv_index_close(idx, rec_drop);
}

static void test_walk(void **state)
{
	enum { N = 5000 };
	unsigned char *seen = calloc(N, 1);
	struct kv_index *idx;
	struct rec *c;
	uint64_t cursor = 0, n = 0;

	assert_int_equal(kv_index_open(&idx, 6), 0);
	for (uint64_t i = 0; i < N; i++) {
		struct kv_key k = key_of(i);

		rec_add(idx, (uint32_t)(i % 3), &k)->tokens = (uint32_t)i;
	}
	/* Walk in pieces, as LS pages do, with no changes in between. */
	while ((c = (struct rec *)kv_index_next(idx, &cursor))) {
		assert_true(c->tokens < N);
		assert_int_equal(seen[c->tokens], 0);
		seen[c->tokens] = 1;
		n++;
		assert_true(cursor != 0);
	}
	assert_int_equal(cursor, 0);
	assert_int_equal(n, N);
	kv_index_close(idx, rec_drop);
	free(seen);
}

/*
 * Keys are client input: 4096 keys with equal lo ^ hi (which all shared a
 * chain when the bucket came from the key's bits) must still spread. The
 * walk's cursor carries each chunk's place in its chain.
 */
static void test_chosen_keys_spread(void **state)
{
	struct kv_index *idx;
	uint64_t cursor = 0, longest = 0;

	assert_int_equal(kv_index_open(&idx, 12), 0);
	for (uint64_t i = 0; i < 4096; i++) {
		struct kv_key k = { .lo = i << 20, .hi = i << 20 };

		rec_add(idx, 1, &k);
	}
	while (kv_index_next(idx, &cursor)) {
		uint64_t place = (cursor - 1) & ((1u << 20) - 1);

		if (place > longest)
			longest = place;
	}
	print_message("longest chain: %llu\n", (unsigned long long)longest);
	assert_true(longest <= 12);	/* a random spread of 4096 in 4096: ~6 */
	kv_index_close(idx, rec_drop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_args),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_namespaces_apart),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_chosen_keys_spread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
