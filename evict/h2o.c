/*
 * h2o.c - Heavy-Hitter Oracle eviction, lifted from tokens to chunks.
 *
 * The engine reports how much attention each chunk got (on_score()); a
 * chunk's score is the decayed sum of those reports. The most recently used
 * chunks, up to recent_fraction of the tier's bytes, form the recent
 * segment and are not ranked by score: a chunk just written has had no
 * chance to earn one. The victim is the lowest-scored evictable chunk
 * outside the segment, the older one on a tie; with no scores at all that
 * is the least recently used evictable chunk, exactly as LRU.
 *
 * Where a node is (flags):
 * - H2O_RECENT: on the recent list (lib/list.h; its first node is the LRU
 *   end). Insert and access move a node to its MRU
 *   end; while the segment holds more than its budget of bytes and more
 *   than one node, its LRU-end node leaves, into the heap or, if held, onto
 *   the parked list. heap_idx of a recent node is the bytes it was charged,
 *   so that a size the core changes meanwhile cannot skew recent_bytes.
 * - H2O_HEAP: in a binary min-heap on (prio, stamp), at heap_idx. The
 *   heap is an array of slots holding a copy of the key beside the node,
 *   grown by insert, access and hold (never by pick()), so that a sift
 *   compares children without touching their nodes.
 * - H2O_PARKED: on the parked list: held and outside the segment.
 * H2O_HELD is orthogonal: evictable() said no at on_insert() or on_hold()
 * said held since. Held nodes in the segment stay where they are; pick()
 * skips them there. on_hold() moves nodes outside the segment between the
 * heap and the parked list, so the heap holds exactly the evictable nodes
 * outside the segment, and every node outside the segment is older (stamp)
 * than every node in it.
 *
 * Decay is forward: the policy's clock t counts on_insert() and
 * on_access() calls; a score s reported at t is stored (prio) as
 * s * exp(lambda * (t - landmark)), lambda = ln 2 / half_life, so stored
 * sums compare without touching anyone, and a node's score now is
 * prio * exp(-lambda * (t - landmark)). Before lambda * (t - landmark)
 * passes REBASE_EXP, every stored score is scaled down to the current
 * landmark (values below DBL_MIN flush to 0) and the heap re-made, since
 * scores flushed to 0 tie and fall back to stamp order: O(n), once per
 * REBASE_EXP / ln 2 (~721) half-lives. The carried node->score is the
 * value now, written by on_remove() and turned back into stored units by
 * on_insert().
 *
 * pick(): heap slots in heap order (heap[0] first), then, while max is not
 * reached, the segment's evictable nodes from its LRU end. Insert, access,
 * score, hold and remove are O(log n) plus the segment nodes that leave;
 * pick is O(max), or O(segment) when it has to look there.
 *
 * Configuration: recent_fraction 0 means 0.5 (the store's default);
 * half_life 0 means DEFAULT_HALF_LIFE; init() refuses a fraction outside
 * (0, 1] and a half-life under one operation or not finite.
 *
 * Invariants: exactly one of RECENT, HEAP, PARKED while inserted (PARKED
 * implies HELD), flags 0 after on_remove(); heap[i].n->heap_idx == i and
 * the slot's key is the node's (prio, stamp), each slot's key >= its
 * parent's; recent_bytes is the sum of the charges on the recent list;
 * 0 <= prio and lambda * (clock - landmark) <= REBASE_EXP.
 * Locking: none; runs on the loop thread only (DESIGN.md section 3).
 * Ownership: nodes are borrowed from the core between on_insert() and
 * on_remove(); the state and its heap array are owned by the caller of
 * init() and freed by fini().
 */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "evict/policy.h"
#include "lib/list.h"
#include "lib/util.h"

#define DEFAULT_RECENT_FRACTION	0.5	/* as the store's default */
#define DEFAULT_HALF_LIFE	65536.0	/* operations */
#define REBASE_EXP		500.0	/* e^500 ~ 1e217: room for sums below DBL_MAX */

enum h2o_flags {
	H2O_RECENT = 1 << 0,	/* on the recent list */
	H2O_HEAP = 1 << 1,	/* in heap[heap_idx] */
	H2O_PARKED = 1 << 2,	/* on the parked list */
	H2O_HELD = 1 << 3,	/* evictable() says no */
};

/* A heap slot keeps a copy of the key, so sifts compare within the array
 * instead of chasing a node pointer per comparison. */
struct slot {
	double prio;
	uint64_t stamp;
	struct kv_evict_node *n;
};

