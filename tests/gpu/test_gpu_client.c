/*
 * test_gpu_client.c - libkvc's GPU API against a live daemon, on a GPU.
 *
 *  1. kvc_get_gpu / kvc_put_gpu between the store and device memory, with
 *     -EEXIST, -ENOBUFS and -ENOENT per chunk;
 *  2. kvc_put_paged / kvc_get_paged for every layout kind (vLLM, vLLM with
 *     K and V apart, FlashInfer, SGLang, Hugging Face) in both DRAM modes
 *     (ZEROCOPY and STAGED), the stored chunk checked against a CPU
 *     construction of the layer-major layout; for HF also chunks put from
 *     the host, loaded at consecutive positions from an odd one and checked
 *     against transformers' own index formula, then put back from the HF
 *     tensors and read with kvc_get_gpu;
 *  3. kvc_get_paged_begin/_layers/_end, one layer and one event at a time;
 *  4. the HBM tier shared through the arena's fd (CUDA VMM): another
 *     process puts, this one gets (from HBM, then from DRAM once HBM has
 *     overflowed);
 *  5. a client that dies with copies, pins and puts queued;
 *  6. promotion into HBM (--hbm-promote always and second);
 *  7. a daemon whose --gpu does not exist serves from DRAM;
 *  8. the HBM arena is reached only through the fd HELLO hands over: what
 *     came with it is sizes, a PCI id and the fd; closed, made-up and
 *     unrelated fds import nothing; a mapping of our own from the fd holds
 *     exactly what the daemon's GPU copies wrote; and a process of another
 *     uid gets no connection, no fd and no /proc path into the daemon.
 *
 * Every check is byte for byte against what was put, into destinations
 * poisoned before each copy, so a copy that writes too little, too much or
 * in the wrong place is caught; a failure names the first differing byte
 * (and, in a paged cache, its layer, K or V, page and token). The data is
 * drawn fresh per case from a seed that failure messages name; KVT_SEED=N
 * replays one.
 *
 * Without a GPU it exits 77 before cmocka starts. This process initialises
 * CUDA first thing, and CUDA does not survive fork(), so every child
 * process is fork() + exec() of this binary with a --child-* argument
 * (the daemons too are exec'd, by the harness).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"

#define MIB		((size_t)1 << 20)
#define POISON		0xa5
#define SPARE		4096	/* poisoned bytes after each gotten chunk */
#define MAX_LAYERS	16
#define MAX_DEV		32
#define MAX_HOST	160
#define MAX_CONN	8
#define TIER_BIT(t)	(1u << (t))

/* Item numbers: what fill() and key_of() are given, per purpose. */
#define ITEM_PUT	1000	/* chunks put by a child process */
#define ITEM_BIG	2000	/* case 4's chunks that overflow HBM */
#define ITEM_CACHE	9000	/* random engine caches */

static uint64_t seed;		/* this case's; failure messages name it */
static uint64_t rng_state;

static struct kvt_daemon shared_d;	/* cases 1 to 3 */

/* What a case holds, released by teardown() even when it fails. */
static struct {
	struct kvt_daemon d[2];
	bool up[2];
	struct kvc *c[MAX_CONN];
	void *dev[MAX_DEV];
	void *host[MAX_HOST];
	struct kv_gpu_stream *s;
	struct kv_gpu_event *ev[MAX_LAYERS];
} fx;

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
static void fill(void *buf, size_t len, uint64_t idx)
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

static struct kvc_key key_of(uint64_t idx)
{
	return (struct kvc_key){ .lo = kvt_mix(seed ^ (idx * 0x100000001b3ull)),
				 .hi = kvt_mix(~seed + idx) };
}

static const char *err_name(int ret)
{
	return ret < 0 ? kvc_strerror(ret) : "ok";
}

static void expect_ret(int got, int want, const char *what)
{
	if (got != want)
		fail_msg("%s: returned %d (%s), want %d (%s); seed %#" PRIx64, what,
			 got, err_name(got), want, err_name(want), seed);
}

/* Fail unless got equals want, naming the first byte that differs. */
static void same_bytes(const void *got, const void *want, size_t n,
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

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- the fixture -------------------------------------------------------- */

static int setup(void **state)
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

static int teardown(void **state)
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

static int group_setup(void **state)
{
	/* No HBM tier (the default has one when there is a GPU). */
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "0", "--log", "warn",
			       NULL };

	return kvt_start(&shared_d, args);
}

static int group_teardown(void **state)
{
	return kvt_stop(&shared_d) == 0 ? 0 : -1;
}

static struct kvt_daemon *fx_start(const char *const *args)
{
	int i = fx.up[0] ? 1 : 0;

	assert_false(fx.up[i]);
	if (kvt_start(&fx.d[i], args))
		fail_msg("kvstored did not start (its log is above)");
	fx.up[i] = true;
	return &fx.d[i];
}

static void fx_stop(struct kvt_daemon *d)
{
	int i = d == &fx.d[0] ? 0 : 1;
	int ret;

	fx.up[i] = false;
	ret = kvt_stop(d);
	if (ret)
		fail_msg("kvstored exited with %d, not 0", ret);
}

static struct kvc *fx_connect(const char *sock, const char *ns_name, uint32_t *ns)
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

static void fx_close(struct kvc *c)
{
	for (int i = 0; i < MAX_CONN; i++)
		if (fx.c[i] == c)
			fx.c[i] = NULL;
	kvc_close(c);
}

static void *fx_dev(size_t bytes)
{
	int i;

	for (i = 0; i < MAX_DEV && fx.dev[i]; i++)
		;
	assert_true(i < MAX_DEV);
	expect_ret(kv_gpu_malloc(bytes, &fx.dev[i]), 0, "kv_gpu_malloc");
	return fx.dev[i];
}

static void *fx_host(size_t bytes)
{
	int i;

	for (i = 0; i < MAX_HOST && fx.host[i]; i++)
		;
	assert_true(i < MAX_HOST);
	fx.host[i] = malloc(bytes);
	assert_non_null(fx.host[i]);
	return fx.host[i];
}

static void upload(void *dev, const void *host, size_t n)
{
	expect_ret(kv_gpu_memcpy(dev, host, n, fx.s), 0, "upload");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "upload: sync");
}

static void download(void *host, const void *dev, size_t n)
{
	expect_ret(kv_gpu_memcpy(host, dev, n, fx.s), 0, "download");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "download: sync");
}

static void poison_dev(void *dev, size_t n)
{
	expect_ret(kv_gpu_memset(dev, POISON, n, fx.s), 0, "poison");
	expect_ret(kv_gpu_stream_sync(fx.s), 0, "poison: sync");
}

static void sync_event(int i, const char *what)
{
	expect_ret(kv_gpu_event_sync(fx.ev[i]), 0, what);
}

static const struct kvc_tier_stats *find_tier(const struct kvc_stats *st, const char *name)
{
	for (unsigned i = 0; i < st->n_tiers && i < KVC_MAX_TIERS; i++)
		if (!strcmp(st->tiers[i].name, name))
			return &st->tiers[i];
	return NULL;
}

static void check_tier(uint8_t tier, unsigned mask, const char *what, size_t item)
{
	if (tier >= 32 || !(mask & TIER_BIT(tier)))
		fail_msg("%s %zu: copied from tier %u, want %s%s%s; seed %#" PRIx64, what, item,
			 tier, mask & TIER_BIT(KVC_TIER_HBM) ? "hbm " : "",
			 mask & TIER_BIT(KVC_TIER_DRAM) ? "dram " : "",
			 mask & TIER_BIT(KVC_TIER_SSD) ? "ssd" : "", seed);
}

/* ---- engine caches ------------------------------------------------------ */

struct shape {
	enum kvc_layout_kind kind;
	uint32_t layers;
	uint32_t block_size;
	uint32_t num_blocks;
	uint32_t kv_heads;
	uint32_t head_dim;
	uint32_t elem_bytes;
	uint32_t chunk_tokens;
};

