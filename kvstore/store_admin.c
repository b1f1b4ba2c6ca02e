/*
 * store_admin.c - administration: evict, flush, ls, inspect, stats, the
 * policy of a tier, the reports clients make (bandwidth, plans), tenants'
 * figures, cost models and codecs, and the arenas HELLO hands out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/codec.h"
#include "tiers/hbm.h"
#include "tiers/ssd.h"

int kv_store_evict(struct kv_store *s, uint32_t ns, const struct kv_key *key)
{
	struct kv_chunk *c = chunk_find(s, ns, key);

	if (!c)
		return -ENOENT;
	if (c->state != KV_CHUNK_COMMITTED || c->pins || chunk_busy(c))
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
	while ((c = chunk_next(s, &cursor)))
		if (c->state == KV_CHUNK_COMMITTED && c->copy[tier].ext)
			v[n++] = c;
	/* Oldest first, so the new policy's idea of recency is the old one. */
	qsort(v, n, sizeof(*v), by_last_use);
	for (size_t i = 0; i < n; i++)	/* carried fields current */
		st->pol->on_remove(ctt(s, v[i], tier)->pstate, &v[i]->copy[tier].node);
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[tier];

		if (tt->pstate)
			st->pol->fini(tt->pstate);
		tt->pstate = pstates[i];
	}
	st->pol = ops;
	for (size_t i = 0; i < n; i++)
		ops->on_insert(ctt(s, v[i], tier)->pstate, &v[i]->copy[tier].node);
	free(v);
	return 0;
}

const char *kv_store_policy(const struct kv_store *s, uint8_t tier)
{
	if (tier >= KV_TIER_MAX || !s->tiers[tier].ops)
		return NULL;
	return s->tiers[tier].pol->name;
}

bool kv_store_has_tier(const struct kv_store *s, uint8_t tier)
{
	return tier == KV_TIER_NONE || (tier < KV_TIER_MAX && s->tiers[tier].ops);
}

int kv_store_flush(struct kv_store *s, uint8_t tier, bool drop_them,
		   bool (*is_visible)(uint32_t ns, void *arg), void *arg,
		   struct kv_store_flushed *res)
{
	struct kv_chunk **drop = NULL;
	size_t n = 0, cap = 0;
	uint64_t cursor = 0;
	struct kv_chunk *c;