struct h2o {
	struct kv_list recent;		/* first = LRU end, last = MRU */
	struct kv_list parked;		/* held, outside the segment */
	struct slot *heap;
	size_t n;			/* nodes in the heap */
	size_t cap;			/* slots in heap[] */
	uint64_t recent_bytes;
	uint64_t budget;		/* bytes of the recent segment */
	uint64_t clock;
	uint64_t landmark;
	uint64_t span;			/* clock - landmark that forces a re-base */
	double lambda;
	double grow;			/* exp(lambda * (grow_at - landmark)) */
	uint64_t grow_at;
	bool (*evictable)(const struct kv_evict_node *n, void *arg);
	void *arg;
};

/* exp(lambda * (clock - landmark)): stored units per unit of score now. */
static double growth(struct h2o *h)
{
	if (h->grow_at != h->clock) {
		h->grow = exp(h->lambda * (double)(h->clock - h->landmark));
		h->grow_at = h->clock;
	}
	return h->grow;
}

static bool key_less(const struct slot *a, const struct slot *b)
{
	if (a->prio != b->prio)
		return a->prio < b->prio;
	return a->stamp < b->stamp;
}

static void slot_put(struct h2o *h, size_t i, struct slot s)
{
	h->heap[i] = s;
	s.n->heap_idx = i;
}

static void sift_up(struct h2o *h, size_t i)
{
	struct slot s = h->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!key_less(&s, &h->heap[p]))
			break;
		slot_put(h, i, h->heap[p]);
		i = p;
	}
	slot_put(h, i, s);
}

static void sift_down(struct h2o *h, size_t i)
{
	struct slot s = h->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && key_less(&h->heap[c + 1], &h->heap[c]))
			c++;
		if (!key_less(&h->heap[c], &s))
			break;
		slot_put(h, i, h->heap[c]);
		i = c;
	}
	slot_put(h, i, s);
}

static void heap_push(struct h2o *h, struct kv_evict_node *n)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->heap = kv_xrealloc(h->heap, h->cap * sizeof(*h->heap));
	}
	n->flags = (n->flags & H2O_HELD) | H2O_HEAP;
	h->heap[h->n++] = (struct slot){ n->prio, n->stamp, n };
	sift_up(h, h->n - 1);
}

