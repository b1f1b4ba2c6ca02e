/*
 * gpu_fx.c - what the GPU client tests share (test_gpu_client.c,
 * test_gpu_paged.c, test_gpu_ryw.c, test_gpu_hbm.c): data drawn from a seed
 * that failure messages name (KVT_SEED=N replays one), the fixture that
 * holds what a case allocates and releases it even when the case fails,
 * engine caches in every layout kind with a host image of what they should
 * hold, and the checks of gets against what was put.
 *
 * Every check is byte for byte against what was put, into destinations
 * poisoned before each copy, so a copy that writes too little, too much or
 * in the wrong place is caught; a failure names the first differing byte
 * (and, in a paged cache, its layer, K or V, page and token).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/rng.h"
#include "tests/gpu/gpu_fx.h"

uint64_t seed;		/* this case's; failure messages name it */
static uint64_t rng_state;

struct kvt_daemon shared_d;	/* cases 1 to 3 */

struct fixture fx;

/* ---- data ------------------------------------------------------------- */

static uint64_t rnd(void)
{
	return kvt_mix(rng_state++);
}

static void new_seed(void)
{
	const char *env = getenv("KVT_SEED");

	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = kvt_mix((uint64_t)time(NULL) ^ (uint64_t)getpid());
	rng_state = kvt_mix(seed ^ 0x72616e646f6dull);
}

/* The bytes of item idx: a function of (seed, idx), so a child process
 * given the seed writes exactly what the parent then expects. */
void fill(void *buf, size_t len, uint64_t idx)
{
	uint64_t x = kvt_mix(seed ^ kvt_mix(idx + 1));
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w = kvt_mix(x + i);

		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)kvt_mix(x + i);
}

struct kvc_key key_of(uint64_t idx)
{
	return (struct kvc_key){ .lo = kvt_mix(seed ^ (idx * 0x100000001b3ull)),
				 .hi = kvt_mix(~seed + idx) };
}

const char *err_name(int ret)
{
	return ret < 0 ? kvc_strerror(ret) : "ok";
}

void expect_ret(int got, int want, const char *what)
{
	if (got != want)
		fail_msg("%s: returned %d (%s), want %d (%s); seed %#" PRIx64, what,
			 got, err_name(got), want, err_name(want), seed);
}

/* Fail unless got equals want, naming the first byte that differs. */
void same_bytes(const void *got, const void *want, size_t n,
		const char *what, size_t item)
{
	const uint8_t *g = got, *w = want;
	size_t off = 0, diff = 0;

	if (!memcmp(got, want, n))
		return;
	while (g[off] == w[off])
		off++;
	for (size_t i = off; i < n; i++)
		diff += g[i] != w[i];
	fail_msg("%s %zu: first difference at byte %zu of %zu: got 0x%02x%s, want 0x%02x%s; "
		 "%zu bytes differ; seed %#" PRIx64, what, item, off, n, g[off],
		 g[off] == POISON ? " (the poison: not written)" : "", w[off],
		 w[off] == POISON ? " (the poison: written past the end)" : "", diff, seed);
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the fixture -------------------------------------------------------- */

int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	new_seed();
	if (kv_gpu_stream_create(&fx.s))
		return -1;
	for (int i = 0; i < MAX_LAYERS; i++)
		if (kv_gpu_event_create(&fx.ev[i], false))
			return -1;
	return 0;
}

int teardown(void **state)
{
	/* Copies may still be queued into our buffers: wait, then close. */
	if (fx.s)
		(void)kv_gpu_stream_sync(fx.s);
	for (int i = 0; i < MAX_CONN; i++)
		kvc_close(fx.c[i]);
	for (int i = 0; i < MAX_DEV; i++)
		kv_gpu_free(fx.dev[i]);
	for (int i = 0; i < MAX_HOST; i++)
		free(fx.host[i]);
	for (int i = 0; i < MAX_LAYERS; i++)
		kv_gpu_event_destroy(fx.ev[i]);
	kv_gpu_stream_destroy(fx.s);
	for (int i = 0; i < 2; i++)
		if (fx.up[i])
			(void)kvt_stop(&fx.d[i]);
	memset(&fx, 0, sizeof(fx));
	return 0;
}

