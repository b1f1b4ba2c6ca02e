/*
 * gdsf.c - Greedy-Dual-Size-Frequency eviction.
 *
 * A node's priority (prio) is H = L + F * C / S: F its uses (the carried
 * freq, at least 1), C what keeping it saves (cost), S its bytes (size).
 * The victim is the node with the smallest H. L is the policy's clock: it
 * rises to the H of each victim, so a node that is not used again sinks
 * below the nodes used after it, however valuable it was.
 *
 * Evictable nodes sit in a binary min-heap on prio, in an array of slots
 * (the key and the node) that on_insert() and on_hold() grow, never pick();
 * heap_idx is a node's slot. Keeping the key in the slot lets a sift
 * compare children without touching their nodes. Held nodes
 * (evictable() false at on_insert(), or on_hold(n, true) since) sit on a
 * list (lib/list.h), off the heap, and come back with a
 * fresh H = L + F * C / S when released, as if just used. So pick() copies
 * heap slots, never skips, and never calls evictable(). Insert, access,
 * remove and hold are O(log n); pick is O(max).
 *
 * L rises only when the node removed is the heap top: the core evicts
 * pick()'s out[0]; a node deleted from the middle ages nobody. As L grows,
 * F * C / S loses bits against it, so once L is 2^32 times the running
 * geometric mean of F * C / S, L is subtracted from every heap prio and
 * restarts at 0. The threshold is relative because C has no fixed unit
 * (prefill TFLOPs, or seconds of reload): what matters is how many bits of
 * F * C / S survive next to L. A uniform shift keeps the heap order (for
 * prio >= L the subtraction is monotonic): nothing is re-sorted. Held
 * nodes get a fresh H on release, so the shift skips them. It costs
 * O(heap) and runs at most once per (nodes) operations.
 *
 * Invariants: flags is GDSF_HEAP or GDSF_HELD while a node is inserted and
 * 0 after on_remove(); heap[i].n->heap_idx == i and heap[i].prio ==
 * heap[i].n->prio; every slot's prio is >= its parent's and >= L; freq >= 1
 * while inserted.
 * Locking: none; runs on the loop thread only (DESIGN.md section 3).
 * Ownership: nodes are borrowed from the core between on_insert() and
 * on_remove(); the state and its heap array are owned by the caller of
 * init() and freed by fini().
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "evict/policy.h"
#include "lib/list.h"
#include "lib/util.h"

#define SHIFT_BITS	32	/* L / mean(F * C / S) that triggers a shift */
#define MEAN_WEIGHT	64	/* the running mean's window, in updates */

enum gdsf_flags {
	GDSF_HEAP = 1 << 0,	/* in heap[heap_idx] */
	GDSF_HELD = 1 << 1,	/* on the held list */
};

/* A heap slot keeps a copy of the key, so sifts compare within the array
 * instead of chasing a node pointer per comparison. */
struct slot {
	double prio;
	struct kv_evict_node *n;
};

struct gdsf {
	struct slot *heap;
	size_t n;			/* nodes in the heap */
	size_t cap;			/* slots in heap[] */
	struct kv_list held;		/* the held list */
	size_t nheld;
	double L;
	double lg;			/* running mean of log2(F * C / S) */
	bool have_lg;
	uint64_t since;			/* operations since the last shift */
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;
};

/* F * C / S: what keeping the node is worth per byte. */
static double worth(const struct kv_evict_node *n)
{
	double size = n->size ? (double)n->size : 1.0;

	assert(n->cost >= 0);	/* the core promises > 0; NaN would wreck the heap */
	return (double)n->freq * n->cost / size;
}

/* Fold a node's worth into the running mean of its magnitude. */
static void learn(struct gdsf *g, double w)
{
	int e;

	if (!(w > 0) || !isfinite(w))
		return;
	e = ilogb(w);
	if (!g->have_lg) {
		g->lg = e;
		g->have_lg = true;
		return;
	}
	g->lg += (e - g->lg) / MEAN_WEIGHT;
}

/* A fresh H for n, as of now. */
static void reprice(struct gdsf *g, struct kv_evict_node *n)
{
	double w = worth(n);

	learn(g, w);
	n->prio = g->L + w;
}

static void held_add(struct gdsf *g, struct kv_evict_node *n)
{
	kv_list_add_tail(&g->held, &n->link);
	n->flags = GDSF_HELD;
	g->nheld++;
}

static void held_del(struct gdsf *g, struct kv_evict_node *n)
{
	kv_list_del(&n->link);
	g->nheld--;
}

static void slot_put(struct gdsf *g, size_t i, struct slot s)
{
	g->heap[i] = s;
	s.n->heap_idx = i;
}

static void sift_up(struct gdsf *g, size_t i)
{
	struct slot s = g->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!(s.prio < g->heap[p].prio))
			break;
		slot_put(g, i, g->heap[p]);
		i = p;
	}
	slot_put(g, i, s);
}

