/*
 * move.c - movement between tiers: the queues of moves, one path that
 * starts a move between any two tiers and one that finishes it, and the
 * pump that runs the store's background work once per loop turn.
 *
 * Every move has DRAM, the host, at one end and another tier (the far
 * tier) at the other, whose verbs (tiers/tier.h) do the copy on the
 * tier's own thread: move_submit() makes the far tier's job, and
 * move_done() takes it back. What kind of move it is changes only what is
 * counted and what a failure means:
 *   DRAM -> SSD   write-back: eager, queued at commit, so a DRAM chunk is
 *                 evictable once it has an SSD copy and eviction never
 *                 waits for the disk unless the puts outrun it. A refusal
 *                 or failure marks the DRAM copy no_down: it may leave the
 *                 cache from DRAM like a chunk of a daemon without SSD.
 *   SSD -> DRAM   promotion, started by the pin or prefetch that wants it
 *                 (its failure is that request's answer); bad bytes are
 *                 never shown: a failed read drops the chunk.
 *   HBM -> DRAM   a chunk put into HBM gets its DRAM copy (HBM is
 *                 inclusive of DRAM): queued at commit; a refusal leaves
 *                 it in HBM alone (no_down).
 *   DRAM -> HBM   promotion of a chunk GPU clients pin, queued by the pin
 *                 (by hbm_promote, on the first or second pin), best
 *                 effort: answered from DRAM until it lands.
 *
 * Requests only enqueue (and wake the loop, kv_store_set_wake()); the
 * server calls kv_store_pump() once per loop turn, which reaps every
 * tier's finished moves and then starts queued ones, as far as the tiers'
 * limits go.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/ssd.h"

#define RD_PERIOD_NS	1000000000ull	/* an SSD read batch that never drains
					 * gives a sample a second */

void store_wake(struct kv_store *s)
{
	if (s->woken || !s->wake)
		return;
	s->woken = true;
	s->wake(s->wake_arg);
}

void kv_store_set_wake(struct kv_store *s, void (*fn)(void *arg), void *arg)
{
	s->wake = fn;
	s->wake_arg = arg;
}

/* Queue a move into tier to (its source: the tier that feeds it). */
void move_enqueue(struct kv_store *s, struct kv_chunk *c, unsigned to)
{
	struct kv_copy *k = &c->copy[to];

	if (k->queued)
		return;
	k->queued = true;
	kv_list_add_tail(&s->tiers[to].queue, &k->queue);
	if (to == KV_TIER_SSD) {
		s->wb_queued++;
		s->tenants[c->tenant].wb_pending++;
	}
	store_wake(s);
}

/* Queue a DRAM chunk without an SSD copy for write-back. */
static void wb_enqueue(struct kv_store *s, struct kv_chunk *c)
{
	if (!s->ssd || c->copy[KV_TIER_SSD].queued || c->copy[KV_TIER_SSD].ext ||
	    !c->copy[KV_TIER_DRAM].ext || chunk_moving(c, KV_TIER_SSD))
		return;
	move_enqueue(s, c, KV_TIER_SSD);
}

/* A DRAM extent's offset in the daemon's range (what SSD, GPU and remote
 * jobs address), from its offset in its tenant's arena. */
static uint64_t dram_off(const struct kv_store *s, const struct kv_chunk *c,
			 const struct kv_extent *e)
{
	return ctt(s, c, KV_TIER_DRAM)->base + kv_extent_offset(e);
}

/* A far tier's job for chunk c, its host end the DRAM extent host, with
 * what a tier that keeps records needs of the chunk. */
void move_init(const struct kv_store *s, struct kv_move *m, struct kv_chunk *c,
	       const struct kv_extent *host)
{
	m->cookie = c;
	m->host_off = dram_off(s, c, host);
	m->host = (char *)s->range + m->host_off;
	m->host_len = kv_extent_size(host);
	m->bytes = c->bytes;
	m->ns = c->ie.ns;
	m->key = c->ie.key;
	m->rec = (struct kv_move_rec){
		.salt = ns_salt(s, c->ie.ns),
		.parent = c->parent,
		.has_parent = c->has_parent,
		.tokens = c->tokens,
		.position = c->position,
	};
}

