/*
 * cluster_fx.c - the cluster and the remote figures of the remote tier's
 * tests (cluster_fx.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/cluster_fx.h"
#include "tests/lib/clock.h"
#include "tests/lib/rng.h"

struct kvt_cluster cl;
char remote[600];

int cluster_setup(void **state)
{
	if (kvt_cluster_start(&cl))
		return -1;
	snprintf(remote, sizeof(remote), "redis-cluster://%s", cl.seeds);
	return 0;
}

int cluster_setup_tls(void **state)
{
	if (kvt_cluster_start_tls(&cl))
		return -1;
	snprintf(remote, sizeof(remote), "rediss-cluster://%s", cl.seeds);
	return 0;
}

int cluster_teardown(void **state)
{
	kvt_cluster_stop();
	return 0;
}

struct kvc_key key_of(uint64_t i, uint64_t salt)
{
	return (struct kvc_key){ kvt_mix(i ^ salt), i };
}

size_t len_of(uint64_t i)
{
	return 1 + kvt_mix(i * 7 + 3) % CMAX;
}

void fill(unsigned char *p, size_t len, uint64_t i)
{
	uint64_t st = kvt_mix(i);

	for (size_t k = 0; k < len; k++)
		p[k] = (unsigned char)kvt_splitmix(&st);
}

struct kvc *start(struct kvt_daemon *d, const char *const *extra)
{
	const char *args[24] = { "--dram-bytes", "128M", "--log", "info",
				 "--remote", remote, "--remote-timeout-ms", "2000" };
	size_t n = 8;
	struct kvc *c;

	for (size_t i = 0; extra && extra[i] && n < 22; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	assert_int_equal(kvt_start(d, args), 0);
	assert_int_equal(kvc_connect(d->sock, &c), 0);
	return c;
}

void shared_ns(struct kvc *ca, struct kvc *cb, const char *what, uint64_t salt,
	       uint32_t *na, uint32_t *nb)
{
	char name[64];

	snprintf(name, sizeof(name), "%s/%llx", what, (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(ca, name, na), 0);
	assert_int_equal(kvc_ns_register(cb, name, nb), 0);
}

void put_chunks(struct kvc *c, uint32_t ns, uint64_t salt, uint64_t from, uint64_t to)
{
	unsigned char *buf = malloc(CMAX);

	assert_non_null(buf);
	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = key_of(i, salt);

		fill(buf, len_of(i), i);
		assert_int_equal(kvc_put(c, ns, &k, NULL, 16, 0, buf, len_of(i)), 0);
	}
	free(buf);
}

int get_chunk(struct kvc *c, uint32_t ns, uint64_t salt, uint64_t i)
{
	unsigned char *want = malloc(CMAX), *got = malloc(CMAX);
	struct kvc_key k = key_of(i, salt);
	size_t n = 0;
	int ret = kvc_get(c, ns, &k, got, CMAX, &n);

	if (ret == 0) {
		fill(want, len_of(i), i);
		assert_int_equal(n, len_of(i));
		if (memcmp(want, got, n))
			fail_msg("chunk %llu: wrong bytes", (unsigned long long)i);
	} else if (ret != -ENOENT) {
		fail_msg("chunk %llu: kvc_get: %s", (unsigned long long)i, kvc_strerror(ret));
	}
	free(want);
	free(got);
	return ret == 0;
}

void share(const char *const *extra, uint64_t n)
{
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, extra), *cb = start(&b, extra);
	uint64_t salt = kvt_now_ns();
	struct kvc_key keys[100];
	uint8_t tiers[100];
	struct kvc_stats st;
	uint32_t na, nb;
	unsigned exact = 0;

	assert_true(n >= 100 && n % 100 == 0);
	shared_ns(ca, cb, "share", salt, &na, &nb);
	put_chunks(ca, na, salt, 0, n);
	wait_written(ca, n);
	for (uint64_t i = 0; i < n; i += 100) {
		for (unsigned k = 0; k < 100; k++)
			keys[k] = key_of(i + k, salt);
		assert_int_equal(kvc_lookup(cb, nb, keys, 100, tiers), 100);
		for (unsigned k = 0; k < 100; k++)
			assert_int_equal(tiers[k], KVC_TIER_REMOTE);
	}
	for (uint64_t i = 0; i < n; i++)
		exact += get_chunk(cb, nb, salt, i);
	assert_int_equal(exact, n);
	/* Now B has them itself. */
	assert_int_equal(kvc_lookup(cb, nb, keys, 100, tiers), 100);
	assert_int_equal(tiers[0], KVC_TIER_DRAM);
	assert_int_equal(remote_stats(cb, &st)->promotions, n);
	/* The fetches were timed: a planner can weigh the network now. */
	assert_true(remote_stats(cb, &st)->read_samples > 0);
	assert_true(remote_stats(cb, &st)->read_bw > 0);
	/* At least once per key; the gets right after their lookups go
	 * straight to the load (the lookup's hint), later ones ask again. */
	assert_true(remote_stats(cb, &st)->hits >= n);
	assert_int_equal(st.checksum_failures, 0);
	/* No connection to the cluster failed on either side. */
	assert_false(kvt_log_has(&a, "failed"));
	assert_false(kvt_log_has(&b, "failed"));
	stop(&a, ca);
	stop(&b, cb);
}

void stop(struct kvt_daemon *d, struct kvc *c)
{
	kvc_close(c);
	assert_int_equal(kvt_stop(d), 0);
}

const struct kvc_tier_stats *remote_stats(struct kvc *c, struct kvc_stats *st)
{
	assert_int_equal(kvc_stats(c, st), 0);
	for (unsigned i = 0; i < st->n_tiers; i++)
		if (!strcmp(st->tiers[i].name, "remote"))
			return &st->tiers[i];
	fail_msg("no remote tier in STATS");
	return NULL;
}

void wait_written(struct kvc *c, uint64_t n)
{
	uint64_t t0 = kvt_now_ns();
	struct kvc_stats st;

	while (remote_stats(c, &st)->demotions < n) {
		if (kvt_now_ns() - t0 > WAIT_MS * 1000000ull)
			fail_msg("%llu of %llu chunks written through in %u ms",
				 (unsigned long long)remote_stats(c, &st)->demotions,
				 (unsigned long long)n, WAIT_MS);
		kvt_sleep_ms(20);
	}
}