static void sift_down(struct gdsf *g, size_t i)
{
	struct slot s = g->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= g->n)
			break;
		if (c + 1 < g->n && g->heap[c + 1].prio < g->heap[c].prio)
			c++;
		if (!(g->heap[c].prio < s.prio))
			break;
		slot_put(g, i, g->heap[c]);
		i = c;
	}
	slot_put(g, i, s);
}

/* n's prio changed either way: copy it to its slot and restore the heap. */
static void heap_fix(struct gdsf *g, struct kv_evict_node *n)
{
	size_t i = n->heap_idx;

	g->heap[i].prio = n->prio;
	if (i > 0 && n->prio < g->heap[(i - 1) / 2].prio)
		sift_up(g, i);
	else
		sift_down(g, i);
}

static void heap_push(struct gdsf *g, struct kv_evict_node *n)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->heap = kv_xrealloc(g->heap, g->cap * sizeof(*g->heap));
	}
	n->flags = GDSF_HEAP;
	g->heap[g->n++] = (struct slot){ n->prio, n };
	sift_up(g, g->n - 1);
}

static void heap_del(struct gdsf *g, struct kv_evict_node *n)
{
	size_t i = n->heap_idx;
	struct slot last = g->heap[--g->n];

	assert(i <= g->n && g->heap[i].n == n);
	if (i == g->n)
		return;
	slot_put(g, i, last);
	heap_fix(g, last.n);
}

/* Subtract L from every heap prio once L dwarfs what nodes are worth. */
static void maybe_shift(struct gdsf *g)
{
	if (!g->have_lg || !(g->L > 0) || ilogb(g->L) <= g->lg + SHIFT_BITS)
		return;
	if (g->since < g->n + g->nheld)
		return;		/* keep the O(n) shift amortized O(1) */
	for (size_t i = 0; i < g->n; i++) {
		g->heap[i].prio -= g->L;
		g->heap[i].n->prio = g->heap[i].prio;
	}
	g->L = 0;
	g->since = 0;
}

static int gdsf_init(void **state, const struct kv_evict_conf *conf)
{
	struct gdsf *g;

	if (!state || !conf || !conf->evictable)
		return -EINVAL;

	g = kv_xcalloc(1, sizeof(*g));
	kv_list_init(&g->held);
	/* Copy the callback: conf is only borrowed for the call. */
	g->evictable = conf->evictable;
	g->arg = conf->arg;

	*state = g;
	return 0;
}

static void gdsf_fini(void *state)
{
	struct gdsf *g = state;

	/* Nodes belong to the core; only the state is ours to free. */
	if (!g)
		return;
	free(g->heap);
	free(g);
}

static void gdsf_insert(void *state, struct kv_evict_node *n)
{
	struct gdsf *g = state;

	if (n->freq == 0)
		n->freq = 1;	/* a new chunk: this is its first use */
	g->since++;
	reprice(g, n);
	if (g->evictable(n, g->arg))
		heap_push(g, n);
	else
		held_add(g, n);
}

static void gdsf_access(void *state, struct kv_evict_node *n)
{
	struct gdsf *g = state;

	assert(n->flags & (GDSF_HEAP | GDSF_HELD));
	if (n->freq < UINT32_MAX)
		n->freq++;
	g->since++;
	reprice(g, n);
	if (n->flags & GDSF_HEAP)
		heap_fix(g, n);
}

static void gdsf_remove(void *state, struct kv_evict_node *n)
{
	struct gdsf *g = state;

	/* freq is current already; score is H2O's and passes through. */
	if (n->flags & GDSF_HEAP) {
		if (n->heap_idx == 0 && n->prio > g->L)
			g->L = n->prio;	/* the victim: the clock moves on */
		heap_del(g, n);
	} else {
		assert(n->flags & GDSF_HELD);
		held_del(g, n);
	}
	n->flags = 0;
	n->link.prev = NULL;	/* unlinked, from the heap too */
	n->link.next = NULL;
	g->since++;
	maybe_shift(g);
}

static void gdsf_hold(void *state, struct kv_evict_node *n, bool held)
{
	struct gdsf *g = state;

	assert(held == !g->evictable(n, g->arg));
	g->since++;
	if (held && (n->flags & GDSF_HEAP)) {
		heap_del(g, n);
		held_add(g, n);
	} else if (!held && (n->flags & GDSF_HELD)) {
		held_del(g, n);
		reprice(g, n);
		heap_push(g, n);
	}
}

static size_t gdsf_pick(void *state, struct kv_evict_node **out, size_t max)
{
	struct gdsf *g = state;
	size_t cnt = max < g->n ? max : g->n;

	/* heap[0] is the victim; the rest in heap order, as policy.h allows */
	for (size_t k = 0; k < cnt; k++)
		out[k] = g->heap[k].n;
	return cnt;
}

const struct kv_evict_ops kv_evict_gdsf = {
	.name		= "gdsf",
	.init		= gdsf_init,
	.fini		= gdsf_fini,
	.on_insert	= gdsf_insert,
	.on_access	= gdsf_access,
	.on_remove	= gdsf_remove,
	.pick		= gdsf_pick,
	.on_score	= NULL,		/* GDSF ranks by use, not attention */
	.on_hold	= gdsf_hold,
};
