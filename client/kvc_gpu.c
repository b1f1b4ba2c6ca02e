/*
 * kvc_gpu.c - libkvc's GPU state and its contiguous paths: chunks copied
 * whole between the store's arenas and an engine's GPU memory
 * (kvc_get_gpu(), kvc_put_gpu()). The paged paths (kvc_paged.c) share the
 * state, the page-locking of the DRAM mapping and the pending records.
 *
 * Every copy is queued on the caller's CUDA stream; nothing here waits for
 * the GPU on the way in. What a chunk's copy needs held (its pin, or for a
 * put its uncommitted allocation) is kept in a pending record behind an
 * event recorded after the copies. A put's chunks are committed in stream
 * order, by a host function queued after its copies (commit_in_stream()):
 * once the stream passes a put, they are visible to every connection. A
 * completion thread per handle sleeps on the oldest record's event and
 * then finishes it (releases a get's pins; aborts a put whose copy failed
 * and notes the error), whatever the engine does next; kvc_gpu_flush()
 * and closing wait for all of them. Only that thread removes records.
 *
 * Sources: a DRAM chunk is read from this process's mapping of the shared
 * arena, page-locked in slabs (SLAB bytes) the first time a chunk in the
 * slab is used, or all of them by a background thread (KVC_GPU_REGISTER_ALL);
 * so connecting costs nothing and a first get pays one slab's registration.
 * Contiguous copies are split at slab edges (each slab is its own
 * registration). An HBM chunk is read through this process's mapping of
 * the daemon's arena, imported once from the fd HELLO handed over (CUDA
 * VMM), when the daemon's GPU is ours.
 *
 * Locking: the GPU state has its own mutex, taken before the handle's (the
 * calls below use the handle's public calls, which take it); the
 * completion thread takes the handle's without holding it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvc.h"
#include "client/kvc_gpu_int.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "lib/errors.h"
#include "lib/proto.h"

#define SLAB		(256ull << 20)	/* registration unit of the DRAM mapping */

enum slab_state {
	SLAB_NONE,
	SLAB_PINNED,
	SLAB_FAILED,		/* registration refused: copies run pageable */
};

/* Held until the event is reached: pins to release, puts to commit. */
struct pending {
	struct pending *next;
	struct kv_gpu_event *ev;
	struct kvc *c;
	uint32_t ns;
	bool commit;		/* keys are puts to commit, else pins to release */
	atomic_bool committed;	/* commit: done in stream order by commit_in_stream() */
	int commit_result;	/* its result, read once the event is reached */
	size_t n;
	struct kvc_key keys[];
};

/* ---- registration of the DRAM mapping ---------------------------------- */

static int slab_pin(struct kvc_gpu *g, size_t i)
{
	size_t off = i * SLAB;
	size_t len = g->dram_bytes - off < SLAB ? g->dram_bytes - off : SLAB;
	int ret = 0;

	pthread_mutex_lock(&g->reg_lock);
	if (g->slab[i] == SLAB_NONE) {
		ret = kv_gpu_host_register(g->dram + off, len);
		g->slab[i] = ret ? SLAB_FAILED : SLAB_PINNED;
		if (!ret)
			atomic_fetch_add(&g->registered, len);
	}
	pthread_mutex_unlock(&g->reg_lock);
	return ret;
}

/*
 * Page-lock the slabs [off, off + len) lies in. Returns whether all of them
 * are: a refusal is not an error, but the copy must then go through the
 * copy engine from pageable memory (slower), never a kernel reading it.
 */
bool kvci_dram_pin(struct kvc_gpu *g, uint64_t off, uint64_t len)
{
	bool pinned = true;

	if (len == 0)
		return true;
	for (size_t i = off / SLAB; i <= (off + len - 1) / SLAB; i++) {
		if (g->slab[i] == SLAB_NONE)	/* racy read; slab_pin decides */
			slab_pin(g, i);
		pinned = pinned && g->slab[i] == SLAB_PINNED;
	}
	return pinned;
}

static void *bg_register(void *arg)
{
	struct kvc_gpu *g = arg;

	kv_gpu_set_device(g->dev);
	for (size_t i = 0; i < g->n_slabs && !atomic_load(&g->bg_stop); i++)
		slab_pin(g, i);
	return NULL;
}

