/*
 * store.h - the cache itself: chunks in tiers, two-phase puts, pins,
 * eviction. What a request means, without the socket.
 *
 * The server (kvstore/handlers.c) turns each request into calls here on
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

#include "kvstore/tenant.h"
#include "lib/key.h"

struct kv_store;		/* opaque */
struct kv_owner;		/* opaque: one client's holdings */

/*
 * The store speaks its own types; the server converts to and from the
 * wire (lib/proto.h) at its edge (kvstore/handlers.c). Keys are struct
 * kv_key (lib/key.h), tiers KV_TIER_*.
 */

/* A chunk to allocate. */
struct kv_store_put {
	struct kv_key key;
	struct kv_key parent;		/* when has_parent: a prefix key */
	bool has_parent;
	bool hbm;			/* in the HBM tier when it has room */
	uint64_t bytes;
	uint32_t tokens;
	uint32_t position;		/* index of its first token */
};

/* Where a pinned chunk's bytes are: an offset in a tier's arena. */
struct kv_store_loc {
	uint8_t tier;
	uint64_t offset;
	uint64_t bytes;
};

enum kv_store_pin_flags {
	KV_STORE_PIN_GPU	= 1 << 0,	/* for a GPU client (below) */
	KV_STORE_PIN_RETRY	= 1 << 1,	/* the same pin again after
						 * -EINPROGRESS: its reference
						 * was counted then */
};

/* A committed chunk, as LS and INSPECT show it. */
struct kv_store_entry {
	struct kv_key key;
	struct kv_key parent;
	uint32_t ns;
	uint8_t tier;			/* the fastest with a copy */
	bool has_parent;
	uint64_t bytes;
	uint64_t offset;		/* in that tier */
	uint32_t tokens;
	uint32_t position;
	uint32_t pins;
	uint32_t children;		/* resident children */
	uint64_t hits;
	uint64_t age_ms;		/* since last use */
};

/* What a FLUSH that drops did. */
struct kv_store_flushed {
	uint64_t chunks;		/* dropped */
	uint64_t bytes;
	uint64_t skipped;		/* pinned, pending or moving: left alone */
};

/* The plan one request got (kv_store_report_plan()). */
enum kv_store_plan {
	KV_STORE_PLAN_LOADED = 1,	/* every cached token loaded */
	KV_STORE_PLAN_COMPUTED,		/* none: recomputing was faster */
	KV_STORE_PLAN_BOTH,		/* some loaded, some computed */
	KV_STORE_PLAN_MAX,
};

/* The store's figures (kv_store_stats()). */
struct kv_store_stats {
	uint64_t pinned_chunks;
	uint64_t pending_chunks;	/* allocated, not committed */
	uint64_t checksum_failures;
	uint64_t uptime_ms;
	uint64_t writeback_failures;	/* write-backs refused or failed */
	uint64_t writeback_lost;	/* chunks that left the cache from DRAM
					 * after their write-back failed */
	uint64_t ssd_records_missing;	/* forgotten at start */
	uint64_t ssd_records_wrong_ns;
	uint64_t records;		/* chunk records held */
	uint64_t max_records;
	uint64_t meta_bytes;		/* daemon memory they take, estimated */
	uint64_t plans[KV_STORE_PLAN_MAX];	/* by enum kv_store_plan */
	uint64_t plan_tokens_loaded;
	uint64_t plan_tokens_computed;
};

/* One tier's figures. */
struct kv_store_tier_stats {
	uint8_t tier;			/* KV_TIER_* */
	const char *name;		/* "dram" (static) */
	const char *policy;		/* its eviction policy's name (static) */
	uint64_t capacity_bytes;
	uint64_t used_bytes;
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;	/* allocations refused for lack of space */
	uint64_t read_bw;		/* bytes/s, moving average; 0: no sample */
	uint64_t read_samples;
	uint64_t read_bytes;
};