/* The codec a chunk of namespace ns is stored with, below DRAM. */
uint8_t ns_codec(const struct kv_store *s, uint32_t ns)
{
	return ns < s->n_codecs && s->codecs[ns] ? s->codecs[ns] - 1 : s->conf.ssd_codec;
}

/*
 * Start copying c's bytes from tier from into extent e of tier to (one of
 * them DRAM). The copy in to is being filled (copy[to].from) until
 * move_done(); both ends are held from eviction meanwhile.
 */
static void move_submit(struct kv_store *s, struct kv_chunk *c, unsigned from,
			unsigned to, struct kv_extent *e)
{
	unsigned far = to == KV_TIER_DRAM ? from : to;
	struct stier *ft = &s->tiers[far];
	struct ttier *tt = ctt(s, c, far);
	struct kv_extent *host = to == KV_TIER_DRAM ? e : c->copy[KV_TIER_DRAM].ext;
	struct kv_move *m = ft->ops->move_new(ft->mover);
	const struct kv_evict_node *h = &c->copy[KV_TIER_DRAM].node;

	move_init(s, m, c, host);
	m->op = to == KV_TIER_DRAM ? KV_MOVE_LOAD : KV_MOVE_STORE;
	m->tier = (uint8_t)far;
	m->part = tt->shared ? NULL : tt->t.priv;
	m->ext = to == KV_TIER_DRAM ? c->copy[from].ext : e;
	m->rec.hits = c->hits;
	m->rec.freq = h->freq;
	m->rec.score = h->score;
	if (m->op == KV_MOVE_STORE) {
		m->rec.codec = ns_codec(s, c->ie.ns);
	} else {
		m->rec.codec = c->copy[from].codec;
		m->rec.stored = c->copy[from].stored;
		m->rec.checksum = c->copy[from].checksum;
	}
	c->copy[to].io_ext = e;
	c->copy[to].from = (uint8_t)from;
	ft->inflight++;
	ft->ops->submit(ft->mover, m);
}

/* ---- starting moves ---------------------------------------------------------- */

/* Start write-backs from the queue, as many as may be in flight. */
static void wb_pump(struct kv_store *s)
{
	struct kv_list *q = &s->tiers[KV_TIER_SSD].queue;

	while (!kv_list_empty(q) && s->wb_inflight < s->wb_max) {
		struct kv_chunk *c = kv_list_first_entry(q, struct kv_chunk,
							 copy[KV_TIER_SSD].queue);
		struct kv_copy *k = &c->copy[KV_TIER_SSD];
		struct kv_extent *e;
		int ret;

		chunk_unqueue(s, c, KV_TIER_SSD);
		/* Its parent must not leave the SSD while it is being written:
		 * c is linked under it, so it is no SSD leaf. */
		k->from = KV_TIER_DRAM;	/* held from both tiers meanwhile */
		refresh_hold(s, c);
		ret = c->bytes > ctt(s, c, KV_TIER_SSD)->capacity ? -KV_ETOOBIG :
		      tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_SSD,
					  c->bytes, &e);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_TIER, "write-back of a %llu-byte chunk refused: %s",
			       (unsigned long long)c->bytes, kv_strerror(ret));
			k->from = KV_TIER_NONE;
			c->copy[KV_TIER_DRAM].no_down = true;
			c->copy[KV_TIER_DRAM].err = (uint16_t)-ret;
			s->wb_failed++;
			refresh_hold(s, c);
			continue;
		}
		s->wb_inflight++;
		s->tenants[c->tenant].wb_pending++;
		move_submit(s, c, KV_TIER_DRAM, KV_TIER_SSD, e);
	}
}

/* Start reading an SSD-only chunk into DRAM. -EINPROGRESS, or why not. */
int promote(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_copy *k = &c->copy[KV_TIER_DRAM];
	struct kv_extent *e;
	int ret;

	if (k->from == KV_TIER_SSD)
		return -EINPROGRESS;
	k->from = KV_TIER_SSD;	/* not an SSD victim while DRAM makes room */
	refresh_hold(s, c);
	ret = tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_DRAM, c->bytes, &e);
	if (ret) {
		k->from = KV_TIER_NONE;
		refresh_hold(s, c);
		return ret;
	}
	read_start(s, KV_TIER_SSD);
	move_submit(s, c, KV_TIER_SSD, KV_TIER_DRAM, e);
	return -EINPROGRESS;
}

