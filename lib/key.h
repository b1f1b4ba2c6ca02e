/*
 * key.h - a chunk's key as the store and the tiers hold it, and the tier ids.
 *
 * A chunk is named by its namespace id and a 128-bit key (lo, hi) that the
 * client hashed from its tokens (docs/protocol.md, "Keys"). The wire has
 * its own struct kv_wire_key (lib/proto.h) with the same layout; the tiers
 * use this one, so a tier never includes the protocol. The SSD tier stores
 * struct kv_key inside its records (tiers/ssd_meta.h): its layout is part
 * of the on-disk format and never changes.
 *
 * The tier ids index every per-tier array (stats, quotas, a chunk's copies)
 * and are on the wire too (LOOKUP's tier bytes, STATS): never renumber one.
 */
#ifndef KV_KEY_H
#define KV_KEY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_TIER_HBM		0
#define KV_TIER_DRAM		1
#define KV_TIER_SSD		2
#define KV_TIER_REMOTE		3		/* the cluster (tiers/remote.h): LOOKUP's
						 * answer for a chunk found there */
#define KV_TIER_NONE		0xff		/* LOOKUP: absent; LS: any tier */
#define KV_TIER_MAX		3		/* the local tiers: a chunk's copies,
						 * tenants' quotas */
#define KV_TIER_ALL		4		/* and the remote tier */

struct kv_key {
	uint64_t lo;
	uint64_t hi;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct kv_key) == 16, "kv_key layout (on disk)");
_Static_assert(offsetof(struct kv_key, lo) == 0 && offsetof(struct kv_key, hi) == 8,
	       "kv_key layout (on disk)");
#endif

#ifdef __cplusplus
}
#endif

#endif
