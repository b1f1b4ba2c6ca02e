/*
 * kv_gpu.h - everything outside kernels/ knows of CUDA (STYLE.md section 8).
 *
 * Plain C. A CUDA build links the kernels/ CUDA objects; a build without
 * the toolkit links kernels/gpu_stub.c, whose functions report -KV_ENOGPU.
 * Either build runs on a machine without a GPU: ask kv_gpu_available().
 *
 * Handles: struct kv_gpu_stream * is a cudaStream_t and struct
 * kv_gpu_event * a cudaEvent_t, cast (so a caller's own stream or event
 * passes straight through; NULL is the legacy default stream). Device
 * memory is a void *; with unified addressing, host memory registered by
 * kv_gpu_host_register() is reachable from the GPU at its host address.
 *
 * Errors: 0 or a negative code: -KV_ENOGPU (no device, or a build without
 * CUDA), -KV_EGPU (a CUDA call failed; kv_gpu_last_error() names it, for
 * the caller's log: nothing here logs, since the client library links it), -EINVAL (bad
 * arguments, checked before anything is queued), -EAGAIN (an event not yet
 * reached). Nothing here exits or synchronizes the whole device on a
 * request path.
 *
 * Threads: the CUDA runtime is thread-safe; a struct kv_gpu_ctx is not
 * (one per client handle, used under its lock).
 */
#ifndef KV_GPU_H
#define KV_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kv_gpu_stream;		/* a cudaStream_t */
struct kv_gpu_event;		/* a cudaEvent_t */
struct kv_gpu_ctx;		/* scratch and staging for paged copies */

#define KV_GPU_PCI_ID		16	/* "0000:3b:00.0" plus NUL */

/* ---- devices ------------------------------------------------------------ */

/*
 * Is there a usable GPU? Stores the device count in *count (may be NULL)
 * and, when there is none, a reason for the log in why (may be NULL,
 * otherwise why_len bytes). Safe to call on a machine with no driver.
 */
bool kv_gpu_available(int *count, char *why, size_t why_len);

/* The calling thread's last CUDA failure, as "what: cuda error text" (""
 * when none). Never NULL. */
const char *kv_gpu_last_error(void);

/* Make dev the calling thread's current device / read it. */
int kv_gpu_set_device(int dev);
int kv_gpu_get_device(int *dev);

/* The device's name ("NVIDIA H100 80GB HBM3") and PCI bus id
 * ("0000:3b:00.0"), which names it the same in every process whatever
 * CUDA_VISIBLE_DEVICES says. */
int kv_gpu_device_name(int dev, char *name, size_t len);
int kv_gpu_pci_id(int dev, char id[KV_GPU_PCI_ID]);

/* The ordinal, in this process, of the device with that PCI bus id, or
 * -ENODEV when this process does not see it. */
int kv_gpu_device_by_pci(const char *id, int *dev);

enum kv_gpu_mem {
	KV_GPU_MEM_HOST,	/* ordinary host memory, unknown to CUDA */
	KV_GPU_MEM_PINNED,	/* host memory registered or allocated pinned */
	KV_GPU_MEM_DEVICE,	/* device memory (cudaMalloc, a VMM mapping) */
	KV_GPU_MEM_MANAGED,	/* managed memory */
};

/* What p points at, and for device memory on which device (*dev, may be
 * NULL). */
int kv_gpu_mem_kind(const void *p, enum kv_gpu_mem *kind, int *dev);

/* ---- memory ------------------------------------------------------------- */

/* Device memory on the current device; free with kv_gpu_free(). */
int kv_gpu_malloc(size_t bytes, void **out);
void kv_gpu_free(void *p);		/* accepts NULL */

/* Pinned host memory (for tests and benchmarks); free with
 * kv_gpu_host_free(). */
int kv_gpu_host_alloc(size_t bytes, void **out);
void kv_gpu_host_free(void *p);		/* accepts NULL */

/*
 * Page-lock an existing mapping (a memfd arena, say) so copies to and from
 * it run at link speed and kernels can read it in place. p and bytes
 * should be page-aligned. Registering a range that is already registered
 * is -KV_EGPU. Unregister with the same p.
 */
