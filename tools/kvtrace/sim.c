/*
 * sim.c - kvtrace's simulation: the daemon's own store (kvstore/store.h)
 * given, per request, the store calls a kvstored makes for a libkvc client
 * doing kvc_lookup() then kvc_put_batch() of the blocks it found missing
 * (kvtrace.c's header comment has the details), checked for its
 * invariants; then every capacity and policy of the command line, printed
 * as tables or JSON lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "tools/kvtrace/kvtrace_int.h"

/* ---- the store ------------------------------------------------------------------ */

void tally(struct result *res, int status)
{
	switch (status) {
	case 0:
		break;
	case -EEXIST:
		res->refused[0]++;
		break;
	case -KV_ENOPARENT:
		res->refused[1]++;
		break;
	case -KV_EFULL:
		res->refused[2]++;
		break;
	case -KV_EUNCOMMITTED:
		res->refused[3]++;
		break;
	default:
		res->refused[4]++;
		break;
	}
}

static bool any_ns(uint32_t ns, void *arg)
{
	return true;
}

/*
 * Committed chunks of namespace 0 whose parent is not cached: the store
 * promises leaf-first eviction, so there should be none. Also checks that
 * nothing is left pending and that the tier holds at most `blocks`.
 */
static int store_check(struct kv_store *s, uint64_t blocks, const char *what)
{
	struct kv_store_entry e[256];
	struct kv_store_tier_stats ts[KV_TIER_MAX];
	struct kv_store_stats g;
	uint64_t cursor = 0, n = 0, orphans = 0;
	uint32_t got;

	do {
		got = kv_store_ls(s, 0, KV_TIER_NONE, any_ns, NULL, &cursor, e,
				  KV_ARRAY_SIZE(e));
		for (uint32_t i = 0; i < got; i++) {
			struct kv_store_entry pe;

			n++;
			if (e[i].has_parent && kv_store_inspect(s, 0, &e[i].parent, &pe))
				orphans++;
		}
	} while (cursor);
	kv_store_stats(s, &g, ts, KV_ARRAY_SIZE(ts));
	if (orphans || g.pending_chunks || n > blocks || n != ts[0].chunks) {
		fail("%s: the store broke an invariant: %" PRIu64 " of %" PRIu64
		     " cached chunks have no cached parent, %" PRIu64 " pending, %"
		     PRIu64 " counted, capacity %" PRIu64 " blocks", what, orphans, n,
		     g.pending_chunks, ts[0].chunks, blocks);
		return -EPROTO;
	}
	return 0;
}

void replay_buf_init(struct replay_buf *rb, size_t n)
{
	n = n ? n : 1;
	rb->keys = kv_xmalloc(n * sizeof(*rb->keys));
	rb->ckeys = kv_xmalloc(n * sizeof(*rb->ckeys));
	rb->tiers = kv_xmalloc(n);
	rb->miss = kv_xmalloc(n * sizeof(*rb->miss));
	rb->ok = kv_xmalloc(n * sizeof(*rb->ok));
}

void replay_buf_release(struct replay_buf *rb)
{
	free(rb->keys);
	free(rb->ckeys);
	free(rb->tiers);
	free(rb->miss);
	free(rb->ok);
}

/* One request, as kvstored sees a libkvc client's lookup and put_batch. */
static int store_request(struct kv_store *s, struct kv_owner *o,
			 const struct sim_conf *sc, const uint64_t *ids, size_t n,
			 struct replay_buf *rb, struct result *res)
{
	const uint32_t step = KV_PROTO_MAX_BATCH;
	uint32_t leading = 0, nm = 0;
	bool run = true;

	for (size_t i = 0; i < n; i++)
		rb->keys[i] = key_of(ids[i]);
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		uint32_t l = kv_store_lookup(s, 0, rb->keys + i, m, rb->tiers + i);

