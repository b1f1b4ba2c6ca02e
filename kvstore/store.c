/*
 * store.c - chunks in tiers: two-phase puts, pins, leaf-first eviction.
 *
 * Every chunk is one struct kv_chunk in the index, in one of two states:
 * PENDING (allocated by an owner, listed on its writer list, not in any
 * policy) or COMMITTED (in its tier's policy, visible). Pins are records
 * shared by the chunk's pin list and the owner's list, so both a release
 * by key and an owner's exit are cheap.
 *
 * Prefix tree: a committed chunk whose parent is cached is linked under it
 * (up, first_child, sib_*); the tier policy's evictable() says no to a
 * chunk with children, which makes eviction leaf-first. A child committed
 * before its parent stays unlinked (NEEDSWORK: link orphans when the parent
 * arrives; engines put prefixes in order, so it is rare).
 *
 * The SSD tier (docs/ssd.md): a committed chunk is in DRAM, on SSD, or in
 * both; each tier's policy holds the chunks with a copy there. Write-back
 * is eager: a commit queues the chunk for the SSD, and a DRAM chunk is
 * evictable only once it has an SSD copy (then eviction just drops the
 * DRAM copy: a demotion), so eviction never waits for the disk unless the
 * puts outrun it. A chunk the SSD declined (full of held chunks, an I/O
 * error, or its copy evicted there) is marked no_wb and may be dropped
 * from DRAM like a chunk of a daemon without SSD. Evictability per tier:
 *   DRAM: no pins, no I/O, and an SSD copy (a demotion keeps it reachable)
 *         or, when it would leave the cache (no SSD tier, or no_wb), no
 *         children;
 *   SSD:  no pins, no I/O, and a DRAM copy or no children at all (an
 *         SSD-only chunk with children is their only way in).
 *
 * The HBM tier (docs/gpu.md) is inclusive too: a chunk in HBM also has a
 * DRAM copy, except a chunk put straight into HBM until the GPU thread
 * has copied it down (the DOWN queue; -EINPROGRESS for a host reader
 * meanwhile). Dropping a chunk's DRAM copy drops its HBM copy with it, so
 * both tiers' policies see every access of a chunk in both. Promotion
 * DRAM -> HBM is a GPU copy started by a GPU client's pin (on its first
 * or second, by hbm_promote), answered from DRAM until it lands.
 *   HBM:  no pins, no GPU copy in flight, and a copy in another tier (a
 *         DRAM or SSD copy) or, when its DRAM copy was refused, no
 *         children;
 *   DRAM: also no GPU copy in flight (an UP reads it).
 * refresh_hold() recomputes all three after any change and tells the
 * policies.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "evict/policy.h"
#include "kernels/kv_gpu.h"
#include "kvstore/bw.h"
#include "lib/errors.h"
#include "kvstore/index.h"
#include "lib/log.h"
#include "kvstore/store.h"
#include "kvstore/tenant.h"
#include "lib/util.h"
#include "tiers/codec.h"
#include "tiers/hbm.h"
#include "tiers/ssd.h"
#include "tiers/tier.h"

struct kv_pin {
	struct kv_chunk *chunk;
	struct kv_owner *owner;
	struct kv_pin *cnext;		/* the chunk's pin list */
	struct kv_pin *onext;		/* the owner's pin list */
	struct kv_pin *oprev;
	uint32_t count;
};

struct kv_owner {
	struct kv_owner *next;		/* the store's owner list */
	struct kv_owner *prev;
	struct kv_chunk *pending;	/* allocated, not committed */
	struct kv_pin *pins;
	struct tenant *tenant;		/* whose arenas it may use */
	uint64_t uncommitted;		/* bytes */
	uint32_t n_pins;		/* pins held, repeats counted */
};

/* A tier of the store: what all tenants' parts of it share. */
struct stier {
	const struct kv_tier_ops *ops;	/* NULL: tier absent */
	const struct kv_evict_ops *pol;	/* every tenant's instance runs it */
	uint64_t capacity;		/* all tenants' together */
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;
	struct kv_bw read;		/* reads out of it: SSD promotions timed
					 * here, HBM and DRAM copies as clients
					 * report them (kv_store_report_bw()) */
};

/*
 * One tenant's part of a tier: its own arena (DRAM, HBM; the SSD tier is
 * one space, with a quota per tenant), its instance of the tier's policy,
 * which ranks only its chunks, and its quota.
 */
struct ttier {
	struct kv_tier t;		/* DRAM, HBM: its arena; t.ops NULL: none */
	void *pstate;			/* its policy instance (NULL: none) */
	uint64_t capacity;		/* its quota */
	uint64_t used;			/* SSD: bytes of its extents */
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

struct kv_store {
	struct kv_index *idx;
	struct kv_store_conf conf;
	struct kv_cost_model *models;	/* by namespace id; hidden 0: unset */
	uint32_t n_models;
	uint8_t *codecs;		/* by namespace id: codec + 1; 0: default */
	uint32_t n_codecs;
	struct kv_chunk **found;	/* kv_store_lookup()'s scratch */
	uint32_t found_cap;
	struct stier tiers[KV_TIER_MAX];
	struct tenant *tenants;
	unsigned n_tenants;
	uint16_t *ns_tenant;		/* by namespace id: tenant + 1; 0: unbound */
	uint32_t n_ns_tenant;
	void *range;			/* the DRAM arenas, one mapping each, side by side */
	uint64_t range_bytes;
	uint64_t chunks;		/* records in the index, all tenants */
	uint64_t max_chunks;
	struct kv_owner *owners;
	uint64_t pinned_chunks;
	uint64_t pending_chunks;
	uint64_t checksum_failures;
	uint64_t start_ns;
	uint64_t plans[KV_PLAN_BOTH + 1];	/* PLAN_REPORT, by kind */
	uint64_t plan_tokens_loaded;
	uint64_t plan_tokens_computed;
	uint32_t max_pins;
	uint64_t max_uncommitted;
	/* the SSD tier */
	struct kv_ssd *ssd;		/* tiers[KV_TIER_SSD].t.priv, or NULL */
	struct kv_chunk *wb_head;	/* write-back queue, oldest first */
	struct kv_chunk *wb_tail;
	uint64_t wb_queued;
	unsigned wb_inflight;
	unsigned wb_max;
	uint64_t wb_written;		/* write-backs done, ever */
	uint64_t wb_bytes;
	uint64_t wb_failed;
	uint64_t wb_lost;		/* chunks that left the cache from DRAM
					 * after their write-back failed */
	uint64_t io_failures;		/* promotions lost to read errors */
	unsigned rd_inflight;		/* promotions submitted, not reaped */
	uint64_t rd_start;		/* the read batch under way began */
	uint64_t rd_bytes;		/* ... and has brought up this much */
	struct ns_ssd *nss;		/* per namespace id: salt, record */
	uint32_t n_nss;
	uint64_t sync_sent;		/* SSD sync points submitted */
	uint64_t sync_done;		/* ... and reaped (in order) */
	int sync_res;			/* the last one's result */
	/* the HBM tier */
	struct kv_hbm *hbm;		/* the GPU thread (arenas: per tenant), or NULL */
	struct kv_chunk *dn_head;	/* chunks waiting for room for a DRAM copy */
	struct kv_chunk *dn_tail;
	unsigned hbm_inflight;		/* GPU copies in flight */
	bool hbm_dead;			/* a GPU copy failed: no new HBM copies */
};

#define HBM_COPIES_MAX	32	/* GPU copies in flight at once */
#define RD_PERIOD_NS	1000000000ull	/* an SSD read batch that never drains
					 * gives a sample a second */

/* A chunk's tenant's part of a tier. */
static struct ttier *ctt(const struct kv_store *s, const struct kv_chunk *c,
			 unsigned tier)
{
	return &s->tenants[c->tenant].tiers[tier];
}

/* A DRAM extent's offset in the daemon's range (what SSD and GPU jobs
 * address), from its offset in its tenant's arena. */
static uint64_t dram_off(const struct kv_store *s, const struct kv_chunk *c,
			 const struct kv_extent *e)
{
	return ctt(s, c, KV_TIER_DRAM)->base + kv_extent_offset(e);
}

/*
 * What the SSD tier needs of a namespace: its name's salt (every record
 * and checksum carries it) and the state of its record, which must be
 * durable before any chunk of it is written (docs/ssd.md).
 */
struct ns_ssd {
	uint64_t salt;
	int rec;			/* 0: recorded (or restored); -EINPROGRESS;
					 * or the error that refused it. During a
					 * drop: the drop's state, the same way. */
};

static struct kv_chunk *node_chunk(const struct kv_evict_node *n)
{
	return kv_container_of(n, struct kv_chunk, node);
}

static struct kv_chunk *ssd_node_chunk(const struct kv_evict_node *n)
{
	return kv_container_of(n, struct kv_chunk, ssd_node);
}

static struct kv_chunk *hbm_node_chunk(const struct kv_evict_node *n)
{
	return kv_container_of(n, struct kv_chunk, hbm_node);
}

static struct kv_evict_node *tier_node(struct kv_chunk *c, unsigned tier)
{
	return tier == KV_TIER_SSD ? &c->ssd_node :
	       tier == KV_TIER_HBM ? &c->hbm_node : &c->node;
}

static struct kv_extent *tier_ext(const struct kv_chunk *c, unsigned tier)
{
	return tier == KV_TIER_SSD ? c->ssd_ext :
	       tier == KV_TIER_HBM ? c->hbm_ext : c->ext;
}

/* The fastest tier with a copy. */
static void retier(struct kv_chunk *c)
{
	c->tier = c->hbm_ext ? KV_TIER_HBM : c->ext ? KV_TIER_DRAM : KV_TIER_SSD;
}

/*
 * Out of DRAM, a chunk with an SSD copy is demoted and stays reachable, so
 * only a chunk that would leave the cache must be a leaf.
 */
static bool dram_evictable(const struct kv_store *s, const struct kv_chunk *c)
{
	return c->pins == 0 && c->io == KV_IO_NONE && c->hbm_io == KV_HIO_NONE &&
	       (c->ssd_ext || ((!s->ssd || c->no_wb) && c->children == 0));
}

static bool hbm_evictable(const struct kv_chunk *c)
{
	return c->pins == 0 && c->hbm_io == KV_HIO_NONE &&
	       (c->ext || c->ssd_ext || (c->no_down && c->children == 0));
}

static bool ssd_evictable(const struct kv_chunk *c)
{
	return c->pins == 0 && c->io == KV_IO_NONE && (c->ext || c->children == 0);
}

static bool chunk_evictable(const struct kv_evict_node *n, void *arg)
{
	return dram_evictable(arg, node_chunk(n));
}

static bool ssd_chunk_evictable(const struct kv_evict_node *n, void *arg)
{
	return ssd_evictable(ssd_node_chunk(n));
}

static bool hbm_chunk_evictable(const struct kv_evict_node *n, void *arg)
{
	return hbm_evictable(hbm_node_chunk(n));
}

/*
 * Something that decides a committed chunk's evictability changed (pins,
 * children, I/O, copies): tell each tier's policy whose answer moved.
 */
static void refresh_hold(struct kv_store *s, struct kv_chunk *c)
{
	bool held;

	if (c->state != KV_CHUNK_COMMITTED)
		return;
	if (c->ext) {
		struct stier *st = &s->tiers[KV_TIER_DRAM];

		held = !dram_evictable(s, c);
		if (held != c->dram_held) {
			c->dram_held = held;
			if (st->pol->on_hold)
				st->pol->on_hold(ctt(s, c, KV_TIER_DRAM)->pstate,
						 &c->node, held);
		}
	}
	if (c->ssd_ext) {
		struct stier *st = &s->tiers[KV_TIER_SSD];

		held = !ssd_evictable(c);
		if (held != c->ssd_held) {
			c->ssd_held = held;
			if (st->pol->on_hold)
				st->pol->on_hold(ctt(s, c, KV_TIER_SSD)->pstate,
						 &c->ssd_node, held);
		}
	}
	if (c->hbm_ext) {
		struct stier *st = &s->tiers[KV_TIER_HBM];

		held = !hbm_evictable(c);
		if (held != c->hbm_held) {
			c->hbm_held = held;
			if (st->pol->on_hold)
				st->pol->on_hold(ctt(s, c, KV_TIER_HBM)->pstate,
						 &c->hbm_node, held);
		}
	}
}

static void policy_conf(const struct kv_store *s, unsigned tier,
			uint64_t capacity, struct kv_evict_conf *ec)
{
	*ec = (struct kv_evict_conf){
		.capacity = capacity,
		.evictable = tier == KV_TIER_SSD ? ssd_chunk_evictable :
			     tier == KV_TIER_HBM ? hbm_chunk_evictable :
						   chunk_evictable,
		.arg = (void *)s,
		.recent_fraction = s->conf.recent_fraction,
		.half_life = s->conf.half_life,
	};
}

static double chunk_cost(const struct kv_store *s, const struct kv_chunk *c,
			 uint64_t size)
{
	const struct kv_cost_model *m = &s->conf.cost_model;
	double cost;

	if (s->conf.cost_mode == KV_COST_RELOAD)
		return s->conf.reload_latency + (double)size / s->conf.reload_bw;
	if (c->ns < s->n_models && s->models[c->ns].hidden)
		m = &s->models[c->ns];
	cost = kv_cost_compute(m, c->tokens, c->position);
	/* A chunk of no tokens (an opaque blob) still costs its bytes. */
	return cost > 0 ? cost : (double)size / 1e12 + 1e-12;
}

double kv_cost_compute(const struct kv_cost_model *m, uint32_t tokens,
		       uint32_t position)
{
	double n = tokens, p = position, d = m->hidden;

	return n * (m->b * d * d + m->a * d * (2 * p + n)) / 1e12;
}

/* Find a tier's policy by name. NULL (logged) when there is none. */
static const struct kv_evict_ops *find_policy(const char *name)
{
	const struct kv_evict_ops *ops = kv_evict_find(name);

	if (!ops)
		kv_log(KV_ERR, KV_LOG_EVICT, "unknown eviction policy '%s'", name);
	return ops;
}

/* Start every tenant's instance of a tier's policy (the tier's pol set). */
static int policies_init(struct kv_store *s, unsigned tier)
{
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[tier];
		struct kv_evict_conf ec;
		int ret;

		policy_conf(s, tier, tt->capacity, &ec);
		ret = s->tiers[tier].pol->init(&tt->pstate, &ec);
		if (ret)
			return ret;
	}
	return 0;
}

