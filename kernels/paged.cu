/*
 * paged.cu - paged scatter/gather between chunks and an engine's paged KV
 * cache (kv_gpu.h, "paged copies"), and the context that feeds it.
 *
 * Work item: one (chunk, layer, K or V, page): page_tokens * row_bytes
 * bytes between chunk word ((l * 2 + kv) * ppc + p) * item_words and
 * engine word pages[c * ppc + p] * page_stride / 16 of (kv ? v : k)[l].
 * Items are numbered with the page fastest, then K/V, layer, chunk, so
 * consecutive items are consecutive bytes of a chunk.
 *
 * Split rows (heads > 1, page_tokens 1: Hugging Face's [1, H, cap, D]):
 * an item is one (chunk, layer, K or V, page, segment), seg = row_bytes /
 * heads bytes between chunk word ((l * 2 + kv) * ppc + p) * row_words +
 * s * item_words and engine word (pages[c * ppc + p] * page_stride +
 * s * head_stride) / 16. The segment is the fastest index, so consecutive
 * items are still consecutive bytes of a chunk. These run in their own
 * instances of the kernel (template flag SPLIT): the contiguous layouts
 * keep the index math they had, with no division by heads.
 *
 * Geometry: blocks of 256 threads, cut into groups of G threads (G a power
 * of two, 1..32: the smallest with G * 8 >= the item's 16-byte words). A
 * group copies one item at a time, each thread holding 8 independent
 * 16-byte loads in flight before its stores, lanes on consecutive words
 * (coalesced on both sides); groups walk the items grid-stride. The grid
 * is what stays resident (SMs * blocks per SM), fewer when there is less
 * work. So a 2 KiB SGLang token row is one 16-thread group's single pass,
 * a 32 KiB vLLM block a warp's 8 passes, a 16-byte row one thread's, and
 * a 256-byte segment of a split row (one head of 128 bf16) two threads'.
 * Enough loads are in flight to cover PCIe latency when the chunk is
 * registered host memory read in place (ZEROCOPY). The index type is
 * 32-bit when the item count allows (the per-item divisions are cheaper).
 *
 * Alignment preconditions (kv_gpu_paged_check() enforces them): every
 * chunk, K and V base is 16-byte aligned, row_bytes and page_stride are
 * multiples of 16 (split rows: seg and head_stride too), so every access
 * is one aligned uint4.
 *
 * Per call, the pointer arrays and page ids are packed into a pinned slot
 * of a ring and copied to the slot's device twin on the caller's stream
 * ahead of the kernel; an event recorded after the call's last kernel
 * guards the slot, and reusing it waits on that event. STAGED copies go
 * through two device staging buffers on the context's copy stream, with
 * events both ways (filled: producer -> consumer, freed: consumer ->
 * next producer). Nothing here synchronizes the device; a call blocks on
 * the host only when its slot's call from NSLOT calls ago has not
 * finished, or when a slot grows.
 *
 * Where kv_gpu.h leaves room: STAGED with every chunk in device memory
 * runs the one-kernel path (nothing to stage); STAGED also takes pageable
 * host chunks (the copy engine reads them; ZEROCOPY refuses them, since a
 * kernel would fault); STAGED needs staging for the layer slice even when
 * n == 0; a call on another device than the context's is -EINVAL.
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_util.cuh"

#define THREADS		256	/* threads per block */
#define UNROLL		8	/* 16-byte loads in flight per thread */
#define NSLOT		128	/* calls whose tables may be in flight: a layer-by-layer
				 * get of a 128-layer model queues without blocking */
#define SLOT_INIT	(32u << 10)	/* first size of a slot's tables */

struct paged_args {
	uint4 *const *k;	/* [nl]: K of layer layer_begin + i */
	uint4 *const *v;	/* [nl] */
	uint4 *const *chunks;	/* [n], or NULL: the one chunk chunk0 */
	uint4 *chunk0;
	const int32_t *pages;	/* [n * ppc] */
	uint64_t items;		/* n * nl * 2 * ppc (* heads when split) */
	uint64_t item_words;	/* page_tokens * row_bytes / 16 (split: seg / 16) */
	uint64_t stride_words;	/* page_stride / 16 */
	uint32_t ppc;		/* pages per chunk */
	uint32_t nl;		/* layers copied */
	uint32_t l0;		/* layer of item layer 0 in the chunk's layout */
	int gather;		/* engine -> chunk */
	/* split rows only (after the rest: the contiguous kernels read the
	 * fields above at the offsets they always had) */
	uint32_t heads;		/* segments a row; 1 when not split */
	uint64_t row_words;	/* row_bytes / 16 */
	uint64_t head_words;	/* head_stride / 16 */
};

