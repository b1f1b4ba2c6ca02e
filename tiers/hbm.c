/*
 * hbm.c - the HBM tier: arenas of shareable device memory on the daemon's
 * GPU, an allocator over each, and the GPU thread that copies.
 *
 * An arena is one CUDA VMM allocation (kernels/kv_gpu.h: kv_gpu_vmm_*),
 * exported once as a POSIX file descriptor that the daemon passes, at
 * HELLO, to the clients allowed to map it; nothing else opens it (a legacy
 * IPC handle would open it for anyone who learned its 64 bytes). Clients
 * on the same GPU map it once and copy chunks out of it device to device;
 * the daemon never touches a chunk's bytes on a hit. What the daemon
 * copies itself, on its own stream, is movement between tiers: DOWN (a
 * chunk put into HBM gets its DRAM copy) and UP (a hot DRAM chunk is
 * promoted). Jobs name both ends as addresses, so one GPU thread serves
 * every arena and every DRAM arena. The DRAM arenas are page-locked by
 * their tier (tiers/dram.c), so those copies run at link speed once that
 * is done; before, CUDA stages them through its own pinned buffers.
 *
 * The GPU thread: takes every submitted job, queues each copy on the
 * stream and records an event after it (a ring of events, one per job in
 * flight), then sleeps on the oldest event; finished jobs go to the done
 * list and the eventfd is written. A failed copy finishes its job with
 * -KV_EGPU; a sticky CUDA error fails every later one too (the store then
 * stops using the tier's copies). Each arena counts its jobs not yet
 * finished (under the lock), so closing it waits for them instead of
 * unmapping memory a copy still uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"
#include "lib/key.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/hbm.h"

#define HBM_INFLIGHT	64	/* copies queued on the stream at once */

struct kv_hbm_arena {
	struct kv_hbm *h;
	struct kv_hbm_arena *next;	/* h->arenas, loop thread only */
	struct kv_gpu_vmm *mem;
	char *base;			/* device address */
	uint64_t bytes;			/* the allocator's range */
	struct kv_alloc *alloc;
	int fd;				/* exported */
	unsigned jobs;			/* submitted, not finished: under h->lock */
};

struct kv_hbm {
	struct kv_hbm_conf conf;
	char pci[KV_GPU_PCI_ID];
	struct kv_hbm_arena *arenas;	/* open ones, loop thread only */
	struct kv_gpu_stream *stream;
	struct kv_gpu_event *ev[HBM_INFLIGHT];
	int efd;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* jobs submitted, or stop */
	pthread_cond_t idle;		/* an arena's last job finished */
	bool stop;
	struct kv_move *todo;	/* submitted, FIFO */
	struct kv_move **todo_tail;
	struct kv_move *done;	/* finished, FIFO */
	struct kv_move **done_tail;
};

static void job_finish(struct kv_hbm *h, struct kv_move *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&h->lock);
	j->next = NULL;
	*h->done_tail = j;
	h->done_tail = &j->next;
	if (j->part && --((struct kv_hbm_arena *)j->part)->jobs == 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->lock);
	if (write(h->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_GPU, "hbm: eventfd write: %s", strerror(errno));
}

static int job_issue(struct kv_hbm *h, struct kv_move *j, struct kv_gpu_event *ev)
{
	const struct kv_hbm_arena *a = j->part;
	char *hbm;
	int ret;

	/* The store's bug, not the GPU's: never copy outside the arena. */
	if (!a || !j->ext || !j->host || j->bytes > a->bytes)
		return -EINVAL;
	hbm = a->base + kv_extent_offset(j->ext);
	if ((uint64_t)(hbm - a->base) > a->bytes - j->bytes)
		return -EINVAL;
	if (j->op == KV_MOVE_LOAD)
		ret = kv_gpu_memcpy(j->host, hbm, j->bytes, h->stream);
	else
		ret = kv_gpu_memcpy(hbm, j->host, j->bytes, h->stream);
	if (ret == 0)
		ret = kv_gpu_event_record(ev, h->stream);
	return ret;
}

