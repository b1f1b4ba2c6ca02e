/*
 * chunk.c - a chunk's residency: its copies in the tiers, their
 * evictability and policy membership, eviction and drop, prefix links,
 * and what keeping a chunk saves (its cost).
 *
 * A committed chunk has a copy in one or more tiers; each tier's policy
 * holds the chunks with a copy there. What tells tiers apart here is data,
 * one row of rules[] per tier:
 *   below    the next slower tier a copy moves down to (present or not);
 *   fed_by   the tier whose copy a move queued into this tier reads (a
 *            queued move goes when that copy does);
 *   keeps    the tiers whose copies keep the chunk reachable when this
 *            tier's goes (an eviction from here is then a demotion, or
 *            leaves the faster copy alone);
 *   riders   the tiers whose copies go with this tier's: HBM is inclusive
 *            of DRAM (an HBM copy lives beside a DRAM copy, except while a
 *            chunk put into HBM waits for its DRAM copy);
 *   cold     the tier hears of a use only while it holds the fastest copy
 *            (the SSD: a DRAM hit is no SSD access), and its history goes
 *            back to the chunk when its copy goes.
 * A copy is evictable when no pin holds the chunk, no move reads or fills
 * the tier, and either a copy in keeps survives it, or the chunk may leave
 * the cache from here: no tier below (or its move down was refused) and no
 * children, since a child is unreachable without its parent (leaf-first
 * eviction). refresh_hold() recomputes every tier's answer after any
 * change and tells the policies whose answer moved.
 *
 * Prefix tree: a committed chunk whose parent is cached is linked under it
 * (up, first_child, sib_*). A child committed before its parent stays
 * unlinked (NEEDSWORK: link orphans when the parent arrives; engines put
 * prefixes in order, so it is rare).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/ssd.h"

#define BIT(t)	(1u << (t))

static const struct tier_rules {
	uint8_t below;
	uint8_t fed_by;		/* the copy a queued move into the tier reads */
	uint8_t keeps;
	uint8_t riders;
	bool cold;
} rules[KV_TIER_MAX] = {
	[KV_TIER_HBM]	= { KV_TIER_DRAM, KV_TIER_DRAM,
			    BIT(KV_TIER_DRAM) | BIT(KV_TIER_SSD), 0, false },
	[KV_TIER_DRAM]	= { KV_TIER_SSD, KV_TIER_HBM, BIT(KV_TIER_SSD), BIT(KV_TIER_HBM), false },
	[KV_TIER_SSD]	= { KV_TIER_NONE, KV_TIER_DRAM,
			    BIT(KV_TIER_DRAM) | BIT(KV_TIER_HBM), 0, true },
};

/* The tier whose history travels with the chunk (its node's carried
 * fields, evict/policy.h). */
#define HISTORY	KV_TIER_DRAM

struct kv_chunk *chunk_find(const struct kv_store *s, uint32_t ns,
			    const struct kv_key *key)
{
	return chunk_of(kv_index_find(s->idx, ns, key));
}

struct kv_chunk *chunk_visible(const struct kv_store *s, uint32_t ns,
			       const struct kv_key *key)
{
	struct kv_chunk *c = chunk_find(s, ns, key);

	return c && c->state == KV_CHUNK_COMMITTED ? c : NULL;
}

struct kv_chunk *chunk_next(const struct kv_store *s, uint64_t *cursor)
{
	return chunk_of(kv_index_next(s->idx, cursor));
}

/* A record for (ns, key) in the index, no copies yet; the caller counts
 * it in its tenant's books. */
struct kv_chunk *chunk_new(struct kv_store *s, uint32_t ns, const struct kv_key *key)
{
	struct kv_chunk *c = kv_xcalloc(1, sizeof(*c));

	c->ie.ns = ns;
	c->ie.key = *key;
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		c->copy[t].from = KV_TIER_NONE;
	kv_index_add(s->idx, &c->ie);
	return c;
}

/* Does a move in flight read or fill tier's copy? (A write-through reads
 * the DRAM copy.) */
bool chunk_moving(const struct kv_chunk *c, unsigned tier)
{
	if (c->copy[tier].from != KV_TIER_NONE ||
	    (tier == KV_TIER_DRAM && (c->rflags & RF_WRITING)))
		return true;
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (c->copy[t].from == tier)
			return true;
	return false;
}

