/*
 * test_paged_ref.c - the plain-C paged copy (kernels/paged_ref.c) against
 * each engine layout's own index formula, written here per element and
 * independently of page_stride: scatter, gather, a round trip, layer
 * ranges, bytes no page addresses left at their poison, and every refusal
 * of kv_gpu_paged_check(). Hugging Face's [1, H, cap, D] tensors (rows
 * split into heads on the engine side) too. Needs no GPU.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kv_gpu.h"

#define POISON	0xa5

enum kind {
	VLLM,		/* [2, nb, bs, H, D] per layer */
	VLLM_SPLIT,	/* [nb, bs, H, D] K and V apart */
	FLASHINFER,	/* [nb, 2, bs, H, D] per layer */
	SGLANG,		/* [slots, H, D] K and V, one token a page */
	HF,		/* [1, H, cap, D] K and V, one token a page, split rows */
	KINDS
};

static const char *const kind_name[KINDS] = {
	"vllm", "vllm-split", "flashinfer", "sglang", "hf",
};

struct geom {
	enum kind kind;
	uint32_t layers;
	uint32_t chunk_tokens;
	uint32_t bs;		/* tokens per block (1 for SGLang) */
	uint32_t row_bytes;
	uint32_t nb;		/* blocks (token slots, positions) per layer */
	uint32_t n;		/* chunks */
	uint32_t heads;		/* HF: KV heads, row_bytes / heads each */
	int in_order;		/* pages first, first + 1, ... (HF positions),
				 * not a random pick */
	uint32_t first;
};

struct setup {
	struct geom g;
	unsigned char *eng[2];	/* the whole cache: one buffer, or K and V */
	size_t eng_bytes;	/* of each */
	void **k;
	void **v;
	unsigned char *chunk_mem;
	size_t chunk_bytes;
	void **chunks;
	int32_t *pages;
	struct kv_gpu_paged p;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rnd() >> 24);
}

static void *xalloc(size_t n)
{
	void *p = aligned_alloc(64, (n + 63) / 64 * 64);

	assert_non_null(p);
	return p;
}

/*
 * The engine byte of (chunk c, layer l, kv, token t, byte b), straight
 * from each layout's definition.
 */
static unsigned char *engine_at(const struct setup *s, uint32_t c, uint32_t l, unsigned kv,
				uint32_t t, uint32_t b)
{
	const struct geom *g = &s->g;
	size_t rb = g->row_bytes;
	size_t bs = g->bs;
	size_t nb = g->nb;
	size_t ppc = g->chunk_tokens / g->bs;
	size_t blk = (size_t)s->pages[c * ppc + t / bs];
	size_t slot = t % bs;

	switch (g->kind) {
	case VLLM:
		return s->eng[0] + (size_t)l * 2 * nb * bs * rb +
			((kv * nb + blk) * bs + slot) * rb + b;
	case VLLM_SPLIT:
		return s->eng[kv] + (((size_t)l * nb + blk) * bs + slot) * rb + b;
	case FLASHINFER:
		return s->eng[0] + (size_t)l * nb * 2 * bs * rb +
			((blk * 2 + kv) * bs + slot) * rb + b;
	case SGLANG:
		return s->eng[kv] + ((size_t)l * nb + blk) * rb + b;
	case HF:		/* head h of position blk: ((h * cap) + blk) * D */
	default: {
		size_t seg = rb / g->heads;

		return s->eng[kv] + (size_t)l * nb * rb +
			((b / seg) * nb + blk) * seg + b % seg;
	}
	}
}

static unsigned char *chunk_at(const struct setup *s, uint32_t c, uint32_t l, unsigned kv,
			       uint32_t t, uint32_t b)
{
	return (unsigned char *)s->chunks[c] +
		(((size_t)l * 2 + kv) * s->g.chunk_tokens + t) * s->g.row_bytes + b;
}

