/*
 * test_kernels.c - kv_gpu_paged_copy() on the GPU against kv_gpu_paged_ref()
 * run on host copies of the same bytes.
 *
 * Cases: every engine layout (vLLM combined and split, FlashInfer, SGLang
 * token slots, Hugging Face [1, H, cap, D] with rows split into heads, its
 * pages random or consecutive positions from an odd one), both
 * directions, five ways to hold the chunks (ZEROCOPY from registered host
 * memory, ZEROCOPY from device memory, STAGED from registered host memory,
 * STAGED from device memory, which takes the one-kernel path, STAGED from
 * pageable host memory, which the copy engine reads), 1, 3 and 17 chunks a
 * call, three row sizes and three layer ranges, random data fresh per case
 * and poisoned destinations with guard bytes on both sides. Then:
 * refusals that must queue nothing, a burst of calls on two streams that
 * wraps the context's table ring while the caller rewrites its arrays, a
 * gather then a scatter of the same chunk with no sync between, and a
 * page table large enough to grow the ring's slots.
 *
 * Prints one line per case, "figure:" lines with GB/s for each mode on a
 * Llama-3-8B-shaped batch next to a plain pinned memcpy measured in the
 * same run, and "N passed, N failed". Exits 77 without a GPU, 1 on any
 * failure. --quick: no figures; --figures: only them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"

#define POISON		0xa5
#define GUARD		4096		/* poisoned bytes either side of a case */
#define ENG_ARENA	(80ul << 20)
#define CHUNK_ARENA	(40ul << 20)
#define STAGING		(4ul << 20)

enum kind { VLLM, VLLM_SPLIT, FLASHINFER, SGLANG, HF, KINDS };
static const char *const kind_name[KINDS] = {
	"vllm", "vllm-split", "flashinfer", "sglang", "hf",
};

enum where { ZC_HOST, ZC_DEV, STAGED_HOST, STAGED_DEV, STAGED_PAGEABLE, WHERES };
static const char *const where_name[WHERES] = {
	"zerocopy/host", "zerocopy/device", "staged/host", "staged/device", "staged/pageable",
};

struct geom {
	enum kind kind;
	uint32_t layers;
	uint32_t chunk_tokens;
	uint32_t bs;		/* page_tokens */
	uint32_t row_bytes;
	uint32_t nb;		/* pages (blocks, token slots, positions) per layer */
	uint32_t n;		/* chunks */
	uint32_t heads;		/* HF: segments of a row (KV heads) */
	uint32_t first;		/* in_order: the first page */
	int in_order;		/* pages first, first + 1, ..., not random */
};

/* What every case shares. */
struct rig {
	struct kv_gpu_ctx *ctx;
	struct kv_gpu_stream *s;
	struct kv_gpu_stream *s2;
	char *eng_dev;		/* device: the engine cache */
	char *eng_host;		/* its host twin, for the reference */
	char *chunk_reg;	/* registered host chunks */
	char *chunk_dev;	/* device chunks */
	char *chunk_plain;	/* pageable host chunks (STAGED only) */
	char *chunk_host;	/* the reference's chunks */
	char *readback;
	int passed;
	int failed;
};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void fill_random(void *p, size_t n)	/* n a multiple of 8 */
{
	uint64_t *w = p;

	for (size_t i = 0; i < n / 8; i++)
		w[i] = rnd();
}

static void shuffle(uint32_t *a, uint32_t n)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = (uint32_t)(rnd() % i);
		uint32_t x = a[i - 1];

		a[i - 1] = a[j];
		a[j] = x;
	}
}

static void *xmalloc(size_t n)
{
	void *p = aligned_alloc(4096, (n + 4095) / 4096 * 4096);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static void *xmap(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void die_gpu(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "%s: %s (%s)\n", what, kv_strerror(ret), kv_gpu_last_error());
		exit(1);
	}
}

static uint64_t eng_bytes(const struct geom *g)
{
	return (uint64_t)g->layers * 2 * g->nb * g->bs * g->row_bytes;
}

static uint64_t chunk_bytes(const struct geom *g)
{
	return (uint64_t)g->layers * 2 * g->chunk_tokens * g->row_bytes;
}

