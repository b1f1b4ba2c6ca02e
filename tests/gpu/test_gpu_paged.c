/*
 * test_gpu_paged.c - libkvc's paged GPU API against a live daemon, on a
 * GPU.
 *
 *  2. kvc_put_paged / kvc_get_paged for every layout kind (vLLM, vLLM with
 *     K and V apart, FlashInfer, SGLang, Hugging Face) in both DRAM modes
 *     (ZEROCOPY and STAGED), the stored chunk checked against a CPU
 *     construction of the layer-major layout; for HF also chunks put from
 *     the host, loaded at consecutive positions from an odd one and checked
 *     against transformers' own index formula, then put back from the HF
 *     tensors and read with kvc_get_gpu;
 *  3. kvc_get_paged_begin/_layers/_end, one layer and one event at a time.
 *
 * The engine caches and the checks are in gpu_fx.c.
 *
 * Without a GPU it exits 77 before cmocka starts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/kvc.h"
#include "tests/gpu/gpu_fx.h"

/* ---- 2. paged caches, every layout, both modes -------------------------- */

static void paged_once(enum kvc_layout_kind kind, enum kvc_gpu_mode mode, uint64_t round)
{
	struct shape sh = small_shape(kind);
	const size_t n = 6, cb = shape_chunk_bytes(&sh);
	struct kvc_paged_desc d[6];
	struct kvc_key keys[7];
	uint8_t *want[7], *buf = fx_host(cb);
	struct cache a, b;
	struct kvc *c1, *c2;
	uint32_t ns1, ns2;
	char name[64], what[96];
	int32_t *pa;
	int ret;

	snprintf(name, sizeof(name), "paged-%s-%s", kind_name(kind), mode_name(mode));
	c1 = fx_connect(shared_d.sock, name, &ns1);
	expect_ret(kvc_gpu_open(c1, 0, 0), 0, "kvc_gpu_open");
	expect_ret(kvc_gpu_mode(c1, mode), KVC_GPU_AUTO, "kvc_gpu_mode: first, the default");
	expect_ret(kvc_gpu_mode(c1, mode), (int)mode, "kvc_gpu_mode: the previous mode");

	/* Put chunks gathered from a random cache, as a prefix chain. */
	cache_open(&a, &sh);
	cache_random(&a, round);
	pa = random_pages(&a, n);
	memset(d, 0, sizeof(d));
	for (size_t i = 0; i < n; i++) {
		keys[i] = key_of(round * 100 + i);
		d[i].key = keys[i];
		d[i].pages = pa + i * a.ppc;
		d[i].parent = i ? keys[i - 1] : keys[0];
		d[i].has_parent = i > 0;
		d[i].position = (uint32_t)i * sh.chunk_tokens;
		d[i].status = 1;
	}
	ret = kvc_put_paged(c1, ns1, &a.l, d, n, 0, fx.s, fx.ev[0]);
	snprintf(what, sizeof(what), "kvc_put_paged (%s, %s)", kind_name(kind), mode_name(mode));
	expect_ret(ret, (int)n, what);
	for (size_t i = 0; i < n; i++)
		expect_ret(d[i].status, 0, "kvc_put_paged: status");
	sync_event(0, "kvc_put_paged: done event");
	expect_ret(kvc_gpu_flush(c1), 0, "kvc_gpu_flush");
	for (size_t i = 0; i < n; i++)
		d[i].status = 1;
	expect_ret(kvc_put_paged(c1, ns1, &a.l, d, n, 0, fx.s, fx.ev[0]), 0,
		   "kvc_put_paged of cached keys");
	for (size_t i = 0; i < n; i++)
		expect_ret(d[i].status, -EEXIST, "kvc_put_paged of a cached key: status");
	sync_event(0, "kvc_put_paged: done event");
	expect_ret(kvc_gpu_flush(c1), 0, "kvc_gpu_flush");

	/* As stored: the layer-major chunk, built here on the CPU. */
	snprintf(what, sizeof(what), "chunk put by kvc_put_paged (%s, %s), read by kvc_get",
		 kind_name(kind), mode_name(mode));
	for (size_t i = 0; i < n; i++) {
		want[i] = fx_host(cb);
		gather_host(&a, pa + i * a.ppc, want[i]);
		check_get_host(c1, ns1, &keys[i], want[i], cb, buf, what, i);
	}

	/* Clear the source; scatter into a poisoned second cache at other pages,
	 * from another connection, with a missing key in the middle. */
	poison_dev(a.dev, a.bytes);
	c2 = fx_connect(shared_d.sock, name, &ns2);
	expect_ret(kvc_gpu_open(c2, 0, 0), 0, "kvc_gpu_open");
	kvc_gpu_mode(c2, mode);
	cache_open(&b, &sh);
	memmove(&keys[4], &keys[3], 3 * sizeof(keys[0]));
	memmove(&want[4], &want[3], 3 * sizeof(want[0]));
	keys[3] = key_of(round * 100 + 99);
	want[3] = NULL;
	snprintf(what, sizeof(what), "kvc_get_paged (%s, %s)", kind_name(kind), mode_name(mode));
	check_get_paged(c2, ns2, &b, keys, want, n + 1, TIER_BIT(KVC_TIER_DRAM), what);
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush");
	fx_close(c2);
	fx_close(c1);
}

