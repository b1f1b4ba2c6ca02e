/*
 * kvc.h - libkvc, the client library of kvstore (the only installed header).
 *
 * An engine connects to the node's kvstored over a Unix socket, registers
 * its namespace, hashes its prompt into chunk keys, and then:
 *   get: kvc_lookup() how many leading chunks are cached, kvc_get() them
 *        (or kvc_pin(), copy out of the shared arena yourself, kvc_release());
 *   put: kvc_put() new chunks (or kvc_alloc(), write into the arena,
 *        kvc_commit()).
 * The chunk bytes never pass through the socket: the daemon hands over its
 * DRAM arena (a memfd) at connect time, the library maps it, and gets and
 * puts copy straight between that mapping and the caller's memory.
 *
 * Errors: functions return 0 (or a count) on success and a negative code on
 * failure: -errno (ENOENT: not cached; EEXIST: already cached; EINVAL: bad
 * argument; ENOBUFS: buffer too small; EACCES: namespace owned by another
 * user; EBUSY: pinned) or -KVC_E* below. kvc_strerror() names them all.
 * Any call that talks to the daemon may also answer -KVC_EMEMORY (the
 * daemon's memory for client buffers is in use: try again later; the
 * handle stays usable) or -KVC_ETIMEDOUT (see Timeouts).
 *
 * Timeouts: each request a call sends to the daemon (a call may send
 * several: large batches are split) must be answered within the handle's
 * timeout, and so must kvc_connect(). The default is $KVSTORE_TIMEOUT_MS
 * (milliseconds, 0: wait for ever) when set, else KVC_TIMEOUT_DEFAULT_MS;
 * kvc_set_timeout() changes it. A call that runs out returns
 * -KVC_ETIMEDOUT and closes the handle's connection, since a late reply
 * would put the stream out of step: every later call answers
 * -KVC_ECLOSED, and the caller opens a new handle.
 *
 * Threads: a handle may be shared by threads; its calls run one at a time
 * (a mutex per handle). For parallel requests open one handle per thread.
 * Pins and uncommitted allocations belong to the handle: closing it (or the
 * process dying) releases them.
 *
 * Ownership: the library never keeps a pointer to caller memory past the
 * call. Pointers into the arena (kvc_loc.ptr, kvc_alloc results) are valid
 * while the handle is open, and their bytes are stable only while pinned
 * (get) or until committed or aborted (put).
 */
#ifndef KVC_H
#define KVC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of kvstore's own (the same numbers as on the wire). */
enum kvc_error {
	KVC_EPROTO	= 20001,	/* malformed message */
	KVC_EVERSION	= 20002,	/* protocol version not supported */
	KVC_EMSGSIZE	= 20003,	/* message larger than the limit */
	KVC_EBATCH	= 20004,	/* too many keys in one message */
	KVC_ECONNS	= 20005,	/* the daemon's connection limit */
	KVC_EPINS	= 20006,	/* this handle's pin limit */
	KVC_EUNCOMMITTED = 20007,	/* this handle's uncommitted-bytes limit */
	KVC_EFULL	= 20008,	/* tier full of pinned or unwritten chunks */
	KVC_ENOGPU	= 20009,	/* no usable GPU */
	KVC_EGPU	= 20010,	/* a CUDA call failed */
	KVC_ENONS	= 20011,	/* namespace not registered on this handle */
	KVC_ETOOBIG	= 20012,	/* chunk larger than the tier */
	KVC_EPEER	= 20013,	/* this user is not allowed to connect */
	KVC_ECLOSED	= 20014,	/* the daemon closed the connection */
	KVC_ENSLIMIT	= 20015,	/* the daemon's namespace table is full */
	KVC_ENOTIER	= 20016,	/* no such tier */
	KVC_ECORRUPT	= 20017,	/* stored data failed its checksum */
	KVC_ENOPARENT	= 20018,	/* the chunk's parent is not cached */
	KVC_EFORMAT	= 20019,	/* data directory of another on-disk format */
	KVC_ETIMEDOUT	= 20020,	/* a deadline passed (this call, or HELLO) */
	KVC_ELOCKED	= 20021,	/* held by another kvstored */
	KVC_ENSREC	= 20022,	/* the namespace could not be recorded */
	KVC_EQUOTA	= 20023,	/* this tenant's quota is reached */
	KVC_EMETA	= 20024,	/* the daemon's chunk metadata limit */
	KVC_EEXPIRED	= 20025,	/* the allocation's lease expired */
	KVC_EMEMORY	= 20026,	/* the daemon's memory bound for clients */
	KVC_EREFUSED	= 20027,	/* the tier below refused some chunks */
};