#define KV_STORE_PCI_BYTES	16	/* a GPU's PCI bus id, NUL-padded */

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
	/* Tenants (kvstore/tenant.h): those declared, plus one per other
	 * allowed uid (allow_uids; self alone when n_allow is 0). Borrowed
	 * during kv_store_open() only. */
	const struct kv_tenant_conf *tenants;
	unsigned n_tenants;
	const uid_t *allow_uids;
	unsigned n_allow;
	uid_t self_uid;
	uint32_t max_namespaces;	/* split among tenants; 0: 4096 */
	uint64_t max_chunks;		/* records in the index; 0: by capacity */
	/* The remote tier (docs/cluster.md): absent when remote_seeds is
	 * NULL. Strings are copied. */
	const char *remote_seeds;	/* "host:port,..." */
	const char *remote_user;	/* NULL: none */
	const char *remote_password;	/* NULL: none; never logged */
	bool remote_tls;		/* TLS to the cluster (docs/cluster.md) */
	const char *remote_tls_ca_file;	/* with remote_tls: PEM CA file */
	const char *remote_tls_cert_file; /* NULL or a PEM client certificate */
	const char *remote_tls_key_file; /* NULL or its PEM key */
	unsigned remote_timeout_ms;	/* each batch's deadline */
	const char *remote_ns;		/* namespace-name prefixes "a,b"; NULL
					 * or "": every namespace */
	bool remote_write;		/* write-through after COMMIT */
	uint32_t remote_part_bytes;	/* 0: KV_REMOTE_PART_DEFAULT */
};

/*
 * The default bound on chunk records: one per KV_STORE_CHUNK_AVG bytes of
 * the tiers' capacity, at least KV_STORE_CHUNKS_MIN. A record costs about
 * 650 bytes of the daemon's memory (kv_store_meta_bytes() tells), so
 * metadata stays near 1% of what it describes; KV chunks are hundreds
 * of KiB to tens of MiB (a 16-token vLLM block of a 1B model is 256 KiB).
 */
#define KV_STORE_CHUNK_AVG	(64u << 10)
#define KV_STORE_CHUNKS_MIN	16384u
uint64_t kv_store_default_max_chunks(uint64_t bytes);

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

/* A new owner with nothing held, of tenant (kv_store_tenant_of(); an
 * unknown one is tenant 0). Never fails. */
struct kv_owner *kv_store_owner_open(struct kv_store *s, unsigned tenant);

/* Release every pin and abort every uncommitted allocation of o, then free
 * it. Accepts NULL. */
void kv_store_owner_close(struct kv_store *s, struct kv_owner *o);

/*
 * Reserve room for a chunk in the owner's tenant's DRAM arena (in its HBM
 * arena first, when p->hbm and it has room), evicting
 * that tenant's chunks by the tier's policy as needed. A namespace not yet
 * bound to a tenant is bound to the owner's. Returns 0 and the chunk's
 * tier and offset in the tenant's arena, or:
 *   -EINPROGRESS    room comes when SSD write-backs finish: ask again
 *                   after kv_store_pump()
 *   -EINVAL         bytes is 0
 *   -EACCES         the namespace belongs to another tenant
 *   -EEXIST         the key is cached or being written
 *   -KV_ENOPARENT   it has a parent key that is neither cached nor being
 *                   written (it would be unreachable)
 *   -KV_ETOOBIG     larger than the tenant's DRAM arena
 *   -KV_EUNCOMMITTED the owner's uncommitted bytes would pass the limit
 *   -KV_EQUOTA      the tenant's uncommitted bytes would pass its quota
 *   -KV_EMETA       the tenant holds as many chunk records as it may
 *   -KV_EFULL       nothing left to evict (all pinned or being written)
 */
int kv_store_alloc_in(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		      const struct kv_store_put *p, uint8_t *tier, uint64_t *offset);

/* kv_store_alloc_in() for callers that know the chunk goes to DRAM (not
 * p->hbm). */