static void *gpu_thread(void *arg)
{
	struct kv_hbm *h = arg;
	struct kv_move *fly[HBM_INFLIGHT];
	unsigned head = 0, n = 0;	/* ring of jobs in flight */

	kv_gpu_set_device(h->conf.gpu);
	for (;;) {
		struct kv_move *j;

		pthread_mutex_lock(&h->lock);
		while (!h->todo && n == 0 && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		if (!h->todo && n == 0) {	/* stopping, nothing left */
			pthread_mutex_unlock(&h->lock);
			break;
		}
		/* Queue what was submitted, as far as the ring goes. */
		while (h->todo && n < HBM_INFLIGHT) {
			unsigned slot = (head + n) % HBM_INFLIGHT;

			j = h->todo;
			h->todo = j->next;
			if (!h->todo)
				h->todo_tail = &h->todo;
			pthread_mutex_unlock(&h->lock);
			j->result = job_issue(h, j, h->ev[slot]);
			if (j->result) {
				kv_log(KV_ERR, KV_LOG_GPU, "hbm: %s copy of %llu bytes failed: %s",
				       j->op == KV_MOVE_LOAD ? "HBM->DRAM" : "DRAM->HBM",
				       (unsigned long long)j->bytes,
				       j->result == -EINVAL ? "not inside its arena" :
				       kv_gpu_last_error());
				job_finish(h, j);
			} else {
				fly[slot] = j;
				n++;
			}
			pthread_mutex_lock(&h->lock);
		}
		pthread_mutex_unlock(&h->lock);
		if (n == 0)
			continue;
		/* Sleep on the oldest copy, then hand it back. */
		j = fly[head];
		j->result = kv_gpu_event_sync(h->ev[head]);
		if (j->result)
			kv_log(KV_ERR, KV_LOG_GPU, "hbm: copy failed: %s", kv_gpu_last_error());
		head = (head + 1) % HBM_INFLIGHT;
		n--;
		job_finish(h, j);
	}
	return NULL;
}

static void hbm_free_all(struct kv_hbm *h)
{
	while (h->arenas)
		kv_hbm_arena_close(h->arenas);
	for (unsigned i = 0; i < HBM_INFLIGHT; i++)
		kv_gpu_event_destroy(h->ev[i]);
	kv_gpu_stream_destroy(h->stream);
	if (h->efd >= 0)
		close(h->efd);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	pthread_cond_destroy(&h->idle);
	free(h);
}

int kv_hbm_open(struct kv_hbm **out, const struct kv_hbm_conf *conf)
{
	struct kv_hbm *h;
	char name[128] = "";
	size_t gran = 0;
	int ret;

	if (!conf->align || (conf->align & (conf->align - 1)) || conf->gpu < 0)
		return -EINVAL;
	h = kv_xcalloc(1, sizeof(*h));
	h->conf = *conf;
	h->efd = -1;
	h->todo_tail = &h->todo;
	h->done_tail = &h->done;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_cond_init(&h->idle, NULL);
	ret = kv_gpu_set_device(conf->gpu);
	if (!ret)
		ret = kv_gpu_pci_id(conf->gpu, h->pci);
	/* Arenas are shared by fd or not at all: a driver that cannot
	 * is found here, with its reason, not at the first arena. */
	if (!ret)
		ret = kv_gpu_vmm_granularity(conf->gpu, &gran);
	if (!ret)
		ret = kv_gpu_stream_create(&h->stream);
	for (unsigned i = 0; !ret && i < HBM_INFLIGHT; i++)
		ret = kv_gpu_event_create_blocking(&h->ev[i]);
	if (!ret) {
		h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (h->efd < 0)
			ret = -errno;
	}
	if (!ret) {
		ret = -pthread_create(&h->thread, NULL, gpu_thread, h);
		h->thread_started = ret == 0;
	}
	if (ret) {
		hbm_free_all(h);
		return ret;
	}
	kv_gpu_device_name(conf->gpu, name, sizeof(name));
	kv_log(KV_INFO, KV_LOG_TIER, "hbm tier on GPU %d (%s, %s): arenas shared by file "
	       "descriptor (CUDA VMM, %zu-byte granules)", conf->gpu, name, h->pci, gran);
	*out = h;
	return 0;
}

void kv_hbm_close(struct kv_hbm *h)
{
	struct kv_move *j;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->thread_started)
		pthread_join(h->thread, NULL);	/* it finishes what it has */
	while ((j = kv_hbm_reap(h))) {
		while (j) {
			struct kv_move *next = j->next;

			free(j);
			j = next;
		}
	}
	hbm_free_all(h);
}

void kv_hbm_pci(const struct kv_hbm *h, char pci[KV_GPU_PCI_ID])
{
	memcpy(pci, h->pci, KV_GPU_PCI_ID);
}

/* ---- arenas ---------------------------------------------------------------- */

int kv_hbm_arena_open(struct kv_hbm *h, uint64_t bytes, struct kv_hbm_arena **out)
{
	struct kv_alloc_conf ac = { .size = bytes, .align = h->conf.align };
	struct kv_hbm_arena *a;
	int ret;

	if (!bytes || bytes % h->conf.align)
		return -EINVAL;
	a = kv_xcalloc(1, sizeof(*a));
	a->h = h;
	a->bytes = bytes;
	a->fd = -1;
	ret = kv_fault_hit(KV_FAULT_GPU) ? -KV_EGPU :
	      kv_gpu_vmm_create(h->conf.gpu, (size_t)bytes, &a->mem);
	if (!ret) {
		a->base = kv_gpu_vmm_ptr(a->mem);
		ret = kv_gpu_vmm_export(a->mem, &a->fd);
	}
	if (!ret)
		ret = kv_alloc_open(&a->alloc, &ac);
	if (ret) {		/* the caller logs it: kv_gpu_last_error() */
		if (a->fd >= 0)
			close(a->fd);
		kv_gpu_vmm_close(a->mem);
		free(a);
		return ret;
	}
	a->next = h->arenas;
	h->arenas = a;
	kv_log(KV_DEBUG, KV_LOG_TIER, "hbm arena: %llu bytes (%zu mapped) on GPU %d",
	       (unsigned long long)bytes, kv_gpu_vmm_size(a->mem), h->conf.gpu);
	*out = a;
	return 0;
}