/*
 * A cache in device memory with a host image of what it should hold. Layers
 * lie in reverse order, and with K and V apart all K tensors come before
 * all V ones, so a copy that derives one layer's address from another's
 * (or V's from K's) writes the wrong place.
 */
struct cache {
	struct shape sh;
	size_t row;		/* one token's K (or V) in one layer */
	size_t page;		/* block_size rows */
	size_t seg;		/* a page's contiguous pieces: the page, or (HF)
				 * one head of one token */
	size_t seg_stride;	/* from one piece of a page to the next */
	uint32_t segs;		/* pieces a page: 1, or (HF) kv_heads */
	size_t tensor;		/* one layer's K (or V) pages */
	size_t bytes;
	uint32_t ppc;		/* pages per chunk */
	uint8_t *dev;
	uint8_t *want;
	uint8_t *got;
	void *k[MAX_LAYERS];
	void *v[MAX_LAYERS];
	struct kvc_layout l;
};

static const char *kind_name(enum kvc_layout_kind kind)
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

static const char *mode_name(enum kvc_gpu_mode mode)
{
	return mode == KVC_GPU_ZEROCOPY ? "zerocopy" : mode == KVC_GPU_STAGED ? "staged" : "auto";
}

/* 4 layers, 2 KV heads of 64 bf16: 256-byte rows, 64 KiB chunks of 32 tokens. */
static struct shape small_shape(enum kvc_layout_kind kind)
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
static struct shape big_shape(uint32_t num_blocks)
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

static size_t shape_chunk_bytes(const struct shape *sh)
{
	return (size_t)sh->layers * 2 * sh->chunk_tokens * shape_row(sh);
}

/* Where page p of layer l's K (kv 0) or V (kv 1) starts in the cache (its
 * first piece; piece s is s * seg_stride further). */
static size_t page_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t p)
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
static size_t chunk_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t t)
{
	return (((size_t)l * 2 + kv) * ca->sh.chunk_tokens + t) * ca->row;
}

/* Lay the cache out over dev (no allocation: the child processes use it). */
static void cache_layout(struct cache *ca, const struct shape *sh, void *dev)
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

static void cache_open(struct cache *ca, const struct shape *sh)
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

static void cache_poison(struct cache *ca)
{
	poison_dev(ca->dev, ca->bytes);
	memset(ca->want, POISON, ca->bytes);
}

static void cache_random(struct cache *ca, uint64_t item)
{
	fill(ca->want, ca->bytes, ITEM_CACHE + item);
	upload(ca->dev, ca->want, ca->bytes);
}

/* n chunks' pages: distinct, drawn at random from the whole cache. */
static int32_t *random_pages(const struct cache *ca, size_t n)
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
static void gather_host(struct cache *ca, const int32_t *pages, uint8_t *chunk)
{
	copy_host(ca, chunk, pages, 0, ca->sh.layers, false);
}

/* What a get of layers [lb, le) of chunk at pages does to the image. */
static void scatter_host(struct cache *ca, const uint8_t *chunk, const int32_t *pages,
			 uint32_t lb, uint32_t le)
{
	copy_host(ca, (uint8_t *)chunk, pages, lb, le, true);
}