int kv_gpu_host_register(void *p, size_t bytes);
int kv_gpu_host_unregister(void *p);

/* ---- device memory shared by file descriptor (CUDA VMM) ---------------
 *
 * One allocation on one device (cuMemCreate), mapped read-write for that
 * device into this process, that other processes reach only through a
 * POSIX file descriptor exported from it: a process maps it only when it
 * is handed the fd (SCM_RIGHTS over a Unix socket), unlike a legacy CUDA
 * IPC handle, 64 bytes that open the memory for any process on the node
 * that learns them.
 *
 * Sizes are whole granules of the device (its minimum VMM allocation
 * granularity, 2 MiB on an H100): kv_gpu_vmm_create() rounds bytes up,
 * and kv_gpu_vmm_size() says to what; the importer maps that size.
 *
 * No libcuda is linked: the driver's entry points come from the runtime on
 * first use (thread-safe, once). Without a driver every call answers
 * -KV_ENOGPU; a driver or device without VMM or POSIX fd handles -KV_EGPU;
 * kv_gpu_last_error() says which. These calls make dev current only while
 * they run (the caller's current device is restored).
 */
struct kv_gpu_vmm;		/* opaque: one allocation, as this process maps it */

/* The device's allocation granularity in bytes. */
int kv_gpu_vmm_granularity(int dev, size_t *gran);

/* Allocate bytes (rounded up to the granularity) on dev, exportable as a
 * POSIX fd, and map it. Returns 0 and *out (free with kv_gpu_vmm_close()),
 * -EINVAL (0 bytes), -ENOMEM, -KV_EGPU (out of device memory too) or
 * -KV_ENOGPU; *out untouched on failure. */
int kv_gpu_vmm_create(int dev, size_t bytes, struct kv_gpu_vmm **out);

/* A new file descriptor (close-on-exec; the caller owns it) that opens the
 * allocation in another process. -KV_EGPU, -KV_ENOGPU. */
int kv_gpu_vmm_export(const struct kv_gpu_vmm *m, int *fd);

/* Map, for device dev of this process, the allocation behind fd (exported
 * by kv_gpu_vmm_export(), maybe in another process; borrowed: the caller
 * still owns and closes it), of bytes (its kv_gpu_vmm_size(), a multiple
 * of the granularity). Returns 0 and *out, or -EINVAL (fd < 0, a bytes
 * that is no whole number of granules), -KV_EGPU (fd is no such
 * allocation, or bytes is larger than it), -ENOMEM, -KV_ENOGPU. */
int kv_gpu_vmm_import(int fd, size_t bytes, int dev, struct kv_gpu_vmm **out);

void *kv_gpu_vmm_ptr(const struct kv_gpu_vmm *m);	/* device address */
size_t kv_gpu_vmm_size(const struct kv_gpu_vmm *m);	/* bytes mapped */

/* Unmap and release. The memory itself goes when its last mapping and
 * handle in any process are gone. Accepts NULL. */
void kv_gpu_vmm_close(struct kv_gpu_vmm *m);

/* ---- streams, events, copies ------------------------------------------- */

/* A non-blocking stream on the current device. */
int kv_gpu_stream_create(struct kv_gpu_stream **out);
void kv_gpu_stream_destroy(struct kv_gpu_stream *s);	/* accepts NULL */
int kv_gpu_stream_sync(struct kv_gpu_stream *s);

/* An event; timing false makes it cheaper (no timestamps). */
int kv_gpu_event_create(struct kv_gpu_event **out, bool timing);
/* An event whose kv_gpu_event_sync() sleeps instead of spinning (for a
 * thread that waits on copies without burning a core). */