/* k[], v[], page_stride and head_stride of layout g->kind for a cache at base. */
static void layout(const struct geom *g, char *base, void **k, void **v, uint64_t *stride,
		   uint64_t *head_stride)
{
	uint64_t rb = g->row_bytes;
	uint64_t per = (uint64_t)g->nb * g->bs * rb;	/* K or V of a layer */

	*head_stride = 0;
	for (uint32_t l = 0; l < g->layers; l++) {
		switch (g->kind) {
		case VLLM:		/* [L][2][nb][bs][row] */
			k[l] = base + l * 2 * per;
			v[l] = base + l * 2 * per + per;
			*stride = g->bs * rb;
			break;
		case VLLM_SPLIT:	/* K: [L][nb][bs][row], V after it */
		case SGLANG:
			k[l] = base + l * per;
			v[l] = base + g->layers * per + l * per;
			*stride = g->bs * rb;
			break;
		case HF:		/* K: [L][H][nb][row / H], V after it */
			k[l] = base + l * per;
			v[l] = base + g->layers * per + l * per;
			*stride = rb / g->heads;
			*head_stride = g->nb * (rb / g->heads);
			break;
		case FLASHINFER:	/* [L][nb][2][bs][row] */
		default:
			k[l] = base + l * 2 * per;
			v[l] = base + l * 2 * per + g->bs * rb;
			*stride = 2 * g->bs * rb;
			break;
		}
	}
}

static int sync_ok(struct rig *r)
{
	int ret = kv_gpu_stream_sync(r->s);

	if (!ret)
		ret = kv_gpu_stream_sync(r->s2);
	if (ret)
		printf("  stream: %s (%s)\n", kv_strerror(ret), kv_gpu_last_error());
	return ret == 0;
}

/* Device (or host) bytes at p into r->readback. */
static const char *read_back(struct rig *r, const char *p, size_t n)
{
	if (kv_gpu_memcpy(r->readback, p, n, r->s) || kv_gpu_stream_sync(r->s))
		return NULL;
	return r->readback;
}

static int same(const char *what, const char *got, const char *want, size_t n)
{
	if (!got) {
		printf("  %s: cannot read back: %s\n", what, kv_gpu_last_error());
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (got[i] != want[i]) {
			printf("  %s: byte %zu of %zu is %02x, want %02x\n", what, i, n,
			       (unsigned char)got[i], (unsigned char)want[i]);
			return 0;
		}
	}
	return 1;
}

static void report(struct rig *r, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct rig *r, int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		r->passed++;
	else
		r->failed++;
}

/*
 * One call: descriptors for the device (pd) and the host twins (ph), the
 * same geometry and page ids, chunks in the same shuffled order.
 */
struct call {
	struct geom g;
	void *kd[64], *vd[64], *kh[64], *vh[64];
	void **cd, **ch;
	int32_t *pages;
	struct kv_gpu_paged pd, ph;
	char *chunks;		/* where the device-side chunks live */
	uint64_t eb, cb;	/* engine bytes, all chunks' bytes */
};

static void call_init(struct call *c, const struct geom *g, char *eng_dev, char *eng_host,
		      char *chunks, char *chunk_host, uint32_t lb, uint32_t le)
{
	uint32_t ppc = g->chunk_tokens / g->bs;
	uint32_t *perm = xmalloc((g->nb > g->n ? g->nb : g->n) * sizeof(*perm));
	uint64_t stride;
	uint64_t head_stride;

	memset(c, 0, sizeof(*c));
	c->g = *g;
	c->eb = eng_bytes(g);
	c->cb = chunk_bytes(g) * g->n;
	c->chunks = chunks;
	layout(g, eng_dev, c->kd, c->vd, &stride, &head_stride);
	layout(g, eng_host, c->kh, c->vh, &stride, &head_stride);
	c->cd = xmalloc(g->n * sizeof(void *));
	c->ch = xmalloc(g->n * sizeof(void *));
	c->pages = xmalloc((size_t)g->n * ppc * sizeof(int32_t));
	for (uint32_t i = 0; i < g->n; i++)
		perm[i] = i;
	shuffle(perm, g->n);
	for (uint32_t i = 0; i < g->n; i++) {
		c->cd[i] = chunks + perm[i] * chunk_bytes(g);
		c->ch[i] = chunk_host + perm[i] * chunk_bytes(g);
	}
	for (uint32_t i = 0; i < g->nb; i++)
		perm[i] = i;
	shuffle(perm, g->nb);
	for (uint32_t i = 0; i < g->n * ppc; i++)
		c->pages[i] = (int32_t)(g->in_order ? g->first + i : perm[i]);
	free(perm);

	c->pd = (struct kv_gpu_paged){
		.layers = g->layers, .layer_begin = lb, .layer_end = le,
		.chunk_tokens = g->chunk_tokens, .page_tokens = g->bs,
		.row_bytes = g->row_bytes, .page_stride = stride, .n_pages = g->nb,
		.head_stride = head_stride, .k = c->kd, .v = c->vd, .n = g->n,
		.heads = g->heads, .chunks = c->cd, .pages = c->pages,
	};
	c->ph = c->pd;
	c->ph.k = c->kh;
	c->ph.v = c->vh;
	c->ph.chunks = c->ch;
}