/* Download the cache and fail, naming where, unless it matches its image. */
static void cache_check(struct cache *ca, const char *what)
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
static void check_get_paged(struct kvc *c, uint32_t ns, struct cache *ca,
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
static void check_get_gpu(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
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
static void check_get_host(struct kvc *c, uint32_t ns, const struct kvc_key *key,
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
static void put_host_chain(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
			   uint8_t *const *data, size_t n, size_t bytes, uint32_t tokens)
{
	for (size_t i = 0; i < n; i++)
		expect_ret(kvc_put(c, ns, &keys[i], i ? &keys[i - 1] : NULL, tokens,
				   (uint32_t)i * tokens, data[i], bytes), 0, "kvc_put");
}

/* ---- child processes ---------------------------------------------------- */

/* Fork and exec this binary as a child: argv[1] is mode. The forked process
 * does nothing CUDA (nor anything else) before exec. */
static pid_t spawn_child(const char *const *args)
{
	const char *argv[16];
	int n = 0;
	pid_t pid;

	argv[n++] = "test_gpu_client";
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a failed test */
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

static void wait_child(pid_t pid, const char *what)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("%s: child killed by signal %d", what, WTERMSIG(st));
	if (WEXITSTATUS(st))
		fail_msg("%s: child exited with %d (its messages are above)", what,
			 WEXITSTATUS(st));
}

static int child_err(const char *what, int ret)
{
	fprintf(stderr, "child %d: %s: %d (%s); seed %#" PRIx64 "\n", (int)getpid(), what,
		ret, err_name(ret), seed);
	return 1;
}

/* --child-hbm-put SOCK SEED N: put chunks 0..N-1 (small vLLM shape) from
 * device memory with KVC_PUT_HBM, flush, and exit. */
static int child_hbm_put(const char *sock, unsigned n)
{
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	size_t cb = shape_chunk_bytes(&sh);
	struct kvc_put_desc d[64];
	struct kv_gpu_stream *s;
	struct kvc_key keys[64];
	uint8_t *dev, *host;
	struct kvc *c;
	uint32_t ns;
	int ret;

	if (n > 64)
		return child_err("too many chunks", -EINVAL);
	if ((ret = kv_gpu_set_device(0)) || (ret = kv_gpu_stream_create(&s)))
		return child_err("cuda", ret);
	if ((ret = kvc_connect(sock, &c)) || (ret = kvc_ns_register(c, "shared", &ns)))
		return child_err("connect", ret);
	if ((ret = kvc_gpu_open(c, 0, 0)))
		return child_err("kvc_gpu_open", ret);
	if ((ret = kv_gpu_malloc(n * cb, (void **)&dev)))
		return child_err("kv_gpu_malloc", ret);
	host = malloc(cb);
	if (!host)
		return child_err("malloc", -ENOMEM);
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < n; i++) {
		fill(host, cb, i);
		if ((ret = kv_gpu_memcpy(dev + i * cb, host, cb, s)) ||
		    (ret = kv_gpu_stream_sync(s)))
			return child_err("upload", ret);
		keys[i] = key_of(i);
		d[i].key = keys[i];
		d[i].parent = i ? keys[i - 1] : keys[0];
		d[i].has_parent = i > 0;
		d[i].tokens = sh.chunk_tokens;
		d[i].position = i * sh.chunk_tokens;
		d[i].data = dev + i * cb;
		d[i].bytes = cb;
		d[i].status = 1;
	}
	ret = kvc_put_gpu(c, ns, d, n, KVC_PUT_HBM, s, NULL);
	if (ret != (int)n)
		return child_err("kvc_put_gpu KVC_PUT_HBM", ret);
	for (unsigned i = 0; i < n; i++)
		if (d[i].status)
			return child_err("kvc_put_gpu: a chunk's status", d[i].status);
	if ((ret = kvc_gpu_flush(c)))
		return child_err("kvc_gpu_flush", ret);
	kvc_close(c);
	kv_gpu_free(dev);
	kv_gpu_stream_destroy(s);
	free(host);
	return 0;
}

/*
 * --child-die SOCK SEED K P FLAGS HOW FD: queue a kvc_get_gpu and a
 * kvc_get_paged of chunks 0..K-1 (1 MiB each) and a kvc_put_gpu of P new
 * chunks (ITEM_PUT + j, put flags FLAGS), then, without flushing, _exit(0)
 * (HOW "exit") or tell the parent on FD and wait to be killed (HOW "kill").
 */
static int child_die(const char *sock, unsigned k, unsigned p, unsigned flags,
		     const char *how, int fd)
{
	struct shape sh = big_shape(2 * k);
	size_t cb = shape_chunk_bytes(&sh);
	struct kvc_paged_desc *pd = calloc(k, sizeof(*pd));
	struct kvc_gpu_desc *gd = calloc(k, sizeof(*gd));
	struct kvc_put_desc *ud = calloc(p, sizeof(*ud));
	int32_t *pages = calloc(2 * k, sizeof(*pages));
	uint8_t *get_dev, *cache_dev, *put_dev, *host;
	struct kv_gpu_stream *s;
	struct cache ca;
	struct kvc *c;
	uint32_t ns;
	int ret;

	host = malloc(p * cb);
	if (!pd || !gd || !ud || !pages || !host)
		return child_err("calloc", -ENOMEM);
	if ((ret = kv_gpu_set_device(0)) || (ret = kv_gpu_stream_create(&s)))
		return child_err("cuda", ret);
	if ((ret = kv_gpu_malloc(k * cb, (void **)&get_dev)) ||
	    (ret = kv_gpu_malloc(k * cb, (void **)&cache_dev)) ||
	    (ret = kv_gpu_malloc(p * cb, (void **)&put_dev)))
		return child_err("kv_gpu_malloc", ret);
	cache_layout(&ca, &sh, cache_dev);
	if ((ret = kvc_connect(sock, &c)) || (ret = kvc_ns_register(c, "death", &ns)))
		return child_err("connect", ret);
	if ((ret = kvc_gpu_open(c, 0, 0)))
		return child_err("kvc_gpu_open", ret);
	for (unsigned i = 0; i < k; i++) {
		gd[i].key = key_of(i);
		gd[i].dev = get_dev + i * cb;
		gd[i].cap = cb;
		pd[i].key = key_of(i);
		pd[i].pages = pages + i * ca.ppc;
	}
	for (unsigned i = 0; i < 2 * k; i++)
		pages[i] = (int32_t)i;
	for (unsigned j = 0; j < p; j++) {
		fill(host + j * cb, cb, ITEM_PUT + j);
		ud[j].key = key_of(ITEM_PUT + j);
		ud[j].tokens = sh.chunk_tokens;
		ud[j].data = put_dev + j * cb;
		ud[j].bytes = cb;
	}
	ret = kvc_get_gpu(c, ns, gd, k, s, NULL);
	if (ret != (int)k)
		return child_err("kvc_get_gpu", ret);
	ret = kvc_get_paged(c, ns, &ca.l, pd, k, s, NULL);
	if (ret != (int)k)
		return child_err("kvc_get_paged", ret);
	if ((ret = kv_gpu_memcpy(put_dev, host, p * cb, s)))
		return child_err("upload", ret);
	ret = kvc_put_gpu(c, ns, ud, p, flags, s, NULL);
	if (ret != (int)p)
		return child_err("kvc_put_gpu", ret);
	if (!strcmp(how, "kill")) {
		if (write(fd, "x", 1) != 1)
			return child_err("write", -errno);
		for (;;)
			pause();	/* SIGKILLed here, everything queued */
	}
	_exit(0);
}

/* A child becomes uid and gid 65534. 0, or -1 (said why) when it cannot:
 * the caller skips (77). */
static int become_nobody(void)
{
	if (geteuid() != 0) {
		printf("child: not root, so it cannot become another uid\n");
		return -1;
	}
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
		printf("child: cannot become uid 65534: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * --child-outsider SOCK DAEMON_PID MAP_BYTES: become uid and gid 65534
 * (root only; else exit 77) and try every way into the HBM arena that
 * needs no fd from the daemon: connecting, the daemon's /proc fd links,
 * and importing fd numbers this process does not hold. Exit 0 when none
 * worked, 1 when one did.
 */
static int child_outsider(const char *sock, pid_t daemon, size_t map_bytes)
{
	struct kv_gpu_vmm *m = NULL;
	struct kvc *c = NULL;
	unsigned reached = 0, tried = 0;
	char path[64];
	DIR *dir;
	int ret;

	if (become_nobody())
		return 77;
	ret = kvc_connect(sock, &c);
	if (ret == 0) {
		fprintf(stderr, "child: uid 65534 connected to the daemon\n");
		kvc_close(c);
		reached++;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon);
	dir = opendir(path);
	if (dir) {
		fprintf(stderr, "child: uid 65534 lists %s\n", path);
		closedir(dir);
		reached++;
	}
	for (int n = 0; n < 1024; n++) {
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)daemon, n);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fprintf(stderr, "child: uid 65534 opened %s\n", path);
			close(fd);
			reached++;
		}
	}
	/* Descriptor numbers are per process: any number not ours is at
	 * best a guess, which the driver must refuse. */
	for (int n = 3; n < 64; n++) {
		if (fcntl(n, F_GETFD) >= 0)
			continue;	/* one of ours (the driver's own, once open) */
		tried++;
		if (kv_gpu_vmm_import(n, map_bytes, 0, &m) == 0) {
			fprintf(stderr, "child: uid 65534 imported fd number %d\n", n);
			kv_gpu_vmm_close(m);
			m = NULL;
			reached++;
		}
	}
	printf("child: uid 65534: connect %s, /proc/%d/fd closed to it, %u made-up fd "
	       "numbers imported nothing (last: %s)\n", kvc_strerror(ret), (int)daemon, tried,
	       kv_gpu_last_error());
	return reached ? 1 : 0;
}


/*
 * --child-tenant SOCK SEED N CB: as uid 65534, a second tenant: open the HBM
 * arena HELLO handed it, read all of it looking for the first tenant's
 * chunks 0..N-1 (CB bytes each, this SEED), then write over all of it.
 * Exit 0 when nothing of theirs was there, 1 when something was, 77 when
 * it cannot become another uid, 2 on a setup failure.
 */
static int child_tenant(const char *sock, unsigned n, size_t cb)
{
	struct kv_gpu_vmm *m = NULL;
	struct kvci_hbm info;
	struct kvc *c;
	uint8_t *all, *want;
	int found = 0, ret;

	if (become_nobody())
		return 77;
	ret = kvc_connect(sock, &c);
	if (ret)
		return child_err("kvc_connect as the second tenant", ret);
	kvci_hbm_info(c, &info);
	if (info.fd < 0 || !info.map_bytes)
		return child_err("no HBM arena handed to the second tenant", -ENOENT);
	ret = kv_gpu_vmm_import(info.fd, info.map_bytes, 0, &m);
	if (ret)
		return child_err("kv_gpu_vmm_import of its own arena", ret);
	all = malloc(info.map_bytes);
	want = malloc(cb);
	if (!all || !want)
		return 2;
	download(all, kv_gpu_vmm_ptr(m), info.map_bytes);
	for (unsigned i = 0; i < n; i++) {
		fill(want, cb, i);
		/* Any 256 bytes of a chunk would be a leak. */
		for (size_t o = 0; o + 256 <= cb; o += cb / 4)
			if (memmem(all, info.map_bytes, want + o, 256))
				found++;
	}
	memset(all, 0xee, info.map_bytes);
	upload(kv_gpu_vmm_ptr(m), all, info.map_bytes);
	kv_gpu_vmm_close(m);
	printf("child: second tenant: HBM arena of %" PRIu64 " bytes (%" PRIu64
	       " mapped), %d pieces of the first tenant's chunks in it; overwritten\n",
	       info.bytes, info.map_bytes, found);
	free(all);
	free(want);
	kvc_close(c);
	return found ? 1 : 0;
}

static int child_main(int argc, char **argv)
{
	if (!strcmp(argv[1], "--child-tenant") && argc == 6) {
		seed = strtoull(argv[3], NULL, 0);
		return child_tenant(argv[2], (unsigned)atoi(argv[4]),
				    (size_t)strtoull(argv[5], NULL, 0));
	}
	if (!strcmp(argv[1], "--child-hbm-put") && argc == 5) {
		seed = strtoull(argv[3], NULL, 0);
		return child_hbm_put(argv[2], (unsigned)atoi(argv[4]));
	}
	if (!strcmp(argv[1], "--child-outsider") && argc == 5)
		return child_outsider(argv[2], (pid_t)atoi(argv[3]),
				      (size_t)strtoull(argv[4], NULL, 0));
	if (!strcmp(argv[1], "--child-die") && argc == 9) {
		seed = strtoull(argv[3], NULL, 0);
		return child_die(argv[2], (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
				 (unsigned)strtoul(argv[6], NULL, 0), argv[7], atoi(argv[8]));
	}
	fprintf(stderr, "%s: unknown child mode or arguments\n", argv[1]);
	return 2;
}

/* ---- 1. chunks to and from device memory -------------------------------- */

static void test_get_put_gpu(void **state)
{
	static const size_t sizes[4] = { MIB, 65536 + 13, 3 * 4096 + 1, 256 };
	const size_t slot = MIB + SPARE;
	uint8_t *dev = fx_dev(6 * slot), *src = fx_dev(4 * slot);
	uint8_t *buf = fx_host(slot), *ref = fx_host(slot), *want[4];
	struct kvc_key keys[4], pkeys[4];
	struct kvc_gpu_desc gd[6];
	struct kvc_put_desc pd[4], again;
	uint64_t done = 0, total = 0;
	uint8_t tiers[4];
	size_t dram = 0;
	struct kvc *c, *c2;
	uint32_t ns, ns2;
	int ret;

	c = fx_connect(shared_d.sock, "gpu-basic", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open again, same device");

	/* Host puts, GPU gets; a miss and a too small buffer in the batch. */
	for (int i = 0; i < 4; i++) {
		want[i] = fx_host(sizes[i]);
		fill(want[i], sizes[i], (uint64_t)i);
		keys[i] = key_of((uint64_t)i);
		expect_ret(kvc_put(c, ns, &keys[i], NULL, 32, 0, want[i], sizes[i]), 0, "kvc_put");
	}
	poison_dev(dev, 6 * slot);
	memset(gd, 0, sizeof(gd));
	for (int i = 0; i < 6; i++) {
		gd[i].key = i < 4 ? keys[i] : i == 4 ? key_of(100) : keys[0];
		gd[i].dev = dev + i * slot;
		gd[i].cap = i == 5 ? sizes[0] - 1 : slot;
		gd[i].status = 1;
		gd[i].tier = 0xee;
	}
	ret = kvc_get_gpu(c, ns, gd, 6, fx.s, fx.ev[0]);
	expect_ret(ret, 4, "kvc_get_gpu of 4 chunks, a miss and a small buffer");
	sync_event(0, "kvc_get_gpu: done event");
	for (int i = 0; i < 4; i++) {
		expect_ret(gd[i].status, 0, "kvc_get_gpu: status");
		assert_int_equal(gd[i].bytes, sizes[i]);
		check_tier(gd[i].tier, TIER_BIT(KVC_TIER_DRAM), "kvc_get_gpu", (size_t)i);
	}
	expect_ret(gd[4].status, -ENOENT, "kvc_get_gpu: status of a missing key");
	expect_ret(gd[5].status, -ENOBUFS, "kvc_get_gpu: status with cap one short");
	if (gd[5].bytes != sizes[0])
		fail_msg("kvc_get_gpu -ENOBUFS: bytes %zu, want the chunk's %zu", gd[5].bytes,
			 sizes[0]);
	for (int i = 0; i < 6; i++) {
		memset(ref, POISON, slot);
		if (i < 4)
			memcpy(ref, want[i], sizes[i]);
		download(buf, dev + i * slot, slot);
		same_bytes(buf, ref, slot,
			   i < 4 ? "kvc_get_gpu: chunk and the poison after it" :
			   "kvc_get_gpu: a miss or -ENOBUFS wrote its buffer", (size_t)i);
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* The legacy default stream and no event: kvc_gpu_flush() waits. */
	poison_dev(dev, slot);
	memset(gd, 0, sizeof(gd));
	gd[0].key = keys[2];
	gd[0].dev = dev;
	gd[0].cap = slot;
	expect_ret(kvc_get_gpu(c, ns, gd, 1, NULL, NULL), 1, "kvc_get_gpu, NULL stream");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	download(buf, dev, sizes[2]);
	same_bytes(buf, want[2], sizes[2], "kvc_get_gpu on the NULL stream, after flush", 2);

	kvc_gpu_registered(c, &done, &total);
	assert_non_null(kvc_dram_base(c, &dram));
	if (total != dram || done == 0 || done > total)
		fail_msg("kvc_gpu_registered: %" PRIu64 " of %" PRIu64 " bytes, mapping %zu",
			 done, total, dram);

	/* GPU puts; the same key again while it is being written: -EEXIST. */
	memset(pd, 0, sizeof(pd));
	for (int i = 0; i < 4; i++) {
		want[i] = fx_host(sizes[i]);
		fill(want[i], sizes[i], 10 + (uint64_t)i);
		upload(src + i * slot, want[i], sizes[i]);
		pkeys[i] = key_of(10 + (uint64_t)i);
		pd[i].key = pkeys[i];
		pd[i].tokens = 32;
		pd[i].data = src + i * slot;
		pd[i].bytes = sizes[i];
		pd[i].status = 1;
	}
	ret = kvc_put_gpu(c, ns, pd, 4, 0, fx.s, fx.ev[0]);
	expect_ret(ret, 4, "kvc_put_gpu");
	for (int i = 0; i < 4; i++)
		expect_ret(pd[i].status, 0, "kvc_put_gpu: status");
	again = pd[0];
	again.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &again, 1, 0, fx.s, NULL), 0,
		   "kvc_put_gpu of a key being written");
	expect_ret(again.status, -EEXIST, "kvc_put_gpu of a key being written: status");
	sync_event(0, "kvc_put_gpu: done event");

	/* The done event fired: committed (read-your-writes, kvc.h). */
	check_get_gpu(c, ns, &pkeys[0], &want[0], 1, sizes[0], TIER_BIT(KVC_TIER_DRAM), NULL,
		      dev, buf, "kvc_get_gpu of a GPU put, first call after its copy");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < 4; i++) {
		check_get_host(c, ns, &pkeys[i], want[i], sizes[i], buf, "kvc_get of a GPU put",
			       (size_t)i);
		check_get_gpu(c, ns, &pkeys[i], &want[i], 1, sizes[i], TIER_BIT(KVC_TIER_DRAM),
			      NULL, dev, buf, "kvc_get_gpu of a GPU put");
	}
	c2 = fx_connect(shared_d.sock, "gpu-basic", &ns2);
	for (int i = 0; i < 4; i++)
		check_get_host(c2, ns2, &pkeys[i], want[i], sizes[i], buf,
			       "kvc_get of a GPU put, another connection", (size_t)i);
	expect_ret(kvc_lookup(c2, ns2, pkeys, 4, tiers), 4, "kvc_lookup");
	for (int i = 0; i < 4; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup", (size_t)i);

	/* Cached now: -EEXIST from either kind of put, nothing overwritten. */
	expect_ret(kvc_put(c, ns, &pkeys[1], NULL, 32, 0, want[0], sizes[1]), -EEXIST,
		   "kvc_put of a cached key");
	again = pd[1];
	again.data = src;	/* other bytes: must not be copied */
	again.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &again, 1, 0, fx.s, fx.ev[0]), 0,
		   "kvc_put_gpu of a cached key");
	expect_ret(again.status, -EEXIST, "kvc_put_gpu of a cached key: status");
	sync_event(0, "kvc_put_gpu: done event");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_host(c2, ns2, &pkeys[1], want[1], sizes[1], buf,
		       "kvc_get after an -EEXIST put", 1);

	/* KVC_GPU_REGISTER_ALL page-locks the whole mapping in the background. */
	fx_close(c2);
	c2 = fx_connect(shared_d.sock, "gpu-basic", &ns2);
	expect_ret(kvc_gpu_open(c2, 0, KVC_GPU_REGISTER_ALL), 0,
		   "kvc_gpu_open KVC_GPU_REGISTER_ALL");
	for (int i = 0; i < 500; i++) {
		kvc_gpu_registered(c2, &done, &total);
		if (total && done == total)
			break;
		sleep_ms(20);
	}
	if (!total || done != total)
		fail_msg("KVC_GPU_REGISTER_ALL: %" PRIu64 " of %" PRIu64 " bytes after 10 s",
			 done, total);
	check_get_gpu(c2, ns2, pkeys, want, 1, sizes[0], TIER_BIT(KVC_TIER_DRAM), NULL,
		      dev, buf, "kvc_get_gpu, whole mapping registered");
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush");
	fx_close(c2);
	fx_close(c);
}

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

