/*
 * kvc_paged.c - libkvc's paged paths: chunks scattered into an engine's paged
 * KV cache (vLLM, FlashInfer, SGLang, transformers; struct kvc_layout) by
 * a get, whole or a range of layers at a time, and gathered out of it by
 * a put.
 *
 * A paged get or put is an op: its chunks pinned (get) or allocated (put)
 * and sorted by source tier, so that the DRAM chunks go in one kernel
 * launch and the HBM chunks in another (kernels/kv_gpu.h). The op holds
 * its chunks until its copies are done, as the contiguous paths do
 * (kvc_gpu.c: the pending records, the completion thread, the locking).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvc.h"
#include "client/kvc_gpu_int.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "lib/proto.h"

/* Layouts of tensors indexed by token: a page is one token. */
static bool per_token(const struct kvc_layout *l)
{
	return l->kind == KVC_LAYOUT_SGLANG || l->kind == KVC_LAYOUT_HF;
}

size_t kvc_layout_chunk_bytes(const struct kvc_layout *l)
{
	uint64_t row;

	if (!l || !l->layers || !l->block_size || !l->kv_heads || !l->head_dim ||
	    !l->elem_bytes || !l->chunk_tokens || l->chunk_tokens % l->block_size ||
	    (per_token(l) && l->block_size != 1) || l->kind > KVC_LAYOUT_HF)
		return 0;
	row = (uint64_t)l->kv_heads * l->head_dim * l->elem_bytes;
	if (row % 16 || row > UINT32_MAX)
		return 0;
	/* HF: each head of a token is a piece of its own (kv_gpu.h) */
	if (l->kind == KVC_LAYOUT_HF && ((uint64_t)l->head_dim * l->elem_bytes) % 16)
		return 0;
	return (size_t)((uint64_t)l->layers * 2 * l->chunk_tokens * row);
}

/*
 * The kernel-side description of a layout, without chunks: k and v arrays
 * of layers pointers each, allocated here (free *kv).
 */
static int layout_desc(const struct kvc_layout *l, struct kv_gpu_paged *p, void ***kv)
{
	uint64_t row = (uint64_t)l->kv_heads * l->head_dim * l->elem_bytes;
	uint64_t stride = (uint64_t)l->block_size * row;
	void **k, **v;

	if (!kvc_layout_chunk_bytes(l) || !l->k ||
	    ((l->kind == KVC_LAYOUT_VLLM_SPLIT || per_token(l)) && !l->v))
		return -EINVAL;
	k = calloc(2 * (size_t)l->layers, sizeof(*k));
	if (!k)
		return -ENOMEM;
	v = k + l->layers;
	for (uint32_t i = 0; i < l->layers; i++) {
		char *base = l->k[i];

		if (!base)
			continue;	/* kv_gpu_paged_check() refuses it */
		switch (l->kind) {
		case KVC_LAYOUT_VLLM:
			k[i] = base;
			v[i] = base + (uint64_t)l->num_blocks * stride;
			break;
		case KVC_LAYOUT_FLASHINFER:
			k[i] = base;
			v[i] = base + stride;
			break;
		default:
			k[i] = base;
			v[i] = l->v[i];
			break;
		}
	}
	memset(p, 0, sizeof(*p));
	p->layers = l->layers;
	p->layer_begin = 0;
	p->layer_end = l->layers;
	p->chunk_tokens = l->chunk_tokens;
	p->page_tokens = l->block_size;
	p->row_bytes = (uint32_t)row;
	p->page_stride = l->kind == KVC_LAYOUT_FLASHINFER ? 2 * stride : stride;
	p->n_pages = l->num_blocks;
	if (l->kind == KVC_LAYOUT_HF) {
		/* [1, H, num_blocks, D]: token t's head h at (h * num_blocks + t) * D */
		uint64_t head = (uint64_t)l->head_dim * l->elem_bytes;

		p->heads = l->kv_heads;
		p->page_stride = head;
		p->head_stride = (uint64_t)l->num_blocks * head;
	}
	p->k = k;
	p->v = v;
	*kv = k;
	return 0;
}

