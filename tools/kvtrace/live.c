/*
 * live.c - kvtrace --live: the trace replayed through libkvc against a
 * running kvstored, whose DRAM tier's capacity and policy are then
 * simulated (sim.c) with the same calls; the two must agree exactly on
 * hits and evictions (kvtrace.c's header comment says what exactness
 * assumes).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evict/policy.h"
#include "lib/util.h"
#include "tools/kvtrace/kvtrace_int.h"

/* ---- live: the same calls through libkvc ------------------------------------ */

static const struct kvc_tier_stats *dram_stats(const struct kvc_stats *st)
{
	for (unsigned i = 0; i < st->n_tiers && i < KVC_MAX_TIERS; i++)
		if (!strcmp(st->tiers[i].name, "dram"))
			return &st->tiers[i];
	return NULL;
}

static int live_stats(struct kvc *c, struct kvc_stats *st, const struct kvc_tier_stats **t)
{
	int ret = kvc_stats(c, st);

	if (ret) {
		fail("stats: %s", kvc_strerror(ret));
		return ret;
	}
	*t = dram_stats(st);
	if (!*t) {
		fail("the daemon reports no dram tier");
		return -KVC_ENOTIER;
	}
	return 0;
}

/* Cached chunks of ns whose parent is not cached, as kvc_ls lists them. */
static int live_orphans(struct kvc *c, uint32_t ns, uint64_t *orphans)
{
	struct kvc_entry *e = kv_xmalloc(KVC_MAX_BATCH * sizeof(*e));
	uint64_t cursor = 0;
	int got;

	*orphans = 0;
	do {
		got = kvc_ls(c, ns, KVC_TIER_NONE, &cursor, e, KVC_MAX_BATCH);
		for (int i = 0; i < got; i++) {
			struct kvc_entry pe;
			int ret;

			if (!e[i].has_parent)
				continue;
			ret = kvc_inspect(c, ns, &e[i].parent, &pe);
			if (ret == -ENOENT)
				(*orphans)++;
			else if (ret)
				got = ret;
		}
	} while (got >= 0 && cursor);
	free(e);
	if (got < 0)
		fail("listing the cached chunks: %s", kvc_strerror(got));
	return got < 0 ? got : 0;
}

static int live_request(struct kvc *c, uint32_t ns, const struct opts *o,
			const uint64_t *ids, size_t n, struct replay_buf *rb,
			struct kvc_put_desc *d, const void *payload, struct result *res)
{
	struct kvc_key *keys = rb->ckeys;
	uint32_t nm = 0;
	int ret;

	for (size_t i = 0; i < n; i++) {
		struct kv_key k = key_of(ids[i]);

		keys[i] = (struct kvc_key){ .lo = k.lo, .hi = k.hi };
	}
	ret = kvc_lookup(c, ns, keys, n, rb->tiers);
	if (ret < 0) {
		fail("lookup: %s", kvc_strerror(ret));
		return ret;
	}
	res->hits += (uint64_t)ret;
	res->saved += cost_sum[ret];
	for (size_t i = 0; i < n; i++) {
		if (rb->tiers[i] != KVC_TIER_NONE)
			continue;
		d[nm] = (struct kvc_put_desc){
			.key = keys[i],
			.tokens = o->block_tokens,
			.position = (uint32_t)i * o->block_tokens,
			.data = payload,
			.bytes = o->block_bytes,
		};
		if (i > 0) {
			d[nm].parent = keys[i - 1];
			d[nm].has_parent = 1;
		}
		nm++;
	}
	if (!nm)
		return 0;
	ret = kvc_put_batch(c, ns, d, nm);
	if (ret < 0) {
		fail("put: %s", kvc_strerror(ret));
		return ret;
	}
	for (uint32_t k = 0; k < nm; k++)
		tally(res, d[k].status);
	return 0;
}

static json_t *live_json(const struct result *r, const struct trace *t)
{
	return json_pack("{s:I, s:f, s:f, s:I}", "hits", (json_int_t)r->hits,
			 "hit_ratio", ratio((double)r->hits, (double)t->n_refs),
			 "compute_saved_ratio", ratio(r->saved, total_cost),
			 "evictions", (json_int_t)r->evictions);
}

static void live_row(const char *name, const struct result *r, const struct trace *t)
{
	printf("  %-6s %10" PRIu64 " %9.4f %10" PRIu64 "  %" PRIu64 "/%" PRIu64 "/%"
	       PRIu64 "/%" PRIu64 "/%" PRIu64 "\n", name, r->hits,
	       ratio((double)r->hits, (double)t->n_refs), r->evictions, r->refused[0],
	       r->refused[1], r->refused[2], r->refused[3], r->refused[4]);
}