/* ---- 4. HBM shared through the arena's fd, two processes ------------------ */

/* Wait until the DRAM tier holds at least chunks chunks (HBM puts are
 * written down to it shortly after commit). */
static void wait_dram_chunks(struct kvc *c, uint64_t chunks, const char *what)
{
	struct kvc_stats st;
	const struct kvc_tier_stats *t = NULL;

	for (int i = 0; i < 200; i++) {
		expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
		t = find_tier(&st, "dram");
		assert_non_null(t);
		if (t->chunks >= chunks)
			return;
		sleep_ms(10);
	}
	fail_msg("%s: %" PRIu64 " chunks in DRAM 2 s later, want %" PRIu64
		 " (HBM puts not written down?)", what, t->chunks, chunks);
}

static void test_hbm_shared(void **state)
{
	const char *args[] = { "--dram-bytes", "512M", "--hbm-bytes", "256M", "--gpu", "0",
			       "--hbm-promote", "off", "--policy", "dram=lru,hbm=lru",
			       "--log", "info", NULL };
	enum { N = 8, BIG_N = 80, BATCH = 8 };
	const size_t big = 4 * MIB;
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	struct kvc_key keys[N], bkeys[BATCH];
	uint8_t *want[N], *bwant[BATCH], tiers[N + BIG_N], tiers2[N + BIG_N];
	uint8_t *dev = fx_dev(BATCH * (big + SPARE)), *src = fx_dev(BATCH * big);
	uint8_t *buf = fx_host(big + SPARE);
	const struct kvc_tier_stats *hbm;
	struct kvc_put_desc pd[BATCH];
	unsigned in_dram = 0, in_hbm = 0;
	struct kvt_daemon *d;
	struct kvc_stats st;
	struct kvc *c, *c2;
	struct cache ca;
	char sd[32], nb[8];
	uint32_t ns, ns2;
	int ret;

	d = fx_start(args);
	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(nb, sizeof(nb), "%d", N);
	{
		const char *cargs[] = { "--child-hbm-put", d->sock, sd, nb, NULL };

		wait_child(spawn_child(cargs), "put into HBM from another process");
	}
	c = fx_connect(d->sock, "shared", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	expect_ret(kvc_lookup(c, ns, keys, N, tiers), N, "kvc_lookup of the child's chunks");
	for (int i = 0; i < N; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_HBM), "kvc_lookup after KVC_PUT_HBM",
			   (size_t)i);
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	hbm = find_tier(&st, "hbm");
	if (!hbm)
		fail_msg("kvc_stats lists no \"hbm\" tier (%u tiers)", st.n_tiers);
	if (hbm->capacity_bytes != 256 * MIB || hbm->chunks != N || hbm->used_bytes < N * cb)
		fail_msg("hbm tier: capacity %" PRIu64 ", %" PRIu64 " chunks, %" PRIu64
			 " bytes used; want 256 MiB, %d chunks, >= %zu bytes",
			 hbm->capacity_bytes, hbm->chunks, hbm->used_bytes, N, N * cb);

	/* Got device to device out of the arena imported from its fd, whole
	 * and paged. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu of a chunk in HBM");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, N, TIER_BIT(KVC_TIER_HBM),
			"kvc_get_paged of chunks in HBM");
	for (int i = 0; i < N; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get of a chunk in HBM",
			       (size_t)i);
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* Inclusive: the DRAM copy exists and is exact (KVC_GPU_NO_HBM uses it). */
	wait_dram_chunks(c, N, "after KVC_PUT_HBM");
	c2 = fx_connect(d->sock, "shared", &ns2);
	expect_ret(kvc_gpu_open(c2, 0, KVC_GPU_NO_HBM), 0, "kvc_gpu_open KVC_GPU_NO_HBM");
	check_get_gpu(c2, ns2, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu with KVC_GPU_NO_HBM");
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush");
	fx_close(c2);

	/* Past HBM's capacity: 320 MiB of 4 MiB chunks into 256 MiB. */
	for (int i = 0; i < BATCH; i++)
		bwant[i] = fx_host(big);
	for (int b = 0; b < BIG_N / BATCH; b++) {
		memset(pd, 0, sizeof(pd));
		for (int i = 0; i < BATCH; i++) {
			uint64_t item = ITEM_BIG + (uint64_t)(b * BATCH + i);

			fill(bwant[i], big, item);
			upload(src + i * big, bwant[i], big);
			pd[i].key = key_of(item);
			pd[i].tokens = 256;
			pd[i].data = src + i * big;
			pd[i].bytes = big;
			pd[i].status = 1;
		}
		ret = kvc_put_gpu(c, ns, pd, BATCH, KVC_PUT_HBM, fx.s, fx.ev[0]);
		expect_ret(ret, BATCH, "kvc_put_gpu KVC_PUT_HBM past HBM's capacity");
		for (int i = 0; i < BATCH; i++)
			expect_ret(pd[i].status, 0, "kvc_put_gpu KVC_PUT_HBM: status");
		sync_event(0, "kvc_put_gpu: done event");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	}

	/* Everything still found and exact; the oldest (the child's, least
	 * recently used: hbm=lru) were evicted from HBM and come from DRAM. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM), tiers, dev, buf,
		      "kvc_get_gpu of the oldest chunks after HBM overflowed (want them in DRAM)");
	for (int b = 0; b < BIG_N / BATCH; b++) {
		for (int i = 0; i < BATCH; i++) {
			bkeys[i] = key_of(ITEM_BIG + (uint64_t)(b * BATCH + i));
			fill(bwant[i], big, ITEM_BIG + (uint64_t)(b * BATCH + i));
		}
		check_get_gpu(c, ns, bkeys, bwant, BATCH, big,
			      TIER_BIT(KVC_TIER_HBM) | TIER_BIT(KVC_TIER_DRAM),
			      tiers + N + b * BATCH, dev, buf, "kvc_get_gpu after HBM overflowed");
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < N + BIG_N; i++) {
		in_dram += tiers[i] == KVC_TIER_DRAM;
		in_hbm += tiers[i] == KVC_TIER_HBM;
	}
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	hbm = find_tier(&st, "hbm");
	assert_non_null(hbm);
	print_message("figure: hbm overflow: %u chunks from HBM, %u from DRAM, all exact; "
		      "hbm %" PRIu64 " of %" PRIu64 " bytes, %" PRIu64 " evictions\n",
		      in_hbm, in_dram, hbm->used_bytes, hbm->capacity_bytes, hbm->evictions);
	if (in_dram == 0)
		fail_msg("%zu MiB put into a 256 MiB HBM tier, yet every chunk came from HBM",
			 (N * cb + BIG_N * big) / MIB);
	if (hbm->used_bytes > hbm->capacity_bytes)
		fail_msg("hbm tier: %" PRIu64 " bytes used of %" PRIu64, hbm->used_bytes,
			 hbm->capacity_bytes);
	check_get_paged(c, ns, &ca, keys, want, N,
			TIER_BIT(KVC_TIER_HBM) | TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged of old chunks after HBM overflowed");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* --hbm-promote off: hits leave DRAM chunks in DRAM. */
	sleep_ms(200);
	expect_ret(kvc_lookup(c, ns, keys, N, tiers2), N, "kvc_lookup");
	for (int i = 0; i < N; i++)
		if (tiers[i] == KVC_TIER_DRAM && tiers2[i] != KVC_TIER_DRAM)
			fail_msg("chunk %d moved from DRAM to tier %u with --hbm-promote off", i,
				 tiers2[i]);
	fx_close(c);
	fx_stop(d);
}

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

/* ---- 5. a client dying with copies queued ------------------------------- */

static void client_death(bool hbm)
{
	const char *dram_args[] = { "--dram-bytes", "256M", "--hbm-bytes", "0", "--log", "warn",
				    NULL };
	const char *hbm_args[] = { "--dram-bytes", "256M", "--hbm-bytes", "128M", "--gpu", "0",
				   "--hbm-promote", "off", "--log", "warn", NULL };
	enum { K = 48, P = 16, H = 16 };
	struct shape sh = big_shape(2 * K);
	const size_t cb = shape_chunk_bytes(&sh);
	struct kvc_key keys[K], pkeys[P + 1];
	uint8_t *want[K], *pw = fx_host(cb), tiers[K], ptiers[P];
	uint8_t *dev = fx_dev(H * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	uint64_t base_dram, base_hbm = 0, t0, ms;
	struct kvc_put_desc pd[H];
	const struct kvc_tier_stats *t;
	struct kvt_daemon *d;
	struct kvc_stats st;
	unsigned committed = 0;
	char sd[32], kb[8], pb[8], fl[16], fdb[8];
	int st_, pfd[2], evst[K];
	struct kvc *c;
	uint32_t ns;
	pid_t pid;
	char ch;

	d = fx_start(hbm ? hbm_args : dram_args);
	c = fx_connect(d->sock, "death", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < K; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	/* With HBM: the first H chunks put into it from device memory. */
	if (hbm) {
		memset(pd, 0, sizeof(pd));
		for (int i = 0; i < H; i++) {
			upload(dev + i * cb, want[i], cb);
			pd[i].key = keys[i];
			pd[i].tokens = sh.chunk_tokens;
			pd[i].data = dev + i * cb;
			pd[i].bytes = cb;
		}
		expect_ret(kvc_put_gpu(c, ns, pd, H, KVC_PUT_HBM, fx.s, fx.ev[0]), H,
			   "kvc_put_gpu KVC_PUT_HBM");
		sync_event(0, "kvc_put_gpu: done event");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
		wait_dram_chunks(c, H, "after KVC_PUT_HBM");
	}
	for (int i = hbm ? H : 0; i < K; i++)
		expect_ret(kvc_put(c, ns, &keys[i], NULL, sh.chunk_tokens, 0, want[i], cb), 0,
			   "kvc_put");
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	base_dram = find_tier(&st, "dram")->used_bytes;
	if (hbm) {
		t = find_tier(&st, "hbm");
		assert_non_null(t);
		base_hbm = t->used_bytes;
	}

	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(kb, sizeof(kb), "%d", K);
	snprintf(pb, sizeof(pb), "%d", P);
	snprintf(fl, sizeof(fl), "%u", hbm ? (unsigned)KVC_PUT_HBM : 0u);
	assert_int_equal(pipe(pfd), 0);
	snprintf(fdb, sizeof(fdb), "%d", pfd[1]);
	{
		const char *cargs[] = { "--child-die", d->sock, sd, kb, pb, fl,
					hbm ? "kill" : "exit", fdb, NULL };

		pid = spawn_child(cargs);
	}
	close(pfd[1]);
	if (hbm) {
		/* Killed holding pins, HBM copies and uncommitted HBM puts. */
		if (read(pfd[0], &ch, 1) != 1)
			wait_child(pid, "the child to be killed");	/* died early: why */
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &st_, 0), pid);
		if (!WIFSIGNALED(st_))
			fail_msg("the child was not killed (status %#x)", st_);
	} else {
		wait_child(pid, "the child that _exits with copies queued");
	}
	close(pfd[0]);

	/* TESTING.md plan 5: all released within 1 s of the socket closing. */
	t0 = now_ms();
	do {
		expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
		if (st.pinned_chunks == 0 && st.pending_chunks == 0)
			break;
		sleep_ms(10);
	} while (now_ms() - t0 < 1000);
	ms = now_ms() - t0;
	if (st.pinned_chunks || st.pending_chunks)
		fail_msg("1 s after the client died: %" PRIu64 " chunks pinned, %" PRIu64
			 " allocations pending", st.pinned_chunks, st.pending_chunks);
	print_message("figure: client %s with copies queued%s: released within %" PRIu64
		      " ms\n", hbm ? "SIGKILLed" : "_exit()ed", hbm ? " (HBM)" : "", ms);

	/* Every chunk exact; the puts absent, or exact if they were committed. */
	for (int i = 0; i < K; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get after the client died",
			       (size_t)i);
	for (int i = 0; i < K; i += H) {
		unsigned mask = TIER_BIT(KVC_TIER_DRAM) |
				(hbm && i < H ? TIER_BIT(KVC_TIER_HBM) : 0);

		check_get_gpu(c, ns, &keys[i], &want[i], H, cb, mask, tiers + i, dev, buf,
			      "kvc_get_gpu after the client died");
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int j = 0; j < P; j++)
		pkeys[j] = key_of(ITEM_PUT + (uint64_t)j);
	for (int j = 0; j < P; j++) {
		int ret = kvc_lookup(c, ns, &pkeys[j], 1, &ptiers[j]);

		if (ret < 0)
			expect_ret(ret, 1, "kvc_lookup of a put made by the dead client");
		if (ret == 0)
			continue;
		committed++;
		fill(pw, cb, ITEM_PUT + (uint64_t)j);
		check_get_host(c, ns, &pkeys[j], pw, cb, buf,
			       "a put committed by the dead client", (size_t)j);
	}
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	if (!hbm && find_tier(&st, "dram")->used_bytes != base_dram + committed * cb)
		fail_msg("dram used %" PRIu64 " bytes, want %" PRIu64 " + %u committed puts",
			 find_tier(&st, "dram")->used_bytes, base_dram, committed);
	if (hbm && committed == 0 && (find_tier(&st, "dram")->used_bytes != base_dram ||
				      find_tier(&st, "hbm")->used_bytes != base_hbm))
		fail_msg("usage after the client died: dram %" PRIu64 " (was %" PRIu64
			 "), hbm %" PRIu64 " (was %" PRIu64 ")",
			 find_tier(&st, "dram")->used_bytes, base_dram,
			 find_tier(&st, "hbm")->used_bytes, base_hbm);
	print_message("figure: client death: %u of %d queued puts were committed\n",
		      committed, P);

	/* Unpinned: every chunk the child got can be evicted. */
	expect_ret(kvc_evict(c, ns, keys, K, evst), K, "kvc_evict of the chunks the child got");
	for (int i = 0; i < K; i++)
		expect_ret(evst[i], 0, "kvc_evict: status");

	/* And the daemon still serves a GPU round trip. */
	pkeys[P] = key_of(ITEM_PUT + 500);
	memset(pd, 0, sizeof(pd));
	fill(pw, cb, ITEM_PUT + 500);
	upload(dev, pw, cb);
	pd[0].key = pkeys[P];
	pd[0].tokens = sh.chunk_tokens;
	pd[0].data = dev;
	pd[0].bytes = cb;
	expect_ret(kvc_put_gpu(c, ns, pd, 1, hbm ? KVC_PUT_HBM : 0, fx.s, fx.ev[0]), 1,
		   "kvc_put_gpu after the client died");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_gpu(c, ns, &pkeys[P], &pw, 1, cb,
		      TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu after the client died");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	assert_true(kvt_alive(d));
	fx_close(c);
	fx_stop(d);
}

static void test_client_exits_mid_copy(void **state)
{
	client_death(false);
}

static void test_client_killed_mid_copy_hbm(void **state)
{
	client_death(true);
}

/* ---- 6. promotion into HBM ---------------------------------------------- */

/* How many of keys[0..n) have their copy in HBM now. */
static int count_in_hbm(struct kvc *c, uint32_t ns, const struct kvc_key *keys, int n)
{
	struct kvc_entry e;
	int in_hbm = 0;

	for (int i = 0; i < n; i++) {
		expect_ret(kvc_inspect(c, ns, &keys[i], &e), 0, "kvc_inspect");
		in_hbm += e.tier == KVC_TIER_HBM;
	}
	return in_hbm;
}

static void promote(const char *when)
{
	const char *args[] = { "--dram-bytes", "64M", "--hbm-bytes", "64M", "--gpu", "0",
			       "--hbm-promote", when, "--log", "warn", NULL };
	enum { N = 4 };
	bool second = !strcmp(when, "second");
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	const unsigned any = TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	uint8_t *want[N], tiers[N];
	struct kvc_entry e;
	struct kvt_daemon *d;
	struct cache ca;
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	int in_hbm = 0;

	d = fx_start(args);
	c = fx_connect(d->sock, "promote", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	expect_ret(kvc_lookup(c, ns, keys, N, tiers), N, "kvc_lookup");
	for (int i = 0; i < N; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup after kvc_put",
			   (size_t)i);

	check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf, "first kvc_get_gpu");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	if (second) {
		sleep_ms(300);
		for (int i = 0; i < N; i++) {
			expect_ret(kvc_inspect(c, ns, &keys[i], &e), 0, "kvc_inspect");
			if (e.tier != KVC_TIER_DRAM)
				fail_msg("chunk %d in tier %u after one GPU hit with "
					 "--hbm-promote second", i, e.tier);
		}
		check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf,
			      "second kvc_get_gpu");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	}

	/* Promoted within 3 s; with "always", keep reading it meanwhile: a
	 * half-copied HBM chunk must never be handed out. */
	t0 = now_ms();
	do {
		in_hbm = count_in_hbm(c, ns, keys, N);
		if (in_hbm == N)
			break;
		if (!second) {
			check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf,
				      "kvc_get_gpu while being promoted");
			expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
		}
		sleep_ms(20);
	} while (now_ms() - t0 < 3000);
	if (in_hbm != N)
		fail_msg("--hbm-promote %s: %d of %d chunks in HBM 3 s after %s GPU hit", when,
			 in_hbm, N, second ? "their second" : "a");
	print_message("figure: --hbm-promote %s: %d chunks in HBM %" PRIu64 " ms later\n",
		      when, N, now_ms() - t0);

	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu of a promoted chunk");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, N, TIER_BIT(KVC_TIER_HBM),
			"kvc_get_paged of promoted chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < N; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get of a promoted chunk",
			       (size_t)i);
	fx_close(c);
	fx_stop(d);
}

