/*
 * gpubench.c - kvbench --gpu: chunks between kvstored's tiers and an
 * engine's GPU memory through libkvc, against the copy ceilings of the same
 * GPU measured in the same run (TESTING.md, "Measuring performance").
 *
 * In one run, in this order:
 *   - ceilings: 1 GiB cudaMemcpyAsync pinned host -> GPU (h2d), GPU ->
 *     pinned host (d2h), GPU -> GPU (d2d, bytes copied), each the median of
 *     several copies after two warm-up copies, timed with events;
 *   - DRAM: a set of Llama-3-8B chunks (32 layers, 8 KV heads, 128 dims,
 *     bf16, 256 tokens: 32 MiB) put from host memory with kvc_put, then
 *     kvc_get_gpu (contiguous) and kvc_put_gpu of fresh keys; kvc_get_paged
 *     into, and kvc_put_paged of fresh keys out of, a vLLM layout (16-token
 *     blocks) and an SGLang layout (token slots), each in both
 *     kvc_gpu_mode()s (zero-copy, staged); the layer-wise get
 *     (kvc_get_paged_begin, one kvc_get_paged_layers per layer, end) into
 *     the vLLM layout in both modes. Ratios to h2d (gets) or d2h (puts);
 *   - HBM: a set put from GPU memory with kvc_put_gpu(KVC_PUT_HBM) into a
 *     daemon started with --hbm-bytes (and --hbm-promote off, so the DRAM
 *     set stays in DRAM), then kvc_get_gpu and kvc_get_paged (vLLM,
 *     SGLang) of it, and kvc_put_gpu(KVC_PUT_HBM) of fresh keys. Ratios
 *     to d2d;
 *   - the ceilings again; the higher of the two medians is the ceiling.
 *
 * Every call moves a batch of chunks (16: 512 MiB). Two times per call:
 *   - GB/s: from events on the stream. Before the call, a gate (memsets on
 *     a second stream, waited on with an event) holds the stream, and the
 *     start event is recorded behind it; the gate is made long enough that
 *     it still holds when the call (and for the layer-wise get, all 32 calls)
 *     has returned, so start -> done is the copy's time on the GPU, without
 *     the call's round trips. A sample whose gate opened early is redone
 *     with a gate twice as long, unless the call waits on the host for
 *     the GPU (a layers call found it open at the same layer twice): then
 *     the figure says where, and its samples count anyway (the stream
 *     stays busy while the host waits, so the time is still the copy's);
 *   - wall GB/s: no gate; from before the call to its done event synced
 *     (puts: to kvc_gpu_flush() returned, so the commit round trip is in).
 * Each is the median of several calls, after a warm-up call; gated and
 * wall calls take turns, so drift on a shared machine hits both alike.
 * Pins are let go (kvc_gpu_flush) after each call, outside both times;
 * fresh puts are evicted after each call, so the tiers never evict.
 *
 * Correctness: chunk bytes are a pattern of (chunk, layer, K/V, token,
 * word). Destinations are poisoned before every call. After the warm-up
 * call of each figure everything is compared: the whole layout (pages no
 * chunk owns must still hold the poison) or every chunk; after each timed
 * call a few pages (or slices) and, for puts, two chunks read back with
 * kvc_get (DRAM) or kvc_get_gpu (HBM), after checking with kvc_lookup that
 * they landed in the tier asked for. Gets check each chunk's tier too.
 * Wrong bytes fail the run.
 *
 * The DRAM mapping is page-locked up front (KVC_GPU_REGISTER_ALL, waited
 * for, and timed): the figures are an engine's steady state.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/bench/gpubench.h"
#include "tests/integration/harness.h"
#include "tests/lib/size.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

#define MAX_LAYERS	32
#define MAX_BATCH	16
#define MAX_SAMPLES	16
#define MAX_FIGS	24
#define WARM_COPIES	2		/* ceilings: copies before the timed ones */
#define POISON		0xa5
#define PAT_SEED	0x6770756265636821ull	/* "gpubech!" */
#define KEY_HI		0x6b7662656e636847ull
#define HBM_BASE	(1ull << 20)	/* key and content index of the HBM set */
#define PUT_BASE	(1ull << 21)	/* content index of every put */
#define PUT_KEYS	(1ull << 24)	/* first key index of the puts */
#define GATE_BYTES	(64 * MIB)
#define GATE_REPS	8		/* memsets of GATE_BYTES to start with */
#define GATE_MAX_REPS	4096
#define CHECK_PAGES	6		/* owned pages compared after a timed get */
#define CHECK_HOLES	2		/* pages no chunk owns: still poison? */
#define CHECK_SLICES	3		/* contiguous gets: slices compared */
#define REG_WAIT_S	120		/* page-locking the DRAM mapping */
#define DRAM_TARGET	0.95
#define HBM_TARGET	0.80

enum ceil { CEIL_H2D, CEIL_D2H, CEIL_D2D, N_CEIL };

static const char *const ceil_key[N_CEIL] = { "h2d", "d2h", "d2d" };
static const char *const ceil_what[N_CEIL] = {
	"pinned host -> GPU", "GPU -> pinned host", "GPU -> GPU (bytes copied)",
};

struct shape {
	const char *name;
	uint32_t layers;
	uint32_t kv_heads;
	uint32_t head_dim;
	uint32_t elem_bytes;
	uint32_t chunk_tokens;
	uint32_t block_tokens;		/* vLLM block size */
	uint32_t batch;			/* chunks per call */
	uint64_t row_bytes;		/* one token's K (or V) in one layer */
	uint64_t chunk_bytes;
};

/*
 * An engine's paged cache: for both kinds one device buffer laid out
 * [layers][K, V][n_pages][page], so a vLLM layer tensor [2, blocks, 16, H,
 * D] starts at its K and an SGLang layer's K and V buffers [slots, H, D]
 * are the two halves. pages[] is a random permutation of the page ids;
 * chunk j owns pages[j * ppc .. (j + 1) * ppc), the rest own none.
 */
struct lay {
	const char *name;		/* "vLLM" */
	const char *tag;		/* "vllm": in figure keys */
	struct kvc_layout kl;
	uint32_t page_tokens;
	uint32_t ppc;			/* pages per chunk */
	uint32_t n_pages;		/* per layer, in K and in V */
	uint32_t owned;			/* batch * ppc */
	uint64_t page_bytes;
	uint64_t bytes;
	char *dev;
	void *k[MAX_LAYERS];
	void *v[MAX_LAYERS];
	int32_t *pages;			/* [n_pages] */
	int32_t *owner;			/* [n_pages]: index into pages, or -1 */
};

enum op_kind {
	OP_GET_GPU,			/* kvc_get_gpu into dget */
	OP_PUT_GPU,			/* kvc_put_gpu from dput */
	OP_GET_PAGED,
	OP_PUT_PAGED,
	OP_GET_LAYERS,			/* begin, one layers call per layer, end */
};

struct op {
	enum op_kind kind;
	uint8_t tier;			/* gets: the set's; puts: where they go */
	struct lay *lay;		/* paged kinds */
	enum kvc_gpu_mode mode;
	uint64_t first;			/* gets: key (and content) of chunk 0 */
	uint64_t key0;			/* puts: this call's fresh keys */
};

struct fig {
	char what[96];
	char key[48];
	enum ceil ceil;
	double target;
	double ms;			/* per call: events, gated */
	double wall_ms;
	double gbps;
	double wall_gbps;
	unsigned ungated;		/* samples no gate could hold */
	int open_at;			/* layer-wise: where it opened (OPEN_*, or
					 * the layer whose call found it open) */
	bool layered;
	double first_ms;		/* layer-wise: start to layer 0 done */
	double layer_ms;		/* the median layer */
	double layer_max_ms;		/* the slowest layer */
};

/* Where a sample's gate was found open; or the layer of the layers call. */
#define OPEN_NEVER	(-2)
#define OPEN_BEGIN	(-1)

/* One call's times. */
struct sres {
	double ms;
	bool held;
	int open_at;
	double first_ms;
	double layer_ms;
	double layer_max_ms;
};