static void call_release(struct call *c)
{
	free(c->cd);
	free(c->ch);
	free(c->pages);
}

/*
 * The region [base - GUARD, base + n + GUARD) of a device or registered
 * arena and of its host twin: random or poison inside, poison around.
 */
static int prepare(struct rig *r, char *dev, char *host, size_t n, int random)
{
	memset(host - GUARD, POISON, n + 2 * GUARD);
	if (random)
		fill_random(host, n);
	return kv_gpu_memcpy(dev - GUARD, host - GUARD, n + 2 * GUARD, r->s) == 0 &&
	       kv_gpu_stream_sync(r->s) == 0;
}

static int run_case(struct rig *r, const struct geom *g, enum kv_gpu_dir dir, enum where w,
		    uint32_t lb, uint32_t le)
{
	enum kv_gpu_mode mode = (w == ZC_HOST || w == ZC_DEV) ? KV_GPU_ZEROCOPY : KV_GPU_STAGED;
	char *chunks = w == STAGED_PAGEABLE ? r->chunk_plain :
		(w == ZC_HOST || w == STAGED_HOST) ? r->chunk_reg : r->chunk_dev;
	struct call c;
	int ok = 1;
	int ret;

	call_init(&c, g, r->eng_dev + GUARD, r->eng_host + GUARD, chunks + GUARD,
		  r->chunk_host + GUARD, lb, le);
	if (dir == KV_GPU_SCATTER) {
		ok &= prepare(r, c.chunks, r->chunk_host + GUARD, c.cb, 1);
		ok &= prepare(r, r->eng_dev + GUARD, r->eng_host + GUARD, c.eb, 0);
	} else {
		ok &= prepare(r, c.chunks, r->chunk_host + GUARD, c.cb, 0);
		ok &= prepare(r, r->eng_dev + GUARD, r->eng_host + GUARD, c.eb, 1);
	}
	if (!ok) {
		printf("  setup: %s\n", kv_gpu_last_error());
		goto out;
	}
	ret = kv_gpu_paged_copy(r->ctx, r->s, &c.pd, dir, mode);
	if (ret) {
		printf("  kv_gpu_paged_copy: %s (%s)\n", kv_strerror(ret), kv_gpu_last_error());
		ok = 0;
		goto out;
	}
	ok &= sync_ok(r);
	ret = kv_gpu_paged_ref(&c.ph, dir);
	if (ret) {
		printf("  kv_gpu_paged_ref: %s\n", kv_strerror(ret));
		ok = 0;
	}
	/* Both sides, guards included: the source must be untouched too. */
	ok &= same("engine", read_back(r, r->eng_dev, c.eb + 2 * GUARD), r->eng_host,
		   c.eb + 2 * GUARD);
	ok &= same("chunks", read_back(r, chunks, c.cb + 2 * GUARD), r->chunk_host,
		   c.cb + 2 * GUARD);
out:
	call_release(&c);
	return ok;
}

/* Every direction, chunk placement and layer range for geometry g. */
static void run_geom(struct rig *r, const struct geom *g)
{
	static const uint32_t ranges[3][2] = { { 0, 4 }, { 1, 3 }, { 3, 4 } };

	for (int d = 0; d < 2; d++) {
		for (int w = 0; w < WHERES; w++) {
			for (int i = 0; i < 3; i++) {
				uint32_t lb = ranges[i][0];
				uint32_t le = ranges[i][1];
				int ok = run_case(r, g, (enum kv_gpu_dir)d, (enum where)w, lb, le);

				report(r, ok, "%s %s %s bs %u row %u%s%s chunks %u layers "
				       "[%u,%u)", kind_name[g->kind], d ? "gather" : "scatter",
				       where_name[w], g->bs, g->row_bytes,
				       g->heads > 1 ? " split" : "",
				       g->in_order ? " pages in order" : "", g->n, lb, le);
			}
		}
	}
}

