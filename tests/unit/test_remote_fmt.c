/*
 * test_remote_fmt.c - the remote tier's value format (tiers/remote_fmt.h):
 * parts and spans, stable names with one hash tag per part, header round
 * trips, and that every single-bit flip of a header, a sample of payload
 * flips, truncations, and values of another chunk, part or write are
 * refused, never passed on as the chunk's bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "tests/lib/rng.h"
#include "tiers/remote_fmt.h"

static uint64_t seed = 5;

static void test_parts(void **state)
{
	uint64_t off;
	uint32_t len;

	assert_int_equal(kv_remote_parts(0, 4096), 1);
	assert_int_equal(kv_remote_parts(1, 4096), 1);
	assert_int_equal(kv_remote_parts(4096, 4096), 1);
	assert_int_equal(kv_remote_parts(4097, 4096), 2);
	assert_int_equal(kv_remote_parts(32ull << 20, 4u << 20), 8);
	assert_int_equal(kv_remote_parts(100, 0), 0);
	assert_int_equal(kv_remote_parts((uint64_t)KV_REMOTE_PARTS_MAX * 10, 10),
			 KV_REMOTE_PARTS_MAX);
	assert_int_equal(kv_remote_parts((uint64_t)KV_REMOTE_PARTS_MAX * 10 + 1, 10), 0);
	/* Spans tile the stored bytes exactly, in order. */
	for (uint64_t stored = 0; stored < 40; stored++) {
		uint32_t n = kv_remote_parts(stored, 7);
		uint64_t at = 0;

		for (uint32_t i = 0; i < n; i++) {
			kv_remote_part_span(stored, 7, i, &off, &len);
			assert_int_equal(off, at);
			assert_true(len <= 7);
			assert_true(len > 0 || stored == 0);
			at += len;
		}
		assert_int_equal(at, stored);
	}
}

static void test_names(void **state)
{
	struct kv_key k = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
	char a[KV_REMOTE_NAME_MAX], b[KV_REMOTE_NAME_MAX];
	size_t n;

	/* The format is shared by every daemon of a cluster: pinned here. */
	n = kv_remote_name(a, 0x1122334455667788ull, &k, 0);
	assert_string_equal(a, "kv:{1122334455667788.fedcba98765432100123456789abcdef:0}");
	assert_int_equal(n, strlen(a));
	kv_remote_name(b, 0x1122334455667788ull, &k, KV_REMOTE_PARTS_MAX - 1);
	assert_string_equal(b, "kv:{1122334455667788.fedcba98765432100123456789abcdef:fff}");
	/* A hash tag per part: a chunk's parts spread over the slots. */
	assert_true(strcmp(strchr(a, '{'), strchr(b, '{')) != 0);
	assert_true(strlen(b) < KV_REMOTE_NAME_MAX);
	/* Another salt (namespace name) is another name. */
	kv_remote_name(b, 0x1122334455667789ull, &k, 0);
	assert_string_not_equal(a, b);
}

/* A value of part `part` of a chunk whose stored bytes are `stored`. */
static size_t make(unsigned char *val, const unsigned char *stored, uint64_t n,
		   uint32_t part_bytes, uint32_t part, uint64_t salt, const struct kv_key *k,
		   struct kv_remote_hdr *h)
{
	uint64_t off;
	uint32_t len;

	kv_remote_part_span(n, part_bytes, part, &off, &len);
	*h = (struct kv_remote_hdr){
		.codec = 1, .part = part, .parts = kv_remote_parts(n, part_bytes),
		.salt = salt, .key = *k, .bytes = n + 100, .stored = n, .len = len,
		.tokens = 16, .position = 32, .has_parent = true, .parent = { 77, 78 },
		.whole = kv_remote_whole(salt, k, stored, n),
	};
	kv_remote_hdr_write(h, stored + off, val);
	memcpy(val + KV_REMOTE_HDR, stored + off, len);
	return KV_REMOTE_HDR + len;
}

