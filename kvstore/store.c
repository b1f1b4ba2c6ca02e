/*
 * store.c - what a request means: two-phase puts, lookups, pins, prefetch.
 *
 * Every chunk is one struct kv_chunk (kvstore/store_int.h) in the index,
 * in one of two states: PENDING (allocated by an owner, on its writer
 * list, in no policy) or COMMITTED (in its tiers' policies, visible). The
 * rest of the store is in its parts, which this file calls one way
 * (store_int.h lists them): chunk.c (residency and eviction), move.c
 * (movement between tiers), owner.c (owners and pins), store_admin.c,
 * store_ns.c and store_open.c.
 *
 * The tiers (docs/ssd.md, docs/gpu.md): a committed chunk is in DRAM, on
 * SSD, or both, and may have an HBM copy beside its DRAM copy. A commit
 * queues its write-back (or, put into HBM, its DRAM copy); a pin of an
 * SSD-only chunk starts its promotion and answers -EINPROGRESS; a GPU
 * client's pin may queue a copy into HBM. Background moves start from
 * kv_store_pump(), never inside a request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "kvstore/store_int.h"

int kv_store_alloc(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_store_put *a, uint64_t *offset)
{
	uint8_t tier;

	return kv_store_alloc_in(s, o, ns, a, &tier, offset);
}

int kv_store_alloc_in(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		      const struct kv_store_put *a, uint8_t *tier, uint64_t *offset)
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
	if (chunk_find(s, ns, &a->key))
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
	if (a->has_parent) {
		parent = chunk_find(s, ns, &a->parent);
		if (!parent)
			return -KV_ENOPARENT;
	}
	/* The parent must stay while we make room: hold it by a pin of the
	 * store's own for the duration. */
	if (parent && parent->pins++ == 0)
		refresh_hold(s, parent);
	/* Asked for HBM: there if it fits now, else DRAM. */
	if (a->hbm && s->hbm && !s->hbm_dead &&
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

	c = chunk_new(s, ns, &a->key);
	c->tenant = (uint16_t)t->id;
	t->chunks++;
	s->chunks++;
	c->state = KV_CHUNK_PENDING;
	c->has_parent = a->has_parent;
	if (c->has_parent)
		c->parent = a->parent;
	c->tokens = a->tokens;
	c->position = a->position;
	c->bytes = a->bytes;
	c->alloc_ns = kv_now_ns();
	c->copy[where].ext = ext;
	retier(c);
	owner_add_pending(o, c);
	s->pending_chunks++;
	/* Linked now, pending or not: a parent with a child being written is
	 * no leaf, so no allocation can evict it from under the child. */
	link_parent(s, c, parent);
	*tier = (uint8_t)where;
	*offset = kv_extent_offset(ext);
	return 0;
}

static struct kv_chunk *owned_pending(struct kv_store *s, struct kv_owner *o,
				      uint32_t ns, const struct kv_key *key)
{
	struct kv_chunk *c = chunk_find(s, ns, key);

	if (!c || c->state != KV_CHUNK_PENDING || c->writer != o)
		return NULL;
	return c;
}

int kv_store_commit(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		    const struct kv_key *key)
{
	struct kv_chunk *c = owned_pending(s, o, ns, key);

	if (!c)
		return -ENOENT;
	writer_unlink(c);
	s->pending_chunks--;
	c->state = KV_CHUNK_COMMITTED;
	c->last_used_ns = kv_now_ns();
	/* A new chunk: no history, in whichever tier it was put. */
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		memset(&c->copy[t].node, 0, sizeof(c->copy[t].node));
	tier_insert(s, c, c->tier);
	move_committed(s, c);
	return 0;
}

int kv_store_abort(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		   const struct kv_key *key)
{
	struct kv_chunk *c = owned_pending(s, o, ns, key);

	if (!c)
		return -ENOENT;
	chunk_drop(s, c);
	return 0;
}

