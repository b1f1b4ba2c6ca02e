/*
 * ssd.h - the SSD tier: chunks in preallocated O_DIRECT files, an LMDB
 * index, checksums and codecs, worked by one I/O thread.
 *
 * The store (kvstore/store.c) keeps deciding everything on the loop
 * thread: which chunk goes down or up, where in the tier's space it goes
 * (the tier's extent allocator, kv_tier_ssd.alloc), what is evicted. This
 * module moves the bytes and keeps the index: the store hands it jobs and
 * reaps them when they are done (kv_ssd_event_fd() becomes readable).
 *
 *   WRITE   encode the chunk's DRAM bytes (codec), checksum them, write them
 *           to the extent the store allocated, then (batched with other
 *           writes) fdatasync the files and commit the index record. The job
 *           comes back with the record as stored; the extent's tail beyond
 *           the stored length is the store's to trim (kv_ssd_trim).
 *   READ    read a chunk's stored bytes, check the checksum, decode them
 *           into the DRAM extent. -KV_ECORRUPT on a checksum or decode
 *           failure: the DRAM extent then holds garbage and must not be
 *           shown to anyone.
 *   FORGET  delete a chunk's index record. Jobs run in submission order as
 *           far as the index goes: a FORGET is committed before any later
 *           WRITE's data reaches the disk, so space freed by an eviction is
 *           never overwritten while a record still points at it.
 *   NS      record a namespace (id, owner, name), so ids mean the same after
 *           a restart. The job comes back with the record's result: the
 *           store lets no chunk of the namespace be written before it is 0.
 *   NS_DROP forget a namespace: delete every chunk record under its id and
 *           its own record, in one transaction, after the deletes already
 *           submitted.
 *   SYNC    come back once every index change submitted before it is on
 *           the disk, with 0 or the error of a commit that lost some since
 *           the last SYNC: a drop is durable when it is answered.
 *
 * Every WRITE and READ carries the namespace's salt in rec.salt: the
 * checksum is seeded with it (kv_ssd_seed()) and the record keeps it, so a
 * record whose namespace id comes to name another namespace fails.
 *
 * On-disk layout (docs/ssd.md): DIR/LOCK (write-locked with fcntl by the
 * daemon that has the tier open), DIR/data.N (N from 0), each file_bytes
 * long and preallocated at open; DIR/index/ (LMDB, tiers/ssd_meta.h).
 *
 * Locking: everything here is called on the loop thread; the I/O thread is
 * internal. Jobs belong to the tier from kv_ssd_submit() to kv_ssd_reap().
 */
#ifndef KV_SSD_H
#define KV_SSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/key.h"
#include "tiers/ssd_meta.h"
#include "tiers/tier.h"

struct kv_ssd_conf {
	const char *dir;
	uint64_t bytes;			/* capacity; rounded down to the block */
	uint64_t file_bytes;		/* per data file; 0: min(bytes, 16 GiB) */
	unsigned queue_depth;		/* I/O requests in flight */
	uint32_t seg_bytes;		/* largest I/O request; 0: 1 MiB */
	int level;			/* zstd level */
	bool sync;			/* fdatasync before each index commit */
	bool io_sync;			/* pread/pwrite instead of io_uring */
	void *dram_base;		/* the DRAM arena (jobs address it) */
	uint64_t dram_bytes;
};

enum kv_ssd_job_op {
	KV_SSD_WRITE,
	KV_SSD_READ,
	KV_SSD_FORGET,
	KV_SSD_NS,
	KV_SSD_NS_DROP,
	KV_SSD_SYNC,
};

struct kv_ssd_job {
	struct kv_move m;		/* the generic job (tiers/tier.h): a move
					 * submitted through kv_tier_ssd's verbs
					 * fills the fields below from it; every
					 * job comes back from its reap() as this,
					 * KV_MOVE_OWN for the ones submitted with
					 * kv_ssd_submit() (kv_ssd_job_of()) */
	struct kv_ssd_job *next;	/* the tier's queues, then the reap list */
	uint8_t op;			/* enum kv_ssd_job_op */
	uint8_t codec;			/* WRITE: the codec wanted */
	int result;			/* at reap: 0 or a negative error */
	uint32_t ns;
	struct kv_key key;
	struct kv_ssd_rec rec;		/* WRITE: in, the chunk's fields; out,
					 * offset, stored, codec, checksum.
					 * READ: the chunk's record. */
	uint64_t dram_off;		/* WRITE: source; READ: destination */
	uint64_t dram_len;		/* that DRAM extent's size */
	uint64_t ssd_len;		/* WRITE: the SSD extent's size (its
					 * offset is rec.offset) */
	void *cookie;			/* the store's: its chunk */
	uid_t uid;			/* NS */
	char name[256];			/* NS: NUL-terminated (NS_DROP: ns) */
	/* the tier's own, while the job is in the tier */
	void *bounce;			/* aligned staging buffer, or NULL */
	uint64_t bounce_cap;		/* its size */
	uint64_t io_len;		/* bytes moved: stored, block-padded */
	struct kv_ssd_job *wnext;	/* writes in flight or to commit */
};