/* Any move in flight on it. */
bool chunk_busy(const struct kv_chunk *c)
{
	if (c->rflags & RF_WRITING)
		return true;
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (c->copy[t].from != KV_TIER_NONE)
			return true;
	return false;
}

static bool has_any(const struct kv_chunk *c, unsigned mask)
{
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if ((mask & BIT(t)) && c->copy[t].ext)
			return true;
	return false;
}

static bool evictable(const struct kv_store *s, const struct kv_chunk *c,
		      unsigned tier)
{
	const struct tier_rules *r = &rules[tier];
	bool bottom = r->below == KV_TIER_NONE || !s->tiers[r->below].ops;

	return c->pins == 0 && !chunk_moving(c, tier) &&
	       (has_any(c, r->keeps) ||
		((bottom || c->copy[tier].no_down) && c->children == 0));
}

static bool node_evictable(const struct kv_evict_node *n, void *arg, unsigned tier)
{
	const struct kv_copy *k = kv_container_of(n, struct kv_copy, node);
	const struct kv_chunk *c = kv_container_of(k - tier, struct kv_chunk, copy[0]);

	return evictable(arg, c, tier);
}

static bool hbm_evictable(const struct kv_evict_node *n, void *arg)
{
	return node_evictable(n, arg, KV_TIER_HBM);
}

static bool dram_evictable(const struct kv_evict_node *n, void *arg)
{
	return node_evictable(n, arg, KV_TIER_DRAM);
}

static bool ssd_evictable(const struct kv_evict_node *n, void *arg)
{
	return node_evictable(n, arg, KV_TIER_SSD);
}

static bool (*const evictable_fn[KV_TIER_MAX])(const struct kv_evict_node *, void *) = {
	[KV_TIER_HBM] = hbm_evictable,
	[KV_TIER_DRAM] = dram_evictable,
	[KV_TIER_SSD] = ssd_evictable,
};

static struct kv_chunk *node_chunk(struct kv_evict_node *n, unsigned tier)
{
	struct kv_copy *k = kv_container_of(n, struct kv_copy, node);

	return kv_container_of(k - tier, struct kv_chunk, copy[0]);
}

/*
 * Something that decides a committed chunk's evictability changed (pins,
 * children, moves, copies): tell each tier's policy whose answer moved.
 */
void refresh_hold(struct kv_store *s, struct kv_chunk *c)
{
	if (c->state != KV_CHUNK_COMMITTED)
		return;
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		struct kv_copy *k = &c->copy[t];
		const struct kv_evict_ops *pol = s->tiers[t].pol;
		bool held;

		if (!k->ext)
			continue;
		held = !evictable(s, c, t);
		if (held == k->held)
			continue;
		k->held = held;
		if (pol->on_hold)
			pol->on_hold(ctt(s, c, t)->pstate, &k->node, held);
	}
}