int kv_gpu_event_create_blocking(struct kv_gpu_event **out);
void kv_gpu_event_destroy(struct kv_gpu_event *e);	/* accepts NULL */
int kv_gpu_event_record(struct kv_gpu_event *e, struct kv_gpu_stream *s);
/* 0 when the work before the event is done, -EAGAIN while it is not. */
int kv_gpu_event_query(struct kv_gpu_event *e);
int kv_gpu_event_sync(struct kv_gpu_event *e);
/* Make s wait (on the device) until e is reached. */
int kv_gpu_stream_wait(struct kv_gpu_stream *s, struct kv_gpu_event *e);
/*
 * Queue fn(arg) on s: it runs on a thread of the CUDA runtime once the work
 * queued before it is done, and the work queued after it waits until it
 * returns. fn must make no CUDA call and must not wait for anything that
 * waits for the GPU (a lock held across a stream or device sync).
 */
int kv_gpu_launch_host(struct kv_gpu_stream *s, void (*fn)(void *), void *arg);
/* Milliseconds between two timing events, both reached. */
int kv_gpu_event_ms(struct kv_gpu_event *start, struct kv_gpu_event *end,
		    float *ms);

/* Copy n bytes on s, in whatever direction the two addresses imply. */
int kv_gpu_memcpy(void *dst, const void *src, size_t n, struct kv_gpu_stream *s);
/* Fill n bytes with byte value v on s. */
int kv_gpu_memset(void *dst, int v, size_t n, struct kv_gpu_stream *s);

/* ---- paged copies: chunks <-> an engine's paged KV cache ----------------
 *
 * A chunk holds the K and V of chunk_tokens tokens for layers layers,
 * layer-major: [layers][2: K, V][chunk_tokens][row], where a row is one
 * token's K (or V) in one layer (kv_heads * head_dim * element bytes), so
 * one layer's slice of a chunk is contiguous. Byte offset of (l, kv, t):
 *	((l * 2 + kv) * chunk_tokens + t) * row_bytes
 *
 * The engine's cache, per layer, is a K buffer and a V buffer of pages;
 * a page holds page_tokens consecutive tokens' rows, contiguous, and page
 * i starts page_stride bytes after page i-1:
 *   vLLM [2, num_blocks, block_size, H, D]: page_tokens = block_size,
 *	page_stride = block_size * row_bytes, v = k + num_blocks * page_stride;
 *   vLLM with K and V apart, [num_blocks, block_size, H, D] each: the same
 *	with the two base pointers;
 *   FlashInfer [num_blocks, 2, block_size, H, D]: page_stride =
 *	2 * block_size * row_bytes, v = k + block_size * row_bytes;
 *   SGLang token-indexed [num_tokens, H, D] K and V: page_tokens = 1,
 *	page_stride = row_bytes, a page is one token slot.
 * Page p of a chunk (its tokens [p * page_tokens, (p + 1) * page_tokens))
 * goes to engine page pages[chunk * pages_per_chunk + p].
 *
 * Split rows (heads > 1): on the engine side a token's row is cut into
 * heads segments of seg = row_bytes / heads bytes each, head_stride bytes
 * apart, and a page is one token (page_tokens 1). Segment s of page i of
 * a layer's K starts at
 *	k[l] + i * page_stride + s * head_stride
 * and holds chunk row bytes [s * seg, (s + 1) * seg). So:
 *   Hugging Face transformers [1, H, cap, D] K and V per layer: heads = H,
 *	page_stride = D * elem, head_stride = cap * D * elem, n_pages = cap,
 *	a page is one token position.
 * With heads 0 or 1 the row is contiguous and head_stride is ignored.
 *
 * Bounds: pages[] ids are checked against n_pages; the buffers' sizes are
 * the caller's promise: each layer's K (and V) buffer must hold
 *	(n_pages - 1) * page_stride + page_tokens * row_bytes	(heads <= 1)
 *	(n_pages - 1) * page_stride + (heads - 1) * head_stride + seg
 * bytes from its base (an HF tensor's heads * cap * D * elem bytes).
 *
 * SCATTER copies chunks into the engine's pages (a get), GATHER the other
 * way (a put). Only layers [layer_begin, layer_end) are copied, so a get
 * can run layer by layer.
 */
enum kv_gpu_dir {
	KV_GPU_SCATTER = 0,	/* chunk -> engine pages */
	KV_GPU_GATHER = 1,	/* engine pages -> chunk */
};

