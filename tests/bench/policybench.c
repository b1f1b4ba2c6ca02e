/*
 * policybench.c - what each eviction policy costs per operation.
 *
 * For every registered policy and each resident count N (1 M and 10 M;
 * --quick: 10 k and 100 k) it inserts N nodes of varied size and cost,
 * then times a mixed loop that keeps N resident, with the store's calls:
 *   50% on_access of a random resident node;
 *   25% eviction churn: pick(1), on_remove of the victim, on_insert of a
 *       new node in its place (the tier stays full, as in a warm cache);
 *   15% hold flips: pin a random node (on_hold(true)); up to a ring of
 *       HOLD_RING pins, the oldest is released (on_hold(false));
 *   10% on_score of a random node with a score in [0, 1); policies
 *       without on_score get an on_access there instead.
 * Every policy sees the same random stream. Node memory is one malloc'd
 * array, so random accesses miss the caches at 10 M as they would in the
 * daemon; the figures are the policies' cost plus that. Each figure is one
 * timed run on a shared machine: compare policies within a run.
 *
 * Afterwards pick() is checked: with max = N in --quick (every unpinned
 * node, none pinned), with max = 64 otherwise.
 *
 * Output: a table, "figure:" lines (per policy, Mops/s at both sizes) and
 * a last line "kvpolicybench {json}" with <policy>_<size>_ops (ops/s) and
 * <policy>_<size>_insert (inserts/s).
 *
 * Exit status: 0, or 1 on an error (no memory, bad arguments, a pick that
 * breaks the contract). Low figures never fail it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evict/policy.h"
#include "lib/util.h"

#define HOLD_RING	1024	/* pins held at once, at most */
#define CHECK_MAX	64	/* pick() size checked in full runs */
#define MAX_RUNS	16

struct bnode {
	struct kv_evict_node node;
	bool pinned;
};

struct run {
	const char *policy;
	const char *size;	/* "1m", "10k", ... */
	size_t n;
	double insert_per_s;
	double ops_per_s;
	uint64_t evictions;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static bool bnode_evictable(const struct kv_evict_node *n, void *arg)
{
	return !kv_container_of(n, struct bnode, node)->pinned;
}

/* A new chunk in slot b: no history, a size of 64 KiB .. 1 MiB. */
static void bnode_fresh(struct bnode *b)
{
	uint64_t r = rnd();

	memset(b, 0, sizeof(*b));
	b->node.tokens = 256;
	b->node.position = (uint32_t)(r % 64) * 256;
	b->node.size = (1 + (r >> 8) % 16) << 16;
	b->node.cost = 1e-3 * (double)(1 + (r >> 16) % 1000);
}

static const char *size_name(size_t n, char *buf, size_t len)
{
	if (n % 1000000 == 0)
		snprintf(buf, len, "%zum", n / 1000000);
	else if (n % 1000 == 0)
		snprintf(buf, len, "%zuk", n / 1000);
	else
		snprintf(buf, len, "%zu", n);
	return buf;
}

/* Is out[0..cnt) a set of distinct unpinned nodes of ours? */
static bool pick_ok(struct kv_evict_node **out, size_t cnt,
		    const struct bnode *nodes, size_t n)
{
	for (size_t k = 0; k < cnt; k++) {
		const struct bnode *b = kv_container_of(out[k], struct bnode,
							node);

		if (b < nodes || b >= nodes + n || b->pinned)
			return false;
	}
	return true;
}

static int bench_one(const struct kv_evict_ops *ops, size_t n, uint64_t ops_n,
		     bool quick, struct run *res)
{
	struct kv_evict_conf conf = { .evictable = bnode_evictable };
	size_t ring[HOLD_RING];
	size_t ring_cap = n / 16 < HOLD_RING ? n / 16 : HOLD_RING;
	size_t ring_len = 0;
	size_t ring_head = 0;
	struct kv_evict_node **out = NULL;
	struct kv_evict_node *victim;
	struct bnode *nodes;
	uint64_t capacity = 0;
	uint64_t t0;
	uint64_t t1;
	size_t pinned = 0;
	size_t want;
	size_t cnt;
	void *state;
	int ret = -1;

	nodes = malloc(n * sizeof(*nodes));
	if (!nodes) {
		fprintf(stderr, "kvpolicybench: cannot allocate %zu nodes\n", n);
		return -1;
	}
	rng = 0x9e3779b97f4a7c15ull;	/* the same stream for every policy */
	for (size_t i = 0; i < n; i++) {
		bnode_fresh(&nodes[i]);
		capacity += nodes[i].node.size;
	}
	conf.capacity = capacity;	/* the tier is full */
	if (ops->init(&state, &conf)) {
		fprintf(stderr, "kvpolicybench: %s: init failed\n", ops->name);
		goto out_free;
	}

	t0 = kv_now_ns();
	for (size_t i = 0; i < n; i++)
		ops->on_insert(state, &nodes[i].node);
	t1 = kv_now_ns();
	res->insert_per_s = (double)n / ((double)(t1 - t0) / 1e9);

	res->evictions = 0;
	t0 = kv_now_ns();
	for (uint64_t op = 0; op < ops_n; op++) {
		uint64_t r = rnd();
		unsigned kind = (unsigned)(r % 100);
		struct bnode *b = &nodes[(r >> 8) % n];

		if (kind < 50) {
			ops->on_access(state, &b->node);
		} else if (kind < 75) {
			if (ops->pick(state, &victim, 1) != 1) {
				fprintf(stderr, "kvpolicybench: %s: no victim at op %" PRIu64 "\n",
					ops->name, op);
				goto out_fini;
			}
			ops->on_remove(state, victim);
			b = kv_container_of(victim, struct bnode, node);
			bnode_fresh(b);
			ops->on_insert(state, &b->node);
			res->evictions++;
		} else if (kind < 90) {
			if (b->pinned || !ring_cap)
				continue;
			b->pinned = true;
			if (ops->on_hold)
				ops->on_hold(state, &b->node, true);
			if (ring_len == ring_cap) {
				struct bnode *old = &nodes[ring[ring_head]];

				old->pinned = false;
				if (ops->on_hold)
					ops->on_hold(state, &old->node, false);
				ring[ring_head] = (size_t)(b - nodes);
				ring_head = (ring_head + 1) % ring_cap;
			} else {
				ring[ring_len++] = (size_t)(b - nodes);
			}
		} else if (ops->on_score) {
			ops->on_score(state, &b->node,
				      (float)(r >> 40) / (float)(1 << 24));
		} else {
			ops->on_access(state, &b->node);
		}
	}
	t1 = kv_now_ns();
	res->ops_per_s = (double)ops_n / ((double)(t1 - t0) / 1e9);

	/* the policy still answers to its contract */
	for (size_t i = 0; i < n; i++)
		pinned += nodes[i].pinned;
	want = quick ? n : CHECK_MAX;
	out = malloc(want * sizeof(*out));
	if (!out) {
		fprintf(stderr, "kvpolicybench: cannot allocate %zu pointers\n", want);
		goto out_fini;
	}
	cnt = ops->pick(state, out, want);
	if (quick)
		want = n - pinned;
	if (cnt != want || !pick_ok(out, cnt, nodes, n)) {
		fprintf(stderr, "kvpolicybench: %s: pick(%zu) gave %zu nodes, want %zu unpinned\n",
			ops->name, quick ? n : (size_t)CHECK_MAX, cnt, want);
		goto out_fini;
	}
	ret = 0;

out_fini:
	free(out);
	ops->fini(state);
out_free:
	free(nodes);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kvpolicybench [--quick] [--policy NAME] [--ops N]\n"
		   "  --quick     10 k and 100 k resident and a short loop (CI)\n"
		   "  --policy    only this policy (default: every registered one)\n"
		   "  --ops       operations in each timed loop\n");
}