int group_setup(void **state)
{
	/* No HBM tier (the default has one when there is a GPU). */
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "0", "--log", "warn",
			       NULL };

	return kvt_start(&shared_d, args);
}

int group_teardown(void **state)
{
	return kvt_stop(&shared_d) == 0 ? 0 : -1;
}

struct kvt_daemon *fx_start(const char *const *args)
{
	int i = fx.up[0] ? 1 : 0;

	assert_false(fx.up[i]);
	if (kvt_start(&fx.d[i], args))
		fail_msg("kvstored did not start (its log is above)");
	fx.up[i] = true;
	return &fx.d[i];
}

void fx_stop(struct kvt_daemon *d)
{
	int i = d == &fx.d[0] ? 0 : 1;
	int ret;

	fx.up[i] = false;
	ret = kvt_stop(d);
	if (ret)
		fail_msg("kvstored exited with %d, not 0", ret);
}

struct kvc *fx_connect(const char *sock, const char *ns_name, uint32_t *ns)
{
	struct kvc *c = NULL;
	int i;

	for (i = 0; i < MAX_CONN && fx.c[i]; i++)
		;
	assert_true(i < MAX_CONN);
	expect_ret(kvc_connect(sock, &c), 0, "kvc_connect");
	fx.c[i] = c;
	expect_ret(kvc_ns_register(c, ns_name, ns), 0, "kvc_ns_register");
	return c;
}

void fx_close(struct kvc *c)
{
	for (int i = 0; i < MAX_CONN; i++)
		if (fx.c[i] == c)
			fx.c[i] = NULL;
	kvc_close(c);
}

void *fx_dev(size_t bytes)
{
	int i;

	for (i = 0; i < MAX_DEV && fx.dev[i]; i++)
		;
	assert_true(i < MAX_DEV);
	expect_ret(kv_gpu_malloc(bytes, &fx.dev[i]), 0, "kv_gpu_malloc");
	return fx.dev[i];
}

void *fx_host(size_t bytes)
{
	int i;

	for (i = 0; i < MAX_HOST && fx.host[i]; i++)
		;
	assert_true(i < MAX_HOST);
	fx.host[i] = malloc(bytes);
	assert_non_null(fx.host[i]);
	return fx.host[i];
}

void upload(void *dev, const void *host, size_t n)
{
	expect_ret(kv_gpu_memcpy(dev, host, n, fx.s), 0, "upload");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "upload: sync");
}

void download(void *host, const void *dev, size_t n)
{
	expect_ret(kv_gpu_memcpy(host, dev, n, fx.s), 0, "download");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "download: sync");
}

void poison_dev(void *dev, size_t n)
{
	expect_ret(kv_gpu_memset(dev, POISON, n, fx.s), 0, "poison");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "poison: sync");
}

void sync_event(int i, const char *what)
{
	expect_ret(kv_gpu_event_sync(fx.ev[i]), 0, what);
}

const struct kvc_tier_stats *find_tier(const struct kvc_stats *st, const char *name)
{
	for (unsigned i = 0; i < st->n_tiers && i < KVC_MAX_TIERS; i++)
		if (!strcmp(st->tiers[i].name, name))
			return &st->tiers[i];
	return NULL;
}

void check_tier(uint8_t tier, unsigned mask, const char *what, size_t item)
{
	if (tier >= 32 || !(mask & TIER_BIT(tier)))
		fail_msg("%s %zu: copied from tier %u, want %s%s%s; seed %#" PRIx64, what, item,
			 tier, mask & TIER_BIT(KVC_TIER_HBM) ? "hbm " : "",
			 mask & TIER_BIT(KVC_TIER_DRAM) ? "dram " : "",
			 mask & TIER_BIT(KVC_TIER_SSD) ? "ssd" : "", seed);
}