		if (run)
			leading += l;
		run = run && l == m;
	}
	res->hits += leading;
	res->saved += cost_sum[leading];
	for (size_t i = 0; i < n; i++)
		if (rb->tiers[i] == KV_TIER_NONE)
			rb->miss[nm++] = (uint32_t)i;
	for (uint32_t j = 0; j < nm; j += step) {
		uint32_t m = nm - j < step ? nm - j : step;

		for (uint32_t k = j; k < j + m; k++) {
			uint32_t i = rb->miss[k];
			struct kv_store_put a = {
				.key = rb->keys[i],
				.bytes = sc->block_bytes,
				.tokens = sc->block_tokens,
				.position = i * sc->block_tokens,
			};
			uint64_t off;
			int ret;

			if (i > 0) {
				a.parent = rb->keys[i - 1];
				a.has_parent = true;
			}
			ret = kv_store_alloc(s, o, 0, &a, &off);
			rb->ok[k] = ret == 0;
			tally(res, ret);
		}
		/* The daemon commits a message's keys deepest first. */
		for (uint32_t k = j + m; k-- > j;) {
			int ret;

			if (!rb->ok[k])
				continue;
			ret = kv_store_commit(s, o, 0, &rb->keys[rb->miss[k]]);
			if (ret) {
				fail("commit of an allocated chunk failed: %s", kv_strerror(ret));
				return ret;
			}
		}
	}
	return 0;
}

/* Replay the whole trace through a fresh store. 0 or a negative error. */
int store_run(const struct trace *t, const struct sim_conf *sc,
	      struct result *res)
{
	struct kv_store_conf conf = {
		.dram_bytes = sc->dram_bytes,
		.align = SIM_BLOCK_BYTES,
		.dram_policy = sc->policy,
		.max_pins = 1u << 31,
		.max_uncommitted = sc->max_uncommitted,
		.cost_mode = KV_COST_COMPUTE,
		.cost_model = sc->model,
		.max_chunks = sc->dram_bytes / SIM_BLOCK_BYTES + 1,	/* no record limit */
	};
	struct kv_store_tier_stats ts[KV_TIER_MAX];
	struct kv_store_stats g;
	struct replay_buf rb;
	struct kv_store *s;
	struct kv_owner *o;
	char what[64];
	int ret;

	memset(res, 0, sizeof(*res));
	ret = kv_store_open(&s, &conf);
	if (ret) {
		fail("cannot open a store of %" PRIu64 " bytes with policy '%s': %s",
		     sc->dram_bytes, sc->policy, kv_strerror(ret));
		return ret;
	}
	ret = kv_store_set_model(s, 0, &sc->model);
	if (ret) {
		fail("cannot set the cost model: %s", kv_strerror(ret));
		goto out;
	}
	o = kv_store_owner_open(s, 0);
	replay_buf_init(&rb, t->max_len);
	snprintf(what, sizeof(what), "%s at %" PRIu64 " blocks", sc->policy, sc->blocks);
	for (size_t r = 0; r < t->n_req && !ret; r++) {
		ret = store_request(s, o, sc, t->ids + t->off[r], t->off[r + 1] - t->off[r],
				    &rb, res);
		if (!ret && sc->check)
			ret = store_check(s, sc->blocks, what);
	}
	if (!ret)
		ret = store_check(s, sc->blocks, what);
	replay_buf_release(&rb);
	kv_store_stats(s, &g, ts, KV_ARRAY_SIZE(ts));
	res->evictions = ts[0].evictions;
out:
	kv_store_close(s);
	return ret;
}

/* ---- simulation: every capacity, every policy ------------------------------ */

static json_t *result_json(const char *policy, const struct result *r,
			   const struct result *min, const struct trace *t)
{
	json_t *vs = min->hits ? json_real((double)r->hits / (double)min->hits) :
		json_null();

	return json_pack("{s:s, s:f, s:f, s:I, s:o}", "policy", policy,
			 "hit_ratio", ratio((double)r->hits, (double)t->n_refs),
			 "compute_saved_ratio", ratio(r->saved, total_cost),
			 "evictions", (json_int_t)r->evictions, "ratio_to_min", vs);
}

