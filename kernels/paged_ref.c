/*
 * paged_ref.c - the plain-C half of the paged copies (kv_gpu.h, "paged
 * copies"): the size of a chunk, the check every launcher runs before it
 * queues anything, and the host reference the GPU tests compare against.
 *
 * Built in both the CUDA and the stub build: the client validates a
 * descriptor the same way whether or not a GPU is there, and the unit
 * tests run the reference on machines without one.
 *
 * Geometry (kv_gpu.h): a chunk is [layers][2][chunk_tokens][row_bytes];
 * page p of chunk c, layer l, K or V, is page_tokens * row_bytes bytes at
 * chunk offset ((l * 2 + kv) * chunk_tokens + p * page_tokens) * row_bytes
 * and at engine address (kv ? v : k)[l] + pages[c * ppc + p] * page_stride,
 * where ppc = chunk_tokens / page_tokens. With heads > 1 (page_tokens 1)
 * the engine side of a page is heads segments of seg = row_bytes / heads
 * bytes: segment s is chunk bytes [s * seg, (s + 1) * seg) of the row and
 * sits at engine address + s * head_stride.
 *
 * Alignment: every pointer and every stride is a multiple of 16 bytes, so
 * the CUDA kernel may move 16-byte words; the check enforces it here so
 * the reference refuses what the kernel would refuse.
 *
 * Arithmetic is overflow-checked: a descriptor whose sizes or engine
 * addresses do not fit in 64 bits (or in the address space) is -EINVAL,
 * never a wrapped offset.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kv_gpu.h"

#define ALIGN	16u

_Static_assert(sizeof(uintptr_t) == sizeof(uint64_t) && sizeof(size_t) == sizeof(uint64_t),
	       "paged copies assume a 64-bit address space");

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

static int add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

static int aligned(const void *ptr)
{
	return ptr && ((uintptr_t)ptr % ALIGN) == 0;
}

/* layers * 2 * chunk_tokens * row_bytes, or 0 when it does not fit. */
uint64_t kv_gpu_paged_chunk_bytes(const struct kv_gpu_paged *p)
{
	uint64_t b;

	if (!p)
		return 0;
	if (!mul_ok((uint64_t)p->layers * 2, p->chunk_tokens, &b) ||
	    !mul_ok(b, p->row_bytes, &b))
		return 0;
	return b;
}

/*
 * Does every page of a layer's buffer at base, n_pages of them page_stride
 * apart, end inside the address space? tail: bytes from a page's start to
 * the end of its last byte (page_tokens * row_bytes, or with split rows
 * (heads - 1) * head_stride + seg). (The buffer's size is the caller's
 * promise; this only refuses what would wrap.)
 */
static int span_ok(const void *base, const struct kv_gpu_paged *p, uint64_t tail)
{
	uint64_t last = p->n_pages - 1;	/* n_pages > 0 */
	uint64_t span;

	if (!aligned(base))
		return 0;
	if (last > INT32_MAX)
		last = INT32_MAX;	/* the largest page id there can be */
	return mul_ok(last, p->page_stride, &span) &&
	       add_ok(span, tail, &span) &&
	       add_ok((uintptr_t)base, span, &span);
}

/*
 * The engine-side shape of a page: *seg, the bytes of one contiguous
 * piece, and *tail, from the page's start to the end of its last piece.
 * 0, or -EINVAL for a split that breaks the rules of kv_gpu.h.
 */
static int page_shape(const struct kv_gpu_paged *p, uint64_t *seg, uint64_t *tail)
{
	if (p->heads <= 1) {
		*seg = (uint64_t)p->page_tokens * p->row_bytes;	/* < 2^64 */
		*tail = *seg;
		return p->page_stride % ALIGN || p->page_stride < *seg ? -EINVAL : 0;
	}
	if (p->page_tokens != 1 || p->row_bytes % p->heads)
		return -EINVAL;
	*seg = p->row_bytes / p->heads;
	if (*seg % ALIGN || p->head_stride % ALIGN || p->head_stride < *seg ||
	    p->page_stride % ALIGN || p->page_stride < *seg)
		return -EINVAL;
	if (!mul_ok(p->heads - 1, p->head_stride, tail) || !add_ok(*tail, *seg, tail))
		return -EINVAL;
	return 0;
}