void kvc_gpu_registered(struct kvc *c, uint64_t *done, uint64_t *total)
{
	struct kvc_gpu *g = kvci_gpu(c);
	size_t bytes;

	kvc_dram_base(c, &bytes);
	if (total)
		*total = bytes;
	if (done)
		*done = g ? atomic_load(&g->registered) : 0;
}

/* ---- open / close ---------------------------------------------------------- */

static void *completer(void *arg);
static void gpu_close(struct kvc *c);
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

static int gpu_open(struct kvc *c, int device, unsigned flags)
{
	struct kvc_gpu *old = kvci_gpu(c);
	struct kvci_hbm info;
	struct kvc_gpu *g;
	int dev, hdev, ret;

	if (old) {
		if (device >= 0 && device != old->dev)
			return -EBUSY;
		return 0;
	}
	if (!kv_gpu_available(NULL, NULL, 0))
		return -KVC_ENOGPU;
	if (device >= 0) {
		ret = kv_gpu_set_device(device);
		if (ret)
			return ret;
	}
	ret = kv_gpu_get_device(&dev);
	if (ret)
		return ret;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->c = c;
	g->dev = dev;
	g->flags = flags;
	g->tail = &g->head;
	g->mode = KVC_GPU_AUTO;
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->reg_lock, NULL);
	pthread_cond_init(&g->more, NULL);
	pthread_cond_init(&g->less, NULL);
	g->dram = kvc_dram_base(c, &g->dram_bytes);
	g->n_slabs = (g->dram_bytes + SLAB - 1) / SLAB;
	g->slab = calloc(g->n_slabs ? g->n_slabs : 1, 1);
	if (!g->slab) {
		free(g);
		return -ENOMEM;
	}
	/* The daemon's HBM arena, when it is on this GPU. */
	kvci_hbm_info(c, &info);
	if (info.bytes && info.fd >= 0 && !(flags & KVC_GPU_NO_HBM) &&
	    kv_gpu_device_by_pci(info.pci, &hdev) == 0 && hdev == dev &&
	    kv_gpu_vmm_import(info.fd, info.map_bytes, dev, &g->hbm_map) == 0) {
		g->hbm = kv_gpu_vmm_ptr(g->hbm_map);
		kvci_set_hbm(c, g->hbm);
	}
	/* Without its completion thread, each call waits for its own copies
	 * (kvci_pending_add() finishes records at once). */
	g->done_started = pthread_create(&g->done_thread, NULL, completer, g) == 0;
	kvci_set_gpu(c, g, gpu_close);
	if ((flags & KVC_GPU_REGISTER_ALL) &&
	    pthread_create(&g->bg, NULL, bg_register, g) == 0)
		g->bg_started = true;
	return 0;
}

int kvc_gpu_open(struct kvc *c, int device, unsigned flags)
{
	int ret;

	pthread_mutex_lock(&open_lock);	/* two threads' first GPU calls */
	ret = gpu_open(c, device, flags);
	pthread_mutex_unlock(&open_lock);
	return ret;
}

int kvci_gpu_get(struct kvc *c, struct kvc_gpu **out)
{
	int ret;

	if (!kvci_gpu(c)) {
		ret = kvc_gpu_open(c, -1, 0);
		if (ret)
			return ret;
	}
	*out = kvci_gpu(c);
	return 0;
}

int kvc_gpu_mode(struct kvc *c, enum kvc_gpu_mode mode)
{
	struct kvc_gpu *g;
	int old, ret;

	if (mode > KVC_GPU_STAGED)
		return -EINVAL;
	ret = kvci_gpu_get(c, &g);
	if (ret)
		return ret;
	pthread_mutex_lock(&g->lock);
	old = g->mode;
	g->mode = mode;
	pthread_mutex_unlock(&g->lock);
	return old;
}

/* ---- pending records and the completion thread ----------------------------- */

/* Let keys go once their copies ended with result; returns result or the
 * first failure of the calls. Takes the handle's lock only. */
