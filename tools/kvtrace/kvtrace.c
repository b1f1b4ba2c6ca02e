/*
 * kvtrace.c - replay a request trace: hit ratio against capacity for each
 * eviction policy, next to Belady's offline optimum and an infinite cache.
 *
 *   kvtrace --trace FILE --capacity-tokens N[,N...] --policies P[,P...]
 *           [--block-tokens 512] [--model d:a:b] [--requests N] [--json]
 *           [--check]
 *   kvtrace --trace FILE --live SOCKET [--block-tokens 512]
 *           [--block-bytes 4096] [--max-uncommitted BYTES] [--requests N]
 *           [--json] [--check]
 *   kvtrace --list-policies
 *
 * The trace is JSON lines, {"timestamp": ms, "input_length": tokens,
 * "output_length": tokens, "hash_ids": [...]}: one id per block of
 * --block-tokens tokens, prefix-chained (equal ids mean equal prefixes).
 * Only hash_ids is read. The file is untrusted: a bad line stops the run
 * with its line number (exit 2), and sizes are capped (MAX_* below).
 *
 * Definitions (../shared/TESTING.md, "Trace replay"): a request's hits are
 * its leading ids found cached when it arrives; hit ratio = hits / ids
 * referenced. Compute-saved ratio weighs each block by the prefill work it
 * stands for, kv_cost_compute(model, block_tokens, i * block_tokens) for
 * the block at depth i, so deep hits count more. The ideal ratio is that of
 * an infinite cache (the set of ids seen before).
 *
 * Simulation runs the daemon's own store (kvstore/store.h), not a model of
 * it: per (capacity, policy) a store of capacity / block_tokens blocks of
 * 64 bytes each (one granule, so capacity in blocks is exact), and per
 * request the store calls a kvstored performs for a libkvc client doing
 * kvc_lookup() then kvc_put_batch() of the blocks found missing: LOOKUP of
 * every id (split as libkvc splits it, KV_PROTO_MAX_BATCH keys a message),
 * then ALLOC of each missing block in order (parent: the previous id), then
 * COMMIT of those allocated, batch by batch. A refused ALLOC (-KV_EFULL,
 * -KV_ENOPARENT after an earlier refusal, -EEXIST) skips that block, as it
 * would for the client. A capacity above the trace's distinct blocks is
 * simulated at that many blocks: nothing is ever evicted either way.
 *
 * "min" is Belady's offline optimum with bypass, computed here (it needs
 * the future, so it is no registered policy); it is always computed, so
 * ratio_to_min is always reported, and it is listed as a row when asked
 * for. See min_run() for the rule and why its cache stays prefix-closed.
 *
 * Live mode replays the same calls through libkvc against a running
 * kvstored (capacity and policy from its DRAM tier's stats, after
 * kvc_flush(DROP) empties the tier), then simulates the same capacity in
 * blocks of --block-bytes with the same policy, and exits 0 only if the
 * hits and evictions agree exactly. Exactness assumes what the client
 * cannot see: the daemon's default max_batch, max_msg and max_uncommitted
 * (half its DRAM; --max-uncommitted otherwise), its default cost model,
 * --block-bytes a multiple of its allocation granule (checked), no other
 * client at work, and a policy whose state starts fresh (a daemon just
 * started; a flush drops chunks, not a policy's clock).
 * Exit status: 0; 1 a failed check (live and simulation differ, the store
 * broke an invariant) or a runtime error; 2 bad usage or a bad trace.
 *
 * This file holds the options and main(); kvtrace_int.h lists the other
 * parts (trace.c, min.c, sim.c, live.c).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evict/policy.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tools/kvtrace/kvtrace_int.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvtrace --trace FILE --capacity-tokens N[,N...] --policies P[,P...]\n"
		"               [--block-tokens 512] [--model d:a:b] [--requests N]\n"
		"               [--json] [--check]\n"
		"       kvtrace --trace FILE --live SOCKET [--block-tokens 512]\n"
		"               [--block-bytes 4096] [--max-uncommitted BYTES]\n"
		"               [--requests N] [--json] [--check]\n"
		"       kvtrace --list-policies\n"
		"\n"
		"Replays a JSON-lines trace of {\"hash_ids\": [...]} requests through the\n"
		"store and reports hit ratio, compute-saved ratio and evictions per policy\n"
		"and capacity, against Belady's optimum (min) and an infinite cache.\n"
		"Policies: any registered one (--list-policies) and min.\n"
		"--live replays through a running kvstored and checks that the simulation\n"
		"of the same capacity and policy gives the same hits (exit 1 if not).\n"
		"--check verifies the caches stay prefix-closed after every request.\n");
}

void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("kvtrace: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct kv_key key_of(uint64_t id)
{
	return (struct kv_key){ .lo = id * 0x9e3779b97f4a7c15ull, .hi = id + 1 };
}

double ratio(double num, double den)
{
	return den > 0 ? num / den : 0;
}

/* ---- options ------------------------------------------------------------ */