/* How chunks in host memory reach the GPU (or back). */
enum kv_gpu_mode {
	KV_GPU_ZEROCOPY = 0,	/* one kernel reads (writes) the registered host
				 * mapping in place */
	KV_GPU_STAGED = 1,	/* one large copy per chunk into a device staging
				 * buffer (double-buffered) plus a device-side
				 * scatter (gather, then one large copy out) */
};

struct kv_gpu_paged {
	uint32_t layers;	/* layers in a chunk */
	uint32_t layer_begin;	/* copy layers [layer_begin, layer_end) */
	uint32_t layer_end;
	uint32_t chunk_tokens;	/* a multiple of page_tokens */
	uint32_t page_tokens;	/* >= 1 */
	uint32_t row_bytes;	/* a multiple of 16 */
	uint64_t page_stride;	/* a multiple of 16, >= page_tokens * row_bytes
				 * (heads > 1: >= seg) */
	uint64_t n_pages;	/* pages in each layer's K (and V) buffer: every
				 * page id must be below it */
	uint64_t head_stride;	/* heads > 1: bytes from one segment of a page to
				 * the next, a multiple of 16, >= seg */
	void *const *k;		/* [layers] each layer's K buffer (device memory,
				 * 16-byte aligned) */
	void *const *v;		/* [layers] V */
	uint32_t n;		/* chunks */
	uint32_t heads;		/* engine-side segments of a row: 0 or 1, the
				 * row is contiguous; > 1 needs page_tokens 1 and
				 * seg = row_bytes / heads a multiple of 16 */
	void *const *chunks;	/* [n] each chunk's start, 16-byte aligned:
				 * device memory (a VMM mapping too), or
				 * registered host memory */
	const int32_t *pages;	/* [n * chunk_tokens / page_tokens] engine pages */
};

/* Bytes of one chunk described by p: layers * 2 * chunk_tokens * row_bytes. */
uint64_t kv_gpu_paged_chunk_bytes(const struct kv_gpu_paged *p);

/*
 * Check p (geometry, alignment, the row split, page ids against n_pages,
 * layer range, engine addresses that would wrap). Returns 0 or -EINVAL.
 * Plain C: the stub build has it too.
 */
int kv_gpu_paged_check(const struct kv_gpu_paged *p);

/*
 * Open the scratch a paged copy needs on the current device: room for the
 * page tables and pointer arrays of one call (they are copied to the
 * device on the stream, so the caller's arrays need not outlive the call),
 * a copy stream, and two staging buffers of staging_bytes each for
 * KV_GPU_STAGED (0: no staging; STAGED copies then fail with -EINVAL).
 */
int kv_gpu_ctx_open(struct kv_gpu_ctx **out, size_t staging_bytes);
void kv_gpu_ctx_close(struct kv_gpu_ctx *ctx);	/* accepts NULL; waits */

/*
 * Queue the paged copy p on stream s and return: one kernel launch for
 * all chunks, layers and pages (ZEROCOPY, or any chunks already in device
 * memory), or per chunk a large copy on the context's copy stream
 * overlapped with the scatter of the one before (STAGED). When the stream
 * reaches the end of what was queued, the copy is complete. The arrays in
 * p are read before the call returns. Returns 0, -EINVAL (p fails
 * kv_gpu_paged_check(), or STAGED without staging or with a chunk larger
 * than it), -KV_EGPU or -KV_ENOGPU.
 */
int kv_gpu_paged_copy(struct kv_gpu_ctx *ctx, struct kv_gpu_stream *s,
		      const struct kv_gpu_paged *p, enum kv_gpu_dir dir,
		      enum kv_gpu_mode mode);

/*
 * The plain-C reference of kv_gpu_paged_copy(): the same copy with every
 * pointer in host memory, one memcpy per page (per segment when heads > 1).
 * For tests.
 */
int kv_gpu_paged_ref(const struct kv_gpu_paged *p, enum kv_gpu_dir dir);

#ifdef __cplusplus
}
#endif
#endif
