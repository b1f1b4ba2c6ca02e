/*
 * issue_12_planstats.c - issue 12: the daemon tells clients what each
 * tier's reads cost, and counts the plans clients make.
 *
 *   - BW_REPORT samples of the DRAM tier give exactly the average that
 *     docs/protocol.md's integer recurrence predicts (weight 1/8, the first
 *     sample as is), in STATS, kvc_stats() and `kvctl stats`;
 *   - bad samples (a tier the daemon lacks, the SSD tier, zero bytes or
 *     time, rates over 10 TB/s or under 1 KB/s) get their documented
 *     status, change nothing, leave a DEBUG line, and the daemon keeps
 *     serving exact bytes; the bounds themselves are taken;
 *   - PLAN_REPORT counts each kind and its tokens, refuses other kinds,
 *     and every connection sees the same counts;
 *   - chunks flushed to SSD and dropped from DRAM come back exact, and the
 *     SSD tier's read_samples, read_bytes and read_bw grow with them: one
 *     sample per batch of reads, its bytes exactly the chunks', its rate
 *     no lower than the bytes over the client's own wall time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>

#include "tests/lib/tmpdir.h"
#include "tests/regress/issue_11.h"

#define GB 1000000000ull

static struct kvt_daemon dm;
static char ssd_dir[300];

static int setup(void **state)
{
	memset(&dm, 0, sizeof(dm));
	return kvt_tmpdir(ssd_dir, sizeof(ssd_dir), NULL, "kvt-i12-");
}

static int teardown(void **state)
{
	kvt_kill(&dm);
	kvt_cleanup(&dm);
	return kvt_rmtree(ssd_dir) == 0 ? 0 : -1;
}

/* A daemon with DRAM and SSD tiers, its refusals logged (DEBUG, net). */
static void start(void)
{
	const char *args[] = { "--dram-bytes", "64M", "--ssd-dir", ssd_dir,
			       "--ssd-bytes", "64M", "--log", "debug:net", NULL };

	assert_int_equal(kvt_start(&dm, args), 0);
}

static struct kvc_tier_stats tier(struct kvc *c, const char *name)
{
	struct kvc_stats st;

	assert_int_equal(kvc_stats(c, &st), 0);
	for (unsigned i = 0; i < st.n_tiers; i++)
		if (!strcmp(st.tiers[i].name, name))
			return st.tiers[i];
	fail_msg("no tier %s", name);
	return st.tiers[0];
}

/* The average docs/protocol.md promises, as a client computes it. */
struct model {
	uint64_t avg8, samples, bytes;
};

static void model_add(struct model *m, uint64_t bytes, uint64_t ns)
{
	uint64_t rate = (uint64_t)((unsigned __int128)bytes * GB / ns);

	m->avg8 = m->samples ? m->avg8 - m->avg8 / 8 + rate : rate * 8;
	m->samples++;
	m->bytes += bytes;
}