static void run_cases(struct rig *r)
{
	static const uint32_t rows[] = { 2048, 272, 16 };
	static const uint32_t heads[] = { 8, 17, 1 };	/* HF: 256, 16, 16-byte heads */
	static const uint32_t counts[] = { 1, 3, 17 };

	for (int k = 0; k < KINDS; k++) {
		for (size_t ri = 0; ri < 3; ri++) {
			for (size_t ni = 0; ni < 3; ni++) {
				struct geom g = {
					.kind = (enum kind)k,
					.layers = 4,
					.chunk_tokens = 64,
					.bs = k == SGLANG || k == HF ? 1 : k == FLASHINFER ? 8 : 16,
					.row_bytes = rows[ri],
					.n = counts[ni],
					.heads = k == HF ? heads[ri] : 0,
				};

				/* pages spread over twice the room needed */
				g.nb = 2 * g.n * (g.chunk_tokens / g.bs) + 3;
				run_geom(r, &g);
				if (k != HF)
					continue;
				/* as an engine has them: consecutive positions */
				g.in_order = 1;
				g.first = 2 * ni + 1;
				run_geom(r, &g);
			}
		}
	}
	/* HF with 64-dim bf16 heads (128 bytes: one thread an item) */
	{
		struct geom g = {
			.kind = HF, .layers = 4, .chunk_tokens = 32, .bs = 1, .row_bytes = 1024,
			.n = 5, .heads = 8, .in_order = 1, .first = 33, .nb = 5 * 32 + 40,
		};

		run_geom(r, &g);
	}
}