/*
 * Start DRAM copies of chunks put into HBM, oldest first, as DRAM makes
 * room. One DRAM refuses (full of held chunks) stays in HBM alone, and may
 * leave the cache from there; one that must wait for SSD write-backs
 * waits in the queue, and so do its tenant's later ones, while other
 * tenants' go ahead (their DRAM is another arena).
 */
static void dn_pump(struct kv_store *s)
{
	uint64_t waiting[KV_TENANT_MAX / 64] = { 0 };
	struct kv_list *q = &s->tiers[KV_TIER_DRAM].queue;
	struct kv_list *at, *next;

	for (at = q->next; at != q && s->tiers[KV_TIER_HBM].inflight < HBM_COPIES_MAX;
	     at = next) {
		struct kv_chunk *c = kv_list_entry(at, struct kv_chunk,
						   copy[KV_TIER_DRAM].queue);
		struct kv_copy *k = &c->copy[KV_TIER_DRAM];
		struct kv_extent *e;
		int ret;

		/* Evictions below take DRAM copies: never a queued chunk's
		 * (it has none), so next stays in the queue. */
		next = at->next;
		if (waiting[c->tenant / 64] >> (c->tenant % 64) & 1)
			continue;
		k->from = KV_TIER_HBM;	/* not an HBM victim meanwhile */
		refresh_hold(s, c);
		ret = tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_DRAM,
					  c->bytes, &e);
		k->from = KV_TIER_NONE;
		if (ret == -EINPROGRESS) {
			waiting[c->tenant / 64] |= 1ull << (c->tenant % 64);
			refresh_hold(s, c);
			continue;
		}
		chunk_unqueue(s, c, KV_TIER_DRAM);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_TIER, "no DRAM copy for a %llu-byte HBM chunk: %s",
			       (unsigned long long)c->bytes, kv_strerror(ret));
			c->copy[KV_TIER_HBM].no_down = true;
			refresh_hold(s, c);
			continue;
		}
		move_submit(s, c, KV_TIER_HBM, KV_TIER_DRAM, e);
		refresh_hold(s, c);
	}
}

/*
 * A GPU client pinned a DRAM chunk: queue its copy up into HBM when the
 * promotion setting says so and its tenant has HBM. The pump starts it if
 * HBM still wants it and has room; any reason not to (no room, copies
 * busy) leaves it in DRAM.
 */
void hbm_promote(struct kv_store *s, struct kv_chunk *c)
{
	const struct ttier *tt = ctt(s, c, KV_TIER_HBM);

	if (!s->hbm || s->conf.hbm_promote == KV_PROMOTE_OFF ||
	    (s->conf.hbm_promote == KV_PROMOTE_SECOND && c->gpu_pins < 2) ||
	    !tt->t.ops || c->bytes > tt->capacity)
		return;
	move_enqueue(s, c, KV_TIER_HBM);
}

static void up_pump(struct kv_store *s)
{
	struct kv_list *q = &s->tiers[KV_TIER_HBM].queue;

	while (!kv_list_empty(q)) {
		struct kv_chunk *c = kv_list_first_entry(q, struct kv_chunk,
							 copy[KV_TIER_HBM].queue);
		struct kv_copy *k = &c->copy[KV_TIER_HBM];
		struct kv_extent *e;

		chunk_unqueue(s, c, KV_TIER_HBM);
		if (s->hbm_dead || k->ext || chunk_moving(c, KV_TIER_HBM) ||
		    !c->copy[KV_TIER_DRAM].ext ||
		    s->tiers[KV_TIER_HBM].inflight >= HBM_COPIES_MAX)
			continue;
		k->from = KV_TIER_DRAM;	/* its DRAM copy stays while copied */
		refresh_hold(s, c);
		if (tier_alloc_evicting(s, &s->tenants[c->tenant], KV_TIER_HBM,
					c->bytes, &e)) {
			k->from = KV_TIER_NONE;
			refresh_hold(s, c);
			continue;
		}
		move_submit(s, c, KV_TIER_DRAM, KV_TIER_HBM, e);
	}
}

/* ---- finishing moves ----------------------------------------------------------- */

/* A read into DRAM out of tier (an SSD promotion, a remote fetch) starts. */
void read_start(struct kv_store *s, unsigned tier)
{
	struct stier *st = &s->tiers[tier];

	if (st->rd_inflight++ == 0) {
		st->rd_start = kv_now_ns();
		st->rd_bytes = 0;
	}
}

