/*
 * test_bw.c - unit tests for the read-bandwidth average (kvstore/bw.c).
 *
 * The figures are the ones bw.h promises, checked two ways: the exact
 * integer recurrence (what a client predicts from docs/protocol.md) and the
 * real-valued EWMA with weight 1/8, which the integers must follow within
 * their rounding (under 2 bytes/s). Refused samples leave the average as
 * it was, whatever u64 a client sends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kvstore/bw.h"
#include "tests/lib/rng.h"

#define GB 1000000000ull

static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

static void test_first_sample_as_is(void **state)
{
	struct kv_bw b = { 0 };

	assert_int_equal(kv_bw_rate(&b), 0);
	assert_int_equal(kv_bw_add(&b, 3 * GB, 2 * GB), 0);	/* 3 GB in 2 s */
	assert_int_equal(kv_bw_rate(&b), 1500000000ull);
	assert_int_equal(b.samples, 1);
	assert_int_equal(b.bytes, 3 * GB);
}

/* Weight 1/8: 8 GB/s then 16 GB/s is 9 GB/s; an outlier moves it 1/8. */
static void test_weight_one_eighth(void **state)
{
	struct kv_bw b = { 0 };

	assert_int_equal(kv_bw_add(&b, 8 * GB, GB), 0);
	assert_int_equal(kv_bw_add(&b, 16 * GB, GB), 0);
	assert_int_equal(kv_bw_rate(&b), 9 * GB);
	assert_int_equal(kv_bw_add(&b, GB, GB), 0);	/* 9 + (1 - 9) / 8 */
	assert_int_equal(kv_bw_rate(&b), 8 * GB);
	assert_int_equal(b.samples, 3);
	assert_int_equal(b.bytes, 25 * GB);

	/* a steady rate is reached exactly, however far it started */
	for (int i = 0; i < 400; i++)
		assert_int_equal(kv_bw_add(&b, 123456789, 1000000), 0);
	assert_int_equal(kv_bw_rate(&b), 123456789000ull);
}

/* Random samples: the integers are the recurrence of bw.h, and within 2
 * bytes/s of the real-valued average. */
static void test_random_against_reference(void **state)
{
	struct kv_bw b = { 0 };
	uint64_t avg8 = 0;
	long double real = 0;

	rng_state = 12;
	for (unsigned i = 0; i < 100000; i++) {
		uint64_t bytes = 1 + rnd() % (64ull << 20);
		uint64_t ns = 1000 + rnd() % (100ull * 1000 * 1000);
		unsigned __int128 scaled = (unsigned __int128)bytes * GB;
		uint64_t rate;
		long double diff;

		if (scaled < (unsigned __int128)1000 * ns ||
		    scaled > (unsigned __int128)10000 * GB * ns) {
			assert_int_equal(kv_bw_add(&b, bytes, ns), -ERANGE);
			continue;
		}
		rate = (uint64_t)(scaled / ns);
		assert_int_equal(kv_bw_add(&b, bytes, ns), 0);
		avg8 = b.samples == 1 ? rate * 8 : avg8 - avg8 / 8 + rate;
		real = b.samples == 1 ? (long double)rate :
		       real + ((long double)rate - real) / 8;
		assert_int_equal(b.avg8, avg8);
		assert_int_equal(kv_bw_rate(&b), avg8 / 8);
		diff = (long double)kv_bw_rate(&b) - real;
		assert_true(diff < 2 && diff > -2);
	}
	assert_true(b.samples > 90000);
}

/* Bad samples are refused and change nothing. */
static void test_refused(void **state)
{
	static const struct {
		uint64_t bytes, ns;
		int ret;
	} cases[] = {
		{ 0, 1000, -EINVAL },
		{ 4096, 0, -EINVAL },
		{ 0, 0, -EINVAL },
		{ 10000 * GB + 1, GB, -ERANGE },	/* just over 10 TB/s */
		{ 10001, 1, -ERANGE },			/* 10.001 TB/s */
		{ UINT64_MAX, 1, -ERANGE },
		{ 999, GB, -ERANGE },			/* 999 B/s */
		{ 1, 1000001, -ERANGE },		/* just under 1 KB/s */
		{ 1, UINT64_MAX, -ERANGE },
	};
	struct kv_bw b = { 0 }, was;

	assert_int_equal(kv_bw_add(&b, 4 * GB, GB), 0);
	was = b;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(kv_bw_add(&b, cases[i].bytes, cases[i].ns), cases[i].ret);
		assert_memory_equal(&b, &was, sizeof(b));
	}

	/* the bounds themselves are plausible */
	assert_int_equal(kv_bw_add(&b, 10000 * GB, GB), 0);
	assert_int_equal(kv_bw_add(&b, 1, 1000000), 0);
	assert_int_equal(b.samples, 3);

	/* and a first sample refused (1 B/s) leaves it empty */
	memset(&b, 0, sizeof(b));
	assert_int_equal(kv_bw_add(&b, 1, GB), -ERANGE);
	assert_int_equal(kv_bw_rate(&b), 0);
	assert_int_equal(b.samples, 0);
}

/* Any u64 a client sends: no overflow in the rate, bytes saturate. */
static void test_large_values(void **state)
{
	struct kv_bw b = { 0 };

	assert_int_equal(kv_bw_add(&b, UINT64_MAX, UINT64_MAX), 0);	/* 1 GB/s */
	assert_int_equal(kv_bw_rate(&b), GB);
	assert_int_equal(kv_bw_add(&b, UINT64_MAX, UINT64_MAX / 1000), 0);
	assert_int_equal(b.bytes, UINT64_MAX);
	assert_int_equal(b.samples, 2);
	/* 10 TB/s at most, so avg8 has room: no wrap after many of them */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(kv_bw_add(&b, 10000 * GB, GB), 0);
	assert_int_equal(kv_bw_rate(&b), 10000 * GB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_sample_as_is),
		cmocka_unit_test(test_weight_one_eighth),
		cmocka_unit_test(test_random_against_reference),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_large_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