int main(int argc, char **argv)
{
	static const size_t full_sizes[] = { 1000000, 10000000 };
	static const size_t quick_sizes[] = { 10000, 100000 };
	static char names[MAX_RUNS][24];
	const struct kv_evict_ops *const *list;
	const struct kv_evict_ops *only = NULL;
	struct run runs[MAX_RUNS];
	const size_t *sizes;
	size_t npol = kv_evict_list(&list);
	size_t nruns = 0;
	uint64_t ops_n = 0;
	bool quick = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
			only = kv_evict_find(argv[++i]);
			if (!only) {
				fprintf(stderr, "kvpolicybench: unknown policy '%s'\n", argv[i]);
				return 1;
			}
		} else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			if (kv_parse_u64(argv[++i], 1, UINT64_MAX, &ops_n)) {
				fprintf(stderr, "kvpolicybench: bad --ops '%s'\n", argv[i]);
				return 1;
			}
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 1;
		}
	}
	sizes = quick ? quick_sizes : full_sizes;
	if (!ops_n)
		ops_n = quick ? 200000 : 4000000;

	printf("kvpolicybench: eviction policy cost (%ld cores online)\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("method: %" PRIu64 " mixed ops per run with N resident: 50%% access, 25%% "
	       "pick(1)+remove+insert,\n        15%% hold flips (<= %d pinned), 10%% score "
	       "(access where the policy has no on_score)\n", ops_n, HOLD_RING);
	printf("policy  resident  insert Mops/s  mixed Mops/s  ns/op  evictions\n");
	for (size_t p = 0; p < npol; p++) {
		if (only && list[p] != only)
			continue;
		for (size_t s = 0; s < 2; s++) {
			struct run *r = &runs[nruns];

			if (nruns == MAX_RUNS)
				break;
			r->policy = list[p]->name;
			r->n = sizes[s];
			r->size = size_name(sizes[s], names[nruns], sizeof(names[0]));
			if (bench_one(list[p], sizes[s], ops_n, quick, r))
				return 1;
			printf("%-7s %8zu  %13.2f  %12.2f  %5.0f  %9" PRIu64 "\n",
			       r->policy, r->n, r->insert_per_s / 1e6,
			       r->ops_per_s / 1e6, 1e9 / r->ops_per_s, r->evictions);
			fflush(stdout);
			nruns++;
		}
	}
	for (size_t k = 0; k + 1 < nruns; k += 2)
		printf("figure: %s mixed ops %.2f Mops/s at %s resident, %.2f Mops/s at %s\n",
		       runs[k].policy, runs[k].ops_per_s / 1e6, runs[k].size,
		       runs[k + 1].ops_per_s / 1e6, runs[k + 1].size);
	printf("kvpolicybench {");
	for (size_t k = 0; k < nruns; k++)
		printf("%s\"%s_%s_ops\":%.0f,\"%s_%s_insert\":%.0f", k ? "," : "",
		       runs[k].policy, runs[k].size, runs[k].ops_per_s,
		       runs[k].policy, runs[k].size, runs[k].insert_per_s);
	printf("}\n");
	return 0;
}