static void policies_fini(struct kv_store *s, unsigned tier)
{
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[tier];

		if (tt->pstate)
			s->tiers[tier].pol->fini(tt->pstate);
		tt->pstate = NULL;
	}
}

static void link_parent(struct kv_store *s, struct kv_chunk *c,
			struct kv_chunk *p);
static void ssd_insert(struct kv_store *s, struct kv_chunk *c);
static void ssd_forget(struct kv_store *s, struct kv_chunk *c);

/*
 * The tenant table (kvstore/tenant.h), with each tier's total: a tier
 * the daemon lacks (HBM without a usable GPU, SSD unconfigured) gives
 * every tenant 0 of it. Chunk records are bounded per tenant in
 * proportion to its bytes.
 */
static int tenants_open(struct kv_store *s, const struct kv_store_conf *conf,
			bool hbm)
{
	struct kv_tenant_conf t[KV_TENANT_MAX];
	uint64_t total[KV_TQ_MAX] = {
		[KV_TQ_DRAM] = conf->dram_bytes,
		[KV_TQ_HBM] = hbm ? conf->hbm_bytes : 0,
		[KV_TQ_SSD] = conf->ssd_dir ? conf->ssd_bytes : 0,
		[KV_TQ_NAMESPACES] = conf->max_namespaces ? conf->max_namespaces : 4096,
	};
	uint64_t bytes = total[KV_TQ_DRAM] + total[KV_TQ_HBM] + total[KV_TQ_SSD];
	uint64_t max_chunks = conf->max_chunks;
	char err[256];
	int n;

	n = kv_tenants_resolve(conf->tenants, conf->n_tenants, conf->allow_uids,
			       conf->n_allow, conf->self_uid, total, conf->align,
			       t, KV_TENANT_MAX, err, sizeof(err));
	if (n < 0) {
		kv_log(KV_ERR, KV_LOG_MAIN, "tenants: %s", err);
		return n;
	}
	if (!max_chunks)
		max_chunks = kv_store_default_max_chunks(bytes);
	s->max_chunks = max_chunks;
	s->tenants = kv_xcalloc((size_t)n, sizeof(*s->tenants));
	s->n_tenants = (unsigned)n;
	for (int i = 0; i < n; i++) {
		struct tenant *tn = &s->tenants[i];
		const uint64_t *q = t[i].quota;
		uint64_t mine = q[KV_TQ_DRAM] + q[KV_TQ_HBM] + q[KV_TQ_SSD];

		tn->conf = t[i];
		tn->id = (unsigned)i;
		tn->tiers[KV_TIER_DRAM].capacity = q[KV_TQ_DRAM];
		tn->tiers[KV_TIER_HBM].capacity = q[KV_TQ_HBM];
		tn->tiers[KV_TIER_SSD].capacity = q[KV_TQ_SSD];
		/* Its share of the records: in proportion to its bytes. */
		tn->max_chunks = n == 1 ? max_chunks :
				 (uint64_t)((double)max_chunks * (double)mine / (double)bytes);
		if (tn->max_chunks == 0)
			tn->max_chunks = 1;
		kv_log(KV_INFO, KV_LOG_MAIN, "tenant '%s': dram %" PRIu64 ", hbm %" PRIu64 ", ssd %" PRIu64 " bytes, %" PRIu64 " namespaces, %" PRIu64 " chunks",
		       tn->conf.name, q[KV_TQ_DRAM], q[KV_TQ_HBM], q[KV_TQ_SSD],
		       q[KV_TQ_NAMESPACES], tn->max_chunks);
	}
	return 0;
}

/*
 * One DRAM arena per tenant, each its own memfd (a client is handed only
 * its tenant's), mapped side by side in one range reserved here, so SSD
 * and GPU jobs address every arena by one offset from the range's start.
 */
static int dram_open(struct kv_store *s, const struct kv_store_conf *conf)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];
	uint64_t total = 0, off = 0;
	int ret;

	for (unsigned i = 0; i < s->n_tenants; i++)
		total += s->tenants[i].tiers[KV_TIER_DRAM].capacity;
	st->pol = find_policy(conf->dram_policy);
	if (!st->pol)
		return -EINVAL;
	s->range = mmap(NULL, total, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->range == MAP_FAILED) {
		ret = -errno;
		s->range = NULL;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot reserve %" PRIu64 " bytes for the DRAM arenas: %s",
		       total, kv_strerror(ret));
		return ret;
	}
	s->range_bytes = total;
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[KV_TIER_DRAM];
		struct kv_tier_conf tc = {
			.bytes = tt->capacity,
			.align = conf->align,
			.use_gpu = conf->hbm_bytes != 0 && conf->gpu >= 0,
			.gpu = conf->gpu,
			.at = (char *)s->range + off,
			.mem_check = i == 0 ? total : 0,
		};

		ret = kv_tier_open(&tt->t, "dram", &tc);
		if (ret)
			return ret;
		tt->base = off;
		off += tt->capacity;
	}
	st->ops = &kv_tier_dram;
	st->capacity = total;
	return policies_init(s, KV_TIER_DRAM);
}

/* Which tenant namespace id belongs to: -1 when unbound. */
static int ns_tenant(const struct kv_store *s, uint32_t ns)
{
	return ns < s->n_ns_tenant && s->ns_tenant[ns] ? s->ns_tenant[ns] - 1 : -1;
}

/*
 * A namespace dropped, or refused its record: no longer its tenant's. Its
 * id is burned (never handed out again in this run), and it still counts
 * against the tenant's namespaces quota: the quotas add up to at most
 * max_namespaces, so no tenant can fill the table for the others by
 * registering and dropping names.
 */
static void ns_unbind(struct kv_store *s, uint32_t ns)
{
	if (ns_tenant(s, ns) >= 0)
		s->ns_tenant[ns] = 0;
}

static void ns_bind(struct kv_store *s, uint32_t ns, unsigned tenant)
{
	if (ns >= s->n_ns_tenant) {
		uint32_t n = ns + 1 > 2 * s->n_ns_tenant ? ns + 1 : 2 * s->n_ns_tenant;

		s->ns_tenant = kv_xrealloc(s->ns_tenant, n * sizeof(*s->ns_tenant));
		memset(s->ns_tenant + s->n_ns_tenant, 0,
		       (n - s->n_ns_tenant) * sizeof(*s->ns_tenant));
		s->n_ns_tenant = n;
	}
	if (s->ns_tenant[ns])
		return;
	s->ns_tenant[ns] = (uint16_t)(tenant + 1);
	s->tenants[tenant].namespaces++;
}

/* A namespace recorded on the SSD: bound to its owner's tenant, if any. */
static int ssd_ns_bind(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct kv_store *s = arg;
	int t = kv_store_tenant_of(s, uid);

	if (t < 0) {
		kv_log(KV_WARN, KV_LOG_MAIN, "namespace '%s' of uid %u: no tenant has that uid now; its chunks are dropped",
		       name, (unsigned)uid);
		return 0;
	}
	ns_bind(s, id, (unsigned)t);
	return 0;
}

static int ns_found(void *arg, uint32_t id, uid_t uid, const char *name);
static void ns_done(struct kv_store *s, const struct kv_ssd_job *j);
static void sync_done(struct kv_store *s, const struct kv_ssd_job *j);

/* A chunk record found on the SSD at open: back into the index. */
static int ssd_found(void *arg, uint32_t ns, const struct kv_key *k,
		     const struct kv_ssd_rec *rec, struct kv_extent *ext)
{
	struct kv_store *s = arg;
	struct kv_wire_key key = kv_key_to_wire(k);
	struct kv_chunk *c;

	if (kv_index_find(s->idx, ns, &key))
		return -EEXIST;
	c = kv_index_add(s->idx, ns, &key);
	c->state = KV_CHUNK_COMMITTED;
	c->has_parent = rec->has_parent;
	c->parent = kv_key_to_wire(&rec->parent);
	c->tokens = rec->tokens;
	c->position = rec->position;
	c->bytes = rec->bytes;
	c->hits = rec->hits;
	c->node.freq = rec->freq;
	c->node.score = rec->score;
	c->ssd_ext = ext;
	c->ssd_stored = rec->stored;
	c->ssd_codec = rec->codec;
	c->ssd_checksum = rec->checksum;
	c->last_used_ns = kv_now_ns();
	return 0;
}

/*
 * After a restart: each chunk to its namespace's tenant (a chunk of a
 * namespace no tenant owns now is forgotten), then policy membership and
 * the prefix links, which need every chunk present first.
 */