/* Buffers, pointer tables and a descriptor for g; pages distinct, random. */
static void setup_init(struct setup *s, const struct geom *g)
{
	size_t rb = g->row_bytes;
	size_t ppc = g->chunk_tokens / g->bs;
	size_t per_layer = (size_t)g->nb * g->bs * rb;	/* K or V of a layer */
	uint32_t *perm;

	memset(s, 0, sizeof(*s));
	s->g = *g;
	assert_true((size_t)g->n * ppc <= g->nb);
	s->k = xalloc(g->layers * sizeof(void *));
	s->v = xalloc(g->layers * sizeof(void *));
	switch (g->kind) {
	case VLLM:
	case FLASHINFER:
		s->eng_bytes = g->layers * 2 * per_layer;
		s->eng[0] = xalloc(s->eng_bytes);
		break;
	case VLLM_SPLIT:
	case SGLANG:
	case HF:
	default:
		s->eng_bytes = g->layers * per_layer;
		s->eng[0] = xalloc(s->eng_bytes);
		s->eng[1] = xalloc(s->eng_bytes);
		break;
	}
	/* The descriptor of each layout, as kv_gpu.h spells it out. */
	for (uint32_t l = 0; l < g->layers; l++) {
		switch (g->kind) {
		case VLLM:
			s->k[l] = s->eng[0] + l * 2 * per_layer;
			s->v[l] = (unsigned char *)s->k[l] + per_layer;
			s->p.page_stride = (uint64_t)g->bs * rb;
			break;
		case VLLM_SPLIT:
		case SGLANG:
			s->k[l] = s->eng[0] + l * per_layer;
			s->v[l] = s->eng[1] + l * per_layer;
			s->p.page_stride = (uint64_t)g->bs * rb;
			break;
		case HF:
			s->k[l] = s->eng[0] + l * per_layer;
			s->v[l] = s->eng[1] + l * per_layer;
			s->p.page_stride = rb / g->heads;
			s->p.head_stride = (uint64_t)g->nb * (rb / g->heads);
			s->p.heads = g->heads;
			break;
		case FLASHINFER:
		default:
			s->k[l] = s->eng[0] + l * 2 * per_layer;
			s->v[l] = (unsigned char *)s->k[l] + g->bs * rb;
			s->p.page_stride = 2 * (uint64_t)g->bs * rb;
			break;
		}
	}
	s->chunk_bytes = (size_t)g->layers * 2 * g->chunk_tokens * rb;
	s->chunk_mem = xalloc(s->chunk_bytes * (g->n ? g->n : 1));
	s->chunks = xalloc((g->n ? g->n : 1) * sizeof(void *));
	s->pages = xalloc((g->n * ppc + 1) * sizeof(int32_t));

	/* Chunks in a shuffled order, pages a random pick of distinct ids. */
	perm = xalloc((g->nb > g->n ? g->nb : g->n) * sizeof(*perm));
	for (uint32_t i = 0; i < g->n; i++)
		perm[i] = i;
	for (uint32_t i = g->n; i > 1; i--) {
		uint32_t j = (uint32_t)(rnd() % i);
		uint32_t x = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = x;
	}
	for (uint32_t i = 0; i < g->n; i++)
		s->chunks[i] = s->chunk_mem + perm[i] * s->chunk_bytes;
	for (uint32_t i = 0; i < g->nb; i++)
		perm[i] = i;
	for (uint32_t i = g->nb; i > 1; i--) {
		uint32_t j = (uint32_t)(rnd() % i);
		uint32_t x = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = x;
	}
	for (size_t i = 0; i < g->n * ppc; i++)
		s->pages[i] = (int32_t)(g->in_order ? g->first + i : perm[i]);
	free(perm);

	s->p.layers = g->layers;
	s->p.layer_begin = 0;
	s->p.layer_end = g->layers;
	s->p.chunk_tokens = g->chunk_tokens;
	s->p.page_tokens = g->bs;
	s->p.row_bytes = g->row_bytes;
	s->p.n_pages = g->nb;
	s->p.k = s->k;
	s->p.v = s->v;
	s->p.n = g->n;
	s->p.chunks = s->chunks;
	s->p.pages = s->pages;
}