/*
 * One item: n words from src to dst by the G threads of a group, lane
 * being this thread's place in it. The main loop is unpredicated (G and
 * UNROLL are constants, so the 8 addresses are one base plus immediate
 * offsets); a partial last round is predicated. Loads and stores are
 * explicitly global and streaming (.cs): every byte is touched once, and
 * a generic store would cost an address-space check.
 */
template <int G>
static __device__ __forceinline__ void copy_item(uint4 *dst, const uint4 *src, uint64_t n,
						 uint32_t lane)
{
	uint64_t w = lane;
	uint4 r[UNROLL];

	for (; w + (UNROLL - 1) * G < n; w += G * UNROLL) {
#pragma unroll
		for (int j = 0; j < UNROLL; j++)
			r[j] = __ldcs(src + w + j * G);
#pragma unroll
		for (int j = 0; j < UNROLL; j++)
			__stcs(dst + w + j * G, r[j]);
	}
	if (w >= n)
		return;
#pragma unroll
	for (int j = 0; j < UNROLL; j++) {
		if (w + j * G < n)
			r[j] = __ldcs(src + w + j * G);
	}
#pragma unroll
	for (int j = 0; j < UNROLL; j++) {
		if (w + j * G < n)
			__stcs(dst + w + j * G, r[j]);
	}
}

/*
 * I: the item index type; G: threads per item; SPLIT: rows cut into
 * segments on the engine side (heads > 1). Without SPLIT the code is the
 * contiguous layouts' own, the segment terms compiled out.
 */
template <typename I, int G, bool SPLIT>
static __global__ void __launch_bounds__(THREADS) paged_kernel(const struct paged_args a)
{
	const uint32_t lane = threadIdx.x % G;
	const I first = (I)(((uint64_t)blockIdx.x * THREADS + threadIdx.x) / G);
	const I step = (I)((uint64_t)gridDim.x * THREADS / G);

	for (I it = first; it < (I)a.items; it += step) {
		I ip = it;		/* the item's page-level index */
		uint32_t sg = 0;	/* its segment */

		if (SPLIT) {
			ip = it / a.heads;
			sg = (uint32_t)(it - ip * a.heads);
		}
		const I q = ip / a.ppc;
		const uint32_t pg = (uint32_t)(ip - q * a.ppc);
		const uint32_t kv = (uint32_t)q & 1;
		const I r = q >> 1;
		const I c = r / a.nl;
		const uint32_t li = (uint32_t)(r - c * a.nl);
		uint4 *chunk = a.chunks ? a.chunks[c] : a.chunk0;
		uint4 *base = kv ? a.v[li] : a.k[li];
		const int32_t page = a.pages[(uint64_t)c * a.ppc + pg];
		uint4 *e = base + (uint64_t)page * a.stride_words;
		uint4 *ch = chunk + ((((uint64_t)a.l0 + li) * 2 + kv) * a.ppc + pg) *
			(SPLIT ? a.row_words : a.item_words);

		if (SPLIT) {
			e += (uint64_t)sg * a.head_words;
			ch += (uint64_t)sg * a.item_words;
		}
		if (a.gather)
			copy_item<G>(ch, e, a.item_words, lane);
		else
			copy_item<G>(e, ch, a.item_words, lane);
	}
}

typedef void (*paged_fn)(const struct paged_args);

#define PAGED_ROW(I, S)								\
	{ paged_kernel<I, 1, S>, paged_kernel<I, 2, S>, paged_kernel<I, 4, S>,	\
	  paged_kernel<I, 8, S>, paged_kernel<I, 16, S>, paged_kernel<I, 32, S> }

/* [split rows][index type: 0 32-bit, 1 64-bit][log2 G] */
static const paged_fn kernels[2][2][6] = {
	{ PAGED_ROW(uint32_t, false), PAGED_ROW(uint64_t, false) },
	{ PAGED_ROW(uint32_t, true), PAGED_ROW(uint64_t, true) },
};

struct slot {
	void *host;		/* pinned: the call's tables, packed */
	void *dev;		/* their device copy, read by the kernels */
	size_t cap;		/* bytes of each */
	cudaEvent_t done;	/* after the last kernel that read dev */
};