static void ssd_rebuild(struct kv_store *s)
{
	struct kv_chunk **orphans = NULL;
	size_t n = 0, cap = 0;
	uint64_t cursor = 0;
	struct kv_chunk *c;

	while ((c = kv_index_next(s->idx, &cursor))) {
		int t = ns_tenant(s, c->ns);

		if (t < 0) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				orphans = kv_xrealloc(orphans, cap * sizeof(*orphans));
			}
			orphans[n++] = c;
			continue;
		}
		c->tenant = (uint16_t)t;
		s->tenants[t].chunks++;
		s->chunks++;
		ctt(s, c, KV_TIER_SSD)->used += kv_extent_size(c->ssd_ext);
	}
	for (size_t i = 0; i < n; i++) {
		c = orphans[i];
		kv_ssd_free(s->ssd, c->ssd_ext);
		ssd_forget(s, c);
		kv_index_del(s->idx, c);
	}
	free(orphans);
	cursor = 0;
	while ((c = kv_index_next(s->idx, &cursor)))
		if (c->has_parent)
			link_parent(s, c, kv_index_find(s->idx, c->ns, &c->parent));
	cursor = 0;
	while ((c = kv_index_next(s->idx, &cursor)))
		ssd_insert(s, c);
}

static int ssd_open(struct kv_store *s, const struct kv_store_conf *conf)
{
	struct stier *st = &s->tiers[KV_TIER_SSD];
	struct kv_ssd_conf sc = {
		.dir = conf->ssd_dir,
		.bytes = conf->ssd_bytes,
		.queue_depth = conf->ssd_queue_depth ? conf->ssd_queue_depth : 32,
		.level = conf->ssd_level ? conf->ssd_level : KV_CODEC_LEVEL_DEFAULT,
		.sync = conf->ssd_sync,
		.io_sync = conf->ssd_io_sync,
		.dram_base = s->range,
		.dram_bytes = s->range_bytes,
	};
	const char *policy = conf->ssd_policy ? conf->ssd_policy : conf->dram_policy;
	struct kv_alloc_stats as;
	int ret;

	if (conf->ssd_codec >= KV_CODEC_MAX)
		return -EINVAL;
	st->pol = find_policy(policy);
	if (!st->pol)
		return -EINVAL;
	ret = kv_ssd_open(&s->ssd, &sc, ssd_found, s);
	if (ret)
		return ret;
	kv_ssd_namespaces(s->ssd, ns_found, s);	/* their salts */
	kv_ssd_stats(s->ssd, &as, NULL);
	st->ops = &kv_tier_ssd;
	st->capacity = as.size;
	ret = policies_init(s, KV_TIER_SSD);
	if (ret) {
		policies_fini(s, KV_TIER_SSD);
		kv_ssd_close(s->ssd);
		s->ssd = NULL;
		st->ops = NULL;
		return ret;
	}
	s->wb_max = conf->ssd_writes ? conf->ssd_writes : 8;
	kv_ssd_namespaces(s->ssd, ssd_ns_bind, s);
	ssd_rebuild(s);
	return 0;
}

/*
 * Can the HBM tier be had: hbm_bytes set and the GPU usable? One INFO
 * line says why not.
 */
static bool hbm_usable(const struct kv_store_conf *conf)
{
	char why[128];
	int n = 0;

	if (!conf->hbm_bytes)
		return false;
	if (!kv_gpu_available(&n, why, sizeof(why))) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: %s", why);
		return false;
	}
	if (conf->gpu < 0 || conf->gpu >= n) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: no GPU %d (this host has %d)",
		       conf->gpu, n);
		return false;
	}
	return true;
}

/*
 * The HBM tier: the GPU thread, and one arena per tenant with an HBM quota
 * (its own VMM allocation, whose fd only that tenant's clients are
 * handed). Never fails the store: without it the daemon serves from DRAM
 * and SSD (one INFO line).
 */
static void hbm_open(struct kv_store *s, const struct kv_store_conf *conf)
{
	struct stier *st = &s->tiers[KV_TIER_HBM];
	struct kv_hbm_conf hc = {
		.align = conf->align,
		.gpu = conf->gpu,
	};
	const char *policy = conf->hbm_policy ? conf->hbm_policy : conf->dram_policy;
	uint64_t total = 0;
	int ret;

	st->pol = find_policy(policy);
	if (!st->pol)
		return;
	ret = kv_hbm_open(&s->hbm, &hc);
	for (unsigned i = 0; !ret && i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[KV_TIER_HBM];
		struct kv_hbm_arena *a;

		if (!tt->capacity)
			continue;
		ret = kv_hbm_arena_open(s->hbm, tt->capacity, &a);
		if (ret)
			break;
		tt->t.ops = &kv_tier_hbm;
		tt->t.priv = a;
		total += tt->capacity;
	}
	if (!ret)
		ret = policies_init(s, KV_TIER_HBM);
	if (ret) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: %s (%s)", kv_strerror(ret),
		       kv_gpu_last_error());
		policies_fini(s, KV_TIER_HBM);
		kv_hbm_close(s->hbm);	/* and its arenas */
		s->hbm = NULL;
		for (unsigned i = 0; i < s->n_tenants; i++)
			s->tenants[i].tiers[KV_TIER_HBM].t.ops = NULL;
		return;
	}
	st->ops = &kv_tier_hbm;
	st->capacity = total;
}

uint64_t kv_store_default_max_chunks(uint64_t bytes)
{
	uint64_t n = bytes / KV_STORE_CHUNK_AVG;

	return n < KV_STORE_CHUNKS_MIN ? KV_STORE_CHUNKS_MIN : n;
}

int kv_store_open(struct kv_store **out, const struct kv_store_conf *conf)
{
	struct kv_store *s;
	bool hbm;
	int ret;

	if (!conf->dram_bytes || !conf->align || !conf->dram_policy ||
	    !conf->max_pins || !conf->max_uncommitted ||
	    conf->recent_fraction < 0 || conf->recent_fraction > 1 ||
	    conf->half_life < 0 ||
	    (conf->cost_mode == KV_COST_RELOAD && !(conf->reload_bw > 0)) ||
	    (conf->ssd_dir && !conf->ssd_bytes) ||
	    conf->n_tenants > KV_TENANT_DECLARED || (conf->n_tenants && !conf->tenants) ||
	    (conf->n_allow && !conf->allow_uids))
		return -EINVAL;
	s = kv_xcalloc(1, sizeof(*s));
	s->conf = *conf;
	s->conf.dram_policy = NULL;	/* borrowed: not kept */
	s->conf.ssd_policy = NULL;
	s->conf.ssd_dir = NULL;
	s->conf.hbm_policy = NULL;
	s->conf.tenants = NULL;
	s->conf.allow_uids = NULL;
	if (!s->conf.cost_model.hidden)
		s->conf.cost_model = KV_COST_MODEL_DEFAULT;
	if (s->conf.recent_fraction == 0)
		s->conf.recent_fraction = 0.5;
	s->max_pins = conf->max_pins;
	s->max_uncommitted = conf->max_uncommitted;
	s->start_ns = kv_now_ns();
	ret = kv_index_open(&s->idx, 12);
	if (ret) {
		free(s);
		return ret;
	}
	hbm = hbm_usable(conf);
	ret = tenants_open(s, conf, hbm);
	if (!ret)
		ret = dram_open(s, conf);
	if (!ret && hbm)
		hbm_open(s, conf);
	if (!ret && conf->ssd_dir)
		ret = ssd_open(s, conf);
	if (ret) {
		kv_store_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

int kv_store_set_model(struct kv_store *s, uint32_t ns,
		       const struct kv_cost_model *m)
{
	if (!m->hidden || !(m->a >= 0) || !(m->b >= 0) ||
	    m->a > 1e9 || m->b > 1e9 || ns >= (1u << 24))
		return -EINVAL;
	if (ns >= s->n_models) {
		uint32_t n = ns + 1 > 2 * s->n_models ? ns + 1 : 2 * s->n_models;

		s->models = kv_xrealloc(s->models, n * sizeof(*s->models));
		memset(s->models + s->n_models, 0,
		       (n - s->n_models) * sizeof(*s->models));
		s->n_models = n;
	}
	if (!s->models[ns].hidden)
		s->models[ns] = *m;
	return 0;
}

/* ---- tier membership ----------------------------------------------------- */

/* Allocate in tenant t's part of a tier: its own arena, or (SSD) the
 * shared space within its quota. -ENOMEM: full, evict and retry. */
static int part_alloc(struct kv_store *s, struct tenant *t, unsigned tier,
		      uint64_t bytes, struct kv_extent **ext)
{
	struct ttier *tt = &t->tiers[tier];
	int ret;

	if (tier != KV_TIER_SSD)
		return tt->t.ops->alloc(tt->t.priv, bytes, ext);
	if (tt->used > tt->capacity || bytes > tt->capacity - tt->used)
		return -ENOMEM;
	ret = kv_ssd_alloc(s->ssd, bytes, ext);
	if (!ret)
		tt->used += kv_extent_size(*ext);
	return ret;
}

static void part_free(struct kv_store *s, const struct kv_chunk *c, unsigned tier,
		      struct kv_extent *e)
{
	struct ttier *tt = ctt(s, c, tier);

	if (tier != KV_TIER_SSD) {
		tt->t.ops->free(tt->t.priv, e);
		return;
	}
	tt->used -= kv_extent_size(e);
	kv_ssd_free(s->ssd, e);
}

/* Count a chunk into (n 1) or out of (n -1) a tier's membership. */
static void count_member(struct kv_store *s, const struct kv_chunk *c,
			 unsigned tier, int n)
{
	s->tiers[tier].chunks += (uint64_t)(int64_t)n;
	ctt(s, c, tier)->chunks += (uint64_t)(int64_t)n;
}

static void dram_insert(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	c->node.tokens = c->tokens;	/* policy-private fields: any value */
	c->node.position = c->position;
	c->node.size = kv_extent_size(c->ext);
	c->node.cost = chunk_cost(s, c, c->node.size);
	c->dram_held = !dram_evictable(s, c);
	st->pol->on_insert(ctt(s, c, KV_TIER_DRAM)->pstate, &c->node);
	count_member(s, c, KV_TIER_DRAM, 1);
	retier(c);
}

static void hbm_insert(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_HBM];
	struct kv_evict_node *n = &c->hbm_node;

	n->freq = c->node.freq;			/* carried from DRAM */
	n->score = c->node.score;
	n->tokens = c->tokens;
	n->position = c->position;
	n->size = kv_extent_size(c->hbm_ext);
	n->cost = chunk_cost(s, c, n->size);
	c->hbm_held = !hbm_evictable(c);
	st->pol->on_insert(ctt(s, c, KV_TIER_HBM)->pstate, n);
	count_member(s, c, KV_TIER_HBM, 1);
	retier(c);
}

static void dn_unlink(struct kv_store *s, struct kv_chunk *c)
{
	if (c->dn_prev)
		c->dn_prev->dn_next = c->dn_next;
	else
		s->dn_head = c->dn_next;
	if (c->dn_next)
		c->dn_next->dn_prev = c->dn_prev;
	else
		s->dn_tail = c->dn_prev;
	c->dn_next = c->dn_prev = NULL;
	c->dn_queued = false;
}

/* Drop the HBM copy (the chunk stays where else it is). */
static void hbm_out(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_HBM];

	if (c->dn_queued)
		dn_unlink(s, c);
	if (c->state == KV_CHUNK_COMMITTED) {
		st->pol->on_remove(ctt(s, c, KV_TIER_HBM)->pstate, &c->hbm_node);
		count_member(s, c, KV_TIER_HBM, -1);
	}
	part_free(s, c, KV_TIER_HBM, c->hbm_ext);
	c->hbm_ext = NULL;
	retier(c);
}

static void ssd_insert(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_SSD];
	struct kv_evict_node *n = &c->ssd_node;

	n->freq = c->node.freq;			/* carried from DRAM */
	n->score = c->node.score;
	n->tokens = c->tokens;
	n->position = c->position;
	n->size = kv_extent_size(c->ssd_ext);
	n->cost = chunk_cost(s, c, n->size);
	c->ssd_held = !ssd_evictable(c);
	st->pol->on_insert(ctt(s, c, KV_TIER_SSD)->pstate, n);
	count_member(s, c, KV_TIER_SSD, 1);
	retier(c);
}