static void test_promote_always(void **state)
{
	promote("always");
}

static void test_promote_second(void **state)
{
	promote("second");
}

/* ---- 7. a GPU the daemon cannot have ------------------------------------ */

static void test_no_such_gpu(void **state)
{
	const char *args[] = { "--hbm-bytes", "64M", "--gpu", "99", "--log", "info", NULL };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(2 * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	const struct kvc_tier_stats *t;
	struct kvc_put_desc pd;
	struct kvc_key keys[2];
	uint8_t *want[2], tiers[2];
	struct kvt_daemon *d;
	struct kvc_stats st;
	struct cache ca;
	struct kvc *c;
	uint32_t ns;

	d = fx_start(args);
	if (!kvt_log_has(d, "hbm") && !kvt_log_has(d, "HBM")) {
		kvt_dump_log(d);
		fail_msg("--gpu 99: no log line says why there is no HBM tier");
	}
	c = fx_connect(d->sock, "nogpu", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open (this process has a GPU)");
	for (int i = 0; i < 2; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	expect_ret(kvc_put(c, ns, &keys[0], NULL, sh.chunk_tokens, 0, want[0], cb), 0, "kvc_put");

	/* KVC_PUT_HBM with no HBM tier: stored in DRAM. */
	upload(dev, want[1], cb);
	memset(&pd, 0, sizeof(pd));
	pd.key = keys[1];
	pd.parent = keys[0];
	pd.has_parent = 1;
	pd.tokens = sh.chunk_tokens;
	pd.position = sh.chunk_tokens;
	pd.data = dev;
	pd.bytes = cb;
	pd.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &pd, 1, KVC_PUT_HBM, fx.s, fx.ev[0]), 1,
		   "kvc_put_gpu KVC_PUT_HBM, no HBM tier");
	expect_ret(pd.status, 0, "kvc_put_gpu KVC_PUT_HBM, no HBM tier: status");
	sync_event(0, "kvc_put_gpu: done event");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	expect_ret(kvc_lookup(c, ns, keys, 2, tiers), 2, "kvc_lookup");
	for (int i = 0; i < 2; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup, no HBM tier",
			   (size_t)i);
	check_get_gpu(c, ns, keys, want, 2, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu, no HBM tier");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, 2, TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged, no HBM tier");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_host(c, ns, &keys[1], want[1], cb, buf, "kvc_get, no HBM tier", 1);
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	t = find_tier(&st, "hbm");
	if (t && (t->chunks || t->used_bytes))
		fail_msg("--gpu 99: an hbm tier holding %" PRIu64 " chunks", t->chunks);
	fx_close(c);
	fx_stop(d);
}

/* ---- 8. the HBM arena reached through its fd only -------------------------- */

/* An import that must fail, and leave nothing mapped. */
static void expect_no_import(int fd, size_t bytes, const char *what)
{
	struct kv_gpu_vmm *m = NULL;
	int ret = kv_gpu_vmm_import(fd, bytes, 0, &m);

	if (ret == 0) {
		kv_gpu_vmm_close(m);
		fail_msg("kv_gpu_vmm_import of %s (fd %d, %zu bytes) succeeded", what, fd, bytes);
	}
	if (m)
		fail_msg("kv_gpu_vmm_import of %s failed (%s) but returned a mapping", what,
			 err_name(ret));
	print_message("import of %s: %s (%s)\n", what, err_name(ret), kv_gpu_last_error());
}

static void test_hbm_fd_only(void **state)
{
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "64M", "--gpu", "0",
			       "--hbm-promote", "always", "--log", "info", NULL };
	enum { N = 4 };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	const unsigned any = TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	struct kvc_loc locs[N];
	uint8_t *want[N];
	struct kv_gpu_vmm *m = NULL;
	struct kvci_hbm info;
	struct kvt_daemon *d;
	char pci[KV_GPU_PCI_ID], sz[32], pid[16];
	size_t gran = 0;
	int closed, memfd, null_fd, in_hbm, st;
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	pid_t child;

	d = fx_start(args);
	c = fx_connect(d->sock, "fdonly", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");

	/* What HELLO handed over: sizes, the GPU's PCI id and an fd. */
	kvci_hbm_info(c, &info);
	if (info.fd < 0)
		fail_msg("HELLO handed over no HBM fd");
	if (!(fcntl(info.fd, F_GETFD) & FD_CLOEXEC))
		fail_msg("the HBM fd is not close-on-exec");
	expect_ret(kv_gpu_vmm_granularity(0, &gran), 0, "kv_gpu_vmm_granularity");
	expect_ret(kv_gpu_pci_id(0, pci), 0, "kv_gpu_pci_id");
	if (info.bytes != 64 * MIB || info.map_bytes < info.bytes || info.map_bytes % gran ||
	    strcasecmp(info.pci, pci))
		fail_msg("HELLO's HBM arena: %" PRIu64 " bytes, %" PRIu64 " mapped, GPU %s; want "
			 "64 MiB, whole %zu-byte granules, GPU %s", info.bytes, info.map_bytes,
			 info.pci, gran, pci);
	print_message("figure: HBM arena handed over as fd %d: %" PRIu64 " bytes, %" PRIu64
		      " mapped (%zu-byte granules), GPU %s\n", info.fd, info.bytes,
		      info.map_bytes, gran, info.pci);

	/* Any other fd opens nothing. */
	closed = dup(info.fd);
	assert_true(closed >= 0);
	close(closed);
	expect_no_import(closed, info.map_bytes, "a closed fd");
	expect_no_import(4000, info.map_bytes, "a made-up fd number");
	memfd = memfd_create("not-an-arena", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, (off_t)info.map_bytes), 0);
	expect_no_import(memfd, info.map_bytes, "a memfd");
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(null_fd >= 0);
	expect_no_import(null_fd, info.map_bytes, "/dev/null");
	expect_ret(kv_gpu_vmm_import(info.fd, info.map_bytes - 1, 0, &m), -EINVAL,
		   "kv_gpu_vmm_import of no whole number of granules");
	close(memfd);
	close(null_fd);

	/* Chunks the daemon copied up into HBM (its GPU thread, DRAM -> HBM),
	 * read through a mapping of our own made from the fd. */
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf, "kvc_get_gpu (promotes)");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	t0 = now_ms();
	while ((in_hbm = count_in_hbm(c, ns, keys, N)) < N && now_ms() - t0 < 3000)
		sleep_ms(20);
	if (in_hbm != N)
		fail_msg("%d of %d chunks promoted into HBM in 3 s", in_hbm, N);
	expect_ret(kv_gpu_vmm_import(info.fd, info.map_bytes, 0, &m), 0,
		   "kv_gpu_vmm_import of the arena's fd");
	expect_ret(kvci_pin(c, ns, keys, N, locs, KV_PIN_GPU), 0, "kvci_pin KV_PIN_GPU");
	for (int i = 0; i < N; i++) {
		expect_ret(locs[i].status, 0, "kvci_pin: status");
		check_tier(locs[i].tier, TIER_BIT(KVC_TIER_HBM), "pinned promoted chunk",
			   (size_t)i);
		if (locs[i].offset > info.bytes || info.bytes - locs[i].offset < cb)
			fail_msg("chunk %d at HBM offset %" PRIu64 ", past the arena", i,
				 locs[i].offset);
		memset(buf, POISON, cb);
		download(buf, (char *)kv_gpu_vmm_ptr(m) + locs[i].offset, cb);
		same_bytes(buf, want[i], cb, "the daemon's HBM copy through our own mapping",
			   (size_t)i);
	}
	expect_ret(kvc_release(c, ns, keys, N, NULL), 0, "kvc_release");
	kv_gpu_vmm_close(m);

	/* A process of another uid: no connection, no fd, no way in. */
	snprintf(pid, sizeof(pid), "%d", (int)d->pid);
	snprintf(sz, sizeof(sz), "%" PRIu64, info.map_bytes);
	{
		const char *cargs[] = { "--child-outsider", d->sock, pid, sz, NULL };

		child = spawn_child(cargs);
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		print_message("the other-uid part was skipped (its line is above)\n");
	else if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("a process of another uid reached the daemon or its arena (status %#x)",
			 st);
	fx_close(c);
	fx_stop(d);
}