enum kvc_tier {
	KVC_TIER_HBM	= 0,
	KVC_TIER_DRAM	= 1,
	KVC_TIER_SSD	= 2,
	KVC_TIER_REMOTE	= 3,		/* the cluster (docs/cluster.md) */
	KVC_TIER_NONE	= 0xff,		/* not cached / any tier */
};

#define KVC_MAX_TIERS		4
#define KVC_MAX_BATCH		1024	/* keys per message; calls split larger batches */
#define KVC_DEFAULT_SOCKET	"./var/kvstore.sock"
#define KVC_TIMEOUT_DEFAULT_MS	30000	/* per request, without $KVSTORE_TIMEOUT_MS */

struct kvc;			/* opaque: one connection */

/* A 128-bit chunk key. As text: 32 hex digits, hi then lo. */
struct kvc_key {
	uint64_t lo;
	uint64_t hi;
};

/*
 * Connect to the daemon at socket_path (NULL: $KVSTORE_SOCKET, else
 * KVC_DEFAULT_SOCKET), check the protocol version and map the DRAM arena.
 * Returns 0 and stores a handle in *out (close it with kvc_close()), or with
 * *out untouched: -ENOENT/-ECONNREFUSED (no daemon there), -KVC_EPEER (this
 * user is not allowed), -KVC_ECONNS (connection limit), -KVC_ETIMEDOUT (no
 * answer within the timeout, see above), -KVC_EVERSION, or another -errno.
 */
int kvc_connect(const char *socket_path, struct kvc **out);

/*
 * Set the handle's timeout for each later request, in milliseconds; 0
 * waits for ever. Waits for a call under way on another thread to end.
 * Returns 0, or -EINVAL for a NULL handle.
 */
int kvc_set_timeout(struct kvc *c, unsigned ms);

/* Close the connection; the daemon releases its pins and allocations.
 * Accepts NULL. */
void kvc_close(struct kvc *c);

/* ---- namespaces and keys -------------------------------------------- */

/*
 * Register a namespace (e.g. "llama3-8b/bf16/tp0of1/c256": model, dtype,
 * layout, parallel rank, chunk size) on this handle and store its id in
 * *ns. The first user to register a name owns it; another user gets
 * -EACCES. With an SSD tier a new name is recorded durably before the call
 * returns. Returns 0, -EINVAL (empty or longer than 255 bytes), -EACCES,
 * -KVC_ENSLIMIT, or -KVC_ENSREC (the daemon could not record the name, its
 * disk full say: it is not registered; try again later).
 */
int kvc_ns_register(struct kvc *c, const char *name, uint32_t *ns);

/*
 * kvc_ns_register() that also gives the namespace's model shape, for
 * cost-aware eviction (GDSF): a chunk of n tokens at position p saves
 * n * (b*d^2 + a*d*(2p + n)) of prefill work in a model of hidden size d.
 * Llama-style models: a = 2, b = 26 (see docs/eviction.md). The first
 * registration of a name decides its model. Returns as kvc_ns_register(),
 * or -EINVAL for hidden 0 or a negative a or b.
 */
int kvc_ns_register_model(struct kvc *c, const char *name, uint32_t hidden,
			  double a, double b, uint32_t *ns);

/*
 * The id of an existing namespace, without creating it (kvctl's ls, inspect
 * and evict): on success the handle may use the id as if it had registered
 * the name. Returns 0, -EINVAL, -ENOENT (no such namespace), or -EACCES
 * (another user's, and this user is neither root nor the daemon's).
 */
int kvc_ns_lookup(struct kvc *c, const char *name, uint32_t *ns);

/* A namespace, as kvc_ns_list() reports it. */
struct kvc_ns_info {
	uint32_t ns;		/* its id */
	uint32_t uid;		/* its owner */
	uint64_t salt;		/* kvc_ns_salt(name) */
	uint64_t chunks;	/* committed chunks cached, in any tier */
	uint64_t bytes;		/* their sizes */
	int pending;		/* 1: its record is on its way to the disk */
	char name[256];		/* NUL-terminated */
};

/*
 * List the namespaces this user may see (its own; root and the daemon's
 * user see all), by id. Start with *cursor = 0; each call stores up to max
 * entries (at most KVC_NS_PAGE) and returns how many, and sets *cursor to
 * continue from (0 when the listing is complete), or returns a negative
 * error.
 */
#define KVC_NS_PAGE 256
int kvc_ns_list(struct kvc *c, uint32_t *cursor, struct kvc_ns_info *out,
		size_t max);