/* Drop the DRAM copy (the chunk stays where else it is). */
static void dram_out(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	if (c->state == KV_CHUNK_COMMITTED) {
		st->pol->on_remove(ctt(s, c, KV_TIER_DRAM)->pstate, &c->node);
		count_member(s, c, KV_TIER_DRAM, -1);
	}
	part_free(s, c, KV_TIER_DRAM, c->ext);
	c->ext = NULL;
	retier(c);
}

static void ssd_forget(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_ssd_job *j = kv_xcalloc(1, sizeof(*j));

	j->op = KV_SSD_FORGET;
	j->ns = c->ns;
	j->key = kv_key_from_wire(&c->key);
	kv_ssd_submit(s->ssd, j);
}

/* Drop the SSD copy and its index record. */
static void ssd_out(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_SSD];

	st->pol->on_remove(ctt(s, c, KV_TIER_SSD)->pstate, &c->ssd_node);
	count_member(s, c, KV_TIER_SSD, -1);
	c->node.freq = c->ssd_node.freq;	/* carry what the SSD saw */
	c->node.score = c->ssd_node.score;
	part_free(s, c, KV_TIER_SSD, c->ssd_ext);
	c->ssd_ext = NULL;
	ssd_forget(s, c);
}

static void wb_unlink(struct kv_store *s, struct kv_chunk *c)
{
	if (c->wb_prev)
		c->wb_prev->wb_next = c->wb_next;
	else
		s->wb_head = c->wb_next;
	if (c->wb_next)
		c->wb_next->wb_prev = c->wb_prev;
	else
		s->wb_tail = c->wb_prev;
	c->wb_next = c->wb_prev = NULL;
	c->wb_queued = false;
	s->wb_queued--;
	s->tenants[c->tenant].wb_pending--;
}

/* Queue a DRAM chunk without an SSD copy for write-back. */
static void wb_enqueue(struct kv_store *s, struct kv_chunk *c, bool urgent)
{
	if (!s->ssd || c->wb_queued || c->ssd_ext || !c->ext || c->io)
		return;
	c->wb_queued = true;
	s->wb_queued++;
	s->tenants[c->tenant].wb_pending++;
	if (urgent) {
		c->wb_next = s->wb_head;
		if (s->wb_head)
			s->wb_head->wb_prev = c;
		else
			s->wb_tail = c;
		s->wb_head = c;
	} else {
		c->wb_prev = s->wb_tail;
		if (s->wb_tail)
			s->wb_tail->wb_next = c;
		else
			s->wb_head = c;
		s->wb_tail = c;
	}
}

/* ---- chunk removal ---------------------------------------------------- */

static void unlink_parent(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_chunk *p = c->up;

	if (!p)
		return;
	if (c->sib_prev)
		c->sib_prev->sib_next = c->sib_next;
	else
		p->first_child = c->sib_next;
	if (c->sib_next)
		c->sib_next->sib_prev = c->sib_prev;
	p->children--;
	c->up = c->sib_next = c->sib_prev = NULL;
	refresh_hold(s, p);	/* perhaps a leaf again */
}

static void orphan_children(struct kv_chunk *c)
{
	struct kv_chunk *k = c->first_child;

	while (k) {
		struct kv_chunk *next = k->sib_next;

		k->up = k->sib_next = k->sib_prev = NULL;
		k = next;
	}
	c->first_child = NULL;
	c->children = 0;
}

static void writer_unlink(struct kv_chunk *c)
{
	struct kv_owner *o = c->writer;

	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		o->pending = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	c->wnext = c->wprev = NULL;
	o->uncommitted -= c->bytes;
	o->tenant->uncommitted -= c->bytes;
	c->writer = NULL;
}

/* Free a chunk's record (its copies are gone). */
static void chunk_forget(struct kv_store *s, struct kv_chunk *c)
{
	s->tenants[c->tenant].chunks--;
	s->chunks--;
	kv_index_del(s->idx, c);
}

/* Free a chunk's copies and record. It must hold no pins and no I/O. */
static void chunk_drop(struct kv_store *s, struct kv_chunk *c)
{
	unlink_parent(s, c);
	orphan_children(c);
	if (c->state == KV_CHUNK_PENDING) {
		writer_unlink(c);
		s->pending_chunks--;
	}
	if (c->wb_queued)
		wb_unlink(s, c);
	if (c->hbm_ext)
		hbm_out(s, c);
	if (c->ext)
		dram_out(s, c);
	if (c->ssd_ext)
		ssd_out(s, c);
	chunk_forget(s, c);
}

/*
 * Move a chunk out of a tier: out of DRAM, a chunk with an SSD copy keeps
 * that (a demotion); out of SSD, a chunk in DRAM keeps that and will not
 * be written back again. A chunk with no other copy leaves the cache.
 */
static void chunk_evict(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	s->tiers[tier].evictions++;
	if (tier == KV_TIER_HBM && (c->ext || c->ssd_ext)) {
		hbm_out(s, c);
		s->tiers[KV_TIER_HBM].demotions++;
		refresh_hold(s, c);
	} else if (tier == KV_TIER_DRAM && c->ssd_ext) {
		if (c->hbm_ext)
			hbm_out(s, c);	/* inclusive: HBM only beside DRAM */
		dram_out(s, c);
		s->tiers[KV_TIER_DRAM].demotions++;
		refresh_hold(s, c);
	} else if (tier == KV_TIER_SSD && c->ext) {
		ssd_out(s, c);
		c->no_wb = true;
		refresh_hold(s, c);
	} else {
		chunk_drop(s, c);
	}
}

/* A DRAM victim whose write-back failed leaves the cache with no copy: what
 * the failure cost, counted (STATS writeback_lost) and said once. */
static void wb_lost(struct kv_store *s, const struct kv_chunk *c)
{
	s->wb_lost++;
	kv_log_once(KV_WARN, KV_LOG_TIER, "chunks whose write-back to SSD failed are leaving the cache (first: ns %u, %s); STATS writeback_lost counts them",
		    (unsigned)c->ns, kv_strerror(c->wb_err));
}

/*
 * Drop a chunk's copy in tier and nothing else (FLUSH with KV_FLUSH_DROP
 * and a tier): the chunk stays where it has other copies and leaves the
 * cache when that was its only one. An HBM copy lives only beside a DRAM
 * copy (inclusive), so dropping the DRAM copy drops it too. A DRAM chunk
 * whose SSD copy goes is not written straight back (a write-back flush
 * may). Not an eviction: nothing is counted.
 */
static void drop_copy(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	bool other = tier == KV_TIER_SSD ? c->ext || c->hbm_ext :
		     tier == KV_TIER_DRAM ? c->ssd_ext != NULL : c->ext || c->ssd_ext;

	if (!other) {
		chunk_drop(s, c);
		return;
	}
	if (tier == KV_TIER_SSD) {
		ssd_out(s, c);
		c->no_wb = true;
	} else {
		if (c->hbm_ext)
			hbm_out(s, c);
		if (tier == KV_TIER_DRAM)
			dram_out(s, c);
	}
	refresh_hold(s, c);
}

/*
 * Allocate in a tier, evicting the policy's victim until it fits. The
 * policy is asked again after each eviction: only its first answer is its
 * ranked choice (a heap policy lists the rest in heap order), and evicting
 * a leaf may make its parent the best victim. When nothing is evictable in
 * DRAM but write-backs are queued or under way, room will come:
 * -EINPROGRESS. (HBM never waits: a put falls back to DRAM.)
 */
static int tier_alloc_evicting(struct kv_store *s, struct tenant *t,
			       unsigned tier, uint64_t bytes, struct kv_extent **ext)
{
	struct stier *st = &s->tiers[tier];
	void *pstate = t->tiers[tier].pstate;
	struct kv_evict_node *victim;
	struct kv_chunk *c;
	int ret;

	for (;;) {
		ret = part_alloc(s, t, tier, bytes, ext);
		if (ret != -ENOMEM)
			return ret;
		if (st->pol->pick(pstate, &victim, 1) == 0) {
			if (tier == KV_TIER_DRAM && t->wb_pending)
				return -EINPROGRESS;
			st->alloc_failures++;
			return -KV_EFULL;
		}
		c = tier == KV_TIER_SSD ? ssd_node_chunk(victim) :
		    tier == KV_TIER_HBM ? hbm_node_chunk(victim) : node_chunk(victim);
		if (tier == KV_TIER_DRAM && c->wb_err && !c->ssd_ext)
			wb_lost(s, c);
		chunk_evict(s, c, tier);
	}
}

/* ---- the SSD tier: write-back and promotion --------------------------------- */

static uint64_t ns_salt(const struct kv_store *s, uint32_t ns)
{
	return ns < s->n_nss ? s->nss[ns].salt : 0;
}

static void job_rec(const struct kv_store *s, const struct kv_chunk *c,
		    struct kv_ssd_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->magic = KV_SSD_REC_MAGIC;
	r->salt = ns_salt(s, c->ns);
	r->has_parent = c->has_parent;
	r->tokens = c->tokens;
	r->position = c->position;
	r->parent = kv_key_from_wire(&c->parent);
	r->bytes = c->bytes;
	r->hits = c->hits;
	r->freq = c->node.freq;
	r->score = c->node.score;
}

/* Start write-backs from the queue, as many as may be in flight. */
static void wb_pump(struct kv_store *s)
{
	while (s->wb_head && s->wb_inflight < s->wb_max) {
		struct kv_chunk *c = s->wb_head;
		struct kv_ssd_job *j;
		struct kv_extent *e;
		int ret;

		wb_unlink(s, c);
		/* Its parent must not leave the SSD while it is being written:
		 * c is linked under it, so it is no SSD leaf. */
		c->io = KV_IO_WRITE;	/* held from both tiers meanwhile */
		refresh_hold(s, c);
		ret = c->bytes > ctt(s, c, KV_TIER_SSD)->capacity ? -KV_ETOOBIG :
		      tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_SSD,
					  c->bytes, &e);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_TIER, "write-back of a %llu-byte chunk refused: %s",
			       (unsigned long long)c->bytes, kv_strerror(ret));
			c->io = KV_IO_NONE;
			c->no_wb = true;
			c->wb_err = (uint16_t)-ret;
			s->wb_failed++;
			refresh_hold(s, c);
			continue;
		}
		j = kv_xcalloc(1, sizeof(*j));
		j->op = KV_SSD_WRITE;
		j->codec = c->ns < s->n_codecs && s->codecs[c->ns] ?
			   s->codecs[c->ns] - 1 : s->conf.ssd_codec;
		j->ns = c->ns;
		j->key = kv_key_from_wire(&c->key);
		job_rec(s, c, &j->rec);
		j->rec.offset = kv_extent_offset(e);
		j->ssd_len = kv_extent_size(e);
		j->dram_off = dram_off(s, c, c->ext);
		j->dram_len = kv_extent_size(c->ext);
		j->cookie = c;
		c->io_ext = e;
		s->wb_inflight++;
		s->tenants[c->tenant].wb_pending++;
		kv_ssd_submit(s->ssd, j);
	}
}

static void wb_done(struct kv_store *s, struct kv_ssd_job *j)
{
	struct kv_chunk *c = j->cookie;

	s->wb_inflight--;
	s->tenants[c->tenant].wb_pending--;
	c->io = KV_IO_NONE;
	if (j->result) {
		part_free(s, c, KV_TIER_SSD, c->io_ext);
		c->no_wb = true;
		c->wb_err = (uint16_t)-j->result;
		s->wb_failed++;
	} else {
		struct ttier *tt = ctt(s, c, KV_TIER_SSD);

		c->wb_err = 0;
		tt->used -= kv_extent_size(c->io_ext);
		kv_ssd_trim(s->ssd, c->io_ext, j->rec.stored);
		tt->used += kv_extent_size(c->io_ext);
		c->ssd_ext = c->io_ext;
		c->ssd_stored = j->rec.stored;
		c->ssd_codec = j->rec.codec;
		c->ssd_checksum = j->rec.checksum;
		ssd_insert(s, c);
		s->wb_written++;
		s->wb_bytes += c->bytes;
	}
	c->io_ext = NULL;
	refresh_hold(s, c);
}