struct kv_ssd;			/* opaque: the tier's private state */

/* What kv_ssd_open() found on the disk, for the store to rebuild. */
typedef int kv_ssd_found_fn(void *arg, uint32_t ns, const struct kv_key *key,
			    const struct kv_ssd_rec *rec, struct kv_extent *ext);
typedef int kv_ssd_ns_fn(void *arg, uint32_t id, uid_t uid, const char *name);

/*
 * Open the tier: make the directory, take its lock (DIR/LOCK), make and
 * preallocate the data files (only what is missing: a restart keeps its
 * data), open the index, claim the space of every chunk record that fits
 * and hand it to found() with its extent, then start the I/O thread.
 * Records are forgotten (deleted, counted, one WARN line per reason) when
 * they do not fit or overlap another, when their data file was missing or
 * shorter than their bytes at this start, or when their salt is not that
 * of the name recorded for their namespace id. Returns 0 and the tier in
 * *out, or, everything logged and what this start made removed again:
 *   -KV_ELOCKED  another process holds DIR/LOCK (the log names its pid);
 *                nothing in DIR is touched
 *   -ENOSPC      the filesystem cannot hold the data files and the index
 *   -KV_EFORMAT  another on-disk format
 *   -EIO, -errno
 */
int kv_ssd_open(struct kv_ssd **out, const struct kv_ssd_conf *conf,
		kv_ssd_found_fn *found, void *arg);

/* Namespaces recorded by NS jobs, as found at open, in id order. 0 or
 * fn's value. */
int kv_ssd_namespaces(struct kv_ssd *s, kv_ssd_ns_fn *fn, void *arg);

/* Stop the I/O thread after the jobs already submitted, then free
 * everything. Jobs not reaped are freed. Accepts NULL. */
void kv_ssd_close(struct kv_ssd *s);

/* Hand a job to the I/O thread, as the tier's own (m.op KV_MOVE_OWN):
 * the store's FORGET, NS, NS_DROP and SYNC jobs. Moves go through
 * kv_tier_ssd's submit. */
void kv_ssd_submit(struct kv_ssd *s, struct kv_ssd_job *j);

/* Readable when finished jobs wait. */
int kv_ssd_event_fd(const struct kv_ssd *s);

/* Take every finished job (a list through ->next, oldest first), or NULL. */
struct kv_ssd_job *kv_ssd_reap(struct kv_ssd *s);

/* The tier's space: kv_tier_ops-style allocation (loop thread). */
int kv_ssd_alloc(struct kv_ssd *s, uint64_t bytes, struct kv_extent **out);
void kv_ssd_free(struct kv_ssd *s, struct kv_extent *e);
/* Give back the tail of an extent beyond bytes (rounded to the block). */
void kv_ssd_trim(struct kv_ssd *s, struct kv_extent *e, uint64_t bytes);

/* Statistics beyond the allocator's. */
struct kv_ssd_stats {
	uint64_t bytes_written;		/* stored bytes */
	uint64_t bytes_raw_written;	/* chunk bytes those stood for */
	uint64_t bytes_read;
	uint64_t checksum_failures;
	uint64_t io_errors;
	uint64_t records_missing;	/* forgotten at open: data file missing
					 * or short */
	uint64_t records_wrong_ns;	/* forgotten at open: their namespace
					 * id names another name (salt) */
	bool uring;			/* false: the pread/pwrite path */
};
void kv_ssd_stats(struct kv_ssd *s, struct kv_alloc_stats *as,
		  struct kv_ssd_stats *st);

/* The SSD job a generic one is part of. */
static inline struct kv_ssd_job *kv_ssd_job_of(struct kv_move *m)
{
	return (struct kv_ssd_job *)((char *)m - offsetof(struct kv_ssd_job, m));
}

/*
 * kv_tier_ssd (tiers/tier.h): priv is the struct kv_ssd (no open:
 * kv_ssd_open() makes it). Its moves: STORE is a WRITE of the host extent
 * to m->ext with m->rec as the record (stored, codec and checksum come
 * back in m->rec), LOAD a READ of the record in m->rec into the host
 * extent. Jobs from its move_new() are struct kv_ssd_jobs; so is
 * everything its reap() returns.
 */

#endif