static void setup_release(struct setup *s)
{
	free(s->k);
	free(s->v);
	free(s->eng[0]);
	free(s->eng[1]);
	free(s->chunk_mem);
	free(s->chunks);
	free(s->pages);
}

static void eng_fill(struct setup *s, int random)
{
	for (int i = 0; i < 2; i++) {
		if (!s->eng[i])
			continue;
		if (random)
			fill_random(s->eng[i], s->eng_bytes);
		else
			memset(s->eng[i], POISON, s->eng_bytes);
	}
}

/* Copies of the engine buffers, to build what a copy should leave. */
static void eng_save(const struct setup *s, unsigned char *save[2])
{
	for (int i = 0; i < 2; i++) {
		save[i] = NULL;
		if (s->eng[i]) {
			save[i] = xalloc(s->eng_bytes);
			memcpy(save[i], s->eng[i], s->eng_bytes);
		}
	}
}

/* A row: one token's K or V in one layer of one chunk. */
struct row {
	uint32_t c;
	uint32_t l;
	unsigned kv;
	uint32_t t;
};

/* Row i of all n * layers * 2 * chunk_tokens rows, token fastest. */
static struct row row_of(const struct setup *s, size_t i)
{
	struct row r;

	r.t = (uint32_t)(i % s->g.chunk_tokens);
	i /= s->g.chunk_tokens;
	r.kv = (unsigned)(i % 2);
	i /= 2;
	r.l = (uint32_t)(i % s->g.layers);
	r.c = (uint32_t)(i / s->g.layers);
	return r;
}

static size_t rows_of(const struct setup *s)
{
	return (size_t)s->g.n * s->g.layers * 2 * s->g.chunk_tokens;
}

/* The engine buffer (0 or 1) that holds e. */
static int eng_index(const struct setup *s, const unsigned char *e)
{
	return e >= s->eng[0] && e < s->eng[0] + s->eng_bytes ? 0 : 1;
}

/*
 * Scatter random chunks into a poisoned cache for layers [lb, le), check
 * every byte of the cache against the formula, then gather into poisoned
 * chunks and check every chunk byte (and the round trip).
 */
static void run_case(const struct geom *g, uint32_t lb, uint32_t le)
{
	struct setup s;
	unsigned char *want[2];
	unsigned char *orig;
	size_t all;

	setup_init(&s, g);
	s.p.layer_begin = lb;
	s.p.layer_end = le;
	all = s.chunk_bytes * g->n;

	/* SCATTER */
	fill_random(s.chunk_mem, all);
	orig = xalloc(all);
	memcpy(orig, s.chunk_mem, all);
	eng_fill(&s, 0);
	eng_save(&s, want);
	for (size_t i = 0; i < rows_of(&s); i++) {
		struct row r = row_of(&s, i);

		if (r.l < lb || r.l >= le)
			continue;
		for (uint32_t b = 0; b < g->row_bytes; b++) {
			unsigned char *e = engine_at(&s, r.c, r.l, r.kv, r.t, b);
			int k = eng_index(&s, e);

			want[k][e - s.eng[k]] = *chunk_at(&s, r.c, r.l, r.kv, r.t, b);
		}
	}
	assert_int_equal(kv_gpu_paged_ref(&s.p, KV_GPU_SCATTER), 0);
	for (int i = 0; i < 2; i++) {
		if (s.eng[i])
			assert_memory_equal(s.eng[i], want[i], s.eng_bytes);
	}
	assert_memory_equal(s.chunk_mem, orig, all);	/* source untouched */

	/* GATHER from what the scatter left: the chunks' layers come back */
	memset(s.chunk_mem, POISON, all);
	assert_int_equal(kv_gpu_paged_ref(&s.p, KV_GPU_GATHER), 0);
	for (size_t i = 0; i < rows_of(&s); i++) {
		struct row r = row_of(&s, i);

		for (uint32_t b = 0; b < g->row_bytes; b++) {
			const unsigned char *got = chunk_at(&s, r.c, r.l, r.kv, r.t, b);

			if (r.l < lb || r.l >= le)
				assert_int_equal(*got, POISON);
			else
				assert_int_equal(*got, orig[got - s.chunk_mem]);
		}
	}
	for (int i = 0; i < 2; i++) {
		if (s.eng[i])
			assert_memory_equal(s.eng[i], want[i], s.eng_bytes);
	}

	/* GATHER from a random cache: each byte per the formula */
	eng_fill(&s, 1);
	memset(s.chunk_mem, POISON, all);
	assert_int_equal(kv_gpu_paged_ref(&s.p, KV_GPU_GATHER), 0);
	for (size_t i = 0; i < rows_of(&s); i++) {
		struct row r = row_of(&s, i);

		for (uint32_t b = 0; b < g->row_bytes; b++) {
			unsigned char got = *chunk_at(&s, r.c, r.l, r.kv, r.t, b);

			if (r.l < lb || r.l >= le)
				assert_int_equal(got, POISON);
			else
				assert_int_equal(got, *engine_at(&s, r.c, r.l, r.kv, r.t, b));
		}
	}

	free(want[0]);
	free(want[1]);
	free(orig);
	setup_release(&s);
}