/* Start reading an SSD-only chunk into DRAM. -EINPROGRESS, or why not. */
static int promote(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_ssd_job *j;
	struct kv_extent *e;
	int ret;

	if (c->io == KV_IO_READ)
		return -EINPROGRESS;
	c->io = KV_IO_READ;	/* not an SSD victim while DRAM makes room */
	refresh_hold(s, c);
	ret = tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_DRAM, c->bytes, &e);
	if (ret) {
		c->io = KV_IO_NONE;
		refresh_hold(s, c);
		return ret;
	}
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_READ;
	j->ns = c->ns;
	j->key = kv_key_from_wire(&c->key);
	job_rec(s, c, &j->rec);
	j->rec.offset = kv_extent_offset(c->ssd_ext);
	j->rec.stored = c->ssd_stored;
	j->rec.codec = c->ssd_codec;
	j->rec.checksum = c->ssd_checksum;
	j->dram_off = dram_off(s, c, e);
	j->dram_len = kv_extent_size(e);
	j->cookie = c;
	c->io_ext = e;
	if (s->rd_inflight++ == 0) {
		s->rd_start = kv_now_ns();
		s->rd_bytes = 0;
	}
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

/*
 * A promotion was reaped. The SSD tier's read bandwidth is timed by batch,
 * as the daemon's readers see it: from the first read submitted while none
 * was in flight until the last of them is reaped (read, checksummed,
 * decoded, in DRAM), over the bytes of the chunks that came up. Reads in
 * flight together share the disk, so timing each alone would count the
 * same seconds several times.
 */
static void read_timed(struct kv_store *s, uint64_t bytes)
{
	uint64_t now = kv_now_ns();

	s->rd_inflight--;
	s->rd_bytes += bytes;
	if (s->rd_inflight && now - s->rd_start < RD_PERIOD_NS)
		return;
	if (s->rd_bytes)	/* an implausible sample is dropped */
		kv_bw_add(&s->tiers[KV_TIER_SSD].read, s->rd_bytes, now - s->rd_start);
	s->rd_start = now;
	s->rd_bytes = 0;
}

static void promote_done(struct kv_store *s, struct kv_ssd_job *j)
{
	struct kv_chunk *c = j->cookie;
	struct stier *st = &s->tiers[KV_TIER_SSD];

	c->io = KV_IO_NONE;
	read_timed(s, j->result ? 0 : c->bytes);
	if (j->result) {
		/* Bad bytes are never shown: the chunk leaves the cache. */
		part_free(s, c, KV_TIER_DRAM, c->io_ext);
		c->io_ext = NULL;
		if (j->result == -KV_ECORRUPT)
			s->checksum_failures++;
		else
			s->io_failures++;
		if (c->pins == 0)
			chunk_drop(s, c);
		return;
	}
	c->ext = c->io_ext;
	c->io_ext = NULL;
	dram_insert(s, c);
	st->promotions++;
	st->pol->on_access(ctt(s, c, KV_TIER_SSD)->pstate, &c->ssd_node);
	refresh_hold(s, c);
}

/* ---- the HBM tier: GPU copies down and up ------------------------------------ */

static void hbm_submit(struct kv_store *s, struct kv_chunk *c, enum kv_hbm_op op)
{
	struct kv_hbm_job *j = kv_xcalloc(1, sizeof(*j));

	j->op = op;
	j->arena = ctt(s, c, KV_TIER_HBM)->t.priv;
	j->hbm = (char *)kv_hbm_arena_base(j->arena) +
		 kv_extent_offset(op == KV_HBM_DOWN ? c->hbm_ext : c->hbm_io_ext);
	j->dram = (char *)s->range + dram_off(s, c, op == KV_HBM_DOWN ? c->hbm_io_ext : c->ext);
	j->bytes = c->bytes;
	j->cookie = c;
	c->hbm_io = op == KV_HBM_DOWN ? KV_HIO_DOWN : KV_HIO_UP;
	s->hbm_inflight++;
	kv_hbm_submit(s->hbm, j);
}

/* Queue a chunk put into HBM for its DRAM copy. */
static void dn_enqueue(struct kv_store *s, struct kv_chunk *c)
{
	c->dn_queued = true;
	c->dn_prev = s->dn_tail;
	if (s->dn_tail)
		s->dn_tail->dn_next = c;
	else
		s->dn_head = c;
	s->dn_tail = c;
}

/*
 * Start DRAM copies of chunks put into HBM, oldest first, as DRAM makes
 * room. One DRAM refuses (full of held chunks) stays in HBM alone, and may
 * leave the cache from there; one that must wait for SSD write-backs
 * waits in the queue, and so do its tenant's later ones, while other
 * tenants' go ahead (their DRAM is another arena).
 */
static void dn_pump(struct kv_store *s)
{
	uint64_t waiting[KV_TENANT_MAX / 64] = { 0 };
	struct kv_chunk *c, *next;

	for (c = s->dn_head; c && s->hbm_inflight < HBM_COPIES_MAX; c = next) {
		struct kv_extent *e;
		int ret;

		/* Evictions below take DRAM copies: never a queued chunk's
		 * (it has none), so next stays in the queue. */
		next = c->dn_next;
		if (waiting[c->tenant / 64] >> (c->tenant % 64) & 1)
			continue;
		c->hbm_io = KV_HIO_DOWN;	/* not an HBM victim meanwhile */
		refresh_hold(s, c);
		ret = tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_DRAM,
					  c->bytes, &e);
		c->hbm_io = KV_HIO_NONE;
		if (ret == -EINPROGRESS) {
			waiting[c->tenant / 64] |= 1ull << (c->tenant % 64);
			refresh_hold(s, c);
			continue;
		}
		dn_unlink(s, c);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_TIER, "no DRAM copy for a %llu-byte HBM chunk: %s",
			       (unsigned long long)c->bytes, kv_strerror(ret));
			c->no_down = true;
			refresh_hold(s, c);
			continue;
		}
		c->hbm_io_ext = e;
		hbm_submit(s, c, KV_HBM_DOWN);
		refresh_hold(s, c);
	}
}

/*
 * A GPU client pinned a DRAM chunk: copy it up into HBM when the
 * promotion setting says so and HBM has room. Best effort: any reason not
 * to (no room, copies busy) leaves it in DRAM.
 */
static void hbm_promote(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_extent *e;

	if (!s->hbm || s->hbm_dead || c->hbm_ext || c->hbm_io || !c->ext ||
	    s->hbm_inflight >= HBM_COPIES_MAX ||
	    s->conf.hbm_promote == KV_PROMOTE_OFF ||
	    (s->conf.hbm_promote == KV_PROMOTE_SECOND && c->gpu_pins < 2) ||
	    !ctt(s, c, KV_TIER_HBM)->t.ops || c->bytes > ctt(s, c, KV_TIER_HBM)->capacity)
		return;
	c->hbm_io = KV_HIO_UP;		/* its DRAM copy stays while copied */
	refresh_hold(s, c);
	if (tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_HBM, c->bytes, &e)) {
		c->hbm_io = KV_HIO_NONE;
		refresh_hold(s, c);
		return;
	}
	c->hbm_io_ext = e;
	hbm_submit(s, c, KV_HBM_UP);
}

static void hbm_done(struct kv_store *s, struct kv_hbm_job *j)
{
	struct kv_chunk *c = j->cookie;
	struct stier *ht = &s->tiers[KV_TIER_HBM];

	s->hbm_inflight--;
	c->hbm_io = KV_HIO_NONE;
	/* CUDA errors are mostly sticky (the context is lost): stop making
	 * HBM copies; the ones there still serve until they go. */
	if (j->result && !s->hbm_dead) {
		s->hbm_dead = true;
		kv_log(KV_ERR, KV_LOG_GPU, "HBM tier: a GPU copy failed; no more puts into HBM or promotions");
	}
	if (j->op == KV_HBM_DOWN) {
		if (j->result) {
			part_free(s, c, KV_TIER_DRAM, c->hbm_io_ext);
			c->no_down = true;
		} else {
			c->ext = c->hbm_io_ext;
			memset(&c->node, 0, sizeof(c->node));
			c->node.freq = c->hbm_node.freq;
			c->node.score = c->hbm_node.score;
			dram_insert(s, c);
			ht->demotions++;
			if (s->ssd) {
				wb_enqueue(s, c, false);
				wb_pump(s);
			}
		}
	} else if (j->result) {
		part_free(s, c, KV_TIER_HBM, c->hbm_io_ext);
	} else {
		c->hbm_ext = c->hbm_io_ext;
		hbm_insert(s, c);
		ht->promotions++;
	}
	c->hbm_io_ext = NULL;
	refresh_hold(s, c);
}

int kv_store_event_fd(const struct kv_store *s)
{
	return s->ssd ? kv_ssd_event_fd(s->ssd) : -1;
}

int kv_store_hbm_event_fd(const struct kv_store *s)
{
	return s->hbm ? kv_hbm_event_fd(s->hbm) : -1;
}

unsigned kv_store_reap(struct kv_store *s)
{
	unsigned n = 0;

	if (s->ssd) {
		struct kv_ssd_job *j, *next;

		for (j = kv_ssd_reap(s->ssd); j; j = next) {
			next = j->next;
			if (j->op == KV_SSD_WRITE)
				wb_done(s, j);
			else if (j->op == KV_SSD_READ)
				promote_done(s, j);
			else if (j->op == KV_SSD_NS || j->op == KV_SSD_NS_DROP)
				ns_done(s, j);
			else if (j->op == KV_SSD_SYNC)
				sync_done(s, j);
			free(j);
			n++;
		}
	}
	if (s->hbm) {
		struct kv_hbm_job *j, *next;

		for (j = kv_hbm_reap(s->hbm); j; j = next) {
			next = j->next;
			hbm_done(s, j);
			free(j);
			n++;
		}
		dn_pump(s);
	}
	if (s->ssd)
		wb_pump(s);
	return n;
}

/* ---- owners ------------------------------------------------------------ */

struct kv_owner *kv_store_owner_open(struct kv_store *s, unsigned tenant)
{
	struct kv_owner *o = kv_xcalloc(1, sizeof(*o));

	o->tenant = &s->tenants[tenant < s->n_tenants ? tenant : 0];
	o->next = s->owners;
	if (s->owners)
		s->owners->prev = o;
	s->owners = o;
	return o;
}

static void pin_free(struct kv_store *s, struct kv_pin *p)
{
	struct kv_chunk *c = p->chunk;
	struct kv_owner *o = p->owner;
	struct kv_pin **pp = &c->pin_list;

	while (*pp != p)
		pp = &(*pp)->cnext;
	*pp = p->cnext;
	if (p->oprev)
		p->oprev->onext = p->onext;
	else
		o->pins = p->onext;
	if (p->onext)
		p->onext->oprev = p->oprev;
	c->pins -= p->count;
	o->n_pins -= p->count;
	if (c->pins == 0) {
		s->pinned_chunks--;
		refresh_hold(s, c);
	}
	free(p);
}

void kv_store_owner_close(struct kv_store *s, struct kv_owner *o)
{
	if (!o)
		return;
	while (o->pins)
		pin_free(s, o->pins);
	while (o->pending)
		chunk_drop(s, o->pending);
	if (o->prev)
		o->prev->next = o->next;
	else
		s->owners = o->next;
	if (o->next)
		o->next->prev = o->prev;
	free(o);
}