enum smode { S_WARM, S_GATED, S_WALL };

struct gb {
	const struct gpubench_opts *o;
	struct shape sh;
	unsigned samples;
	int dev;
	int n_dev;
	char gpu_name[128];
	struct kvt_daemon d;
	bool started;
	const char *sock;
	uint64_t dram_bytes;
	uint64_t hbm_bytes;
	struct kvc *c;
	uint32_t ns;
	struct kv_gpu_stream *s;	/* every copy of the benchmark */
	struct kv_gpu_stream *gs;	/* the gate's */
	struct kv_gpu_event *start;
	struct kv_gpu_event *done;
	struct kv_gpu_event *gate;
	struct kv_gpu_event *lev[MAX_LAYERS];
	void *gate_buf;
	unsigned gate_reps;
	bool gating;			/* this call is behind a gate */
	int open_at;			/* layer-wise: where it was found open */
	char *host;			/* pinned: ceilings, images, readbacks */
	size_t host_bytes;
	char *hsmall;			/* pinned: page and slice readbacks */
	size_t hsmall_bytes;
	char *chunk;			/* heap: one chunk */
	char *expect;			/* heap: one page or row */
	size_t expect_bytes;
	void *ca;			/* device: ceiling copies */
	void *cb;
	size_t ceil_bytes;
	char *dget;			/* device: a batch, contiguous */
	char *dput;
	struct lay lay[2];
	struct kvc_gpu_desc gd[MAX_BATCH];
	struct kvc_put_desc pd[MAX_BATCH];
	struct kvc_paged_desc qd[MAX_BATCH];
	struct kvc_key keys[MAX_BATCH];
	uint64_t next_key;
	uint64_t rng;
	double ceil[N_CEIL];
	double ceil_before[N_CEIL];
	double ceil_after[N_CEIL];
	struct fig figs[MAX_FIGS];
	unsigned n_figs;
	uint64_t dram_arena;
	double reg_s;
	uint64_t reg_done;
	uint64_t reg_total;
	bool has_hbm;
	char hbm_note[200];
};

static const struct shape shape_full = {
	.name = "Llama-3-8B", .layers = 32, .kv_heads = 8, .head_dim = 128,
	.elem_bytes = 2, .chunk_tokens = 256, .block_tokens = 16, .batch = 16,
};

static const struct shape shape_quick = {
	.name = "tiny (--quick)", .layers = 4, .kv_heads = 2, .head_dim = 64,
	.elem_bytes = 2, .chunk_tokens = 32, .block_tokens = 16, .batch = 2,
};

_Static_assert(MAX_BATCH >= 16 && MAX_LAYERS >= 32, "the full shape fits");

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Print "kvbench --gpu: <what>: <error name>" and return -1. */
__attribute__((format(printf, 2, 3)))
static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvbench --gpu: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", kvc_strerror(err));
	if ((err == -KVC_EGPU || err == -KVC_ENOGPU) && *kv_gpu_last_error())
		fprintf(stderr, " (%s)", kv_gpu_last_error());
	fputc('\n', stderr);
	return -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v); the lower middle for even n. */
static double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(n - 1) / 2];
}

static double gbps(double bytes, double ms)
{
	return ms > 0 ? bytes / (ms * 1e6) : 0;	/* bytes per ns is GB/s */
}

static double ratio(double x, double ceiling)
{
	return ceiling > 0 ? x / ceiling : 0;
}

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct gb *b)
{
	b->rng += 0x9e3779b97f4a7c15ull;
	return mix(b->rng);
}

static struct kvc_key key_of(uint64_t idx)
{
	return (struct kvc_key){ .lo = idx, .hi = KEY_HI };
}

/* ---- the pattern ------------------------------------------------------ */

/*
 * Row (content idx, layer l, K or V, token t): word i is a hash of all
 * five, so a row in the wrong place, of the wrong chunk, layer or half,
 * or shifted by a word, never matches. idx < 2^27, l < 256, t < 2^16 and
 * rows of at most 4096 words keep the fields apart.
 */
static void pat_row(const struct shape *sh, uint64_t idx, unsigned l, unsigned kv,
		    unsigned t, uint64_t *w)
{
	uint64_t tag = ((((idx << 8 | l) << 1 | kv) << 16) | t) << 12;

	for (size_t i = 0; i < sh->row_bytes / 8; i++)
		w[i] = mix(PAT_SEED ^ (tag | i));
}

/* A whole chunk, layer-major [layers][K, V][tokens][row], as the store keeps it. */
static void pat_chunk(const struct shape *sh, void *buf, uint64_t idx)
{
	uint64_t *w = buf;

	for (unsigned l = 0; l < sh->layers; l++)
		for (unsigned kv = 0; kv < 2; kv++)
			for (unsigned t = 0; t < sh->chunk_tokens; t++) {
				pat_row(sh, idx, l, kv, t, w);
				w += sh->row_bytes / 8;
			}
}

/* Are the n rows at buf tokens t.. of (l, kv) of content idx? */
static bool rows_ok(struct gb *b, const void *buf, uint64_t idx, unsigned l,
		    unsigned kv, unsigned t, unsigned n, const char *what)
{
	const char *p = buf;
	size_t row = b->sh.row_bytes;

	for (unsigned i = 0; i < n; i++) {
		pat_row(&b->sh, idx, l, kv, t + i, (uint64_t *)b->expect);
		if (memcmp(p + i * row, b->expect, row)) {
			fail(0, "%s: wrong bytes: chunk %" PRIu64 ", layer %u, %c, token %u",
			     what, idx, l, "KV"[kv], t + i);
			return false;
		}
	}
	return true;
}

static size_t slice_off(const struct shape *sh, unsigned l, unsigned kv)
{
	return (size_t)(l * 2 + kv) * sh->chunk_tokens * sh->row_bytes;
}

static bool chunk_ok(struct gb *b, const void *buf, uint64_t idx, const char *what)
{
	const struct shape *sh = &b->sh;

	for (unsigned l = 0; l < sh->layers; l++)
		for (unsigned kv = 0; kv < 2; kv++)
			if (!rows_ok(b, (const char *)buf + slice_off(sh, l, kv), idx, l, kv,
				     0, sh->chunk_tokens, what))
				return false;
	return true;
}

/* ---- layouts ------------------------------------------------------------ */

static uint64_t lay_off(const struct lay *y, unsigned l, unsigned kv, uint32_t page)
{
	return ((uint64_t)(2 * l + kv) * y->n_pages + page) * y->page_bytes;
}

/* What page `page` of (l, kv) holds when chunk j has content base + j. */
static void lay_expect(struct gb *b, const struct lay *y, uint64_t base, unsigned l,
		       unsigned kv, uint32_t page, char *out)
{
	int32_t o = y->owner[page];

	if (o < 0) {
		memset(out, POISON, y->page_bytes);
		return;
	}
	for (unsigned i = 0; i < y->page_tokens; i++)
		pat_row(&b->sh, base + (uint32_t)o / y->ppc, l, kv,
			(uint32_t)o % y->ppc * y->page_tokens + i,
			(uint64_t *)(out + i * b->sh.row_bytes));
}

static bool lay_page_ok(struct gb *b, const struct lay *y, uint64_t base, unsigned l,
			unsigned kv, uint32_t page, const char *buf, const char *what)
{
	int32_t o = y->owner[page];

	if (o < 0) {
		for (uint64_t i = 0; i < y->page_bytes; i++) {
			if ((unsigned char)buf[i] != POISON) {
				fail(0, "%s: %s page %u of layer %u %c, which no chunk owns, "
				     "was written", what, y->name, page, l, "KV"[kv]);
				return false;
			}
		}
		return true;
	}
	return rows_ok(b, buf, base + (uint32_t)o / y->ppc, l, kv,
		       (uint32_t)o % y->ppc * y->page_tokens, y->page_tokens, what);
}