static void test_bw_average(void **state)
{
	/* a 32 MiB chunk in 0.6 ms (55.9 GB/s, PCIe 5), then slower and
	 * faster copies, as CUDA events would time them */
	static const uint64_t samples[][2] = {
		{ 32u << 20, 600000 }, { 32u << 20, 1200000 }, { 4u << 20, 95000 },
		{ 256u << 10, 15500 }, { 32u << 20, 610000 }, { 1u << 30, 19600000 },
		{ 16u << 20, 305000 }, { 64u << 10, 3900 }, { 32u << 20, 590000 },
	};
	struct model m = { 0 };
	struct kvc_tier_stats t;
	char out[8192], want[64];
	struct kvc *c;

	start();
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	t = tier(c, "dram");
	assert_int_equal(t.read_bw, 0);
	assert_int_equal(t.read_samples, 0);
	assert_int_equal(t.read_bytes, 0);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		assert_int_equal(kvc_report_bw(c, KVC_TIER_DRAM, samples[i][0], samples[i][1]), 0);
		model_add(&m, samples[i][0], samples[i][1]);
		t = tier(c, "dram");
		if (i == 0)	/* the first is taken as is: 32 MiB in 0.6 ms */
			assert_int_equal(t.read_bw, (32ull << 20) * GB / 600000);
		assert_int_equal(t.read_bw, m.avg8 / 8);
		assert_int_equal(t.read_samples, m.samples);
		assert_int_equal(t.read_bytes, m.bytes);
	}
	printf("figure: dram read_bw after %" PRIu64 " samples: %" PRIu64 " bytes/s\n",
	       m.samples, m.avg8 / 8);
	/* one estimator per tier: the SSD tier has no sample */
	t = tier(c, "ssd");
	assert_int_equal(t.read_samples, 0);
	assert_int_equal(t.read_bw, 0);

	/* kvctl shows the same figures */
	assert_int_equal(i11_kvctl(&dm, "stats --json", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "\"read_bw\": %" PRIu64 ",", m.avg8 / 8);
	if (!strstr(out, want))
		fail_msg("kvctl stats --json lacks %s:\n%s", want, out);
	assert_int_equal(i11_kvctl(&dm, "stats", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%.3f GB/s (%" PRIu64 " samples",
		 (double)(m.avg8 / 8) / 1e9, m.samples);
	if (!strstr(out, want))
		fail_msg("kvctl stats lacks '%s':\n%s", want, out);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

static void test_bw_refused(void **state)
{
	static const struct {
		uint8_t tier;
		uint64_t bytes, ns;
		int ret;
	} bad[] = {
		{ KVC_TIER_HBM, 1u << 20, 100000, -KVC_ENOTIER },	/* no GPU tier */
		{ 3, 1u << 20, 100000, -KVC_ENOTIER },
		{ KVC_TIER_NONE, 1u << 20, 100000, -KVC_ENOTIER },
		{ KVC_TIER_SSD, 1u << 20, 100000, -EINVAL },	/* timed by the daemon */
		{ KVC_TIER_DRAM, 0, 100000, -EINVAL },
		{ KVC_TIER_DRAM, 1u << 20, 0, -EINVAL },
		{ KVC_TIER_DRAM, 10000 * GB + 1, GB, -ERANGE },	/* over 10 TB/s */
		{ KVC_TIER_DRAM, UINT64_MAX, 1, -ERANGE },
		{ KVC_TIER_DRAM, 999, GB, -ERANGE },		/* under 1 KB/s */
		{ KVC_TIER_DRAM, 1, UINT64_MAX, -ERANGE },
	};
	struct kvc_tier_stats t;
	struct kvc *c;
	uint32_t ns;

	start();
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "i12/refused", &ns), 0);
	assert_int_equal(kvc_report_bw(c, KVC_TIER_DRAM, 8 * GB, GB), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(kvc_report_bw(c, bad[i].tier, bad[i].bytes, bad[i].ns),
				 bad[i].ret);
		/* nothing counted, and the connection serves on */
		t = tier(c, "dram");
		assert_int_equal(t.read_samples, 1);
		assert_int_equal(t.read_bw, 8 * GB);
		assert_int_equal(tier(c, "ssd").read_samples, 0);
		assert_int_equal(kvc_ping(c, NULL), 0);
		assert_int_equal(i11_put(c, ns, 12, i, i + 1, 64 << 10), 1);
		assert_int_equal(i11_check(c, ns, 12, 0, i + 1, 64 << 10, NULL), i + 1);
	}
	if (!kvt_log_has(&dm, "bandwidth sample from pid") ||
	    !kvt_log_has(&dm, "the daemon times the SSD tier itself") ||
	    !kvt_log_has(&dm, "Numerical result out of range")) {
		kvt_dump_log(&dm);
		fail_msg("no DEBUG line for a refused sample");
	}

	/* the bounds are plausible: exactly 10 TB/s and exactly 1 KB/s */
	assert_int_equal(kvc_report_bw(c, KVC_TIER_DRAM, 10000 * GB, GB), 0);
	assert_int_equal(kvc_report_bw(c, KVC_TIER_DRAM, 1000, GB), 0);
	t = tier(c, "dram");
	assert_int_equal(t.read_samples, 3);
	/* 8 GB/s, then 10 TB/s, then 1 KB/s, by the recurrence */
	{
		uint64_t a8 = 8 * 8 * GB;

		a8 = a8 - a8 / 8 + 10000 * GB;
		a8 = a8 - a8 / 8 + 1000;
		assert_int_equal(t.read_bw, a8 / 8);
	}
	kvc_close(c);

	/* a new client is served as well */
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "i12/refused", &ns), 0);
	assert_int_equal(i11_check(c, ns, 12, 0, 10, 64 << 10, NULL), 10);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

