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
 *
 * Exit status: 0; 1 a failed check (live and simulation differ, the store
 * broke an invariant) or a runtime error; 2 bad usage or a bad trace.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvc.h"
#include "evict/policy.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "kvstore/store.h"
#include "lib/util.h"

#define NONE		UINT32_MAX	/* no parent; never used again */
#define MAX_LINE	(64u << 20)	/* bytes of one trace line */
#define MAX_REQ_IDS	(1u << 20)	/* ids in one request */
#define MAX_REFS	(1ull << 28)	/* ids in the whole trace */
#define MAX_REQS	(UINT32_MAX - 1)	/* request indices fit next_use */
#define MAX_POLICIES	16
#define MAX_CAPS	64
#define MAX_BLOCK_TOKENS (1u << 20)
#define MAX_CAP_TOKENS	(1ull << 60)
#define SIM_BLOCK_BYTES	64		/* the smallest granule */
#define LIVE_NS		"kvtrace"

enum { RC_OK = 0, RC_FAIL = 1, RC_USAGE = 2 };

struct opts {
	const char *trace;
	const char *live;		/* socket, or NULL: simulate */
	uint64_t caps[MAX_CAPS];	/* tokens */
	size_t n_caps;
	const char *policies[MAX_POLICIES];
	size_t n_policies;
	char *policy_buf;		/* owns the names above */
	uint32_t block_tokens;
	uint64_t block_bytes;		/* live */
	uint64_t max_uncommitted;	/* live; 0: half the daemon's DRAM */
	struct kv_cost_model model;
	bool model_set;
	uint64_t max_requests;		/* 0: all */
	bool json;
	bool check;
};

/*
 * The trace, flattened: request r references ids[off[r] .. off[r + 1]).
 * Each id also gets a dense number (first-seen order) so per-block state is
 * an array, and each reference the index of the next request that
 * references the same id (NONE: never again).
 */
struct trace {
	const char *path;
	size_t n_req;
	size_t *off;
	uint64_t *ids;
	uint32_t *dense;
	uint32_t *next_use;
	size_t n_refs;
	size_t max_len;
	uint32_t n_distinct;
	uint32_t *parent;		/* by dense id: first-seen parent */
	size_t inconsistent;		/* references with another parent */
};

/* Open addressing, id -> dense id; ids are < 2^63, so ~0 marks empty. */
struct idmap {
	uint64_t *keys;
	uint32_t *vals;
	size_t cap;			/* a power of two */
	size_t n;
};

/* Room in the trace's arrays while it loads (they grow by doubling). */
struct trace_caps {
	size_t refs;			/* ids[], dense[] */
	size_t reqs;			/* off[] */
	size_t ids;			/* parent[] */
};

struct result {
	uint64_t hits;
	double saved;			/* cost of the hit blocks */
	uint64_t evictions;
	uint64_t refused[5];		/* EEXIST, ENOPARENT, EFULL, EUNCOMMITTED, other */
};

struct sim_conf {
	const char *policy;
	uint64_t blocks;
	uint64_t block_bytes;
	uint64_t dram_bytes;
	uint64_t max_uncommitted;
	struct kv_cost_model model;
	uint32_t block_tokens;
	bool check;
};