void kv_hbm_arena_close(struct kv_hbm_arena *a)
{
	struct kv_hbm *h;
	struct kv_hbm_arena **p;

	if (!a)
		return;
	h = a->h;
	pthread_mutex_lock(&h->lock);
	while (a->jobs)
		pthread_cond_wait(&h->idle, &h->lock);
	pthread_mutex_unlock(&h->lock);
	for (p = &h->arenas; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			break;
		}
	}
	close(a->fd);
	kv_gpu_vmm_close(a->mem);
	kv_alloc_close(a->alloc);
	free(a);
}

int kv_hbm_arena_fd(const struct kv_hbm_arena *a)
{
	return a->fd;
}

uint64_t kv_hbm_arena_bytes(const struct kv_hbm_arena *a)
{
	return a->bytes;
}

uint64_t kv_hbm_arena_map_bytes(const struct kv_hbm_arena *a)
{
	return kv_gpu_vmm_size(a->mem);
}

void *kv_hbm_arena_base(const struct kv_hbm_arena *a)
{
	return a->base;
}

int kv_hbm_arena_alloc(struct kv_hbm_arena *a, uint64_t bytes, struct kv_extent **out)
{
	return kv_alloc_get(a->alloc, bytes, out);
}

void kv_hbm_arena_free(struct kv_hbm_arena *a, struct kv_extent *e)
{
	kv_alloc_put(a->alloc, e);
}

void kv_hbm_arena_stats(const struct kv_hbm_arena *a, struct kv_alloc_stats *st)
{
	kv_alloc_stats(a->alloc, st);
}

/* ---- copies ---------------------------------------------------------------- */

void kv_hbm_submit(struct kv_hbm *h, struct kv_move *j)
{
	j->next = NULL;
	j->result = 0;
	pthread_mutex_lock(&h->lock);
	if (j->part)
		((struct kv_hbm_arena *)j->part)->jobs++;
	*h->todo_tail = j;
	h->todo_tail = &j->next;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

int kv_hbm_event_fd(const struct kv_hbm *h)
{
	return h->efd;
}

struct kv_move *kv_hbm_reap(struct kv_hbm *h)
{
	struct kv_move *j;
	uint64_t v;

	if (read(h->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_GPU, "hbm: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&h->lock);
	j = h->done;
	h->done = NULL;
	h->done_tail = &h->done;
	pthread_mutex_unlock(&h->lock);
	return j;
}

/* ---- the generic tier table: one arena ----------------------------------- */

static void hbm_close_op(void *priv)
{
	kv_hbm_arena_close(priv);
}

static int hbm_alloc_op(void *priv, uint64_t bytes, struct kv_extent **out)
{
	return kv_hbm_arena_alloc(priv, bytes, out);
}

static void hbm_free_op(void *priv, struct kv_extent *e)
{
	kv_hbm_arena_free(priv, e);
}

static void hbm_stats_op(void *priv, struct kv_alloc_stats *st)
{
	kv_hbm_arena_stats(priv, st);
}

static int hbm_share_fd_op(void *priv, uint64_t *bytes)
{
	*bytes = kv_hbm_arena_map_bytes(priv);
	return kv_hbm_arena_fd(priv);
}

static void *hbm_base_op(void *priv)
{
	return kv_hbm_arena_base(priv);
}

/* Moves: priv is the struct kv_hbm, the arena in kv_move.part. */
static struct kv_move *hbm_move_new_op(void *priv)
{
	return kv_xcalloc(1, sizeof(struct kv_move));
}

static void hbm_move_free_op(void *priv, struct kv_move *m)
{
	free(m);
}

static void hbm_submit_op(void *priv, struct kv_move *m)
{
	kv_hbm_submit(priv, m);
}

static struct kv_move *hbm_reap_op(void *priv)
{
	return kv_hbm_reap(priv);
}

static int hbm_event_fd_op(void *priv)
{
	return kv_hbm_event_fd(priv);
}

const struct kv_tier_ops kv_tier_hbm = {
	.name		= "hbm",
	.id		= KV_TIER_HBM,
	.close		= hbm_close_op,
	.alloc		= hbm_alloc_op,
	.free		= hbm_free_op,
	.stats		= hbm_stats_op,
	.share_fd	= hbm_share_fd_op,
	.base		= hbm_base_op,
	.move_new	= hbm_move_new_op,
	.move_free	= hbm_move_free_op,
	.submit		= hbm_submit_op,
	.reap		= hbm_reap_op,
	.event_fd	= hbm_event_fd_op,
};