void kv_store_close(struct kv_store *s)
{
	if (!s)
		return;
	while (s->owners)
		kv_store_owner_close(s, s->owners);
	/* The I/O thread finishes what it has first (jobs name chunks and
	 * extents); what it finishes is not reaped. */
	if (s->ssd) {
		kv_ssd_close(s->ssd);
		s->ssd = NULL;
	}
	/* Likewise the GPU thread; the arenas go with the tier. */
	if (s->hbm) {
		kv_hbm_close(s->hbm);
		s->hbm = NULL;
		for (unsigned i = 0; i < s->n_tenants; i++)
			s->tenants[i].tiers[KV_TIER_HBM].t.ops = NULL;
	}
	/* Extents go with the tiers' allocators, and the policies forget
	 * their nodes with their states. */
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		policies_fini(s, t);
		s->tiers[t].ops = NULL;
	}
	for (unsigned i = 0; i < s->n_tenants; i++)
		kv_tier_close(&s->tenants[i].tiers[KV_TIER_DRAM].t);
	if (s->range)
		munmap(s->range, s->range_bytes);
	kv_index_close(s->idx);
	free(s->tenants);
	free(s->ns_tenant);
	free(s->models);
	free(s->codecs);
	free(s->nss);
	free(s->found);
	free(s);
}

/* ---- puts ---------------------------------------------------------------- */

static void link_parent(struct kv_store *s, struct kv_chunk *c,
			struct kv_chunk *p)
{
	if (!p)
		return;
	c->up = p;
	c->sib_next = p->first_child;
	if (p->first_child)
		p->first_child->sib_prev = c;
	p->first_child = c;
	p->children++;
	refresh_hold(s, p);	/* no longer a leaf */
}

int kv_store_alloc(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_wire_alloc *a, uint64_t *offset)
{
	uint8_t tier;

	return kv_store_alloc_in(s, o, ns, a, &tier, offset);
}

int kv_store_alloc_in(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		      const struct kv_wire_alloc *a, uint8_t *tier, uint64_t *offset)
{
	struct tenant *t = o->tenant;
	struct kv_extent *ext;
	struct kv_chunk *c;
	struct kv_chunk *parent = NULL;
	unsigned where = KV_TIER_DRAM;
	int owner = ns_tenant(s, ns);
	int ret = -ENOSPC;

	if (a->bytes == 0)
		return -EINVAL;
	/* A namespace's chunks live in its owner's arenas only. */
	if (owner < 0)
		ns_bind(s, ns, t->id);
	else if ((unsigned)owner != t->id)
		return -EACCES;
	if (kv_index_find(s->idx, ns, &a->key))
		return -EEXIST;
	if (a->bytes > t->tiers[KV_TIER_DRAM].capacity)
		return -KV_ETOOBIG;
	if (o->uncommitted + a->bytes > s->max_uncommitted)
		return -KV_EUNCOMMITTED;
	/* (A quota as large as its arenas is theirs to enforce: EFULL.) */
	if (t->uncommitted + a->bytes > t->conf.quota[KV_TQ_UNCOMMITTED] &&
	    t->conf.quota[KV_TQ_UNCOMMITTED] < t->conf.quota[KV_TQ_DRAM] +
					       t->conf.quota[KV_TQ_HBM])
		return -KV_EQUOTA;
	if (t->chunks >= t->max_chunks)
		return -KV_EMETA;
	if (a->flags & KV_ALLOC_PARENT) {
		parent = kv_index_find(s->idx, ns, &a->parent);
		if (!parent)
			return -KV_ENOPARENT;
	}
	/* The parent must stay while we make room: hold it by a pin of the
	 * store's own for the duration. */
	if (parent && parent->pins++ == 0)
		refresh_hold(s, parent);
	/* Asked for HBM: there if it fits now, else DRAM. */
	if ((a->flags & KV_ALLOC_HBM) && s->hbm && !s->hbm_dead &&
	    t->tiers[KV_TIER_HBM].t.ops && a->bytes <= t->tiers[KV_TIER_HBM].capacity) {
		ret = tier_alloc_evicting(s, t, KV_TIER_HBM, a->bytes, &ext);
		if (ret == 0)
			where = KV_TIER_HBM;
	}
	if (ret)
		ret = tier_alloc_evicting(s, t, KV_TIER_DRAM, a->bytes, &ext);
	if (parent && --parent->pins == 0)
		refresh_hold(s, parent);
	if (ret)
		return ret;

	c = kv_index_add(s->idx, ns, &a->key);
	c->tenant = (uint16_t)t->id;
	t->chunks++;
	s->chunks++;
	c->state = KV_CHUNK_PENDING;
	c->has_parent = a->flags & KV_ALLOC_PARENT;
	if (c->has_parent)
		c->parent = a->parent;
	c->tokens = a->tokens;
	c->position = a->position;
	c->bytes = a->bytes;
	c->alloc_ns = kv_now_ns();
	if (where == KV_TIER_HBM)
		c->hbm_ext = ext;
	else
		c->ext = ext;
	retier(c);
	c->writer = o;
	c->wnext = o->pending;
	if (o->pending)
		o->pending->wprev = c;
	o->pending = c;
	o->uncommitted += a->bytes;
	t->uncommitted += a->bytes;
	s->pending_chunks++;
	/* Linked now, pending or not: a parent with a child being written is
	 * no leaf, so no allocation can evict it from under the child. */
	link_parent(s, c, parent);
	*tier = (uint8_t)where;
	*offset = kv_extent_offset(ext);
	return 0;
}

static struct kv_chunk *owned_pending(struct kv_store *s, struct kv_owner *o,
				      uint32_t ns, const struct kv_wire_key *key)
{
	struct kv_chunk *c = kv_index_find(s->idx, ns, key);

	if (!c || c->state != KV_CHUNK_PENDING || c->writer != o)
		return NULL;
	return c;
}

int kv_store_commit(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		    const struct kv_wire_key *key)
{
	struct kv_chunk *c = owned_pending(s, o, ns, key);

	if (!c)
		return -ENOENT;
	writer_unlink(c);
	s->pending_chunks--;
	c->state = KV_CHUNK_COMMITTED;
	c->last_used_ns = kv_now_ns();
	memset(&c->node, 0, sizeof(c->node));	/* a new chunk: no history */
	if (c->hbm_ext) {		/* put into HBM: its DRAM copy comes next */
		memset(&c->hbm_node, 0, sizeof(c->hbm_node));
		hbm_insert(s, c);
		dn_enqueue(s, c);
		dn_pump(s);
		return 0;
	}
	dram_insert(s, c);
	if (s->ssd) {
		wb_enqueue(s, c, false);
		wb_pump(s);
	}
	return 0;
}

int kv_store_abort(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_wire_key *key)
{
	struct kv_chunk *c = owned_pending(s, o, ns, key);

	if (!c)
		return -ENOENT;
	chunk_drop(s, c);
	return 0;
}

/* ---- gets ------------------------------------------------------------------ */

static struct kv_chunk *visible(struct kv_store *s, uint32_t ns,
				const struct kv_wire_key *key)
{
	struct kv_chunk *c = kv_index_find(s->idx, ns, key);

	return c && c->state == KV_CHUNK_COMMITTED ? c : NULL;
}

/* Count a reference as a hit where it is and a miss in every faster tier. */
static void count_ref(struct kv_store *s, const struct kv_chunk *c)
{
	unsigned stop = c ? c->tier : KV_TIER_MAX;

	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		if (!s->tiers[t].ops)
			continue;
		if (t < stop)
			s->tiers[t].misses++;
		else if (t == stop)
			s->tiers[t].hits++;
	}
}

/* A use: every tier with a copy in memory hears of it (an HBM copy goes
 * with its DRAM copy, so DRAM must not rank it cold), else the SSD's. */
static void touch(struct kv_store *s, struct kv_chunk *c, uint64_t now)
{
	c->hits++;
	c->last_used_ns = now;
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		struct stier *st = &s->tiers[t];

		if (tier_ext(c, t) && (t != KV_TIER_SSD || c->tier == KV_TIER_SSD))
			st->pol->on_access(ctt(s, c, t)->pstate, tier_node(c, t));
	}
}

uint32_t kv_store_lookup(struct kv_store *s, uint32_t ns,
			 const struct kv_wire_key *keys, uint32_t n,
			 uint8_t *tiers)
{
	uint64_t now = kv_now_ns();
	uint32_t leading = 0;
	bool run = true;

	/* Each key is found once; the second pass reuses what the first found. */
	if (n > s->found_cap) {
		s->found = kv_xrealloc(s->found, (size_t)n * sizeof(*s->found));
		s->found_cap = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct kv_chunk *c = visible(s, ns, &keys[i]);

		s->found[i] = c;
		tiers[i] = c ? c->tier : KV_TIER_NONE;
		count_ref(s, c);
		if (run && c)
			leading++;
		else
			run = false;
	}
	/* Deepest first, so a parent ends up more recent than its child. */
	for (uint32_t i = n; i-- > 0;)
		if (s->found[i])
			touch(s, s->found[i], now);
	return leading;
}

int kv_store_pin(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		 const struct kv_wire_key *key, struct kv_wire_pin_reply *loc)
{
	return kv_store_pin_again(s, o, ns, key, loc, false, 0);
}

int kv_store_pin_again(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		       const struct kv_wire_key *key, struct kv_wire_pin_reply *loc,
		       bool again, unsigned flags)
{
	struct kv_chunk *c = visible(s, ns, key);
	bool gpu = flags & KV_PIN_GPU;
	int owner = ns_tenant(s, ns);
	struct kv_pin *p;
	bool hbm;

	/* Another tenant's chunk: its bytes are in arenas o cannot map, and
	 * a pin would hold it in that tenant's tiers. */
	if (owner >= 0 && (unsigned)owner != o->tenant->id)
		return -EACCES;
	if (!again)
		count_ref(s, c);
	if (!c)
		return -ENOENT;
	if (o->n_pins >= s->max_pins)
		return -KV_EPINS;
	hbm = gpu && c->hbm_ext;
	if (!c->ext && !hbm) {
		if (!c->hbm_ext)
			return promote(s, c);	/* on SSD: pin it once it is up */
		/* Put into HBM, its DRAM copy not made yet: wait for it. */
		return c->dn_queued || c->hbm_io == KV_HIO_DOWN ? -EINPROGRESS : -ENOENT;
	}
	for (p = c->pin_list; p && p->owner != o; p = p->cnext)
		;
	if (!p) {
		p = kv_xcalloc(1, sizeof(*p));
		p->chunk = c;
		p->owner = o;
		p->cnext = c->pin_list;
		c->pin_list = p;
		p->onext = o->pins;
		if (o->pins)
			o->pins->oprev = p;
		o->pins = p;
	}
	p->count++;
	o->n_pins++;
	touch(s, c, kv_now_ns());
	if (c->pins++ == 0) {
		s->pinned_chunks++;
		refresh_hold(s, c);
	}
	loc->status = 0;
	loc->tier = hbm ? KV_TIER_HBM : KV_TIER_DRAM;
	loc->offset = kv_extent_offset(hbm ? c->hbm_ext : c->ext);
	loc->bytes = c->bytes;
	if (gpu && !again) {
		c->gpu_pins++;
		hbm_promote(s, c);
	}
	return 0;
}

int kv_store_release(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		     const struct kv_wire_key *key)
{
	struct kv_chunk *c = visible(s, ns, key);
	struct kv_pin *p;

	if (!c)
		return -ENOENT;
	for (p = c->pin_list; p && p->owner != o; p = p->cnext)
		;
	if (!p)
		return -ENOENT;
	if (p->count == 1) {
		pin_free(s, p);
		return 0;
	}
	p->count--;
	c->pins--;
	o->n_pins--;
	return 0;
}

/* ---- administration ---------------------------------------------------------- */

