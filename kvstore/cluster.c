/*
 * cluster.c - the store's side of the remote tier (tiers/remote.h): what
 * goes to the Redis Cluster every node's daemon shares, and what comes
 * back (docs/cluster.md).
 *
 * The cluster is not a tier that holds copies of the store's: its servers
 * evict by their own policy, so a chunk written there may be gone at any
 * moment. The store therefore keeps no record of what the cluster holds.
 * It only
 *   writes through: a committed chunk of a namespace that uses the cluster
 *      joins a queue at COMMIT; the pump writes it from its DRAM copy,
 *      which stays put meanwhile (RF_WRITING holds it). A put never waits
 *      for the network, and a chunk that left DRAM before its turn is
 *      skipped.
 *   asks: LOOKUP's keys that no local tier has are asked of the cluster
 *      (one PROBE job: pipelined to every master at once, under the
 *      tier's deadline); the answer is KV_TIER_REMOTE or a miss.
 *   fetches: a PIN or PREFETCH of a key no local tier has makes a record
 *      in state FETCHING (invisible to lookups, like a pending put); its
 *      PROBE brings part 0's header, DRAM makes room for the chunk, its
 *      LOAD fills the DRAM copy with every part checked, and the chunk is
 *      committed in DRAM as if it had been put there. Any miss, deadline
 *      or bad byte on the way drops the record: the pin answers ENOENT.
 *
 * Locking: none; the loop thread owns the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/remote.h"

#define RQ_MAX	64	/* write-throughs in flight at most */

/* A LOOKUP's question to the cluster (kv_store_lookup_remote()). */
struct kv_store_probe {
	struct kv_list link;		/* the store's probes */
	struct kv_remote_probe *p;	/* one per key asked */
	uint32_t *at;			/* ... and that key's index in the lookup */
	uint32_t n;
	uint32_t ns;
	bool done;			/* reaped */
	bool cancelled;			/* its request went: free it at reap */
};

static void probe_free(struct kv_store_probe *p)
{
	kv_list_del(&p->link);
	free(p->p);
	free(p->at);
	free(p);
}

void cluster_open(struct kv_store *s)
{
	kv_list_init(&s->rq);
	kv_list_init(&s->probes);
}

/* After the mover closed: its jobs are gone, the probes they named too. */
void cluster_close(struct kv_store *s)
{
	while (!kv_list_empty(&s->probes))
		probe_free(kv_list_first_entry(&s->probes, struct kv_store_probe, link));
	free(s->remote_ns);
	s->remote_ns = NULL;
	free(s->hints);
	s->hints = NULL;
}

