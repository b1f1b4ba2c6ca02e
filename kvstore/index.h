/*
 * index.h - the daemon's table of chunks, keyed by (namespace id, 128-bit key).
 *
 * A chained hash table of struct kv_chunk records, which the index owns:
 * kv_index_add() makes one, kv_index_del() frees it. The table doubles when
 * it holds more chunks than buckets. Keys are already XXH3-128 hashes, so a
 * bucket is picked from the key's low bits mixed with the namespace.
 *
 * The record is public because the store (kvstore/store.c) keeps its state
 * in it; the index itself reads only ns, key and hnext. Locking: none; the
 * daemon's loop thread owns the index (DESIGN.md section 3).
 */
#ifndef KV_INDEX_H
#define KV_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "evict/policy.h"
#include "lib/proto.h"

struct kv_index;		/* opaque */
struct kv_extent;
struct kv_owner;
struct kv_pin;

enum kv_chunk_state {
	KV_CHUNK_PENDING,	/* allocated, being written, invisible */
	KV_CHUNK_COMMITTED,	/* visible to lookups */
};

struct kv_chunk {
	struct kv_chunk *hnext;		/* index: bucket chain */
	struct kv_wire_key key;
	struct kv_wire_key parent;
	uint32_t ns;
	uint16_t tenant;		/* whose arenas and quotas it uses */
	uint8_t state;			/* enum kv_chunk_state */
	uint8_t tier;			/* KV_TIER_* where the bytes are */
	bool has_parent;
	uint32_t tokens;
	uint32_t position;
	uint32_t pins;			/* all owners' pins together */
	uint32_t children;		/* committed children linked below */
	uint64_t bytes;			/* as the client asked */
	struct kv_extent *ext;		/* where, in the tier's arena */
	uint64_t hits;
	uint64_t last_used_ns;
	struct kv_owner *writer;	/* PENDING: who allocated it */
	struct kv_chunk *wnext;		/* PENDING: writer's list */
	struct kv_chunk *wprev;
	struct kv_pin *pin_list;	/* who holds pins on it */
	struct kv_chunk *up;		/* the parent, while both are cached */
	struct kv_chunk *first_child;	/* children linked to it */
	struct kv_chunk *sib_next;	/* up's children list */
	struct kv_chunk *sib_prev;
	struct kv_evict_node node;	/* COMMITTED, in DRAM: its policy's node */
	/* The SSD tier (kvstore/store.c): a committed chunk is in DRAM (ext),
	 * on SSD (ssd_ext), or both; tier says the fastest. */
	struct kv_extent *ssd_ext;	/* the copy on SSD, or NULL */
	struct kv_extent *io_ext;	/* the extent an I/O in flight fills */
	uint64_t ssd_stored;		/* bytes on the disk (after the codec) */
	uint64_t ssd_checksum;
	uint8_t ssd_codec;
	uint8_t io;			/* KV_IO_*: a job in flight on it */
	bool wb_queued;			/* on the store's write-back queue */
	bool no_wb;			/* not to be written back (SSD declined) */
	uint16_t wb_err;		/* its last write-back's error (positive),
					 * 0 once one succeeded */
	bool dram_held;			/* what the policies were last told */
	bool ssd_held;
	struct kv_chunk *wb_next;	/* write-back queue */
	struct kv_chunk *wb_prev;
	struct kv_evict_node ssd_node;	/* on SSD: its policy's node */
	/* The HBM tier: a copy in the GPU arena (hbm_ext), kept with a DRAM
	 * copy except while a chunk put into HBM waits for its DRAM copy. */
	struct kv_extent *hbm_ext;	/* the copy in HBM, or NULL */
	struct kv_extent *hbm_io_ext;	/* the extent a GPU copy in flight fills */
	uint8_t hbm_io;			/* KV_HIO_*: a GPU copy in flight on it */
	bool hbm_held;			/* what the HBM policy was last told */
	bool dn_queued;			/* waiting for room for its DRAM copy */
	bool no_down;			/* its DRAM copy was refused */
	uint32_t gpu_pins;		/* pins by GPU clients (promotion) */
	struct kv_chunk *dn_next;	/* the store's queue of DRAM copies */
	struct kv_chunk *dn_prev;
	struct kv_evict_node hbm_node;	/* in HBM: its policy's node */
	/* Allocation leases (kv_store_owner_expire()). */
	uint64_t alloc_ns;		/* PENDING: when it was allocated */
};

enum kv_chunk_hbm_io {
	KV_HIO_NONE,
	KV_HIO_DOWN,			/* HBM -> DRAM: getting its DRAM copy */
	KV_HIO_UP,			/* DRAM -> HBM: being promoted */
};

enum kv_chunk_io {
	KV_IO_NONE,
	KV_IO_WRITE,			/* being written back to SSD */
	KV_IO_READ,			/* being promoted into DRAM */
};

/*
 * Create an empty index with 1 << hash_bits buckets to start (4..30).
 * Returns 0 and stores it in *out, or -EINVAL with *out untouched.
 */
int kv_index_open(struct kv_index **out, unsigned hash_bits);

/* Free the index and every chunk still in it. Accepts NULL. */
void kv_index_close(struct kv_index *idx);

/* The chunk under (ns, key), or NULL. */
struct kv_chunk *kv_index_find(const struct kv_index *idx, uint32_t ns,
			       const struct kv_wire_key *key);

/*
 * Add a zeroed chunk for (ns, key), which must not be present, and return
 * it; the caller fills in the rest. Never fails (control-plane memory).
 */
struct kv_chunk *kv_index_add(struct kv_index *idx, uint32_t ns,
			      const struct kv_wire_key *key);

/* Unlink and free a chunk that is in the index. */
void kv_index_del(struct kv_index *idx, struct kv_chunk *c);

uint64_t kv_index_count(const struct kv_index *idx);

/*
 * Walk the index: start with *cursor = 0; each call returns the next chunk
 * and advances *cursor, or returns NULL at the end (and sets it to 0). The
 * walk may miss or repeat chunks when the table grows between calls, and the
 * caller must not delete the chunk just returned before the next call
 * (collect first, then delete).
 */
struct kv_chunk *kv_index_next(const struct kv_index *idx, uint64_t *cursor);

#endif