static void paged_roundtrip(enum kvc_layout_kind kind)
{
	paged_once(kind, KVC_GPU_ZEROCOPY, 2 * (uint64_t)kind);
	paged_once(kind, KVC_GPU_STAGED, 2 * (uint64_t)kind + 1);
}

static void test_paged_vllm(void **state)
{
	paged_roundtrip(KVC_LAYOUT_VLLM);
}

static void test_paged_vllm_split(void **state)
{
	paged_roundtrip(KVC_LAYOUT_VLLM_SPLIT);
}

static void test_paged_flashinfer(void **state)
{
	paged_roundtrip(KVC_LAYOUT_FLASHINFER);
}

static void test_paged_sglang(void **state)
{
	paged_roundtrip(KVC_LAYOUT_SGLANG);
}

/*
 * The HF cache image after n chunks were loaded at the positions from
 * first on, by transformers' formula (K and V [1, H, cap, D] each: token
 * t's head h at (h * cap + t) * D), not the fixture's page_off().
 */
static void hf_image(struct cache *b, uint8_t *const *chunks, size_t n, uint32_t first)
{
	const struct shape *sh = &b->sh;
	const size_t seg = (size_t)sh->head_dim * sh->elem_bytes;
	const size_t cap = sh->num_blocks;

	for (uint32_t l = 0; l < sh->layers; l++) {
		for (unsigned kv = 0; kv < 2; kv++) {
			uint8_t *t = b->want + ((uint8_t *)(kv ? b->v[l] : b->k[l]) - b->dev);

			for (size_t h = 0; h < sh->kv_heads; h++)
				for (uint32_t tok = 0; tok < n * sh->chunk_tokens; tok++)
					memcpy(t + (h * cap + first + tok) * seg,
					       chunks[tok / sh->chunk_tokens] + h * seg +
					       chunk_off(b, l, kv, tok % sh->chunk_tokens), seg);
		}
	}
}

/*
 * HF as transformers has it: n chunks made on the CPU and put from the
 * host as a prefix chain, loaded with kvc_get_paged into poisoned
 * [1, H, cap, D] tensors at the consecutive positions from first, every
 * byte checked (hf_image()); then the same positions put back
 * under new keys with kvc_put_paged and read with kvc_get_gpu: the chunks
 * as made.
 */