/* ---- engine caches ------------------------------------------------------ */

const char *kind_name(enum kvc_layout_kind kind)
{
	switch (kind) {
	case KVC_LAYOUT_VLLM:
		return "vllm";
	case KVC_LAYOUT_VLLM_SPLIT:
		return "vllm-split";
	case KVC_LAYOUT_FLASHINFER:
		return "flashinfer";
	case KVC_LAYOUT_SGLANG:
		return "sglang";
	case KVC_LAYOUT_HF:
		return "hf";
	}
	return "?";
}

const char *mode_name(enum kvc_gpu_mode mode)
{
	return mode == KVC_GPU_ZEROCOPY ? "zerocopy" : mode == KVC_GPU_STAGED ? "staged" : "auto";
}

/* 4 layers, 2 KV heads of 64 bf16: 256-byte rows, 64 KiB chunks of 32 tokens. */
struct shape small_shape(enum kvc_layout_kind kind)
{
	struct shape sh = {
		.kind = kind, .layers = 4, .block_size = 8, .num_blocks = 64,
		.kv_heads = 2, .head_dim = 64, .elem_bytes = 2, .chunk_tokens = 32,
	};

	if (kind == KVC_LAYOUT_SGLANG) {
		sh.block_size = 1;
		sh.num_blocks = 512;
	}
	if (kind == KVC_LAYOUT_HF) {
		sh.block_size = 1;
		sh.num_blocks = 517;	/* capacity: positions, none a power of two */
	}
	return sh;
}

/* 8 layers, 8 KV heads of 128 bf16, 32 tokens: 1 MiB chunks. */
struct shape big_shape(uint32_t num_blocks)
{
	return (struct shape){
		.kind = KVC_LAYOUT_VLLM, .layers = 8, .block_size = 16,
		.num_blocks = num_blocks, .kv_heads = 8, .head_dim = 128,
		.elem_bytes = 2, .chunk_tokens = 32,
	};
}

static size_t shape_row(const struct shape *sh)
{
	return (size_t)sh->kv_heads * sh->head_dim * sh->elem_bytes;
}

size_t shape_chunk_bytes(const struct shape *sh)
{
	return (size_t)sh->layers * 2 * sh->chunk_tokens * shape_row(sh);
}

/* Where page p of layer l's K (kv 0) or V (kv 1) starts in the cache (its
 * first piece; piece s is s * seg_stride further). */
size_t page_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t p)
{
	size_t rev = ca->sh.layers - 1 - l;

	switch (ca->sh.kind) {
	case KVC_LAYOUT_VLLM:		/* [2][num_blocks][block_size][H][D] */
		return rev * 2 * ca->tensor + kv * ca->tensor + p * ca->page;
	case KVC_LAYOUT_FLASHINFER:	/* [num_blocks][2][block_size][H][D] */
		return rev * 2 * ca->tensor + (2 * (size_t)p + kv) * ca->page;
	case KVC_LAYOUT_HF:		/* K and V apart: [1][H][num_blocks][D] */
		return (kv ? ca->sh.layers + l : rev) * ca->tensor + p * ca->seg;
	default:			/* K and V apart: [num_blocks][block_size][H][D] */
		return (kv ? ca->sh.layers + l : rev) * ca->tensor + p * ca->page;
	}
}

/* Byte offset of token t of layer l's K or V in a chunk. */
size_t chunk_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t t)
{
	return (((size_t)l * 2 + kv) * ca->sh.chunk_tokens + t) * ca->row;
}