struct kv_gpu_ctx {
	int dev;
	int sms;
	int occ[2][2][6];	/* resident blocks per SM of kernels[][][] */
	cudaStream_t copy;	/* staged copies */
	cudaEvent_t mark;	/* a point on one stream that another waits for */
	void *stage[2];		/* STAGED: device staging buffers */
	size_t stage_bytes;
	cudaEvent_t filled[2];	/* stage[b] written by its producer */
	cudaEvent_t freed[2];	/* stage[b] read by its consumer: reusable */
	unsigned next_stage;
	struct slot slot[NSLOT];
	unsigned next_slot;
};

static int event_new(cudaEvent_t *e)
{
	return kv_cuda_err(cudaEventCreateWithFlags(e, cudaEventDisableTiming),
			   "cudaEventCreate");
}

static void slot_free(struct slot *sl)
{
	if (sl->host)
		(void)kv_cuda_err(cudaFreeHost(sl->host), "cudaFreeHost");
	if (sl->dev)
		(void)kv_cuda_err(cudaFree(sl->dev), "cudaFree");
	sl->host = NULL;
	sl->dev = NULL;
	sl->cap = 0;
}

/* Give an idle slot (its event reached) room for need bytes. */
static int slot_grow(struct slot *sl, size_t need)
{
	size_t cap = sl->cap ? sl->cap : SLOT_INIT;
	int ret;

	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	slot_free(sl);
	ret = kv_cuda_err(cudaHostAlloc(&sl->host, cap, cudaHostAllocDefault),
			  "cudaHostAlloc");
	if (ret)
		goto out_free;
	ret = kv_cuda_err(cudaMalloc(&sl->dev, cap), "cudaMalloc");
	if (ret)
		goto out_free;
	sl->cap = cap;
	return 0;

out_free:
	slot_free(sl);
	return ret;
}

extern "C" void kv_gpu_ctx_close(struct kv_gpu_ctx *ctx)
{
	if (!ctx)
		return;
	/* Our own work: staged copies, then whatever read our buffers. */
	if (ctx->copy)
		(void)kv_cuda_err(cudaStreamSynchronize(ctx->copy), "cudaStreamSynchronize");
	for (int b = 0; b < 2; b++) {
		if (ctx->freed[b])
			(void)kv_cuda_err(cudaEventSynchronize(ctx->freed[b]),
					  "cudaEventSynchronize");
	}
	for (int i = 0; i < NSLOT; i++) {
		struct slot *sl = &ctx->slot[i];

		if (sl->done) {
			(void)kv_cuda_err(cudaEventSynchronize(sl->done), "cudaEventSynchronize");
			(void)kv_cuda_err(cudaEventDestroy(sl->done), "cudaEventDestroy");
		}
		slot_free(sl);
	}
	for (int b = 0; b < 2; b++) {
		if (ctx->stage[b])
			(void)kv_cuda_err(cudaFree(ctx->stage[b]), "cudaFree");
		if (ctx->filled[b])
			(void)kv_cuda_err(cudaEventDestroy(ctx->filled[b]), "cudaEventDestroy");
		if (ctx->freed[b])
			(void)kv_cuda_err(cudaEventDestroy(ctx->freed[b]), "cudaEventDestroy");
	}
	if (ctx->mark)
		(void)kv_cuda_err(cudaEventDestroy(ctx->mark), "cudaEventDestroy");
	if (ctx->copy)
		(void)kv_cuda_err(cudaStreamDestroy(ctx->copy), "cudaStreamDestroy");
	free(ctx);
}

