/*
 * test_nogpu.c - the GPU parts where there is no GPU (CI): a daemon asked
 * for an HBM tier starts without one, says why in one line and serves from
 * DRAM; the client's GPU calls answer KVC_ENOGPU and leave nothing held;
 * the layout helper checks its arguments. On a machine with a GPU the
 * daemon does get its tier, and the first case checks that instead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"

static struct kvt_daemon kvd;

static int setup(void **state)
{
	const char *args[] = { "--hbm-bytes", "64M", "--gpu", "0", "--log", "info", NULL };

	return kvt_start(&kvd, args);
}

static int teardown(void **state)
{
	return kvt_stop(&kvd) == 0 ? 0 : -1;
}

static void test_daemon_without_gpu(void **state)
{
	bool gpu = kv_gpu_available(NULL, NULL, 0);
	struct kvc_stats st;
	struct kvc *c;
	bool has_hbm = false;

	assert_int_equal(kvc_connect(kvd.sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	for (unsigned i = 0; i < st.n_tiers; i++)
		has_hbm = has_hbm || !strcmp(st.tiers[i].name, "hbm");
	assert_int_equal(has_hbm, gpu);
	if (!gpu)
		assert_true(kvt_log_has(&kvd, "no HBM tier"));
	assert_string_equal(st.tiers[0].name, gpu ? "hbm" : "dram");
	kvc_close(c);
}

static void test_client_gpu_calls(void **state)
{
	char host[4096] = { 7 };
	struct kvc_key k = { 1, 2 };
	struct kvc_gpu_desc g = { .key = k, .dev = host, .cap = sizeof(host) };
	struct kvc_put_desc p = { .key = { 3, 4 }, .data = host, .bytes = sizeof(host) };
	struct kvc_paged_desc pd = { .key = k };
	void *kv[2] = { host, host };
	struct kvc_layout l = {
		.kind = KVC_LAYOUT_VLLM, .layers = 2, .block_size = 16, .num_blocks = 4,
		.kv_heads = 2, .head_dim = 64, .elem_bytes = 2, .chunk_tokens = 32, .k = kv,
	};
	struct kvc_stats st;
	struct kvc *c;
	uint32_t ns;

	if (kv_gpu_available(NULL, NULL, 0))
		skip();
	assert_int_equal(kvc_connect(kvd.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "nogpu", &ns), 0);
	assert_int_equal(kvc_put(c, ns, &k, NULL, 32, 0, host, sizeof(host)), 0);
	assert_int_equal(kvc_gpu_open(c, -1, 0), -KVC_ENOGPU);
	assert_int_equal(kvc_get_gpu(c, ns, &g, 1, NULL, NULL), -KVC_ENOGPU);
	assert_int_equal(kvc_put_gpu(c, ns, &p, 1, 0, NULL, NULL), -KVC_ENOGPU);
	assert_int_equal(kvc_get_paged(c, ns, &l, &pd, 1, NULL, NULL), -KVC_ENOGPU);
	assert_int_equal(kvc_gpu_mode(c, KVC_GPU_STAGED), -KVC_ENOGPU);
	assert_int_equal(kvc_gpu_flush(c), 0);
	/* Nothing was pinned or reserved by the refused calls. */
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.pinned_chunks, 0);
	assert_int_equal(st.pending_chunks, 0);
	assert_int_equal(kvc_get(c, ns, &k, host, sizeof(host), NULL), 0);
	assert_int_equal(host[0], 7);
	kvc_close(c);
}

static void test_layout_bytes(void **state)
{
	void *kv[32] = { 0 };
	struct kvc_layout l = {
		.kind = KVC_LAYOUT_VLLM, .layers = 32, .block_size = 16, .num_blocks = 100,
		.kv_heads = 8, .head_dim = 128, .elem_bytes = 2, .chunk_tokens = 256, .k = kv,
	};

	assert_int_equal(kvc_layout_chunk_bytes(&l), 32ull << 20);	/* Llama-3-8B */
	l.chunk_tokens = 250;		/* not whole blocks */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.chunk_tokens = 256;
	l.kind = KVC_LAYOUT_SGLANG;	/* token slots: block_size must be 1 */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.block_size = 1;
	assert_int_equal(kvc_layout_chunk_bytes(&l), 32ull << 20);
	l.head_dim = 3;			/* a row of 48 bytes: fine */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 32ull * 2 * 256 * 48);
	l.elem_bytes = 1;		/* 24 bytes: not a multiple of 16 */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.elem_bytes = 2;
	l.kind = KVC_LAYOUT_HF;		/* a head of 6 bytes: each is a piece of its own */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.head_dim = 128;		/* 256-byte heads: fine */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 32ull << 20);
	l.block_size = 16;		/* token positions: block_size must be 1 */
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.block_size = 1;
	l.kind = (enum kvc_layout_kind)5;
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	l.kind = (enum kvc_layout_kind)9;
	assert_int_equal(kvc_layout_chunk_bytes(&l), 0);
	assert_int_equal(kvc_layout_chunk_bytes(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemon_without_gpu),
		cmocka_unit_test(test_client_gpu_calls),
		cmocka_unit_test(test_layout_bytes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