static int lay_setup(struct gb *b, struct lay *y, enum kvc_layout_kind kind)
{
	const struct shape *sh = &b->sh;
	size_t got;
	int ret;

	y->name = kind == KVC_LAYOUT_SGLANG ? "SGLang" : "vLLM";
	y->tag = kind == KVC_LAYOUT_SGLANG ? "sglang" : "vllm";
	y->page_tokens = kind == KVC_LAYOUT_SGLANG ? 1 : sh->block_tokens;
	y->ppc = sh->chunk_tokens / y->page_tokens;
	y->owned = sh->batch * y->ppc;
	y->n_pages = 2 * y->owned;	/* half the pages belong to no chunk */
	y->page_bytes = y->page_tokens * sh->row_bytes;
	y->bytes = 2ull * sh->layers * y->n_pages * y->page_bytes;
	ret = kv_gpu_malloc(y->bytes, (void **)&y->dev);
	if (ret)
		return fail(ret, "cannot allocate the %s layout (%" PRIu64 " bytes)",
			    y->name, y->bytes);
	for (unsigned l = 0; l < sh->layers; l++) {
		y->k[l] = y->dev + lay_off(y, l, 0, 0);
		y->v[l] = y->dev + lay_off(y, l, 1, 0);
	}
	y->kl = (struct kvc_layout){
		.kind = kind,
		.layers = sh->layers,
		.block_size = y->page_tokens,
		.num_blocks = y->n_pages,
		.kv_heads = sh->kv_heads,
		.head_dim = sh->head_dim,
		.elem_bytes = sh->elem_bytes,
		.chunk_tokens = sh->chunk_tokens,
		.k = y->k,
		.v = kind == KVC_LAYOUT_SGLANG ? y->v : NULL,	/* vLLM: ignored */
	};
	got = kvc_layout_chunk_bytes(&y->kl);
	if (got != sh->chunk_bytes)
		return fail(0, "kvc_layout_chunk_bytes of the %s layout is %zu, not %" PRIu64,
			    y->name, got, sh->chunk_bytes);

	y->pages = malloc(y->n_pages * sizeof(*y->pages));
	y->owner = malloc(y->n_pages * sizeof(*y->owner));
	if (!y->pages || !y->owner)
		return fail(-ENOMEM, "cannot allocate page tables");
	for (uint32_t i = 0; i < y->n_pages; i++)
		y->pages[i] = (int32_t)i;
	for (uint32_t i = y->n_pages - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rnd(b) % (i + 1));
		int32_t t = y->pages[i];

		y->pages[i] = y->pages[j];
		y->pages[j] = t;
	}
	for (uint32_t i = 0; i < y->n_pages; i++)
		y->owner[i] = -1;
	for (uint32_t i = 0; i < y->owned; i++)
		y->owner[y->pages[i]] = (int32_t)i;
	return 0;
}

static void lay_release(struct lay *y)
{
	kv_gpu_free(y->dev);
	free(y->pages);
	free(y->owner);
}

/* Fill the layout as if chunk j (content base + j) had been got into it. */
static int lay_fill(struct gb *b, struct lay *y, uint64_t base)
{
	int ret;

	for (unsigned l = 0; l < b->sh.layers; l++)
		for (unsigned kv = 0; kv < 2; kv++)
			for (uint32_t p = 0; p < y->n_pages; p++)
				lay_expect(b, y, base, l, kv, p, b->host + lay_off(y, l, kv, p));
	ret = kv_gpu_memcpy(y->dev, b->host, y->bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "cannot fill the %s layout", y->name);
	return 0;
}

/* Read the whole layout back and compare every page. */
static int lay_check_all(struct gb *b, const struct lay *y, uint64_t base, const char *what)
{
	int ret = kv_gpu_memcpy(b->host, y->dev, y->bytes, b->s);

	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "%s: cannot read the %s layout back", what, y->name);
	for (unsigned l = 0; l < b->sh.layers; l++)
		for (unsigned kv = 0; kv < 2; kv++)
			for (uint32_t p = 0; p < y->n_pages; p++)
				if (!lay_page_ok(b, y, base, l, kv, p,
						 b->host + lay_off(y, l, kv, p), what))
					return -1;
	return 0;
}

/* The first and last owned page, a few random ones and a few unowned ones. */
static int lay_check_some(struct gb *b, const struct lay *y, uint64_t base, const char *what)
{
	uint32_t page[CHECK_PAGES + CHECK_HOLES];
	unsigned layer[CHECK_PAGES + CHECK_HOLES], half[CHECK_PAGES + CHECK_HOLES];
	unsigned n = 0;
	int ret = 0;

	for (unsigned i = 0; i < CHECK_PAGES; i++) {
		uint32_t at = i == 0 ? 0 : i == 1 ? y->owned - 1 :
			      (uint32_t)(rnd(b) % y->owned);

		page[n] = (uint32_t)y->pages[at];
		layer[n] = i == 0 ? 0 : i == 1 ? b->sh.layers - 1 :
			   (unsigned)(rnd(b) % b->sh.layers);
		half[n++] = i == 1 ? 1 : (unsigned)(rnd(b) & 1);
	}
	for (unsigned i = 0; i < CHECK_HOLES && y->n_pages > y->owned; i++) {
		page[n] = (uint32_t)y->pages[y->owned + rnd(b) % (y->n_pages - y->owned)];
		layer[n] = (unsigned)(rnd(b) % b->sh.layers);
		half[n++] = (unsigned)(rnd(b) & 1);
	}
	for (unsigned i = 0; i < n && !ret; i++)
		ret = kv_gpu_memcpy(b->hsmall + i * y->page_bytes,
				    y->dev + lay_off(y, layer[i], half[i], page[i]),
				    y->page_bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "%s: cannot read pages back", what);
	for (unsigned i = 0; i < n; i++)
		if (!lay_page_ok(b, y, base, layer[i], half[i], page[i],
				 b->hsmall + i * y->page_bytes, what))
			return -1;
	return 0;
}

/* ---- the gate: hold the stream until the calls have returned ------------ */

static int gate_close(struct gb *b)
{
	int ret = 0;

	for (unsigned i = 0; i < b->gate_reps && !ret; i++)
		ret = kv_gpu_memset(b->gate_buf, (int)(i & 0xff), GATE_BYTES, b->gs);
	if (!ret)
		ret = kv_gpu_event_record(b->gate, b->gs);
	if (!ret)
		ret = kv_gpu_stream_wait(b->s, b->gate);
	if (!ret)
		ret = kv_gpu_event_record(b->start, b->s);
	if (ret)
		return fail(ret, "cannot set up the gate");
	return 0;
}

/* Does the gate still hold (so the stream had all the work before it ran)? */
static bool gate_held(struct gb *b)
{
	return kv_gpu_event_query(b->gate) == -EAGAIN;
}

/* ---- ceilings ----------------------------------------------------------- */

static int copy_gbps(struct gb *b, void *dst, const void *src, enum ceil which,
		     double *out)
{
	double ms[MAX_SAMPLES];
	unsigned n = b->samples < 5 && !b->o->quick ? 5 : b->samples;
	float t = 0;

	for (unsigned i = 0; i < WARM_COPIES + n; i++) {
		int ret = kv_gpu_event_record(b->start, b->s);

		if (!ret)
			ret = kv_gpu_memcpy(dst, src, b->ceil_bytes, b->s);
		if (!ret)
			ret = kv_gpu_event_record(b->done, b->s);
		if (!ret)
			ret = kv_gpu_event_sync(b->done);
		if (!ret)
			ret = kv_gpu_event_ms(b->start, b->done, &t);
		if (ret)
			return fail(ret, "ceiling %s: copy of %zu bytes", ceil_key[which],
				    b->ceil_bytes);
		if (i >= WARM_COPIES)
			ms[i - WARM_COPIES] = t;
	}
	*out = gbps((double)b->ceil_bytes, median(ms, n));
	return 0;
}

static int ceilings(struct gb *b, double *g)
{
	if (copy_gbps(b, b->ca, b->host, CEIL_H2D, &g[CEIL_H2D]) ||
	    copy_gbps(b, b->host, b->ca, CEIL_D2H, &g[CEIL_D2H]) ||
	    copy_gbps(b, b->cb, b->ca, CEIL_D2D, &g[CEIL_D2D]))
		return -1;
	return 0;
}