static int parse_caps(struct opts *o, const char *arg)
{
	char *copy = kv_xstrdup(arg), *save = NULL, *tok;
	int ret = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (o->n_caps == MAX_CAPS) {
			fail("--capacity-tokens: at most %d capacities", MAX_CAPS);
			ret = -EINVAL;
			break;
		}
		if (kv_parse_u64(tok, 1, MAX_CAP_TOKENS, &v)) {
			fail("--capacity-tokens: '%s' is not a token count (1 .. 2^60)", tok);
			ret = -EINVAL;
			break;
		}
		o->caps[o->n_caps++] = v;
	}
	if (!ret && !o->n_caps) {
		fail("--capacity-tokens: no capacity given");
		ret = -EINVAL;
	}
	free(copy);
	return ret;
}

static void list_policies(FILE *f, const char *sep)
{
	const struct kv_evict_ops *const *tab;
	size_t n = kv_evict_list(&tab);

	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", tab[i]->name, sep);
	fprintf(f, "min");
}

static int parse_policies(struct opts *o, const char *arg)
{
	char *save = NULL, *tok;

	free(o->policy_buf);
	o->policy_buf = kv_xstrdup(arg);
	o->n_policies = 0;
	for (tok = strtok_r(o->policy_buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (o->n_policies == MAX_POLICIES) {
			fail("--policies: at most %d policies", MAX_POLICIES);
			return -EINVAL;
		}
		if (strcmp(tok, "min") && !kv_evict_find(tok)) {
			fputs("kvtrace: --policies: unknown policy '", stderr);
			fputs(tok, stderr);
			fputs("' (this build has: ", stderr);
			list_policies(stderr, ", ");
			fputs(")\n", stderr);
			return -EINVAL;
		}
		o->policies[o->n_policies++] = tok;
	}
	if (!o->n_policies) {
		fail("--policies: no policy given");
		return -EINVAL;
	}
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || !isfinite(*out) || *out < 0 ? -EINVAL : 0;
}

/* d:a:b, as struct kv_cost_model and kv_store_set_model() take it. */
static int parse_model(struct opts *o, const char *arg)
{
	char *copy = kv_xstrdup(arg), *a, *b;
	uint64_t d;
	int ret = -EINVAL;

	a = strchr(copy, ':');
	b = a ? strchr(a + 1, ':') : NULL;
	if (b) {
		*a++ = '\0';
		*b++ = '\0';
		if (!kv_parse_u64(copy, 1, UINT32_MAX, &d) &&
		    !parse_double(a, &o->model.a) && !parse_double(b, &o->model.b) &&
		    o->model.a <= 1e9 && o->model.b <= 1e9) {
			o->model.hidden = (uint32_t)d;
			o->model_set = true;
			ret = 0;
		}
	}
	if (ret)
		fail("--model: '%s' is not d:a:b (hidden size >= 1, then a and b in [0, 1e9])",
		     arg);
	free(copy);
	return ret;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "capacity-tokens", required_argument, NULL, 'c' },
		{ "policies", required_argument, NULL, 'p' },
		{ "block-tokens", required_argument, NULL, 'b' },
		{ "block-bytes", required_argument, NULL, 'B' },
		{ "max-uncommitted", required_argument, NULL, 'U' },
		{ "model", required_argument, NULL, 'm' },
		{ "requests", required_argument, NULL, 'n' },
		{ "live", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "check", no_argument, NULL, 'k' },
		{ "list-policies", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct opts){
		.block_tokens = 512,
		.block_bytes = 4096,
		.model = KV_COST_MODEL_DEFAULT,
	};
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->trace = optarg;
			break;
		case 'c':
			if (parse_caps(o, optarg))
				return RC_USAGE;
			break;
		case 'p':
			if (parse_policies(o, optarg))
				return RC_USAGE;
			break;
		case 'b':
			if (kv_parse_u64(optarg, 1, MAX_BLOCK_TOKENS, &v)) {
				fail("--block-tokens: '%s' is not in 1 .. %u", optarg,
				     MAX_BLOCK_TOKENS);
				return RC_USAGE;
			}
			o->block_tokens = (uint32_t)v;
			break;
		case 'B':
			if (kv_parse_size(optarg, &v) || v == 0 || v % 64 || v > (1ull << 40)) {
				fail("--block-bytes: '%s' is not a multiple of 64 up to 1T", optarg);
				return RC_USAGE;
			}
			o->block_bytes = v;
			break;
		case 'U':
			if (kv_parse_size(optarg, &v) || v == 0) {
				fail("--max-uncommitted: '%s' is not a size", optarg);
				return RC_USAGE;
			}
			o->max_uncommitted = v;
			break;
		case 'm':
			if (parse_model(o, optarg))
				return RC_USAGE;
			break;
		case 'n':
			if (kv_parse_u64(optarg, 1, MAX_REQS, &v)) {
				fail("--requests: '%s' is not a request count", optarg);
				return RC_USAGE;
			}
			o->max_requests = v;
			break;
		case 'l':
			o->live = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'k':
			o->check = true;
			break;
		case 'L':
			list_policies(stdout, "\n");
			putchar('\n');
			return -1;
		case 'h':
			usage(stdout);
			return -1;
		default:
			if (optopt)
				fail("option '%s' needs a value", argv[optind - 1]);
			else
				fail("unknown option '%s'", argv[optind - 1]);
			usage(stderr);
			return RC_USAGE;
		}
	}
	if (optind < argc) {
		fail("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return RC_USAGE;
	}
	if (!o->trace) {
		fail("--trace is required");
		usage(stderr);
		return RC_USAGE;
	}
	if (o->live) {
		if (o->n_caps || o->n_policies || o->model_set) {
			fail("--live takes the daemon's capacity, policy and cost model: "
			     "drop --capacity-tokens, --policies and --model");
			return RC_USAGE;
		}
	} else if (!o->n_caps || !o->n_policies) {
		fail("--capacity-tokens and --policies are required (or --live)");
		usage(stderr);
		return RC_USAGE;
	}
	return RC_OK;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct trace t;
	int ret;

	ret = parse_opts(&o, argc, argv);
	if (ret) {
		free(o.policy_buf);
		return ret < 0 ? 0 : ret;
	}
	kv_log_parse("warn");
	ret = trace_load(&t, &o);
	if (!ret) {
		costs_init(&t, &o.model, o.block_tokens);
		ret = o.live ? live(&o, &t) : simulate(&o, &t);
	}
	trace_free(&t);
	free(cost_sum);
	free(o.policy_buf);
	if (fflush(stdout) == EOF) {
		fail("cannot write the output: %s", strerror(errno));
		ret = RC_FAIL;
	}
	return ret;
}