static void run_kind(enum kind kind, uint32_t bs)
{
	static const uint32_t rows[] = { 16, 48, 256 };
	static const uint32_t chunk_counts[] = { 1, 3 };

	rng_state = 0x9e3779b97f4a7c15ull ^ kind;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		for (size_t nc = 0; nc < 2; nc++) {
			struct geom g = {
				.kind = kind,
				.layers = 4,
				.chunk_tokens = 32,
				.bs = bs,
				.row_bytes = rows[r],
				.n = chunk_counts[nc],
			};
			uint32_t ranges[][2] = { { 0, 4 }, { 1, 3 }, { 3, 4 }, { 0, 1 } };

			/* room for every page, plus some no page addresses */
			g.nb = g.n * (g.chunk_tokens / bs) + 5;
			for (size_t i = 0; i < 4; i++) {
				print_message("%s bs %u row %u chunks %u layers [%u, %u)\n",
					      kind_name[kind], bs, g.row_bytes, g.n,
					      ranges[i][0], ranges[i][1]);
				run_case(&g, ranges[i][0], ranges[i][1]);
			}
		}
	}
}

static void test_vllm(void **state)
{
	run_kind(VLLM, 16);
	run_kind(VLLM, 4);
}

static void test_vllm_split(void **state)
{
	run_kind(VLLM_SPLIT, 16);
	run_kind(VLLM_SPLIT, 8);
}

static void test_flashinfer(void **state)
{
	run_kind(FLASHINFER, 16);
	run_kind(FLASHINFER, 2);
}

static void test_sglang(void **state)
{
	run_kind(SGLANG, 1);
}

/*
 * HF: rows of heads segments (one head: the contiguous path through the
 * same geometry), pages a random pick and, as an engine has them, the
 * positions of consecutive chunks from an odd first one.
 */
static void test_hf(void **state)
{
	static const uint32_t shapes[][2] = {	/* row_bytes, heads */
		{ 16, 1 }, { 48, 3 }, { 256, 2 }, { 256, 16 }, { 512, 4 },
	};
	static const uint32_t ranges[][2] = { { 0, 4 }, { 1, 3 }, { 3, 4 } };

	rng_state = 0x48460000u;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		for (uint32_t n = 1; n <= 3; n += 2) {
			for (int in_order = 0; in_order < 2; in_order++) {
				struct geom g = {
					.kind = HF, .layers = 4, .chunk_tokens = 16, .bs = 1,
					.row_bytes = shapes[i][0], .heads = shapes[i][1],
					.n = n, .in_order = in_order, .first = 7,
				};

				/* capacity past the last position, as a cache has */
				g.nb = g.n * g.chunk_tokens + 11;
				for (size_t r = 0; r < 3; r++) {
					print_message("hf row %u heads %u chunks %u %s layers "
						      "[%u, %u)\n", g.row_bytes, g.heads, g.n,
						      in_order ? "from 7" : "random",
						      ranges[r][0], ranges[r][1]);
					run_case(&g, ranges[r][0], ranges[r][1]);
				}
			}
		}
	}
}