/* ---- one call: queue it, wait, check it --------------------------------- */

static bool is_put(const struct op *op)
{
	return op->kind == OP_PUT_GPU || op->kind == OP_PUT_PAGED;
}

static struct kv_gpu_event *op_done(struct gb *b, const struct op *op)
{
	return op->kind == OP_GET_LAYERS ? b->lev[b->sh.layers - 1] : b->done;
}

static const char *kind_name(enum op_kind k)
{
	switch (k) {
	case OP_GET_GPU:	return "kvc_get_gpu";
	case OP_PUT_GPU:	return "kvc_put_gpu";
	case OP_GET_PAGED:	return "kvc_get_paged";
	case OP_PUT_PAGED:	return "kvc_put_paged";
	case OP_GET_LAYERS:	return "kvc_get_paged_begin";
	}
	return "?";
}

/* Poison what a get writes; give a put fresh keys. */
static int prepare(struct gb *b, struct op *op)
{
	const struct shape *sh = &b->sh;
	int ret = 0;

	switch (op->kind) {
	case OP_GET_GPU:
		ret = kv_gpu_memset(b->dget, POISON, sh->batch * sh->chunk_bytes, b->s);
		break;
	case OP_GET_PAGED:
	case OP_GET_LAYERS:
		ret = kv_gpu_memset(op->lay->dev, POISON, op->lay->bytes, b->s);
		break;
	case OP_PUT_GPU:
	case OP_PUT_PAGED:
		op->key0 = b->next_key;
		b->next_key += sh->batch;
		break;
	}
	if (ret)
		return fail(ret, "cannot poison the destination");
	return 0;
}

/* Check one chunk's result of a call. */
static int desc_ok(const struct op *op, unsigned j, int status, int tier, uint64_t bytes,
		   uint64_t want_bytes)
{
	const char *fn = kind_name(op->kind);

	if (status)
		return fail(status, "%s: chunk %u of the batch", fn, j);
	if (tier >= 0 && tier != op->tier)
		return fail(0, "%s: chunk %u came from tier %d, not %u", fn, j, tier, op->tier);
	if (bytes != want_bytes)
		return fail(0, "%s: chunk %u is %" PRIu64 " bytes, not %" PRIu64, fn, j,
			    bytes, want_bytes);
	return 0;
}

static int get_layers(struct gb *b, struct op *op)
{
	struct kvc_paged_op *po = NULL;
	unsigned n = b->sh.batch;
	int got, ret = 0;

	got = kvc_get_paged_begin(b->c, b->ns, &op->lay->kl, b->qd, n, b->s, &po);
	if (got < 0)
		return fail(got, "kvc_get_paged_begin of %u chunks", n);
	if (b->gating && b->open_at == OPEN_NEVER && !gate_held(b))
		b->open_at = OPEN_BEGIN;
	for (unsigned j = 0; j < n && !ret; j++)
		ret = desc_ok(op, j, b->qd[j].status, b->qd[j].tier, 0, 0);
	if (!ret && got != (int)n)
		ret = fail(0, "kvc_get_paged_begin found %d of %u chunks", got, n);
	for (unsigned l = 0; l < b->sh.layers && !ret; l++) {
		int err = kvc_get_paged_layers(po, l, l + 1, (kvc_event_t)b->lev[l]);

		if (err)
			ret = fail(err, "kvc_get_paged_layers(%u, %u)", l, l + 1);
		if (b->gating && b->open_at == OPEN_NEVER && !gate_held(b))
			b->open_at = (int)l;
	}
	if (po) {
		int err = kvc_get_paged_end(po);

		if (err && !ret)
			ret = fail(err, "kvc_get_paged_end");
	}
	return ret;
}

/* Queue the call; its done event is op_done(). */
static int issue(struct gb *b, struct op *op)
{
	const struct shape *sh = &b->sh;
	kvc_stream_t s = (kvc_stream_t)b->s;
	kvc_event_t done = (kvc_event_t)b->done;
	unsigned n = sh->batch, flags = op->tier == KVC_TIER_HBM ? KVC_PUT_HBM : 0;
	int got = 0, ret = 0;

	switch (op->kind) {
	case OP_GET_GPU:
		for (unsigned j = 0; j < n; j++)
			b->gd[j] = (struct kvc_gpu_desc){
				.key = key_of(op->first + j),
				.dev = b->dget + j * sh->chunk_bytes,
				.cap = sh->chunk_bytes,
			};
		got = kvc_get_gpu(b->c, b->ns, b->gd, n, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->gd[j].status, b->gd[j].tier, b->gd[j].bytes,
				      sh->chunk_bytes);
		break;
	case OP_PUT_GPU:
		for (unsigned j = 0; j < n; j++)
			b->pd[j] = (struct kvc_put_desc){
				.key = key_of(op->key0 + j),
				.tokens = sh->chunk_tokens,
				.data = b->dput + j * sh->chunk_bytes,
				.bytes = sh->chunk_bytes,
			};
		got = kvc_put_gpu(b->c, b->ns, b->pd, n, flags, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->pd[j].status, -1, 0, 0);
		break;
	case OP_GET_PAGED:
	case OP_PUT_PAGED:
	case OP_GET_LAYERS:
		for (unsigned j = 0; j < n; j++)
			b->qd[j] = (struct kvc_paged_desc){
				.key = key_of((op->kind == OP_PUT_PAGED ? op->key0 : op->first)
					      + j),
				.pages = op->lay->pages + j * op->lay->ppc,
			};
		if (op->kind == OP_GET_LAYERS)
			return get_layers(b, op);
		if (op->kind == OP_GET_PAGED)
			got = kvc_get_paged(b->c, b->ns, &op->lay->kl, b->qd, n, s, done);
		else
			got = kvc_put_paged(b->c, b->ns, &op->lay->kl, b->qd, n, flags, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->qd[j].status,
				      op->kind == OP_GET_PAGED ? b->qd[j].tier : -1, 0, 0);
		break;
	}
	if (got < 0)
		return fail(got, "%s of %u chunks", kind_name(op->kind), n);
	if (!ret && got != (int)n)
		ret = fail(0, "%s queued %d of %u chunks", kind_name(op->kind), got, n);
	return ret;
}

/* Read chunk key idx (content PUT_BASE + j) back from its tier and compare. */
static int put_read_back(struct gb *b, const struct op *op, unsigned j, const char *what)
{
	const struct shape *sh = &b->sh;
	struct kvc_key k = key_of(op->key0 + j);
	size_t got = 0;
	int ret;

	if (op->tier == KVC_TIER_DRAM) {
		ret = kvc_get(b->c, b->ns, &k, b->chunk, sh->chunk_bytes, &got);
		if (ret)
			return fail(ret, "%s: kvc_get of chunk %u", what, j);
		if (got != sh->chunk_bytes)
			return fail(0, "%s: chunk %u is %zu bytes", what, j, got);
		return chunk_ok(b, b->chunk, PUT_BASE + j, what) ? 0 : -1;
	}
	b->gd[0] = (struct kvc_gpu_desc){ .key = k, .dev = b->dget, .cap = sh->chunk_bytes };
	ret = kvc_get_gpu(b->c, b->ns, b->gd, 1, (kvc_stream_t)b->s, NULL);
	if (ret != 1)
		return fail(ret < 0 ? ret : b->gd[0].status, "%s: kvc_get_gpu of chunk %u",
			    what, j);
	ret = kv_gpu_memcpy(b->host, b->dget, sh->chunk_bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (!ret)
		ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "%s: cannot read chunk %u back", what, j);
	return chunk_ok(b, b->host, PUT_BASE + j, what) ? 0 : -1;
}

