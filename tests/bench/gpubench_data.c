/*
 * gpubench_data.c - kvbench --gpu's bytes: the pattern every chunk holds
 * (a hash of chunk, layer, K or V, token and word, so a row in the wrong
 * place never matches) and the engine's paged layouts (vLLM, SGLang) in
 * device memory, filled from the pattern and checked against it, whole or
 * a few pages at a time, with the pages no chunk owns still poisoned.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/bench/gpubench_int.h"
#include "tests/lib/rng.h"

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
		w[i] = kvt_hash64(PAT_SEED ^ (tag | i));
}

/* A whole chunk, layer-major [layers][K, V][tokens][row], as the store keeps it. */
void pat_chunk(const struct shape *sh, void *buf, uint64_t idx)
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
bool rows_ok(struct gb *b, const void *buf, uint64_t idx, unsigned l,
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

size_t slice_off(const struct shape *sh, unsigned l, unsigned kv)
{
	return (size_t)(l * 2 + kv) * sh->chunk_tokens * sh->row_bytes;
}

bool chunk_ok(struct gb *b, const void *buf, uint64_t idx, const char *what)
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

int lay_setup(struct gb *b, struct lay *y, enum kvc_layout_kind kind)
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

void lay_release(struct lay *y)
{
	kv_gpu_free(y->dev);
	free(y->pages);
	free(y->owner);
}

/* Fill the layout as if chunk j (content base + j) had been got into it. */
int lay_fill(struct gb *b, struct lay *y, uint64_t base)
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
int lay_check_all(struct gb *b, const struct lay *y, uint64_t base, const char *what)
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
int lay_check_some(struct gb *b, const struct lay *y, uint64_t base, const char *what)
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
