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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evict/policy.h"
#include "kernels/kv_gpu.h"
#include "kvstore/errors.h"
#include "kvstore/index.h"
#include "kvstore/log.h"
#include "kvstore/store.h"
#include "kvstore/util.h"
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
	uint64_t uncommitted;		/* bytes */
	uint32_t n_pins;		/* pins held, repeats counted */
};

struct stier {
	struct kv_tier t;		/* t.ops NULL: tier absent */
	const struct kv_evict_ops *pol;
	void *pstate;
	uint64_t capacity;
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;
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
	struct kv_owner *owners;
	uint64_t pinned_chunks;
	uint64_t pending_chunks;
	uint64_t checksum_failures;
	uint64_t start_ns;
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
	uint64_t io_failures;		/* promotions lost to read errors */
	/* the HBM tier */
	struct kv_hbm *hbm;		/* tiers[KV_TIER_HBM].t.priv, or NULL */
	struct kv_chunk *dn_head;	/* chunks waiting for room for a DRAM copy */
	struct kv_chunk *dn_tail;
	unsigned hbm_inflight;		/* GPU copies in flight */
	bool hbm_dead;			/* a GPU copy failed: no new HBM copies */
};

#define HBM_COPIES_MAX	32	/* GPU copies in flight at once */

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
				st->pol->on_hold(st->pstate, &c->node, held);
		}
	}
	if (c->ssd_ext) {
		struct stier *st = &s->tiers[KV_TIER_SSD];

		held = !ssd_evictable(c);
		if (held != c->ssd_held) {
			c->ssd_held = held;
			if (st->pol->on_hold)
				st->pol->on_hold(st->pstate, &c->ssd_node, held);
		}
	}
	if (c->hbm_ext) {
		struct stier *st = &s->tiers[KV_TIER_HBM];

		held = !hbm_evictable(c);
		if (held != c->hbm_held) {
			c->hbm_held = held;
			if (st->pol->on_hold)
				st->pol->on_hold(st->pstate, &c->hbm_node, held);
		}
	}
}