/* HF bytes where the formula of transformers puts them, spelled out once. */
static void test_hf_formula(void **state)
{
	enum { H = 2, D = 8, CAP = 5, T = 2 };	/* bf16: 16-byte heads */
	uint16_t k[H][CAP][D] __attribute__((aligned(16)));
	uint16_t v[H][CAP][D] __attribute__((aligned(16)));
	/* [layers][K, V][tokens][H][D] */
	uint16_t chunk[1][2][T][H][D] __attribute__((aligned(16)));
	void *kp[1] = { k };
	void *vp[1] = { v };
	void *cp[1] = { chunk };
	int32_t pages[T] = { 3, 1 };
	struct kv_gpu_paged p = {
		.layers = 1, .layer_begin = 0, .layer_end = 1, .chunk_tokens = T,
		.page_tokens = 1, .row_bytes = H * D * 2, .page_stride = D * 2,
		.n_pages = CAP, .head_stride = CAP * D * 2, .k = kp, .v = vp, .n = 1,
		.heads = H, .chunks = cp, .pages = pages,
	};

	for (int kv = 0; kv < 2; kv++)
		for (int t = 0; t < T; t++)
			for (int h = 0; h < H; h++)
				for (int d = 0; d < D; d++)
					chunk[0][kv][t][h][d] = (uint16_t)(kv << 12 | t << 8 |
									   h << 4 | d);
	memset(k, 0, sizeof(k));
	memset(v, 0, sizeof(v));
	assert_int_equal(kv_gpu_paged_ref(&p, KV_GPU_SCATTER), 0);
	for (int h = 0; h < H; h++) {
		for (int pos = 0; pos < CAP; pos++) {
			for (int d = 0; d < D; d++) {
				int t = pos == 3 ? 0 : pos == 1 ? 1 : -1;
				uint16_t want_k = t < 0 ? 0 : (uint16_t)(t << 8 | h << 4 | d);

				assert_int_equal(k[h][pos][d], want_k);
				assert_int_equal(v[h][pos][d], t < 0 ? 0 : want_k | 1 << 12);
			}
		}
	}
	memset(chunk, 0, sizeof(chunk));
	assert_int_equal(kv_gpu_paged_ref(&p, KV_GPU_GATHER), 0);
	for (int kv = 0; kv < 2; kv++)
		for (int t = 0; t < T; t++)
			for (int h = 0; h < H; h++)
				for (int d = 0; d < D; d++)
					assert_int_equal(chunk[0][kv][t][h][d],
							 kv << 12 | t << 8 | h << 4 | d);
}

/* A whole chunk is one page; and a page_stride with a gap after a page. */
static void test_odd_pages(void **state)
{
	struct geom g = {
		.kind = VLLM_SPLIT, .layers = 2, .chunk_tokens = 32, .bs = 32,
		.row_bytes = 32, .nb = 7, .n = 3,
	};

	rng_state = 42;
	run_case(&g, 0, 2);
	run_case(&g, 1, 2);
}

