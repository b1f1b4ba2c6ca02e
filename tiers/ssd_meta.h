/*
 * ssd_meta.h - the SSD tier's index in LMDB: what is on the disk, where.
 *
 * One LMDB environment under the tier's directory (DIR/index/), with two
 * databases opened once at open: "chunks", keyed by (namespace, key), whose
 * values are struct kv_ssd_rec; and "meta", which holds the on-disk format
 * and the tier's geometry.
 *
 * Contracts:
 * - A record is written only after the data it points at is on the disk
 *   (the SSD tier's I/O thread calls kv_ssd_meta_apply() after the write
 *   completed and, with sync on, after fdatasync of the data files).
 * - Records are untrusted on load: a record of the wrong size, magic or
 *   self-checksum (rec_check) is deleted, counted, and never handed out.
 * - A directory written in another format is refused with -KV_EFORMAT and
 *   an ERR log line that says what was found and what is expected; it is
 *   never misread or overwritten.
 * - The map size is set explicitly at open and doubled (up to a limit) when
 *   a batch hits MDB_MAP_FULL; the batch is then retried whole.
 * - A failed write transaction is aborted, never reused.
 *
 * Locking: none. The environment is opened with MDB_NOTLS; one thread at a
 * time uses a struct kv_ssd_meta (the loop thread during open and load, the
 * I/O thread after). Never use one across fork().
 */
#ifndef KV_SSD_META_H
#define KV_SSD_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/key.h"

#define KV_SSD_FORMAT		2		/* bump on any layout change; 2:
						 * records carry the namespace
						 * salt, checksums are seeded
						 * with it */
#define KV_SSD_REC_MAGIC	0x5253564bu	/* "KVSR" little-endian */

/* One chunk on the SSD. Fixed layout, host byte order (x86-64 only). */
struct kv_ssd_rec {
	uint32_t magic;			/* KV_SSD_REC_MAGIC */
	uint8_t codec;			/* enum kv_codec */
	uint8_t has_parent;
	uint16_t reserved;		/* 0 */
	uint32_t tokens;
	uint32_t position;
	struct kv_key parent;
	uint64_t offset;		/* in the tier's space: block-aligned */
	uint64_t stored;		/* bytes on disk, before padding */
	uint64_t bytes;			/* the chunk's bytes, decoded */
	uint64_t checksum;		/* XXH3-64 of the stored bytes, seeded
					 * with kv_ssd_seed(salt, ns, key) */
	uint64_t hits;			/* policy state, carried over restarts */
	uint32_t freq;
	uint32_t reserved2;		/* 0 */
	double score;
	uint64_t salt;			/* the namespace name's salt
					 * (kv_ssd_salt()): a record that
					 * reaches another name is caught */
	uint64_t rec_check;		/* XXH3-64 of every byte above */
};

/* The geometry the tier was created with ("meta" database). */
struct kv_ssd_geom {
	uint64_t bytes;			/* the tier's capacity */
	uint64_t block;			/* allocation and I/O granule */
	uint64_t file_bytes;		/* size of each data file */
};

struct kv_ssd_meta_conf {
	const char *dir;		/* the tier's directory; index/ goes under it */
	struct kv_ssd_geom geom;	/* stored on first open */
	uint64_t map_bytes;		/* initial map size; 0: 64 MiB */
	uint64_t max_map_bytes;		/* growth limit; 0: 64 GiB */
	bool sync;			/* durable commits (else MDB_NOSYNC) */
};

/* One change in a batch. */
struct kv_ssd_op {
	bool del;			/* delete (absent: fine) or put */
	uint32_t ns;
	struct kv_key key;
	struct kv_ssd_rec rec;		/* put: rec_check is filled in by apply */
};

struct kv_ssd_meta;		/* opaque */

/*
 * Open (creating when absent) the index under conf->dir. Calls
 * mdb_reader_check() to clear stale readers. Returns 0 and stores it in
 * *out, or, with *out untouched:
 *   -KV_EFORMAT  the directory holds another format (logged)
 *   -EIO         LMDB refused the environment (corrupt file; logged)
 *   -errno       the directory cannot be made or opened
 * *geom_out gets the geometry stored there (conf->geom when new), so the
 * caller can drop records that no longer fit.
 */
int kv_ssd_meta_open(struct kv_ssd_meta **out, const struct kv_ssd_meta_conf *conf,
		     struct kv_ssd_geom *geom_out);
void kv_ssd_meta_close(struct kv_ssd_meta *m);	/* accepts NULL */

/*
 * Call fn once for each valid record, in key order. Invalid records
 * (wrong size, magic or rec_check) are deleted and counted in *bad. A
 * non-zero return from fn stops the walk and is returned. Returns 0, fn's
 * value, or -EIO (LMDB error, e.g. a corrupt page; logged).
 */
int kv_ssd_meta_load(struct kv_ssd_meta *m,
		     int (*fn)(void *arg, uint32_t ns, const struct kv_key *key,
			       const struct kv_ssd_rec *rec),
		     void *arg, uint64_t *bad);

/*
 * Apply n changes in one write transaction, in order. Returns 0, or
 * -ENOSPC (the map reached max_map_bytes, or the filesystem is full), -EIO
 * (LMDB error, or the KV_FAULT_META fault point): then nothing of the batch
 * was applied.
 */
int kv_ssd_meta_apply(struct kv_ssd_meta *m, struct kv_ssd_op *ops, size_t n);

/* Delete every record (the tier is being wiped). 0 or -EIO. */
int kv_ssd_meta_clear(struct kv_ssd_meta *m);

/*
 * The seed of a chunk's checksum: ties the stored bytes to their key, their
 * namespace id and their namespace's name (its salt), so bytes that reach
 * another key, or a namespace id that now names something else, fail.
 */
uint64_t kv_ssd_seed(uint64_t salt, uint32_t ns, const struct kv_key *key);

/* A namespace name's salt: XXH3-64 of its bytes, seed 0 (the NS_REGISTER
 * reply's salt, the client's key hash seed). */
uint64_t kv_ssd_salt(const char *name);

/* Fill r->rec_check; true when an existing r->rec_check is right. */
void kv_ssd_rec_seal(struct kv_ssd_rec *r);
bool kv_ssd_rec_valid(const struct kv_ssd_rec *r);

/* Replace the stored geometry (after kv_ssd_meta_clear()). 0 or -EIO. */
int kv_ssd_meta_set_geom(struct kv_ssd_meta *m, const struct kv_ssd_geom *g);

/*
 * Namespaces, so that ids mean the same after a restart: record one
 * (id, owner, name of 1..255 bytes) in its own transaction, and call fn
 * for each recorded one in id order. 0, fn's value, -EINVAL, -ENOSPC (the
 * filesystem or the map is full) or -EIO (KV_FAULT_META included).
 */
int kv_ssd_meta_ns_put(struct kv_ssd_meta *m, uint32_t id, uid_t uid,
		       const char *name);
int kv_ssd_meta_ns_load(struct kv_ssd_meta *m,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg);

/*
 * Forget namespace id: delete every chunk record under it and its own
 * record, in one transaction. Returns 0 (also when nothing was there),
 * -ENOSPC or -EIO (KV_FAULT_META included): then nothing was deleted.
 */
int kv_ssd_meta_ns_drop(struct kv_ssd_meta *m, uint32_t id);

/* Records in the index now (an LMDB stat). */
uint64_t kv_ssd_meta_count(struct kv_ssd_meta *m);

#endif
