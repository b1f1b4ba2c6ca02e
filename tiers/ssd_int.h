/*
 * ssd_int.h - the SSD tier's private state, shared by ssd.c (jobs, the I/O
 * thread, space) and ssd_open.c (opening, loading the index, closing).
 * Nothing outside tiers/ssd*.c includes it.
 *
 * Two threads touch a struct kv_ssd: see ssd.c.
 */
#ifndef KV_SSD_INT_H
#define KV_SSD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tiers/alloc.h"
#include "tiers/codec.h"
#include "tiers/ssd.h"
#include "tiers/ssd_io.h"
#include "tiers/ssd_meta.h"

#define FILE_BYTES_MAX	(1ull << 30)	/* data files are at most 1 GiB */
#define BOUNCE_KEEP	(256ull << 20)	/* idle staging buffers kept, bytes */
#define BOUNCE_SLOTS	64
#define SEG_DEFAULT	(1u << 20)

struct ssd_ns {
	uint32_t id;
	uid_t uid;
	char *name;
	uint64_t salt;			/* kv_ssd_salt(name) */
};

struct kv_ssd {
	struct kv_ssd_conf conf;
	char *dir;
	int *fds;
	unsigned n_files;
	uint64_t file_bytes;
	uint64_t space;			/* n_files * file_bytes */
	uint32_t block;
	uint32_t mem_align;
	struct kv_alloc *alloc;		/* loop thread */
	struct kv_ssd_meta *meta;	/* I/O thread once started */
	int lock_fd;			/* DIR/LOCK, write-locked while open */
	/* What this start found and made, for undo_start() and load(). */
	bool undo;			/* the lock is ours: undo may touch DIR */
	bool made_dir;
	bool made_index;
	bool *made_file;		/* per data file */
	uint64_t *old_size;		/* per data file: its size before this
					 * start (0: missing) */
	uint64_t records_missing;	/* forgotten at open: data file missing
					 * or short */
	uint64_t records_wrong_ns;	/* forgotten at open: salt mismatch */
	struct kv_io *io;		/* I/O thread once started */
	struct kv_codec_ctx *cx;	/* I/O thread */
	char *dram;			/* the DRAM arena */
	uint64_t dram_bytes;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	struct kv_ssd_job *in_head;	/* submitted, not taken; lock */
	struct kv_ssd_job *in_tail;
	struct kv_ssd_job *out_head;	/* finished, not reaped; lock */
	struct kv_ssd_job *out_tail;
	bool stop;			/* lock */
	int efd;			/* finished jobs wait */

	/* the namespaces found at open (the index is the I/O thread's after) */
	struct ssd_ns *ns;
	size_t n_ns;

	/* I/O thread only */
	struct kv_ssd_op *ops;		/* index changes not yet committed */
	size_t n_ops;
	size_t cap_ops;
	bool forget_pending;		/* ops holds a FORGET */
	int sync_err;			/* a commit failed since the last SYNC */
	struct kv_ssd_job *committing;	/* writes done, records in ops */
	struct kv_ssd_job *in_flight;	/* writes queued on the engine */
	/* Idle staging buffers: a fresh 32 MiB one per compressed chunk
	 * costs the kernel zeroing its pages, measured at half this thread's
	 * time at queue depth 32, so they are kept for the next job. */
	void *idle[BOUNCE_SLOTS];
	uint64_t idle_cap[BOUNCE_SLOTS];
	unsigned n_idle;
	uint64_t idle_bytes;
	/* Staging memory held by jobs in flight is bounded too: past
	 * BOUNCE_KEEP, jobs that need it wait here, in order. */
	uint64_t bounce_out;
	struct kv_ssd_job *stalled;
	struct kv_ssd_job *stalled_tail;

	_Atomic uint64_t bytes_written;
	_Atomic uint64_t raw_written;
	_Atomic uint64_t bytes_read;
	_Atomic uint64_t checksum_failures;
	_Atomic uint64_t io_errors;
};

static inline uint64_t round_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

/* The I/O thread (ssd.c), which kv_ssd_open() starts. */
void *kv_ssd_io_thread(void *arg);

#endif
