/*
 * kvc_gpu_int.h - what client/kvc_gpu.c shares with client/kvc_paged.c: the
 * handle's GPU state, and the calls that page-lock the DRAM mapping and
 * hold chunks until their copies are done. Not installed, not exported
 * from libkvc.so.
 */
#ifndef KVC_GPU_INT_H
#define KVC_GPU_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"

struct pending;			/* kvc_gpu.c's record of a copy in flight */

struct kvc_gpu {
	pthread_mutex_t lock;
	struct kvc *c;
	int dev;
	unsigned flags;
	struct kv_gpu_vmm *hbm_map;	/* the daemon's HBM arena, imported */
	void *hbm;			/* ... where it is mapped, or NULL */
	enum kvc_gpu_mode mode;
	struct kv_gpu_ctx *ctx;		/* paged copies */
	size_t staging;			/* ... its staging buffer size */
	/* the DRAM mapping */
	char *dram;
	size_t dram_bytes;
	size_t n_slabs;
	uint8_t *slab;			/* enum slab_state, under reg_lock */
	pthread_mutex_t reg_lock;
	_Atomic uint64_t registered;	/* bytes */
	pthread_t bg;
	bool bg_started;
	atomic_bool bg_stop;
	/* copies in flight, oldest first, finished by the completion thread */
	struct pending *head;
	struct pending **tail;
	pthread_cond_t more;		/* a record was added, or stop */
	pthread_cond_t less;		/* a record was finished */
	pthread_t done_thread;
	bool done_started;
	bool stop;
	int error;			/* first asynchronous failure (copy, commit) */
};

/* The handle's GPU state, opened with kvc_gpu_open(c, -1, 0) if it has
 * none yet. */
int kvci_gpu_get(struct kvc *c, struct kvc_gpu **out);

/*
 * Page-lock the slabs of the DRAM mapping [off, off + len) lies in.
 * Returns whether all of them are: when not, the copy must go through the
 * copy engine from pageable memory, never a kernel reading it.
 */
bool kvci_dram_pin(struct kvc_gpu *g, uint64_t off, uint64_t len);

/*
 * Hold keys (pins to release, or puts to commit) until the work queued on
 * stream so far is done. Called with g->lock held.
 */
int kvci_pending_add(struct kvc_gpu *g, struct kv_gpu_stream *stream, uint32_t ns,
		     bool commit, const struct kvc_key *keys, size_t n);

#endif