int live(const struct opts *o, const struct trace *t)
{
	const struct kvc_tier_stats *dt;
	struct kvc_flush_result fr;
	struct kvc_put_desc *d = NULL;
	struct result lr = { 0 }, sr, min;
	struct replay_buf rb = { 0 };
	struct kvc_stats st;
	char policy[sizeof(dt->policy)];
	uint64_t cap_bytes, blocks, ev0, orphans;
	void *payload = NULL;
	struct kvc *c;
	struct sim_conf sc;
	uint32_t ns;
	bool same;
	int ret;

	ret = kvc_connect(o->live, &c);
	if (ret) {
		fail("cannot connect to '%s': %s", o->live, kvc_strerror(ret));
		return RC_USAGE;
	}
	ret = live_stats(c, &st, &dt);
	if (ret)
		goto out;
	cap_bytes = dt->capacity_bytes;
	blocks = cap_bytes / o->block_bytes;
	snprintf(policy, sizeof(policy), "%s", dt->policy);
	if (blocks == 0) {
		fail("the daemon's DRAM tier (%" PRIu64 " bytes) holds no %" PRIu64
		     "-byte block", cap_bytes, o->block_bytes);
		ret = -EINVAL;
		goto out;
	}
	if (!kv_evict_find(policy)) {
		fail("the daemon's policy '%s' is not in this build of kvtrace", policy);
		ret = -EINVAL;
		goto out;
	}
	ret = kvc_flush(c, KVC_TIER_NONE, KVC_FLUSH_DROP, &fr);
	if (ret) {
		fail("flush --drop: %s", kvc_strerror(ret));
		goto out;
	}
	ret = live_stats(c, &st, &dt);
	if (ret)
		goto out;
	if (dt->chunks || dt->used_bytes) {
		fail("the DRAM tier still holds %" PRIu64 " chunks after a flush (pinned, "
		     "being written or another user's): live replay needs it empty", dt->chunks);
		ret = -EBUSY;
		goto out;
	}
	ev0 = dt->evictions;
	ret = kvc_ns_register(c, LIVE_NS, &ns);
	if (ret) {
		fail("cannot register namespace '%s': %s", LIVE_NS, kvc_strerror(ret));
		goto out;
	}
	replay_buf_init(&rb, t->max_len);
	d = kv_xmalloc((t->max_len ? t->max_len : 1) * sizeof(*d));
	payload = kv_xcalloc(1, o->block_bytes);
	memset(payload, 0x6b, o->block_bytes < 64 ? o->block_bytes : 64);
	for (size_t r = 0; r < t->n_req && !ret; r++) {
		ret = live_request(c, ns, o, t->ids + t->off[r], t->off[r + 1] - t->off[r],
				   &rb, d, payload, &lr);
		/* The daemon rounds a chunk up to its granule: then capacity in
		 * blocks is not what we simulate. Say so at the first put. */
		if (!ret && r == 0) {
			ret = live_stats(c, &st, &dt);
			if (!ret && dt->used_bytes != dt->chunks * o->block_bytes) {
				fail("the daemon stores a %" PRIu64 "-byte chunk in more bytes: "
				     "make --block-bytes a multiple of its alloc_granule",
				     o->block_bytes);
				ret = -EINVAL;
			}
		}
	}
	if (ret)
		goto out;
	ret = live_stats(c, &st, &dt);
	if (ret)
		goto out;
	lr.evictions = dt->evictions - ev0;
	ret = live_orphans(c, ns, &orphans);
	if (ret)
		goto out;

	sc = (struct sim_conf){
		.policy = policy,
		.blocks = blocks,
		.block_bytes = o->block_bytes,
		.dram_bytes = cap_bytes,
		.max_uncommitted = o->max_uncommitted ? o->max_uncommitted : cap_bytes / 2,
		.model = o->model,
		.block_tokens = o->block_tokens,
		.check = o->check,
	};
	if (store_run(t, &sc, &sr) || min_run(t, blocks, o->check, &min)) {
		ret = -EPROTO;
		goto out;
	}
	same = lr.hits == sr.hits && lr.evictions == sr.evictions;
	if (o->json) {
		ret = emit_json(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:b}",
					  "trace", t->path, "socket", o->live, "policy", policy,
					  "requests", (json_int_t)t->n_req,
					  "capacity_bytes", (json_int_t)cap_bytes,
					  "block_bytes", (json_int_t)o->block_bytes,
					  "capacity_blocks", (json_int_t)blocks,
					  "min_hit_ratio",
					  ratio((double)min.hits, (double)t->n_refs),
					  "live", live_json(&lr, t), "sim", live_json(&sr, t),
					  "match", same));
	} else {
		printf("trace %s: %zu requests, %zu block references\n", t->path, t->n_req,
		       t->n_refs);
		printf("daemon %s: dram %" PRIu64 " bytes = %" PRIu64 " blocks of %" PRIu64
		       " bytes, policy %s\n", o->live, cap_bytes, blocks, o->block_bytes, policy);
		printf("  %-6s %10s %9s %10s  %s\n", "", "hits", "hit ratio", "evictions",
		       "puts refused (exists/no parent/full/uncommitted/other)");
		live_row("live", &lr, t);
		live_row("sim", &sr, t);
		printf("  %-6s %10" PRIu64 " %9.4f\n", "min", min.hits,
		       ratio((double)min.hits, (double)t->n_refs));
		printf("%s\n", same ? "live and simulation agree" :
		       "MISMATCH: live and simulation differ");
	}
	if (orphans)
		fail("the daemon holds %" PRIu64 " chunks whose parent is not cached", orphans);
	if (!ret && (!same || orphans))
		ret = -EPROTO;
out:
	free(payload);
	free(d);
	replay_buf_release(&rb);
	kvc_close(c);
	if (ret == -EINVAL || ret == -EBUSY)
		return RC_USAGE;
	return ret ? RC_FAIL : RC_OK;
}