/*
 * Two tenants (root, uid 65534), an HBM arena each: the second maps,
 * reads and overwrites all of its own arena and finds none of the first
 * tenant's chunks, which stay exact in the first tenant's HBM.
 */
static void test_hbm_tenants(void **state)
{
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "128M", "--gpu", "0",
			       "--hbm-promote", "always", "--allow-uids", "0,65534",
			       "--log", "info", NULL };
	enum { N = 4 };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	uint8_t *want[N];
	struct kvci_hbm info;
	struct kvt_daemon *d;
	char sd[32], n[16], sz[32];
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	int in_hbm, st;
	pid_t child;

	d = fx_start(args);
	chmod(d->dir, 0755);
	chmod(d->sock, 0666);	/* the daemon's own checks must hold alone */
	c = fx_connect(d->sock, "tenant-a", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	kvci_hbm_info(c, &info);
	if (info.fd < 0 || info.bytes != 64 * MIB)
		fail_msg("the first tenant's HBM arena: fd %d, %" PRIu64 " bytes; want 64 MiB, "
			 "half of the daemon's", info.fd, info.bytes);
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM),
		      NULL, dev, buf, "kvc_get_gpu (promotes)");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	t0 = now_ms();
	while ((in_hbm = count_in_hbm(c, ns, keys, N)) < N && now_ms() - t0 < 3000)
		sleep_ms(20);
	if (in_hbm != N)
		fail_msg("%d of %d chunks promoted into HBM in 3 s", in_hbm, N);
	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(n, sizeof(n), "%d", N);
	snprintf(sz, sizeof(sz), "%zu", cb);
	{
		const char *cargs[] = { "--child-tenant", d->sock, sd, n, sz, NULL };

		child = spawn_child(cargs);
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		print_message("the second tenant was skipped (its line is above)\n");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fail_msg("the second tenant saw the first tenant's HBM chunks (status %#x)", st);
	}
	/* Still in HBM, still exact. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu after the second tenant");
	fx_close(c);
	fx_stop(d);
}

/*
 * SSD-resident chunks reach the GPU: a prefix chain four times the DRAM
 * tier, so its first chunks live only on SSD; GPU and paged gets of them
 * promote them first (the PIN waits) and copy exact bytes.
 */
