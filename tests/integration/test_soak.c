/*
 * test_soak.c - the kill -9 soak (TESTING.md plan 2): a driver puts, gets,
 * evicts and flushes chunks while a second thread kills the daemon with
 * SIGKILL at a random moment (mid-put, mid-demotion, mid-flush); then it
 * restarts the daemon on the same SSD directory and reads every key back.
 *
 * Pass: every read is the exact bytes of its key or a miss, and every key
 * that was durable at the kill (present after the last completed flush,
 * and not evicted since) is found again. KVT_KILLS sets the number of
 * kills: 20 in `make test`, 1000 in `make soak`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"

#define KEYS	64
#define CHUNK	(128u << 10)	/* 64 of them: 8 MiB, within the SSD tier */

enum kstate { ABSENT, MAYBE, DURABLE };

static char ssd_dir[256];
static uint64_t rng = 0x5eed;

static uint64_t rnd(void)
{
	return kvt_mix(rng++);
}

static void fill(void *buf, uint64_t i)
{
	uint64_t *p = buf;

	for (size_t w = 0; w < CHUNK / 8; w++)
		p[w] = kvt_mix(i * 0x100000001b3ull + w);
}

static struct kvc_key key_of(uint64_t i)
{
	return (struct kvc_key){ kvt_mix(i ^ 0xabc), i };
}

struct killer {
	pid_t pid;
	unsigned delay_us;
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;

	usleep(k->delay_us);
	kill(k->pid, SIGKILL);
	return NULL;
}

static void start(struct kvt_daemon *d)
{
	const char *args[] = { "--dram-bytes", "4M", "--ssd-dir", ssd_dir,
			       "--ssd-bytes", "32M", "--log", "warn", NULL };

	assert_int_equal(kvt_start(d, args), 0);
}

/* Read every key back; update the model; count what was found. */
static unsigned verify(struct kvc *c, uint32_t ns, enum kstate *st, void *want,
		       void *got, unsigned *lost)
{
	unsigned found = 0;

	for (uint64_t i = 0; i < KEYS; i++) {
		struct kvc_key k = key_of(i);
		size_t n = 0;
		int ret = kvc_get(c, ns, &k, got, CHUNK, &n);

		if (ret == -ENOENT) {
			if (st[i] == DURABLE)
				(*lost)++;
			st[i] = ABSENT;
			continue;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(n, CHUNK);
		fill(want, i);
		assert_memory_equal(got, want, CHUNK);
		if (st[i] == ABSENT)
			st[i] = MAYBE;	/* an evicted chunk may come back */
		found++;
	}
	return found;
}

static void test_soak(void **state)
{
	const char *env = getenv("KVT_KILLS");
	unsigned kills = env ? (unsigned)atoi(env) : 20;
	enum kstate st[KEYS] = { ABSENT };
	void *want = malloc(CHUNK), *got = malloc(CHUNK);
	unsigned lost = 0, flushes = 0, verified = 0;
	uint64_t ops = 0;

	for (unsigned round = 0; round <= kills; round++) {
		struct kvt_daemon d;
		struct killer k;
		pthread_t th;
		struct kvc *c;
		uint32_t ns;

		start(&d);
		assert_int_equal(kvc_connect(d.sock, &c), 0);
		assert_int_equal(kvc_ns_register(c, "soak", &ns), 0);
		verified += verify(c, ns, st, want, got, &lost);
		assert_int_equal(lost, 0);
		if (round == kills) {
			kvc_close(c);
			assert_int_equal(kvt_stop(&d), 0);
			break;
		}
		k = (struct killer){ d.pid, (unsigned)(rnd() % 40000) };
		assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
		for (;;) {
			uint64_t i = rnd() % KEYS;
			struct kvc_key key = key_of(i);
			unsigned what = (unsigned)(rnd() % 100);
			int ret;

			ops++;
			if (what < 50) {
				fill(want, i);
				ret = kvc_put(c, ns, &key, NULL, 16, 0, want, CHUNK);
				if (ret == 0 && st[i] == ABSENT)
					st[i] = MAYBE;
				if (ret == -EEXIST)
					ret = 0;
			} else if (what < 80) {
				size_t n;

				ret = kvc_get(c, ns, &key, got, CHUNK, &n);
				if (ret == 0) {
					fill(want, i);
					assert_memory_equal(got, want, CHUNK);
				} else if (ret == -ENOENT) {
					assert_true(st[i] != DURABLE);
					ret = 0;
				}
			} else if (what < 95) {
				/* Out of DRAM, then out of the cache. No longer
				 * durable from the moment the request is sent:
				 * the daemon may drop the chunk and die before
				 * its reply comes. */
				if (st[i] == DURABLE)
					st[i] = MAYBE;
				ret = kvc_evict(c, ns, &key, 1, NULL);
				if (ret >= 0)
					ret = kvc_evict(c, ns, &key, 1, NULL);
				if (ret >= 0)
					ret = 0;
			} else {
				struct kvc_flush_result fr;
				uint8_t tiers[KEYS];
				struct kvc_key all[KEYS];

				ret = kvc_flush(c, KVC_TIER_DRAM, 0, &fr);
				for (uint64_t j = 0; !ret && j < KEYS; j++)
					all[j] = key_of(j);
				if (!ret && kvc_lookup(c, ns, all, KEYS, tiers) >= 0) {
					for (uint64_t j = 0; j < KEYS; j++)
						if (tiers[j] != KVC_TIER_NONE)
							st[j] = DURABLE;
					flushes++;
				}
			}
			if (ret < 0)
				break;	/* the daemon is gone */
		}
		pthread_join(th, NULL);
		kvc_close(c);
		kvt_kill(&d);
		kvt_cleanup(&d);
	}
	printf("figure: soak: %u kills, %llu operations, %u flushes, %u chunks verified after restarts, %u durable chunks lost, 0 wrong bytes\n",
	       kills, (unsigned long long)ops, flushes, verified, lost);
	free(want);
	free(got);
}

static int setup(void **state)
{
	return kvt_tmpdir(ssd_dir, sizeof(ssd_dir), NULL, "kvt-soak-");
}

static int teardown(void **state)
{
	return kvt_rmtree(ssd_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_soak),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
