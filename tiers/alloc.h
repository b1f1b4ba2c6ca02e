/*
 * alloc.h - extent allocator over an address range [0, size).
 *
 * Used by every tier for its arena (the DRAM memfd today, the HBM arena and
 * SSD files later). The bookkeeping lives out of band, in ordinary heap
 * memory: the arena itself is shared with clients, who may write anything
 * into it, so nothing of the allocator's may live there.
 *
 * Design: two-level segregated fits (TLSF): free extents sit in size-class
 * lists found through two bitmaps, so get and put are O(1); every extent,
 * free or used, is linked to its physical neighbours so a put coalesces with
 * free neighbours at once. A get takes the first extent of the smallest
 * class whose every member is large enough ("good fit"), splits it, and
 * returns the remainder to its class.
 *
 * Locking: none; one thread (the daemon's loop thread) owns an allocator.
 * Ownership: extents belong to the allocator; a caller holds the handle from
 * kv_alloc_get() until it hands it back with kv_alloc_put().
 */
#ifndef KV_ALLOC_H
#define KV_ALLOC_H

#include <stdint.h>

struct kv_alloc;		/* opaque */
struct kv_extent;		/* opaque: one allocation */

struct kv_alloc_conf {
	uint64_t size;		/* bytes managed; a multiple of align */
	uint64_t align;		/* granule: a power of two >= 64; every offset
				 * and every extent size is a multiple of it */
};

struct kv_alloc_stats {
	uint64_t size;		/* bytes managed */
	uint64_t used;		/* bytes in extents handed out (rounded up) */
	uint64_t requested;	/* bytes asked for by those extents */
	uint64_t largest_free;	/* largest single free extent */
	uint64_t extents;	/* extents handed out */
	uint64_t free_extents;	/* free extents (fragments) */
};

/*
 * Create an allocator with all of [0, conf->size) free. Returns 0 and stores
 * it in *out (free it with kv_alloc_close()), or -EINVAL (size 0 or not a
 * multiple of align, align not a power of two >= 64) with *out untouched.
 */
int kv_alloc_open(struct kv_alloc **out, const struct kv_alloc_conf *conf);

/* Free the allocator and every extent still handed out. Accepts NULL. */
void kv_alloc_close(struct kv_alloc *a);

/*
 * Allocate an extent of at least bytes, rounded up to the granule. Returns 0
 * and stores the handle in *out, or, with *out untouched:
 *   -EINVAL  bytes is 0 or larger than the whole range
 *   -ENOMEM  no free extent is large enough now (evict and retry), or the
 *            KV_FAULT_ARENA fault point fired
 */
int kv_alloc_get(struct kv_alloc *a, uint64_t bytes, struct kv_extent **out);

/*
 * Take the extent at off (granule-aligned) of bytes out of the free space:
 * for rebuilding an allocator's state from a record of what was in use
 * (the SSD tier's index at start). Fastest in ascending offset order.
 * Returns 0 and the handle in *out, -EINVAL (misaligned, out of range) or
 * -EEXIST (some of it is in use already).
 */
int kv_alloc_claim(struct kv_alloc *a, uint64_t off, uint64_t bytes,
		   struct kv_extent **out);

/* Shrink an extent to bytes (> 0, rounded up to the granule); the tail
 * becomes free. Growing is not possible: bytes beyond its size only
 * change what it counts as requested. */
void kv_alloc_trim(struct kv_alloc *a, struct kv_extent *e, uint64_t bytes);

/* Give an extent back; it coalesces with free neighbours. */
void kv_alloc_put(struct kv_alloc *a, struct kv_extent *e);

uint64_t kv_extent_offset(const struct kv_extent *e);	/* granule-aligned */
uint64_t kv_extent_size(const struct kv_extent *e);	/* rounded size */

void kv_alloc_stats(const struct kv_alloc *a, struct kv_alloc_stats *st);

#endif