/*
 * A read into DRAM was reaped (bytes 0: it failed). A tier's read
 * bandwidth is timed by batch, as the daemon's readers see it: from the
 * first read submitted while none was in flight until the last of them is
 * reaped (read, checked, decoded, in DRAM), over the bytes of the chunks
 * that came up. Reads in flight together share the disk (or the network),
 * so timing each alone would count the same seconds several times.
 */
void read_timed(struct kv_store *s, unsigned tier, uint64_t bytes)
{
	struct stier *st = &s->tiers[tier];
	uint64_t now = kv_now_ns();

	st->rd_inflight--;
	st->rd_bytes += bytes;
	if (st->rd_inflight && now - st->rd_start < RD_PERIOD_NS)
		return;
	if (st->rd_bytes)	/* an implausible sample is dropped */
		kv_bw_add(&st->read, st->rd_bytes, now - st->rd_start);
	st->rd_start = now;
	st->rd_bytes = 0;
}

/* A move failed: what is left of the chunk, and what it cost. Returns
 * false when the chunk is gone. */
static bool move_failed(struct kv_store *s, struct kv_chunk *c, unsigned from,
			unsigned to, int result)
{
	if (to > from) {		/* down: the copy above stays alone */
		c->copy[from].no_down = true;
		c->copy[from].err = (uint16_t)-result;
		if (to == KV_TIER_SSD)
			s->wb_failed++;
		return true;
	}
	if (from != KV_TIER_SSD)	/* up from memory: best effort */
		return true;
	/* Bad bytes are never shown: the chunk leaves the cache. */
	if (result == -KV_ECORRUPT)
		s->checksum_failures++;
	else
		s->io_failures++;
	if (c->pins == 0) {
		chunk_drop(s, c);
		return false;
	}
	return true;
}

static void move_done(struct kv_store *s, struct kv_move *m)
{
	struct kv_chunk *c = m->cookie;
	unsigned far = m->tier;
	unsigned to = m->op == KV_MOVE_LOAD ? KV_TIER_DRAM : far;
	struct kv_copy *k = &c->copy[to];
	unsigned from = k->from;

	s->tiers[far].inflight--;
	k->from = KV_TIER_NONE;
	/* CUDA errors are mostly sticky (the context is lost): stop making
	 * HBM copies; the ones there still serve until they go. */
	if (far == KV_TIER_HBM && m->result && !s->hbm_dead) {
		s->hbm_dead = true;
		kv_log(KV_ERR, KV_LOG_GPU, "HBM tier: a GPU copy failed; no more puts into HBM or promotions");
	}
	if (to == KV_TIER_SSD) {
		s->wb_inflight--;
		s->tenants[c->tenant].wb_pending--;
	}
	if (from == KV_TIER_SSD)
		read_timed(s, KV_TIER_SSD, m->result ? 0 : c->bytes);
	if (m->result) {
		part_free(s, c, to, k->io_ext);
		k->io_ext = NULL;
		if (move_failed(s, c, from, to, m->result))
			refresh_hold(s, c);
		return;
	}
	if (to == KV_TIER_SSD) {	/* a codec may have shrunk it */
		struct ttier *tt = ctt(s, c, KV_TIER_SSD);

		c->copy[from].err = 0;
		tt->used -= kv_extent_size(k->io_ext);
		kv_ssd_trim(s->ssd, k->io_ext, m->rec.stored);
		tt->used += kv_extent_size(k->io_ext);
		k->stored = m->rec.stored;
		k->codec = m->rec.codec;
		k->checksum = m->rec.checksum;
	}
	k->ext = k->io_ext;
	k->io_ext = NULL;
	if (to == KV_TIER_DRAM && from == KV_TIER_HBM) {
		/* The DRAM node carries the history: the HBM copy's, now. */
		memset(&k->node, 0, sizeof(k->node));
		k->node.freq = c->copy[KV_TIER_HBM].node.freq;
		k->node.score = c->copy[KV_TIER_HBM].node.score;
	}
	tier_insert(s, c, to);
	if (to == KV_TIER_DRAM && from == KV_TIER_HBM)
		cluster_committed(s, c);	/* its write-through waited for this */
	if (to < from) {		/* up: a promotion of the far tier */
		s->tiers[far].promotions++;
		if (tier_cold(from))	/* it hears of the use that brought it up */
			s->tiers[from].pol->on_access(ctt(s, c, from)->pstate,
						      &c->copy[from].node);
	} else if (from == far) {	/* down out of the far tier */
		s->tiers[far].demotions++;
		wb_enqueue(s, c);
	} else {			/* down into the far tier: a write-back */
		s->wb_written++;
		s->wb_bytes += c->bytes;
	}
	refresh_hold(s, c);
}