extern "C" int kv_gpu_ctx_open(struct kv_gpu_ctx **out, size_t staging_bytes)
{
	struct kv_gpu_ctx *ctx;
	int ret;

	if (!out)
		return -EINVAL;
	ctx = (struct kv_gpu_ctx *)calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ret = kv_cuda_err(cudaGetDevice(&ctx->dev), "cudaGetDevice");
	if (ret)
		goto out_close;
	ret = kv_cuda_err(cudaDeviceGetAttribute(&ctx->sms, cudaDevAttrMultiProcessorCount,
						 ctx->dev), "cudaDeviceGetAttribute");
	if (ret)
		goto out_close;
	for (int sp = 0; sp < 2; sp++) {
		for (int t = 0; t < 2; t++) {
			for (int g = 0; g < 6; g++) {
				int *occ = &ctx->occ[sp][t][g];

				ret = kv_cuda_err(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
							occ, kernels[sp][t][g], THREADS, 0),
						  "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
				if (ret)
					goto out_close;
				if (*occ < 1)
					*occ = 1;
			}
		}
	}
	ret = kv_cuda_err(cudaStreamCreateWithFlags(&ctx->copy, cudaStreamNonBlocking),
			  "cudaStreamCreate");
	if (ret)
		goto out_close;
	ret = event_new(&ctx->mark);
	for (int b = 0; b < 2 && !ret; b++) {
		ret = event_new(&ctx->filled[b]);
		if (!ret)
			ret = event_new(&ctx->freed[b]);
		if (!ret && staging_bytes)
			ret = kv_cuda_err(cudaMalloc(&ctx->stage[b], staging_bytes),
					  "cudaMalloc");
	}
	if (ret)
		goto out_close;
	ctx->stage_bytes = staging_bytes;
	for (int i = 0; i < NSLOT; i++) {
		ret = event_new(&ctx->slot[i].done);
		if (!ret)
			ret = slot_grow(&ctx->slot[i], SLOT_INIT);
		if (ret)
			goto out_close;
	}
	*out = ctx;
	return 0;

out_close:
	kv_gpu_ctx_close(ctx);
	return ret;
}

/*
 * Where the chunks are. *all_dev: all in device or managed memory (nothing
 * to stage). *pageable: some in host memory CUDA does not know: a kernel
 * reading it would fault and poison the context, so ZEROCOPY refuses it,
 * while STAGED copies it with the copy engine (which then reads it during
 * the call, and returns from a copy out only when it is done).
 */
static int chunks_kind(const struct kv_gpu_paged *p, bool *all_dev, bool *pageable)
{
	*all_dev = true;
	*pageable = false;
	for (uint32_t i = 0; i < p->n; i++) {
		cudaPointerAttributes a;
		int ret = kv_cuda_err(cudaPointerGetAttributes(&a, p->chunks[i]),
				      "cudaPointerGetAttributes");

		if (ret)
			return ret;
		switch (a.type) {
		case cudaMemoryTypeDevice:
		case cudaMemoryTypeManaged:
			break;
		case cudaMemoryTypeHost:
			*all_dev = false;
			break;
		default:
			*all_dev = false;
			*pageable = true;
			break;
		}
	}
	return 0;
}

/*
 * Pack the call's tables into the next slot and queue their copy to the
 * device on s; fill a's table pointers. The caller records the slot's
 * event on s after its last kernel (also when a later step fails).
 */
static int tables_put(struct kv_gpu_ctx *ctx, cudaStream_t s, const struct kv_gpu_paged *p,
		      struct slot **slot_out, struct paged_args *a)
{
	struct slot *sl = &ctx->slot[ctx->next_slot];
	size_t nl = p->layer_end - p->layer_begin;
	size_t ppc = p->chunk_tokens / p->page_tokens;
	size_t ptrs = (2 * nl + p->n) * sizeof(void *);
	size_t ids = (size_t)p->n * ppc * sizeof(int32_t);
	size_t need = ptrs + ids;
	void **h;
	int ret;

	if (ids > SIZE_MAX / 2)
		return -EINVAL;		/* need would wrap: no such array */

	/* The slot's previous call may still be copying or reading it. */
	ret = kv_cuda_err(cudaEventSynchronize(sl->done), "cudaEventSynchronize");
	if (ret)
		return ret;
	if (need > sl->cap) {
		ret = slot_grow(sl, need);
		if (ret)
			return ret;
	}
	h = (void **)sl->host;
	memcpy(h, p->k + p->layer_begin, nl * sizeof(void *));
	memcpy(h + nl, p->v + p->layer_begin, nl * sizeof(void *));
	memcpy(h + 2 * nl, p->chunks, p->n * sizeof(void *));
	memcpy(h + 2 * nl + p->n, p->pages, ids);
	ret = kv_cuda_err(cudaMemcpyAsync(sl->dev, sl->host, need, cudaMemcpyHostToDevice, s),
			  "cudaMemcpyAsync");
	if (ret)
		return ret;
	ctx->next_slot = (ctx->next_slot + 1) % NSLOT;
	*slot_out = sl;

	a->k = (uint4 *const *)sl->dev;
	a->v = a->k + nl;
	a->chunks = a->k + 2 * nl;
	a->chunk0 = NULL;
	a->pages = (const int32_t *)(a->k + 2 * nl + p->n);
	a->heads = p->heads > 1 ? p->heads : 1;
	a->item_words = (uint64_t)p->page_tokens * p->row_bytes / 16 / a->heads;
	a->stride_words = p->page_stride / 16;
	a->row_words = p->row_bytes / 16;
	a->head_words = a->heads > 1 ? p->head_stride / 16 : 0;
	a->ppc = (uint32_t)ppc;
	a->nl = (uint32_t)nl;
	a->l0 = p->layer_begin;
	a->items = (uint64_t)p->n * nl * 2 * ppc * a->heads;
	return 0;
}