static int ctx_for(struct kvc_gpu *g, size_t chunk_bytes)
{
	if (g->ctx && g->staging >= chunk_bytes)
		return 0;
	kv_gpu_ctx_close(g->ctx);	/* waits for its work */
	g->ctx = NULL;
	g->staging = 0;
	if (kv_gpu_ctx_open(&g->ctx, chunk_bytes))
		return kv_gpu_ctx_open(&g->ctx, 0) ? -KVC_EGPU : 0;
	g->staging = chunk_bytes;
	return 0;
}

/*
 * AUTO, from kvbench --gpu on an H100 (docs/benchmarks.md): whole chunks
 * go faster STAGED (0.98 of the H2D ceiling against 0.92 for the zero-copy
 * kernel, whose reads over PCIe keep fewer bytes in flight), a layer at a
 * time faster ZEROCOPY (one launch reads every chunk's slice; staged, it is
 * one 1 MiB copy per chunk, too small for the link).
 */
/*
 * AUTO: STAGED for whole chunks, and for rows split per head (LAYOUT_HF) at
 * any layer range: a kernel reading the mapping in place fetches each
 * head's piece (128-256 bytes) over PCIe on its own, measured at 18 GB/s on
 * the H100 against 48 GB/s staged (1B shape, issue 12). Else ZEROCOPY layer
 * by layer.
 */
static enum kv_gpu_mode dram_mode(const struct kvc_gpu *g, bool whole, bool split)
{
	enum kvc_gpu_mode m = g->mode;

	if (m == KVC_GPU_AUTO)
		m = whole || split ? KVC_GPU_STAGED : KVC_GPU_ZEROCOPY;
	return m == KVC_GPU_STAGED && g->staging ? KV_GPU_STAGED : KV_GPU_ZEROCOPY;
}

/*
 * A paged get or put in progress: its chunks by source tier (DRAM chunks
 * and HBM chunks go in one launch each), with their page tables.
 */
struct kvc_paged_op {
	struct kvc_gpu *g;
	struct kv_gpu_stream *s;
	uint32_t ns;
	struct kv_gpu_paged p;		/* the layout; chunks set per group */
	void **kv;			/* p.k and p.v */
	size_t ppc;			/* pages per chunk */
	struct group {
		uint32_t n;
		void **chunks;
		int32_t *pages;
	} grp[2];			/* [0] DRAM, [1] HBM */
	struct kvc_key *held;		/* pinned (get) or allocated (put) */
	size_t n_held;
	bool unpinned;			/* a DRAM chunk not page-locked: no kernel
					 * may read it in place */
};

static void op_free(struct kvc_paged_op *op)
{
	if (!op)
		return;
	for (int i = 0; i < 2; i++) {
		free(op->grp[i].chunks);
		free(op->grp[i].pages);
	}
	free(op->kv);
	free(op->held);
	free(op);
}

static struct kvc_paged_op *op_new(struct kvc_gpu *g, const struct kvc_layout *l,
				   uint32_t ns, kvc_stream_t stream, size_t n, int *err)
{
	struct kvc_paged_op *op = calloc(1, sizeof(*op));

	*err = -ENOMEM;
	if (!op)
		return NULL;
	op->g = g;
	op->s = stream;
	op->ns = ns;
	*err = layout_desc(l, &op->p, &op->kv);
	if (*err) {
		free(op);
		return NULL;
	}
	op->ppc = l->chunk_tokens / l->block_size;
	for (int i = 0; i < 2; i++) {
		op->grp[i].chunks = calloc(n ? n : 1, sizeof(void *));
		op->grp[i].pages = calloc((n ? n : 1) * op->ppc, sizeof(int32_t));
	}
	op->held = calloc(n ? n : 1, sizeof(*op->held));
	if (!op->grp[0].chunks || !op->grp[1].chunks || !op->grp[0].pages ||
	    !op->grp[1].pages || !op->held) {
		op_free(op);
		*err = -ENOMEM;
		return NULL;
	}
	*err = ctx_for(g, kv_gpu_paged_chunk_bytes(&op->p));	/* staging for it */
	if (*err) {
		op_free(op);
		return NULL;
	}
	return op;
}