static void test_gap_stride(void **state)
{
	struct setup s;
	struct geom g = {
		.kind = SGLANG, .layers = 2, .chunk_tokens = 8, .bs = 1,
		.row_bytes = 32, .nb = 16, .n = 2,
	};
	size_t all;

	rng_state = 7;
	setup_init(&s, &g);
	/* Use half of each slot: a page of 16 bytes every 32 (16 left alone). */
	s.p.row_bytes = 16;
	all = (size_t)2 * 2 * 8 * 16 * 2;
	/* chunks now hold 16-byte rows: rebuild their pointers compactly */
	for (uint32_t c = 0; c < g.n; c++)
		s.chunks[c] = s.chunk_mem + c * all / 2;
	fill_random(s.chunk_mem, all);
	eng_fill(&s, 0);
	assert_int_equal(kv_gpu_paged_ref(&s.p, KV_GPU_SCATTER), 0);
	for (uint32_t c = 0; c < g.n; c++)
		for (uint32_t l = 0; l < 2; l++)
			for (unsigned kv = 0; kv < 2; kv++)
				for (uint32_t t = 0; t < 8; t++) {
					size_t slot = (size_t)s.pages[c * 8 + t];
					unsigned char *e = s.eng[kv] + (l * 16 + slot) * 32;
					unsigned char *ch = s.chunk_mem + c * all / 2 +
						((l * 2 + kv) * 8 + t) * 16;

					assert_memory_equal(e, ch, 16);
					for (int b = 16; b < 32; b++)
						assert_int_equal(e[b], POISON);
				}
	setup_release(&s);
}

/* A valid little descriptor for the refusals below. */
static struct setup *valid_setup(void)
{
	static struct setup s;
	struct geom g = {
		.kind = VLLM, .layers = 4, .chunk_tokens = 32, .bs = 16,
		.row_bytes = 64, .nb = 8, .n = 2,
	};

	rng_state = 99;
	setup_init(&s, &g);
	assert_int_equal(kv_gpu_paged_check(&s.p), 0);
	return &s;
}

#define REFUSED(field_change)                                                   \
	do {                                                                    \
		struct kv_gpu_paged q = s->p;                                   \
		field_change;                                                   \
		assert_int_equal(kv_gpu_paged_check(&q), -EINVAL);              \
		assert_int_equal(kv_gpu_paged_ref(&q, KV_GPU_SCATTER), -EINVAL); \
		assert_int_equal(kv_gpu_paged_ref(&q, KV_GPU_GATHER), -EINVAL); \
	} while (0)

static void test_check_geometry(void **state)
{
	struct setup *s = valid_setup();

	assert_int_equal(kv_gpu_paged_check(NULL), -EINVAL);
	assert_int_equal(kv_gpu_paged_ref(NULL, KV_GPU_SCATTER), -EINVAL);
	assert_int_equal(kv_gpu_paged_ref(&s->p, (enum kv_gpu_dir)2), -EINVAL);

	REFUSED(q.layers = 0);
	REFUSED(q.layer_end = 5);			/* past layers */
	REFUSED(q.layers = 3);				/* layer_end 4 > 3 */
	REFUSED(q.layer_begin = 2; q.layer_end = 2);	/* empty */
	REFUSED(q.layer_begin = 3; q.layer_end = 2);	/* backwards */
	REFUSED(q.page_tokens = 0);
	REFUSED(q.page_tokens = 5);			/* 32 % 5 */
	REFUSED(q.page_tokens = 64);			/* more than a chunk */
	REFUSED(q.chunk_tokens = 0);
	REFUSED(q.chunk_tokens = 40);			/* 40 % 16 */
	REFUSED(q.row_bytes = 0);
	REFUSED(q.row_bytes = 8);
	REFUSED(q.row_bytes = 72);			/* 72 % 16 */
	REFUSED(q.page_stride = 16 * 64 + 8);		/* not 16-aligned */
	REFUSED(q.page_stride = 16 * 64 - 16);		/* shorter than a page */
	REFUSED(q.page_stride = 0);
	REFUSED(q.n_pages = 0);

	/* Sizes that do not fit in 64 bits are refused, not wrapped. */
	REFUSED(q.layers = UINT32_MAX; q.layer_end = UINT32_MAX;
		q.chunk_tokens = UINT32_MAX - 15; q.page_tokens = 1;
		q.row_bytes = UINT32_MAX - 15; q.page_stride = UINT32_MAX - 15);
	REFUSED(q.page_stride = UINT64_MAX - 15);	/* pages wrap the address space */
	REFUSED(q.n = UINT32_MAX; q.layers = 1u << 20; q.layer_end = 1;	/* n chunks */
		q.chunk_tokens = 1u << 20; q.page_tokens = 1u << 20; q.row_bytes = 1u << 16;
		q.page_stride = 1ull << 36);

	/* Still valid: a page_stride larger than a page. */
	{
		struct kv_gpu_paged q = s->p;

		q.page_stride = 16 * 64 * 3;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
	}
	setup_release(s);
}

