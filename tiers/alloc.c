/*
 * alloc.c - TLSF extent allocator with out-of-band metadata (see alloc.h).
 *
 * Every extent, free or used, is a heap record; the arena's bytes are never
 * read or written (clients own them). Sizes are kept in bytes in the records
 * and mapped to granules (bytes >> shift) only to pick a size class.
 *
 * Size classes, in granules n >= 1: below SL_COUNT each n is its own class
 * (fl 0, sl n); above, fl = floor(log2 n) - SL_BITS + 1 and sl is the next
 * SL_BITS bits of n below its top bit, so a class spans 1/SL_COUNT of its
 * power of two. A get searches from the class above the request's (good
 * fit: any member fits, two bit scans), then, only if that finds nothing,
 * walks the request's own class for a member large enough: -ENOMEM means
 * that no free extent fits. It splits the extent found at its low end.
 *
 * Why no smarter placement: under the FIFO-eviction workload of
 * test_alloc.c (1 GiB, mixed chunk sizes), exact best fit, address-ordered
 * first fit and next fit all came within about a point of this one; what
 * holes remain come from the eviction order, not from the search.
 *
 * Invariants:
 *  - the records tile [0, size) exactly, linked in address order through
 *    prev/next; the lower record survives every split and merge, so
 *    a->first (offset 0) never changes and close can walk the whole chain;
 *  - no two free extents are neighbours: put coalesces at once;
 *  - a free extent sits on exactly one bin list, the one its size maps to;
 *    bit sl of sl_map[fl] is set iff bin (fl, sl) is non-empty, and bit fl
 *    of fl_map iff sl_map[fl] != 0;
 *  - the stats counters (used, requested, extents, free_extents) are kept
 *    up to date by get/put; only largest_free is computed on demand.
 *
 * Locking: none (alloc.h). Ownership: the allocator owns every record; a
 * used record is lent to the caller between get and put.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/util.h"
#include "tiers/alloc.h"

#define SL_BITS		4
#define SL_COUNT	(1u << SL_BITS)
#define FL_COUNT	64	/* n < 2^58 granules needs fl <= 55 */

_Static_assert(SL_COUNT <= 32, "sl_map entries are 32 bits");

struct kv_extent {
	uint64_t off;			/* bytes, granule-aligned */
	uint64_t len;			/* bytes, granule multiple */
	uint64_t req;			/* bytes asked for; 0 while free */
	struct kv_extent *prev;		/* address neighbours or NULL */
	struct kv_extent *next;
	struct kv_extent *fprev;	/* bin list while free; */
	struct kv_extent *fnext;	/* fnext also links the spare pool */
	bool free;
};

struct kv_alloc {
	uint64_t size;
	uint64_t align;
	unsigned shift;			/* log2(align) */
	uint64_t fl_map;
	uint32_t sl_map[FL_COUNT];
	struct kv_extent *bins[FL_COUNT][SL_COUNT];
	struct kv_extent *first;	/* offset 0; lives as long as a */
	struct kv_extent *spare;	/* recycled records, via fnext */
	struct kv_extent *hint;		/* the last claim: claims go upward */
	uint64_t used;
	uint64_t requested;
	uint64_t extents;
	uint64_t free_extents;
};

static unsigned ilog2(uint64_t n)
{
	return 63 - (unsigned)__builtin_clzll(n);
}

/* The class holding extents of n granules (n >= 1). */
static void mapping(uint64_t n, unsigned *fl, unsigned *sl)
{
	unsigned l;

	if (n < SL_COUNT) {
		*fl = 0;
		*sl = (unsigned)n;
		return;
	}
	l = ilog2(n);
	*fl = l - SL_BITS + 1;
	*sl = (unsigned)(n >> (l - SL_BITS)) - SL_COUNT;
}

static struct kv_extent *rec_get(struct kv_alloc *a)
{
	struct kv_extent *e = a->spare;

	if (e)
		a->spare = e->fnext;
	else
		e = kv_xmalloc(sizeof(*e));
	return e;
}

static void rec_put(struct kv_alloc *a, struct kv_extent *e)
{
	e->req = 0;	/* a second put of e then trips put's assert */
	if (a->hint == e)
		a->hint = NULL;
	e->fnext = a->spare;
	a->spare = e;
}

