/*
 * store_int.h - the store's insides, shared by its parts and by nothing
 * outside kvstore/store*.c, chunk.c, move.c and owner.c.
 *
 * The parts, each depending only on those after it (no circle):
 *   store.c        request semantics: alloc, commit, abort, lookup, pin,
 *                  release, prefetch, leases
 *   store_admin.c  evict, flush, ls, inspect, stats, policy, reports,
 *                  tenants' and namespaces' figures, arenas for HELLO
 *   store_ns.c     namespaces on the SSD (records, drops) and sync points
 *   store_open.c   open and close: tenants, every tier, the policies
 *   owner.c        owners and their pins and pending allocations
 *   cluster.c      the remote tier: write-through, lookups that fall
 *                  through to the cluster, chunks fetched from it
 *   move.c         movement between tiers: the queues of moves, one path
 *                  that submits a move to any tier and one that finishes
 *                  it, and kv_store_pump()
 *   chunk.c        a chunk's residency: copies per tier, evictability,
 *                  policy membership, eviction and drop, prefix links,
 *                  cost
 *
 * A chunk has one struct kv_copy per tier (copy[KV_TIER_*]): its extent
 * there, its node in that tier's policy, and the state of a move into the
 * tier. Tiers differ only by data (struct tier_rules in chunk.c): what a
 * copy's leaving takes with it and what keeps the chunk reachable.
 *
 * Locking: none; the daemon's loop thread owns the store.
 */
#ifndef KV_STORE_INT_H
#define KV_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "evict/policy.h"
#include "kvstore/bw.h"
#include "kvstore/index.h"
#include "kvstore/store.h"
#include "kvstore/tenant.h"
#include "lib/key.h"
#include "lib/list.h"
#include "lib/util.h"
#include "tiers/tier.h"

struct hint;
struct kv_hbm;
struct kv_remote;
struct kv_ssd;

enum kv_chunk_state {
	KV_CHUNK_PENDING,	/* allocated, being written, invisible */
	KV_CHUNK_COMMITTED,	/* visible to lookups */
	KV_CHUNK_FETCHING,	/* coming from the remote tier (cluster.c):
				 * invisible, in no policy; its DRAM copy is
				 * filled once the cluster said it has it */
};

/* kv_chunk.rflags: the chunk and the remote tier. */
enum {
	RF_QUEUED	= 1 << 0,	/* on the write-through queue (rlink) */
	RF_WRITING	= 1 << 1,	/* being written from its DRAM copy */
	RF_THERE	= 1 << 2,	/* written, or fetched: not written again */
};

/* A chunk's copy in one tier. */
struct kv_copy {
	struct kv_extent *ext;		/* the copy, or NULL */
	struct kv_extent *io_ext;	/* what a move into this tier fills */
	uint8_t from;			/* that move's source tier; KV_TIER_NONE:
					 * no move into this tier */
	bool held;			/* what this tier's policy was last told */
	bool queued;			/* on the store's queue of moves into
					 * this tier (queue) */
	bool no_down;			/* this copy's move down was refused
					 * (DRAM: the SSD declined it; HBM: no
					 * DRAM copy): it may leave the cache
					 * from here */
	uint16_t err;			/* its last move down's error (positive),
					 * 0 once one succeeded */
	uint64_t stored;		/* bytes as the tier stores them (SSD:
					 * after the codec) */
	uint64_t checksum;		/* ... and their checksum (SSD) */
	uint8_t codec;
	struct kv_list queue;
	struct kv_evict_node node;	/* COMMITTED, with a copy here: this tier's
					 * policy's node. DRAM's carries the
					 * chunk's history between tiers. */
};