static int check_puts(struct gb *b, const struct op *op, bool full, const char *what)
{
	uint8_t tiers[MAX_BATCH];
	unsigned n = b->sh.batch;
	int got;

	for (unsigned j = 0; j < n; j++)
		b->keys[j] = key_of(op->key0 + j);
	got = kvc_lookup(b->c, b->ns, b->keys, n, tiers);
	if (got != (int)n)
		return fail(got < 0 ? got : 0, "%s: %d of the %u chunks put are cached",
			    what, got, n);
	for (unsigned j = 0; j < n; j++)
		if (tiers[j] != op->tier)
			return fail(0, "%s: chunk %u landed in tier %u, not %u", what, j,
				    tiers[j], op->tier);
	if (full) {
		for (unsigned j = 0; j < n; j++)
			if (put_read_back(b, op, j, what))
				return -1;
		return 0;
	}
	if (put_read_back(b, op, 0, what) ||
	    put_read_back(b, op, (unsigned)(rnd(b) % n), what))
		return -1;
	return 0;
}

static int check_get_gpu(struct gb *b, const struct op *op, bool full, const char *what)
{
	const struct shape *sh = &b->sh;
	size_t slice = sh->chunk_tokens * sh->row_bytes;
	unsigned j[CHECK_SLICES], l[CHECK_SLICES], kv[CHECK_SLICES];
	int ret = 0;

	if (full) {
		ret = kv_gpu_memcpy(b->host, b->dget, sh->batch * sh->chunk_bytes, b->s);
		if (!ret)
			ret = kv_gpu_stream_sync(b->s);
		if (ret)
			return fail(ret, "%s: cannot read the chunks back", what);
		for (unsigned i = 0; i < sh->batch; i++)
			if (!chunk_ok(b, b->host + i * sh->chunk_bytes, op->first + i, what))
				return -1;
		return 0;
	}
	for (unsigned i = 0; i < CHECK_SLICES && !ret; i++) {
		j[i] = (unsigned)(rnd(b) % sh->batch);
		l[i] = (unsigned)(rnd(b) % sh->layers);
		kv[i] = (unsigned)(rnd(b) & 1);
		ret = kv_gpu_memcpy(b->hsmall + i * slice,
				    b->dget + j[i] * sh->chunk_bytes + slice_off(sh, l[i], kv[i]),
				    slice, b->s);
	}
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "%s: cannot read slices back", what);
	for (unsigned i = 0; i < CHECK_SLICES; i++)
		if (!rows_ok(b, b->hsmall + i * slice, op->first + j[i], l[i], kv[i], 0,
			     sh->chunk_tokens, what))
			return -1;
	return 0;
}

static int verify(struct gb *b, const struct op *op, bool full, const char *what)
{
	switch (op->kind) {
	case OP_GET_GPU:
		return check_get_gpu(b, op, full, what);
	case OP_GET_PAGED:
	case OP_GET_LAYERS:
		if (full)
			return lay_check_all(b, op->lay, op->first, what);
		return lay_check_some(b, op->lay, op->first, what);
	case OP_PUT_GPU:
	case OP_PUT_PAGED:
		return check_puts(b, op, full, what);
	}
	return 0;
}

/* Drop a call's fresh puts, so the tier never has to evict. */
static int cleanup(struct gb *b, const struct op *op, const char *what)
{
	unsigned n = b->sh.batch;
	int status[MAX_BATCH];
	int got;

	if (!is_put(op))
		return 0;
	for (unsigned j = 0; j < n; j++)
		b->keys[j] = key_of(op->key0 + j);
	got = kvc_evict(b->c, b->ns, b->keys, n, status);
	if (got < 0)
		return fail(got, "%s: kvc_evict of the chunks put", what);
	for (unsigned j = 0; j < n; j++)
		if (status[j])
			return fail(status[j], "%s: kvc_evict of chunk %u", what, j);
	return 0;
}

static int layer_times(struct gb *b, struct sres *r)
{
	double ms[MAX_LAYERS] = { 0 };
	unsigned n = b->sh.layers;
	float t = 0;

	for (unsigned l = 0; l < n; l++) {
		int ret = kv_gpu_event_ms(l ? b->lev[l - 1] : b->start, b->lev[l], &t);

		if (ret)
			return fail(ret, "layer %u's time", l);
		ms[l] = t;
	}
	r->first_ms = ms[0];
	r->layer_max_ms = 0;
	for (unsigned l = 0; l < n; l++)
		r->layer_max_ms = fmax(r->layer_max_ms, ms[l]);
	r->layer_ms = median(ms, n);
	return 0;
}

static int sample(struct gb *b, struct op *op, enum smode m, struct sres *r,
		  const char *what)
{
	struct kv_gpu_event *done = op_done(b, op);
	uint64_t t0 = 0, t1;
	float t = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->open_at = OPEN_NEVER;
	if (prepare(b, op))
		return -1;
	if (m == S_GATED) {
		if (gate_close(b))
			return -1;
	} else {
		ret = kv_gpu_stream_sync(b->s);
		if (ret)
			return fail(ret, "%s: stream sync", what);
		t0 = now_ns();
	}
	b->gating = m == S_GATED;
	b->open_at = OPEN_NEVER;
	ret = issue(b, op);
	b->gating = false;
	if (ret) {
		(void)kv_gpu_stream_sync(b->s);
		(void)kvc_gpu_flush(b->c);
		return -1;
	}
	if (m == S_GATED) {
		r->held = gate_held(b);
		r->open_at = b->open_at;
	}
	ret = kv_gpu_event_sync(done);
	if (ret)
		return fail(ret, "%s: waiting for the done event", what);
	if (m == S_WALL && is_put(op)) {
		ret = kvc_gpu_flush(b->c);
		if (ret)
			return fail(ret, "%s: kvc_gpu_flush", what);
	}
	t1 = now_ns();
	ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "%s: kvc_gpu_flush", what);
	if (m == S_GATED) {
		ret = kv_gpu_event_ms(b->start, done, &t);
		if (ret)
			return fail(ret, "%s: event time", what);
		r->ms = t;
		if (op->kind == OP_GET_LAYERS && layer_times(b, r))
			return -1;
	} else {
		r->ms = (double)(t1 - t0) / 1e6;
	}
	if (verify(b, op, m == S_WARM, what))
		return -1;
	return cleanup(b, op, what);
}

static void fig_print(const struct gb *b, const struct fig *f, const char *prefix)
{
	double c = b->ceil[f->ceil];

	printf("%s%s %.2f GB/s, %.3f of %s %.2f (target >= %.2f); wall %.2f GB/s, %.3f",
	       prefix, f->key, f->gbps, ratio(f->gbps, c), ceil_key[f->ceil], c,
	       f->target, f->wall_gbps, ratio(f->wall_gbps, c));
	if (f->layered)
		printf("; per layer %.3f ms (slowest %.3f), layer 0 done after %.3f ms",
		       f->layer_ms, f->layer_max_ms, f->first_ms);
	if (f->ungated && f->layered && f->open_at >= 0)
		printf(" [%u samples: the gate opened before the calls returned: "
		       "kvc_get_paged_layers(%d, %d) found it open]", f->ungated, f->open_at,
		       f->open_at + 1);
	else if (f->ungated && f->layered && f->open_at == OPEN_BEGIN)
		printf(" [%u samples: the gate opened in kvc_get_paged_begin]", f->ungated);
	else if (f->ungated)
		printf(" [%u samples: the gate opened before the call returned]", f->ungated);
	putchar('\n');
}

/* Measure one figure: a warm-up call, then gated and wall-timed calls in turn. */
static int measure(struct gb *b, struct op *op, const char *what, const char *key,
		   enum ceil which, double target)
{
	double ev[MAX_SAMPLES], wall[MAX_SAMPLES], first[MAX_SAMPLES];
	double lmed[MAX_SAMPLES], lmax[MAX_SAMPLES];
	double bytes = (double)b->sh.batch * (double)b->sh.chunk_bytes;
	unsigned reps = b->gate_reps, n = 0;
	int prev_open = OPEN_NEVER;
	struct fig *f;
	struct sres r;
	int ret;

