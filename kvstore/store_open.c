/*
 * store_open.c - opening and closing the store: the tenants, every tier
 * (an arena per tenant for DRAM and HBM, one shared space for the SSD),
 * their policies, and the chunks an SSD tier brings back from before a
 * restart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/codec.h"
#include "tiers/hbm.h"
#include "tiers/remote.h"
#include "tiers/ssd.h"

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

static void chunk_free(struct kv_index_entry *e)
{
	free(chunk_of(e));
}

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

/* A chunk record found on the SSD at open: back into the index. */
static int ssd_found(void *arg, uint32_t ns, const struct kv_key *k,
		     const struct kv_ssd_rec *rec, struct kv_extent *ext)
{
	struct kv_store *s = arg;
	struct kv_copy *d;
	struct kv_chunk *c;

	if (chunk_find(s, ns, k))
		return -EEXIST;
	c = chunk_new(s, ns, k);
	d = &c->copy[KV_TIER_SSD];
	c->state = KV_CHUNK_COMMITTED;
	c->has_parent = rec->has_parent;
	c->parent = rec->parent;
	c->tokens = rec->tokens;
	c->position = rec->position;
	c->bytes = rec->bytes;
	c->hits = rec->hits;
	c->copy[KV_TIER_DRAM].node.freq = rec->freq;	/* its history */
	c->copy[KV_TIER_DRAM].node.score = rec->score;
	d->ext = ext;
	d->stored = rec->stored;
	d->codec = rec->codec;
	d->checksum = rec->checksum;
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

	while ((c = chunk_next(s, &cursor))) {
		int t = ns_tenant(s, c->ie.ns);

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
		ctt(s, c, KV_TIER_SSD)->used += kv_extent_size(c->copy[KV_TIER_SSD].ext);
	}
	for (size_t i = 0; i < n; i++) {
		c = orphans[i];
		kv_ssd_free(s->ssd, c->copy[KV_TIER_SSD].ext);
		ssd_forget(s, c->ie.ns, &c->ie.key);
		kv_index_del(s->idx, &c->ie);
		free(c);
	}
	free(orphans);
	cursor = 0;
	while ((c = chunk_next(s, &cursor)))
		if (c->has_parent)
			link_parent(s, c, chunk_find(s, c->ie.ns, &c->parent));
	cursor = 0;
	while ((c = chunk_next(s, &cursor)))
		tier_insert(s, c, KV_TIER_SSD);
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
	kv_ssd_namespaces(s->ssd, ssd_ns_found, s);	/* their salts */
	kv_ssd_stats(s->ssd, &as, NULL);
	st->ops = &kv_tier_ssd;
	st->mover = s->ssd;
	st->capacity = as.size;
	for (unsigned i = 0; i < s->n_tenants; i++) {
		struct ttier *tt = &s->tenants[i].tiers[KV_TIER_SSD];

		tt->t = (struct kv_tier){ &kv_tier_ssd, s->ssd };
		tt->shared = true;
	}
	ret = policies_init(s, KV_TIER_SSD);
	if (ret) {
		policies_fini(s, KV_TIER_SSD);
		kv_ssd_close(s->ssd);
		s->ssd = NULL;
		st->ops = NULL;
		st->mover = NULL;
		for (unsigned i = 0; i < s->n_tenants; i++)
			s->tenants[i].tiers[KV_TIER_SSD].t = (struct kv_tier){ NULL, NULL };
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
		tt->t = (struct kv_tier){ &kv_tier_hbm, a };
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
	st->mover = s->hbm;
	st->capacity = total;
}

/* The remote tier: its thread starts now, the cluster is reached when
 * there is work (a cluster down is a miss, never a failed start). */
static int remote_open(struct kv_store *s, const struct kv_store_conf *conf)
{
	struct stier *st = &s->tiers[KV_TIER_REMOTE];
	struct kv_remote_conf rc = {
		.seeds = conf->remote_seeds,
		.user = conf->remote_user,
		.password = conf->remote_password,
		.tls = conf->remote_tls,
		.tls_ca_file = conf->remote_tls_ca_file,
		.tls_cert_file = conf->remote_tls_cert_file,
		.tls_key_file = conf->remote_tls_key_file,
		.timeout_ms = conf->remote_timeout_ms,
		.part_bytes = conf->remote_part_bytes,
		.level = conf->ssd_level,
	};
	int ret = kv_remote_open(&s->remote, &rc);

	if (ret) {
		kv_log(KV_ERR, KV_LOG_TIER, "remote tier: %s", kv_strerror(ret));
		return ret;
	}
	st->ops = &kv_tier_remote;
	st->mover = s->remote;
	s->remote_write = conf->remote_write;
	s->remote_ns = conf->remote_ns && *conf->remote_ns ? kv_xstrdup(conf->remote_ns) :
			NULL;
	kv_log(KV_INFO, KV_LOG_TIER, "remote tier: Redis Cluster at %s%s, write-through %s, namespaces %s",
	       conf->remote_seeds, conf->remote_tls ? " over TLS" : "", s->remote_write ? "on" : "off",
	       s->remote_ns ? s->remote_ns : "all");
	return 0;
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
	kv_list_init(&s->owners);
	for (unsigned t = 0; t < KV_TIER_ALL; t++)
		kv_list_init(&s->tiers[t].queue);
	cluster_open(s);
	s->conf = *conf;
	s->conf.dram_policy = NULL;	/* borrowed: not kept */
	s->conf.ssd_policy = NULL;
	s->conf.ssd_dir = NULL;
	s->conf.hbm_policy = NULL;
	s->conf.tenants = NULL;
	s->conf.allow_uids = NULL;
	s->conf.remote_seeds = NULL;
	s->conf.remote_user = NULL;
	s->conf.remote_password = NULL;
	s->conf.remote_tls_ca_file = NULL;
	s->conf.remote_tls_cert_file = NULL;
	s->conf.remote_tls_key_file = NULL;
	s->conf.remote_ns = NULL;
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
	if (!ret && conf->remote_seeds)
		ret = remote_open(s, conf);
	if (ret) {
		kv_store_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void kv_store_close(struct kv_store *s)
{
	if (!s)
		return;
	while (!kv_list_empty(&s->owners))
		kv_store_owner_close(s, kv_list_first_entry(&s->owners, struct kv_owner,
							    link));
	/* The I/O threads finish what they have first (jobs name chunks and
	 * extents); what they finish is not reaped. */
	if (s->remote) {
		kv_remote_close(s->remote);
		s->remote = NULL;
		s->tiers[KV_TIER_REMOTE].ops = NULL;
		s->tiers[KV_TIER_REMOTE].mover = NULL;
	}
	cluster_close(s);
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
		s->tiers[t].mover = NULL;
	}
	for (unsigned i = 0; i < s->n_tenants; i++)
		kv_tier_close(&s->tenants[i].tiers[KV_TIER_DRAM].t);
	if (s->range)
		munmap(s->range, s->range_bytes);
	kv_index_close(s->idx, chunk_free);
	free(s->tenants);
	free(s->ns_tenant);
	free(s->models);
	free(s->codecs);
	free(s->nss);
	free(s->found);
	free(s);
}