int kv_store_alloc(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_store_put *p, uint64_t *offset);

/* Make the owner's allocation of key visible. 0 or -ENOENT (o has no
 * uncommitted allocation of that key). */
int kv_store_commit(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		    const struct kv_key *key);

/* Free the owner's allocation of key. 0 or -ENOENT. */
int kv_store_abort(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_key *key);

/*
 * Allocation leases: abort every uncommitted allocation of o made lease_ns
 * or more before now_ns (kv_now_ns() time), as kv_store_abort() would,
 * calling fn(arg, ns, key) (fn may be NULL) for each just before it goes;
 * the key pointer is valid only during the call. Returns how many were
 * aborted. Accepts a NULL o (nothing to do).
 */
typedef void kv_store_expired_fn(void *arg, uint32_t ns, const struct kv_key *key);
unsigned kv_store_owner_expire(struct kv_store *s, struct kv_owner *o,
			       uint64_t now_ns, uint64_t lease_ns,
			       kv_store_expired_fn *fn, void *arg);

/*
 * For n keys store each one's tier in tiers[i] (KV_TIER_NONE: absent) and
 * return how many leading keys are present. Present chunks count as used,
 * deepest first, so recency never ranks a parent behind its child.
 */
uint32_t kv_store_lookup(struct kv_store *s, uint32_t ns,
			 const struct kv_key *keys, uint32_t n, uint8_t *tiers);

/*
 * After kv_store_lookup(): ask the cluster of the keys no local tier has
 * (tiers[i] KV_TIER_NONE), for a namespace that uses it. Returns 0 with
 * *out NULL when there is nothing to ask, or -EINPROGRESS with *out: a
 * question whose answer kv_store_probe_result() gives once the pump has
 * taken it in. The question is the caller's until answered or cancelled.
 */
struct kv_store_probe;
int kv_store_lookup_remote(struct kv_store *s, uint32_t ns, const struct kv_key *keys,
			   uint32_t n, const uint8_t *tiers, struct kv_store_probe **out);

/* -EINPROGRESS while the cluster is asked; else 0: tiers[i] of every key
 * it has is KV_TIER_REMOTE, *leading counts the present keys in front,
 * and p is freed. */
int kv_store_probe_result(struct kv_store *s, struct kv_store_probe *p,
			  uint8_t *tiers, uint32_t n, uint32_t *leading);

/* The question's request went: forget it (freed now or when answered). */
void kv_store_probe_cancel(struct kv_store *s, struct kv_store_probe *p);

/*
 * The remote tier as its mover last saw the cluster (kv_remote_view(),
 * tiers/remote.h) in *v (the caller's), and the chunks waiting for their
 * write-through and under way. Returns 0, -ENOTCONN (the mover has not
 * connected yet: *v holds its counters and no nodes), or -KV_ENOTIER
 * without a remote tier (nothing stored).
 */
struct kv_remote_view;
int kv_store_cluster(struct kv_store *s, struct kv_remote_view *v,
		     uint32_t *queued, uint32_t *inflight);

/*
 * Pin a chunk for o and say where it is. 0, -ENOENT, -EACCES (another
 * tenant's namespace) or -KV_EPINS, or -EINPROGRESS: it is on SSD and on
 * its way up, or only in HBM and on its way down, or, in a namespace that
 * uses the cluster, asked of it and perhaps on its way (ask again after
 * kv_store_pump(), with KV_STORE_PIN_RETRY, so the reference is not
 * counted a second time). With KV_STORE_PIN_GPU in flags the answer is the
 * HBM copy when there is one, and the pin counts towards promoting the
 * chunk into HBM; otherwise it is the DRAM copy. Any other error of a
 * promotion that could not start (-KV_EFULL) is the pin's answer.
 */
int kv_store_pin(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		 const struct kv_key *key, unsigned flags, struct kv_store_loc *loc);