/* Refused calls return -EINVAL and leave the cache as it was. */
static void run_refusals(struct rig *r)
{
	struct geom g = {
		.kind = VLLM, .layers = 4, .chunk_tokens = 64, .bs = 16, .row_bytes = 256,
		.nb = 16, .n = 3,
	};
	struct kv_gpu_ctx *nostage = NULL;
	struct kv_gpu_ctx *small = NULL;
	struct call c;
	void *plain = xmalloc(chunk_bytes(&g));
	void *saved;
	int32_t id;
	int ok = 1;

	die_gpu(kv_gpu_ctx_open(&nostage, 0), "kv_gpu_ctx_open");
	/* staging for one layer's slice */
	die_gpu(kv_gpu_ctx_open(&small, chunk_bytes(&g) / 4), "kv_gpu_ctx_open");
	call_init(&c, &g, r->eng_dev + GUARD, r->eng_host + GUARD, r->chunk_reg + GUARD,
		  r->chunk_host + GUARD, 0, 4);
	ok &= prepare(r, r->chunk_reg + GUARD, r->chunk_host + GUARD, c.cb, 1);
	ok &= prepare(r, r->eng_dev + GUARD, r->eng_host + GUARD, c.eb, 0);

#define REFUSE(what, expr)                                                      \
	do {                                                                    \
		int ret_ = (expr);                                              \
		if (ret_ != -EINVAL) {                                          \
			printf("  %s: %s, want -EINVAL\n", what, kv_strerror(ret_)); \
			ok = 0;                                                 \
		}                                                               \
	} while (0)

	id = c.pages[5];
	c.pages[5] = (int32_t)g.nb;
	REFUSE("page id n_pages", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
						     KV_GPU_ZEROCOPY));
	c.pages[5] = -1;
	REFUSE("page id -1", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_GATHER,
						KV_GPU_STAGED));
	c.pages[5] = id;
	saved = c.cd[2];
	c.cd[2] = (char *)saved + 8;
	REFUSE("misaligned chunk", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
						      KV_GPU_ZEROCOPY));
	c.cd[2] = plain;	/* a kernel cannot read it; STAGED can (run_cases) */
	REFUSE("pageable host chunk", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
							 KV_GPU_ZEROCOPY));
	c.cd[2] = saved;
	c.kd[1] = (char *)c.kd[1] + 16 * 3 + 8;
	REFUSE("misaligned K", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
						  KV_GPU_ZEROCOPY));
	c.kd[1] = (char *)c.kd[1] - 16 * 3 - 8;
	c.pd.row_bytes = 24;
	REFUSE("row_bytes 24", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
						  KV_GPU_ZEROCOPY));
	c.pd.row_bytes = g.row_bytes;
	c.pd.layer_end = 5;
	REFUSE("layer_end", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
					       KV_GPU_ZEROCOPY));
	c.pd.layer_end = 4;
	/* Split rows need one-token pages (and a row cut in whole 16 bytes). */
	c.pd.heads = 3;
	REFUSE("heads 3", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
					     KV_GPU_ZEROCOPY));
	c.pd.heads = 2;
	c.pd.head_stride = 128;
	REFUSE("heads 2, 16-token pages", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_GATHER,
							     KV_GPU_STAGED));
	c.pd.heads = 0;
	c.pd.head_stride = 0;
	REFUSE("no staging", kv_gpu_paged_copy(nostage, r->s, &c.pd, KV_GPU_SCATTER,
						KV_GPU_STAGED));
	REFUSE("slice over staging", kv_gpu_paged_copy(small, r->s, &c.pd, KV_GPU_GATHER,
							KV_GPU_STAGED));
	c.pd.layer_begin = 1;
	c.pd.layer_end = 3;	/* two layers: still over */
	REFUSE("layer slice over staging", kv_gpu_paged_copy(small, r->s, &c.pd,
							      KV_GPU_SCATTER, KV_GPU_STAGED));
	c.pd.layer_begin = 0;
	c.pd.layer_end = 4;
	REFUSE("NULL ctx", kv_gpu_paged_copy(NULL, r->s, &c.pd, KV_GPU_SCATTER,
					      KV_GPU_ZEROCOPY));
	REFUSE("bad dir", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, (enum kv_gpu_dir)7,
					     KV_GPU_ZEROCOPY));
	REFUSE("bad mode", kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER,
					      (enum kv_gpu_mode)7));
	REFUSE("NULL desc", kv_gpu_paged_copy(r->ctx, r->s, NULL, KV_GPU_SCATTER,
					       KV_GPU_ZEROCOPY));
	c.pd.n = 0;
	if (kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_SCATTER, KV_GPU_ZEROCOPY) != 0) {
		printf("  n == 0 is not a no-op\n");
		ok = 0;
	}
	c.pd.n = g.n;
	/* Nothing was queued: the cache is all poison still. */
	ok &= sync_ok(r);
	ok &= same("engine after refusals", read_back(r, r->eng_dev, c.eb + 2 * GUARD),
		   r->eng_host, c.eb + 2 * GUARD);
	/* The small context still works for what fits. */
	c.pd.layer_begin = 3;
	c.ph.layer_begin = 3;
	ok &= kv_gpu_paged_copy(small, r->s, &c.pd, KV_GPU_SCATTER, KV_GPU_STAGED) == 0;
	ok &= sync_ok(r);
	ok &= kv_gpu_paged_ref(&c.ph, KV_GPU_SCATTER) == 0;
	ok &= same("engine, one layer staged", read_back(r, r->eng_dev, c.eb + 2 * GUARD),
		   r->eng_host, c.eb + 2 * GUARD);
	report(r, ok, "refusals return -EINVAL and queue nothing");
#undef REFUSE
	call_release(&c);
	kv_gpu_ctx_close(small);
	kv_gpu_ctx_close(nostage);
	free(plain);
}

/*
 * 3 * 16 + 1 calls with no sync, alternating streams and modes, each one
 * chunk into its own pages, the caller reusing (rewriting) one chunks[]
 * and one pages[] array: the ring must keep each call's tables apart.
 */