static int launch(const struct kv_gpu_ctx *ctx, cudaStream_t s, const struct paged_args *a)
{
	unsigned shift = 0;
	uint64_t blocks;
	uint64_t groups;
	uint64_t most;
	int split = a->heads > 1;
	int wide;

	while (shift < 5 && ((uint64_t)UNROLL << shift) < a->item_words)
		shift++;
	blocks = ((a->items << shift) + THREADS - 1) / THREADS;
	groups = blocks * THREADS >> shift;
	wide = a->items + groups > UINT32_MAX;
	most = (uint64_t)ctx->sms * ctx->occ[split][wide][shift];
	if (blocks > most)
		blocks = most;
	kernels[split][wide][shift]<<<(unsigned)blocks, THREADS, 0, s>>>(*a);
	return kv_cuda_err(cudaGetLastError(), "paged kernel launch");
}

/*
 * Mark stage[b] reusable once stream u gets where it is now. On the error
 * paths below this is best effort: u is the stream whose progress covers
 * every operation already queued on stage[b].
 */
static int stage_freed(struct kv_gpu_ctx *ctx, unsigned b, cudaStream_t u)
{
	return kv_cuda_err(cudaEventRecord(ctx->freed[b], u), "cudaEventRecord");
}

/*
 * STAGED scatter: per chunk, its slice for the layer range is copied in
 * one piece into stage[b] on the copy stream, and scattered from there on
 * s; chunk i + 1's copy overlaps chunk i's scatter. The copy stream first
 * waits for what the caller queued on s before this call (the chunk may
 * be written there). s ends after the last scatter, which waited for its
 * copy, so s reaching its end means the pages are written.
 */
static int staged_scatter(struct kv_gpu_ctx *ctx, cudaStream_t s,
			  const struct kv_gpu_paged *p, struct paged_args *a,
			  size_t off, size_t slice)
{
	const int32_t *pages = a->pages;
	int ret;

	ret = kv_cuda_err(cudaEventRecord(ctx->mark, s), "cudaEventRecord");
	if (!ret)
		ret = kv_cuda_err(cudaStreamWaitEvent(ctx->copy, ctx->mark, 0),
				  "cudaStreamWaitEvent");
	for (uint32_t c = 0; c < p->n && !ret; c++) {
		unsigned b = ctx->next_stage;
		cudaStream_t user = ctx->copy;
		int err;

		ctx->next_stage ^= 1;
		ret = kv_cuda_err(cudaStreamWaitEvent(ctx->copy, ctx->freed[b], 0),
				  "cudaStreamWaitEvent");
		if (ret)
			break;
		ret = kv_cuda_err(cudaMemcpyAsync(ctx->stage[b], (char *)p->chunks[c] + off,
						  slice, cudaMemcpyDefault, ctx->copy),
				  "cudaMemcpyAsync");
		if (ret)
			break;
		ret = kv_cuda_err(cudaEventRecord(ctx->filled[b], ctx->copy), "cudaEventRecord");
		if (!ret)
			ret = kv_cuda_err(cudaStreamWaitEvent(s, ctx->filled[b], 0),
					  "cudaStreamWaitEvent");
		if (!ret) {
			user = s;	/* s now follows the copy */
			a->chunks = NULL;
			a->chunk0 = (uint4 *)ctx->stage[b];
			a->pages = pages + (size_t)c * a->ppc;
			ret = launch(ctx, s, a);
		}
		err = stage_freed(ctx, b, user);
		if (!ret)
			ret = err;
	}
	return ret;
}

/*
 * STAGED gather: per chunk, a gather kernel into stage[b] on s, then one
 * copy of the slice out on the copy stream; chunk i's copy out overlaps
 * chunk i + 1's gather. s then waits for the last copy out, so s reaching
 * its end means the chunks are written (the copy stream is in order).
 */