static void result_row(const char *policy, const struct result *r,
		       const struct result *min, const struct trace *t)
{
	printf("  %-8s %9.4f %14.4f %10" PRIu64, policy,
	       ratio((double)r->hits, (double)t->n_refs), ratio(r->saved, total_cost),
	       r->evictions);
	if (min->hits)
		printf(" %7.4f\n", (double)r->hits / (double)min->hits);
	else
		printf(" %7s\n", "-");
}

int emit_json(json_t *doc)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int ret = s && puts(s) != EOF ? 0 : -EIO;

	if (!s)
		fail("cannot build the JSON output");
	free(s);
	json_decref(doc);
	return ret;
}

int simulate(const struct opts *o, const struct trace *t)
{
	struct result ideal, min, *res;
	int ret = 0;

	for (size_t c = 0; c < o->n_caps; c++) {
		if (o->caps[c] < o->block_tokens) {
			fail("--capacity-tokens %" PRIu64 " holds no %" PRIu32 "-token block",
			     o->caps[c], o->block_tokens);
			return RC_USAGE;
		}
	}
	res = kv_xcalloc(o->n_policies, sizeof(*res));
	ideal_run(t, &ideal);
	if (!o->json) {
		printf("trace %s: %zu requests, %zu block references, %" PRIu32
		       " distinct blocks, %" PRIu32 " tokens a block\n", t->path, t->n_req,
		       t->n_refs, t->n_distinct, o->block_tokens);
		printf("ideal (infinite cache): hit ratio %.4f, compute saved %.4f\n",
		       ratio((double)ideal.hits, (double)t->n_refs),
		       ratio(ideal.saved, total_cost));
	}
	for (size_t c = 0; c < o->n_caps && !ret; c++) {
		uint64_t blocks = o->caps[c] / o->block_tokens;
		uint64_t sim_blocks = blocks < t->n_distinct ? blocks : t->n_distinct;
		struct sim_conf sc = {
			.blocks = sim_blocks ? sim_blocks : 1,
			.block_bytes = SIM_BLOCK_BYTES,
			.max_uncommitted = UINT64_MAX / 2,
			.model = o->model,
			.block_tokens = o->block_tokens,
			.check = o->check,
		};
		json_t *arr;

		sc.dram_bytes = sc.blocks * SIM_BLOCK_BYTES;
		ret = min_run(t, blocks, o->check, &min) ? RC_FAIL : 0;
		for (size_t p = 0; p < o->n_policies && !ret; p++) {
			if (!strcmp(o->policies[p], "min")) {
				res[p] = min;
				continue;
			}
			sc.policy = o->policies[p];
			ret = store_run(t, &sc, &res[p]) ? RC_FAIL : 0;
		}
		if (ret)
			break;
		if (!o->json) {
			printf("\ncapacity %" PRIu64 " tokens = %" PRIu64 " blocks\n",
			       o->caps[c], blocks);
			printf("  %-8s %9s %14s %10s %7s\n", "policy", "hit ratio",
			       "compute saved", "evictions", "vs min");
			for (size_t p = 0; p < o->n_policies; p++)
				result_row(o->policies[p], &res[p], &min, t);
			fflush(stdout);
			continue;
		}
		arr = json_array();
		for (size_t p = 0; p < o->n_policies && arr; p++)
			if (json_array_append_new(arr, result_json(o->policies[p], &res[p],
								    &min, t))) {
				json_decref(arr);
				arr = NULL;
			}
		ret = emit_json(arr ? json_pack("{s:s, s:I, s:I, s:f, s:o}", "trace", t->path,
						"capacity_tokens", (json_int_t)o->caps[c],
						"capacity_blocks", (json_int_t)blocks,
						"ideal_hit_ratio",
						ratio((double)ideal.hits, (double)t->n_refs),
						"results", arr) : NULL) ? RC_FAIL : 0;
		fflush(stdout);
	}
	free(res);
	return ret;
}