static double *cost_sum;		/* cost_sum[k]: blocks 0 .. k-1 */
static double total_cost;

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

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("kvtrace: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static struct kv_wire_key key_of(uint64_t id)
{
	return (struct kv_wire_key){ .lo = id * 0x9e3779b97f4a7c15ull, .hi = id + 1 };
}

static double ratio(double num, double den)
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

/* ---- the trace ---------------------------------------------------------- */

static void idmap_grow(struct idmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	uint64_t *keys = kv_xmalloc(cap * sizeof(*keys));
	uint32_t *vals = kv_xmalloc(cap * sizeof(*vals));

	memset(keys, 0xff, cap * sizeof(*keys));
	for (size_t i = 0; i < m->cap; i++) {
		size_t h;

		if (m->keys[i] == UINT64_MAX)
			continue;
		h = (m->keys[i] * 0x9e3779b97f4a7c15ull) >> 20 & (cap - 1);
		while (keys[h] != UINT64_MAX)
			h = (h + 1) & (cap - 1);
		keys[h] = m->keys[i];
		vals[h] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
}

/* The dense id of id, a new one (n) if it was not there. */
static uint32_t idmap_get(struct idmap *m, uint64_t id, bool *added)
{
	size_t h;

	if (2 * (m->n + 1) > m->cap)
		idmap_grow(m);
	h = (id * 0x9e3779b97f4a7c15ull) >> 20 & (m->cap - 1);
	while (m->keys[h] != UINT64_MAX) {
		if (m->keys[h] == id) {
			*added = false;
			return m->vals[h];
		}
		h = (h + 1) & (m->cap - 1);
	}
	m->keys[h] = id;
	m->vals[h] = (uint32_t)m->n;
	*added = true;
	return (uint32_t)m->n++;
}

/*
 * Read one line of at most MAX_LINE bytes into *buf (without the newline).
 * Returns 1, 0 at end of file, or -EFBIG / -EIO.
 */
static int read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
	size_t n = 0;
	int ch;

	while ((ch = getc_unlocked(f)) != EOF && ch != '\n') {
		if (n == MAX_LINE)
			return -EFBIG;
		if (n + 1 >= *cap) {
			*cap = *cap ? *cap * 2 : 4096;
			*buf = kv_xrealloc(*buf, *cap);
		}
		(*buf)[n++] = (char)ch;
	}
	if (ferror(f))
		return -EIO;
	if (ch == EOF && n == 0)
		return 0;
	if (!*buf) {
		*cap = 1;
		*buf = kv_xmalloc(1);
	}
	(*buf)[n] = '\0';
	*len = n;
	return 1;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Check one parsed line and append its ids. 0, or -EINVAL after a message. */
static int add_request(struct trace *t, struct idmap *m, struct trace_caps *tc,
		       json_t *doc, const char *where, uint32_t block_tokens)
{
	json_t *ids = json_is_object(doc) ? json_object_get(doc, "hash_ids") : NULL;
	size_t n, i;
	json_t *v;

	if (!json_is_object(doc)) {
		fail("%s: not a JSON object", where);
		return -EINVAL;
	}
	if (!json_is_array(ids)) {
		fail("%s: %s", where, ids ? "\"hash_ids\" is not an array" :
		     "no \"hash_ids\" array");
		return -EINVAL;
	}
	n = json_array_size(ids);
	if (n > MAX_REQ_IDS) {
		fail("%s: %zu hash_ids, more than the %u a request may have", where, n,
		     MAX_REQ_IDS);
		return -EINVAL;
	}
	if ((uint64_t)n * block_tokens > UINT32_MAX) {
		fail("%s: %zu blocks of %u tokens pass 2^32 token positions", where, n,
		     block_tokens);
		return -EINVAL;
	}
	if (t->n_refs + n > MAX_REFS) {
		fail("%s: the trace passes %llu ids in all", where, (unsigned long long)MAX_REFS);
		return -EINVAL;
	}
	if (t->n_req == MAX_REQS) {
		fail("%s: more than %u requests", where, MAX_REQS);
		return -EINVAL;
	}
	if (t->n_refs + n > tc->refs) {
		while (t->n_refs + n > tc->refs)
			tc->refs = tc->refs ? tc->refs * 2 : 1 << 16;
		t->ids = kv_xrealloc(t->ids, tc->refs * sizeof(*t->ids));
		t->dense = kv_xrealloc(t->dense, tc->refs * sizeof(*t->dense));
	}
	json_array_foreach(ids, i, v) {
		json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;

		if (id < 0) {
			fail("%s: hash_ids[%zu] is not an id (a non-negative integer below 2^63)",
			     where, i);
			return -EINVAL;
		}
		t->ids[t->n_refs + i] = (uint64_t)id;
	}
	for (i = 0; i < n; i++) {
		size_t r = t->n_refs + i;
		uint32_t p = i ? t->dense[r - 1] : NONE;
		bool added;
		uint32_t d = idmap_get(m, t->ids[r], &added);

		if (added) {
			if (d == NONE) {
				fail("%s: more than %u distinct ids", where, NONE - 1);
				return -EINVAL;
			}
			if (d == tc->ids) {
				tc->ids = tc->ids ? 2 * tc->ids : 1024;
				t->parent = kv_xrealloc(t->parent, tc->ids * sizeof(*t->parent));
			}
			t->parent[d] = p;
		} else if (t->parent[d] != p) {
			t->inconsistent++;
		}
		t->dense[r] = d;
	}
	t->n_refs += n;
	if (n > t->max_len)
		t->max_len = n;
	if (t->n_req + 2 > tc->reqs) {
		tc->reqs = 2 * (t->n_req + 2);
		t->off = kv_xrealloc(t->off, tc->reqs * sizeof(*t->off));
	}
	t->off[++t->n_req] = t->n_refs;
	return 0;
}

static void trace_free(struct trace *t)
{
	free(t->off);
	free(t->ids);
	free(t->dense);
	free(t->next_use);
	free(t->parent);
}

/* Load and check the trace; fills next_use. 0 or RC_USAGE after a message. */
static int trace_load(struct trace *t, const struct opts *o)
{
	struct idmap m = { 0 };
	struct trace_caps tc = { .reqs = 1 };
	size_t cap = 0, len = 0, line = 0;
	uint32_t *last;
	char *buf = NULL;
	char where[4200];
	int ret = 0;
	FILE *f;

	memset(t, 0, sizeof(*t));
	t->path = o->trace;
	t->off = kv_xcalloc(1, sizeof(*t->off));
	f = fopen(o->trace, "r");
	if (!f) {
		fail("cannot open '%s': %s", o->trace, strerror(errno));
		return RC_USAGE;
	}
	while (!o->max_requests || t->n_req < o->max_requests) {
		json_error_t err;
		json_t *doc;

		ret = read_line(f, &buf, &cap, &len);
		if (ret <= 0)
			break;
		line++;
		ret = 0;
		snprintf(where, sizeof(where), "%s:%zu", o->trace, line);
		if (blank(buf, len))
			continue;
		doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
		if (!doc) {
			fail("%s:%zu: not valid JSON: %s (column %d)", o->trace, line,
			     err.text, err.column);
			ret = -EINVAL;
			break;
		}
		ret = add_request(t, &m, &tc, doc, where, o->block_tokens);
		json_decref(doc);
		if (ret)
			break;
	}
	if (ret == -EFBIG)
		fail("%s:%zu: line longer than %u bytes", o->trace, line + 1, MAX_LINE);
	else if (ret == -EIO)
		fail("cannot read '%s'", o->trace);
	fclose(f);
	free(buf);
	free(m.keys);
	free(m.vals);
	if (ret)
		return RC_USAGE;
	if (t->n_req == 0) {
		fail("%s: no requests", o->trace);
		return RC_USAGE;
	}
	t->n_distinct = (uint32_t)m.n;

	/* Next use: walk backwards, remembering where each id was last seen;
	 * a request's own repeats of an id do not count as its next use. */
	t->next_use = kv_xmalloc((t->n_refs ? t->n_refs : 1) * sizeof(*t->next_use));
	last = kv_xmalloc((t->n_distinct ? t->n_distinct : 1) * sizeof(*last));
	memset(last, 0xff, (t->n_distinct ? t->n_distinct : 1) * sizeof(*last));
	for (size_t r = t->n_req; r-- > 0;) {
		for (size_t i = t->off[r]; i < t->off[r + 1]; i++)
			t->next_use[i] = last[t->dense[i]];
		for (size_t i = t->off[r]; i < t->off[r + 1]; i++)
			last[t->dense[i]] = (uint32_t)r;
	}
	free(last);
	if (t->inconsistent)
		fprintf(stderr, "kvtrace: warning: %s is not prefix-chained: %zu references "
			"put an id after another parent than the first time; min is then no "
			"longer prefix-closed and --check skips it\n", o->trace, t->inconsistent);
	return 0;
}

static void costs_init(const struct trace *t, const struct kv_cost_model *m,
		       uint32_t block_tokens)
{
	free(cost_sum);
	cost_sum = kv_xmalloc((t->max_len + 1) * sizeof(*cost_sum));
	cost_sum[0] = 0;
	for (size_t i = 0; i < t->max_len; i++)
		cost_sum[i + 1] = cost_sum[i] +
			kv_cost_compute(m, block_tokens, (uint32_t)(i * block_tokens));
	total_cost = 0;
	for (size_t r = 0; r < t->n_req; r++)
		total_cost += cost_sum[t->off[r + 1] - t->off[r]];
}

/* ---- an infinite cache --------------------------------------------------- */

static void ideal_run(const struct trace *t, struct result *res)
{
	bool *seen = kv_xcalloc(t->n_distinct ? t->n_distinct : 1, sizeof(*seen));

	memset(res, 0, sizeof(*res));
	for (size_t r = 0; r < t->n_req; r++) {
		size_t i = t->off[r], lead;

		while (i < t->off[r + 1] && seen[t->dense[i]])
			i++;
		lead = i - t->off[r];
		res->hits += lead;
		res->saved += cost_sum[lead];
		for (i = t->off[r]; i < t->off[r + 1]; i++)
			seen[t->dense[i]] = true;
	}
	free(seen);
}

/* ---- Belady's MIN with bypass --------------------------------------------- */

/* A max-heap of dense ids by key[], with each id's slot in pos[]. */
struct heap {
	uint32_t *v;
	uint32_t n;
	uint32_t *pos;			/* by dense id; NONE: not in the heap */
	uint64_t *key;			/* by dense id */
};

static void heap_set(struct heap *h, uint32_t i, uint32_t d)
{
	h->v[i] = d;
	h->pos[d] = i;
}

static void heap_fix(struct heap *h, uint32_t i)
{
	uint32_t d = h->v[i];
	uint64_t k = h->key[d];

	while (i > 0 && h->key[h->v[(i - 1) / 2]] < k) {
		heap_set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->key[h->v[c + 1]] > h->key[h->v[c]])
			c++;
		if (h->key[h->v[c]] <= k)
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, d);
}

static void heap_push(struct heap *h, uint32_t d, uint64_t key)
{
	h->key[d] = key;
	heap_set(h, h->n++, d);
	heap_fix(h, h->n - 1);
}

static void heap_remove(struct heap *h, uint32_t d)
{
	uint32_t i = h->pos[d];

	h->pos[d] = NONE;
	if (i == --h->n)
		return;
	heap_set(h, i, h->v[h->n]);
	heap_fix(h, i);
}

/* Farther next use first; at equal next use, the deeper block. */
static uint64_t min_key(uint32_t next_use, size_t depth)
{
	return (uint64_t)next_use << 32 | (uint32_t)depth;
}

/* Every cached block's parent is cached. Returns how many are not. */
static size_t min_orphans(const struct trace *t, const bool *cached)
{
	size_t bad = 0;

	for (uint32_t d = 0; d < t->n_distinct; d++)
		bad += cached[d] && t->parent[d] != NONE && !cached[t->parent[d]];
	return bad;
}

/*
 * Belady's MIN with bypass over a cache of `blocks` blocks. A request's
 * hits are its leading cached ids, as for the store. Its own cached blocks
 * leave the heap for the duration (never a victim of their own request);
 * then each block not cached, in order, goes in while there is room;
 * otherwise the candidate victim is the cached block used farthest in the
 * future, the deeper one on a tie. If the incoming block is used no sooner
 * (its (next use, depth) >= the victim's), keeping the victim is at least
 * as good: bypass it and the rest of the request, whose blocks are used no
 * sooner either (a child is used only with its parent). Else evict the
 * victim and insert.
 *
 * Why the cache stays prefix-closed (on a prefix-chained trace): every
 * request that uses a child uses its parent, so a child's next use is never
 * earlier than its parent's, and its depth is larger; a cached child thus
 * always outranks its parent as a victim, unless it belongs to the current
 * request, and then so does the parent. So a victim never has a cached
 * child, and a block goes in only after its parent (the leading hits, then
 * the misses in order, stopping at the first bypass). --check asserts it.
 */
static int min_run(const struct trace *t, uint64_t blocks, bool check,
		   struct result *res)
{
	size_t nd = t->n_distinct ? t->n_distinct : 1;
	bool *cached = kv_xcalloc(nd, sizeof(*cached));
	struct heap h = {
		.v = kv_xmalloc(nd * sizeof(*h.v)),
		.pos = kv_xmalloc(nd * sizeof(*h.pos)),
		.key = kv_xmalloc(nd * sizeof(*h.key)),
	};
	uint64_t n_cached = 0;
	int ret = 0;

	memset(h.pos, 0xff, nd * sizeof(*h.pos));
	memset(res, 0, sizeof(*res));
	for (size_t r = 0; r < t->n_req && !ret; r++) {
		size_t b = t->off[r], e = t->off[r + 1], i = b;

		while (i < e && cached[t->dense[i]])
			i++;
		res->hits += i - b;
		res->saved += cost_sum[i - b];
		for (i = b; i < e; i++)
			if (h.pos[t->dense[i]] != NONE)
				heap_remove(&h, t->dense[i]);
		for (i = b; i < e; i++) {
			uint32_t d = t->dense[i], v;

			if (cached[d])
				continue;
			if (n_cached < blocks) {
				cached[d] = true;
				n_cached++;
				continue;
			}
			if (h.n == 0)
				break;	/* the request alone fills the cache */
			v = h.v[0];
			if (min_key(t->next_use[i], i - b) >= h.key[v])
				break;	/* bypass */
			heap_remove(&h, v);
			cached[v] = false;
			res->evictions++;
			cached[d] = true;
		}
		for (i = b; i < e; i++) {
			uint32_t d = t->dense[i];

			if (cached[d] && h.pos[d] == NONE)
				heap_push(&h, d, min_key(t->next_use[i], i - b));
		}
		if (check && !t->inconsistent && min_orphans(t, cached)) {
			fail("min: after request %zu, %zu cached blocks have no cached parent",
			     r + 1, min_orphans(t, cached));
			ret = -EPROTO;
		}
	}
	if (!ret && !t->inconsistent && min_orphans(t, cached)) {
		fail("min: %zu cached blocks have no cached parent at the end",
		     min_orphans(t, cached));
		ret = -EPROTO;
	}
	free(cached);
	free(h.v);
	free(h.pos);
	free(h.key);
	return ret;
}

/* ---- the store ------------------------------------------------------------------ */

static void tally(struct result *res, int status)
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
	struct kv_wire_entry e[256];
	struct kv_wire_tier_stats ts[KV_TIER_MAX];
	struct kv_wire_stats g;
	uint64_t cursor = 0, n = 0, orphans = 0;
	uint32_t got;

	do {
		got = kv_store_ls(s, 0, KV_TIER_NONE, any_ns, NULL, &cursor, e,
				  KV_ARRAY_SIZE(e));
		for (uint32_t i = 0; i < got; i++) {
			struct kv_wire_entry pe;

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

struct replay_buf {
	struct kv_wire_key *keys;
	struct kvc_key *ckeys;		/* live: the same keys, as libkvc's */
	uint8_t *tiers;
	uint32_t *miss;
	bool *ok;
};

static void replay_buf_init(struct replay_buf *rb, size_t n)
{
	n = n ? n : 1;
	rb->keys = kv_xmalloc(n * sizeof(*rb->keys));
	rb->ckeys = kv_xmalloc(n * sizeof(*rb->ckeys));
	rb->tiers = kv_xmalloc(n);
	rb->miss = kv_xmalloc(n * sizeof(*rb->miss));
	rb->ok = kv_xmalloc(n * sizeof(*rb->ok));
}

static void replay_buf_release(struct replay_buf *rb)
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
			struct kv_wire_alloc a = {
				.key = rb->keys[i],
				.bytes = sc->block_bytes,
				.tokens = sc->block_tokens,
				.position = i * sc->block_tokens,
			};
			uint64_t off;
			int ret;

			if (i > 0) {
				a.parent = rb->keys[i - 1];
				a.flags = KV_ALLOC_PARENT;
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
static int store_run(const struct trace *t, const struct sim_conf *sc,
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
	struct kv_wire_tier_stats ts[KV_TIER_MAX];
	struct kv_wire_stats g;
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

static int emit_json(json_t *doc)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int ret = s && puts(s) != EOF ? 0 : -EIO;

	if (!s)
		fail("cannot build the JSON output");
	free(s);
	json_decref(doc);
	return ret;
}

static int simulate(const struct opts *o, const struct trace *t)
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
		struct kv_wire_key k = key_of(ids[i]);

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

static int live(const struct opts *o, const struct trace *t)
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