static void test_ssd_to_gpu(void **state)
{
	enum { N = 512, K = 8 };
	char dir[] = "/var/tmp/kvgpu-ssd.XXXXXX";
	const char *args[] = { "--dram-bytes", "8M", "--ssd-dir", dir, "--ssd-bytes", "256M",
			       "--log", "warn", NULL };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(K * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	uint8_t *all = fx_host(N * cb);
	struct kvc_key keys[N];
	uint8_t *want[N], tiers[K];
	struct kvt_daemon *d;
	struct cache ca;
	struct kvc *c;
	char cmd[128];
	uint32_t ns;

	assert_non_null(mkdtemp(dir));
	d = fx_start(args);
	c = fx_connect(d->sock, "ssd", &ns);
	for (size_t i = 0; i < N; i++) {
		keys[i] = key_of(i);
		want[i] = all + i * cb;
		fill(want[i], cb, i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	expect_ret(kvc_flush(c, KVC_TIER_DRAM, 0, NULL), 0, "kvc_flush dram");
	expect_ret(kvc_lookup(c, ns, keys, K, tiers), K, "kvc_lookup");
	for (size_t i = 0; i < K; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_SSD), "oldest chunks on SSD", i);
	check_get_gpu(c, ns, keys, want, K, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu of SSD chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	/* Demote them again, then the paged path. */
	for (size_t i = 0; i < K; i++)
		expect_ret(kvc_evict(c, ns, &keys[i], 1, NULL), 1, "kvc_evict (demote)");
	expect_ret(kvc_lookup(c, ns, keys, K, tiers), K, "kvc_lookup");
	for (size_t i = 0; i < K; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_SSD), "demoted chunks on SSD", i);
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, K, TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged of SSD chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	fx_close(c);
	fx_stop(d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fail_msg("cannot remove %s", dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest shared_tests[] = {
		cmocka_unit_test_setup_teardown(test_get_put_gpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_vllm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_vllm_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_flashinfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_sglang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paged_hf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layerwise, setup, teardown),
	};
	const struct CMUnitTest own_daemon_tests[] = {
		cmocka_unit_test_setup_teardown(test_hbm_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hbm_fd_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hbm_tenants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_read_your_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_exits_mid_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_killed_mid_copy_hbm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_always, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_such_gpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssd_to_gpu, setup, teardown),
	};
	char why[256] = "";
	int n = 0, ret;

	if (argc > 1 && !strncmp(argv[1], "--child-", 8))
		return child_main(argc, argv);
	/* Before cmocka: CI without a GPU counts this binary as skipped. */
	if (!kv_gpu_available(&n, why, sizeof(why))) {
		printf("skipped: no usable GPU (%s)\n", why);
		return 77;
	}
	if (kv_gpu_set_device(0)) {
		printf("cannot use GPU 0: %s\n", kv_gpu_last_error());
		return 1;
	}
	ret = cmocka_run_group_tests_name("gpu client, one daemon", shared_tests, group_setup,
					  group_teardown);
	ret |= cmocka_run_group_tests_name("gpu client, a daemon each", own_daemon_tests, NULL,
					   NULL);
	return ret ? 1 : 0;
}
