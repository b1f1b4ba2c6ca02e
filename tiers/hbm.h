/*
 * hbm.h - the HBM tier: arenas of device memory on the daemon's GPU, each
 * shared with the clients it is handed to as a file descriptor, and one GPU
 * thread that copies chunks between them and DRAM arenas.
 *
 * struct kv_hbm is the tier on one GPU: its CUDA stream and the GPU thread.
 * struct kv_hbm_arena is one allocation in it (the CUDA VMM API, exported
 * as a POSIX fd: kernels/kv_gpu.h) with its own allocator; a store opens
 * as many as it has tenants, and hands each one's fd only to that tenant's
 * clients (SCM_RIGHTS at HELLO), so no other process can map it.
 *
 * Threads: the loop thread owns the arenas and their allocators; the GPU
 * thread owns the daemon's CUDA stream and runs copy jobs in order: the
 * loop thread submits a job, the GPU thread queues it on the stream, waits
 * (sleeping) for its event, and hands it back through an eventfd
 * (kv_hbm_event_fd() readable: call kv_hbm_reap()). Jobs belong to the tier
 * from kv_hbm_submit() to kv_hbm_reap().
 *
 * A daemon without a GPU (or a CUDA build on a machine without one, or a
 * driver without VMM file descriptors) cannot open the tier: kv_hbm_open()
 * fails, kv_gpu_last_error() says why, and the daemon serves without it.
 */
#ifndef KV_HBM_H
#define KV_HBM_H

#include <stdint.h>

#include "kernels/kv_gpu.h"
#include "tiers/alloc.h"
#include "tiers/tier.h"

struct kv_hbm;			/* opaque: the tier on one GPU */
struct kv_hbm_arena;		/* opaque: one shareable arena in it */

struct kv_hbm_conf {
	uint64_t align;		/* allocation granule inside arenas (a power of
				 * two >= 64) */
	int gpu;		/* CUDA device */
};

/*
 * Open the tier on conf->gpu: its stream and GPU thread, no memory yet.
 * Returns 0 and stores it in *out, or -EINVAL, -KV_ENOGPU (no such device
 * or no driver), -KV_EGPU (a CUDA failure, or a driver that cannot share
 * device memory by file descriptor); kv_gpu_last_error() names the cause
 * for the caller's log line.
 */
int kv_hbm_open(struct kv_hbm **out, const struct kv_hbm_conf *conf);

/* Wait for queued copies, stop the GPU thread, close the arenas still open
 * and free the tier. Jobs not reaped are freed. Accepts NULL. */
void kv_hbm_close(struct kv_hbm *h);

/* The GPU's PCI bus id ("0000:3b:00.0", NUL-padded), which names it the
 * same in every process. */
void kv_hbm_pci(const struct kv_hbm *h, char pci[KV_GPU_PCI_ID]);

/*
 * Open an arena of bytes (a multiple of conf->align) on the tier's GPU: a
 * shareable allocation rounded up to the GPU's granularity (its mapped
 * size, kv_hbm_arena_map_bytes()), an allocator over the first bytes of
 * it, and the fd clients import it from. Returns 0 and *out (close with
 * kv_hbm_arena_close()), or -EINVAL, -ENOMEM, -KV_EGPU (device memory
 * short too; kv_gpu_last_error() says why), -KV_ENOGPU.
 */
int kv_hbm_arena_open(struct kv_hbm *h, uint64_t bytes, struct kv_hbm_arena **out);

/*
 * Wait for the arena's copies still queued (their jobs are reaped as
 * usual), then unmap it and close its fd. Clients that imported it keep
 * their mappings: the memory goes when the last of them does. Extents
 * still handed out are freed with the allocator. Accepts NULL.
 */
void kv_hbm_arena_close(struct kv_hbm_arena *a);

/* The fd that imports the arena (borrowed: the arena closes it); pass it
 * with SCM_RIGHTS to the processes that may map the arena, and only to
 * them. */
int kv_hbm_arena_fd(const struct kv_hbm_arena *a);

uint64_t kv_hbm_arena_bytes(const struct kv_hbm_arena *a);	/* allocator's range */
uint64_t kv_hbm_arena_map_bytes(const struct kv_hbm_arena *a);	/* mapped: granules */
void *kv_hbm_arena_base(const struct kv_hbm_arena *a);		/* device address */

/* The arena's allocator (tiers/alloc.h): offsets from kv_hbm_arena_base(). */
int kv_hbm_arena_alloc(struct kv_hbm_arena *a, uint64_t bytes, struct kv_extent **out);
void kv_hbm_arena_free(struct kv_hbm_arena *a, struct kv_extent *e);
void kv_hbm_arena_stats(const struct kv_hbm_arena *a, struct kv_alloc_stats *st);

/*
 * Queue a copy (tiers/tier.h: m->part the arena, m->ext the extent in it,
 * m->host the DRAM end, m->bytes; STORE DRAM -> HBM, LOAD HBM -> DRAM); it
 * is reaped later with result 0, -KV_EGPU, or -EINVAL (not inside the
 * arena). The DRAM end is the caller's to keep valid until then.
 */
void kv_hbm_submit(struct kv_hbm *h, struct kv_move *m);

/* Readable when jobs finished. */
int kv_hbm_event_fd(const struct kv_hbm *h);

/* Finished jobs, oldest first, linked by next (NULL: none). */
struct kv_move *kv_hbm_reap(struct kv_hbm *h);

/*
 * kv_tier_hbm (tiers/tier.h): one arena behind the generic table (priv a
 * struct kv_hbm_arena *; no open: kv_hbm_arena_open() makes one): close,
 * alloc, free, stats, share_fd (its fd and mapped size) and base. Its move
 * verbs take the struct kv_hbm (the GPU thread every arena shares), with
 * the arena in kv_move.part: STORE copies DRAM -> HBM (a promotion), LOAD
 * HBM -> DRAM (a chunk put into HBM gets its DRAM copy).
 */

#endif