/* Add a chunk at ptr in tier with its page table to the op's groups. */
static int op_add(struct kvc_paged_op *op, void *ptr, uint8_t tier, const int32_t *pages)
{
	struct group *gr = &op->grp[tier == KVC_TIER_HBM];

	if (!pages)
		return -EINVAL;
	for (size_t j = 0; j < op->ppc; j++)
		if (pages[j] < 0 || (uint64_t)pages[j] >= op->p.n_pages)
			return -EINVAL;
	memcpy(gr->pages + gr->n * op->ppc, pages, op->ppc * sizeof(int32_t));
	gr->chunks[gr->n++] = ptr;
	if (tier == KVC_TIER_DRAM &&
	    !kvci_dram_pin(op->g, (uint64_t)((char *)ptr - op->g->dram),
			   kv_gpu_paged_chunk_bytes(&op->p)))
		op->unpinned = true;
	return 0;
}

/* Queue layers [lb, le) of every chunk of the op, one launch per group. */
static int op_copy(struct kvc_paged_op *op, uint32_t lb, uint32_t le, enum kv_gpu_dir dir)
{
	for (int i = 0; i < 2; i++) {
		struct group *gr = &op->grp[i];
		struct kv_gpu_paged p = op->p;
		int ret;

		if (!gr->n)
			continue;
		p.layer_begin = lb;
		p.layer_end = le;
		p.n = gr->n;
		p.chunks = gr->chunks;
		p.pages = gr->pages;
		ret = kv_gpu_paged_copy(op->g->ctx, op->s, &p, dir,
					i ? KV_GPU_ZEROCOPY : op->unpinned ? KV_GPU_STAGED :
					dram_mode(op->g, lb == 0 && le == op->p.layers,
						  op->p.heads > 1));
		if (ret)
			return ret;
	}
	return 0;
}