static void heap_del(struct h2o *h, struct kv_evict_node *n)
{
	size_t i = n->heap_idx;
	struct slot last = h->heap[--h->n];

	assert(i <= h->n && h->heap[i].n == n);
	if (i == h->n)
		return;
	slot_put(h, i, last);
	if (i > 0 && key_less(&last, &h->heap[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

static void park(struct h2o *h, struct kv_evict_node *n)
{
	n->flags = H2O_HELD | H2O_PARKED;
	kv_list_add_tail(&h->parked, &n->link);
}

/* Take n out of wherever it is; its flags keep only H2O_HELD. */
static void detach(struct h2o *h, struct kv_evict_node *n)
{
	if (n->flags & H2O_RECENT) {
		kv_list_del(&n->link);
		h->recent_bytes -= n->heap_idx;
	} else if (n->flags & H2O_HEAP) {
		heap_del(h, n);
	} else {
		assert(n->flags & H2O_PARKED);
		kv_list_del(&n->link);
	}
	n->flags &= H2O_HELD;
}

/* n, detached, becomes the MRU node of the segment. */
static void recent_add(struct h2o *h, struct kv_evict_node *n)
{
	n->flags = (n->flags & H2O_HELD) | H2O_RECENT;
	n->heap_idx = n->size;
	h->recent_bytes += n->size;
	kv_list_add_tail(&h->recent, &n->link);
}

/* Move LRU-end nodes out of the segment until it fits its budget. */
static void recent_trim(struct h2o *h)
{
	/* next != prev: more than one node in the segment */
	while (h->recent_bytes > h->budget && h->recent.next != h->recent.prev) {
		struct kv_evict_node *n = kv_list_first_entry(&h->recent,
							      struct kv_evict_node, link);

		detach(h, n);
		if (n->flags & H2O_HELD)
			park(h, n);
		else
			heap_push(h, n);
	}
}

/* Floyd's heap construction, after a re-base flushed scores to 0. */
static void heap_make(struct h2o *h)
{
	for (size_t i = h->n / 2; i-- > 0;)
		sift_down(h, i);
}

static void scale_list(struct kv_list *head, double f)
{
	struct kv_evict_node *n;

	kv_list_for_each_entry(n, head, link) {
		n->prio *= f;
		if (n->prio < DBL_MIN)
			n->prio = 0;
	}
}

/* Move the landmark to now, scaling every stored score to match. */
static void rebase(struct h2o *h)
{
	double f = 1 / growth(h);

	for (size_t i = 0; i < h->n; i++) {
		struct slot *s = &h->heap[i];

		s->prio *= f;
		if (s->prio < DBL_MIN)
			s->prio = 0;
		s->n->prio = s->prio;
	}
	scale_list(&h->recent, f);
	scale_list(&h->parked, f);
	/* Scaling keeps the order, but two scores flushed to 0 now tie and
	 * fall back to stamp order. */
	heap_make(h);
	h->landmark = h->clock;
	h->grow = 1;
}

/* The clock ticks on every insert and access. */
static void tick(struct h2o *h, struct kv_evict_node *n)
{
	h->clock++;
	if (h->clock - h->landmark > h->span)
		rebase(h);
	n->stamp = h->clock;
}

static int h2o_init(void **state, const struct kv_evict_conf *conf)
{
	double frac;
	double half;
	double span;
	struct h2o *h;

	if (!state || !conf || !conf->evictable)
		return -EINVAL;
	frac = conf->recent_fraction ? conf->recent_fraction
				     : DEFAULT_RECENT_FRACTION;
	half = conf->half_life ? conf->half_life : DEFAULT_HALF_LIFE;
	if (!(frac > 0 && frac <= 1))
		return -EINVAL;		/* NaN too */
	/* Under one operation a score is gone before it could count, and
	 * re-bases would run on every tick. */
	if (!(half >= 1) || !isfinite(half))
		return -EINVAL;

	h = kv_xcalloc(1, sizeof(*h));
	kv_list_init(&h->recent);
	kv_list_init(&h->parked);
	h->budget = (uint64_t)(frac * (double)conf->capacity);
	h->lambda = M_LN2 / half;
	span = REBASE_EXP / h->lambda;
	h->span = span < 0x1p63 ? (uint64_t)span : UINT64_MAX;
	h->grow = 1;
	/* Copy the callback: conf is only borrowed for the call. */
	h->evictable = conf->evictable;
	h->arg = conf->arg;

	*state = h;
	return 0;
}

static void h2o_fini(void *state)
{
	struct h2o *h = state;

	/* Nodes belong to the core; only the state is ours to free. */
	if (!h)
		return;
	free(h->heap);
	free(h);
}

static void h2o_insert(void *state, struct kv_evict_node *n)
{
	struct h2o *h = state;

	tick(h, n);
	if (n->freq == 0)
		n->freq = 1;	/* a new chunk: this is its first use */
	/* The carried score is a value now; store it in landmark units. */
	n->prio = n->score > 0 ? n->score * growth(h) : 0;
	n->flags = h->evictable(n, h->arg) ? 0 : H2O_HELD;
	recent_add(h, n);
	recent_trim(h);
}

static void h2o_access(void *state, struct kv_evict_node *n)
{
	struct h2o *h = state;

	tick(h, n);
	if (n->freq < UINT32_MAX)
		n->freq++;
	detach(h, n);
	recent_add(h, n);
	recent_trim(h);
}

static void h2o_remove(void *state, struct kv_evict_node *n)
{
	struct h2o *h = state;

	/* Carried: the score as of now; freq is current already. */
	n->score = n->prio > 0 ? n->prio / growth(h) : 0;
	detach(h, n);
	n->flags = 0;
	n->link.prev = NULL;	/* unlinked, from the heap too */
	n->link.next = NULL;
}

static void h2o_score(void *state, struct kv_evict_node *n, float score)
{
	struct h2o *h = state;

	if (!(score > 0))
		return;		/* nothing to add (or NaN: keep the heap sane) */
	n->prio += (double)score * growth(h);
	if (n->flags & H2O_HEAP) {
		h->heap[n->heap_idx].prio = n->prio;
		sift_down(h, n->heap_idx);	/* its key only grew */
	}
}

static void h2o_hold(void *state, struct kv_evict_node *n, bool held)
{
	struct h2o *h = state;

	assert(held == !h->evictable(n, h->arg));
	if (held) {
		n->flags |= H2O_HELD;
		if (n->flags & H2O_HEAP) {
			heap_del(h, n);
			park(h, n);
		}
	} else {
		n->flags &= ~H2O_HELD;
		if (n->flags & H2O_PARKED) {
			kv_list_del(&n->link);
			heap_push(h, n);	/* its old stamp: back in place */
		}
	}
}

static size_t h2o_pick(void *state, struct kv_evict_node **out, size_t max)
{
	struct h2o *h = state;
	size_t cnt = max < h->n ? max : h->n;
	struct kv_evict_node *n;

	for (size_t k = 0; k < cnt; k++)
		out[k] = h->heap[k].n;
	/* The segment only when the heap runs out, LRU end first. */
	kv_list_for_each_entry(n, &h->recent, link) {
		if (cnt == max)
			break;
		if (!(n->flags & H2O_HELD))
			out[cnt++] = n;
	}
	return cnt;
}

const struct kv_evict_ops kv_evict_h2o = {
	.name		= "h2o",
	.init		= h2o_init,
	.fini		= h2o_fini,
	.on_insert	= h2o_insert,
	.on_access	= h2o_access,
	.on_remove	= h2o_remove,
	.pick		= h2o_pick,
	.on_score	= h2o_score,
	.on_hold	= h2o_hold,
};