/*
 * Drop a namespace: every chunk of it from every tier, its records on the
 * daemon's SSD, and the name (its id is never handed out again in the
 * daemon's run; registering the name again makes a new, empty namespace).
 * Only its owner, root and the daemon's user may. chunks and bytes (may be
 * NULL) get what was dropped. Returns 0, -EINVAL, -ENOENT, -EACCES, -EBUSY
 * (a chunk of it is pinned or being written: nothing was dropped), or
 * -KVC_ENSREC (dropped from the cache, but its records could not be
 * deleted from the SSD: it may come back after a restart).
 */
int kvc_ns_drop(struct kvc *c, const char *name, uint64_t *chunks, uint64_t *bytes);

/* The namespace's hash seed: XXH3-64 of its name. Pure function. */
uint64_t kvc_ns_salt(const char *name);

/*
 * Prefix key of a chunk: XXH3-128, seeded with salt, of the parent's key
 * (16 bytes, lo then hi, little-endian; all zero for the first chunk, which
 * passes parent == NULL) followed by the n token ids as little-endian
 * uint32. A chunk is found only when every chunk before it matches. Pure
 * function: identical in every process and on every host.
 */
struct kvc_key kvc_key_prefix(uint64_t salt, const struct kvc_key *parent,
			      const uint32_t *tokens, size_t n);

/*
 * Content key of a chunk (position-free, for RAG document chunks): XXH3-128
 * of the token ids, seeded with salt ^ 0x636f6e74656e7421 ("content!"), so
 * it never equals a prefix key.
 */
struct kvc_key kvc_key_content(uint64_t salt, const uint32_t *tokens, size_t n);

/*
 * Prefix keys of every full chunk of a prompt: chunk i covers tokens
 * [i*chunk_tokens, (i+1)*chunk_tokens). Stores at most max keys in out and
 * returns how many full chunks the prompt has (a partial tail has no key).
 */
size_t kvc_key_chain(uint64_t salt, const uint32_t *tokens, size_t n_tokens,
		     size_t chunk_tokens, struct kvc_key *out, size_t max);

/* Format as 32 hex digits plus NUL into out[33]. */
void kvc_key_to_hex(const struct kvc_key *k, char out[33]);

/* Parse 32 hex digits (nothing else). Returns 0 or -EINVAL. */
int kvc_key_from_hex(const char *hex, struct kvc_key *out);

/* ---- reading ---------------------------------------------------------- */

/*
 * For n keys of namespace ns, store each one's fastest tier in tiers[i]
 * (KVC_TIER_DRAM, KVC_TIER_SSD: kvc_prefetch() it early; KVC_TIER_REMOTE:
 * no local tier has it, the cluster did when asked, for a namespace that
 * uses it; KVC_TIER_NONE: not cached; tiers may be NULL) and return how many
 * leading keys are cached (0..n), or a negative error. Present chunks count
 * as used for eviction, deepest first.
 */
int kvc_lookup(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, uint8_t *tiers);

/* Where a pinned chunk is. */
struct kvc_loc {
	int status;		/* 0, -ENOENT (not cached), -KVC_EPINS, ... */
	uint8_t tier;		/* KVC_TIER_DRAM (SSD and remote chunks come up
				 * first) */
	uint64_t offset;	/* in the tier's arena */
	uint64_t bytes;
	const void *ptr;	/* the chunk in this process's arena mapping */
};

/*
 * Pin n chunks: each present chunk is held in place (neither moved nor
 * evicted) until kvc_release() or kvc_close(). A chunk on SSD is read back
 * into DRAM first, all of them at once; the call returns when they are in.
 * One that fails its checksum reads as a miss. Fills locs[i] for each key.
 * Returns 0 (per-key results in locs[i].status) or a negative error for
 * the call as a whole.
 */
int kvc_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	    struct kvc_loc *locs);

/*
 * Drop one pin on each of n chunks. status (may be NULL) gets 0 or -ENOENT
 * (not pinned by this handle) per key. Returns 0 or a negative error.
 */
int kvc_release(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		size_t n, int *status);

struct kvc_get_desc {
	struct kvc_key key;	/* in */
	void *buf;		/* in: where to copy the chunk */
	size_t cap;		/* in: bytes at buf */
	size_t bytes;		/* out: the chunk's size (also on -ENOBUFS) */
	int status;		/* out: 0, -ENOENT, -ENOBUFS, ... */
};

/*
 * Copy n chunks into caller memory: pin them all, copy each present one
 * out of the arena, release them. Returns how many were copied (0..n) or
 * a negative error for the call as a whole; per-chunk results in d[i].
 */
int kvc_get_batch(struct kvc *c, uint32_t ns, struct kvc_get_desc *d, size_t n);

/* One chunk: returns 0 (its size in *bytes), -ENOENT, -ENOBUFS (*bytes says
 * how many are needed) or another error. bytes may be NULL. */
int kvc_get(struct kvc *c, uint32_t ns, const struct kvc_key *key, void *buf,
	    size_t cap, size_t *bytes);