/* Drop one of o's pins on a chunk. 0 or -ENOENT (o holds none). */
int kv_store_release(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		     const struct kv_key *key);

/* Drop a chunk from the cache. 0, -ENOENT, or -EBUSY (pinned or being
 * written). */
int kv_store_evict(struct kv_store *s, uint32_t ns, const struct kv_key *key);

/*
 * Write tier's chunks back to the tier below (tier KV_TIER_NONE: every
 * tier); with drop, drop instead, of every namespace for which
 * visible(ns, arg) is true: with KV_TIER_NONE every unpinned committed
 * chunk, with a tier exactly that tier's copies (a chunk with copies
 * elsewhere keeps them; one whose only copy that was leaves the cache; a
 * DRAM copy takes the chunk's HBM copy with it). Pinned and pending chunks,
 * and chunks with I/O in flight, are left alone and counted in skipped. A
 * tier with nothing below reports 0 written. Returns 0 or -KV_ENOTIER.
 */
int kv_store_flush(struct kv_store *s, uint8_t tier, bool drop,
		   bool (*visible)(uint32_t ns, void *arg), void *arg,
		   struct kv_store_flushed *res);

/* Is tier (KV_TIER_NONE: any) one this store has? */
bool kv_store_has_tier(const struct kv_store *s, uint8_t tier);

/*
 * List committed chunks from *cursor (0 to start), at most max, of
 * namespace ns (KV_STORE_NS_ALL: any for which visible(ns, arg) is true) and tier
 * (KV_TIER_NONE: any). Returns how many were stored and advances *cursor
 * (0 when done).
 */
#define KV_STORE_NS_ALL	0xffffffffu
uint32_t kv_store_ls(struct kv_store *s, uint32_t ns, uint8_t tier,
		     bool (*visible)(uint32_t ns, void *arg), void *arg,
		     uint64_t *cursor, struct kv_store_entry *out, uint32_t max);

/* A committed chunk's metadata. 0 or -ENOENT. */
int kv_store_inspect(struct kv_store *s, uint32_t ns,
		     const struct kv_key *key, struct kv_store_entry *out);

/*
 * Fill the store's figures in *g and up to max tier entries, fastest tier
 * first; return how many tiers.
 */
uint32_t kv_store_stats(struct kv_store *s, struct kv_store_stats *g,
			struct kv_store_tier_stats *t, uint32_t max);

/*
 * A client timed a read of bytes out of tier in ns nanoseconds (BW_REPORT):
 * a sample for the tier's read-bandwidth average (kvstore/bw.h), which all
 * tenants share. Returns 0, -KV_ENOTIER (a tier the store lacks), -EINVAL
 * (the SSD tier, whose reads the store times itself; bytes or ns 0) or
 * -ERANGE (a rate below 1 KB/s or above 10 TB/s), the average untouched.
 */
int kv_store_report_bw(struct kv_store *s, uint8_t tier, uint64_t bytes, uint64_t ns);

/*
 * The plan one request got for its cached chunks (PLAN_REPORT): counted by
 * kind (enum kv_store_plan), with its tokens loaded and computed. Returns 0
 * or -EINVAL (no such kind), the counts untouched. Counts saturate.
 */
int kv_store_report_plan(struct kv_store *s, unsigned kind, uint64_t loaded,
			 uint64_t computed);

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
		   const struct kv_key *key, float score);

/*
 * The SSD tier's moving parts. Everything that waits for the disk returns
 * -EINPROGRESS and finishes when the server, seeing kv_store_event_fd()
 * readable, calls kv_store_pump(); the server then asks again.
 */

/* Readable when a tier's moves (SSD jobs, GPU copies, the cluster's
 * answers) finished; -1 for a tier absent or with no moves. */
int kv_store_event_fd(const struct kv_store *s, unsigned tier);