static void policy_conf(const struct kv_store *s, const struct stier *st,
			struct kv_evict_conf *ec)
{
	*ec = (struct kv_evict_conf){
		.capacity = st->capacity,
		.evictable = st == &s->tiers[KV_TIER_SSD] ? ssd_chunk_evictable :
			     st == &s->tiers[KV_TIER_HBM] ? hbm_chunk_evictable :
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

static int tier_open(struct kv_store *s, unsigned id, const char *name,
		     const char *policy, const struct kv_tier_conf *tc)
{
	struct stier *st = &s->tiers[id];
	struct kv_evict_conf ec;
	int ret;

	st->pol = kv_evict_find(policy);
	if (!st->pol) {
		kv_log(KV_ERR, KV_LOG_EVICT, "unknown eviction policy '%s'", policy);
		return -EINVAL;
	}
	ret = kv_tier_open(&st->t, name, tc);
	if (ret)
		return ret;
	st->capacity = tc->bytes;
	policy_conf(s, st, &ec);
	ret = st->pol->init(&st->pstate, &ec);
	if (ret) {
		kv_tier_close(&st->t);
		return ret;
	}
	return 0;
}

static void link_parent(struct kv_store *s, struct kv_chunk *c,
			struct kv_chunk *p);
static void ssd_insert(struct kv_store *s, struct kv_chunk *c);

/* A chunk record found on the SSD at open: back into the index. */
static int ssd_found(void *arg, uint32_t ns, const struct kv_wire_key *key,
		     const struct kv_ssd_rec *rec, struct kv_extent *ext)
{
	struct kv_store *s = arg;
	struct kv_chunk *c;

	if (kv_index_find(s->idx, ns, key))
		return -EEXIST;
	c = kv_index_add(s->idx, ns, key);
	c->state = KV_CHUNK_COMMITTED;
	c->has_parent = rec->has_parent;
	c->parent = rec->parent;
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

/* After a restart: policy membership and the prefix links, which need
 * every chunk present first. */
static void ssd_rebuild(struct kv_store *s)
{
	uint64_t cursor = 0;
	struct kv_chunk *c;

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
		.dram_base = kv_store_dram_base(s),
		.dram_bytes = conf->dram_bytes,
	};
	const char *policy = conf->ssd_policy ? conf->ssd_policy : conf->dram_policy;
	struct kv_evict_conf ec;
	struct kv_alloc_stats as;
	int ret;

	if (conf->ssd_codec >= KV_CODEC_MAX)
		return -EINVAL;
	st->pol = kv_evict_find(policy);
	if (!st->pol) {
		kv_log(KV_ERR, KV_LOG_EVICT, "unknown eviction policy '%s'", policy);
		return -EINVAL;
	}
	ret = kv_ssd_open(&s->ssd, &sc, ssd_found, s);
	if (ret)
		return ret;
	kv_ssd_stats(s->ssd, &as, NULL);
	st->t.ops = &kv_tier_ssd;
	st->t.priv = s->ssd;
	st->capacity = as.size;
	policy_conf(s, st, &ec);
	ret = st->pol->init(&st->pstate, &ec);
	if (ret) {
		kv_ssd_close(s->ssd);
		s->ssd = NULL;
		st->t.ops = NULL;
		return ret;
	}
	s->wb_max = conf->ssd_writes ? conf->ssd_writes : 8;
	ssd_rebuild(s);
	return 0;
}

/*
 * The HBM tier, when configured and a GPU can be used. Never fails the
 * store: without it the daemon serves from DRAM and SSD (one INFO line).
 */
static void hbm_open(struct kv_store *s, const struct kv_store_conf *conf)
{
	struct stier *st = &s->tiers[KV_TIER_HBM];
	struct kv_hbm_conf hc = {
		.bytes = conf->hbm_bytes,
		.align = conf->align,
		.gpu = conf->gpu,
		.dram_base = kv_store_dram_base(s),
		.dram_bytes = conf->dram_bytes,
	};
	const char *policy = conf->hbm_policy ? conf->hbm_policy : conf->dram_policy;
	struct kv_evict_conf ec;
	char why[128];
	int n = 0, ret;

	if (!kv_gpu_available(&n, why, sizeof(why))) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: %s", why);
		return;
	}
	if (conf->gpu < 0 || conf->gpu >= n) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: no GPU %d (this host has %d)",
		       conf->gpu, n);
		return;
	}
	st->pol = kv_evict_find(policy);
	if (!st->pol) {
		kv_log(KV_ERR, KV_LOG_EVICT, "unknown eviction policy '%s'", policy);
		return;
	}
	ret = kv_hbm_open(&s->hbm, &hc);
	if (ret) {
		kv_log(KV_INFO, KV_LOG_GPU, "no HBM tier: %s (%s)", kv_strerror(ret),
		       kv_gpu_last_error());
		return;
	}
	st->t.ops = &kv_tier_hbm;
	st->t.priv = s->hbm;
	st->capacity = conf->hbm_bytes;
	policy_conf(s, st, &ec);
	if (st->pol->init(&st->pstate, &ec)) {
		kv_hbm_close(s->hbm);
		s->hbm = NULL;
		st->t.ops = NULL;
	}
}