/* Lay the cache out over dev (no allocation: the child processes use it). */
void cache_layout(struct cache *ca, const struct shape *sh, void *dev)
{
	bool apart = sh->kind == KVC_LAYOUT_VLLM_SPLIT || sh->kind == KVC_LAYOUT_SGLANG ||
		sh->kind == KVC_LAYOUT_HF;

	memset(ca, 0, sizeof(*ca));
	ca->sh = *sh;
	ca->row = shape_row(sh);
	ca->page = sh->block_size * ca->row;
	ca->tensor = sh->num_blocks * ca->page;
	ca->seg = ca->page;
	ca->segs = 1;
	if (sh->kind == KVC_LAYOUT_HF) {
		ca->seg = (size_t)sh->head_dim * sh->elem_bytes;
		ca->segs = sh->kv_heads;
		ca->seg_stride = sh->num_blocks * ca->seg;
	}
	ca->bytes = (size_t)sh->layers * 2 * ca->tensor;
	ca->ppc = sh->chunk_tokens / sh->block_size;
	ca->dev = dev;
	for (uint32_t l = 0; l < sh->layers && l < MAX_LAYERS; l++) {
		ca->k[l] = ca->dev + page_off(ca, l, 0, 0);
		ca->v[l] = ca->dev + page_off(ca, l, 1, 0);
	}
	ca->l = (struct kvc_layout){
		.kind = sh->kind, .layers = sh->layers, .block_size = sh->block_size,
		.num_blocks = sh->num_blocks, .kv_heads = sh->kv_heads,
		.head_dim = sh->head_dim, .elem_bytes = sh->elem_bytes,
		.chunk_tokens = sh->chunk_tokens, .k = ca->k, .v = apart ? ca->v : NULL,
	};
}

void cache_open(struct cache *ca, const struct shape *sh)
{
	size_t bytes = (size_t)sh->layers * 2 * sh->num_blocks * sh->block_size * shape_row(sh);

	assert_true(sh->layers <= MAX_LAYERS);
	cache_layout(ca, sh, fx_dev(bytes));
	ca->want = fx_host(ca->bytes);
	ca->got = fx_host(ca->bytes);
	if (kvc_layout_chunk_bytes(&ca->l) != shape_chunk_bytes(sh))
		fail_msg("kvc_layout_chunk_bytes(%s) = %zu, want %zu", kind_name(sh->kind),
			 kvc_layout_chunk_bytes(&ca->l), shape_chunk_bytes(sh));
}

void cache_poison(struct cache *ca)
{
	poison_dev(ca->dev, ca->bytes);
	memset(ca->want, POISON, ca->bytes);
}

void cache_random(struct cache *ca, uint64_t item)
{
	fill(ca->want, ca->bytes, ITEM_CACHE + item);
	upload(ca->dev, ca->want, ca->bytes);
}