/* Pin the chunks of d and sort them into op's groups. Returns how many. */
static int paged_pin(struct kvc_paged_op *op, struct kvc_paged_desc *d, size_t n)
{
	struct kvc_gpu *g = op->g;
	struct kvc_loc *locs = malloc((n ? n : 1) * sizeof(*locs));
	uint64_t bytes = kv_gpu_paged_chunk_bytes(&op->p);
	int ret, found = 0;

	if (!locs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		op->held[i] = d[i].key;
	ret = kvci_pin(g->c, op->ns, op->held, n, locs, g->hbm ? KV_PIN_GPU : 0);
	if (ret) {
		free(locs);
		return ret;
	}
	for (size_t i = 0; i < n; i++) {
		d[i].status = locs[i].status;
		d[i].tier = locs[i].tier;
		if (d[i].status)
			continue;
		op->held[op->n_held++] = d[i].key;
		if (!locs[i].ptr)
			d[i].status = -KVC_ENOTIER;
		else if (locs[i].bytes != bytes)
			d[i].status = -EMSGSIZE;	/* another layout's chunk */
		else
			d[i].status = op_add(op, (void *)locs[i].ptr, locs[i].tier,
					     d[i].pages);
		found += d[i].status == 0;
	}
	free(locs);
	return found;
}

int kvc_get_paged_begin(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
			struct kvc_paged_desc *d, size_t n, kvc_stream_t stream,
			struct kvc_paged_op **out)
{
	struct kvc_paged_op *op;
	struct kvc_gpu *g;
	int ret;

	if (n > INT32_MAX || (n && !d) || !out)
		return -EINVAL;
	ret = kvci_gpu_get(c, &g);
	if (ret)
		return ret;
	pthread_mutex_lock(&g->lock);
	op = op_new(g, l, ns, stream, n, &ret);
	if (!op)
		goto out;
	ret = paged_pin(op, d, n);
	if (ret < 0) {
		if (op->n_held)
			kvc_release(c, ns, op->held, op->n_held, NULL);
		op_free(op);
		goto out;
	}
	*out = op;
out:
	pthread_mutex_unlock(&g->lock);
	return ret;
}

int kvc_get_paged_layers(struct kvc_paged_op *op, uint32_t layer_begin,
			 uint32_t layer_end, kvc_event_t done)
{
	int ret;

	if (!op || layer_begin >= layer_end || layer_end > op->p.layers)
		return -EINVAL;
	pthread_mutex_lock(&op->g->lock);
	ret = op_copy(op, layer_begin, layer_end, KV_GPU_SCATTER);
	if (!ret && done)
		ret = kv_gpu_event_record(done, op->s);
	pthread_mutex_unlock(&op->g->lock);
	return ret;
}

int kvc_get_paged_end(struct kvc_paged_op *op)
{
	struct kvc_gpu *g;
	int ret;

	if (!op)
		return -EINVAL;
	g = op->g;
	pthread_mutex_lock(&g->lock);
	ret = kvci_pending_add(g, op->s, op->ns, false, op->held, op->n_held);
	pthread_mutex_unlock(&g->lock);
	op_free(op);
	return ret;
}

int kvc_get_paged(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
		  struct kvc_paged_desc *d, size_t n, kvc_stream_t stream,
		  kvc_event_t done)
{
	struct kvc_paged_op *op;
	int found, ret;

	found = kvc_get_paged_begin(c, ns, l, d, n, stream, &op);
	if (found < 0)
		return found;
	ret = kvc_get_paged_layers(op, 0, l->layers, done);
	if (ret)	/* nothing of it reached the engine reliably */
		for (size_t i = 0; i < n; i++)
			if (d[i].status == 0)
				d[i].status = ret;
	kvc_get_paged_end(op);
	return ret ? ret : found;
}

int kvc_put_paged(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
		  struct kvc_paged_desc *d, size_t n, unsigned flags,
		  kvc_stream_t stream, kvc_event_t done)
{
	struct kvc_put_desc *pd = NULL;
	struct kvc_paged_op *op = NULL;
	struct kvc_gpu *g;
	int ret;

	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	ret = kvci_gpu_get(c, &g);
	if (ret)
		return ret;
	pthread_mutex_lock(&g->lock);
	op = op_new(g, l, ns, stream, n, &ret);
	if (!op)
		goto out;
	pd = calloc(n ? n : 1, sizeof(*pd));
	if (!pd) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		pd[i].key = d[i].key;
		pd[i].parent = d[i].parent;
		pd[i].has_parent = d[i].has_parent;
		pd[i].tokens = l->chunk_tokens;
		pd[i].position = d[i].position;
		pd[i].data = d[i].pages;	/* unused by put_common */
		pd[i].bytes = kv_gpu_paged_chunk_bytes(&op->p);
	}
	/* Reserve and sort by tier, then one gather per tier; the commits
	 * wait for the gathers (so not put_common(), which holds the commits
	 * right after its own copies). */
	{
		void **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
		uint8_t *tiers = calloc(n ? n : 1, 1);
		size_t nk = 0;

		if (!ptrs || !tiers) {
			free(ptrs);
			free(tiers);
			ret = -ENOMEM;
			goto out;
		}
		ret = kvci_alloc(c, ns, pd, n, ptrs, tiers,
				 (flags & KVC_PUT_HBM) && g->hbm ? KV_ALLOC_HBM : 0);
		for (size_t i = 0; ret >= 0 && i < n; i++) {
			d[i].status = pd[i].status;
			d[i].tier = tiers[i];
			if (!ptrs[i])
				continue;
			d[i].status = op_add(op, ptrs[i], tiers[i], d[i].pages);
			if (d[i].status)
				kvc_abort(c, ns, &d[i].key, 1, NULL);
			else
				op->held[nk++] = d[i].key;
		}
		free(ptrs);
		free(tiers);
		if (ret < 0)
			goto out;
		op->n_held = nk;
		ret = op_copy(op, 0, l->layers, KV_GPU_GATHER);
		if (ret) {	/* not queued (or not all): take nothing in */
			kv_gpu_stream_sync(op->s);
			kvc_abort(c, ns, op->held, nk, NULL);
			for (size_t i = 0; i < n; i++)
				if (d[i].status == 0)
					d[i].status = ret;
			goto out;
		}
		ret = kvci_pending_add(g, op->s, ns, true, op->held, nk);
		if (!ret && done)
			ret = kv_gpu_event_record(done, op->s);
		if (!ret)
			ret = (int)nk;
	}
out:
	pthread_mutex_unlock(&g->lock);
	op_free(op);
	free(pd);
	return ret;
}