int kv_store_open(struct kv_store **out, const struct kv_store_conf *conf)
{
	struct kv_tier_conf dram = {
		.bytes = conf->dram_bytes,
		.align = conf->align,
		.use_gpu = conf->hbm_bytes != 0 && conf->gpu >= 0,
		.gpu = conf->gpu,
	};
	struct kv_store *s;
	int ret;

	if (!conf->dram_bytes || !conf->align || !conf->dram_policy ||
	    !conf->max_pins || !conf->max_uncommitted ||
	    conf->recent_fraction < 0 || conf->recent_fraction > 1 ||
	    conf->half_life < 0 ||
	    (conf->cost_mode == KV_COST_RELOAD && !(conf->reload_bw > 0)) ||
	    (conf->ssd_dir && !conf->ssd_bytes))
		return -EINVAL;
	s = kv_xcalloc(1, sizeof(*s));
	s->conf = *conf;
	s->conf.dram_policy = NULL;	/* borrowed: not kept */
	s->conf.ssd_policy = NULL;
	s->conf.ssd_dir = NULL;
	s->conf.hbm_policy = NULL;
	if (!s->conf.cost_model.hidden)
		s->conf.cost_model = KV_COST_MODEL_DEFAULT;
	if (s->conf.recent_fraction == 0)
		s->conf.recent_fraction = 0.5;
	ret = kv_index_open(&s->idx, 12);
	if (ret)
		goto out_free;
	ret = tier_open(s, KV_TIER_DRAM, "dram", conf->dram_policy, &dram);
	if (ret)
		goto out_index;
	s->max_pins = conf->max_pins;
	s->max_uncommitted = conf->max_uncommitted;
	s->start_ns = kv_now_ns();
	if (conf->hbm_bytes)
		hbm_open(s, conf);
	if (conf->ssd_dir) {
		ret = ssd_open(s, conf);
		if (ret) {
			kv_store_close(s);
			return ret;
		}
	}
	*out = s;
	return 0;

out_index:
	kv_index_close(s->idx);
out_free:
	free(s);
	return ret;
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

static void dram_insert(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	c->node.tokens = c->tokens;	/* policy-private fields: any value */
	c->node.position = c->position;
	c->node.size = kv_extent_size(c->ext);
	c->node.cost = chunk_cost(s, c, c->node.size);
	c->dram_held = !dram_evictable(s, c);
	st->pol->on_insert(st->pstate, &c->node);
	st->chunks++;
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
	st->pol->on_insert(st->pstate, n);
	st->chunks++;
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
		st->pol->on_remove(st->pstate, &c->hbm_node);
		st->chunks--;
	}
	st->t.ops->free(st->t.priv, c->hbm_ext);
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
	st->pol->on_insert(st->pstate, n);
	st->chunks++;
	retier(c);
}

/* Drop the DRAM copy (the chunk stays where else it is). */
static void dram_out(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	if (c->state == KV_CHUNK_COMMITTED) {
		st->pol->on_remove(st->pstate, &c->node);
		st->chunks--;
	}
	st->t.ops->free(st->t.priv, c->ext);
	c->ext = NULL;
	retier(c);
}

static void ssd_forget(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_ssd_job *j = kv_xcalloc(1, sizeof(*j));

	j->op = KV_SSD_FORGET;
	j->ns = c->ns;
	j->key = c->key;
	kv_ssd_submit(s->ssd, j);
}

/* Drop the SSD copy and its index record. */
static void ssd_out(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[KV_TIER_SSD];

	st->pol->on_remove(st->pstate, &c->ssd_node);
	st->chunks--;
	c->node.freq = c->ssd_node.freq;	/* carry what the SSD saw */
	c->node.score = c->ssd_node.score;
	kv_ssd_free(s->ssd, c->ssd_ext);
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
}