/*
 * n == 0 is a valid no-op: the geometry is still checked, but none of the
 * arrays is read (they may be NULL).
 */
int kv_gpu_paged_check(const struct kv_gpu_paged *p)
{
	uint64_t seg;
	uint64_t tail;
	uint64_t chunk_bytes;
	uint64_t ppc;
	uint64_t n_ids;
	uint64_t total;

	if (!p)
		return -EINVAL;
	if (p->layers == 0 || p->layer_begin >= p->layer_end ||
	    p->layer_end > p->layers)
		return -EINVAL;
	if (p->page_tokens == 0 || p->chunk_tokens == 0 ||
	    p->chunk_tokens % p->page_tokens)
		return -EINVAL;
	if (p->row_bytes == 0 || p->row_bytes % ALIGN)
		return -EINVAL;
	if (page_shape(p, &seg, &tail))
		return -EINVAL;
	if (p->n_pages == 0)
		return -EINVAL;
	chunk_bytes = kv_gpu_paged_chunk_bytes(p);
	if (chunk_bytes == 0)
		return -EINVAL;
	ppc = p->chunk_tokens / p->page_tokens;
	if (p->n == 0)
		return 0;

	/* The whole call must be addressable: n chunks, n * ppc ids. */
	if (!mul_ok(chunk_bytes, p->n, &total) ||
	    !mul_ok(ppc, p->n, &n_ids) || n_ids > SIZE_MAX / sizeof(int32_t))
		return -EINVAL;
	if (!p->k || !p->v || !p->chunks || !p->pages)
		return -EINVAL;
	for (uint32_t l = p->layer_begin; l < p->layer_end; l++) {
		if (!span_ok(p->k[l], p, tail) || !span_ok(p->v[l], p, tail))
			return -EINVAL;
	}
	for (uint32_t i = 0; i < p->n; i++) {
		uint64_t end;

		if (!aligned(p->chunks[i]) ||
		    !add_ok((uintptr_t)p->chunks[i], chunk_bytes, &end))
			return -EINVAL;
	}
	for (uint64_t i = 0; i < n_ids; i++) {
		if (p->pages[i] < 0 || (uint64_t)p->pages[i] >= p->n_pages)
			return -EINVAL;
	}
	return 0;
}

int kv_gpu_paged_ref(const struct kv_gpu_paged *p, enum kv_gpu_dir dir)
{
	uint64_t ppc;
	uint64_t seg;
	uint64_t tail;
	uint32_t segs;
	int ret;

	if (dir != KV_GPU_SCATTER && dir != KV_GPU_GATHER)
		return -EINVAL;
	ret = kv_gpu_paged_check(p);
	if (ret)
		return ret;
	ppc = p->chunk_tokens / p->page_tokens;
	(void)page_shape(p, &seg, &tail);	/* checked above */
	segs = p->heads > 1 ? p->heads : 1;
	for (uint32_t c = 0; c < p->n; c++) {
		unsigned char *chunk = p->chunks[c];
		const int32_t *ids = p->pages + (size_t)c * ppc;

		for (uint32_t l = p->layer_begin; l < p->layer_end; l++) {
			for (unsigned kv = 0; kv < 2; kv++) {
				unsigned char *base = kv ? p->v[l] : p->k[l];
				size_t run = ((size_t)l * 2 + kv) * p->chunk_tokens;

				for (uint64_t pg = 0; pg < ppc; pg++) {
					unsigned char *c_at = chunk +
						(run + pg * p->page_tokens) * p->row_bytes;
					unsigned char *e_at = base +
						(size_t)ids[pg] * p->page_stride;

					for (uint32_t sg = 0; sg < segs; sg++) {
						unsigned char *c_seg = c_at + sg * seg;
						unsigned char *e_seg = e_at + sg * p->head_stride;

						if (dir == KV_GPU_SCATTER)
							memcpy(e_seg, c_seg, seg);
						else
							memcpy(c_seg, e_seg, seg);
					}
				}
			}
		}
	}
	return 0;
}