static void bin_insert(struct kv_alloc *a, struct kv_extent *e)
{
	unsigned fl;
	unsigned sl;

	mapping(e->len >> a->shift, &fl, &sl);
	e->free = true;
	e->req = 0;
	e->fprev = NULL;
	e->fnext = a->bins[fl][sl];
	if (e->fnext)
		e->fnext->fprev = e;
	a->bins[fl][sl] = e;
	a->sl_map[fl] |= 1u << sl;
	a->fl_map |= 1ull << fl;
	a->free_extents++;
}

static void bin_remove(struct kv_alloc *a, struct kv_extent *e)
{
	unsigned fl;
	unsigned sl;

	mapping(e->len >> a->shift, &fl, &sl);
	if (e->fprev)
		e->fprev->fnext = e->fnext;
	else
		a->bins[fl][sl] = e->fnext;
	if (e->fnext)
		e->fnext->fprev = e->fprev;
	if (!a->bins[fl][sl]) {
		a->sl_map[fl] &= ~(1u << sl);
		if (!a->sl_map[fl])
			a->fl_map &= ~(1ull << fl);
	}
	e->free = false;
	a->free_extents--;
}

/* First extent of the first non-empty bin at or above (fl, sl), or NULL. */
static struct kv_extent *bin_search(struct kv_alloc *a, unsigned fl,
				    unsigned sl)
{
	uint32_t sm = a->sl_map[fl] & (~0u << sl);

	if (!sm) {
		uint64_t fm = fl + 1 < FL_COUNT ?
			      a->fl_map & (~0ull << (fl + 1)) : 0;

		if (!fm)
			return NULL;
		fl = (unsigned)__builtin_ctzll(fm);
		sm = a->sl_map[fl];
	}
	return a->bins[fl][__builtin_ctz(sm)];
}

/*
 * Good fit: round n up to the next class boundary so that every member of
 * the class found fits, which makes the search two bit scans.
 */
static struct kv_extent *find_good(struct kv_alloc *a, uint64_t n)
{
	unsigned fl;
	unsigned sl;

	if (n >= SL_COUNT)
		n += (1ull << (ilog2(n) - SL_BITS)) - 1;
	mapping(n, &fl, &sl);
	return bin_search(a, fl, sl);
}

/*
 * Good fit skips n's own class, whose members may be smaller than n, so it
 * can fail while an extent that fits exists. The caller's answer to -ENOMEM
 * is to evict, which costs far more than a walk of one bin, and alloc.h
 * promises -ENOMEM only when nothing fits: look there before giving up.
 */
static struct kv_extent *find_exact(struct kv_alloc *a, uint64_t n)
{
	struct kv_extent *e;
	unsigned fl;
	unsigned sl;

	mapping(n, &fl, &sl);
	for (e = a->bins[fl][sl]; e; e = e->fnext)
		if ((e->len >> a->shift) >= n)
			return e;
	return NULL;
}

/* Split free-or-used extent e at byte len (< e->len): the tail becomes a
 * new record after it, returned unbinned and marked free. */
static struct kv_extent *split_tail(struct kv_alloc *a, struct kv_extent *e,
				    uint64_t len)
{
	struct kv_extent *rest = rec_get(a);

	rest->off = e->off + len;
	rest->len = e->len - len;
	rest->prev = e;
	rest->next = e->next;
	if (e->next)
		e->next->prev = rest;
	e->next = rest;
	e->len = len;
	return rest;
}

/* Fold e->next into e and recycle its record. */
static void merge_next(struct kv_alloc *a, struct kv_extent *e)
{
	struct kv_extent *n = e->next;

	e->len += n->len;
	e->next = n->next;
	if (n->next)
		n->next->prev = e;
	rec_put(a, n);
}

int kv_alloc_open(struct kv_alloc **out, const struct kv_alloc_conf *conf)
{
	struct kv_alloc *a;
	struct kv_extent *e;

	if (!conf || conf->align < 64 || (conf->align & (conf->align - 1)) ||
	    !conf->size || conf->size % conf->align)
		return -EINVAL;

	a = kv_xcalloc(1, sizeof(*a));
	a->size = conf->size;
	a->align = conf->align;
	a->shift = ilog2(conf->align);

	e = kv_xcalloc(1, sizeof(*e));
	e->len = conf->size;
	a->first = e;
	bin_insert(a, e);

	*out = a;
	return 0;
}