struct kv_chunk {
	struct kv_index_entry ie;	/* the index's: ns and key */
	struct kv_key parent;
	uint16_t tenant;		/* whose arenas and quotas it uses */
	uint8_t state;			/* enum kv_chunk_state */
	uint8_t tier;			/* the fastest tier with a copy */
	bool has_parent;
	uint8_t rflags;			/* RF_* */
	uint32_t tokens;
	uint32_t position;
	uint32_t pins;			/* all owners' pins together */
	uint32_t gpu_pins;		/* pins by GPU clients (promotion) */
	uint32_t children;		/* committed children linked below */
	uint64_t bytes;			/* as the client asked */
	uint64_t hits;
	uint64_t last_used_ns;
	struct kv_owner *writer;	/* PENDING: who allocated it */
	struct kv_list wlink;		/* PENDING: the writer's list */
	uint64_t alloc_ns;		/* PENDING: when (leases) */
	struct kv_pin *pin_list;	/* who holds pins on it */
	struct kv_chunk *up;		/* the parent, while both are cached */
	struct kv_chunk *first_child;	/* children linked to it */
	struct kv_chunk *sib_next;	/* up's children list */
	struct kv_chunk *sib_prev;
	struct kv_list rlink;		/* RF_QUEUED: the write-through queue */
	struct kv_copy copy[KV_TIER_MAX];
};

struct kv_pin {
	struct kv_chunk *chunk;
	struct kv_owner *owner;
	struct kv_pin *cnext;		/* the chunk's pin list */
	struct kv_pin *onext;		/* the owner's pin list */
	struct kv_pin *oprev;
	uint32_t count;
};

struct kv_owner {
	struct kv_list link;		/* the store's owners */
	struct kv_list pending;		/* chunks allocated, not committed */
	struct kv_pin *pins;
	struct tenant *tenant;		/* whose arenas it may use */
	uint64_t uncommitted;		/* bytes */
	uint32_t n_pins;		/* pins held, repeats counted */
};

/* A tier of the store: what all tenants' parts of it share. */
struct stier {
	const struct kv_tier_ops *ops;	/* NULL: tier absent */
	void *mover;			/* priv of ops' move verbs (NULL: DRAM) */
	const struct kv_evict_ops *pol;	/* every tenant's instance runs it */
	uint64_t capacity;		/* all tenants' together */
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;
	unsigned inflight;		/* moves submitted to it, not reaped */
	struct kv_list queue;		/* chunks waiting for a move into it */
	struct kv_bw read;		/* reads out of it: SSD promotions and
					 * remote fetches timed here (read_start(),
					 * read_timed()), HBM and DRAM copies as
					 * clients report them (kv_store_report_bw()) */
	unsigned rd_inflight;		/* timed reads submitted, not reaped */
	uint64_t rd_start;		/* the read batch under way began */
	uint64_t rd_bytes;		/* ... and has brought up this much */
};

/*
 * One tenant's part of a tier: its own arena (DRAM, HBM; the SSD tier is
 * one space, with a quota per tenant), its instance of the tier's policy,
 * which ranks only its chunks, and its quota.
 */
struct ttier {
	struct kv_tier t;		/* its arena; t.ops NULL: none (the SSD's
					 * t is the shared space) */
	void *pstate;			/* its policy instance (NULL: none) */
	uint64_t capacity;		/* its quota */
	bool shared;			/* t is one space all tenants share (SSD):
					 * used, not t, measures the quota */
	uint64_t used;			/* shared: bytes of its extents */
	uint64_t chunks;
	uint64_t base;			/* DRAM: the arena's offset in the range */
};

/* A tenant (kvstore/tenant.h): quotas resolved, and what it holds. */
struct tenant {
	struct kv_tenant_conf conf;	/* every quota set */
	unsigned id;
	struct ttier tiers[KV_TIER_MAX];
	uint64_t uncommitted;		/* bytes, all its owners together */
	uint32_t namespaces;		/* bound to it */
	uint64_t wb_pending;		/* its chunks queued or being written back */
	uint64_t chunks;		/* its records in the index */
	uint64_t max_chunks;
};

/*
 * What the SSD and remote tiers need of a namespace: its name's salt
 * (every record, value name and checksum carries it), the state of its SSD
 * record, which must be durable before any chunk of it is written
 * (docs/ssd.md), and whether it uses the cluster (remote_ns).
 */
struct ns_ssd {
	uint64_t salt;
	int rec;			/* 0: recorded (or restored); -EINPROGRESS;
					 * or the error that refused it. During a
					 * drop: the drop's state, the same way. */
	bool remote;			/* its chunks go to the cluster and are
					 * looked for there */
};