	memset(res, 0, sizeof(*res));
	if (!kv_store_has_tier(s, tier))
		return -KV_ENOTIER;
	/* Without drop a flush writes back to the tier below: the server
	 * does that with kv_store_writeback(); the SSD has nothing below it. */
	if (!drop_them)
		return 0;
	/* Collect first: the index walk must not see its chunks freed. */
	while ((c = chunk_next(s, &cursor))) {
		if ((tier != KV_TIER_NONE && !c->copy[tier].ext) || !is_visible(c->ie.ns, arg))
			continue;
		if (c->state != KV_CHUNK_COMMITTED || c->pins || chunk_busy(c)) {
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

static void fill_entry(const struct kv_chunk *c, struct kv_store_entry *e)
{
	uint64_t now = kv_now_ns();

	memset(e, 0, sizeof(*e));
	e->key = c->ie.key;
	e->parent = c->parent;
	e->ns = c->ie.ns;
	e->tier = c->tier;
	e->has_parent = c->has_parent;
	e->bytes = c->bytes;
	e->offset = kv_extent_offset(c->copy[c->tier].ext);
	e->tokens = c->tokens;
	e->position = c->position;
	e->pins = c->pins;
	e->children = c->children;
	e->hits = c->hits;
	e->age_ms = now > c->last_used_ns ? (now - c->last_used_ns) / 1000000 : 0;
}

uint32_t kv_store_ls(struct kv_store *s, uint32_t ns, uint8_t tier,
		     bool (*is_visible)(uint32_t ns, void *arg), void *arg,
		     uint64_t *cursor, struct kv_store_entry *out, uint32_t max)
{
	uint32_t n = 0;
	struct kv_chunk *c;

	while (n < max && (c = chunk_next(s, cursor))) {
		if (c->state != KV_CHUNK_COMMITTED)
			continue;
		if (tier != KV_TIER_NONE && c->tier != tier)
			continue;
		if (ns == KV_STORE_NS_ALL ? !is_visible(c->ie.ns, arg) : c->ie.ns != ns)
			continue;
		fill_entry(c, &out[n++]);
	}
	return n;
}

int kv_store_inspect(struct kv_store *s, uint32_t ns,
		     const struct kv_key *key, struct kv_store_entry *out)
{
	struct kv_chunk *c = chunk_visible(s, ns, key);

	if (!c)
		return -ENOENT;
	fill_entry(c, out);
	return 0;
}

uint32_t kv_store_stats(struct kv_store *s, struct kv_store_stats *g,
			struct kv_store_tier_stats *t, uint32_t max)
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
	memcpy(g->plans, s->plans, sizeof(g->plans));
	g->plan_tokens_loaded = s->plan_tokens_loaded;
	g->plan_tokens_computed = s->plan_tokens_computed;
	if (s->ssd) {
		struct kv_ssd_stats ss;

		kv_ssd_stats(s->ssd, NULL, &ss);
		g->ssd_records_missing = ss.records_missing;
		g->ssd_records_wrong_ns = ss.records_wrong_ns;
	}
	/* The remote tier's line: hits and misses are keys the cluster had
	 * or not when asked, promotions chunks fetched, demotions chunks
	 * written through, alloc_failures writes that failed (its space is
	 * the servers'; kv_store_remote_stats() has the rest). */
	for (unsigned i = 0; i < KV_TIER_ALL && n < max; i++) {
		struct stier *st = &s->tiers[i];
		uint64_t used = 0;

		if (!st->ops)
			continue;
		for (unsigned k = 0; i < KV_TIER_MAX && k < s->n_tenants; k++)
			used += part_used(&s->tenants[k].tiers[i]);
		memset(&t[n], 0, sizeof(t[n]));
		t[n].tier = (uint8_t)i;
		t[n].name = st->ops->name;
		t[n].policy = st->pol ? st->pol->name : "server";
		if (i == KV_TIER_REMOTE)
			st->alloc_failures = s->rt_write_failed;
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
	return n;
}

int kv_store_report_bw(struct kv_store *s, uint8_t tier, uint64_t bytes, uint64_t ns)
{
	if (tier >= KV_TIER_MAX || !s->tiers[tier].ops)
		return -KV_ENOTIER;
	if (tier == KV_TIER_SSD)
		return -EINVAL;		/* timed here: read_timed() (the remote
					 * tier too, and it is no KV_TIER_MAX) */
	return kv_bw_add(&s->tiers[tier].read, bytes, ns);
}

int kv_store_report_plan(struct kv_store *s, unsigned kind, uint64_t loaded,
			 uint64_t computed)
{
	if (kind < KV_STORE_PLAN_LOADED || kind >= KV_STORE_PLAN_MAX)
		return -EINVAL;
	s->plans[kind] = kv_add_sat(s->plans[kind], 1);
	s->plan_tokens_loaded = kv_add_sat(s->plan_tokens_loaded, loaded);
	s->plan_tokens_computed = kv_add_sat(s->plan_tokens_computed, computed);
	return 0;
}

/* The tier names its GPU in the store's field as it is. */
_Static_assert(KV_GPU_PCI_ID == KV_STORE_PCI_BYTES, "a PCI bus id fits");

int kv_store_hbm_export(const struct kv_store *s, unsigned tenant, uint64_t *bytes,
			uint64_t *map_bytes, char pci[KV_STORE_PCI_BYTES])
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

		st->capacity[i] = tt->capacity;
		st->chunks[i] = tt->chunks;
		st->used[i] = part_used(tt);
	}
	st->namespaces = t->namespaces;
	st->max_namespaces = t->conf.quota[KV_TQ_NAMESPACES];
	st->uncommitted = t->uncommitted;
	st->max_uncommitted = t->conf.quota[KV_TQ_UNCOMMITTED];
	st->records = t->chunks;
	st->max_records = t->max_chunks;
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

