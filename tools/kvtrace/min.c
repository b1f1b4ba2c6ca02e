/*
 * min.c - the two caches kvtrace computes itself, over the flattened
 * trace: an infinite one (every id seen before) and Belady's MIN with
 * bypass, which needs the future (next_use) and so is no registered
 * policy. min_run() says why its cache stays prefix-closed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "tools/kvtrace/kvtrace_int.h"

/* ---- an infinite cache --------------------------------------------------- */

void ideal_run(const struct trace *t, struct result *res)
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
int min_run(const struct trace *t, uint64_t blocks, bool check,
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
