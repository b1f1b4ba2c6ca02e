/*
 * hbm.c - the HBM tier: one cudaMalloc arena on the daemon's GPU, exported
 * with CUDA IPC, an allocator over it, and the GPU thread that copies.
 *
 * Clients on the same GPU open the arena once (the IPC handle comes in the
 * HELLO reply) and copy chunks out of it device to device; the daemon never
 * touches a chunk's bytes on a hit. What the daemon copies itself, on its
 * own stream, is movement between tiers: DOWN (a chunk put into HBM gets
 * its DRAM copy) and UP (a hot DRAM chunk is promoted). The DRAM arena is
 * page-locked by its tier (tiers/dram.c), so those run at link speed once
 * that is done; before, CUDA stages them through its own pinned buffers.
 *
 * The GPU thread: takes every submitted job, queues each copy on the
 * stream and records an event after it (a ring of events, one per job in
 * flight), then sleeps on the oldest event; finished jobs go to the done
 * list and the eventfd is written. A failed copy finishes its job with
 * -KV_EGPU; a sticky CUDA error fails every later one too (the store then
 * stops using the tier's copies).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kernels/kv_gpu.h"
#include "kvstore/errors.h"
#include "kvstore/log.h"
#include "kvstore/util.h"
#include "tiers/hbm.h"

#define HBM_INFLIGHT	64	/* copies queued on the stream at once */

struct kv_hbm {
	struct kv_hbm_conf conf;
	void *base;			/* device memory */
	struct kv_alloc *alloc;
	uint8_t ipc[KV_HBM_IPC_BYTES];
	char pci[KV_HBM_PCI_BYTES];
	struct kv_gpu_stream *stream;
	struct kv_gpu_event *ev[HBM_INFLIGHT];
	int efd;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct kv_hbm_job *todo;	/* submitted, FIFO */
	struct kv_hbm_job **todo_tail;
	struct kv_hbm_job *done;	/* finished, FIFO */
	struct kv_hbm_job **done_tail;
};

static void job_finish(struct kv_hbm *h, struct kv_hbm_job *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&h->lock);
	j->next = NULL;
	*h->done_tail = j;
	h->done_tail = &j->next;
	pthread_mutex_unlock(&h->lock);
	if (write(h->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_GPU, "hbm: eventfd write: %s", strerror(errno));
}

static int job_issue(struct kv_hbm *h, struct kv_hbm_job *j, struct kv_gpu_event *ev)
{
	char *hbm = (char *)h->base + j->hbm_off;
	char *dram = (char *)h->conf.dram_base + j->dram_off;
	int ret;

	if (j->op == KV_HBM_DOWN)
		ret = kv_gpu_memcpy(dram, hbm, j->bytes, h->stream);
	else
		ret = kv_gpu_memcpy(hbm, dram, j->bytes, h->stream);
	if (ret == 0)
		ret = kv_gpu_event_record(ev, h->stream);
	return ret;
}

static void *gpu_thread(void *arg)
{
	struct kv_hbm *h = arg;
	struct kv_hbm_job *fly[HBM_INFLIGHT];
	unsigned head = 0, n = 0;	/* ring of jobs in flight */

	kv_gpu_set_device(h->conf.gpu);
	for (;;) {
		struct kv_hbm_job *j;

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
				       j->op == KV_HBM_DOWN ? "HBM->DRAM" : "DRAM->HBM",
				       (unsigned long long)j->bytes, kv_gpu_last_error());
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
	for (unsigned i = 0; i < HBM_INFLIGHT; i++)
		kv_gpu_event_destroy(h->ev[i]);
	kv_gpu_stream_destroy(h->stream);
	kv_gpu_free(h->base);
	kv_alloc_close(h->alloc);
	if (h->efd >= 0)
		close(h->efd);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h);
}

int kv_hbm_open(struct kv_hbm **out, const struct kv_hbm_conf *conf)
{
	struct kv_alloc_conf ac = { .size = conf->bytes, .align = conf->align };
	struct kv_hbm *h;
	char name[128] = "";
	int ret;

	if (!conf->bytes || !conf->align || conf->bytes % conf->align || conf->gpu < 0)
		return -EINVAL;
	h = kv_xcalloc(1, sizeof(*h));
	h->conf = *conf;
	h->efd = -1;
	h->todo_tail = &h->todo;
	h->done_tail = &h->done;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	ret = kv_gpu_set_device(conf->gpu);
	if (!ret)
		ret = kv_gpu_pci_id(conf->gpu, h->pci);
	if (!ret)
		ret = kv_fault_hit(KV_FAULT_GPU) ? -KV_EGPU : kv_gpu_malloc(conf->bytes, &h->base);
	if (!ret)
		ret = kv_gpu_ipc_export(h->base, h->ipc);
	if (!ret)
		ret = kv_gpu_stream_create(&h->stream);
	for (unsigned i = 0; !ret && i < HBM_INFLIGHT; i++)
		ret = kv_gpu_event_create_blocking(&h->ev[i]);
	if (!ret)
		ret = kv_alloc_open(&h->alloc, &ac);
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
	kv_log(KV_INFO, KV_LOG_TIER, "hbm tier: %llu bytes on GPU %d (%s, %s), shared by CUDA IPC",
	       (unsigned long long)conf->bytes, conf->gpu, name, h->pci);
	*out = h;
	return 0;
}

void kv_hbm_close(struct kv_hbm *h)
{
	struct kv_hbm_job *j;

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
			struct kv_hbm_job *next = j->next;

			free(j);
			j = next;
		}
	}
	hbm_free_all(h);
}

void kv_hbm_export(const struct kv_hbm *h, uint64_t *bytes,
		   char pci[KV_HBM_PCI_BYTES], uint8_t ipc[KV_HBM_IPC_BYTES])
{
	*bytes = h->conf.bytes;
	memcpy(pci, h->pci, KV_HBM_PCI_BYTES);
	memcpy(ipc, h->ipc, KV_HBM_IPC_BYTES);
}

void kv_hbm_submit(struct kv_hbm *h, struct kv_hbm_job *j)
{
	j->next = NULL;
	j->result = 0;
	pthread_mutex_lock(&h->lock);
	*h->todo_tail = j;
	h->todo_tail = &j->next;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

int kv_hbm_event_fd(const struct kv_hbm *h)
{
	return h->efd;
}

struct kv_hbm_job *kv_hbm_reap(struct kv_hbm *h)
{
	struct kv_hbm_job *j;
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

/* ---- the generic tier table: the allocator ------------------------------ */

static void hbm_close_op(void *priv)
{
	kv_hbm_close(priv);
}

static int hbm_alloc_op(void *priv, uint64_t bytes, struct kv_extent **out)
{
	struct kv_hbm *h = priv;

	return kv_alloc_get(h->alloc, bytes, out);
}

static void hbm_free_op(void *priv, struct kv_extent *e)
{
	struct kv_hbm *h = priv;

	kv_alloc_put(h->alloc, e);
}

static void hbm_stats_op(void *priv, struct kv_alloc_stats *st)
{
	struct kv_hbm *h = priv;

	kv_alloc_stats(h->alloc, st);
}

const struct kv_tier_ops kv_tier_hbm = {
	.name		= "hbm",
	.id		= KV_TIER_HBM,
	.close		= hbm_close_op,
	.alloc		= hbm_alloc_op,
	.free		= hbm_free_op,
	.stats		= hbm_stats_op,
};