static void run_burst(struct rig *r)
{
	enum { CALLS = 49 };
	struct geom g = {
		.kind = SGLANG, .layers = 2, .chunk_tokens = 64, .bs = 1, .row_bytes = 272,
		.n = CALLS, .nb = CALLS * 64 + 50,
	};
	struct call c;
	void *one_chunk[1];
	int32_t one_pages[64];
	int ok = 1;

	call_init(&c, &g, r->eng_dev + GUARD, r->eng_host + GUARD, r->chunk_reg + GUARD,
		  r->chunk_host + GUARD, 0, 2);
	ok &= prepare(r, r->chunk_reg + GUARD, r->chunk_host + GUARD, c.cb, 1);
	ok &= prepare(r, r->eng_dev + GUARD, r->eng_host + GUARD, c.eb, 0);
	for (int i = 0; i < CALLS && ok; i++) {
		struct kv_gpu_paged p = c.pd;
		int ret;

		one_chunk[0] = c.cd[i];
		memcpy(one_pages, c.pages + i * 64, sizeof(one_pages));
		p.n = 1;
		p.chunks = one_chunk;
		p.pages = one_pages;
		ret = kv_gpu_paged_copy(r->ctx, i % 2 ? r->s2 : r->s, &p, KV_GPU_SCATTER,
					i % 3 == 2 ? KV_GPU_STAGED : KV_GPU_ZEROCOPY);
		if (ret) {
			printf("  call %d: %s (%s)\n", i, kv_strerror(ret), kv_gpu_last_error());
			ok = 0;
		}
		/* The call has returned: its arrays are ours again. */
		memset(one_pages, 0xff, sizeof(one_pages));
		one_chunk[0] = NULL;
	}
	ok &= sync_ok(r);
	ok &= kv_gpu_paged_ref(&c.ph, KV_GPU_SCATTER) == 0;
	ok &= same("engine", read_back(r, r->eng_dev, c.eb + 2 * GUARD), r->eng_host,
		   c.eb + 2 * GUARD);
	report(r, ok, "burst of %d calls on two streams, arrays rewritten after each", CALLS);
	call_release(&c);
}

/*
 * Gather pages A into chunk X, then scatter X into pages B, queued back
 * to back on one stream with no sync, for each pair of modes: the second
 * call must see what the first wrote (the copy stream waits for s).
 */
static void run_chain(struct rig *r)
{
	struct geom g = {
		.kind = VLLM_SPLIT, .layers = 4, .chunk_tokens = 64, .bs = 16,
		.row_bytes = 2048, .n = 3, .nb = 2 * 3 * 4 + 5,
	};

	for (int m1 = 0; m1 < 2; m1++) {
		for (int m2 = 0; m2 < 2; m2++) {
			struct call c;
			struct kv_gpu_paged b;
			int32_t *pages_b = xmalloc(g.n * 4 * sizeof(int32_t));
			int ok = 1;

			call_init(&c, &g, r->eng_dev + GUARD, r->eng_host + GUARD,
				  r->chunk_reg + GUARD, r->chunk_host + GUARD, 0, 4);
			ok &= prepare(r, r->chunk_reg + GUARD, r->chunk_host + GUARD, c.cb, 0);
			ok &= prepare(r, r->eng_dev + GUARD, r->eng_host + GUARD, c.eb, 1);
			/* B: the pages that A does not use, in reverse */
			for (uint32_t i = 0; i < g.n * 4; i++) {
				int32_t id = (int32_t)g.nb - 1;

				for (;; id--) {
					int used = 0;

					for (uint32_t j = 0; j < g.n * 4; j++)
						used |= c.pages[j] == id;
					for (uint32_t j = 0; j < i; j++)
						used |= pages_b[j] == id;
					if (!used)
						break;
				}
				pages_b[i] = id;
			}
			ok &= kv_gpu_paged_copy(r->ctx, r->s, &c.pd, KV_GPU_GATHER,
						(enum kv_gpu_mode)m1) == 0;
			b = c.pd;
			b.pages = pages_b;
			ok &= kv_gpu_paged_copy(r->ctx, r->s, &b, KV_GPU_SCATTER,
						(enum kv_gpu_mode)m2) == 0;
			ok &= sync_ok(r);
			ok &= kv_gpu_paged_ref(&c.ph, KV_GPU_GATHER) == 0;
			b = c.ph;
			b.pages = pages_b;
			ok &= kv_gpu_paged_ref(&b, KV_GPU_SCATTER) == 0;
			ok &= same("engine", read_back(r, r->eng_dev, c.eb + 2 * GUARD),
				   r->eng_host, c.eb + 2 * GUARD);
			ok &= same("chunks", read_back(r, r->chunk_reg, c.cb + 2 * GUARD),
				   r->chunk_host, c.cb + 2 * GUARD);
			report(r, ok, "gather %s then scatter %s of the same chunks, no sync",
			       m1 ? "staged" : "zerocopy", m2 ? "staged" : "zerocopy");
			call_release(&c);
			free(pages_b);
		}
	}
}