	if (b->n_figs == MAX_FIGS)
		return fail(0, "too many figures");
	f = &b->figs[b->n_figs];
	memset(f, 0, sizeof(*f));
	f->open_at = OPEN_NEVER;
	snprintf(f->what, sizeof(f->what), "%s", what);
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->ceil = which;
	f->target = target;
	f->layered = op->kind == OP_GET_LAYERS;

	ret = kvc_gpu_mode(b->c, op->mode);
	if (ret < 0)
		return fail(ret, "%s: kvc_gpu_mode", what);
	if (sample(b, op, S_WARM, &r, what))
		return -1;
	while (n < b->samples) {
		if (sample(b, op, S_GATED, &r, what))
			return -1;
		/* Opened early: a longer gate, unless a layers call found it
		 * open at the same layer as before (the call waits on the host
		 * for an earlier layer: no gate can outlast that). */
		if (!r.held && b->gate_reps < GATE_MAX_REPS &&
		    !(r.open_at >= 0 && r.open_at == prev_open)) {
			prev_open = r.open_at;
			b->gate_reps *= 2;
			continue;
		}
		if (!r.held) {
			f->ungated++;
			f->open_at = r.open_at;
		}
		ev[n] = r.ms;
		first[n] = r.first_ms;
		lmed[n] = r.layer_ms;
		lmax[n] = r.layer_max_ms;
		/* Wall samples in between, so drift hits both alike. */
		if (sample(b, op, S_WALL, &r, what))
			return -1;
		wall[n++] = r.ms;
	}
	/* A gate that never held says the call waits for the stream: don't
	 * make the next figures pay for the longest gate. */
	if (f->ungated == b->samples)
		b->gate_reps = reps;
	f->ms = median(ev, b->samples);
	f->wall_ms = median(wall, b->samples);
	f->gbps = gbps(bytes, f->ms);
	f->wall_gbps = gbps(bytes, f->wall_ms);
	if (f->layered) {
		f->first_ms = median(first, b->samples);
		f->layer_ms = median(lmed, b->samples);
		f->layer_max_ms = median(lmax, b->samples);
	}
	b->n_figs++;
	fig_print(b, f, "  ");
	return 0;
}

/* ---- the sets of chunks ----------------------------------------------------- */

/* What contiguous puts store: chunk j of dput has content PUT_BASE + j. */
static int fill_dput(struct gb *b)
{
	const struct shape *sh = &b->sh;
	int ret;

	for (unsigned j = 0; j < sh->batch; j++)
		pat_chunk(sh, b->host + j * sh->chunk_bytes, PUT_BASE + j);
	ret = kv_gpu_memcpy(b->dput, b->host, sh->batch * sh->chunk_bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "cannot fill the put buffer");
	return 0;
}

/* The DRAM set: chunks 0..batch, put from host memory. */
static int seed_dram(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint8_t tiers[MAX_BATCH];
	int ret;

	for (unsigned j = 0; j < sh->batch; j++) {
		b->keys[j] = key_of(j);
		pat_chunk(sh, b->chunk, j);
		ret = kvc_put(b->c, b->ns, &b->keys[j], NULL, sh->chunk_tokens, 0, b->chunk,
			      sh->chunk_bytes);
		if (ret)
			return fail(ret, "kvc_put of DRAM chunk %u", j);
	}
	ret = kvc_lookup(b->c, b->ns, b->keys, sh->batch, tiers);
	if (ret != (int)sh->batch)
		return fail(ret < 0 ? ret : 0, "lookup found %d of the %u DRAM chunks", ret,
			    sh->batch);
	for (unsigned j = 0; j < sh->batch; j++)
		if (tiers[j] != KVC_TIER_DRAM)
			return fail(0, "DRAM chunk %u is in tier %u", j, tiers[j]);
	return 0;
}

/*
 * The HBM set: chunks HBM_BASE.., put from GPU memory with KVC_PUT_HBM.
 * Returns 0 (b->has_hbm says whether they landed in HBM; if not, they are
 * evicted again and b->hbm_note says why) or -1.
 */
static int seed_hbm(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint8_t tiers[MAX_BATCH];
	size_t bytes = sh->batch * sh->chunk_bytes;
	int ret, got;

	for (unsigned j = 0; j < sh->batch; j++)
		pat_chunk(sh, b->host + j * sh->chunk_bytes, HBM_BASE + j);
	ret = kv_gpu_memcpy(b->dget, b->host, bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "cannot copy the HBM set to the GPU");
	for (unsigned j = 0; j < sh->batch; j++) {
		b->keys[j] = key_of(HBM_BASE + j);
		b->pd[j] = (struct kvc_put_desc){
			.key = b->keys[j],
			.tokens = sh->chunk_tokens,
			.data = b->dget + j * sh->chunk_bytes,
			.bytes = sh->chunk_bytes,
		};
	}
	got = kvc_put_gpu(b->c, b->ns, b->pd, sh->batch, KVC_PUT_HBM, (kvc_stream_t)b->s,
			  (kvc_event_t)b->done);
	if (got < 0)
		return fail(got, "kvc_put_gpu(KVC_PUT_HBM) of the HBM set");
	for (unsigned j = 0; j < sh->batch; j++)
		if (b->pd[j].status)
			return fail(b->pd[j].status, "kvc_put_gpu(KVC_PUT_HBM): chunk %u", j);
	ret = kv_gpu_event_sync(b->done);
	if (!ret)
		ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "kvc_put_gpu(KVC_PUT_HBM): waiting for the copies");
	got = kvc_lookup(b->c, b->ns, b->keys, sh->batch, tiers);
	if (got != (int)sh->batch)
		return fail(got < 0 ? got : 0, "lookup found %d of the %u HBM chunks", got,
			    sh->batch);
	b->has_hbm = true;
	for (unsigned j = 0; j < sh->batch; j++)
		if (tiers[j] != KVC_TIER_HBM)
			b->has_hbm = false;
	if (b->has_hbm)
		return 0;
	snprintf(b->hbm_note, sizeof(b->hbm_note),
		 "chunks put with KVC_PUT_HBM landed in tier %u, not HBM (0)", tiers[0]);
	got = kvc_evict(b->c, b->ns, b->keys, sh->batch, NULL);
	if (got < 0)
		return fail(got, "evict of the HBM set");
	return 0;
}

/* ---- setup ----------------------------------------------------------------- */

static int gpu_setup(struct gb *b)
{
	const struct shape *sh = &b->sh;
	size_t batch_bytes = sh->batch * sh->chunk_bytes, page_max = 0, slice;
	int ret;

	ret = kv_gpu_set_device(b->dev);
	if (!ret)
		ret = kv_gpu_device_name(b->dev, b->gpu_name, sizeof(b->gpu_name));
	if (ret)
		return fail(ret, "cannot use GPU %d", b->dev);
	ret = kv_gpu_stream_create(&b->s);
	if (!ret)
		ret = kv_gpu_stream_create(&b->gs);
	if (!ret)
		ret = kv_gpu_event_create(&b->start, true);
	if (!ret)
		ret = kv_gpu_event_create(&b->done, true);
	if (!ret)
		ret = kv_gpu_event_create(&b->gate, false);
	for (unsigned l = 0; l < sh->layers && !ret; l++)
		ret = kv_gpu_event_create(&b->lev[l], true);
	if (ret)
		return fail(ret, "cannot create streams and events");

	if (lay_setup(b, &b->lay[0], KVC_LAYOUT_VLLM) ||
	    lay_setup(b, &b->lay[1], KVC_LAYOUT_SGLANG))
		return -1;
	for (int i = 0; i < 2; i++)
		if (b->lay[i].page_bytes > page_max)
			page_max = b->lay[i].page_bytes;
	slice = sh->chunk_tokens * sh->row_bytes;

	b->host_bytes = b->ceil_bytes;
	if (b->host_bytes < batch_bytes)
		b->host_bytes = batch_bytes;
	for (int i = 0; i < 2; i++)
		if (b->host_bytes < b->lay[i].bytes)
			b->host_bytes = b->lay[i].bytes;
	b->hsmall_bytes = (CHECK_PAGES + CHECK_HOLES) * page_max;
	if (b->hsmall_bytes < CHECK_SLICES * slice)
		b->hsmall_bytes = CHECK_SLICES * slice;
	b->expect_bytes = page_max > sh->row_bytes ? page_max : sh->row_bytes;

	ret = kv_gpu_host_alloc(b->host_bytes, (void **)&b->host);
	if (!ret)
		ret = kv_gpu_host_alloc(b->hsmall_bytes, (void **)&b->hsmall);
	if (!ret)
		ret = kv_gpu_malloc(b->ceil_bytes, &b->ca);
	if (!ret)
		ret = kv_gpu_malloc(b->ceil_bytes, &b->cb);
	if (!ret)
		ret = kv_gpu_malloc(batch_bytes, (void **)&b->dget);
	if (!ret)
		ret = kv_gpu_malloc(batch_bytes, (void **)&b->dput);
	if (!ret)
		ret = kv_gpu_malloc(GATE_BYTES, &b->gate_buf);
	if (ret)
		return fail(ret, "cannot allocate GPU and pinned buffers");
	b->chunk = malloc(sh->chunk_bytes);
	b->expect = malloc(b->expect_bytes);
	if (!b->chunk || !b->expect)
		return fail(-ENOMEM, "cannot allocate host buffers");
	/* Touch the pinned buffer: the h2d ceiling reads it. */
	memset(b->host, 0x3c, b->host_bytes);
	return 0;
}