static int staged_gather(struct kv_gpu_ctx *ctx, cudaStream_t s,
			 const struct kv_gpu_paged *p, struct paged_args *a,
			 size_t off, size_t slice)
{
	const int32_t *pages = a->pages;
	bool queued = false;	/* a copy out is on the copy stream */
	int ret = 0;

	for (uint32_t c = 0; c < p->n; c++) {
		unsigned b = ctx->next_stage;
		cudaStream_t user = s;
		int err;

		ctx->next_stage ^= 1;
		ret = kv_cuda_err(cudaStreamWaitEvent(s, ctx->freed[b], 0),
				  "cudaStreamWaitEvent");
		if (ret)
			break;
		a->chunks = NULL;
		a->chunk0 = (uint4 *)ctx->stage[b];
		a->pages = pages + (size_t)c * a->ppc;
		ret = launch(ctx, s, a);
		if (!ret)
			ret = kv_cuda_err(cudaEventRecord(ctx->filled[b], s), "cudaEventRecord");
		if (!ret)
			ret = kv_cuda_err(cudaStreamWaitEvent(ctx->copy, ctx->filled[b], 0),
					  "cudaStreamWaitEvent");
		if (!ret) {
			user = ctx->copy;	/* the copy stream follows the kernel */
			ret = kv_cuda_err(cudaMemcpyAsync((char *)p->chunks[c] + off,
							  ctx->stage[b], slice,
							  cudaMemcpyDefault, ctx->copy),
					  "cudaMemcpyAsync");
		}
		if (!ret)
			queued = true;
		err = stage_freed(ctx, b, user);
		if (!ret)
			ret = err;
		if (ret)
			break;
	}
	/*
	 * Also after a failure: what was queued completes before s goes on.
	 * The copy stream is in order, so waiting for its present end
	 * covers every copy out of this call.
	 */
	if (queued) {
		int err = kv_cuda_err(cudaEventRecord(ctx->mark, ctx->copy), "cudaEventRecord");

		if (!err)
			err = kv_cuda_err(cudaStreamWaitEvent(s, ctx->mark, 0),
					  "cudaStreamWaitEvent");
		if (!ret)
			ret = err;
	}
	return ret;
}

extern "C" int kv_gpu_paged_copy(struct kv_gpu_ctx *ctx, struct kv_gpu_stream *stream,
				 const struct kv_gpu_paged *p, enum kv_gpu_dir dir,
				 enum kv_gpu_mode mode)
{
	cudaStream_t s = KV_STREAM(stream);
	struct paged_args a;
	struct slot *sl = NULL;
	bool all_dev;
	bool pageable;
	size_t off;
	size_t slice;
	int dev;
	int ret;

	/* Everything is checked before anything is queued. */
	if (!ctx || (dir != KV_GPU_SCATTER && dir != KV_GPU_GATHER) ||
	    (mode != KV_GPU_ZEROCOPY && mode != KV_GPU_STAGED))
		return -EINVAL;
	ret = kv_gpu_paged_check(p);
	if (ret)
		return ret;
	off = (size_t)p->layer_begin * 2 * p->chunk_tokens * p->row_bytes;
	slice = (size_t)(p->layer_end - p->layer_begin) * 2 * p->chunk_tokens * p->row_bytes;
	if (mode == KV_GPU_STAGED && slice > ctx->stage_bytes)
		return -EINVAL;		/* also: no staging at all */
	if (p->n == 0)
		return 0;
	ret = kv_cuda_err(cudaGetDevice(&dev), "cudaGetDevice");
	if (ret)
		return ret;
	if (dev != ctx->dev)
		return -EINVAL;		/* the scratch lives on ctx->dev */
	ret = chunks_kind(p, &all_dev, &pageable);
	if (ret)
		return ret;
	if (pageable && mode == KV_GPU_ZEROCOPY)
		return -EINVAL;

	memset(&a, 0, sizeof(a));
	a.gather = dir == KV_GPU_GATHER;
	ret = tables_put(ctx, s, p, &sl, &a);
	if (ret)
		return ret;
	if (mode == KV_GPU_ZEROCOPY || all_dev) {
		ret = launch(ctx, s, &a);
	} else {
		a.items = (uint64_t)a.nl * 2 * a.ppc * a.heads;	/* one chunk a launch */
		a.l0 = 0;				/* stage holds the slice */
		if (dir == KV_GPU_SCATTER)
			ret = staged_scatter(ctx, s, p, &a, off, slice);
		else
			ret = staged_gather(ctx, s, p, &a, off, slice);
	}
	/* The slot is busy until s gets here, whatever happened above. */
	if (kv_cuda_err(cudaEventRecord(sl->done, s), "cudaEventRecord") && !ret)
		ret = -KV_EGPU;
	return ret;
}
