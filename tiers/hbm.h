/*
 * hbm.h - the HBM tier: a cudaMalloc arena on the daemon's GPU, shared with
 * clients through CUDA IPC, and a GPU thread that copies chunks between it
 * and the DRAM arena.
 *
 * The loop thread owns the allocator (kv_tier_hbm's alloc/free/stats); the
 * GPU thread owns the daemon's CUDA stream and runs copy jobs in order:
 * the loop thread submits a job, the GPU thread queues it on the stream,
 * waits (sleeping) for its event, and hands it back through an eventfd
 * (kv_hbm_event_fd() readable: call kv_hbm_reap()). Jobs belong to the tier
 * from kv_hbm_submit() to kv_hbm_reap().
 *
 * A daemon without a GPU (or a CUDA build on a machine without one) cannot
 * open the tier: kv_hbm_open() says why and the daemon serves without it.
 */
#ifndef KV_HBM_H
#define KV_HBM_H

#include <stdint.h>

#include "kvstore/proto.h"
#include "tiers/alloc.h"
#include "tiers/tier.h"

struct kv_hbm;

struct kv_hbm_conf {
	uint64_t bytes;		/* arena size */
	uint64_t align;		/* allocation granule */
	int gpu;		/* CUDA device */
	void *dram_base;	/* the DRAM arena (the other end of copies) */
	uint64_t dram_bytes;
};

enum kv_hbm_op {
	KV_HBM_DOWN,		/* HBM -> DRAM (a put into HBM gets its DRAM copy) */
	KV_HBM_UP,		/* DRAM -> HBM (a promotion) */
};

struct kv_hbm_job {
	struct kv_hbm_job *next;	/* the tier's queues */
	uint8_t op;			/* enum kv_hbm_op */
	uint64_t hbm_off;
	uint64_t dram_off;
	uint64_t bytes;
	void *cookie;			/* the submitter's */
	int result;			/* at reap: 0 or -KV_EGPU */
};

/*
 * Open the tier on conf->gpu. Returns 0 and stores it in *out, or
 * -KV_ENOGPU (no such device; why says so in the log line the caller
 * writes: see kv_gpu_last_error()), -KV_EGPU, -EINVAL.
 */
int kv_hbm_open(struct kv_hbm **out, const struct kv_hbm_conf *conf);

/* Wait for queued copies, stop the GPU thread, free the arena. Accepts
 * NULL. Jobs not reaped are freed. */
void kv_hbm_close(struct kv_hbm *h);

/* What a client needs to open the arena: size, GPU PCI id, IPC handle. */
void kv_hbm_export(const struct kv_hbm *h, uint64_t *bytes,
		   char pci[KV_HBM_PCI_BYTES], uint8_t ipc[KV_HBM_IPC_BYTES]);

/* Queue a copy; it is reaped later. Bounds are the caller's to respect. */
void kv_hbm_submit(struct kv_hbm *h, struct kv_hbm_job *j);

/* Readable when jobs finished. */
int kv_hbm_event_fd(const struct kv_hbm *h);

/* Finished jobs, oldest first, linked by next (NULL: none). */
struct kv_hbm_job *kv_hbm_reap(struct kv_hbm *h);

/* The arena's allocator, behind the generic tier table. */
extern const struct kv_tier_ops kv_tier_hbm;

#endif