struct kv_store {
	struct kv_index *idx;
	struct kv_store_conf conf;
	struct kv_cost_model *models;	/* by namespace id; hidden 0: unset */
	uint32_t n_models;
	uint8_t *codecs;		/* by namespace id: codec + 1; 0: default */
	uint32_t n_codecs;
	struct kv_chunk **found;	/* kv_store_lookup()'s scratch */
	uint32_t found_cap;
	struct stier tiers[KV_TIER_ALL];
	struct tenant *tenants;
	unsigned n_tenants;
	uint16_t *ns_tenant;		/* by namespace id: tenant + 1; 0: unbound */
	uint32_t n_ns_tenant;
	void *range;			/* the DRAM arenas, one mapping each, side by side */
	uint64_t range_bytes;
	uint64_t chunks;		/* records in the index, all tenants */
	uint64_t max_chunks;
	struct kv_list owners;
	uint64_t pinned_chunks;
	uint64_t pending_chunks;
	uint64_t checksum_failures;
	uint64_t start_ns;
	uint64_t plans[KV_STORE_PLAN_MAX];	/* PLAN_REPORT, by kind */
	uint64_t plan_tokens_loaded;
	uint64_t plan_tokens_computed;
	uint32_t max_pins;
	uint64_t max_uncommitted;
	void (*wake)(void *arg);	/* kv_store_set_wake() */
	void *wake_arg;
	bool woken;			/* wake called since the last pump */
	/* the SSD tier */
	struct kv_ssd *ssd;		/* tiers[KV_TIER_SSD].mover, or NULL */
	uint64_t wb_queued;		/* chunks on the SSD's queue */
	unsigned wb_inflight;		/* write-backs submitted, not reaped */
	unsigned wb_max;		/* ... at most */
	uint64_t wb_written;		/* write-backs done, ever */
	uint64_t wb_bytes;
	uint64_t wb_failed;
	uint64_t wb_lost;		/* chunks that left the cache from DRAM
					 * after their write-back failed */
	uint64_t io_failures;		/* promotions lost to read errors */
	struct ns_ssd *nss;		/* per namespace id: salt, record */
	uint32_t n_nss;
	uint64_t sync_sent;		/* SSD sync points submitted */
	uint64_t sync_done;		/* ... and reaped (in order) */
	int sync_res;			/* the last one's result */
	/* the HBM tier */
	struct kv_hbm *hbm;		/* tiers[KV_TIER_HBM].mover, or NULL */
	bool hbm_dead;			/* a GPU copy failed: no new HBM copies */
	/* the remote tier (cluster.c) */
	struct kv_remote *remote;	/* tiers[KV_TIER_REMOTE].mover, or NULL */
	char *remote_ns;		/* its namespace-name prefixes, "a,b";
					 * NULL: every namespace */
	bool remote_write;		/* write-through on */
	struct kv_list rq;		/* chunks waiting for their write-through */
	unsigned rq_inflight;		/* write-throughs submitted, not reaped */
	struct kv_list probes;		/* lookups asking the cluster */
	uint64_t rt_fetch_failed;	/* chunks the cluster had, lost on the way */
	uint64_t rt_write_failed;
	uint64_t rt_written_bytes;
	uint64_t rt_fetched_bytes;
	struct hint *hints;		/* what lookups' probes found (cluster.c) */
	uint64_t rt_hinted;		/* fetches that went straight to a LOAD */
};

#define HBM_COPIES_MAX	32	/* GPU copies in flight at once */

static inline struct kv_chunk *chunk_of(struct kv_index_entry *e)
{
	return e ? kv_container_of(e, struct kv_chunk, ie) : NULL;
}

/* The chunk under (ns, key) in any state, or NULL. */
struct kv_chunk *chunk_find(const struct kv_store *s, uint32_t ns,
			    const struct kv_key *key);
/* A committed chunk, or NULL. */
struct kv_chunk *chunk_visible(const struct kv_store *s, uint32_t ns,
			       const struct kv_key *key);
/* The walk of kv_index_next(), by chunk. */
struct kv_chunk *chunk_next(const struct kv_store *s, uint64_t *cursor);