static void gpu_release(struct gb *b)
{
	if (b->s)
		(void)kv_gpu_stream_sync(b->s);
	for (int i = 0; i < 2; i++)
		lay_release(&b->lay[i]);
	kv_gpu_free(b->gate_buf);
	kv_gpu_free(b->dput);
	kv_gpu_free(b->dget);
	kv_gpu_free(b->cb);
	kv_gpu_free(b->ca);
	kv_gpu_host_free(b->hsmall);
	kv_gpu_host_free(b->host);
	free(b->expect);
	free(b->chunk);
	for (unsigned l = 0; l < MAX_LAYERS; l++)
		kv_gpu_event_destroy(b->lev[l]);
	kv_gpu_event_destroy(b->gate);
	kv_gpu_event_destroy(b->done);
	kv_gpu_event_destroy(b->start);
	kv_gpu_stream_destroy(b->gs);
	kv_gpu_stream_destroy(b->s);
}

static int daemon_start(struct gb *b)
{
	char dram[32], hbm[32], gpu[16];
	const char *args[] = {
		"--dram-bytes", dram, "--hbm-bytes", hbm, "--hbm-promote", "off",
		"--gpu", gpu, NULL,
	};

	if (b->o->socket) {
		b->sock = b->o->socket;
		return 0;
	}
	snprintf(dram, sizeof(dram), "%" PRIu64, b->dram_bytes);
	snprintf(hbm, sizeof(hbm), "%" PRIu64, b->hbm_bytes);
	snprintf(gpu, sizeof(gpu), "%d", b->dev);
	if (b->o->daemon && setenv("KVSTORED", b->o->daemon, 1))
		return fail(-errno, "setenv");
	if (kvt_start(&b->d, args)) {
		kvt_cleanup(&b->d);
		return fail(0, "cannot start '%s'", kvt_daemon_path());
	}
	b->started = true;
	b->sock = b->d.sock;
	return 0;
}

/* Connect, bind to the GPU and page-lock the whole DRAM mapping (timed). */
static int client_open(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint64_t need = (2ull * sh->batch + 1) * sh->chunk_bytes, t0;
	char name[96];
	size_t arena = 0;
	int ret;

	ret = kvc_connect(b->sock, &b->c);
	if (ret)
		return fail(ret, "cannot connect to '%s'", b->sock);
	snprintf(name, sizeof(name), "kvbench-gpu/%d/%s/bf16/c%u", (int)getpid(), sh->name,
		 sh->chunk_tokens);
	ret = kvc_ns_register(b->c, name, &b->ns);
	if (ret)
		return fail(ret, "cannot register namespace '%s'", name);
	kvc_dram_base(b->c, &arena);
	b->dram_arena = arena;
	if (arena < need)
		return fail(0, "the DRAM tier has %zu bytes; the benchmark needs %" PRIu64,
			    arena, need);
	t0 = now_ns();
	ret = kvc_gpu_open(b->c, b->dev, KVC_GPU_REGISTER_ALL);
	if (ret)
		return fail(ret, "kvc_gpu_open(%d, KVC_GPU_REGISTER_ALL)", b->dev);
	for (;;) {
		kvc_gpu_registered(b->c, &b->reg_done, &b->reg_total);
		if (b->reg_done >= b->reg_total)
			break;
		if (now_ns() - t0 > REG_WAIT_S * 1000000000ull) {
			printf("warning: after %d s only %" PRIu64 " of %" PRIu64 " bytes of "
			       "the DRAM mapping are page-locked\n", REG_WAIT_S, b->reg_done,
			       b->reg_total);
			break;
		}
		sleep_ms(5);
	}
	b->reg_s = (double)(now_ns() - t0) / 1e9;
	return 0;
}

/* ---- the figures ------------------------------------------------------------- */

