/*
 * store.h - the cache itself: chunks in tiers, two-phase puts, pins,
 * eviction. What a request means, without the socket.
 *
 * The server (kvstore/server.c) turns each request into calls here on
 * behalf of an owner (one per connection); everything an owner holds, pins
 * and uncommitted allocations, is let go by kv_store_owner_close().
 *
 * Contracts:
 * - A chunk is invisible until committed; a second ALLOC of a key that is
 *   committed or being written answers -EEXIST.
 * - A pinned chunk is neither moved nor evicted.
 * - Eviction is leaf-first: a chunk whose children (by parent key) are
 *   cached is not picked before them, since a child is unreachable without
 *   its parent.
 * - Hits and misses: every key of a LOOKUP or PIN counts once, as a hit in
 *   the tier that holds it and a miss in each faster tier (every tier, when
 *   no tier holds it).
 *
 * Locking: none; the daemon's loop thread owns the store.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvstore/proto.h"

struct kv_store;		/* opaque */
struct kv_owner;		/* opaque: one client's holdings */

/*
 * What keeping a chunk saves, for cost-aware eviction (GDSF's C). In
 * COMPUTE mode: the prefill work of its n tokens at position p in a model
 * of hidden size d, n * (b*d^2 + a*d*(2p + n)) (dense layers, then
 * attention over the context so far), in units of 1e12. In RELOAD mode:
 * the seconds to read it back from the tier below, latency + bytes / bw.
 */
enum kv_cost_mode {
	KV_COST_COMPUTE,
	KV_COST_RELOAD,
};

struct kv_cost_model {
	uint32_t hidden;		/* d */
	double a;			/* attention FLOPs per (d * token pair) */
	double b;			/* dense FLOPs per (d^2 * token) */
};

/* Llama-3-8B-like: d 4096, a 2, b 26 (see docs/eviction.md). */
#define KV_COST_MODEL_DEFAULT ((struct kv_cost_model){ 4096, 2.0, 26.0 })

/* COMPUTE-mode cost of n tokens at position p (the formula above). */
double kv_cost_compute(const struct kv_cost_model *m, uint32_t n, uint32_t p);

struct kv_store_conf {
	uint64_t dram_bytes;		/* DRAM tier capacity */
	uint64_t align;			/* allocation granule */
	const char *dram_policy;	/* eviction policy name */
	uint32_t max_pins;		/* per owner */
	uint64_t max_uncommitted;	/* bytes per owner */
	enum kv_cost_mode cost_mode;
	struct kv_cost_model cost_model;	/* for namespaces without one */
	double reload_bw;		/* RELOAD: bytes/s of the tier below */
	double reload_latency;		/* RELOAD: seconds */
	double recent_fraction;		/* H2O's recent segment; 0: 0.5 */
	double half_life;		/* H2O's score half-life; 0: its default */
	/* The SSD tier: absent when ssd_dir is NULL. */
	const char *ssd_dir;
	uint64_t ssd_bytes;
	const char *ssd_policy;		/* NULL: the DRAM tier's */
	unsigned ssd_queue_depth;	/* I/O requests in flight */
	unsigned ssd_writes;		/* write-backs in flight at most */
	uint8_t ssd_codec;		/* enum kv_codec, for namespaces without one */
	int ssd_level;			/* zstd level */
	bool ssd_sync;			/* fdatasync before index commits */
	bool ssd_io_sync;		/* pread/pwrite instead of io_uring */
	/* The HBM tier: absent when hbm_bytes is 0 or the GPU cannot be used
	 * (one INFO line says why). */
	uint64_t hbm_bytes;
	int gpu;			/* CUDA device */
	const char *hbm_policy;		/* NULL: the DRAM tier's */
	uint8_t hbm_promote;		/* enum kv_hbm_promote */
};

/* When a DRAM chunk that GPU clients pin is copied up into HBM. */
enum kv_hbm_promote {
	KV_PROMOTE_OFF,
	KV_PROMOTE_SECOND,		/* on its second GPU pin */
	KV_PROMOTE_ALWAYS,		/* on its first */
};

/*
 * Open the tiers and their policies. Returns 0 and stores the store in
 * *out, or -EINVAL (bad conf, unknown policy) or a tier's error, with *out
 * untouched.
 */
int kv_store_open(struct kv_store **out, const struct kv_store_conf *conf);

/* Free everything, owners included (their holdings are let go). Accepts
 * NULL. */
void kv_store_close(struct kv_store *s);

/* A new owner with nothing held. Never fails. */
struct kv_owner *kv_store_owner_open(struct kv_store *s);

