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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evict/policy.h"
#include "kvstore/errors.h"
#include "kvstore/index.h"
#include "kvstore/log.h"
#include "kvstore/store.h"
#include "kvstore/util.h"
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
};

static struct kv_chunk *node_chunk(const struct kv_evict_node *n)
{
	return kv_container_of(n, struct kv_chunk, node);
}

static bool chunk_evictable(const struct kv_evict_node *n, void *arg)
{
	const struct kv_chunk *c = node_chunk(n);

	return c->pins == 0 && c->children == 0;
}

/*
 * A committed chunk's evictability just changed (a pin count or a
 * children count crossed zero): tell its tier's policy.
 */
static void hold_changed(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[c->tier];

	if (c->state == KV_CHUNK_COMMITTED && st->pol->on_hold)
		st->pol->on_hold(st->pstate, &c->node, !chunk_evictable(&c->node, s));
}

static void policy_conf(const struct kv_store *s, const struct stier *st,
			struct kv_evict_conf *ec)
{
	*ec = (struct kv_evict_conf){
		.capacity = st->capacity,
		.evictable = chunk_evictable,
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

int kv_store_open(struct kv_store **out, const struct kv_store_conf *conf)
{
	struct kv_tier_conf dram = {
		.bytes = conf->dram_bytes,
		.align = conf->align,
	};
	struct kv_store *s;
	int ret;

	if (!conf->dram_bytes || !conf->align || !conf->dram_policy ||
	    !conf->max_pins || !conf->max_uncommitted ||
	    conf->recent_fraction < 0 || conf->recent_fraction > 1 ||
	    conf->half_life < 0 ||
	    (conf->cost_mode == KV_COST_RELOAD && !(conf->reload_bw > 0)))
		return -EINVAL;
	s = kv_xcalloc(1, sizeof(*s));
	s->conf = *conf;
	s->conf.dram_policy = NULL;	/* borrowed: not kept */
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
	if (p->children == 0 && p->pins == 0)
		hold_changed(s, p);	/* a leaf again */
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

/* Free a chunk's space and record. It must hold no pins. */
static void chunk_drop(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[c->tier];

	unlink_parent(s, c);
	orphan_children(c);
	if (c->state == KV_CHUNK_PENDING) {
		writer_unlink(c);
		s->pending_chunks--;
	} else {
		st->pol->on_remove(st->pstate, &c->node);
		st->chunks--;
	}
	st->t.ops->free(st->t.priv, c->ext);
	kv_index_del(s->idx, c);
}

/*
 * Move a chunk out of its tier: to the next tier down when there is one,
 * otherwise out of the cache.
 */
static void chunk_evict(struct kv_store *s, struct kv_chunk *c)
{
	struct stier *st = &s->tiers[c->tier];

	/* Only DRAM exists yet: nothing below it, so eviction drops. */
	st->evictions++;
	chunk_drop(s, c);
}

/*
 * Allocate in a tier, evicting the policy's victim until it fits. The
 * policy is asked again after each eviction: only its first answer is its
 * ranked choice (a heap policy lists the rest in heap order), and evicting
 * a leaf may make its parent the best victim.
 */
static int tier_alloc_evicting(struct kv_store *s, struct stier *st,
			       uint64_t bytes, struct kv_extent **ext)
{
	struct kv_evict_node *victim;
	int ret;

	for (;;) {
		ret = st->t.ops->alloc(st->t.priv, bytes, ext);
		if (ret != -ENOMEM)
			return ret;
		if (st->pol->pick(st->pstate, &victim, 1) == 0) {
			st->alloc_failures++;
			return -KV_EFULL;
		}
		chunk_evict(s, node_chunk(victim));
	}
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
		if (c->children == 0)
			hold_changed(s, c);
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
	if (p->children++ == 0 && p->pins == 0)
		hold_changed(s, p);	/* no longer a leaf */
}

int kv_store_alloc(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_wire_alloc *a, uint64_t *offset)
{
	struct stier *st = &s->tiers[KV_TIER_DRAM];
	struct kv_extent *ext;
	struct kv_chunk *c;
	int ret;

	struct kv_chunk *parent = NULL;

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
		if (!parent || parent->tier != KV_TIER_DRAM)
			return -KV_ENOPARENT;
	}
	/* The parent must stay while we make room: hold it by a pin of the
	 * store's own for the duration. */
	if (parent && parent->pins++ == 0 && parent->children == 0)
		hold_changed(s, parent);
	ret = tier_alloc_evicting(s, st, a->bytes, &ext);
	if (parent && --parent->pins == 0 && parent->children == 0)
		hold_changed(s, parent);
	if (ret)
		return ret;

	c = kv_index_add(s->idx, ns, &a->key);
	c->state = KV_CHUNK_PENDING;
	c->tier = KV_TIER_DRAM;
	c->has_parent = a->flags & KV_ALLOC_PARENT;
	if (c->has_parent)
		c->parent = a->parent;
	c->tokens = a->tokens;
	c->position = a->position;
	c->bytes = a->bytes;
	c->ext = ext;
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
	struct stier *st;

	if (!c)
		return -ENOENT;
	st = &s->tiers[c->tier];
	writer_unlink(c);
	s->pending_chunks--;
	c->state = KV_CHUNK_COMMITTED;
	c->last_used_ns = kv_now_ns();
	memset(&c->node, 0, sizeof(c->node));	/* a new chunk: no history */
	c->node.tokens = c->tokens;
	c->node.position = c->position;
	c->node.size = kv_extent_size(c->ext);
	c->node.cost = chunk_cost(s, c, c->node.size);
	st->pol->on_insert(st->pstate, &c->node);
	st->chunks++;
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

static void touch(struct kv_store *s, struct kv_chunk *c, uint64_t now)
{
	struct stier *st = &s->tiers[c->tier];

	c->hits++;
	c->last_used_ns = now;
	st->pol->on_access(st->pstate, &c->node);
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
	struct kv_chunk *c = visible(s, ns, key);
	struct kv_pin *p;

	count_ref(s, c);
	if (!c)
		return -ENOENT;
	if (o->n_pins >= s->max_pins)
		return -KV_EPINS;
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
		if (c->children == 0)
			hold_changed(s, c);
	}
	loc->status = 0;
	loc->tier = c->tier;
	loc->offset = kv_extent_offset(c->ext);
	loc->bytes = c->bytes;
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
	if (c->state != KV_CHUNK_COMMITTED || c->pins)
		return -EBUSY;
	chunk_evict(s, c);
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
		if (c->tier == tier && c->state == KV_CHUNK_COMMITTED)
			v[n++] = c;
	/* Oldest first, so the new policy's idea of recency is the old one. */
	qsort(v, n, sizeof(*v), by_last_use);
	for (size_t i = 0; i < n; i++)
		st->pol->on_remove(st->pstate, &v[i]->node);	/* carried fields current */
	st->pol->fini(st->pstate);
	st->pol = ops;
	st->pstate = pstate;
	for (size_t i = 0; i < n; i++)
		ops->on_insert(pstate, &v[i]->node);
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
	st = &s->tiers[c->tier];
	if (st->pol->on_score)
		st->pol->on_score(st->pstate, &c->node, score);
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
	/* Without KV_FLUSH_DROP a flush writes back to the tier below; no
	 * configured tier has one yet, so there is nothing to write. */
	if (!(flags & KV_FLUSH_DROP))
		return 0;
	/* Collect first: the index walk must not see its chunks freed. */
	while ((c = kv_index_next(s->idx, &cursor))) {
		if ((tier != KV_TIER_NONE && c->tier != tier) || !is_visible(c->ns, arg))
			continue;
		if (c->state != KV_CHUNK_COMMITTED || c->pins) {
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
	e->offset = kv_extent_offset(c->ext);
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
