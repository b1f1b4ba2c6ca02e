/*
 * ssd_io.h - the SSD tier's I/O engine: reads and writes of the tier's
 * address space through io_uring, or pread/pwrite where io_uring is refused.
 *
 * The tier's space [0, n_files * file_bytes) is laid over its data files:
 * address a is byte a % file_bytes of file a / file_bytes. An operation
 * (kv_io_queue) covers any aligned range; the engine splits it at file
 * boundaries and into requests of at most seg_bytes, keeps up to
 * queue_depth requests in flight, resubmits the rest of a short transfer
 * and a request that ends in -EAGAIN or -EINTR, and reports the operation
 * once, when every byte has moved or one request failed.
 *
 * With io_uring: one ring sized to queue_depth, its completion queue twice
 * that (completions are reaped before more is submitted, so it cannot
 * overflow; an overflow is logged if the kernel ever reports one).
 * Completions are matched by user_data. reg_base..+reg_len is registered as
 * fixed buffers (in pieces of at most 1 GiB) and requests inside it use
 * READ_FIXED / WRITE_FIXED; when registration is refused (RLIMIT_MEMLOCK),
 * one INFO line says so and plain requests are used.
 *
 * When io_uring_queue_init() fails (seccomp, kernel.io_uring_disabled, an
 * old kernel) or the KV_FAULT_URING point fires, or conf->sync is set, the
 * engine does the same work with pread/pwrite on the calling thread and
 * says so once in the log (WARN when refused, INFO when asked for).
 *
 * Fault points: KV_FAULT_IO fails one request with -EIO; KV_FAULT_SHORT
 * submits one request with half its length (at least one block), as a
 * device returning a short transfer would, which the engine must finish.
 *
 * Locking: one thread (the SSD tier's I/O thread) calls everything except
 * kv_io_wake(), which any thread may call.
 */
#ifndef KV_SSD_IO_H
#define KV_SSD_IO_H

#include <stdbool.h>
#include <stdint.h>

struct kv_io_conf {
	const int *fds;			/* data files (borrowed), n_files of them */
	unsigned n_files;
	uint64_t file_bytes;		/* each file's size: a multiple of block */
	uint32_t block;			/* offsets and lengths are multiples */
	uint32_t mem_align;		/* buffers are aligned to this (power of 2) */
	unsigned queue_depth;		/* requests in flight at most, 1..4096 */
	uint32_t seg_bytes;		/* largest request: a multiple of block */
	void *reg_base;			/* memory to register, or NULL */
	uint64_t reg_len;
	bool sync;			/* use pread/pwrite even if io_uring works */
};

struct kv_io;			/* opaque */

/*
 * Set up the engine. Returns 0 and stores it in *out, or -EINVAL (a bad
 * conf) or -errno (eventfd), with *out untouched. An io_uring refusal is
 * not an error: the engine falls back.
 */
int kv_io_open(struct kv_io **out, const struct kv_io_conf *conf);

/* Free the engine. Operations still queued or in flight are waited for
 * (their callbacks are not called). Accepts NULL. */
void kv_io_close(struct kv_io *io);

/* true when io_uring is in use, false on the pread/pwrite path. */
bool kv_io_uring(const struct kv_io *io);

/*
 * Queue an operation: len bytes between buf and the tier's space at addr.
 * addr and len must be multiples of block and within the space, buf
 * aligned to mem_align; buf must stay valid until the operation is
 * reported. Nothing happens before kv_io_run(). Returns 0 or -EINVAL.
 * There is no limit on queued operations: they wait for ring slots.
 */
int kv_io_queue(struct kv_io *io, bool write, uint64_t addr, void *buf,
		uint64_t len, void *tag);

/* Reports a finished operation: res 0, or -errno (-EIO for a transfer
 * that stopped short at the end of a file). Called from kv_io_run(). */
typedef void kv_io_done_fn(void *arg, void *tag, int res);

/*
 * Submit what fits, reap completions, and call done for every operation
 * that finished. With wait, block until at least one operation finished
 * or kv_io_wake() was called (if nothing is queued or in flight, only the
 * latter ends the wait). Returns how many operations were reported, or a
 * negative errno when the ring itself failed (the caller should stop).
 */
int kv_io_run(struct kv_io *io, bool wait, kv_io_done_fn *done, void *arg);

/* Make a waiting (or the next) kv_io_run() return. Any thread. */
void kv_io_wake(struct kv_io *io);

/* Operations queued or in flight. */
unsigned kv_io_pending(const struct kv_io *io);

/* fdatasync every data file. 0 or -errno. Blocks the calling thread. */
int kv_io_sync(struct kv_io *io);

/*
 * The O_DIRECT rules of an open file from statx(STATX_DIOALIGN): memory
 * alignment and offset/length granule. Where the kernel does not say,
 * 4096 for both. Returns 0, or -EINVAL when the file cannot do O_DIRECT.
 */
int kv_io_dio_align(int fd, uint32_t *mem_align, uint32_t *block);

#endif