/* Release every pin and abort every uncommitted allocation of o, then free
 * it. Accepts NULL. */
void kv_store_owner_close(struct kv_store *s, struct kv_owner *o);

/*
 * Reserve room for a chunk in the DRAM tier (in the HBM tier first, when
 * a->flags has KV_ALLOC_HBM and it has room), evicting by the tier's policy
 * as needed. Returns 0 and the chunk's tier and offset in its arena, or:
 *   -EINPROGRESS    room comes when SSD write-backs finish: ask again
 *                   after kv_store_reap()
 *   -EINVAL         bytes is 0
 *   -EEXIST         the key is cached or being written
 *   -KV_ENOPARENT   it has a parent key that is neither cached nor being
 *                   written (it would be unreachable)
 *   -KV_ETOOBIG     larger than the tier
 *   -KV_EUNCOMMITTED the owner's uncommitted bytes would pass the limit
 *   -KV_EFULL       nothing left to evict (all pinned or being written)
 */
int kv_store_alloc_in(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		      const struct kv_wire_alloc *a, uint8_t *tier, uint64_t *offset);

/* kv_store_alloc_in() for callers that know the chunk goes to DRAM (no
 * KV_ALLOC_HBM). */
int kv_store_alloc(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_wire_alloc *a, uint64_t *offset);

/* Make the owner's allocation of key visible. 0 or -ENOENT (o has no
 * uncommitted allocation of that key). */
int kv_store_commit(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		    const struct kv_wire_key *key);

/* Free the owner's allocation of key. 0 or -ENOENT. */
int kv_store_abort(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_wire_key *key);

/*
 * Allocation leases: abort every uncommitted allocation of o made lease_ns
 * or more before now_ns (kv_now_ns() time), as kv_store_abort() would,
 * calling fn(arg, ns, key) (fn may be NULL) for each just before it goes;
 * the key pointer is valid only during the call. Returns how many were
 * aborted. Accepts a NULL o (nothing to do).
 */
typedef void kv_store_expired_fn(void *arg, uint32_t ns, const struct kv_wire_key *key);
unsigned kv_store_owner_expire(struct kv_store *s, struct kv_owner *o,
			       uint64_t now_ns, uint64_t lease_ns,
			       kv_store_expired_fn *fn, void *arg);

/*
 * For n keys store each one's tier in tiers[i] (KV_TIER_NONE: absent) and
 * return how many leading keys are present. Present chunks count as used,
 * deepest first, so recency never ranks a parent behind its child.
 */
uint32_t kv_store_lookup(struct kv_store *s, uint32_t ns,
			 const struct kv_wire_key *keys, uint32_t n,
			 uint8_t *tiers);

/* Pin a chunk for o and say where it is. 0, -ENOENT or -KV_EPINS, or
 * -EINPROGRESS: it is on SSD and on its way up, or only in HBM and on its
 * way down (ask again after kv_store_reap(), with kv_store_pin_again(),
 * which does not count the reference a second time). With KV_PIN_GPU in
 * flags the answer is the HBM copy when there is one, and the pin counts
 * towards promoting the chunk into HBM; otherwise it is the DRAM copy. */
int kv_store_pin(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		 const struct kv_wire_key *key, struct kv_wire_pin_reply *loc);
int kv_store_pin_again(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		       const struct kv_wire_key *key, struct kv_wire_pin_reply *loc,
		       bool again, unsigned flags);

/* Drop one of o's pins on a chunk. 0 or -ENOENT (o holds none). */
int kv_store_release(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		     const struct kv_wire_key *key);

/* Drop a chunk from the cache. 0, -ENOENT, or -EBUSY (pinned or being
 * written). */
int kv_store_evict(struct kv_store *s, uint32_t ns, const struct kv_wire_key *key);

/*
 * Write tier's chunks back to the tier below (tier KV_TIER_NONE: every
 * tier); with KV_FLUSH_DROP, drop every unpinned committed chunk of a
 * namespace for which visible(ns, arg) is true instead. A tier with nothing
 * below reports 0 written. Returns 0 or -KV_ENOTIER.
 */
int kv_store_flush(struct kv_store *s, uint8_t tier, uint32_t flags,
		   bool (*visible)(uint32_t ns, void *arg), void *arg,
		   struct kv_wire_flush_reply *res);

/* Is tier (KV_TIER_NONE: any) one this store has? */
bool kv_store_has_tier(const struct kv_store *s, uint8_t tier);

/*
 * List committed chunks from *cursor (0 to start), at most max, of
 * namespace ns (KV_NS_ALL: any for which visible(ns, arg) is true) and tier
 * (KV_TIER_NONE: any). Returns how many were stored and advances *cursor
 * (0 when done).
 */