/* Queue a DRAM chunk without an SSD copy for write-back. */
static void wb_enqueue(struct kv_store *s, struct kv_chunk *c, bool urgent)
{
	if (!s->ssd || c->wb_queued || c->ssd_ext || !c->ext || c->io)
		return;
	c->wb_queued = true;
	s->wb_queued++;
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
	c->writer = NULL;
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
	kv_index_del(s->idx, c);
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

/*
 * Allocate in a tier, evicting the policy's victim until it fits. The
 * policy is asked again after each eviction: only its first answer is its
 * ranked choice (a heap policy lists the rest in heap order), and evicting
 * a leaf may make its parent the best victim. When nothing is evictable in
 * DRAM but write-backs are queued or under way, room will come:
 * -EINPROGRESS. (HBM never waits: a put falls back to DRAM.)
 */
static int tier_alloc_evicting(struct kv_store *s, unsigned tier,
			       uint64_t bytes, struct kv_extent **ext)
{
	struct stier *st = &s->tiers[tier];
	struct kv_evict_node *victim;
	int ret;

	for (;;) {
		ret = st->t.ops->alloc(st->t.priv, bytes, ext);
		if (ret != -ENOMEM)
			return ret;
		if (st->pol->pick(st->pstate, &victim, 1) == 0) {
			if (tier == KV_TIER_DRAM && (s->wb_inflight || s->wb_queued))
				return -EINPROGRESS;
			st->alloc_failures++;
			return -KV_EFULL;
		}
		chunk_evict(s, tier == KV_TIER_SSD ? ssd_node_chunk(victim) :
			       tier == KV_TIER_HBM ? hbm_node_chunk(victim) :
						      node_chunk(victim), tier);
	}
}

/* ---- the SSD tier: write-back and promotion --------------------------------- */

static void job_rec(const struct kv_chunk *c, struct kv_ssd_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->magic = KV_SSD_REC_MAGIC;
	r->has_parent = c->has_parent;
	r->tokens = c->tokens;
	r->position = c->position;
	r->parent = c->parent;
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
		ret = tier_alloc_evicting(s, KV_TIER_SSD, c->bytes, &e);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_TIER, "write-back of a %llu-byte chunk refused: %s",
			       (unsigned long long)c->bytes, kv_strerror(ret));
			c->io = KV_IO_NONE;
			c->no_wb = true;
			s->wb_failed++;
			refresh_hold(s, c);
			continue;
		}
		j = kv_xcalloc(1, sizeof(*j));
		j->op = KV_SSD_WRITE;
		j->codec = c->ns < s->n_codecs && s->codecs[c->ns] ?
			   s->codecs[c->ns] - 1 : s->conf.ssd_codec;
		j->ns = c->ns;
		j->key = c->key;
		job_rec(c, &j->rec);
		j->rec.offset = kv_extent_offset(e);
		j->ssd_len = kv_extent_size(e);
		j->dram_off = kv_extent_offset(c->ext);
		j->dram_len = kv_extent_size(c->ext);
		j->cookie = c;
		c->io_ext = e;
		s->wb_inflight++;
		kv_ssd_submit(s->ssd, j);
	}
}