static void test_plans(void **state)
{
	struct kvc_stats st;
	struct kvc *c, *c2;
	char out[8192];

	start();
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_connect(dm.sock, &c2), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.plans_loaded + st.plans_computed + st.plans_both, 0);
	assert_int_equal(st.plan_tokens_loaded + st.plan_tokens_computed, 0);

	assert_int_equal(kvc_report_plan(c, KVC_PLAN_LOADED, 1024, 0), 0);
	assert_int_equal(kvc_report_plan(c, KVC_PLAN_LOADED, 256, 0), 0);
	assert_int_equal(kvc_report_plan(c2, KVC_PLAN_COMPUTED, 0, 512), 0);
	assert_int_equal(kvc_report_plan(c2, KVC_PLAN_BOTH, 768, 1280), 0);
	assert_int_equal(kvc_report_plan(c, KVC_PLAN_BOTH, 256, 256), 0);
	assert_int_equal(kvc_report_plan(c, KVC_PLAN_BOTH, 512, 0), 0);
	/* other kinds are refused and counted nowhere */
	assert_int_equal(kvc_report_plan(c, 0, 100, 100), -EINVAL);
	assert_int_equal(kvc_report_plan(c, 4, 100, 100), -EINVAL);
	assert_int_equal(kvc_report_plan(c2, UINT32_MAX, 100, 100), -EINVAL);
	assert_int_equal(kvc_ping(c, NULL), 0);

	/* every connection sees the daemon's counts */
	assert_int_equal(kvc_stats(c2, &st), 0);
	assert_int_equal(st.plans_loaded, 2);
	assert_int_equal(st.plans_computed, 1);
	assert_int_equal(st.plans_both, 3);
	assert_int_equal(st.plan_tokens_loaded, 1024 + 256 + 768 + 256 + 512);
	assert_int_equal(st.plan_tokens_computed, 512 + 1280 + 256);
	kvc_close(c2);

	assert_int_equal(i11_kvctl(&dm, "stats --json", out, sizeof(out)), 0);
	if (!strstr(out, "\"plans_loaded\": 2,") || !strstr(out, "\"plans_both\": 3,") ||
	    !strstr(out, "\"plan_tokens_computed\": 2048"))
		fail_msg("kvctl stats --json lacks the plan counts:\n%s", out);
	assert_int_equal(i11_kvctl(&dm, "stats", out, sizeof(out)), 0);
	if (!strstr(out, "loaded 2, computed 1, both 3 (tokens loaded 2816, computed 2048)"))
		fail_msg("kvctl stats lacks the plan counts:\n%s", out);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

/* Wait until the n chunks are all in DRAM again (after a PREFETCH). */
static void wait_dram(struct kvc *c, uint32_t ns, unsigned n)
{
	struct kvc_key keys[16];
	uint8_t tiers[16];

	for (unsigned i = 0; i < n; i++)
		keys[i] = i11_key(i);
	for (int tries = 0; tries < 1000; tries++) {
		unsigned in = 0;

		assert_true(kvc_lookup(c, ns, keys, n, tiers) >= 0);
		for (unsigned i = 0; i < n; i++)
			in += tiers[i] == KVC_TIER_DRAM;
		if (in == n)
			return;
		usleep(5000);
	}
	fail_msg("prefetched chunks never reached DRAM");
}