/* ---- writing ---------------------------------------------------------- */

struct kvc_put_desc {
	struct kvc_key key;
	struct kvc_key parent;	/* ignored unless has_parent */
	int has_parent;		/* a prefix chunk with a chunk before it */
	uint32_t tokens;	/* tokens in the chunk */
	uint32_t position;	/* index of its first token in the prompt */
	const void *data;
	size_t bytes;		/* > 0 */
	int status;		/* out: 0 stored, -EEXIST already cached, ... */
};

/*
 * Store n chunks: reserve space for all, copy each into the arena, commit.
 * Chunks already cached (or being written by another client) answer -EEXIST
 * and are not copied. Returns how many were stored (0..n) or a negative
 * error for the call as a whole; per-chunk results in d[i].status.
 */
int kvc_put_batch(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n);

/* One chunk: returns 0 (stored), -EEXIST (already cached) or an error. */
int kvc_put(struct kvc *c, uint32_t ns, const struct kvc_key *key,
	    const struct kvc_key *parent, uint32_t tokens, uint32_t position,
	    const void *data, size_t bytes);

/*
 * Two-phase put for callers that write the arena themselves (from a GPU,
 * say). kvc_alloc() reserves space for d[i] (data is ignored) and stores a
 * pointer to it in ptrs[i] (NULL where d[i].status != 0); the chunk stays
 * invisible until kvc_commit(), and kvc_abort() (or closing) frees it.
 * Each returns how many succeeded or a negative error for the whole call.
 * The daemon aborts an allocation not committed within its lease
 * (alloc_lease_ms, 30 s by default): kvc_commit() or kvc_abort() of it
 * then gives -KVC_EEXPIRED for that key, and the bytes written were not
 * kept. Write and commit well within the lease: the space may already
 * belong to another chunk when it has expired.
 */
int kvc_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	      void **ptrs);
int kvc_commit(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, int *status);
int kvc_abort(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	      size_t n, int *status);

/* The DRAM arena as this process maps it; *bytes gets its size. */
void *kvc_dram_base(struct kvc *c, size_t *bytes);

/* ---- GPU: chunks straight to and from the engine's GPU memory ----------
 *
 * The CUDA types cross this header as void *: a kvc_stream_t is a
 * cudaStream_t (NULL: the legacy default stream) and a kvc_event_t a
 * cudaEvent_t, both the caller's. Every copy is queued on the caller's
 * stream and the call returns without waiting; when done is not NULL it is
 * recorded on the stream after the last copy, so the caller waits on it (or
 * on the stream) before using the bytes. Chunks stay pinned until their
 * copies are complete: a thread of the library's, one per handle, waits for
 * each call's copies and then releases its pins (gets) or aborts the
 * chunks of a put whose copy failed.
 *
 * Read-your-writes for puts (kvc_put_gpu, kvc_put_paged): the commit of a
 * put's chunks is queued on its stream after their copies, as a host
 * function that returns once the daemon has committed them. So once done
 * has fired, or the stream (or the device) has been synchronized past the
 * put, or kvc_gpu_flush() has returned, every lookup and get, from this
 * connection or any other, sees the chunks. The price: the work queued on
 * that stream after a put waits for the commit's round trip to the daemon
 * (tens of microseconds), so put from a side stream, not the one the next
 * forward pass runs on. A chunk whose copy or commit failed is not stored;
 * kvc_gpu_flush() reports the first such failure.
 *
 * Where the bytes come from: a chunk in HBM (the daemon's GPU arena, opened
 * once from the file descriptor the daemon hands over (CUDA VMM) when
 * the daemon's GPU is this one) is copied device
 * to device; a chunk in DRAM is copied from the shared arena mapping, which
 * the library page-locks lazily in slabs as chunks are used (and, with
 * KVC_GPU_REGISTER_ALL, in the background); a chunk on SSD is read into
 * DRAM first. A build without CUDA, or a machine without a GPU, answers
 * -KVC_ENOGPU.
 */
typedef void *kvc_stream_t;
typedef void *kvc_event_t;

enum kvc_gpu_flags {
	KVC_GPU_REGISTER_ALL	= 1 << 0,	/* kvc_gpu_open: page-lock the whole
						 * DRAM mapping in the background */
	KVC_GPU_NO_HBM		= 1 << 1,	/* kvc_gpu_open: never open the
						 * daemon's HBM arena */
	KVC_PUT_HBM		= 1 << 2,	/* puts: store in the HBM tier when
						 * there is room (else DRAM) */
};