static int figures_dram(struct gb *b)
{
	static const struct {
		enum kvc_gpu_mode mode;
		const char *name;
		const char *tag;
	} modes[] = {
		{ KVC_GPU_ZEROCOPY, "zero-copy", "zerocopy" },
		{ KVC_GPU_STAGED, "staged", "staged" },
	};
	char what[96], key[48];
	struct op op;

	op = (struct op){ .kind = OP_GET_GPU, .tier = KVC_TIER_DRAM, .first = 0 };
	if (measure(b, &op, "DRAM -> GPU, kvc_get_gpu, contiguous", "dram_get_gpu",
		    CEIL_H2D, DRAM_TARGET))
		return -1;
	op = (struct op){ .kind = OP_PUT_GPU, .tier = KVC_TIER_DRAM };
	if (measure(b, &op, "GPU -> DRAM, kvc_put_gpu, contiguous", "dram_put_gpu",
		    CEIL_D2H, DRAM_TARGET))
		return -1;

	for (int i = 0; i < 2; i++) {
		struct lay *y = &b->lay[i];

		for (int m = 0; m < 2; m++) {
			op = (struct op){ .kind = OP_GET_PAGED, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode, .first = 0 };
			snprintf(what, sizeof(what), "DRAM -> GPU, kvc_get_paged, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_get_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_H2D, DRAM_TARGET))
				return -1;
		}
		for (int m = 0; i == 0 && m < 2; m++) {
			op = (struct op){ .kind = OP_GET_LAYERS, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode, .first = 0 };
			snprintf(what, sizeof(what), "DRAM -> GPU, layer by layer, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_layers_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_H2D, DRAM_TARGET))
				return -1;
		}
		if (lay_fill(b, y, PUT_BASE))
			return -1;
		for (int m = 0; m < 2; m++) {
			op = (struct op){ .kind = OP_PUT_PAGED, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode };
			snprintf(what, sizeof(what), "GPU -> DRAM, kvc_put_paged, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_put_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_D2H, DRAM_TARGET))
				return -1;
		}
	}
	return 0;
}

static int figures_hbm(struct gb *b)
{
	char what[96], key[48];
	struct op op;

	if (seed_hbm(b))
		return -1;
	if (!b->has_hbm) {
		if (b->started) {
			kvt_dump_log(&b->d);
			return fail(0, "%s: the daemon's HBM tier did not open (its log is above)",
				    b->hbm_note);
		}
		printf("no HBM figures: %s\n", b->hbm_note);
		return 0;
	}
	op = (struct op){ .kind = OP_GET_GPU, .tier = KVC_TIER_HBM, .first = HBM_BASE };
	if (measure(b, &op, "HBM -> GPU, kvc_get_gpu, contiguous", "hbm_get_gpu",
		    CEIL_D2D, HBM_TARGET))
		return -1;
	for (int i = 0; i < 2; i++) {
		struct lay *y = &b->lay[i];

		op = (struct op){ .kind = OP_GET_PAGED, .tier = KVC_TIER_HBM, .lay = y,
				  .first = HBM_BASE };
		snprintf(what, sizeof(what), "HBM -> GPU, kvc_get_paged, %s", y->name);
		snprintf(key, sizeof(key), "hbm_get_%s", y->tag);
		if (measure(b, &op, what, key, CEIL_D2D, HBM_TARGET))
			return -1;
	}
	op = (struct op){ .kind = OP_PUT_GPU, .tier = KVC_TIER_HBM };
	return measure(b, &op, "GPU -> HBM, kvc_put_gpu(KVC_PUT_HBM), contiguous",
		       "hbm_put_gpu", CEIL_D2D, HBM_TARGET);
}

/* ---- the report ------------------------------------------------------------- */

static void print_header(const struct gb *b)
{
	const struct shape *sh = &b->sh;
	struct utsname u;
	char sz[24], sz2[24];

	if (uname(&u))
		strcpy(u.nodename, "?");
	printf("kvbench --gpu: libkvc's GPU paths against this GPU's copy ceilings\n");
	printf("gpu: %d: %s (%d visible); host %s, %ld CPUs\n", b->dev, b->gpu_name, b->n_dev,
	       u.nodename, sysconf(_SC_NPROCESSORS_ONLN));
	if (b->started)
		printf("daemon: started %s --dram-bytes %s --hbm-bytes %s --hbm-promote off "
		       "--gpu %d\n", kvt_daemon_path(),
		       kvt_size_name(b->dram_bytes, sz, sizeof(sz)),
		       kvt_size_name(b->hbm_bytes, sz2, sizeof(sz2)), b->dev);
	else
		printf("daemon: running at %s\n", b->sock);
	printf("shape: %s, %u layers x %u KV heads x %u dims x %u bytes, %u-token chunks "
	       "(%s); %u chunks per call (%s); vLLM blocks of %u tokens\n", sh->name,
	       sh->layers, sh->kv_heads, sh->head_dim, sh->elem_bytes, sh->chunk_tokens,
	       kvt_size_name(sh->chunk_bytes, sz, sizeof(sz)), sh->batch,
	       kvt_size_name(sh->batch * sh->chunk_bytes, sz2, sizeof(sz2)), sh->block_tokens);
	printf("pages: a random permutation of twice the pages a call needs (the other "
	       "half must keep their poison)\n");
	printf("dram mapping: %s page-locked by the client in %.2f s (KVC_GPU_REGISTER_ALL, "
	       "%" PRIu64 " of %" PRIu64 " bytes)\n",
	       kvt_size_name(b->dram_arena, sz, sizeof(sz)), b->reg_s, b->reg_done, b->reg_total);
	printf("method: medians of %u calls after a warm-up call; GB/s from events: start "
	       "held by a gate until the call returned, to done; wall: from before the "
	       "call to done synced (puts: to kvc_gpu_flush, committed)\n", b->samples);
}

static void print_report(const struct gb *b)
{
	char sz[24];

	printf("\n| what | GB/s | ceiling | ratio | target | wall GB/s | wall ratio |\n");
	printf("| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
	for (int i = 0; i < N_CEIL; i++)
		printf("| ceiling: %s, cudaMemcpyAsync %s (before %.2f, after %.2f) "
		       "| %.2f | | | | | |\n", ceil_what[i],
		       kvt_size_name(b->ceil_bytes, sz, sizeof(sz)), b->ceil_before[i],
		       b->ceil_after[i], b->ceil[i]);
	for (unsigned i = 0; i < b->n_figs; i++) {
		const struct fig *f = &b->figs[i];
		double c = b->ceil[f->ceil];

		printf("| %s", f->what);
		if (f->layered)
			printf(" (per layer %.3f ms, slowest %.3f; layer 0 after %.3f ms)",
			       f->layer_ms, f->layer_max_ms, f->first_ms);
		printf(" | %.2f | %s %.2f | %.3f | >= %.2f%s | %.2f | %.3f |\n", f->gbps,
		       ceil_key[f->ceil], c, ratio(f->gbps, c), f->target,
		       ratio(f->gbps, c) >= f->target ? "" : " (missed)", f->wall_gbps,
		       ratio(f->wall_gbps, c));
	}
	if (!b->has_hbm)
		printf("| HBM figures: none (%s) | | | | | | |\n", b->hbm_note);
	putchar('\n');

	for (int i = 0; i < N_CEIL; i++)
		printf("figure: ceiling %s %.2f GB/s (before %.2f, after %.2f)\n", ceil_key[i],
		       b->ceil[i], b->ceil_before[i], b->ceil_after[i]);
	for (unsigned i = 0; i < b->n_figs; i++)
		fig_print(b, &b->figs[i], "figure: ");

	printf("kvbench-gpu {\"gpu\":\"%s\",\"cpus\":%ld,\"chunk_bytes\":%" PRIu64
	       ",\"batch\":%u", b->gpu_name, sysconf(_SC_NPROCESSORS_ONLN),
	       b->sh.chunk_bytes, b->sh.batch);
	for (int i = 0; i < N_CEIL; i++)
		printf(",\"%s_gbps\":%.3f", ceil_key[i], b->ceil[i]);
	for (unsigned i = 0; i < b->n_figs; i++) {
		const struct fig *f = &b->figs[i];

		printf(",\"%s_gbps\":%.3f,\"%s_ratio\":%.3f,\"%s_wall_gbps\":%.3f", f->key,
		       f->gbps, f->key, ratio(f->gbps, b->ceil[f->ceil]), f->key,
		       f->wall_gbps);
	}
	printf("}\n");
}

/* ---- entry ---------------------------------------------------------------------- */

int gpubench_run(const struct gpubench_opts *o)
{
	static struct gb gb;
	struct gb *b = &gb;
	char why[160] = "";
	int status = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(b, 0, sizeof(*b));
	b->o = o;
	if (!kv_gpu_available(&b->n_dev, why, sizeof(why))) {
		printf("kvbench --gpu: skipped: no usable GPU (%s)\n", why);
		return 77;
	}
	b->sh = o->quick ? shape_quick : shape_full;
	b->sh.row_bytes = (uint64_t)b->sh.kv_heads * b->sh.head_dim * b->sh.elem_bytes;
	b->sh.chunk_bytes = 2ull * b->sh.layers * b->sh.chunk_tokens * b->sh.row_bytes;
	b->samples = o->quick ? 2 : 7;
	b->ceil_bytes = o->quick ? 64 * MIB : GIB;
	b->dram_bytes = o->dram_bytes ? o->dram_bytes : o->quick ? 64 * MIB : 2 * GIB;
	b->hbm_bytes = o->hbm_bytes ? o->hbm_bytes : o->quick ? 64 * MIB : 8 * GIB;
	b->gate_reps = GATE_REPS;
	b->next_key = PUT_KEYS;
	b->rng = 0x5eed;
	b->dev = 0;

	if (gpu_setup(b))
		goto out;
	if (ceilings(b, b->ceil_before))
		goto out;
	if (daemon_start(b))
		goto out;
	if (client_open(b))
		goto out_stop;
	print_header(b);
	for (int i = 0; i < N_CEIL; i++)
		printf("  ceiling %s %.2f GB/s\n", ceil_key[i], b->ceil_before[i]);
	memcpy(b->ceil, b->ceil_before, sizeof(b->ceil));
	if (fill_dput(b) || seed_dram(b) || figures_dram(b))
		goto out_stop;
	if (figures_hbm(b))
		goto out_stop;
	if (ceilings(b, b->ceil_after))
		goto out_stop;
	for (int i = 0; i < N_CEIL; i++)
		b->ceil[i] = fmax(b->ceil_before[i], b->ceil_after[i]);
	print_report(b);
	status = 0;

out_stop:
	kvc_close(b->c);
	if (b->started) {
		int st = kvt_stop(&b->d);

		if (st) {
			fail(0, "kvstored did not stop cleanly (exit status %d)", st);
			status = 1;
		}
	}
out:
	gpu_release(b);
	return status;
}