/* Write the chunks back, drop their DRAM copies: they are on SSD only. */
static void to_ssd_only(struct kvc *c, unsigned n)
{
	struct kvc_flush_result fr;

	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, KVC_FLUSH_DROP, &fr), 0);
	assert_int_equal(fr.chunks, n);
	assert_int_equal(tier(c, "dram").chunks, 0);
	assert_int_equal(tier(c, "ssd").chunks, n);
}

static void test_ssd_reads(void **state)
{
	enum { N = 8, LEN = 1u << 20 };
	struct kvc_get_desc d[N];
	struct kvc_tier_stats t0, t1, t2, t3;
	void *want = malloc(LEN);
	char *bufs = malloc((size_t)N * LEN);
	double wall;
	struct kvc *c;
	uint32_t ns;

	start();
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	ns = i11_ns_with(c, "i12/ssd", 9, N, LEN);
	to_ssd_only(c, N);
	t0 = tier(c, "ssd");
	assert_int_equal(t0.read_samples, 0);
	assert_int_equal(t0.read_bytes, 0);
	assert_int_equal(t0.read_bw, 0);

	/* One get of all of them: one PIN, one batch of reads, one sample. */
	for (unsigned i = 0; i < N; i++)
		d[i] = (struct kvc_get_desc){ .key = i11_key(i), .buf = bufs + (size_t)i * LEN,
					      .cap = LEN };
	wall = i11_now();
	assert_int_equal(kvc_get_batch(c, ns, d, N), N);
	wall = i11_now() - wall;
	for (unsigned i = 0; i < N; i++) {
		i11_fill(want, LEN, 9, i);
		assert_int_equal(d[i].status, 0);
		assert_int_equal(d[i].bytes, LEN);
		assert_memory_equal(d[i].buf, want, LEN);
	}
	t1 = tier(c, "ssd");
	assert_int_equal(t1.promotions - t0.promotions, N);
	assert_int_equal(t1.read_samples, 1);
	assert_int_equal(t1.read_bytes, (uint64_t)N * LEN);
	assert_true(t1.read_bw > 0);
	/* the daemon timed less than the client waited, so its rate is
	 * at least the bytes over the client's wall time */
	assert_true((double)t1.read_bw >= (double)N * LEN / wall);
	printf("figure: ssd read_bw %.3f GB/s over %u MiB (client: %.3f GB/s)\n",
	       (double)t1.read_bw / 1e9, N, (double)N * LEN / wall / 1e9);

	/* One at a time: a batch each. */
	to_ssd_only(c, N);
	assert_int_equal(i11_check(c, ns, 9, 0, N, LEN, NULL), N);
	t2 = tier(c, "ssd");
	assert_int_equal(t2.read_samples, 1 + N);
	assert_int_equal(t2.read_bytes, 2ull * N * LEN);
	assert_true(t2.read_bw > 0);

	/* PREFETCH reads count too, once they are in. */
	to_ssd_only(c, N);
	{
		struct kvc_key keys[N];

		for (unsigned i = 0; i < N; i++)
			keys[i] = i11_key(i);
		assert_int_equal(kvc_prefetch(c, ns, keys, N, NULL), N);
	}
	wait_dram(c, ns, N);
	t3 = tier(c, "ssd");
	assert_true(t3.read_samples > t2.read_samples);
	assert_int_equal(t3.read_bytes, 3ull * N * LEN);
	assert_int_equal(i11_check(c, ns, 9, 0, N, LEN, NULL), N);

	/* DRAM copies clients make are not the daemon's to time */
	assert_int_equal(tier(c, "dram").read_samples, 0);
	kvc_close(c);
	free(want);
	free(bufs);
	assert_int_equal(kvt_stop(&dm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bw_average, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bw_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssd_reads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