/* A page table larger than a slot's first size: the slot grows. */
static void run_grow(struct rig *r)
{
	struct geom g = {
		.kind = SGLANG, .layers = 2, .chunk_tokens = 256, .bs = 1, .row_bytes = 16,
		.n = 40, .nb = 40 * 256 + 77,
	};

	for (int w = 0; w < WHERES; w++) {
		for (int d = 0; d < 2; d++) {
			int ok = run_case(r, &g, (enum kv_gpu_dir)d, (enum where)w, 0, 2);

			report(r, ok, "%s %s %s: %u chunks, %u page ids in one call",
			       kind_name[g.kind], d ? "gather" : "scatter", where_name[w], g.n,
			       g.n * g.chunk_tokens);
		}
	}
}

/* ---- figures ------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a;
	float y = *(const float *)b;

	return (x > y) - (x < y);
}

enum { WARM = 2, REPS = 11 };

/* Median ms of REPS runs of one copy (after WARM): -1 on failure. */
static float time_copy(struct rig *r, struct kv_gpu_ctx *ctx, const struct kv_gpu_paged *p,
		       enum kv_gpu_dir dir, enum kv_gpu_mode mode, void *dst, const void *src,
		       size_t bytes)
{
	struct kv_gpu_event *e0 = NULL;
	struct kv_gpu_event *e1 = NULL;
	float ms[REPS];
	float ret = -1;

	if (kv_gpu_event_create(&e0, true) || kv_gpu_event_create(&e1, true))
		goto out;
	for (int i = 0; i < WARM + REPS; i++) {
		int err = kv_gpu_event_record(e0, r->s);

		if (!err)
			err = p ? kv_gpu_paged_copy(ctx, r->s, p, dir, mode) :
				  kv_gpu_memcpy(dst, src, bytes, r->s);
		if (!err)
			err = kv_gpu_event_record(e1, r->s);
		if (!err)
			err = kv_gpu_event_sync(e1);
		if (!err && i >= WARM)
			err = kv_gpu_event_ms(e0, e1, &ms[i - WARM]);
		if (err) {
			printf("  timing: %s (%s)\n", kv_strerror(err), kv_gpu_last_error());
			goto out;
		}
	}
	qsort(ms, REPS, sizeof(ms[0]), cmp_float);
	ret = ms[REPS / 2];
out:
	kv_gpu_event_destroy(e0);
	kv_gpu_event_destroy(e1);
	return ret;
}

static double gbs(size_t bytes, float ms)
{
	return ms > 0 ? bytes / (ms * 1e6) : 0;
}

/* One "figure:" line; roof_ms <= 0: no memcpy to compare with (device). */
static void figure(const char *what, size_t bytes, float ms, const char *roof, float roof_ms)
{
	if (roof_ms > 0)
		printf("figure: %s: %.1f GB/s (memcpy %s ceiling %.1f GB/s, %.0f%% of it)\n",
		       what, gbs(bytes, ms), roof, gbs(bytes, roof_ms), 100.0 * roof_ms / ms);
	else
		printf("figure: %s: %.1f GB/s (chunk bytes; read + write is twice)\n",
		       what, gbs(bytes, ms));
}

/*
 * Llama-3-8B per chunk: 32 layers, 8 KV heads x 128 x bf16 = 2 KiB rows,
 * 256 tokens: 32 MiB. 16 chunks a call, into vLLM 16-token blocks, SGLang
 * token slots and HF [1, 8, cap, 128] tensors (rows split into heads),
 * pages spread over a cache twice the size needed (HF: random positions).
 */
