/*
 * test_gpu_ryw.c - read-your-writes for libkvc's GPU puts, on a GPU: a
 * chunk put with kvc_put_gpu or kvc_put_paged is found, and read back
 * exact, by this connection and another one, as soon as the put is known
 * to be done (its done event, a stream sync, or kvc_gpu_flush), round
 * after round.
 *
 * The fixture and the checks are in gpu_fx.c.
 *
 * Without a GPU it exits 77 before cmocka starts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"
#include "tests/gpu/gpu_fx.h"

/* ---- read-your-writes for GPU puts --------------------------------------- */

#define RYW_ROUNDS	1000	/* kvc_put_gpu rounds (the issue asks for >= 1000) */
#define RYW_PAGED	256	/* kvc_put_paged rounds */

static const char *const ryw_how[3] = { "its done event", "a stream sync",
					 "kvc_gpu_flush" };

/* Wait for round r's put on fx.s one of three ways (ryw_how), in turn. */
static void ryw_wait(struct kvc *c, unsigned r)
{
	if (r % 3 == 0)
		sync_event(0, "read-your-writes: the put's done event");
	else if (r % 3 == 1)
		expect_ret(kv_gpu_stream_sync(fx.s), 0, "read-your-writes: stream sync");
	else
		expect_ret(kvc_gpu_flush(c), 0, "read-your-writes: kvc_gpu_flush");
}

/* The chunk just put is visible at once from the putting connection and
 * from another one, in a tier of mask. */
static void ryw_visible(struct kvc *c, uint32_t ns, struct kvc *c2, uint32_t ns2,
			const struct kvc_key *key, unsigned mask, unsigned round)
{
	const char *how = ryw_how[round % 3];
	struct kvc *conn[2] = { c, c2 };
	uint32_t nss[2] = { ns, ns2 };

	for (int i = 0; i < 2; i++) {
		uint8_t tier = 0xee;
		int ret = kvc_lookup(conn[i], nss[i], key, 1, &tier);

		if (ret != 1)
			fail_msg("read-your-writes, round %u, after %s: kvc_lookup from the %s "
				 "connection returned %d (%s), want 1; seed %#" PRIx64, round, how,
				 i ? "other" : "putting", ret, err_name(ret), seed);
		check_tier(tier, mask, "read-your-writes: kvc_lookup", round);
	}
}

/*
 * kvc.h: once a put's done event has fired, or its stream has been
 * synchronized, or kvc_gpu_flush() has returned, every lookup and get from
 * any connection sees the chunk. Each round puts a new chunk of new bytes
 * (into DRAM, or HBM every other round), waits one of those three ways in
 * turn, and looks it up at once from both connections; every 8th round
 * also reads it back byte for byte from the other connection, to the GPU
 * and to the host. Then the same through kvc_put_paged. Before the fix,
 * the commit ran on the library's thread after the event, and the first
 * lookup could miss.
 */
static void test_put_read_your_writes(void **state)
{
	const char *args[] = { "--dram-bytes", "256M", "--hbm-bytes", "128M", "--gpu", "0",
			       "--hbm-promote", "off", "--log", "warn", NULL };
	const size_t bytes = 64 * 1024 + 16;	/* not a power of two */
	const unsigned both = TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM);
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	const size_t most = bytes > cb ? bytes : cb;	/* the larger of the two chunks */
	uint8_t *src = fx_dev(bytes), *dev = fx_dev(most + SPARE);
	uint8_t *want = fx_host(most), *buf = fx_host(most + SPARE);
	struct kvt_daemon *d = fx_start(args);
	struct kvc *c, *c2;
	struct cache ca;
	uint32_t ns, ns2;

	c = fx_connect(d->sock, "ryw", &ns);
	c2 = fx_connect(d->sock, "ryw", &ns2);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (unsigned r = 0; r < RYW_ROUNDS; r++) {
		struct kvc_put_desc pd = { 0 };
		bool hbm = r & 1;

		fill(want, bytes, 7000 + (uint64_t)r);
		upload(src, want, bytes);
		pd.key = key_of(7000 + (uint64_t)r);
		pd.tokens = 16;
		pd.data = src;
		pd.bytes = bytes;
		pd.status = 1;
		expect_ret(kvc_put_gpu(c, ns, &pd, 1, hbm ? KVC_PUT_HBM : 0, fx.s, fx.ev[0]), 1,
			   "read-your-writes: kvc_put_gpu");
		expect_ret(pd.status, 0, "read-your-writes: kvc_put_gpu status");
		ryw_wait(c, r);
		ryw_visible(c, ns, c2, ns2, &pd.key, hbm ? both : TIER_BIT(KVC_TIER_DRAM), r);
		if (r % 8 == 0) {
			uint8_t *w[1] = { want };

			check_get_gpu(c2, ns2, &pd.key, w, 1, bytes,
				      hbm ? both : TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
				      "read-your-writes: kvc_get_gpu from the other connection");
			check_get_host(c2, ns2, &pd.key, want, bytes, buf,
				       "read-your-writes: kvc_get from the other connection", r);
		}
	}
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush of the other connection");

	/* kvc_put_paged: the commit follows the gather on the same stream. */
	cache_open(&ca, &sh);
	for (unsigned r = 0; r < RYW_PAGED; r++) {
		struct kvc_paged_desc pd = { 0 };
		int32_t *pages = random_pages(&ca, 1);
		bool hbm = r & 1;

		if (r % 32 == 0)
			cache_random(&ca, 7000 + r);
		pd.key = key_of(9000 + (uint64_t)r);
		pd.pages = pages;
		pd.position = 0;
		pd.status = 1;
		expect_ret(kvc_put_paged(c, ns, &ca.l, &pd, 1, hbm ? KVC_PUT_HBM : 0, fx.s,
					 fx.ev[0]), 1, "read-your-writes: kvc_put_paged");
		expect_ret(pd.status, 0, "read-your-writes: kvc_put_paged status");
		ryw_wait(c, r);
		ryw_visible(c, ns, c2, ns2, &pd.key, hbm ? both : TIER_BIT(KVC_TIER_DRAM), r);
		if (r % 8 == 0) {
			gather_host(&ca, pages, want);
			check_get_host(c2, ns2, &pd.key, want, cb, buf,
				       "read-your-writes: kvc_get of a paged put", r);
		}
		/* random_pages() took a host buffer: give it back. */
		for (int i = 0; i < MAX_HOST; i++)
			if (fx.host[i] == (void *)pages) {
				free(fx.host[i]);
				fx.host[i] = NULL;
			}
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	fx_close(c2);
	fx_close(c);
	fx_stop(d);
}

int main(void)
{
	const struct CMUnitTest own_daemon_tests[] = {
		cmocka_unit_test_setup_teardown(test_put_read_your_writes, setup, teardown),
	};
	int ret;

	ret = gpu_start();
	if (ret)
		return ret;
	ret = cmocka_run_group_tests_name("gpu read-your-writes, a daemon each", own_daemon_tests,
					  NULL, NULL);
	return ret ? 1 : 0;
}