void kv_alloc_close(struct kv_alloc *a)
{
	struct kv_extent *e;
	struct kv_extent *next;

	if (!a)
		return;
	/* The chain holds every live record, handed out or not. */
	for (e = a->first; e; e = next) {
		next = e->next;
		free(e);
	}
	for (e = a->spare; e; e = next) {
		next = e->fnext;
		free(e);
	}
	free(a);
}

int kv_alloc_get(struct kv_alloc *a, uint64_t bytes, struct kv_extent **out)
{
	struct kv_extent *e;
	uint64_t len;

	if (kv_fault_hit(KV_FAULT_ARENA))
		return -ENOMEM;
	if (!bytes || bytes > a->size)
		return -EINVAL;

	/* size is a multiple of align, so this cannot overflow */
	len = (bytes + a->align - 1) & ~(a->align - 1);
	e = find_good(a, len >> a->shift);
	if (!e)
		e = find_exact(a, len >> a->shift);
	if (!e)
		return -ENOMEM;

	bin_remove(a, e);
	if (e->len > len)
		bin_insert(a, split_tail(a, e, len));
	e->req = bytes;
	a->used += len;
	a->requested += bytes;
	a->extents++;
	*out = e;
	return 0;
}

void kv_alloc_put(struct kv_alloc *a, struct kv_extent *e)
{
	if (!e)		/* like free(), so error paths need not check */
		return;
	assert(!e->free && e->req);
	a->used -= e->len;
	a->requested -= e->req;
	a->extents--;

	if (e->next && e->next->free) {
		bin_remove(a, e->next);
		merge_next(a, e);
	}
	if (e->prev && e->prev->free) {
		e = e->prev;
		bin_remove(a, e);
		merge_next(a, e);
	}
	bin_insert(a, e);
}

int kv_alloc_claim(struct kv_alloc *a, uint64_t off, uint64_t bytes,
		   struct kv_extent **out)
{
	struct kv_extent *e = a->hint && a->hint->off <= off ? a->hint : a->first;
	uint64_t len;

	if (!bytes || off % a->align || off >= a->size || bytes > a->size - off)
		return -EINVAL;
	len = (bytes + a->align - 1) & ~(a->align - 1);
	while (e && e->off + e->len <= off)
		e = e->next;
	if (!e || !e->free || e->off + e->len < off + len)
		return -EEXIST;
	bin_remove(a, e);
	if (e->off < off) {		/* keep the free head */
		struct kv_extent *mid = split_tail(a, e, off - e->off);

		bin_insert(a, e);
		e = mid;
	}
	if (e->len > len)
		bin_insert(a, split_tail(a, e, len));
	e->free = false;
	e->req = bytes;
	a->used += len;
	a->requested += bytes;
	a->extents++;
	a->hint = e;
	*out = e;
	return 0;
}

void kv_alloc_trim(struct kv_alloc *a, struct kv_extent *e, uint64_t bytes)
{
	uint64_t len = (bytes + a->align - 1) & ~(a->align - 1);
	struct kv_extent *rest;

	assert(!e->free && bytes);
	if (bytes < e->req)
		a->requested -= e->req - bytes;
	else
		a->requested += bytes - e->req;
	e->req = bytes;
	if (len >= e->len)
		return;
	a->used -= e->len - len;
	rest = split_tail(a, e, len);
	if (rest->next && rest->next->free) {
		bin_remove(a, rest->next);
		merge_next(a, rest);
	}
	bin_insert(a, rest);
}

uint64_t kv_extent_offset(const struct kv_extent *e)
{
	return e->off;
}

uint64_t kv_extent_size(const struct kv_extent *e)
{
	return e->len;
}

void kv_alloc_stats(const struct kv_alloc *a, struct kv_alloc_stats *st)
{
	const struct kv_extent *e;
	unsigned fl;
	unsigned sl;

	st->size = a->size;
	st->used = a->used;
	st->requested = a->requested;
	st->extents = a->extents;
	st->free_extents = a->free_extents;
	st->largest_free = 0;
	if (!a->fl_map)
		return;
	/* The largest extent is in the highest non-empty bin. */
	fl = ilog2(a->fl_map);
	sl = 31 - (unsigned)__builtin_clz(a->sl_map[fl]);
	for (e = a->bins[fl][sl]; e; e = e->fnext)
		if (e->len > st->largest_free)
			st->largest_free = e->len;
}