/* A chunk's tenant's part of a tier. */
static inline struct ttier *ctt(const struct kv_store *s, const struct kv_chunk *c,
				unsigned tier)
{
	return &s->tenants[c->tenant].tiers[tier];
}

/* ---- chunk.c ---- */
bool chunk_moving(const struct kv_chunk *c, unsigned tier);
bool chunk_busy(const struct kv_chunk *c);
void refresh_hold(struct kv_store *s, struct kv_chunk *c);
void policy_conf(const struct kv_store *s, unsigned tier, uint64_t capacity,
		 struct kv_evict_conf *ec);
int part_alloc(struct kv_store *s, struct tenant *t, unsigned tier,
	       uint64_t bytes, struct kv_extent **ext);
void part_free(struct kv_store *s, const struct kv_chunk *c, unsigned tier,
	       struct kv_extent *e);
uint64_t part_used(const struct ttier *tt);
void tier_insert(struct kv_store *s, struct kv_chunk *c, unsigned tier);
void tier_out(struct kv_store *s, struct kv_chunk *c, unsigned tier);
void retier(struct kv_chunk *c);
void chunk_unqueue(struct kv_store *s, struct kv_chunk *c, unsigned tier);
void link_parent(struct kv_store *s, struct kv_chunk *c, struct kv_chunk *p);
struct kv_chunk *chunk_new(struct kv_store *s, uint32_t ns, const struct kv_key *key);
void chunk_drop(struct kv_store *s, struct kv_chunk *c);
void chunk_evict(struct kv_store *s, struct kv_chunk *c, unsigned tier);
void drop_copy(struct kv_store *s, struct kv_chunk *c, unsigned tier);
int tier_alloc_evicting(struct kv_store *s, struct tenant *t, unsigned tier,
			uint64_t bytes, struct kv_extent **ext);
void ssd_forget(struct kv_store *s, uint32_t ns, const struct kv_key *key);
void touch(struct kv_store *s, struct kv_chunk *c, uint64_t now);
void chunk_score(struct kv_store *s, struct kv_chunk *c, float v);
bool tier_cold(unsigned tier);
void count_ref(struct kv_store *s, const struct kv_chunk *c);
uint64_t ns_salt(const struct kv_store *s, uint32_t ns);

/* ---- cluster.c ---- */
void cluster_open(struct kv_store *s);
void cluster_close(struct kv_store *s);
bool cluster_ns(const struct kv_store *s, const char *name);
void cluster_committed(struct kv_store *s, struct kv_chunk *c);
void cluster_unqueue(struct kv_chunk *c);
int cluster_fetch(struct kv_store *s, struct tenant *t, uint32_t ns,
		  const struct kv_key *key);
void cluster_done(struct kv_store *s, struct kv_move *m);
void cluster_pump(struct kv_store *s);

/* ---- move.c ---- */
void move_init(const struct kv_store *s, struct kv_move *m, struct kv_chunk *c,
	       const struct kv_extent *host);
uint8_t ns_codec(const struct kv_store *s, uint32_t ns);
void read_start(struct kv_store *s, unsigned tier);
void read_timed(struct kv_store *s, unsigned tier, uint64_t bytes);
void move_enqueue(struct kv_store *s, struct kv_chunk *c, unsigned to);
int promote(struct kv_store *s, struct kv_chunk *c);
void hbm_promote(struct kv_store *s, struct kv_chunk *c);
void store_wake(struct kv_store *s);
void move_committed(struct kv_store *s, struct kv_chunk *c);

/* ---- owner.c ---- */
void owner_add_pending(struct kv_owner *o, struct kv_chunk *c);
void writer_unlink(struct kv_chunk *c);
void pin_add(struct kv_store *s, struct kv_owner *o, struct kv_chunk *c);

/* ---- store_ns.c ---- */
int ns_tenant(const struct kv_store *s, uint32_t ns);
void ns_bind(struct kv_store *s, uint32_t ns, unsigned tenant);
int ssd_ns_found(void *arg, uint32_t id, uid_t uid, const char *name);
int ssd_ns_bind(void *arg, uint32_t id, uid_t uid, const char *name);
void ssd_own_done(struct kv_store *s, struct kv_move *m);

#endif