void policy_conf(const struct kv_store *s, unsigned tier, uint64_t capacity,
		 struct kv_evict_conf *ec)
{
	*ec = (struct kv_evict_conf){
		.capacity = capacity,
		.evictable = evictable_fn[tier],
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
	if (c->ie.ns < s->n_models && s->models[c->ie.ns].hidden)
		m = &s->models[c->ie.ns];
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

/* Allocate in tenant t's part of a tier: its own arena, or the shared
 * space within its quota. -ENOMEM: full, evict and retry. */
int part_alloc(struct kv_store *s, struct tenant *t, unsigned tier,
	       uint64_t bytes, struct kv_extent **ext)
{
	struct ttier *tt = &t->tiers[tier];
	int ret;

	if (tt->shared && (tt->used > tt->capacity || bytes > tt->capacity - tt->used))
		return -ENOMEM;
	ret = tt->t.ops->alloc(tt->t.priv, bytes, ext);
	if (!ret && tt->shared)
		tt->used += kv_extent_size(*ext);
	return ret;
}

void part_free(struct kv_store *s, const struct kv_chunk *c, unsigned tier,
	       struct kv_extent *e)
{
	struct ttier *tt = ctt(s, c, tier);

	if (tt->shared)
		tt->used -= kv_extent_size(e);
	tt->t.ops->free(tt->t.priv, e);
}

/* Bytes a tenant's part of a tier holds. */
uint64_t part_used(const struct ttier *tt)
{
	struct kv_alloc_stats as;

	if (tt->shared)
		return tt->used;
	if (!tt->t.ops)
		return 0;
	tt->t.ops->stats(tt->t.priv, &as);
	return as.used;
}

/* Count a chunk into (n 1) or out of (n -1) a tier's membership. */
static void count_member(struct kv_store *s, const struct kv_chunk *c,
			 unsigned tier, int n)
{
	s->tiers[tier].chunks += (uint64_t)(int64_t)n;
	ctt(s, c, tier)->chunks += (uint64_t)(int64_t)n;
}

/* The fastest tier with a copy. */
void retier(struct kv_chunk *c)
{
	c->tier = KV_TIER_SSD;
	for (unsigned t = 0; t < KV_TIER_MAX; t++) {
		if (c->copy[t].ext) {
			c->tier = (uint8_t)t;
			return;
		}
	}
}

/* A committed chunk's new copy in tier (copy[tier].ext set) joins the
 * tier's policy, with the history the chunk carries. */
void tier_insert(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	struct kv_copy *k = &c->copy[tier];
	struct kv_evict_node *n = &k->node;

	if (tier != HISTORY) {
		n->freq = c->copy[HISTORY].node.freq;
		n->score = c->copy[HISTORY].node.score;
	}
	n->tokens = c->tokens;		/* policy-private fields: any value */
	n->position = c->position;
	n->size = kv_extent_size(k->ext);
	n->cost = chunk_cost(s, c, n->size);
	k->held = !evictable(s, c, tier);
	s->tiers[tier].pol->on_insert(ctt(s, c, tier)->pstate, n);
	count_member(s, c, tier, 1);
	retier(c);
}

/* Take c off the queue of moves into tier. */
void chunk_unqueue(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	if (!c->copy[tier].queued)
		return;
	kv_list_del(&c->copy[tier].queue);
	c->copy[tier].queued = false;
	if (tier == KV_TIER_SSD) {
		s->wb_queued--;
		s->tenants[c->tenant].wb_pending--;
	}
}

/*
 * Drop the copy in tier (the chunk stays where else it is). A move queued
 * from it goes too; a cold tier's history goes back to the chunk, and a
 * tier that keeps records forgets this one.
 */
void tier_out(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	struct kv_copy *k = &c->copy[tier];

	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (rules[t].fed_by == tier)
			chunk_unqueue(s, c, t);	/* its source goes */
	if (c->state == KV_CHUNK_COMMITTED) {
		s->tiers[tier].pol->on_remove(ctt(s, c, tier)->pstate, &k->node);
		count_member(s, c, tier, -1);
	}
	if (rules[tier].cold) {
		c->copy[HISTORY].node.freq = k->node.freq;	/* carry what it saw */
		c->copy[HISTORY].node.score = k->node.score;
	}
	part_free(s, c, tier, k->ext);
	k->ext = NULL;
	if (tier == KV_TIER_SSD)
		ssd_forget(s, c->ie.ns, &c->ie.key);
	retier(c);
}

void ssd_forget(struct kv_store *s, uint32_t ns, const struct kv_key *key)
{
	struct kv_ssd_job *j = kv_xcalloc(1, sizeof(*j));

	j->op = KV_SSD_FORGET;
	j->ns = ns;
	j->key = *key;
	kv_ssd_submit(s->ssd, j);
}

uint64_t ns_salt(const struct kv_store *s, uint32_t ns)
{
	return ns < s->n_nss ? s->nss[ns].salt : 0;
}

/* ---- the prefix tree ----------------------------------------------------- */

void link_parent(struct kv_store *s, struct kv_chunk *c, struct kv_chunk *p)
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

/* ---- leaving ----------------------------------------------------------- */

/* Free a chunk's copies and record. It must hold no pins and no moves. */
void chunk_drop(struct kv_store *s, struct kv_chunk *c)
{
	unlink_parent(s, c);
	orphan_children(c);
	if (c->state == KV_CHUNK_PENDING) {
		writer_unlink(c);
		s->pending_chunks--;
	}
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		chunk_unqueue(s, c, t);
	cluster_unqueue(c);
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (c->copy[t].ext)
			tier_out(s, c, t);
	s->tenants[c->tenant].chunks--;
	s->chunks--;
	kv_index_del(s->idx, &c->ie);
	free(c);
}

/*
 * Take tier's copy away, with the copies that ride on it; the chunk keeps
 * its others. Returns true when what is left is slower (a demotion); when
 * it is faster, the copy above no longer has its place below (not written
 * down again).
 */
static bool copy_away(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if ((rules[tier].riders & BIT(t)) && c->copy[t].ext)
			tier_out(s, c, t);
	tier_out(s, c, tier);
	if (c->tier > tier)
		return true;
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (rules[t].below == tier && c->copy[t].ext)
			c->copy[t].no_down = true;
	return false;
}

/*
 * Move a chunk out of a tier: out of DRAM, a chunk with an SSD copy keeps
 * that (a demotion); out of SSD, a chunk in DRAM keeps that and will not
 * be written back again. A chunk with no other copy leaves the cache.
 */
void chunk_evict(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	s->tiers[tier].evictions++;
	if (!has_any(c, rules[tier].keeps)) {
		chunk_drop(s, c);
		return;
	}
	if (copy_away(s, c, tier))
		s->tiers[tier].demotions++;
	refresh_hold(s, c);
}

/*
 * Drop a chunk's copy in tier and nothing else (FLUSH with KV_FLUSH_DROP
 * and a tier): the chunk stays where it has other copies and leaves the
 * cache when that was its only one. An HBM copy lives only beside a DRAM
 * copy (inclusive), so dropping the DRAM copy drops it too. A DRAM chunk
 * whose SSD copy goes is not written straight back (a write-back flush
 * may). Not an eviction: nothing is counted.
 */
void drop_copy(struct kv_store *s, struct kv_chunk *c, unsigned tier)
{
	if (!has_any(c, rules[tier].keeps)) {
		chunk_drop(s, c);
		return;
	}
	copy_away(s, c, tier);
	refresh_hold(s, c);
}

/* A DRAM victim whose write-back failed leaves the cache with no copy: what
 * the failure cost, counted (STATS writeback_lost) and said once. */
static void wb_lost(struct kv_store *s, const struct kv_chunk *c)
{
	s->wb_lost++;
	kv_log_once(KV_WARN, KV_LOG_TIER, "chunks whose write-back to SSD failed are leaving the cache (first: ns %u, %s); STATS writeback_lost counts them",
		    (unsigned)c->ie.ns, kv_strerror(c->copy[KV_TIER_DRAM].err));
}

/*
 * Allocate in a tier, evicting the policy's victim until it fits. The
 * policy is asked again after each eviction: only its first answer is its
 * ranked choice (a heap policy lists the rest in heap order), and evicting
 * a leaf may make its parent the best victim. When nothing is evictable in
 * DRAM but write-backs are queued or under way, room will come:
 * -EINPROGRESS. (HBM never waits: a put falls back to DRAM.)
 */
int tier_alloc_evicting(struct kv_store *s, struct tenant *t, unsigned tier,
			uint64_t bytes, struct kv_extent **ext)
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
		c = node_chunk(victim, tier);
		if (tier == KV_TIER_DRAM && c->copy[KV_TIER_DRAM].err &&
		    !c->copy[KV_TIER_SSD].ext)
			wb_lost(s, c);
		chunk_evict(s, c, tier);
	}
}

/* ---- uses ------------------------------------------------------------------ */

/* Count a reference as a hit where it is and a miss in every faster tier. */
void count_ref(struct kv_store *s, const struct kv_chunk *c)
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

/* A use: every tier with a copy hears of it, a cold tier only when it
 * holds the fastest copy (an HBM copy goes with its DRAM copy, so DRAM
 * must not rank it cold). */
void touch(struct kv_store *s, struct kv_chunk *c, uint64_t now)
{
	c->hits++;
	c->last_used_ns = now;
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (c->copy[t].ext && (!rules[t].cold || c->tier == t))
			s->tiers[t].pol->on_access(ctt(s, c, t)->pstate, &c->copy[t].node);
}

/* The same tiers hear of an attention score. */
void chunk_score(struct kv_store *s, struct kv_chunk *c, float v)
{
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		if (c->copy[t].ext && (!rules[t].cold || c->tier == t) &&
		    s->tiers[t].pol->on_score)
			s->tiers[t].pol->on_score(ctt(s, c, t)->pstate,
						  &c->copy[t].node, v);
}

/* Does tier hear of uses only while it holds the fastest copy? */
bool tier_cold(unsigned tier)
{
	return rules[tier].cold;
}