static void wb_done(struct kv_store *s, struct kv_ssd_job *j)
{
	struct kv_chunk *c = j->cookie;

	s->wb_inflight--;
	c->io = KV_IO_NONE;
	if (j->result) {
		kv_ssd_free(s->ssd, c->io_ext);
		c->no_wb = true;
		s->wb_failed++;
	} else {
		kv_ssd_trim(s->ssd, c->io_ext, j->rec.stored);
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
	ret = tier_alloc_evicting(s, KV_TIER_DRAM, c->bytes, &e);
	if (ret) {
		c->io = KV_IO_NONE;
		refresh_hold(s, c);
		return ret;
	}
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_READ;
	j->ns = c->ns;
	j->key = c->key;
	job_rec(c, &j->rec);
	j->rec.offset = kv_extent_offset(c->ssd_ext);
	j->rec.stored = c->ssd_stored;
	j->rec.codec = c->ssd_codec;
	j->rec.checksum = c->ssd_checksum;
	j->dram_off = kv_extent_offset(e);
	j->dram_len = kv_extent_size(e);
	j->cookie = c;
	c->io_ext = e;
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

static void promote_done(struct kv_store *s, struct kv_ssd_job *j)
{
	struct kv_chunk *c = j->cookie;
	struct stier *st = &s->tiers[KV_TIER_SSD];

	c->io = KV_IO_NONE;
	if (j->result) {
		/* Bad bytes are never shown: the chunk leaves the cache. */
		s->tiers[KV_TIER_DRAM].t.ops->free(s->tiers[KV_TIER_DRAM].t.priv, c->io_ext);
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
	st->pol->on_access(st->pstate, &c->ssd_node);
	refresh_hold(s, c);
}

/* ---- the HBM tier: GPU copies down and up ------------------------------------ */

static void hbm_submit(struct kv_store *s, struct kv_chunk *c, enum kv_hbm_op op)
{
	struct kv_hbm_job *j = kv_xcalloc(1, sizeof(*j));

	j->op = op;
	j->hbm_off = kv_extent_offset(op == KV_HBM_DOWN ? c->hbm_ext : c->hbm_io_ext);
	j->dram_off = kv_extent_offset(op == KV_HBM_DOWN ? c->hbm_io_ext : c->ext);
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
 * waits at the head of the queue.
 */
static void dn_pump(struct kv_store *s)
{
	while (s->dn_head && s->hbm_inflight < HBM_COPIES_MAX) {
		struct kv_chunk *c = s->dn_head;
		struct kv_extent *e;
		int ret;

		c->hbm_io = KV_HIO_DOWN;	/* not an HBM victim meanwhile */
		refresh_hold(s, c);
		ret = tier_alloc_evicting(s, KV_TIER_DRAM, c->bytes, &e);
		c->hbm_io = KV_HIO_NONE;
		if (ret == -EINPROGRESS) {
			refresh_hold(s, c);
			return;
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
	    c->bytes > s->tiers[KV_TIER_HBM].capacity)
		return;
	c->hbm_io = KV_HIO_UP;		/* its DRAM copy stays while copied */
	refresh_hold(s, c);
	if (tier_alloc_evicting(s, KV_TIER_HBM, c->bytes, &e)) {
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
	struct stier *dt = &s->tiers[KV_TIER_DRAM];

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
			dt->t.ops->free(dt->t.priv, c->hbm_io_ext);
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
		ht->t.ops->free(ht->t.priv, c->hbm_io_ext);
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

struct kv_owner *kv_store_owner_open(struct kv_store *s)
{
	struct kv_owner *o = kv_xcalloc(1, sizeof(*o));

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
		s->tiers[KV_TIER_SSD].t.ops = NULL;
		s->ssd = NULL;
		s->tiers[KV_TIER_SSD].pol->fini(s->tiers[KV_TIER_SSD].pstate);
	}
	/* Likewise the GPU thread; then the arena goes with the tier. */
	if (s->hbm) {
		kv_hbm_close(s->hbm);
		s->tiers[KV_TIER_HBM].t.ops = NULL;
		s->hbm = NULL;
		s->tiers[KV_TIER_HBM].pol->fini(s->tiers[KV_TIER_HBM].pstate);
	}
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		struct stier *st = &s->tiers[t];
		uint64_t cursor = 0;
		struct kv_chunk *c;

		if (!st->t.ops)
			continue;
		/* Extents go with the tier's allocator; the policy forgets
		 * its nodes with its state. */
		while ((c = kv_index_next(s->idx, &cursor)))
			if (c->tier == t)
				c->ext = NULL;
		st->pol->fini(st->pstate);
		kv_tier_close(&st->t);
	}
	kv_index_close(s->idx);
	free(s->models);
	free(s->codecs);
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
	struct stier *st = &s->tiers[KV_TIER_DRAM];
	struct kv_extent *ext;
	struct kv_chunk *c;
	struct kv_chunk *parent = NULL;
	unsigned where = KV_TIER_DRAM;
	int ret = -ENOSPC;

	if (a->bytes == 0)
		return -EINVAL;
	if (kv_index_find(s->idx, ns, &a->key))
		return -EEXIST;
	if (a->bytes > st->capacity)
		return -KV_ETOOBIG;
	if (o->uncommitted + a->bytes > s->max_uncommitted)
		return -KV_EUNCOMMITTED;
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
	    a->bytes <= s->tiers[KV_TIER_HBM].capacity) {
		ret = tier_alloc_evicting(s, KV_TIER_HBM, a->bytes, &ext);
		if (ret == 0)
			where = KV_TIER_HBM;
	}
	if (ret)
		ret = tier_alloc_evicting(s, KV_TIER_DRAM, a->bytes, &ext);
	if (parent && --parent->pins == 0)
		refresh_hold(s, parent);
	if (ret)
		return ret;

	c = kv_index_add(s->idx, ns, &a->key);
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
		if (!s->tiers[t].t.ops)
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
			st->pol->on_access(st->pstate, tier_node(c, t));
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
	struct kv_pin *p;
	bool hbm;

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
	struct stier *st;
	struct kv_evict_conf ec;
	struct kv_chunk **v, *c;
	uint64_t cursor = 0;
	size_t n = 0;
	void *pstate;
	int ret;

	if (tier >= KV_TIER_MAX || !s->tiers[tier].t.ops)
		return -KV_ENOTIER;
	if (!ops)
		return -ENOENT;
	st = &s->tiers[tier];
	policy_conf(s, st, &ec);
	ret = ops->init(&pstate, &ec);
	if (ret)
		return ret;
	v = kv_xmalloc((st->chunks ? st->chunks : 1) * sizeof(*v));
	while ((c = kv_index_next(s->idx, &cursor)))
		if (c->state == KV_CHUNK_COMMITTED && tier_ext(c, tier))
			v[n++] = c;
	/* Oldest first, so the new policy's idea of recency is the old one. */
	qsort(v, n, sizeof(*v), by_last_use);
	for (size_t i = 0; i < n; i++)	/* carried fields current */
		st->pol->on_remove(st->pstate, tier_node(v[i], tier));
	st->pol->fini(st->pstate);
	st->pol = ops;
	st->pstate = pstate;
	for (size_t i = 0; i < n; i++)
		ops->on_insert(pstate, tier_node(v[i], tier));
	free(v);
	return 0;
}

const char *kv_store_policy(const struct kv_store *s, uint8_t tier)
{
	if (tier >= KV_TIER_MAX || !s->tiers[tier].t.ops)
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
			st->pol->on_score(st->pstate, tier_node(c, t), score);
	}
	return 0;
}

bool kv_store_has_tier(const struct kv_store *s, uint8_t tier)
{
	return tier == KV_TIER_NONE || (tier < KV_TIER_MAX && s->tiers[tier].t.ops);
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
		if ((tier != KV_TIER_NONE && c->tier != tier) || !is_visible(c->ns, arg))
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
		if (tier == KV_TIER_HBM)	/* out of HBM; kept below */
			chunk_evict(s, drop[i], KV_TIER_HBM);
		else
			chunk_drop(s, drop[i]);
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
	for (unsigned i = 0; i < KV_TIER_MAX && n < max; i++) {
		struct stier *st = &s->tiers[i];
		struct kv_alloc_stats as;

		if (!st->t.ops)
			continue;
		st->t.ops->stats(st->t.priv, &as);
		memset(&t[n], 0, sizeof(t[n]));
		/* NUL-padded fields, not NUL-terminated when full. */
		memcpy(t[n].name, st->t.ops->name,
		       strnlen(st->t.ops->name, sizeof(t[n].name)));
		memcpy(t[n].policy, st->pol->name,
		       strnlen(st->pol->name, sizeof(t[n].policy)));
		t[n].capacity_bytes = st->capacity;
		t[n].used_bytes = as.used;
		t[n].chunks = st->chunks;
		t[n].hits = st->hits;
		t[n].misses = st->misses;
		t[n].evictions = st->evictions;
		t[n].promotions = st->promotions;
		t[n].demotions = st->demotions;
		t[n].alloc_failures = st->alloc_failures;
		n++;
	}
	g->n_tiers = n;
	return n;
}

bool kv_store_hbm_export(const struct kv_store *s, uint64_t *bytes,
			 char pci[KV_HBM_PCI_BYTES], uint8_t ipc[KV_HBM_IPC_BYTES])
{
	if (!s->hbm)
		return false;
	kv_hbm_export(s->hbm, bytes, pci, ipc);
	return true;
}

int kv_store_dram_fd(struct kv_store *s, uint64_t *bytes)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	return st->t.ops->share_fd(st->t.priv, bytes);
}

void *kv_store_dram_base(struct kv_store *s)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];

	return st->t.ops->base(st->t.priv);
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

void kv_store_ns_added(struct kv_store *s, uint32_t id, uid_t uid, const char *name)
{
	struct kv_ssd_job *j;

	if (!s->ssd)
		return;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_NS;
	j->ns = id;
	j->uid = uid;
	snprintf(j->name, sizeof(j->name), "%s", name);
	kv_ssd_submit(s->ssd, j);
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