int kv_store_evict(struct kv_store *s, uint32_t ns, const struct kv_wire_key *key)
{
	struct kv_chunk *c = kv_index_find(s->idx, ns, key);

	if (!c)
		return -ENOENT;
	if (c->state != KV_CHUNK_COMMITTED || c->pins || c->io || c->hbm_io)
		return -EBUSY;
	chunk_evict(s, c, c->tier);
	return 0;
}

static int by_last_use(const void *a, const void *b)
{
	const struct kv_chunk *x = *(struct kv_chunk *const *)a;
	const struct kv_chunk *y = *(struct kv_chunk *const *)b;

	return (x->last_used_ns > y->last_used_ns) - (x->last_used_ns < y->last_used_ns);
}

int kv_store_set_policy(struct kv_store *s, uint8_t tier, const char *name)
{
	const struct kv_evict_ops *ops = kv_evict_find(name);
	void *pstates[KV_TENANT_MAX];
	struct stier *st;
	struct kv_chunk **v, *c;
	uint64_t cursor = 0;
	size_t n = 0;
	int ret = 0;

	if (tier >= KV_TIER_MAX || !s->tiers[tier].ops)
		return -KV_ENOTIER;
	if (!ops)
		return -ENOENT;
	st = &s->tiers[tier];
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct kv_evict_conf ec;

		pstates[i] = NULL;
		if (ret || !s->tenants[i].tiers[tier].pstate)
			continue;
		policy_conf(s, tier, s->tenants[i].tiers[tier].capacity, &ec);
		ret = ops->init(&pstates[i], &ec);
	}
	if (ret) {
		for (unsigned i = 0; i < s->n_tenants; i++)
			if (pstates[i])
				ops->fini(pstates[i]);
		return ret;
	}
	v = kv_xmalloc((st->chunks ? st->chunks : 1) * sizeof(*v));
	while ((c = kv_index_next(s->idx, &cursor)))
		if (c->state == KV_CHUNK_COMMITTED && tier_ext(c, tier))
			v[n++] = c;
	/* Oldest first, so the new policy's idea of recency is the old one. */
	qsort(v, n, sizeof(*v), by_last_use);
	for (size_t i = 0; i < n; i++)	/* carried fields current */
		st->pol->on_remove(ctt(s, v[i], tier)->pstate, tier_node(v[i], tier));
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[tier];

		if (tt->pstate)
			st->pol->fini(tt->pstate);
		tt->pstate = pstates[i];
	}
	st->pol = ops;
	for (size_t i = 0; i < n; i++)
		ops->on_insert(ctt(s, v[i], tier)->pstate, tier_node(v[i], tier));
	free(v);
	return 0;
}

const char *kv_store_policy(const struct kv_store *s, uint8_t tier)
{
	if (tier >= KV_TIER_MAX || !s->tiers[tier].ops)
		return NULL;
	return s->tiers[tier].pol->name;
}

int kv_store_score(struct kv_store *s, uint32_t ns,
		   const struct kv_wire_key *key, float score)
{
	struct kv_chunk *c;
	struct stier *st;

	if (!(score >= 0.0f && score <= 1.0f))
		return -EINVAL;	/* NaN too */
	c = visible(s, ns, key);
	if (!c)
		return -ENOENT;
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		st = &s->tiers[t];
		if (tier_ext(c, t) && (t != KV_TIER_SSD || c->tier == KV_TIER_SSD) &&
		    st->pol->on_score)
			st->pol->on_score(ctt(s, c, t)->pstate, tier_node(c, t), score);
	}
	return 0;
}

bool kv_store_has_tier(const struct kv_store *s, uint8_t tier)
{
	return tier == KV_TIER_NONE || (tier < KV_TIER_MAX && s->tiers[tier].ops);
}

int kv_store_flush(struct kv_store *s, uint8_t tier, uint32_t flags,
		   bool (*is_visible)(uint32_t ns, void *arg), void *arg,
		   struct kv_wire_flush_reply *res)
{
	struct kv_chunk **drop = NULL;
	size_t n = 0, cap = 0;
	uint64_t cursor = 0;
	struct kv_chunk *c;

	memset(res, 0, sizeof(*res));
	if (!kv_store_has_tier(s, tier))
		return -KV_ENOTIER;
	/* Without KV_FLUSH_DROP a flush writes back to the tier below: the
	 * server does that with kv_store_writeback(); the SSD has nothing
	 * below it. */
	if (!(flags & KV_FLUSH_DROP))
		return 0;
	/* Collect first: the index walk must not see its chunks freed. */
	while ((c = kv_index_next(s->idx, &cursor))) {
		if ((tier != KV_TIER_NONE && !tier_ext(c, tier)) || !is_visible(c->ns, arg))
			continue;
		if (c->state != KV_CHUNK_COMMITTED || c->pins || c->io || c->hbm_io) {
			res->skipped++;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			drop = kv_xrealloc(drop, cap * sizeof(*drop));
		}
		drop[n++] = c;
	}
	for (size_t i = 0; i < n; i++) {
		res->chunks++;
		res->bytes += drop[i]->bytes;
		if (tier == KV_TIER_NONE)
			chunk_drop(s, drop[i]);
		else
			drop_copy(s, drop[i], tier);	/* that tier's copy only */
	}
	free(drop);
	return 0;
}

static void fill_entry(const struct kv_chunk *c, struct kv_wire_entry *e)
{
	uint64_t now = kv_now_ns();

	memset(e, 0, sizeof(*e));
	e->key = c->key;
	e->parent = c->parent;
	e->ns = c->ns;
	e->tier = c->tier;
	e->has_parent = c->has_parent;
	e->bytes = c->bytes;
	e->offset = kv_extent_offset(tier_ext(c, c->tier));
	e->tokens = c->tokens;
	e->position = c->position;
	e->pins = c->pins;
	e->children = c->children;
	e->hits = c->hits;
	e->age_ms = now > c->last_used_ns ? (now - c->last_used_ns) / 1000000 : 0;
}

uint32_t kv_store_ls(struct kv_store *s, uint32_t ns, uint8_t tier,
		     bool (*is_visible)(uint32_t ns, void *arg), void *arg,
		     uint64_t *cursor, struct kv_wire_entry *out, uint32_t max)
{
	uint32_t n = 0;
	struct kv_chunk *c;

	while (n < max && (c = kv_index_next(s->idx, cursor))) {
		if (c->state != KV_CHUNK_COMMITTED)
			continue;
		if (tier != KV_TIER_NONE && c->tier != tier)
			continue;
		if (ns == KV_NS_ALL ? !is_visible(c->ns, arg) : c->ns != ns)
			continue;
		fill_entry(c, &out[n++]);
	}
	return n;
}

int kv_store_inspect(struct kv_store *s, uint32_t ns,
		     const struct kv_wire_key *key, struct kv_wire_entry *out)
{
	struct kv_chunk *c = visible(s, ns, key);

	if (!c)
		return -ENOENT;
	fill_entry(c, out);
	return 0;
}

uint32_t kv_store_stats(struct kv_store *s, struct kv_wire_stats *g,
			struct kv_wire_tier_stats *t, uint32_t max)
{
	uint32_t n = 0;

	memset(g, 0, sizeof(*g));
	g->pinned_chunks = s->pinned_chunks;
	g->pending_chunks = s->pending_chunks;
	g->checksum_failures = s->checksum_failures;
	g->uptime_ms = (kv_now_ns() - s->start_ns) / 1000000;
	g->records = s->chunks;
	g->max_records = s->max_chunks;
	g->meta_bytes = kv_store_meta_bytes(s);
	g->writeback_failures = s->wb_failed;
	g->writeback_lost = s->wb_lost;
	g->plans_loaded = s->plans[KV_PLAN_LOADED];
	g->plans_computed = s->plans[KV_PLAN_COMPUTED];
	g->plans_both = s->plans[KV_PLAN_BOTH];
	g->plan_tokens_loaded = s->plan_tokens_loaded;
	g->plan_tokens_computed = s->plan_tokens_computed;
	if (s->ssd) {
		struct kv_ssd_stats ss;

		kv_ssd_stats(s->ssd, NULL, &ss);
		g->ssd_records_missing = ss.records_missing;
		g->ssd_records_wrong_ns = ss.records_wrong_ns;
	}
	for (unsigned i = 0; i < KV_TIER_MAX && n < max; i++) {
		struct stier *st = &s->tiers[i];
		uint64_t used = 0;

		if (!st->ops)
			continue;
		for (unsigned k = 0; k < s->n_tenants; k++) {
			struct ttier *tt = &s->tenants[k].tiers[i];
			struct kv_alloc_stats as;

			if (i == KV_TIER_SSD) {
				used += tt->used;
			} else if (tt->t.ops) {
				tt->t.ops->stats(tt->t.priv, &as);
				used += as.used;
			}
		}
		memset(&t[n], 0, sizeof(t[n]));
		/* NUL-padded fields, not NUL-terminated when full. */
		memcpy(t[n].name, st->ops->name, strnlen(st->ops->name, sizeof(t[n].name)));
		memcpy(t[n].policy, st->pol->name,
		       strnlen(st->pol->name, sizeof(t[n].policy)));
		t[n].capacity_bytes = st->capacity;
		t[n].used_bytes = used;
		t[n].chunks = st->chunks;
		t[n].hits = st->hits;
		t[n].misses = st->misses;
		t[n].evictions = st->evictions;
		t[n].promotions = st->promotions;
		t[n].demotions = st->demotions;
		t[n].alloc_failures = st->alloc_failures;
		t[n].read_bw = kv_bw_rate(&st->read);
		t[n].read_samples = st->read.samples;
		t[n].read_bytes = st->read.bytes;
		n++;
	}
	g->n_tiers = n;
	return n;
}

int kv_store_report_bw(struct kv_store *s, uint8_t tier, uint64_t bytes, uint64_t ns)
{
	if (tier >= KV_TIER_MAX || !s->tiers[tier].ops)
		return -KV_ENOTIER;
	if (tier == KV_TIER_SSD)
		return -EINVAL;		/* timed here: read_timed() */
	return kv_bw_add(&s->tiers[tier].read, bytes, ns);
}

int kv_store_report_plan(struct kv_store *s, unsigned kind, uint64_t loaded,
			 uint64_t computed)
{
	if (kind < KV_PLAN_LOADED || kind > KV_PLAN_BOTH)
		return -EINVAL;
	s->plans[kind] = kv_add_sat(s->plans[kind], 1);
	s->plan_tokens_loaded = kv_add_sat(s->plan_tokens_loaded, loaded);
	s->plan_tokens_computed = kv_add_sat(s->plan_tokens_computed, computed);
	return 0;
}

/* The tier names its GPU in the wire's field as it is. */
_Static_assert(KV_GPU_PCI_ID == KV_HBM_PCI_BYTES, "a PCI bus id fits HELLO's field");

int kv_store_hbm_export(const struct kv_store *s, unsigned tenant, uint64_t *bytes,
			uint64_t *map_bytes, char pci[KV_HBM_PCI_BYTES])
{
	struct kv_hbm_arena *a;

	if (!s->hbm || tenant >= s->n_tenants || !s->tenants[tenant].tiers[KV_TIER_HBM].t.ops)
		return -1;
	a = s->tenants[tenant].tiers[KV_TIER_HBM].t.priv;
	*bytes = kv_hbm_arena_bytes(a);
	*map_bytes = kv_hbm_arena_map_bytes(a);
	kv_hbm_pci(s->hbm, pci);
	return kv_hbm_arena_fd(a);
}

int kv_store_dram_fd(struct kv_store *s, unsigned tenant, uint64_t *bytes)
{
	struct ttier *tt;

	if (tenant >= s->n_tenants)
		return -ENOENT;
	tt = &s->tenants[tenant].tiers[KV_TIER_DRAM];
	return tt->t.ops->share_fd(tt->t.priv, bytes);
}