static void hf_positions(enum kvc_gpu_mode mode, uint64_t round, uint32_t first)
{
	struct shape sh = small_shape(KVC_LAYOUT_HF);
	enum { N = 4 };
	const size_t cb = shape_chunk_bytes(&sh);
	const uint32_t T = sh.chunk_tokens;
	struct kvc_paged_desc d[N];
	struct kvc_key keys[N], back[N];
	uint8_t *chunks[N];
	int32_t pages[N * 32];
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *host = fx_host(cb + SPARE);
	struct cache b;
	struct kvc *c;
	uint32_t ns;
	char name[64], what[128];

	assert_true(T <= 32 && first + N * T <= sh.num_blocks);
	snprintf(name, sizeof(name), "hf-%s", mode_name(mode));
	c = fx_connect(shared_d.sock, name, &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	kvc_gpu_mode(c, mode);
	for (size_t i = 0; i < N; i++) {
		chunks[i] = fx_host(cb);
		fill(chunks[i], cb, round * 100 + i);
		keys[i] = key_of(round * 100 + i);
		back[i] = key_of(round * 100 + 50 + i);
	}
	put_host_chain(c, ns, keys, chunks, N, cb, T);

	cache_open(&b, &sh);
	cache_poison(&b);
	memset(d, 0, sizeof(d));
	for (uint32_t i = 0; i < N * T; i++)
		pages[i] = (int32_t)(first + i);
	for (size_t i = 0; i < N; i++) {
		d[i].key = keys[i];
		d[i].pages = pages + i * T;
		d[i].status = 1;
	}
	snprintf(what, sizeof(what), "kvc_get_paged (hf, %s, positions from %u)",
		 mode_name(mode), first);
	expect_ret(kvc_get_paged(c, ns, &b.l, d, N, fx.s, fx.ev[0]), N, what);
	for (size_t i = 0; i < N; i++)
		expect_ret(d[i].status, 0, "kvc_get_paged (hf): status");
	sync_event(0, "kvc_get_paged (hf): done event");
	hf_image(&b, chunks, N, first);
	cache_check(&b, what);

	/* Back: gather the same positions under new keys; read them whole. */
	for (size_t i = 0; i < N; i++) {
		d[i].key = back[i];
		d[i].parent = back[i ? i - 1 : 0];
		d[i].has_parent = i > 0;
		d[i].position = (uint32_t)i * T;
		d[i].status = 1;
	}
	snprintf(what, sizeof(what), "kvc_put_paged (hf, %s, positions from %u)",
		 mode_name(mode), first);
	expect_ret(kvc_put_paged(c, ns, &b.l, d, N, 0, fx.s, fx.ev[0]), N, what);
	for (size_t i = 0; i < N; i++)
		expect_ret(d[i].status, 0, "kvc_put_paged (hf): status");
	sync_event(0, "kvc_put_paged (hf): done event");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	snprintf(what, sizeof(what), "kvc_get_gpu of chunks put by kvc_put_paged (hf, %s)",
		 mode_name(mode));
	check_get_gpu(c, ns, back, chunks, N, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, host,
		      what);
	fx_close(c);
}

static void test_paged_hf(void **state)
{
	paged_roundtrip(KVC_LAYOUT_HF);
	hf_positions(KVC_GPU_ZEROCOPY, 20, 37);
	hf_positions(KVC_GPU_STAGED, 21, 1);
	hf_positions(KVC_GPU_AUTO, 22, 0);
}

/* ---- 3. layer by layer -------------------------------------------------- */

static void layers_once(enum kvc_layout_kind kind, enum kvc_gpu_mode mode, uint64_t round)
{
	struct shape sh = small_shape(kind);
	const size_t n = 5, miss = 2, cb = shape_chunk_bytes(&sh);
	struct kvc_paged_desc d[5];
	struct kvc_key keys[5], chain[4];
	uint8_t *chunks[4];
	struct kvc_paged_op *op = NULL;
	struct cache b;
	struct kvc *c;
	int32_t *pages;
	uint32_t ns;
	char name[64], what[128];
	int ret;

	snprintf(name, sizeof(name), "layers-%s-%s", kind_name(kind), mode_name(mode));
	c = fx_connect(shared_d.sock, name, &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	kvc_gpu_mode(c, mode);

	/* Chunks made on the CPU in the store's layout, put from host memory. */
	for (size_t i = 0; i < 4; i++) {
		chunks[i] = fx_host(cb);
		fill(chunks[i], cb, round * 100 + i);
		chain[i] = key_of(round * 100 + i);
	}
	put_host_chain(c, ns, chain, chunks, 4, cb, sh.chunk_tokens);

	cache_open(&b, &sh);
	cache_poison(&b);
	pages = random_pages(&b, n);
	memset(d, 0, sizeof(d));
	for (size_t i = 0, j = 0; i < n; i++) {
		keys[i] = i == miss ? key_of(round * 100 + 99) : chain[j++];
		d[i].key = keys[i];
		d[i].pages = pages + i * b.ppc;
		d[i].status = 1;
		d[i].tier = 0xee;
	}
	ret = kvc_get_paged_begin(c, ns, &b.l, d, n, fx.s, &op);
	snprintf(what, sizeof(what), "kvc_get_paged_begin (%s, %s)", kind_name(kind),
		 mode_name(mode));
	expect_ret(ret, (int)n - 1, what);
	assert_non_null(op);
	for (size_t i = 0; i < n; i++) {
		expect_ret(d[i].status, i == miss ? -ENOENT : 0, "kvc_get_paged_begin: status");
		if (i != miss)
			check_tier(d[i].tier, TIER_BIT(KVC_TIER_DRAM), what, i);
	}
	for (uint32_t l = 0; l < sh.layers; l++) {
		snprintf(what, sizeof(what), "kvc_get_paged_layers [%u, %u) (%s, %s)", l, l + 1,
			 kind_name(kind), mode_name(mode));
		expect_ret(kvc_get_paged_layers(op, l, l + 1, fx.ev[l]), 0, what);
		sync_event((int)l, "kvc_get_paged_layers: its event");
		for (size_t i = 0, j = 0; i < n; i++)
			if (i != miss)
				scatter_host(&b, chunks[j++], d[i].pages, l, l + 1);
		/* Layers up to l right, later ones (and the miss) still poison. */
		cache_check(&b, what);
	}
	if (kvc_get_paged_layers(op, sh.layers, sh.layers + 1, NULL) >= 0)
		fail_msg("kvc_get_paged_layers past the last layer did not fail");
	expect_ret(kvc_get_paged_end(op), 0, "kvc_get_paged_end");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	cache_check(&b, "after kvc_get_paged_end: nothing more written");

	/* Released: evictable. */
	{
		int st[4];

		expect_ret(kvc_evict(c, ns, chain, 4, st), 4, "kvc_evict after end and flush");
		for (int i = 0; i < 4; i++)
			expect_ret(st[i], 0, "kvc_evict after end and flush: status");
	}
	fx_close(c);
}

static void test_layerwise(void **state)
{
	for (int k = KVC_LAYOUT_VLLM; k <= KVC_LAYOUT_HF; k++) {
		layers_once((enum kvc_layout_kind)k, KVC_GPU_ZEROCOPY, 10 + 2 * (uint64_t)k);
		layers_once((enum kvc_layout_kind)k, KVC_GPU_STAGED, 11 + 2 * (uint64_t)k);
	}
}

int main(void)
{
	const struct CMUnitTest shared_tests[] = {
		cmocka_unit_test_setup_teardown(test_paged_vllm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_vllm_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_flashinfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_sglang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_hf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layerwise, setup, teardown),
	};
	int ret;

	ret = gpu_start();
	if (ret)
		return ret;
	ret = cmocka_run_group_tests_name("gpu paged, one daemon", shared_tests, group_setup,
					  group_teardown);
	return ret ? 1 : 0;
}