/* How DRAM chunks reach a paged layout (kvc_gpu_mode()). */
enum kvc_gpu_mode {
	KVC_GPU_AUTO	= 0,	/* the measured faster: STAGED for whole chunks
				 * and for KVC_LAYOUT_HF, ZEROCOPY layer by
				 * layer otherwise (docs/gpu.md) */
	KVC_GPU_ZEROCOPY = 1,	/* one kernel reads the pinned mapping in place */
	KVC_GPU_STAGED	= 2,	/* large copies into a GPU staging buffer, then
				 * a scatter kernel */
};

/*
 * Bind the handle to CUDA device `device` (-1: the calling thread's current
 * one) and open the daemon's HBM arena when it lives on that GPU. Optional:
 * the first GPU call does it with (-1, 0). Returns 0, -KVC_ENOGPU, or
 * -KVC_EGPU. Calling it again with another device is -EBUSY.
 */
int kvc_gpu_open(struct kvc *c, int device, unsigned flags);

/* Choose how DRAM chunks reach paged layouts; returns the previous mode,
 * or -EINVAL (no such mode) or kvc_gpu_open()'s error. A chunk whose part
 * of the mapping could not be page-locked always goes STAGED. */
int kvc_gpu_mode(struct kvc *c, enum kvc_gpu_mode mode);

/* Wait until every copy this handle queued is done and its pins released
 * and puts committed. Returns 0 or the first error met since the last
 * flush (a failed copy, commit or release). */
int kvc_gpu_flush(struct kvc *c);

/* Bytes of the DRAM mapping page-locked so far, and its size. */
void kvc_gpu_registered(struct kvc *c, uint64_t *done, uint64_t *total);

struct kvc_gpu_desc {
	struct kvc_key key;	/* in */
	void *dev;		/* in: device buffer */
	size_t cap;		/* in: bytes at dev */
	size_t bytes;		/* out: the chunk's size */
	int status;		/* out: 0, -ENOENT, -ENOBUFS, ... */
	uint8_t tier;		/* out: the tier it was copied from */
};

/*
 * Copy n chunks into device buffers on stream; record done after them.
 * Returns how many were queued (0..n) or a negative error for the call;
 * per-chunk results in d[i].
 */
int kvc_get_gpu(struct kvc *c, uint32_t ns, struct kvc_gpu_desc *d, size_t n,
		kvc_stream_t stream, kvc_event_t done);

/*
 * Store n chunks from device memory (d[i].data is a device pointer): space
 * is reserved (in HBM with KVC_PUT_HBM, when the daemon has it), the copies
 * are queued on stream, and each chunk is committed once its copy is
 * complete (see above). d[i].status: 0 queued, -EEXIST already cached.
 * Returns how many were queued or a negative error.
 */
int kvc_put_gpu(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
		unsigned flags, kvc_stream_t stream, kvc_event_t done);

/* ---- paged KV caches --------------------------------------------------- */

enum kvc_layout_kind {
	/* per layer one tensor [2, num_blocks, block_size, kv_heads, head_dim]:
	 * k[l] is its start (v is ignored) */
	KVC_LAYOUT_VLLM = 0,
	/* per layer K and V tensors [num_blocks, block_size, kv_heads, head_dim] */
	KVC_LAYOUT_VLLM_SPLIT = 1,
	/* per layer one tensor [num_blocks, 2, block_size, kv_heads, head_dim]
	 * (FlashInfer): k[l] is its start */
	KVC_LAYOUT_FLASHINFER = 2,
	/* SGLang: per layer K and V buffers [num_tokens, kv_heads, head_dim],
	 * indexed by token slot (block_size must be 1; num_blocks = slots) */
	KVC_LAYOUT_SGLANG = 3,
	/* Hugging Face transformers: per layer K and V tensors [1, kv_heads,
	 * num_blocks, head_dim] (batch 1, contiguous; num_blocks = the
	 * tensors' token capacity). block_size must be 1 and a page is a token
	 * position; head_dim * elem_bytes must be a multiple of 16 (each
	 * token's head is copied on its own) */
	KVC_LAYOUT_HF = 4,
};

/*
 * An engine's KV cache on one GPU. The store's chunk for it is layer-major,
 * [layers][K, V][chunk_tokens][kv_heads][head_dim], so one layer's slice is
 * contiguous: kvc_layout_chunk_bytes() bytes in all. The library copies the
 * arrays k and v; the caller's memory they point at must stay allocated
 * while copies into it are queued.
 */
struct kvc_layout {
	enum kvc_layout_kind kind;
	uint32_t layers;
	uint32_t block_size;	/* tokens per block; 1 for KVC_LAYOUT_SGLANG, _HF */
	uint32_t num_blocks;	/* blocks (token slots for SGLang, positions for
				 * HF) per layer */
	uint32_t kv_heads;
	uint32_t head_dim;
	uint32_t elem_bytes;	/* 2 for bf16/fp16, 1 for fp8 */
	uint32_t chunk_tokens;	/* a multiple of block_size */
	void *const *k;		/* [layers] */
	void *const *v;		/* [layers] (KVC_LAYOUT_VLLM_SPLIT, _SGLANG, _HF) */
};