/* A valid HF descriptor: 4 heads of 64 bytes, capacity 40, 2 chunks of 16. */
static struct setup *valid_hf_setup(void)
{
	static struct setup s;
	struct geom g = {
		.kind = HF, .layers = 2, .chunk_tokens = 16, .bs = 1, .row_bytes = 256,
		.heads = 4, .nb = 40, .n = 2,
	};

	rng_state = 77;
	setup_init(&s, &g);
	assert_int_equal(kv_gpu_paged_check(&s.p), 0);
	return &s;
}

static void test_check_hf(void **state)
{
	struct setup *s = valid_hf_setup();

	REFUSED(q.heads = 3);				/* 256 % 3 */
	REFUSED(q.heads = 32);				/* 8-byte segments */
	REFUSED(q.heads = 8; q.row_bytes = 64);		/* 8-byte segments again */
	REFUSED(q.page_tokens = 2);			/* a page is one token */
	REFUSED(q.page_tokens = 16);
	REFUSED(q.head_stride = 40 * 64 + 8);		/* not 16-aligned */
	REFUSED(q.head_stride = 48);			/* shorter than a segment */
	REFUSED(q.head_stride = 0);
	REFUSED(q.page_stride = 72);			/* not 16-aligned */
	REFUSED(q.page_stride = 48);			/* shorter than a segment */
	REFUSED(q.page_stride = 0);
	/* The last segment of the last page past the address space. */
	REFUSED(q.head_stride = UINT64_MAX / 2 & ~15ull);
	REFUSED(q.head_stride = UINT64_MAX - 15; q.heads = 2);
	REFUSED(q.head_stride = 1ull << 62; q.heads = 16; q.row_bytes = 16 * 16);
	REFUSED(q.page_stride = UINT64_MAX - 15);
	{
		struct kv_gpu_paged q = s->p;
		int32_t saved = s->pages[0];

		s->pages[0] = 40;			/* == n_pages */
		assert_int_equal(kv_gpu_paged_check(&q), -EINVAL);
		s->pages[0] = 39;			/* the last position */
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		s->pages[0] = saved;
	}
	{
		/* Still valid: heads 1 (and 0) is the contiguous row, head_stride
		 * ignored; a page_stride past a segment; one 16-byte head. */
		struct kv_gpu_paged q = s->p;

		q.heads = 1;
		q.head_stride = 8;
		q.page_stride = 256;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		q.heads = 0;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		q = s->p;
		q.page_stride = 128;
		q.head_stride = 64;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		q = s->p;
		q.heads = 16;
		q.page_stride = 16;
		q.head_stride = 16 * 40;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
	}
	setup_release(s);
}

