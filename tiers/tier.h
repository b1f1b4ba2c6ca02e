/*
 * tier.h - the storage tier interface (DESIGN.md section 4).
 *
 * A tier is an arena of bytes plus an allocator over it. Every tier is a
 * const table of operations (DRAM today; HBM and SSD plug in beside it) and
 * is opened through kv_tier_open(), which finds the table by name. The core
 * keeps the struct kv_tier; it never looks inside a tier's private state.
 *
 * Locking: none; the daemon's loop thread owns its tiers.
 * Ownership: extents from alloc() belong to the tier until free()d.
 */
#ifndef KV_TIER_H
#define KV_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiers/alloc.h"

struct kv_tier_conf {
	uint64_t bytes;		/* capacity */
	uint64_t align;		/* allocation granule (power of two >= 64) */
	const char *dir;	/* where files live (tiers that use files) */
	bool use_gpu;		/* the daemon uses CUDA device gpu: DRAM page-locks
				 * its arena for it, HBM allocates there */
	int gpu;
	void *at;		/* DRAM: map the arena here (MAP_FIXED), inside a
				 * range the caller reserved; NULL: anywhere */
	uint64_t mem_check;	/* DRAM: bytes to check against the memory
				 * available (all arenas opened together); 0:
				 * the arena's own size */
};

struct kv_tier_ops {
	const char *name;	/* config name: "dram" */
	unsigned id;		/* KV_TIER_* */
	/* Returns 0 and stores private state in *priv, or a negative error. */
	int (*open)(void **priv, const struct kv_tier_conf *conf);
	void (*close)(void *priv);	/* accepts NULL */
	/* Reserve bytes. 0, -ENOMEM (full now: evict and retry), -EINVAL. */
	int (*alloc)(void *priv, uint64_t bytes, struct kv_extent **out);
	void (*free)(void *priv, struct kv_extent *e);
	/* Copy len bytes between an extent (from its start) and memory. */
	int (*read)(void *priv, const struct kv_extent *e, void *buf, size_t len);
	int (*write)(void *priv, const struct kv_extent *e, const void *buf,
		     size_t len);
	void (*stats)(void *priv, struct kv_alloc_stats *st);
	/*
	 * Optional (may be NULL): a file descriptor clients may map to reach
	 * the arena directly, and its size. Borrowed: the tier closes it.
	 */
	int (*share_fd)(void *priv, uint64_t *bytes);
	/* Optional: the arena as the daemon maps it (for tests and copies). */
	void *(*base)(void *priv);
};

struct kv_tier {
	const struct kv_tier_ops *ops;
	void *priv;
};

/* The tier table of that name, or NULL. */
const struct kv_tier_ops *kv_tier_find(const char *name);

/*
 * Open the tier of that name. Returns 0 and fills *t (close it with
 * kv_tier_close()), -ENOENT for an unknown name, or the tier's error.
 */
int kv_tier_open(struct kv_tier *t, const char *name,
		 const struct kv_tier_conf *conf);
void kv_tier_close(struct kv_tier *t);	/* accepts a closed one */

extern const struct kv_tier_ops kv_tier_dram;

#endif