/* ---- the pump -------------------------------------------------------------------- */

int kv_store_event_fd(const struct kv_store *s, unsigned tier)
{
	const struct stier *st = tier < KV_TIER_ALL ? &s->tiers[tier] : NULL;

	return st && st->ops && st->ops->event_fd ? st->ops->event_fd(st->mover) : -1;
}

unsigned kv_store_pump(struct kv_store *s)
{
	unsigned n = 0;

	s->woken = true;	/* what it queues itself, it starts itself */
	/* Slowest first. */
	for (unsigned t = KV_TIER_ALL; t-- > 0;) {
		struct stier *st = &s->tiers[t];
		struct kv_move *m, *next;

		if (!st->ops || !st->ops->reap)
			continue;
		for (m = st->ops->reap(st->mover); m; m = next) {
			next = m->next;
			if (t == KV_TIER_REMOTE)
				cluster_done(s, m);
			else if (m->op == KV_MOVE_OWN)
				ssd_own_done(s, m);
			else
				move_done(s, m);
			st->ops->move_free(st->mover, m);
			n++;
		}
	}
	if (s->hbm)
		dn_pump(s);
	if (s->ssd)
		wb_pump(s);
	if (s->hbm)
		up_pump(s);
	if (s->remote)
		cluster_pump(s);
	s->woken = false;
	return n;
}

/* ---- write-back flushes ------------------------------------------------------ */

void kv_store_wb_counters(const struct kv_store *s, uint64_t *written,
			  uint64_t *bytes, uint64_t *failed)
{
	*written = s->wb_written;
	*bytes = s->wb_bytes;
	*failed = s->wb_failed;
}

int kv_store_writeback(struct kv_store *s, bool start)
{
	uint64_t cursor = 0;
	struct kv_chunk *c;

	if (!s->ssd)
		return -KV_ENOTIER;
	/* Starting: queue every DRAM chunk still without an SSD copy, once
	 * more even if the SSD declined it before (only now: a flush must
	 * end even when the SSD keeps declining). */
	while (start && (c = chunk_next(s, &cursor))) {
		if (c->state != KV_CHUNK_COMMITTED || !c->copy[KV_TIER_DRAM].ext ||
		    c->copy[KV_TIER_SSD].ext || chunk_moving(c, KV_TIER_SSD) ||
		    c->copy[KV_TIER_SSD].queued)
			continue;
		c->copy[KV_TIER_DRAM].no_down = false;
		wb_enqueue(s, c);
		refresh_hold(s, c);
	}
	/* A queued chunk means writes to come: the pump starts them, and a
	 * completion is coming to ask again. */
	return s->wb_queued || s->wb_inflight ? -EINPROGRESS : 0;
}

uint64_t kv_store_wb_refused(const struct kv_store *s, int *why)
{
	uint64_t cursor = 0, n = 0;
	struct kv_chunk *c;

	*why = 0;
	if (!s->ssd)
		return 0;
	while ((c = chunk_next(s, &cursor))) {
		const struct kv_copy *k = &c->copy[KV_TIER_DRAM];

		if (c->state != KV_CHUNK_COMMITTED || !k->ext || c->copy[KV_TIER_SSD].ext)
			continue;
		n++;
		if (!*why || k->err)
			*why = k->err ? k->err : KV_EFULL;
	}
	return n;
}

/* A chunk was committed: its first moves, down (write-back and
 * write-through) or, put into HBM, to its DRAM copy. */
void move_committed(struct kv_store *s, struct kv_chunk *c)
{
	if (c->copy[KV_TIER_HBM].ext && !c->copy[KV_TIER_DRAM].ext) {
		move_enqueue(s, c, KV_TIER_DRAM);
		return;
	}
	wb_enqueue(s, c);
	cluster_committed(s, c);
}