/* Bytes of one chunk in this layout, or 0 if the layout is invalid. */
size_t kvc_layout_chunk_bytes(const struct kvc_layout *l);

struct kvc_paged_desc {
	struct kvc_key key;	/* in */
	const int32_t *pages;	/* in: chunk_tokens / block_size engine blocks
				 * (token slots for SGLang, token positions for
				 * HF), in token order */
	/* puts only: */
	struct kvc_key parent;	/* ignored unless has_parent */
	int has_parent;
	uint32_t position;	/* index of the chunk's first token */
	int status;		/* out: 0, -ENOENT, -EEXIST, ... */
	uint8_t tier;		/* out: the tier copied from (gets) or to (puts) */
};

/*
 * Scatter n chunks into the engine's pages (a prefill's cached prefix):
 * one kernel launch for all chunks, layers and pages per source tier.
 * Returns how many were queued (0..n) or a negative error; per-chunk
 * results in d[i]. An engine stops at the first miss of a prefix chain.
 */
int kvc_get_paged(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
		  struct kvc_paged_desc *d, size_t n, kvc_stream_t stream,
		  kvc_event_t done);

/* Gather n chunks out of the engine's pages and store them (see
 * kvc_put_gpu()). Returns how many were queued or a negative error. */
int kvc_put_paged(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
		  struct kvc_paged_desc *d, size_t n, unsigned flags,
		  kvc_stream_t stream, kvc_event_t done);

/*
 * Layer by layer: kvc_get_paged_begin() pins the n chunks (reading SSD ones
 * into DRAM) and returns an operation in *op; each kvc_get_paged_layers()
 * queues layers [layer_begin, layer_end) of all of them on the stream and
 * records done (one event per call), so an engine computes layer l while
 * layer l+1 loads; kvc_get_paged_end() lets the operation go (its pins are
 * released once its copies are complete). begin returns how many chunks
 * were found, per-chunk results in d[i]; the layout and d must stay valid
 * until end.
 */
struct kvc_paged_op;
int kvc_get_paged_begin(struct kvc *c, uint32_t ns, const struct kvc_layout *l,
			struct kvc_paged_desc *d, size_t n, kvc_stream_t stream,
			struct kvc_paged_op **op);
int kvc_get_paged_layers(struct kvc_paged_op *op, uint32_t layer_begin,
			 uint32_t layer_end, kvc_event_t done);	/* -EINVAL: bad range */
int kvc_get_paged_end(struct kvc_paged_op *op);

/* ---- administration ---------------------------------------------------- */

struct kvc_tier_stats {
	char name[16];		/* "dram" */
	char policy[24];	/* "lru" */
	uint64_t capacity_bytes;
	uint64_t used_bytes;
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;
	/* Reads out of the tier: HBM and DRAM as clients report them
	 * (kvc_report_bw()), SSD as the daemon times its reads into DRAM. */
	uint64_t read_bw;	/* bytes/s, a moving average; 0: no sample yet */
	uint64_t read_samples;
	uint64_t read_bytes;
};

struct kvc_stats {
	unsigned n_tiers;
	struct kvc_tier_stats tiers[KVC_MAX_TIERS];
	unsigned connections;
	uint64_t pinned_chunks;
	uint64_t pending_chunks;
	uint64_t checksum_failures;
	uint64_t uptime_ms;
	uint64_t namespaces;
	/* The SSD tier (0 without one): */
	uint64_t writeback_failures;	/* write-backs refused or failed */
	uint64_t writeback_lost;	/* chunks that left the cache from DRAM
					 * after their write-back failed */
	uint64_t ssd_records_missing;	/* index records forgotten at start:
					 * their data file was missing or short */
	uint64_t ssd_records_wrong_ns;	/* ... their namespace id names another
					 * namespace now */
	uint64_t records;		/* chunk records the daemon holds */
	uint64_t max_records;		/* its bound on them (max_chunks) */
	uint64_t meta_bytes;		/* daemon memory they take, estimated */
	/* Plans reported by clients (kvc_report_plan()): requests by kind,
	 * and the tokens loaded and computed, all kinds together. */
	uint64_t plans_loaded;
	uint64_t plans_computed;
	uint64_t plans_both;
	uint64_t plan_tokens_loaded;
	uint64_t plan_tokens_computed;
};

int kvc_stats(struct kvc *c, struct kvc_stats *st);