void *kv_store_dram_base(struct kv_store *s, unsigned tenant)
{
	struct ttier *tt;

	if (tenant >= s->n_tenants)
		return NULL;
	tt = &s->tenants[tenant].tiers[KV_TIER_DRAM];
	return tt->t.ops->base(tt->t.priv);
}

uint64_t kv_store_meta_bytes(const struct kv_store *s)
{
	/* A record, its bucket pointer (the table doubles at one chunk per
	 * bucket), and its share of the policies' heaps. */
	return s->chunks * (sizeof(struct kv_chunk) + 2 * sizeof(void *) + 32);
}

int kv_store_tenant_of(const struct kv_store *s, uid_t uid)
{
	for (unsigned i = 0; i < s->n_tenants; i++) {
		const struct kv_tenant_conf *t = &s->tenants[i].conf;

		for (unsigned u = 0; u < t->n_uids; u++)
			if (t->uids[u] == uid)
				return (int)i;
	}
	return -ENOENT;
}

unsigned kv_store_tenants(const struct kv_store *s)
{
	return s->n_tenants;
}

const char *kv_store_tenant_name(const struct kv_store *s, unsigned tenant)
{
	return tenant < s->n_tenants ? s->tenants[tenant].conf.name : NULL;
}

int kv_store_ns_tenant(const struct kv_store *s, uint32_t ns)
{
	int t = ns_tenant(s, ns);

	return t < 0 ? -ENOENT : t;
}

int kv_store_ns_admit(const struct kv_store *s, unsigned tenant)
{
	const struct tenant *t;

	if (tenant >= s->n_tenants)
		return -ENOENT;
	t = &s->tenants[tenant];
	return t->namespaces < t->conf.quota[KV_TQ_NAMESPACES] ? 0 : -KV_EQUOTA;
}

void kv_store_tenant_stats(const struct kv_store *s, unsigned tenant,
			   struct kv_store_tenant_stats *st)
{
	const struct tenant *t = &s->tenants[tenant];

	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", t->conf.name);
	memcpy(st->uids, t->conf.uids, t->conf.n_uids * sizeof(st->uids[0]));
	st->n_uids = t->conf.n_uids;
	for (unsigned i = 0; i < KV_TIER_MAX; i++) {
		const struct ttier *tt = &t->tiers[i];
		struct kv_alloc_stats as;

		st->capacity[i] = tt->capacity;
		st->chunks[i] = tt->chunks;
		if (i == KV_TIER_SSD) {
			st->used[i] = tt->used;
		} else if (tt->t.ops) {
			tt->t.ops->stats(tt->t.priv, &as);
			st->used[i] = as.used;
		}
	}
	st->namespaces = t->namespaces;
	st->max_namespaces = t->conf.quota[KV_TQ_NAMESPACES];
	st->uncommitted = t->uncommitted;
	st->max_uncommitted = t->conf.quota[KV_TQ_UNCOMMITTED];
	st->records = t->chunks;
	st->max_records = t->max_chunks;
}

uint32_t kv_store_prefetch(struct kv_store *s, uint32_t ns,
			   const struct kv_wire_key *keys, uint32_t n,
			   int32_t *status)
{
	uint32_t pending = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct kv_chunk *c = visible(s, ns, &keys[i]);
		int ret = 0;

		if (!c)
			ret = -ENOENT;
		else if (!c->ext && !c->hbm_ext)
			ret = promote(s, c);
		if (ret == -EINPROGRESS) {
			pending++;
			ret = 0;
		}
		if (status)
			status[i] = -ret;
	}
	return pending;
}

void kv_store_wb_counters(const struct kv_store *s, uint64_t *written,
			  uint64_t *bytes, uint64_t *failed)
{
	*written = s->wb_written;
	*bytes = s->wb_bytes;
	*failed = s->wb_failed;
}

int kv_store_writeback(struct kv_store *s, bool start)
{
	uint64_t cursor = 0;
	struct kv_chunk *c;

	if (!s->ssd)
		return -KV_ENOTIER;
	/* Starting: queue every DRAM chunk still without an SSD copy, once
	 * more even if the SSD declined it before (only now: a flush must
	 * end even when the SSD keeps declining). */
	while (start && (c = kv_index_next(s->idx, &cursor))) {
		if (c->state != KV_CHUNK_COMMITTED || !c->ext || c->ssd_ext ||
		    c->io || c->wb_queued)
			continue;
		c->no_wb = false;
		wb_enqueue(s, c, false);
		refresh_hold(s, c);
	}
	if (start)
		wb_pump(s);
	/* After a pump, a queued chunk means writes in flight: a completion
	 * is coming to ask again. */
	return s->wb_queued || s->wb_inflight ? -EINPROGRESS : 0;
}

int kv_store_set_codec(struct kv_store *s, uint32_t ns, unsigned codec)
{
	if (codec >= KV_CODEC_MAX || ns >= (1u << 24))
		return -EINVAL;
	if (ns >= s->n_codecs) {
		uint32_t n = ns + 1 > 2 * s->n_codecs ? ns + 1 : 2 * s->n_codecs;

		s->codecs = kv_xrealloc(s->codecs, n);
		memset(s->codecs + s->n_codecs, 0, n - s->n_codecs);
		s->n_codecs = n;
	}
	s->codecs[ns] = (uint8_t)(codec + 1);
	return 0;
}

int kv_store_namespaces(struct kv_store *s,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg)
{
	return s->ssd ? kv_ssd_namespaces(s->ssd, fn, arg) : 0;
}

/* ---- namespaces on the SSD ----------------------------------------------------- */

#define NS_SSD_MAX	(1u << 24)	/* ids beyond are not kept here */

static struct ns_ssd *ns_slot(struct kv_store *s, uint32_t ns)
{
	if (ns >= NS_SSD_MAX)
		return NULL;
	if (ns >= s->n_nss) {
		uint32_t n = ns + 1 > 2 * s->n_nss ? ns + 1 : 2 * s->n_nss;

		s->nss = kv_xrealloc(s->nss, n * sizeof(*s->nss));
		memset(s->nss + s->n_nss, 0, (n - s->n_nss) * sizeof(*s->nss));
		s->n_nss = n;
	}
	return &s->nss[ns];
}

/* A namespace recorded before the restart: durable, its salt known. */
static int ns_found(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct ns_ssd *n = ns_slot(arg, id);

	if (n)
		*n = (struct ns_ssd){ .salt = kv_ssd_salt(name), .rec = 0 };
	return 0;
}

static void ns_done(struct kv_store *s, const struct kv_ssd_job *j)
{
	struct ns_ssd *n = ns_slot(s, j->ns);

	if (n)
		n->rec = j->result;
	/* Refused, or dropped: no longer its tenant's. */
	if (j->result || j->op == KV_SSD_NS_DROP)
		ns_unbind(s, j->ns);
}

int kv_store_ns_added(struct kv_store *s, uint32_t id, uid_t uid, const char *name)
{
	struct ns_ssd *n;
	struct kv_ssd_job *j;
	int t = kv_store_tenant_of(s, uid);

	if (t >= 0)
		ns_bind(s, id, (unsigned)t);
	if (!s->ssd)
		return 0;
	n = ns_slot(s, id);
	if (!n) {
		ns_unbind(s, id);
		return -EINVAL;
	}
	n->salt = kv_ssd_salt(name);
	n->rec = -EINPROGRESS;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_NS;
	j->ns = id;
	j->uid = uid;
	snprintf(j->name, sizeof(j->name), "%s", name);
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

int kv_store_ns_durable(const struct kv_store *s, uint32_t id)
{
	return s->ssd && id < s->n_nss ? s->nss[id].rec : 0;
}

int kv_store_ns_drop(struct kv_store *s, uint32_t id, uint64_t *chunks, uint64_t *bytes)
{
	struct kv_chunk **drop = NULL;
	size_t n = 0, cap = 0;
	uint64_t cursor = 0;
	struct kv_chunk *c;
	struct kv_ssd_job *j;
	bool io = false;
	struct ns_ssd *ns;

	*chunks = *bytes = 0;
	/* Collect first: the index walk must not see its chunks freed. */
	while ((c = kv_index_next(s->idx, &cursor))) {
		if (c->ns != id)
			continue;
		if (c->state != KV_CHUNK_COMMITTED || c->pins) {
			free(drop);
			return -EBUSY;
		}
		io |= c->io || c->hbm_io;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			drop = kv_xrealloc(drop, cap * sizeof(*drop));
		}
		drop[n++] = c;
	}
	if (io) {
		free(drop);
		return -EAGAIN;
	}
	for (size_t i = 0; i < n; i++) {
		(*chunks)++;
		*bytes += drop[i]->bytes;
		chunk_drop(s, drop[i]);
	}
	free(drop);
	ns = s->ssd ? ns_slot(s, id) : NULL;
	if (!ns) {
		ns_unbind(s, id);
		return 0;
	}
	ns->rec = -EINPROGRESS;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_NS_DROP;
	j->ns = id;
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

static int id_cmp(const void *key, const void *elem)
{
	uint32_t a = *(const uint32_t *)key, b = *(const uint32_t *)elem;

	return (a > b) - (a < b);
}

void kv_store_ns_usage(const struct kv_store *s, const uint32_t *ids, uint32_t n,
		       uint64_t *chunks, uint64_t *bytes)
{
	uint64_t cursor = 0;
	struct kv_chunk *c;
	const uint32_t *at;

	memset(chunks, 0, n * sizeof(*chunks));
	memset(bytes, 0, n * sizeof(*bytes));
	while ((c = kv_index_next(s->idx, &cursor))) {
		if (c->state != KV_CHUNK_COMMITTED ||
		    !(at = bsearch(&c->ns, ids, n, sizeof(*ids), id_cmp)))
			continue;
		chunks[at - ids]++;
		bytes[at - ids] += c->bytes;
	}
}

/* ---- SSD sync points ---------------------------------------------------------- */

static void sync_done(struct kv_store *s, const struct kv_ssd_job *j)
{
	s->sync_done++;		/* jobs come back in order */
	s->sync_res = j->result;
}

uint64_t kv_store_ssd_sync(struct kv_store *s)
{
	struct kv_ssd_job *j;

	if (!s->ssd)
		return 0;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_SYNC;
	kv_ssd_submit(s->ssd, j);
	return ++s->sync_sent;
}

int kv_store_ssd_synced(const struct kv_store *s, uint64_t seq)
{
	if (s->sync_done < seq)
		return -EINPROGRESS;
	return s->sync_done == seq ? s->sync_res : 0;
}

uint64_t kv_store_wb_refused(const struct kv_store *s, int *why)
{
	uint64_t cursor = 0, n = 0;
	struct kv_chunk *c;

	*why = 0;
	if (!s->ssd)
		return 0;
	while ((c = kv_index_next(s->idx, &cursor))) {
		if (c->state != KV_CHUNK_COMMITTED || !c->ext || c->ssd_ext)
			continue;
		n++;
		if (!*why || c->wb_err)
			*why = c->wb_err ? c->wb_err : KV_EFULL;
	}
	return n;
}

/* ---- allocation leases ------------------------------------------------------ */

unsigned kv_store_owner_expire(struct kv_store *s, struct kv_owner *o,
			       uint64_t now_ns, uint64_t lease_ns,
			       kv_store_expired_fn *fn, void *arg)
{
	struct kv_chunk *c, *next;
	unsigned n = 0;

	if (!o)
		return 0;
	for (c = o->pending; c; c = next) {
		next = c->wnext;
		if (now_ns - c->alloc_ns < lease_ns)
			continue;
		if (fn)
			fn(arg, c->ns, &c->key);
		chunk_drop(s, c);	/* as kv_store_abort() */
		n++;
	}
	return n;
}