static void test_check_pointers(void **state)
{
	struct setup *s = valid_setup();
	void *saved;

	REFUSED(q.k = NULL);
	REFUSED(q.v = NULL);
	REFUSED(q.chunks = NULL);
	REFUSED(q.pages = NULL);

	saved = s->k[2];
	s->k[2] = NULL;
	REFUSED((void)0);
	s->k[2] = (char *)saved + 8;			/* misaligned */
	REFUSED((void)0);
	{
		/* Layers outside the range are not looked at. */
		struct kv_gpu_paged q = s->p;

		q.layer_begin = 3;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		q.layer_begin = 0;
		q.layer_end = 2;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
	}
	s->k[2] = saved;

	saved = s->v[3];
	s->v[3] = NULL;
	REFUSED((void)0);
	s->v[3] = (char *)saved + 4;
	REFUSED((void)0);
	s->v[3] = saved;

	saved = s->chunks[1];
	s->chunks[1] = NULL;
	REFUSED((void)0);
	s->chunks[1] = (char *)saved + 1;
	REFUSED((void)0);
	s->chunks[1] = (char *)saved + 16;		/* aligned is fine */
	assert_int_equal(kv_gpu_paged_check(&s->p), 0);
	s->chunks[1] = saved;
	assert_int_equal(kv_gpu_paged_check(&s->p), 0);
	setup_release(s);
}

static void test_check_pages(void **state)
{
	struct setup *s = valid_setup();
	int32_t saved = s->pages[3];		/* the last id: 2 chunks x 2 pages */

	s->pages[3] = 8;			/* == n_pages */
	REFUSED((void)0);
	s->pages[3] = -1;
	REFUSED((void)0);
	s->pages[3] = INT32_MIN;
	REFUSED((void)0);
	s->pages[3] = INT32_MAX;
	REFUSED((void)0);
	s->pages[3] = 7;			/* the last page */
	assert_int_equal(kv_gpu_paged_check(&s->p), 0);
	s->pages[0] = 0;
	s->pages[3] = 0;			/* repeats are the caller's business */
	assert_int_equal(kv_gpu_paged_check(&s->p), 0);
	s->pages[3] = saved;
	{
		/* With fewer chunks, an id past the call's table is not read. */
		struct kv_gpu_paged q = s->p;

		s->pages[3] = -5;
		q.n = 1;
		assert_int_equal(kv_gpu_paged_check(&q), 0);
		s->pages[3] = saved;
	}
	setup_release(s);
}

/* n == 0 is a valid no-op: no array is read, nothing is written. */
static void test_empty(void **state)
{
	struct setup *s = valid_setup();
	struct kv_gpu_paged q = s->p;

	q.n = 0;
	q.k = NULL;
	q.v = NULL;
	q.chunks = NULL;
	q.pages = NULL;
	assert_int_equal(kv_gpu_paged_check(&q), 0);
	assert_int_equal(kv_gpu_paged_ref(&q, KV_GPU_SCATTER), 0);
	assert_int_equal(kv_gpu_paged_ref(&q, KV_GPU_GATHER), 0);
	q.row_bytes = 8;			/* the geometry is still checked */
	assert_int_equal(kv_gpu_paged_check(&q), -EINVAL);
	setup_release(s);
}

static void test_chunk_bytes(void **state)
{
	struct kv_gpu_paged q = {
		.layers = 32, .chunk_tokens = 256, .row_bytes = 8 * 128 * 2,
	};

	assert_int_equal(kv_gpu_paged_chunk_bytes(&q), 32ull << 20);
	q.layers = UINT32_MAX;
	q.chunk_tokens = UINT32_MAX;
	q.row_bytes = UINT32_MAX;
	assert_int_equal(kv_gpu_paged_chunk_bytes(&q), 0);	/* would wrap */
	assert_int_equal(kv_gpu_paged_chunk_bytes(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vllm),
		cmocka_unit_test(test_vllm_split),
		cmocka_unit_test(test_flashinfer),
		cmocka_unit_test(test_sglang),
		cmocka_unit_test(test_hf),
		cmocka_unit_test(test_hf_formula),
		cmocka_unit_test(test_odd_pages),
		cmocka_unit_test(test_gap_stride),
		cmocka_unit_test(test_check_geometry),
		cmocka_unit_test(test_check_hf),
		cmocka_unit_test(test_check_pointers),
		cmocka_unit_test(test_check_pages),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_chunk_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