static int keys_apply(struct kvc *c, uint32_t ns, bool commit, const struct kvc_key *keys,
		      size_t n, int result)
{
	int ret = result;

	for (size_t i = 0; i < n; i += KVC_MAX_BATCH) {
		size_t m = n - i < KVC_MAX_BATCH ? n - i : KVC_MAX_BATCH;
		int r;

		/* A failed copy's puts are aborted, never committed. */
		if (!commit)
			r = kvc_release(c, ns, keys + i, m, NULL);
		else if (result)
			r = kvc_abort(c, ns, keys + i, m, NULL);
		else
			r = kvc_commit(c, ns, keys + i, m, NULL);
		if (r < 0 && !ret)
			ret = r;
	}
	return ret;
}

/* Remember the first asynchronous failure for kvc_gpu_flush(). */
static void note_error(struct kvc_gpu *g, int ret)
{
	if (!ret)
		return;
	pthread_mutex_lock(&g->lock);
	if (!g->error)
		g->error = ret;
	pthread_mutex_unlock(&g->lock);
}

/* keys_apply() and note its failure. Without g->lock. */
static void keys_finish(struct kvc_gpu *g, uint32_t ns, bool commit,
			const struct kvc_key *keys, size_t n, int result)
{
	note_error(g, keys_apply(g->c, ns, commit, keys, n, result));
}

/*
 * A put's commit, queued on its stream after its copies (cudaLaunchHostFunc):
 * it runs once they are done, and the stream goes on only when the daemon
 * has committed the chunks. So whatever the caller waits on after the put
 * (its done event, a stream or device sync) implies that every lookup and
 * get, from any connection, sees them: read-your-writes. It runs on the
 * CUDA runtime's thread and takes the handle's lock only, never g->lock,
 * which is held across stream syncs.
 */
static void commit_in_stream(void *arg)
{
	struct pending *p = arg;

	p->commit_result = keys_apply(p->c, p->ns, true, p->keys, p->n, 0);
	atomic_store_explicit(&p->committed, true, memory_order_release);
}

static void pending_finish(struct kvc_gpu *g, struct pending *p, int result)
{
	if (atomic_load_explicit(&p->committed, memory_order_acquire))
		note_error(g, p->commit_result);
	else
		keys_finish(g, p->ns, p->commit, p->keys, p->n, result);
	kv_gpu_event_destroy(p->ev);
	free(p);
}

/* Sleep on the oldest record's event, finish it, repeat; until stopped
 * with nothing left. */