/*
 * The store's background work, once per loop turn (in the manner of
 * Redis's beforeSleep): take in every tier's finished moves (SSD jobs, GPU
 * copies), then start queued ones (write-backs, DRAM copies of chunks put
 * into HBM, promotions into HBM) as far as the tiers' limits go. Requests
 * only queue such work; they call the wake hook (kv_store_set_wake()) so
 * that the loop runs the pump. Returns how many moves finished.
 */
unsigned kv_store_pump(struct kv_store *s);

/*
 * Call fn(arg) when the store has background work for kv_store_pump(): at
 * most once between two pumps, from inside a store call on the loop
 * thread. fn must only schedule the pump (say, make an event active), not
 * call back into the store.
 */
void kv_store_set_wake(struct kv_store *s, void (*fn)(void *arg), void *arg);

/*
 * Start promoting the SSD-resident keys among n into DRAM, and fetching
 * those of a namespace that uses the cluster that no local tier has.
 * status[i]: 0 (in DRAM already, or on its way), ENOENT, or the error that
 * stopped its promotion (KV_EFULL). A fetch may still end in a miss.
 * Returns how many are still on their way up: 0 means every present key
 * is in DRAM now.
 */
uint32_t kv_store_prefetch(struct kv_store *s, uint32_t ns,
			   const struct kv_key *keys, uint32_t n,
			   int32_t *status);

/*
 * Write every DRAM chunk without an SSD copy to the SSD: start (true) queues
 * them, then calls without start ask how it goes. Returns 0 when all of
 * them (and any committed meanwhile) are durable or refused, -EINPROGRESS
 * while writes are under way (ask again after kv_store_pump()), or
 * -KV_ENOTIER without an SSD tier.
 */
int kv_store_writeback(struct kv_store *s, bool start);

/* Write-backs finished (written, their bytes, refused) since the store
 * opened: subtract two readings to get one flush's figures. */
void kv_store_wb_counters(const struct kv_store *s, uint64_t *written,
			  uint64_t *bytes, uint64_t *failed);

/*
 * DRAM chunks with no SSD copy, which a write-back flush that just ended
 * (kv_store_writeback() returned 0) could not make durable: the SSD
 * refused them (no room for them, an I/O or index error) or evicted their
 * copy to make room for others. *why gets the reason of one of them (a
 * positive code: its write-back's error, or KV_EFULL). 0 without an SSD.
 */
uint64_t kv_store_wb_refused(const struct kv_store *s, int *why);

/* Store namespace ns's chunks on SSD with codec (enum kv_codec) instead of
 * the default. 0 or -EINVAL. */
int kv_store_set_codec(struct kv_store *s, uint32_t ns, unsigned codec);

/* Namespaces recorded on the SSD at open, in id order (nothing without an
 * SSD tier). */
int kv_store_namespaces(struct kv_store *s,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg);

/*
 * A namespace was registered: record it on the SSD, where it must be
 * durable before any chunk of it is (its name's salt goes into every
 * record and checksum of its chunks). Returns 0 when there is nothing to
 * record (no SSD tier), or -EINPROGRESS: the record is on its way, and
 * kv_store_ns_durable() tells, after kv_store_pump(), how it went.
 */
int kv_store_ns_added(struct kv_store *s, uint32_t id, uid_t uid, const char *name);

/*
 * The state of namespace id's last record change (kv_store_ns_added() or
 * kv_store_ns_drop()): 0 durable (and for an id never recorded), or
 * -EINPROGRESS, or the error that refused it (-ENOSPC, -EIO: the namespace
 * must not be used).
 */
int kv_store_ns_durable(const struct kv_store *s, uint32_t id);

/*
 * Drop namespace id from the cache: every chunk in every tier, and on the
 * SSD its chunk records and its own record. Nothing is dropped while a
 * chunk of it is pinned or pending (-EBUSY) or has I/O in flight
 * (-EAGAIN: ask again after kv_store_pump()). Otherwise its chunks go at
 * once (*chunks and *bytes count them) and it returns 0 when nothing is
 * to be forgotten on disk (no SSD tier), or -EINPROGRESS: the records'
 * deletion is under way, and kv_store_ns_durable() tells how it went. The
 * caller must make sure nothing is written under id again.
 */