static void run_figures(struct rig *r)
{
	enum { N = 16 };
	struct geom g = {
		.layers = 32, .chunk_tokens = 256, .row_bytes = 2048, .n = N,
	};
	size_t cb = chunk_bytes(&g);
	size_t all = cb * N;
	size_t eb = (size_t)2 * all;
	struct kv_gpu_ctx *ctx = NULL;
	char *host = xmap(all);
	char *dchunks = NULL;
	char *eng = NULL;
	float h2d;
	float d2h;
	int ok = 1;

	fill_random(host, all);
	if (kv_gpu_host_register(host, all) || kv_gpu_malloc(all, (void **)&dchunks) ||
	    kv_gpu_malloc(eb, (void **)&eng) || kv_gpu_ctx_open(&ctx, cb)) {
		printf("  figures: setup: %s\n", kv_gpu_last_error());
		report(r, 0, "figures");
		goto out;
	}
	h2d = time_copy(r, NULL, NULL, 0, 0, dchunks, host, all);
	d2h = time_copy(r, NULL, NULL, 0, 0, host, dchunks, all);
	printf("figure: memcpy %zu MiB pinned (registered) host->GPU: %.1f GB/s, GPU->host: %.1f GB/s\n",
	       all >> 20, gbs(all, h2d), gbs(all, d2h));
	for (int k = 0; k < 3; k++) {
		static const enum kind kinds[3] = { VLLM, SGLANG, HF };
		struct call c;

		g.kind = kinds[k];
		g.bs = g.kind == VLLM ? 16 : 1;
		g.heads = g.kind == HF ? 8 : 0;
		g.nb = 2 * N * (g.chunk_tokens / g.bs);
		for (int w = 0; w < 3; w++) {
			static const enum where wh[3] = { ZC_HOST, STAGED_HOST, ZC_DEV };
			char *chunks = wh[w] == ZC_DEV ? dchunks : host;
			enum kv_gpu_mode mode = wh[w] == STAGED_HOST ? KV_GPU_STAGED :
				KV_GPU_ZEROCOPY;

			/* no reference here: the host twins are the same pointers */
			call_init(&c, &g, eng, eng, chunks, chunks, 0, g.layers);
			for (int d = 0; d < 2; d++) {
				float ms = time_copy(r, ctx, &c.pd, (enum kv_gpu_dir)d, mode,
						     NULL, NULL, 0);
				float roof = wh[w] == ZC_DEV ? -1 : d ? d2h : h2d;

				char what[96];

				ok &= ms > 0;
				snprintf(what, sizeof(what), "paged %s %s %s, %d x %zu MiB chunks",
					 d ? "gather" : "scatter", kind_name[g.kind],
					 where_name[wh[w]], N, cb >> 20);
				figure(what, all, ms, d ? "GPU->host" : "host->GPU", roof);
			}
			call_release(&c);
		}
	}
	report(r, ok, "figures");
out:
	kv_gpu_ctx_close(ctx);
	kv_gpu_free(eng);
	kv_gpu_free(dchunks);
	kv_gpu_host_unregister(host);
	munmap(host, all);
}

int main(int argc, char **argv)
{
	struct rig r = { 0 };
	char why[128] = "";
	char name[128] = "";
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;	/* no figures */
	int figures = argc > 1 && strcmp(argv[1], "--figures") == 0;	/* only them */

	if (!kv_gpu_available(NULL, why, sizeof(why))) {
		printf("skipped: no GPU (%s)\n", why);
		return 77;
	}
	die_gpu(kv_gpu_set_device(0), "kv_gpu_set_device");
	if (kv_gpu_device_name(0, name, sizeof(name)) == 0)
		printf("device 0: %s\n", name);
	die_gpu(kv_gpu_stream_create(&r.s), "kv_gpu_stream_create");
	die_gpu(kv_gpu_stream_create(&r.s2), "kv_gpu_stream_create");
	die_gpu(kv_gpu_ctx_open(&r.ctx, STAGING), "kv_gpu_ctx_open");
	die_gpu(kv_gpu_malloc(ENG_ARENA, (void **)&r.eng_dev), "kv_gpu_malloc");
	die_gpu(kv_gpu_malloc(CHUNK_ARENA, (void **)&r.chunk_dev), "kv_gpu_malloc");
	r.chunk_reg = xmap(CHUNK_ARENA);
	die_gpu(kv_gpu_host_register(r.chunk_reg, CHUNK_ARENA), "kv_gpu_host_register");
	r.chunk_plain = xmalloc(CHUNK_ARENA);
	r.eng_host = xmalloc(ENG_ARENA);
	r.chunk_host = xmalloc(CHUNK_ARENA);
	r.readback = xmalloc(ENG_ARENA > CHUNK_ARENA ? ENG_ARENA : CHUNK_ARENA);

	if (!figures) {
		run_cases(&r);
		run_refusals(&r);
		run_burst(&r);
		run_chain(&r);
		run_grow(&r);
	}
	if (!quick)
		run_figures(&r);

	kv_gpu_ctx_close(r.ctx);
	kv_gpu_host_unregister(r.chunk_reg);
	munmap(r.chunk_reg, CHUNK_ARENA);
	kv_gpu_free(r.eng_dev);
	kv_gpu_free(r.chunk_dev);
	kv_gpu_stream_destroy(r.s);
	kv_gpu_stream_destroy(r.s2);
	free(r.chunk_plain);
	free(r.eng_host);
	free(r.chunk_host);
	free(r.readback);
	printf("%d passed, %d failed\n", r.passed, r.failed);
	return r.failed ? 1 : 0;
}