/*
 * Report a timed read out of tier (KVC_TIER_HBM or KVC_TIER_DRAM): bytes
 * copied from the daemon's mapping in ns nanoseconds (measured with CUDA
 * events), for the tier's read bandwidth that kvc_stats() reports. The
 * daemon averages every client's samples; it times the SSD tier itself.
 * Returns 0, or -KVC_ENOTIER (the daemon has no such tier), -EINVAL
 * (KVC_TIER_SSD; bytes or ns 0) or -ERANGE (a rate below 1 KB/s or above
 * 10 TB/s), the sample dropped; or an error of the connection.
 */
int kvc_report_bw(struct kvc *c, uint8_t tier, uint64_t bytes, uint64_t ns);

/* The plan one request got for its cached chunks (none cached: no report). */
enum kvc_plan_kind {
	KVC_PLAN_LOADED		= 1,	/* every cached chunk loaded */
	KVC_PLAN_COMPUTED	= 2,	/* cached chunks existed; all recomputed */
	KVC_PLAN_BOTH		= 3,	/* part loaded, part computed at once */
};

/*
 * Report the plan of one request: its kind and the cached tokens it loaded
 * and computed; kvc_stats() counts them. Returns 0, -EINVAL (no such kind),
 * or an error of the connection.
 */
int kvc_report_plan(struct kvc *c, unsigned kind, uint64_t tokens_loaded,
		    uint64_t tokens_computed);

struct kvc_entry {
	struct kvc_key key;
	struct kvc_key parent;
	int has_parent;
	uint32_t ns;
	uint8_t tier;
	uint64_t bytes;
	uint64_t offset;
	uint32_t tokens;
	uint32_t position;
	uint32_t pins;
	uint32_t children;
	uint64_t hits;
	uint64_t age_ms;
};

/*
 * List cached chunks of namespace ns (KVC_NS_ALL: every namespace this user
 * may see) in tier (KVC_TIER_NONE: any). Start with *cursor = 0; each call
 * stores up to max entries (at most KVC_MAX_BATCH) and returns how many,
 * and sets *cursor to continue from (0 when the listing is complete). A
 * listing taken while the cache changes may miss or repeat chunks that moved.
 */
#define KVC_NS_ALL 0xffffffffu
int kvc_ls(struct kvc *c, uint32_t ns, uint8_t tier, uint64_t *cursor,
	   struct kvc_entry *out, size_t max);

/* One chunk's metadata. Returns 0, -ENOENT or an error. */
int kvc_inspect(struct kvc *c, uint32_t ns, const struct kvc_key *key,
		struct kvc_entry *out);

/*
 * Drop n chunks from the cache. status (may be NULL) gets 0, -ENOENT or
 * -EBUSY (pinned, or being written) per key. Returns how many were dropped
 * or a negative error.
 */
int kvc_evict(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	      int *status);

/*
 * Start moving n chunks up into DRAM (those on SSD), and return at once:
 * an engine calls it while a request waits in its queue, so the later
 * kvc_get() finds them in DRAM. status (may be NULL) gets 0 (in DRAM, or
 * on its way) or -ENOENT per key. Returns how many were found or a
 * negative error.
 */
int kvc_prefetch(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		 size_t n, int *status);

enum kvc_flush_flags {
	KVC_FLUSH_DROP	= 1 << 0,	/* drop unpinned chunks instead of writing back */
};

struct kvc_flush_result {
	uint64_t chunks;	/* written back (or dropped) */
	uint64_t bytes;
	uint64_t skipped;	/* dropping: pinned or uncommitted, left alone;
				 * writing back: chunks the tier below refused,
				 * which are not durable */
	int why;		/* with -KVC_EREFUSED: why one was refused
				 * (-KVC_EFULL: no room; -ENOSPC, -EIO: the
				 * disk or the index failed); else 0 */
};

/*
 * Write the chunks of tier (KVC_TIER_NONE: every tier) back to the tier
 * below and return when that is durable; with KVC_FLUSH_DROP, drop instead:
 * every unpinned chunk (KVC_TIER_NONE), or exactly tier's copies (a chunk
 * with copies in other tiers keeps them; one whose only copy that was
 * leaves the cache; dropping DRAM copies drops the HBM copies of those
 * chunks too). A tier with no tier below has nothing to write back to: it
 * reports 0 chunks. Returns 0, -KVC_EREFUSED (the tier below refused
 * res->skipped chunks, for res->why: the rest is durable; res is filled
 * in), or another error.
 */
int kvc_flush(struct kvc *c, uint8_t tier, unsigned flags,
	      struct kvc_flush_result *res);