uint32_t kv_store_ls(struct kv_store *s, uint32_t ns, uint8_t tier,
		     bool (*visible)(uint32_t ns, void *arg), void *arg,
		     uint64_t *cursor, struct kv_wire_entry *out, uint32_t max);

/* A committed chunk's metadata. 0 or -ENOENT. */
int kv_store_inspect(struct kv_store *s, uint32_t ns,
		     const struct kv_wire_key *key, struct kv_wire_entry *out);

/*
 * Fill the global figures in *g (connections and namespaces are the
 * server's to fill) and up to max tier entries; return how many tiers.
 */
uint32_t kv_store_stats(struct kv_store *s, struct kv_wire_stats *g,
			struct kv_wire_tier_stats *t, uint32_t max);

/*
 * Set namespace ns's cost model (the first registration decides). Returns
 * 0 or -EINVAL (hidden 0, a or b negative or not finite).
 */
int kv_store_set_model(struct kv_store *s, uint32_t ns,
		       const struct kv_cost_model *m);

/*
 * Switch tier's eviction policy at run time: the resident chunks move to
 * the new policy in the order they were last used, keeping their history
 * (frequency, score). Returns 0, -ENOENT (no such policy) or -KV_ENOTIER.
 */
int kv_store_set_policy(struct kv_store *s, uint8_t tier, const char *name);

/* The name of tier's policy, or NULL for a tier the store lacks. */
const char *kv_store_policy(const struct kv_store *s, uint8_t tier);

/*
 * Report a chunk's share of one request's attention (0..1) to its tier's
 * policy (H2O uses it; others ignore it). 0, -ENOENT, or -EINVAL for a
 * score outside [0, 1].
 */
int kv_store_score(struct kv_store *s, uint32_t ns,
		   const struct kv_wire_key *key, float score);

/*
 * The SSD tier's moving parts. Everything that waits for the disk returns
 * -EINPROGRESS and finishes when the server, seeing kv_store_event_fd()
 * readable, calls kv_store_reap(); the server then asks again.
 */

/* Readable when SSD jobs finished, or -1 without an SSD tier; the same
 * for the HBM tier's GPU copies. */
int kv_store_event_fd(const struct kv_store *s);
int kv_store_hbm_event_fd(const struct kv_store *s);

/* Take in finished SSD jobs and GPU copies and start queued ones. Returns
 * how many finished. */
unsigned kv_store_reap(struct kv_store *s);

/*
 * Start promoting the SSD-resident keys among n into DRAM. status[i]: 0
 * (in DRAM already, or promotion under way), ENOENT, or the error that
 * stopped its promotion (KV_EFULL). Returns how many are still on their
 * way up: 0 means every present key is in DRAM now.
 */
uint32_t kv_store_prefetch(struct kv_store *s, uint32_t ns,
			   const struct kv_wire_key *keys, uint32_t n,
			   int32_t *status);

/*
 * Write every DRAM chunk without an SSD copy to the SSD: start (true) queues
 * them, then calls without start ask how it goes. Returns 0 when all of
 * them (and any committed meanwhile) are durable or refused, -EINPROGRESS
 * while writes are under way (ask again after kv_store_reap()), or
 * -KV_ENOTIER without an SSD tier.
 */
int kv_store_writeback(struct kv_store *s, bool start);

/* Write-backs finished (written, their bytes, refused) since the store
 * opened: subtract two readings to get one flush's figures. */
void kv_store_wb_counters(const struct kv_store *s, uint64_t *written,
			  uint64_t *bytes, uint64_t *failed);

/* Store namespace ns's chunks on SSD with codec (enum kv_codec) instead of
 * the default. 0 or -EINVAL. */
int kv_store_set_codec(struct kv_store *s, uint32_t ns, unsigned codec);

/* Namespaces recorded on the SSD at open, in id order (nothing without an
 * SSD tier); and recording a new one. */
int kv_store_namespaces(struct kv_store *s,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg);
void kv_store_ns_added(struct kv_store *s, uint32_t id, uid_t uid, const char *name);

/* The HBM arena for HELLO: false without an HBM tier. */
bool kv_store_hbm_export(const struct kv_store *s, uint64_t *bytes,
			 char pci[KV_HBM_PCI_BYTES], uint8_t ipc[KV_HBM_IPC_BYTES]);

/* The DRAM arena's memfd (borrowed) and size, for HELLO. */
int kv_store_dram_fd(struct kv_store *s, uint64_t *bytes);

/* The DRAM arena as the daemon maps it (for tests). */
void *kv_store_dram_base(struct kv_store *s);

#endif