static void *completer(void *arg)
{
	struct kvc_gpu *g = arg;

	kv_gpu_set_device(g->dev);
	pthread_mutex_lock(&g->lock);
	for (;;) {
		struct pending *p;
		int r;

		while (!g->head && !g->stop)
			pthread_cond_wait(&g->more, &g->lock);
		if (!g->head)
			break;
		p = g->head;	/* stays: only this thread removes records */
		pthread_mutex_unlock(&g->lock);
		r = kv_gpu_event_sync(p->ev);
		pthread_mutex_lock(&g->lock);
		g->head = p->next;
		if (!g->head)
			g->tail = &g->head;
		pthread_mutex_unlock(&g->lock);
		pending_finish(g, p, r);
		pthread_mutex_lock(&g->lock);
		pthread_cond_broadcast(&g->less);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/*
 * Hold keys (pins to release, or puts to commit) until the work queued on
 * stream so far is done. Called with g->lock held. If the record cannot be
 * made, wait for the stream and finish at once, so nothing is let go early.
 */
int kvci_pending_add(struct kvc_gpu *g, struct kv_gpu_stream *stream, uint32_t ns,
		     bool commit, const struct kvc_key *keys, size_t n)
{
	struct pending *p;
	int ret;

	if (n == 0)
		return 0;
	p = malloc(sizeof(*p) + n * sizeof(p->keys[0]));
	if (!p) {
		ret = kv_gpu_stream_sync(stream);
		pthread_mutex_unlock(&g->lock);
		keys_finish(g, ns, commit, keys, n, ret ? ret : -ENOMEM);
		pthread_mutex_lock(&g->lock);
		return -ENOMEM;
	}
	p->next = NULL;
	p->ev = NULL;
	p->c = g->c;
	p->ns = ns;
	p->commit = commit;
	atomic_init(&p->committed, false);
	p->commit_result = 0;
	p->n = n;
	memcpy(p->keys, keys, n * sizeof(keys[0]));
	/* Puts commit in stream order (commit_in_stream()); if that cannot be
	 * queued, the stream is waited for below and they commit before the
	 * call returns, so the contract holds either way. */
	ret = commit ? kv_gpu_launch_host(stream, commit_in_stream, p) : 0;
	if (!ret)
		ret = kv_gpu_event_create_blocking(&p->ev);
	if (!ret)
		ret = kv_gpu_event_record(p->ev, stream);
	if (ret || !g->done_started) {
		int r = kv_gpu_stream_sync(stream);

		pthread_mutex_unlock(&g->lock);
		pending_finish(g, p, r);
		pthread_mutex_lock(&g->lock);
		return r;
	}
	*g->tail = p;
	g->tail = &p->next;
	pthread_cond_signal(&g->more);
	return 0;
}

/* Wait until every record is finished. Called with g->lock held. */
static int drain(struct kvc_gpu *g)
{
	int ret;

	while (g->head)
		pthread_cond_wait(&g->less, &g->lock);
	ret = g->error;
	g->error = 0;
	return ret;
}

int kvc_gpu_flush(struct kvc *c)
{
	struct kvc_gpu *g = kvci_gpu(c);
	int ret;

	if (!g)
		return 0;
	pthread_mutex_lock(&g->lock);
	ret = drain(g);
	pthread_mutex_unlock(&g->lock);
	return ret;
}

/* The handle's close hook (kvci_set_gpu()): finish its copies and free its
 * GPU state, from kvc_close() before the connection goes. */
static void gpu_close(struct kvc *c)
{
	struct kvc_gpu *g = kvci_gpu(c);

	if (!g)
		return;
	atomic_store(&g->bg_stop, true);
	if (g->bg_started)
		pthread_join(g->bg, NULL);
	pthread_mutex_lock(&g->lock);
	drain(g);
	g->stop = true;
	pthread_cond_signal(&g->more);
	pthread_mutex_unlock(&g->lock);
	if (g->done_started)
		pthread_join(g->done_thread, NULL);
	kv_gpu_ctx_close(g->ctx);
	for (size_t i = 0; i < g->n_slabs; i++)
		if (g->slab[i] == SLAB_PINNED)
			kv_gpu_host_unregister(g->dram + i * SLAB);
	if (g->hbm) {
		kvci_set_hbm(c, NULL);
		kv_gpu_vmm_close(g->hbm_map);
	}
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->reg_lock);
	pthread_cond_destroy(&g->more);
	pthread_cond_destroy(&g->less);
	free(g->slab);
	free(g);
	kvci_set_gpu(c, NULL, NULL);
}

/* ---- contiguous ------------------------------------------------------------------ */

/* Copy one chunk; DRAM sources in pieces that stay within a slab. */
static int copy_chunk(struct kvc_gpu *g, void *dst, const void *src, uint64_t bytes,
		      bool dram_src, bool dram_dst, struct kv_gpu_stream *s)
{
	const char *host = dram_src ? src : dram_dst ? dst : NULL;
	uint64_t done = 0;
	int ret = 0;

	if (!host)
		return kv_gpu_memcpy(dst, src, bytes, s);
	kvci_dram_pin(g, (uint64_t)(host - g->dram), bytes);
	while (done < bytes && !ret) {
		uint64_t off = (uint64_t)(host - g->dram) + done;
		uint64_t piece = SLAB - off % SLAB;

		if (piece > bytes - done)
			piece = bytes - done;
		ret = kv_gpu_memcpy((char *)dst + done, (const char *)src + done, piece, s);
		done += piece;
	}
	return ret;
}

int kvc_get_gpu(struct kvc *c, uint32_t ns, struct kvc_gpu_desc *d, size_t n,
		kvc_stream_t stream, kvc_event_t done)
{
	struct kv_gpu_stream *s = stream;
	struct kvc_key *keys = NULL;
	struct kvc_loc *locs = NULL;
	struct kvc_gpu *g;
	int ret, queued = 0;

	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	ret = kvci_gpu_get(c, &g);
	if (ret)
		return ret;
	pthread_mutex_lock(&g->lock);
	keys = malloc((n ? n : 1) * sizeof(*keys));
	locs = malloc((n ? n : 1) * sizeof(*locs));
	if (!keys || !locs) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		keys[i] = d[i].key;
	ret = kvci_pin(c, ns, keys, n, locs, g->hbm ? KV_PIN_GPU : 0);
	if (ret)
		goto out;
	{
		size_t nheld = 0;

		for (size_t i = 0; i < n; i++) {
			struct kvc_gpu_desc *x = &d[i];

			x->status = locs[i].status;
			x->bytes = locs[i].bytes;
			x->tier = locs[i].tier;
			if (x->status)
				continue;
			keys[nheld++] = x->key;	/* pinned: released after the copy */
			if (!locs[i].ptr)
				x->status = -KVC_ENOTIER;
			else if (x->cap < locs[i].bytes)
				x->status = -ENOBUFS;
			else
				x->status = copy_chunk(g, x->dev, locs[i].ptr, locs[i].bytes,
						       locs[i].tier == KVC_TIER_DRAM, false, s);
			queued += x->status == 0;
		}
		ret = kvci_pending_add(g, s, ns, false, keys, nheld);
	}
	if (!ret && done)
		ret = kv_gpu_event_record(done, s);
out:
	pthread_mutex_unlock(&g->lock);
	free(keys);
	free(locs);
	return ret ? ret : queued;
}

/*
 * Reserve n puts (in HBM when asked and mapped), queue copy(i, dst) for
 * each reserved one, and hold them for commit after the copies. Copies
 * that fail to queue are aborted at once.
 */
static int put_common(struct kvc_gpu *g, uint32_t ns, struct kvc_put_desc *d, size_t n,
		      unsigned flags, struct kv_gpu_stream *s,
		      int (*copy)(struct kvc_gpu *g, size_t i, void *dst, uint8_t tier,
				  void *arg),
		      void *arg)
{
	void **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	uint8_t *tiers = calloc(n ? n : 1, 1);
	struct kvc_key *keys = malloc((n ? n : 1) * sizeof(*keys));
	size_t nk = 0;
	int ret, queued = 0;

	if (!ptrs || !tiers || !keys) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kvci_alloc(g->c, ns, d, n, ptrs, tiers,
			 (flags & KVC_PUT_HBM) && g->hbm ? KV_ALLOC_HBM : 0);
	if (ret < 0)
		goto out;
	ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ptrs[i])
			continue;
		d[i].status = copy(g, i, ptrs[i], tiers[i], arg);
		if (d[i].status) {
			kvc_abort(g->c, ns, &d[i].key, 1, NULL);
			continue;
		}
		keys[nk++] = d[i].key;
		queued++;
	}
	ret = kvci_pending_add(g, s, ns, true, keys, nk);
out:
	free(ptrs);
	free(tiers);
	free(keys);
	return ret ? ret : queued;
}

struct put_gpu_arg {
	struct kvc_put_desc *d;
	struct kv_gpu_stream *s;
};

static int put_gpu_copy(struct kvc_gpu *g, size_t i, void *dst, uint8_t tier, void *arg)
{
	struct put_gpu_arg *a = arg;

	return copy_chunk(g, dst, a->d[i].data, a->d[i].bytes, false,
			  tier == KVC_TIER_DRAM, a->s);
}

int kvc_put_gpu(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
		unsigned flags, kvc_stream_t stream, kvc_event_t done)
{
	struct put_gpu_arg a = { d, stream };
	struct kvc_gpu *g;
	int ret;

	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!d[i].data || !d[i].bytes)
			return -EINVAL;
	ret = kvci_gpu_get(c, &g);
	if (ret)
		return ret;
	pthread_mutex_lock(&g->lock);
	ret = put_common(g, ns, d, n, flags, stream, put_gpu_copy, &a);
	if (ret >= 0 && done) {
		int r = kv_gpu_event_record(done, stream);

		if (r)
			ret = r;
	}
	pthread_mutex_unlock(&g->lock);
	return ret;
}