/*
 * Report attention scores (H2O): scores[i] in [0, 1] is the share of one
 * request's attention that chunk keys[i]'s tokens received. status (may be
 * NULL) gets 0, -ENOENT or -EINVAL per key. Returns how many were taken,
 * or a negative error for the whole call.
 */
int kvc_score(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	      const float *scores, size_t n, int *status);

/*
 * Read (set NULL) or switch (set a name: "lru", "gdsf", "h2o") the eviction
 * policy of tier, and store the name it has afterwards in name[16]. A
 * switch keeps the cached chunks and their history. Returns 0,
 * -KVC_ENOTIER, -ENOENT (no such policy) or -EACCES (only root and the
 * daemon's user may switch).
 */
int kvc_policy(struct kvc *c, uint8_t tier, const char *set, char name[16]);

/* Round trip to the daemon: 0 and its uptime in *uptime_ms (may be NULL). */
int kvc_ping(struct kvc *c, uint64_t *uptime_ms);

/* A tenant: the uids that share chunks, with arenas and quotas of their
 * own (docs/configuration.md, "Tenants"). Arrays by tier: KVC_TIER_*. */
struct kvc_tenant {
	char name[33];			/* "uid:1000" or a declared name */
	unsigned n_uids;		/* its uids; the first (up to 8) below */
	uint32_t uids[8];
	unsigned connections;		/* open now */
	uint64_t capacity[3];		/* its quota of each tier, bytes */
	uint64_t used[3];
	uint64_t chunks[3];		/* its chunks with a copy in each tier */
	uint64_t namespaces, max_namespaces;
	uint64_t uncommitted, max_uncommitted;
	uint64_t records, max_records;	/* chunk records (metadata) */
};

/*
 * The tenants this user may see: its own, or every one for root and the
 * daemon's user. Stores up to max in out and returns how many there are
 * (which may be more than max), or a negative error.
 */
int kvc_tenants(struct kvc *c, struct kvc_tenant *out, size_t max);

#define KVC_CLUSTER_NODES	64	/* node entries kvc_cluster() gives, at most */
#define KVC_CLUSTER_RANGES	16	/* slot ranges per node, at most */

/* Slots of the Redis Cluster, inclusive: 0..16383. */
struct kvc_slot_range {
	uint16_t first;
	uint16_t last;
};

/* A node of the cluster as the daemon sees it. */
struct kvc_cluster_node {
	char addr[64];			/* "host:port" (longer names are cut) */
	unsigned slots;			/* the map gives it; 0: not a master */
	unsigned conns_open;		/* the daemon's connections to it */
	int state;			/* 0: up, or never tried; else -errno of
					 * its last failure while the daemon
					 * leaves it alone (a back-off) */
	unsigned n_ranges;		/* of ranges[], ascending */
	unsigned ranges_total;		/* it serves: more than n_ranges when
					 * the rest were left out */
	struct kvc_slot_range ranges[KVC_CLUSTER_RANGES];
};

/*
 * The daemon's remote tier (docs/cluster.md). Counters from its start;
 * the nodes, masters and map figures as its cluster thread saw them after
 * its last batch, age_ms ago.
 */
struct kvc_cluster {
	int remote;			/* the daemon has a remote tier; without
					 * one everything below is 0 */
	int up;				/* the cluster answered the last batch */
	int seen;			/* connected once: nodes and map known */
	unsigned masters;		/* nodes serving slots */
	unsigned masters_down;		/* of those, failing now */
	unsigned nodes_known;		/* n_nodes or more (the rest left out) */
	unsigned n_nodes;
	unsigned write_queue;		/* chunks waiting for their write-through */
	unsigned write_inflight;	/* write-throughs under way */
	uint64_t age_ms;
	uint64_t stores, store_bytes, store_failures;	/* chunks written */
	uint64_t loads, load_bytes, load_failures;	/* chunks fetched */
	uint64_t probes, probe_hits;	/* keys asked, found */
	uint64_t corrupt;		/* values that failed a check: misses */
	uint64_t timeouts;		/* store and load commands past the deadline */
	uint64_t errors;		/* store and load commands failed otherwise */
	uint64_t moved, asks;		/* redirections followed */
	uint64_t refreshes;		/* slot maps loaded */
	uint64_t conn_errors;		/* connections to nodes that failed */
	struct kvc_cluster_node nodes[KVC_CLUSTER_NODES];
};

/*
 * The daemon's remote tier and the cluster as it sees it, in *out (the
 * caller's, about 10 KiB). Returns 0 (out->remote 0: the daemon has no
 * remote tier), or an error of the connection; a reply that breaks the
 * protocol is -KVC_EPROTO and closes the connection.
 */
int kvc_cluster(struct kvc *c, struct kvc_cluster *out);

/* Name an error code (negative or positive). Never NULL. */
const char *kvc_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
