/*
 * tier.h - the storage tier interface (DESIGN.md section 4).
 *
 * A tier is space for chunks' bytes plus an allocator over it, and, unless
 * the daemon reaches its bytes with plain loads and stores (DRAM), a thread
 * of its own that moves bytes in and out. Every tier is a const table of
 * operations registered in tiers/tier.c (kv_tier_find() by name,
 * kv_tier_by_id() by KV_TIER_*); the core keeps a struct kv_tier and never
 * looks inside a tier's private state.
 *
 * Moves. DRAM, the host, is one end of every move: a move copies a chunk
 * between an extent of another tier and an extent of the daemon's DRAM
 * range. Every other tier answers the same three asynchronous verbs: submit
 * a job (struct kv_move, made by the tier's move_new()), reap the finished
 * ones, and an event fd that is readable when some finished. The core
 * decides what moves where and when; the tier only moves bytes (and, a
 * tier that keeps records such as the SSD's index, records them).
 *
 * Locking: none; the daemon's loop thread calls every op. A tier's own
 * thread is internal to it.
 * Ownership: extents from alloc() belong to the tier until free()d; a job
 * belongs to the tier from submit() until reap() returns it, then to the
 * caller, who frees it with move_free().
 */
#ifndef KV_TIER_H
#define KV_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/key.h"
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

enum kv_move_op {
	KV_MOVE_STORE,		/* the host extent -> the tier's extent */
	KV_MOVE_LOAD,		/* the tier's extent -> the host extent */
	KV_MOVE_OWN,		/* a tier's own job (the SSD's index jobs,
				 * tiers/ssd.h): only its owner submits them */
};

/*
 * What the core knows of a chunk, for a tier that keeps a record beside
 * the bytes (the SSD: its index, which outlives the daemon). STORE: the
 * chunk's fields and the codec wanted in; stored, codec and checksum out,
 * as stored. LOAD: the record as stored, in. Other tiers ignore it.
 */
struct kv_move_rec {
	uint64_t salt;		/* its namespace name's (tiers/ssd.h) */
	struct kv_key parent;
	bool has_parent;
	uint8_t codec;
	uint32_t tokens;
	uint32_t position;
	uint64_t hits;
	uint32_t freq;
	double score;
	uint64_t stored;	/* bytes as stored (after the codec) */
	uint64_t checksum;
};

struct kv_move {
	struct kv_move *next;	/* reap()'s list */
	uint8_t op;		/* enum kv_move_op */
	uint8_t tier;		/* KV_TIER_* of the tier it went to */
	int result;		/* at reap: 0 or a negative error */
	void *cookie;		/* the submitter's */
	void *part;		/* the tier's arena that holds ext, for tiers of
				 * one arena per tenant (HBM: the arena's priv);
				 * NULL for one shared space */
	struct kv_extent *ext;	/* the tier's end */
	void *host;		/* the host end: an address in the DRAM range */
	uint64_t host_off;	/* ... as an offset from the range's start */
	uint64_t host_len;	/* ... and that extent's size */
	uint64_t bytes;		/* to move: the chunk's */
	uint32_t ns;
	struct kv_key key;
	struct kv_move_rec rec;
};

struct kv_tier_ops {
	const char *name;	/* config name: "dram" */
	unsigned id;		/* KV_TIER_* */
	/* Returns 0 and stores private state in *priv, or a negative error.
	 * NULL for a tier whose owner opens it its own way (tiers/hbm.h,
	 * tiers/ssd.h) and hands the core priv. */
	int (*open)(void **priv, const struct kv_tier_conf *conf);
	void (*close)(void *priv);	/* accepts NULL */
	/* Reserve bytes. 0, -ENOMEM (full now: evict and retry), -EINVAL.
	 * alloc, free and stats are NULL for a tier whose space is not the
	 * daemon's (the remote tier: its servers evict by their own policy). */
	int (*alloc)(void *priv, uint64_t bytes, struct kv_extent **out);
	void (*free)(void *priv, struct kv_extent *e);
	void (*stats)(void *priv, struct kv_alloc_stats *st);
	/*
	 * Optional (may be NULL): a file descriptor clients may map to reach
	 * the arena directly, and its size. Borrowed: the tier closes it.
	 */
	int (*share_fd)(void *priv, uint64_t *bytes);
	/* Optional: the arena as the daemon maps it (for tests and copies). */
	void *(*base)(void *priv);
	/*
	 * Moves: NULL for the host tier (DRAM). priv here is the tier's mover
	 * (the one the core opened it with; for a tier of one arena per
	 * tenant, the thread all arenas share: kv_move.part names the arena).
	 * move_new: a zeroed job of the tier's own (never fails).
	 * submit: start it; it comes back from reap() with result set.
	 * reap: the finished jobs, oldest first, linked by next (NULL: none);
	 * reading resets event_fd.
	 * event_fd: readable while finished jobs wait to be reaped.
	 */
	struct kv_move *(*move_new)(void *priv);
	void (*move_free)(void *priv, struct kv_move *m);
	void (*submit)(void *priv, struct kv_move *m);
	struct kv_move *(*reap)(void *priv);
	int (*event_fd)(void *priv);
};

struct kv_tier {
	const struct kv_tier_ops *ops;
	void *priv;
};

/* The tier table of that name, or NULL. */
const struct kv_tier_ops *kv_tier_find(const char *name);

/* The tier table of that id (KV_TIER_*), or NULL. */
const struct kv_tier_ops *kv_tier_by_id(unsigned id);

/*
 * Open the tier of that name. Returns 0 and fills *t (close it with
 * kv_tier_close()), -ENOENT for an unknown name, or the tier's error.
 */
int kv_tier_open(struct kv_tier *t, const char *name,
		 const struct kv_tier_conf *conf);
void kv_tier_close(struct kv_tier *t);	/* accepts a closed one */

/* The registered tiers (tiers/tier.c), one file each. */
extern const struct kv_tier_ops kv_tier_dram;
extern const struct kv_tier_ops kv_tier_hbm;
extern const struct kv_tier_ops kv_tier_ssd;
extern const struct kv_tier_ops kv_tier_remote;

#endif