uint32_t kv_store_lookup(struct kv_store *s, uint32_t ns,
			 const struct kv_key *keys, uint32_t n, uint8_t *tiers)
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
		struct kv_chunk *c = chunk_visible(s, ns, &keys[i]);

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

/*
 * A key no local tier has, for tenant t (NULL: none may fetch it): on its
 * way up from the cluster (-EINPROGRESS), or -ENOENT. A fetch started for
 * a namespace no tenant holds yet binds it to t, as a put would. again:
 * a replay, which asks after a fetch it started and never starts another.
 */
static int absent(struct kv_store *s, struct tenant *t, uint32_t ns,
		  const struct kv_key *key, bool again)
{
	struct kv_chunk *f = chunk_find(s, ns, key);
	int ret;

	if (f)		/* a fetch under way, or a put not committed */
		return f->state == KV_CHUNK_FETCHING ? -EINPROGRESS : -ENOENT;
	if (again || !t)
		return -ENOENT;
	ret = cluster_fetch(s, t, ns, key);
	if (ret == -EINPROGRESS && ns_tenant(s, ns) < 0)
		ns_bind(s, ns, t->id);
	return ret;
}

int kv_store_pin(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		 const struct kv_key *key, unsigned flags, struct kv_store_loc *loc)
{
	struct kv_chunk *c = chunk_visible(s, ns, key);
	bool gpu = flags & KV_STORE_PIN_GPU;
	bool again = flags & KV_STORE_PIN_RETRY;
	int owner = ns_tenant(s, ns);
	unsigned at;

	/* Another tenant's chunk: its bytes are in arenas o cannot map, and
	 * a pin would hold it in that tenant's tiers. */
	if (owner >= 0 && (unsigned)owner != o->tenant->id)
		return -EACCES;
	if (!again)
		count_ref(s, c);
	if (!c)		/* perhaps in the cluster: a fetch comes up into DRAM */
		return absent(s, o->tenant, ns, key, again);
	if (o->n_pins >= s->max_pins)
		return -KV_EPINS;
	at = gpu && c->copy[KV_TIER_HBM].ext ? KV_TIER_HBM : KV_TIER_DRAM;
	if (!c->copy[at].ext) {
		if (!c->copy[KV_TIER_HBM].ext)
			return promote(s, c);	/* on SSD: pin it once it is up */
		/* Put into HBM, its DRAM copy not made yet: wait for it. */
		return c->copy[KV_TIER_DRAM].queued ||
		       c->copy[KV_TIER_DRAM].from == KV_TIER_HBM ? -EINPROGRESS : -ENOENT;
	}
	pin_add(s, o, c);
	touch(s, c, kv_now_ns());
	if (c->pins++ == 0) {
		s->pinned_chunks++;
		refresh_hold(s, c);
	}
	loc->tier = (uint8_t)at;
	loc->offset = kv_extent_offset(c->copy[at].ext);
	loc->bytes = c->bytes;
	if (gpu && !again) {
		c->gpu_pins++;
		hbm_promote(s, c);
	}
	return 0;
}

uint32_t kv_store_prefetch(struct kv_store *s, uint32_t ns,
			   const struct kv_key *keys, uint32_t n, int32_t *status)
{
	uint32_t pending = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct kv_chunk *c = chunk_visible(s, ns, &keys[i]);
		int owner = ns_tenant(s, ns);
		int ret = 0;

		if (!c)
			ret = absent(s, owner >= 0 ? &s->tenants[owner] : NULL, ns, &keys[i],
				     false);
		else if (!c->copy[KV_TIER_DRAM].ext && !c->copy[KV_TIER_HBM].ext)
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

int kv_store_score(struct kv_store *s, uint32_t ns,
		   const struct kv_key *key, float score)
{
	struct kv_chunk *c;

	if (!(score >= 0.0f && score <= 1.0f))
		return -EINVAL;	/* NaN too */
	c = chunk_visible(s, ns, key);
	if (!c)
		return -ENOENT;
	chunk_score(s, c, score);
	return 0;
}