/* n chunks' pages: distinct, drawn at random from the whole cache. */
int32_t *random_pages(const struct cache *ca, size_t n)
{
	int32_t *perm = fx_host(ca->sh.num_blocks * sizeof(*perm));

	assert_true(n * ca->ppc <= ca->sh.num_blocks);
	for (uint32_t i = 0; i < ca->sh.num_blocks; i++)
		perm[i] = (int32_t)i;
	for (uint32_t i = ca->sh.num_blocks - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rnd() % (i + 1));
		int32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/*
 * Copy layers [lb, le) of chunk (at pages) to the cache image (to_cache)
 * or back, a page's pieces at a time.
 */
static void copy_host(struct cache *ca, uint8_t *chunk, const int32_t *pages, uint32_t lb,
		      uint32_t le, bool to_cache)
{
	for (uint32_t l = lb; l < le; l++)
		for (unsigned kv = 0; kv < 2; kv++)
			for (uint32_t p = 0; p < ca->ppc; p++)
				for (uint32_t s = 0; s < ca->segs; s++) {
					uint8_t *c = chunk + s * ca->seg +
						chunk_off(ca, l, kv, p * ca->sh.block_size);
					uint8_t *e = ca->want + s * ca->seg_stride +
						page_off(ca, l, kv, (uint32_t)pages[p]);

					memcpy(to_cache ? e : c, to_cache ? c : e, ca->seg);
				}
}

/* The CPU's chunk of the cache image at pages: [layers][K, V][tokens][row]. */
void gather_host(struct cache *ca, const int32_t *pages, uint8_t *chunk)
{
	copy_host(ca, chunk, pages, 0, ca->sh.layers, false);
}

/* What a get of layers [lb, le) of chunk at pages does to the image. */
void scatter_host(struct cache *ca, const uint8_t *chunk, const int32_t *pages,
		  uint32_t lb, uint32_t le)
{
	copy_host(ca, (uint8_t *)chunk, pages, lb, le, true);
}

/* Download the cache and fail, naming where, unless it matches its image. */
void cache_check(struct cache *ca, const char *what)
{
	const uint8_t *g = ca->got, *w = ca->want;
	size_t off = 0, diff = 0;

	download(ca->got, ca->dev, ca->bytes);
	if (!memcmp(g, w, ca->bytes))
		return;
	while (g[off] == w[off])
		off++;
	for (size_t i = off; i < ca->bytes; i++)
		diff += g[i] != w[i];
	for (uint32_t l = 0; l < ca->sh.layers; l++) {
		for (unsigned kv = 0; kv < 2; kv++) {
			for (uint32_t p = 0; p < ca->sh.num_blocks; p++) {
				for (uint32_t s = 0; s < ca->segs; s++) {
					size_t at = page_off(ca, l, kv, p) + s * ca->seg_stride;
					size_t in = s * ca->seg + off - at;	/* in the page */

					if (off < at || off >= at + ca->seg)
						continue;
					fail_msg("%s (%s): cache byte %zu differs: layer %u %s "
						 "page %u token %zu byte %zu: got 0x%02x%s, "
						 "want 0x%02x%s; %zu bytes differ; seed %#" PRIx64,
						 what, kind_name(ca->sh.kind), off, l,
						 kv ? "V" : "K", p, in / ca->row, in % ca->row,
						 g[off], g[off] == POISON ? " (the poison)" : "",
						 w[off], w[off] == POISON ? " (the poison)" : "",
						 diff, seed);
				}
			}
		}
	}
	fail_msg("%s: cache byte %zu differs outside every page", what, off);
}

/*
 * kvc_get_paged n chunks (want[i] NULL: a key that is not cached, whose
 * pages must stay poisoned) into the poisoned cache at random pages; check
 * every status, every tier against mask, and every byte of the cache.
 */
void check_get_paged(struct kvc *c, uint32_t ns, struct cache *ca,
		     const struct kvc_key *keys, uint8_t *const *want, size_t n,
		     unsigned mask, const char *what)
{
	struct kvc_paged_desc *d = fx_host(n * sizeof(*d));
	int32_t *pages = random_pages(ca, n);
	int found = 0, ret;

	cache_poison(ca);
	memset(d, 0, n * sizeof(*d));
	for (size_t i = 0; i < n; i++) {
		d[i].key = keys[i];
		d[i].pages = pages + i * ca->ppc;
		d[i].status = 1;
		d[i].tier = 0xee;
		found += want[i] != NULL;
	}
	ret = kvc_get_paged(c, ns, &ca->l, d, n, fx.s, fx.ev[0]);
	expect_ret(ret, found, what);
	for (size_t i = 0; i < n; i++) {
		if (!want[i]) {
			expect_ret(d[i].status, -ENOENT, "kvc_get_paged: status of a missing key");
			continue;
		}
		expect_ret(d[i].status, 0, "kvc_get_paged: status");
		check_tier(d[i].tier, mask, what, i);
		scatter_host(ca, want[i], d[i].pages, 0, ca->sh.layers);
	}
	sync_event(0, "kvc_get_paged: done event");
	cache_check(ca, what);
}

/*
 * kvc_get_gpu n chunks of `bytes` into a poisoned device buffer with
 * SPARE bytes after each; check statuses, tiers against mask (stored in
 * tiers[] when not NULL) and every byte, the spare still poisoned.
 */
void check_get_gpu(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		   uint8_t *const *want, size_t n, size_t bytes, unsigned mask,
		   uint8_t *tiers, uint8_t *dev, uint8_t *host, const char *what)
{
	struct kvc_gpu_desc d[16];
	size_t slot = bytes + SPARE;
	int ret;

	assert_true(n <= 16);
	poison_dev(dev, n * slot);
	memset(d, 0, sizeof(d));
	for (size_t i = 0; i < n; i++) {
		d[i].key = keys[i];
		d[i].dev = dev + i * slot;
		d[i].cap = slot;
		d[i].status = 1;
		d[i].tier = 0xee;
	}
	ret = kvc_get_gpu(c, ns, d, n, fx.s, fx.ev[0]);
	expect_ret(ret, (int)n, what);
	sync_event(0, "kvc_get_gpu: done event");
	for (size_t i = 0; i < n; i++) {
		expect_ret(d[i].status, 0, "kvc_get_gpu: status");
		if (d[i].bytes != bytes)
			fail_msg("%s %zu: %zu bytes, want %zu", what, i, d[i].bytes, bytes);
		check_tier(d[i].tier, mask, what, i);
		if (tiers)
			tiers[i] = d[i].tier;
		download(host, dev + i * slot, slot);
		same_bytes(host, want[i], bytes, what, i);
		for (size_t j = bytes; j < slot; j++)
			if (host[j] != POISON)
				fail_msg("%s %zu: byte %zu written, past the chunk's %zu", what, i,
					 j, bytes);
	}
}

/* kvc_get into host memory: exact, and exactly bytes long. */
void check_get_host(struct kvc *c, uint32_t ns, const struct kvc_key *key,
		    const uint8_t *want, size_t bytes, uint8_t *buf, const char *what,
		    size_t item)
{
	size_t n = 0;

	memset(buf, POISON, bytes);
	expect_ret(kvc_get(c, ns, key, buf, bytes, &n), 0, what);
	if (n != bytes)
		fail_msg("%s %zu: %zu bytes, want %zu", what, item, n, bytes);
	same_bytes(buf, want, bytes, what, item);
}

/* Put a prefix chain from host memory (kvc_put), chunk i at position i * tokens. */
void put_host_chain(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		    uint8_t *const *data, size_t n, size_t bytes, uint32_t tokens)
{
	for (size_t i = 0; i < n; i++)
		expect_ret(kvc_put(c, ns, &keys[i], i ? &keys[i - 1] : NULL, tokens,
				   (uint32_t)i * tokens, data[i], bytes), 0, "kvc_put");
}

/* Wait until the DRAM tier holds at least chunks chunks (HBM puts are
 * written down to it shortly after commit). */
void wait_dram_chunks(struct kvc *c, uint64_t chunks, const char *what)
{
	struct kvc_stats st;
	const struct kvc_tier_stats *t = NULL;

	for (int i = 0; i < 200; i++) {
		expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
		t = find_tier(&st, "dram");
		assert_non_null(t);
		if (t->chunks >= chunks)
			return;
		kvt_sleep_ms(10);
	}
	fail_msg("%s: %" PRIu64 " chunks in DRAM 2 s later, want %" PRIu64
		 " (HBM puts not written down?)", what, t->chunks, chunks);
}

/* How many of keys[0..n) have their copy in HBM now. */
int count_in_hbm(struct kvc *c, uint32_t ns, const struct kvc_key *keys, int n)
{
	struct kvc_entry e;
	int in_hbm = 0;

	for (int i = 0; i < n; i++) {
		expect_ret(kvc_inspect(c, ns, &keys[i], &e), 0, "kvc_inspect");
		in_hbm += e.tier == KVC_TIER_HBM;
	}
	return in_hbm;
}

/*
 * Before cmocka: 77 (skipped) without a usable GPU, so that CI without one
 * counts the program as skipped; 1 if GPU 0 cannot be used; else 0, with
 * GPU 0 current.
 */
int gpu_start(void)
{
	char why[256] = "";
	int n = 0;

	if (!kv_gpu_available(&n, why, sizeof(why))) {
		printf("skipped: no usable GPU (%s)\n", why);
		return 77;
	}
	if (kv_gpu_set_device(0)) {
		printf("cannot use GPU 0: %s\n", kv_gpu_last_error());
		return 1;
	}
	return 0;
}