static void test_round_trip(void **state)
{
	enum { N = 10000, PART = 4096 };
	unsigned char *stored = malloc(N), *val = malloc(KV_REMOTE_HDR + PART);
	unsigned char *back = calloc(1, N);
	struct kv_key k = { 7, 9 };
	struct kv_remote_hdr h, got, first;
	uint32_t parts = kv_remote_parts(N, PART);
	uint64_t at = 0;

	for (int i = 0; i < N; i++)
		stored[i] = (unsigned char)kvt_splitmix(&seed);
	for (uint32_t p = 0; p < parts; p++) {
		size_t len = make(val, stored, N, PART, p, 42, &k, &h), pl;

		assert_int_equal(kv_remote_check_hdr(val, 42, &k, p, &got), 0);
		pl = len - KV_REMOTE_HDR;
		assert_true(kv_remote_payload_ok(&got, val + KV_REMOTE_HDR, pl));
		assert_false(kv_remote_payload_ok(&got, val + KV_REMOTE_HDR, pl - 1));
		assert_int_equal(kv_remote_check(val, len, 42, &k, p, &got), 0);
		assert_true(kv_remote_same(&got, &h));
		assert_int_equal(got.part, h.part);
		assert_int_equal(got.len, h.len);
		assert_int_equal(got.checksum, h.checksum);
		assert_true(got.has_parent);
		assert_int_equal(got.parent.hi, 78);
		assert_int_equal(got.position, 32);
		if (p == 0)
			first = got;
		assert_true(kv_remote_same(&first, &got));
		memcpy(back + at, val + KV_REMOTE_HDR, got.len);
		at += got.len;
	}
	assert_int_equal(at, N);
	assert_memory_equal(back, stored, N);
	assert_int_equal(kv_remote_whole(42, &k, back, N), first.whole);
	free(stored);
	free(val);
	free(back);
}

static void test_refused(void **state)
{
	enum { N = 3000 };
	unsigned char stored[N], val[KV_REMOTE_HDR + N], bad[KV_REMOTE_HDR + N];
	struct kv_key k = { 1, 2 }, other = { 1, 3 };
	struct kv_remote_hdr h, got, h2;
	size_t len;

	for (int i = 0; i < N; i++)
		stored[i] = (unsigned char)kvt_splitmix(&seed);
	len = make(val, stored, N, N, 0, 42, &k, &h);
	/* Every bit of the header, and a sample of the payload's. */
	for (size_t bit = 0; bit < len * 8; bit += bit < KV_REMOTE_HDR * 8 ? 1 : 13) {
		memcpy(bad, val, len);
		bad[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_int_not_equal(kv_remote_check(bad, len, 42, &k, 0, &got), 0);
	}
	/* Cut short, or grown. */
	for (size_t cut = 0; cut < len; cut += cut < KV_REMOTE_HDR + 8 ? 1 : 97)
		assert_int_not_equal(kv_remote_check(val, cut, 42, &k, 0, &got), 0);
	memcpy(bad, val, len);
	assert_int_equal(kv_remote_check(bad, len - 1, 42, &k, 0, &got), -KV_ECORRUPT);
	/* Not this format at all. */
	memset(bad, 'x', sizeof(bad));
	assert_int_equal(kv_remote_check(bad, len, 42, &k, 0, &got), -KV_EFORMAT);
	/* Sound values of another namespace, chunk or part. */
	assert_int_equal(kv_remote_check(val, len, 43, &k, 0, &got), -ESTALE);
	assert_int_equal(kv_remote_check(val, len, 42, &other, 0, &got), -ESTALE);
	assert_int_equal(kv_remote_check(val, len, 42, &k, 1, &got), -ESTALE);
	/* Sound checksums over sizes that do not add up: part 0 must be a
	 * full part that, times parts, covers the stored bytes. */
	h2 = (struct kv_remote_hdr){ .parts = 1, .salt = 42, .key = k, .bytes = 100,
				     .stored = 100, .len = 10 };
	kv_remote_hdr_write(&h2, stored, bad);
	assert_int_equal(kv_remote_check_hdr(bad, 42, &k, 0, &got), -KV_ECORRUPT);
	h2.parts = 3;		/* 3 x 10 < 100 */
	kv_remote_hdr_write(&h2, stored, bad);
	assert_int_equal(kv_remote_check_hdr(bad, 42, &k, 0, &got), -KV_ECORRUPT);
	h2.parts = 11;		/* 10 x 10 >= 100: one part too many */
	kv_remote_hdr_write(&h2, stored, bad);
	assert_int_equal(kv_remote_check_hdr(bad, 42, &k, 0, &got), -KV_ECORRUPT);
	h2.parts = 10;
	kv_remote_hdr_write(&h2, stored, bad);
	assert_int_equal(kv_remote_check_hdr(bad, 42, &k, 0, &got), 0);
	/* Another write of the same chunk (another codec): not the same. */
	assert_int_equal(kv_remote_check(val, len, 42, &k, 0, &got), 0);
	h2 = got;
	h2.codec = 2;
	assert_false(kv_remote_same(&got, &h2));
	h2 = got;
	h2.whole ^= 1;
	assert_false(kv_remote_same(&got, &h2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