int kv_store_ns_drop(struct kv_store *s, uint32_t id, uint64_t *chunks, uint64_t *bytes);

/*
 * A sync point: once kv_store_ssd_synced(s, seq) says so, every SSD index
 * change made before it (the deletes of dropped copies included) is on the
 * disk. Returns the point, or 0 without an SSD tier (nothing to wait for).
 * synced: 0, -EINPROGRESS (ask again after kv_store_pump()), or the error
 * of an index commit that failed before it (logged by the tier).
 */
uint64_t kv_store_ssd_sync(struct kv_store *s);
int kv_store_ssd_synced(const struct kv_store *s, uint64_t seq);

/* Committed chunks (and their bytes) of the n namespaces ids[] (in
 * increasing order), counted into chunks[i] and bytes[i] (zeroed first):
 * one walk of the index. */
void kv_store_ns_usage(const struct kv_store *s, const uint32_t *ids, uint32_t n,
		       uint64_t *chunks, uint64_t *bytes);

/*
 * A tenant's HBM arena for HELLO: returns its fd (borrowed: pass it with
 * SCM_RIGHTS, the store closes it) and fills its allocator's size, its
 * mapped size (what a client imports) and its GPU's PCI bus id; -1 when
 * the tenant has no HBM arena (or the daemon no HBM tier).
 */
int kv_store_hbm_export(const struct kv_store *s, unsigned tenant, uint64_t *bytes,
			uint64_t *map_bytes, char pci[KV_STORE_PCI_BYTES]);

/* A tenant's DRAM arena's memfd (borrowed) and size, for HELLO: the only
 * arena its clients are handed. -ENOENT for no such tenant. */
int kv_store_dram_fd(struct kv_store *s, unsigned tenant, uint64_t *bytes);

/* A tenant's DRAM arena as the daemon maps it (for tests), or NULL. */
void *kv_store_dram_base(struct kv_store *s, unsigned tenant);

/* ---- tenants (kvstore/tenant.h) ---- */

/* The tenant uid belongs to (an index), or -ENOENT: not allowed in. */
int kv_store_tenant_of(const struct kv_store *s, uid_t uid);
unsigned kv_store_tenants(const struct kv_store *s);
/* Its name ("uid:1000", or a declared one; borrowed), or NULL. */
const char *kv_store_tenant_name(const struct kv_store *s, unsigned tenant);

/* The tenant namespace ns is bound to (that of its owner), or -ENOENT. */
int kv_store_ns_tenant(const struct kv_store *s, uint32_t ns);

/* May tenant register one more namespace? 0 or -KV_EQUOTA (or -ENOENT).
 * Its names count, and so do its ids burned in this run (dropped, or
 * refused their record), as they take places in the table. */
int kv_store_ns_admit(const struct kv_store *s, unsigned tenant);

struct kv_store_tenant_stats {
	char name[KV_TENANT_NAME];
	uid_t uids[KV_TENANT_UIDS];
	unsigned n_uids;
	uint64_t capacity[KV_TIER_MAX];	/* its quota of each tier (bytes) */
	uint64_t used[KV_TIER_MAX];
	uint64_t chunks[KV_TIER_MAX];	/* with a copy in each tier */
	uint64_t namespaces, max_namespaces;
	uint64_t uncommitted, max_uncommitted;
	uint64_t records, max_records;	/* chunk records */
};

/* What tenant (< kv_store_tenants()) holds, against its quotas. */
void kv_store_tenant_stats(const struct kv_store *s, unsigned tenant,
			   struct kv_store_tenant_stats *st);

/* Bytes of the daemon's memory the chunk records take (an estimate:
 * records and index buckets). */
uint64_t kv_store_meta_bytes(const struct kv_store *s);

#endif