/* Does a namespace of this name use the cluster (remote_ns)? */
bool cluster_ns(const struct kv_store *s, const char *name)
{
	const char *p = s->remote_ns;

	if (!s->remote)
		return false;
	if (!p)
		return true;
	while (*p) {
		size_t len = strcspn(p, ",");

		if (len && !strncmp(name, p, len))
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

static bool ns_remote(const struct kv_store *s, uint32_t ns)
{
	return s->remote && ns < s->n_nss && s->nss[ns].remote;
}

static struct kv_remote_job *job_new(struct kv_store *s)
{
	struct stier *st = &s->tiers[KV_TIER_REMOTE];

	return kv_remote_job_of(st->ops->move_new(st->mover));
}

static void job_submit(struct kv_store *s, struct kv_remote_job *j)
{
	struct stier *st = &s->tiers[KV_TIER_REMOTE];

	st->inflight++;
	st->ops->submit(st->mover, &j->m);
}

/* ---- write-through ------------------------------------------------------- */

void cluster_committed(struct kv_store *s, struct kv_chunk *c)
{
	if (!s->remote_write || !ns_remote(s, c->ie.ns) ||
	    (c->rflags & (RF_QUEUED | RF_WRITING | RF_THERE)))
		return;
	c->rflags |= RF_QUEUED;
	kv_list_add_tail(&s->rq, &c->rlink);
	store_wake(s);
}

void cluster_unqueue(struct kv_chunk *c)
{
	if (!(c->rflags & RF_QUEUED))
		return;
	kv_list_del(&c->rlink);
	c->rflags &= (uint8_t)~RF_QUEUED;
}

static void write_start(struct kv_store *s, struct kv_chunk *c)
{
	struct kv_remote_job *j = job_new(s);
	struct kv_move *m = &j->m;

	move_init(s, m, c, c->copy[KV_TIER_DRAM].ext);
	m->op = KV_MOVE_STORE;
	m->rec.codec = ns_codec(s, c->ie.ns);
	c->rflags |= RF_WRITING;	/* its DRAM copy stays meanwhile */
	refresh_hold(s, c);
	s->rq_inflight++;
	job_submit(s, j);
}

/* Start write-throughs from the queue, as many as may be in flight. */
void cluster_pump(struct kv_store *s)
{
	while (!kv_list_empty(&s->rq) && s->rq_inflight < RQ_MAX) {
		struct kv_chunk *c = kv_list_first_entry(&s->rq, struct kv_chunk, rlink);

		cluster_unqueue(c);
		/* Gone from DRAM meanwhile (or put into HBM, its DRAM copy
		 * not made yet: that copy's arrival queues it again). */
		if (c->state == KV_CHUNK_COMMITTED && c->copy[KV_TIER_DRAM].ext)
			write_start(s, c);
	}
}

static void write_done(struct kv_store *s, struct kv_move *m)
{
	struct kv_chunk *c = m->cookie;
	struct stier *st = &s->tiers[KV_TIER_REMOTE];

	s->rq_inflight--;
	c->rflags &= (uint8_t)~RF_WRITING;
	if (m->result) {
		s->rt_write_failed++;
	} else {
		c->rflags |= RF_THERE;
		st->demotions++;
		s->rt_written_bytes += c->bytes;
	}
	refresh_hold(s, c);
}

/* ---- hints: what a LOOKUP's probe found, for the GET that follows ------- */

/*
 * An engine that LOOKUPs keys the cluster has GETs them next: the probe
 * already brought each one's part 0 header, so the fetch may go straight to
 * its LOAD and spare a round trip. A hint is only that: the LOAD checks
 * every part against the header, so a value replaced or evicted since is a
 * miss, never wrong bytes; hints older than HINT_NS are not used, to bound
 * how often that happens. Direct-mapped: a newer hint takes an older's
 * slot.
 */
#define HINTS		4096u
#define HINT_NS		1000000000ull	/* 1 s */

struct hint {
	uint32_t ns;
	bool set;
	struct kv_key key;
	uint64_t at_ns;
	struct kv_remote_hdr hdr;
};

static struct hint *hint_slot(struct kv_store *s, uint32_t ns, const struct kv_key *key)
{
	uint64_t h = (key->lo ^ key->hi * 0x9e3779b97f4a7c15ull) + ns;

	if (!s->hints)
		s->hints = kv_xcalloc(HINTS, sizeof(struct hint));
	return &s->hints[(h ^ h >> 29) % HINTS];
}

static void hint_put(struct kv_store *s, uint32_t ns, const struct kv_remote_probe *p,
		     uint64_t now)
{
	struct hint *h = hint_slot(s, ns, &p->key);

	*h = (struct hint){ .ns = ns, .set = true, .key = p->key, .at_ns = now,
			    .hdr = p->hdr };
}

/* Take the hint for (ns, key), if there is a fresh one, into p. */
static bool hint_take(struct kv_store *s, uint32_t ns, const struct kv_key *key,
		      struct kv_remote_probe *p)
{
	struct hint *h = hint_slot(s, ns, key);

	if (!h->set || h->ns != ns || memcmp(&h->key, key, sizeof(*key)) ||
	    kv_now_ns() - h->at_ns > HINT_NS)
		return false;
	*p = (struct kv_remote_probe){ .salt = h->hdr.salt, .key = *key, .hdr = h->hdr };
	h->set = false;
	s->rt_hinted++;
	return true;
}

/* ---- fetches --------------------------------------------------------------- */

/* A fetch ends without its chunk: the record goes, what it cost counted. */
static void fetch_lost(struct kv_store *s, struct kv_chunk *c, int why)
{
	if (why == -KV_ECORRUPT)
		s->checksum_failures++;
	else if (why != -ENOENT)
		s->rt_fetch_failed++;
	if (c->copy[KV_TIER_DRAM].io_ext) {
		part_free(s, c, KV_TIER_DRAM, c->copy[KV_TIER_DRAM].io_ext);
		c->copy[KV_TIER_DRAM].io_ext = NULL;
	}
	c->copy[KV_TIER_DRAM].from = KV_TIER_NONE;
	chunk_drop(s, c);
}

/* What the cluster said of a fetch's chunk (its PROBE, or a hint): make
 * room and LOAD. 0: the LOAD is on its way; else the record is gone and
 * this is the miss. */
static int fetch_probed(struct kv_store *s, struct kv_chunk *c,
			const struct kv_remote_probe *p)
{
	struct tenant *t = &s->tenants[c->tenant];
	struct kv_remote_job *j;
	struct kv_move *m;
	struct kv_extent *e;
	int ret = p->result;

	if (!ret && (p->hdr.bytes == 0 || p->hdr.bytes > t->tiers[KV_TIER_DRAM].capacity))
		ret = -KV_ETOOBIG;	/* what a peer wrote may not fit here */
	if (ret) {
		fetch_lost(s, c, ret == -KV_ECORRUPT ? ret : -ENOENT);
		return -ENOENT;
	}
	c->bytes = p->hdr.bytes;
	c->tokens = p->hdr.tokens;
	c->position = p->hdr.position;
	c->has_parent = p->hdr.has_parent;
	c->parent = p->hdr.parent;
	/* Room as a put makes it; write-backs under way are not waited for. */
	ret = tier_alloc_evicting(s, t, KV_TIER_DRAM, c->bytes, &e);
	if (ret) {
		fetch_lost(s, c, ret);
		return ret;
	}
	c->copy[KV_TIER_DRAM].io_ext = e;
	read_start(s, KV_TIER_REMOTE);
	j = job_new(s);
	m = &j->m;
	move_init(s, m, c, e);
	m->op = KV_MOVE_LOAD;
	j->want = p->hdr;
	job_submit(s, j);
	return 0;
}

static void fetch_asked(struct kv_store *s, struct kv_remote_job *j)
{
	struct stier *st = &s->tiers[KV_TIER_REMOTE];

	if (j->one.result)
		st->misses++;
	else
		st->hits++;
	fetch_probed(s, j->m.cookie, &j->one);
}

int cluster_fetch(struct kv_store *s, struct tenant *t, uint32_t ns,
		  const struct kv_key *key)
{
	struct kv_remote_probe hint;
	struct kv_remote_job *j;
	struct kv_chunk *c;

	if (!ns_remote(s, ns) || t->chunks >= t->max_chunks)
		return -ENOENT;
	c = chunk_new(s, ns, key);
	c->tenant = (uint16_t)t->id;
	c->state = KV_CHUNK_FETCHING;
	c->tier = KV_TIER_REMOTE;
	c->copy[KV_TIER_DRAM].from = KV_TIER_REMOTE;	/* busy: nothing drops it */
	t->chunks++;
	s->chunks++;
	if (hint_take(s, ns, key, &hint))
		return fetch_probed(s, c, &hint) ? -ENOENT : -EINPROGRESS;
	j = job_new(s);
	j->m.op = KV_MOVE_OWN;
	j->own = KV_REMOTE_PROBE;
	j->m.cookie = c;
	j->one = (struct kv_remote_probe){ .salt = ns_salt(s, ns), .key = *key };
	j->probes = &j->one;
	j->n_probes = 1;
	job_submit(s, j);
	return -EINPROGRESS;
}

/* The chunk arrived, every part checked: commit it in DRAM. */
static void fetch_loaded(struct kv_store *s, struct kv_move *m)
{
	struct kv_chunk *c = m->cookie;
	struct kv_copy *k = &c->copy[KV_TIER_DRAM];
	struct stier *st = &s->tiers[KV_TIER_REMOTE];

	read_timed(s, KV_TIER_REMOTE, m->result ? 0 : c->bytes);
	if (m->result) {
		fetch_lost(s, c, m->result);
		return;
	}
	k->from = KV_TIER_NONE;
	k->ext = k->io_ext;
	k->io_ext = NULL;
	c->state = KV_CHUNK_COMMITTED;
	c->rflags |= RF_THERE;
	c->last_used_ns = kv_now_ns();
	for (unsigned t = 0; t < KV_TIER_MAX; t++)
		memset(&c->copy[t].node, 0, sizeof(c->copy[t].node));
	if (c->has_parent)
		link_parent(s, c, chunk_visible(s, c->ie.ns, &c->parent));
	tier_insert(s, c, KV_TIER_DRAM);
	st->promotions++;
	s->rt_fetched_bytes += c->bytes;
	move_committed(s, c);		/* its write-back to the SSD */
}

/* ---- lookups ---------------------------------------------------------------- */

int kv_store_lookup_remote(struct kv_store *s, uint32_t ns, const struct kv_key *keys,
			   uint32_t n, const uint8_t *tiers, struct kv_store_probe **out)
{
	struct kv_store_probe *p;
	struct kv_remote_job *j;
	uint32_t miss = 0;
	uint64_t salt;

	*out = NULL;
	if (!ns_remote(s, ns))
		return 0;
	for (uint32_t i = 0; i < n; i++)
		miss += tiers[i] == KV_TIER_NONE;
	if (!miss)
		return 0;
	salt = ns_salt(s, ns);
	p = kv_xcalloc(1, sizeof(*p));
	p->p = kv_xcalloc(miss, sizeof(*p->p));
	p->at = kv_xcalloc(miss, sizeof(*p->at));
	for (uint32_t i = 0; i < n; i++) {
		if (tiers[i] != KV_TIER_NONE)
			continue;
		p->p[p->n] = (struct kv_remote_probe){ .salt = salt, .key = keys[i] };
		p->at[p->n++] = i;
	}
	p->ns = ns;
	kv_list_add_tail(&s->probes, &p->link);
	j = job_new(s);
	j->m.op = KV_MOVE_OWN;
	j->own = KV_REMOTE_PROBE;
	j->m.cookie = p;
	j->probes = p->p;
	j->n_probes = p->n;
	job_submit(s, j);
	*out = p;
	return -EINPROGRESS;
}

int kv_store_probe_result(struct kv_store *s, struct kv_store_probe *p,
			  uint8_t *tiers, uint32_t n, uint32_t *leading)
{
	if (!p->done)
		return -EINPROGRESS;
	for (uint32_t i = 0; i < p->n; i++)
		if (p->at[i] < n && p->p[i].result == 0)
			tiers[p->at[i]] = KV_TIER_REMOTE;
	*leading = 0;
	while (*leading < n && tiers[*leading] != KV_TIER_NONE)
		(*leading)++;
	probe_free(p);
	return 0;
}

void kv_store_probe_cancel(struct kv_store *s, struct kv_store_probe *p)
{
	if (p->done)
		probe_free(p);
	else
		p->cancelled = true;
}

static void lookup_probed(struct kv_store *s, struct kv_remote_job *j)
{
	struct kv_store_probe *p = j->m.cookie;
	struct stier *st = &s->tiers[KV_TIER_REMOTE];
	uint64_t now = kv_now_ns();

	for (uint32_t i = 0; i < p->n; i++) {
		if (p->p[i].result == 0) {
			st->hits++;
			hint_put(s, p->ns, &p->p[i], now);
		} else {
			st->misses++;
		}
	}
	p->done = true;
	if (p->cancelled)
		probe_free(p);
}

/* ---- administration ----------------------------------------------------------- */

int kv_store_cluster(struct kv_store *s, struct kv_remote_view *v,
		     uint32_t *queued, uint32_t *inflight)
{
	struct kv_chunk *c;
	uint32_t n = 0;

	if (!s->remote)
		return -KV_ENOTIER;
	/* Counted by a walk rather than kept up: only an admin asks, rarely. */
	kv_list_for_each_entry(c, &s->rq, rlink)
		n++;
	*queued = n;
	*inflight = s->rq_inflight;
	return kv_remote_view(s->remote, v);
}

/* ---- the pump's part ------------------------------------------------------- */

void cluster_done(struct kv_store *s, struct kv_move *m)
{
	struct kv_remote_job *j = kv_remote_job_of(m);

	s->tiers[KV_TIER_REMOTE].inflight--;
	if (m->op == KV_MOVE_STORE)
		write_done(s, m);
	else if (m->op == KV_MOVE_LOAD)
		fetch_loaded(s, m);
	else if (j->probes == &j->one)	/* a fetch asks of one key, in the job */
		fetch_asked(s, j);
	else
		lookup_probed(s, j);
}
