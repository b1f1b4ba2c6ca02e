/*
 * remote.c - the remote tier (see remote.h): jobs in, jobs out, and the I/O
 * thread that runs them against the cluster.
 *
 * The thread takes up to conf.batch submitted jobs at a time and runs them
 * as one pipelined batch (tiers/rcluster.h: commands spread over the
 * masters, one deadline for all), so many small chunks cost one round trip
 * rather than one each. Values are read into a staging buffer of the job's
 * (a GET brings header and payload together), checked, and only then
 * copied or decoded into the host extent; values written are sent from
 * the host extent (raw) or the encoder's buffer, never copied again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/codec.h"
#include "tiers/rcluster.h"
#include "tiers/remote.h"

#define RETRY_NS	1000000000ull	/* a cluster that could not be reached is
					 * tried again this much later */
/* A batch carries at most this many bytes of values (one job more than
 * that runs alone). Every value of a batch is received into a staging
 * buffer, checked, hashed whole and copied out before the next batch
 * starts: four passes over the same bytes, which stay in the caches (2 MiB
 * of L2 per core, a share of L3) when a batch is a few MiB, and go to DRAM
 * each time when it is 64 MiB. Measured on the 2-core VM, 1 MiB chunks: 64
 * per batch 0.3 GB/s, 4 per batch 1.2 (docs/cluster.md). */
#define BATCH_BYTES	(4u << 20)
#define SPARES		128		/* idle staging buffers kept ... */
#define SPARE_BYTES	(256ull << 20)	/* ... holding at most this much: a
					 * fresh buffer per job costs the kernel
					 * zeroing its pages on first touch */

struct kv_remote {
	struct kv_remote_conf conf;	/* its strings are ours */
	uint32_t part;			/* part_bytes */
	/* the I/O thread's */
	struct kv_rc *rc;		/* NULL: not connected */
	struct kv_codec_ctx *cx;
	uint64_t retry_ns;		/* no connect before this */
	bool down;			/* the outage was logged */
	void *spare[SPARES];		/* idle staging buffers */
	size_t spare_cap[SPARES];
	unsigned n_spare;
	size_t spare_bytes;
	struct kv_remote_view next;	/* the view being built */
	/* shared, under lock */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct kv_remote_job *in_head, *in_tail;
	struct kv_remote_job *out_head, *out_tail;
	bool stop;
	int efd;
	struct kv_remote_stats st;	/* under lock */
	struct kv_remote_view view;	/* under lock: the last published (its
					 * st unused: st is) */
};

/* ---- the batch ---------------------------------------------------------------- */

/* What a batch needs, sized before anything is built, so that no array
 * moves under the pointers commands hold. */
struct batch {
	struct kv_rc_cmd *cmds;
	char (*names)[KV_REMOTE_NAME_MAX];
	unsigned char (*hdrs)[KV_REMOTE_HDR];
	struct iovec *iovs;
	size_t n, cap;
};

static size_t job_cmds(const struct kv_remote *r, const struct kv_remote_job *j)
{
	if (j->m.op == KV_MOVE_OWN)
		return j->n_probes;
	if (j->m.op == KV_MOVE_LOAD)
		return j->want.parts;
	/* STORE: at most as many parts as the raw bytes need. */
	return kv_remote_parts(j->m.bytes, r->part);
}

/* The bytes of values a job moves (a probe's are headers). */
static uint64_t job_bytes(const struct kv_remote_job *j)
{
	if (j->m.op == KV_MOVE_OWN)
		return (uint64_t)j->n_probes * KV_REMOTE_HDR;
	if (j->m.op == KV_MOVE_LOAD)
		return j->want.stored + (uint64_t)j->want.parts * KV_REMOTE_HDR;
	return j->m.bytes;
}

static struct kv_rc_cmd *batch_add(struct batch *b)
{
	size_t k = b->n++;

	b->cmds[k] = (struct kv_rc_cmd){ 0 };
	return &b->cmds[k];
}

/* A staging buffer of at least len bytes for j: an idle one when one is
 * large enough, else a new one. */
static int stage(struct kv_remote *r, struct kv_remote_job *j, size_t len)
{
	unsigned best = r->n_spare;

	if (j->stage_cap >= len)
		return 0;
	for (unsigned i = 0; i < r->n_spare; i++)
		if (r->spare_cap[i] >= len &&
		    (best == r->n_spare || r->spare_cap[i] < r->spare_cap[best]))
			best = i;
	free(j->stage);
	if (best < r->n_spare) {
		j->stage = r->spare[best];
		j->stage_cap = r->spare_cap[best];
		r->spare_bytes -= j->stage_cap;
		r->n_spare--;
		r->spare[best] = r->spare[r->n_spare];
		r->spare_cap[best] = r->spare_cap[r->n_spare];
		return 0;
	}
	len = (len + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);	/* serves the next too */
	j->stage = malloc(len);
	j->stage_cap = j->stage ? len : 0;
	return j->stage ? 0 : -ENOMEM;
}

/* j is done with its staging buffer: keep it for the next job, or free it. */
static void unstage(struct kv_remote *r, struct kv_remote_job *j)
{
	if (j->stage && r->n_spare < SPARES && r->spare_bytes + j->stage_cap <= SPARE_BYTES) {
		r->spare[r->n_spare] = j->stage;
		r->spare_cap[r->n_spare++] = j->stage_cap;
		r->spare_bytes += j->stage_cap;
	} else {
		free(j->stage);
	}
	j->stage = NULL;
	j->stage_cap = 0;
}

/*
 * STORE: encode (the codec asked for, or raw when it does not shrink the
 * chunk), then one SET per part: its header from the batch, its payload
 * from the stored bytes.
 */
static int store_build(struct kv_remote *r, struct batch *b, struct kv_remote_job *j)
{
	struct kv_move *m = &j->m;
	const void *stored = m->host;
	uint64_t len = m->bytes;
	uint8_t codec = KV_CODEC_NONE;
	struct kv_remote_hdr h;
	uint32_t parts;

	if (m->rec.codec != KV_CODEC_NONE && m->rec.codec < KV_CODEC_MAX && len) {
		size_t cap = kv_codec_bound(m->rec.codec, len);
		ssize_t enc;

		if (stage(r, j, cap))
			return -ENOMEM;
		enc = kv_codec_encode(r->cx, m->rec.codec, m->host, len, j->stage, cap);
		if (enc > 0) {
			stored = j->stage;
			len = (uint64_t)enc;
			codec = m->rec.codec;
		} else if (enc != -ENOSPC) {
			return (int)enc;
		}
	}
	parts = kv_remote_parts(len, r->part);
	if (!parts)
		return -EFBIG;
	h = (struct kv_remote_hdr){
		.codec = codec, .parts = parts, .salt = m->rec.salt, .key = m->key,
		.bytes = m->bytes, .stored = len, .tokens = m->rec.tokens,
		.position = m->rec.position, .has_parent = m->rec.has_parent,
		.parent = m->rec.has_parent ? m->rec.parent : (struct kv_key){ 0, 0 },
		.whole = kv_remote_whole(m->rec.salt, &m->key, stored, len),
	};
	m->rec.codec = codec;
	m->rec.stored = len;
	m->rec.checksum = h.whole;
	for (uint32_t i = 0; i < parts; i++) {
		struct kv_rc_cmd *c = batch_add(b);
		size_t k = b->n - 1;
		uint64_t off;

		kv_remote_part_span(len, r->part, i, &off, &h.len);
		h.part = i;
		kv_remote_hdr_write(&h, (const char *)stored + off, b->hdrs[k]);
		b->iovs[2 * k] = (struct iovec){ b->hdrs[k], KV_REMOTE_HDR };
		b->iovs[2 * k + 1] = (struct iovec){ (char *)stored + off, h.len };
		c->op = KV_RC_SET;
		c->key = b->names[k];
		c->key_len = kv_remote_name(b->names[k], m->rec.salt, &m->key, i);
		c->iov = &b->iovs[2 * k];
		c->iovcnt = 2;
	}
	return 0;
}

/* LOAD: one GET per part, each into its own place in the staging buffer. */
static int load_build(struct kv_remote *r, struct batch *b, struct kv_remote_job *j)
{
	const struct kv_remote_hdr *w = &j->want;
	size_t per = KV_REMOTE_HDR + (size_t)(w->parts > 1 ? w->len : w->stored);

	if (!w->parts || w->parts > KV_REMOTE_PARTS_MAX || w->bytes != j->m.bytes ||
	    j->m.host_len < j->m.bytes)
		return -EINVAL;
	/* The writer stores raw what a codec does not shrink: more than the
	 * chunk's bytes, or raw bytes of another size, is no chunk of ours
	 * (and would size the staging buffer past what the store allowed). */
	if (w->stored > w->bytes || (w->codec == KV_CODEC_NONE && w->stored != w->bytes) ||
	    per - KV_REMOTE_HDR > KV_RC_VALUE_MAX - KV_REMOTE_HDR)
		return -KV_ECORRUPT;
	if (stage(r, j, per * w->parts))
		return -ENOMEM;
	for (uint32_t i = 0; i < w->parts; i++) {
		struct kv_rc_cmd *c = batch_add(b);
		size_t k = b->n - 1;

		c->op = KV_RC_GET;
		c->key = b->names[k];
		c->key_len = kv_remote_name(b->names[k], w->salt, &w->key, i);
		c->buf = (char *)j->stage + per * i;
		c->cap = per;
	}
	return 0;
}

/* PROBE: part 0's header of each key, never its payload. */
static int probe_build(struct kv_remote *r, struct batch *b, struct kv_remote_job *j)
{
	if (stage(r, j, (size_t)j->n_probes * KV_REMOTE_HDR))
		return -ENOMEM;
	for (uint32_t i = 0; i < j->n_probes; i++) {
		struct kv_rc_cmd *c = batch_add(b);
		size_t k = b->n - 1;

		c->op = KV_RC_GETRANGE;
		c->key = b->names[k];
		c->key_len = kv_remote_name(b->names[k], j->probes[i].salt,
					    &j->probes[i].key, 0);
		c->start = 0;
		c->end = KV_REMOTE_HDR - 1;
		c->buf = (char *)j->stage + (size_t)i * KV_REMOTE_HDR;
		c->cap = KV_REMOTE_HDR;
	}
	return 0;
}

/* ---- results ------------------------------------------------------------------- */

/* The first error among a job's commands, counting misses and faults. */
static int cmds_result(struct kv_remote *r, const struct batch *b, size_t from, size_t n)
{
	int ret = 0;

	for (size_t k = from; k < from + n; k++) {
		int res = b->cmds[k].result;

		if (res == -ETIMEDOUT)
			r->st.timeouts++;
		else if (res && res != -ENOENT)
			r->st.errors++;
		if (res && !ret)
			ret = res;
	}
	return ret;
}

static int load_finish(struct kv_remote *r, const struct batch *b, size_t from,
		       struct kv_remote_job *j)
{
	const struct kv_remote_hdr *w = &j->want;
	size_t per = KV_REMOTE_HDR + (size_t)(w->parts > 1 ? w->len : w->stored);
	struct kv_move *m = &j->m;
	uint64_t at = 0;
	char *dst;

	for (uint32_t i = 0; i < w->parts; i++) {
		const struct kv_rc_cmd *c = &b->cmds[from + i];
		struct kv_remote_hdr h;
		uint64_t off;
		uint32_t len;

		kv_remote_part_span(w->stored, w->parts > 1 ? w->len : (uint32_t)w->stored,
				    i, &off, &len);
		if (kv_remote_check(c->buf, c->len, w->salt, &w->key, i, &h) ||
		    !kv_remote_same(&h, w) || h.len != len || off != at)
			return -KV_ECORRUPT;
		at += len;
	}
	if (at != w->stored)
		return -KV_ECORRUPT;
	/* The payloads, in order, without their headers: into the host extent
	 * when raw, else packed down in the staging buffer for the decoder
	 * (each moves down, never over one not moved yet). */
	dst = w->codec == KV_CODEC_NONE ? m->host : j->stage;
	at = 0;
	for (uint32_t i = 0; i < w->parts; i++) {
		const char *src = (const char *)j->stage + per * i + KV_REMOTE_HDR;
		uint32_t len = (uint32_t)(b->cmds[from + i].len - KV_REMOTE_HDR);

		memmove(dst + at, src, len);
		at += len;
	}
	if (kv_remote_whole(w->salt, &w->key, dst, w->stored) != w->whole)
		return -KV_ECORRUPT;
	if (w->codec != KV_CODEC_NONE &&
	    kv_codec_decode(r->cx, w->codec, dst, w->stored, m->host, m->bytes))
		return -KV_ECORRUPT;
	return 0;
}

static void probe_finish(struct kv_remote *r, const struct batch *b, size_t from,
			 struct kv_remote_job *j)
{
	for (uint32_t i = 0; i < j->n_probes; i++) {
		const struct kv_rc_cmd *c = &b->cmds[from + i];
		struct kv_remote_probe *p = &j->probes[i];

		p->result = c->result;
		if (!p->result && c->len == 0)	/* GETRANGE of a missing key */
			p->result = -ENOENT;
		else if (!p->result && c->len != KV_REMOTE_HDR)
			p->result = -KV_ECORRUPT;
		else if (!p->result)
			p->result = kv_remote_check_hdr(c->buf, p->salt, &p->key, 0, &p->hdr);
		if (p->result == -KV_ECORRUPT || p->result == -KV_EFORMAT ||
		    p->result == -ESTALE)
			r->st.corrupt++;
		r->st.probes++;
		if (!p->result)
			r->st.probe_hits++;
	}
}

/* ---- the I/O thread ------------------------------------------------------------ */

static void finish(struct kv_remote *r, struct kv_remote_job *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&r->lock);
	j->next = NULL;
	if (r->out_tail)
		r->out_tail->next = j;
	else
		r->out_head = j;
	r->out_tail = j;
	pthread_mutex_unlock(&r->lock);
	if (write(r->efd, &one, sizeof(one)) < 0)
		kv_log(KV_ERR, KV_LOG_TIER, "remote: eventfd write: %s", strerror(errno));
}

/* Connected, or why not (logged once per outage). */
static void rc_conf_of(const struct kv_remote_conf *c, struct kv_rc_conf *rc)
{
	*rc = (struct kv_rc_conf){
		.seeds = c->seeds, .user = c->user,
		.password = c->password, .timeout_ms = c->timeout_ms,
		.conns = c->conns ? c->conns : 1,
		.tls = c->tls, .tls_ca_file = c->tls_ca_file,
		.tls_cert_file = c->tls_cert_file, .tls_key_file = c->tls_key_file,
	};
}

static int connect_cluster(struct kv_remote *r)
{
	struct kv_rc_conf rc;
	int ret;

	rc_conf_of(&r->conf, &rc);

	if (r->rc)
		return 0;
	if (kv_now_ns() < r->retry_ns)
		return -EHOSTDOWN;
	ret = kv_rc_open(&r->rc, &rc);
	if (ret) {
		r->retry_ns = kv_now_ns() + RETRY_NS;
		if (!r->down)
			kv_log(KV_WARN, KV_LOG_TIER, "remote: the cluster at %s cannot be reached (%s): its chunks are misses until it answers",
			       r->conf.seeds, kv_strerror(ret));
		r->down = true;
		return -EHOSTDOWN;
	}
	if (r->down)
		kv_log(KV_INFO, KV_LOG_TIER, "remote: the cluster at %s answers again",
		       r->conf.seeds);
	r->down = false;
	return 0;
}

/* Run jobs (a list through next) as one batch; each gets its result. */
static void run_batch(struct kv_remote *r, struct kv_remote_job *list)
{
	struct batch b = { 0 };
	struct kv_remote_job *j;
	size_t *from, n = 0, k = 0;
	int down = connect_cluster(r);

	for (j = list; j; j = j->next)
		b.cap += job_cmds(r, j), n++;
	b.cmds = kv_xcalloc(b.cap + 1, sizeof(*b.cmds));
	b.names = kv_xcalloc(b.cap + 1, sizeof(*b.names));
	b.hdrs = kv_xcalloc(b.cap + 1, sizeof(*b.hdrs));
	b.iovs = kv_xcalloc(2 * b.cap + 2, sizeof(*b.iovs));
	from = kv_xcalloc(n, sizeof(*from));
	for (j = list; j; j = j->next, k++) {
		from[k] = b.n;
		j->m.result = down;
		if (down)
			continue;
		j->m.result = j->m.op == KV_MOVE_OWN ? probe_build(r, &b, j) :
			      j->m.op == KV_MOVE_LOAD ? load_build(r, &b, j) :
			      store_build(r, &b, j);
		if (j->m.result)
			b.n = from[k];	/* nothing of it runs */
	}
	if (b.n)
		kv_rc_run(r->rc, b.cmds, b.n);
	k = 0;
	pthread_mutex_lock(&r->lock);
	if (r->rc) {
		struct kv_rc_stats rs;

		kv_rc_stats(r->rc, &rs);
		r->st.masters = rs.masters;
		r->st.masters_down = rs.masters_down;
	}
	for (j = list; j; j = j->next, k++) {
		size_t cnt = (j->next ? from[k + 1] : b.n) - from[k];
		struct kv_move *m = &j->m;

		if (j->m.op == KV_MOVE_OWN) {
			if (m->result)
				for (uint32_t i = 0; i < j->n_probes; i++)
					j->probes[i].result = m->result;
			else
				probe_finish(r, &b, from[k], j);
			continue;
		}
		if (!m->result)
			m->result = cmds_result(r, &b, from[k], cnt);
		if (!m->result && m->op == KV_MOVE_LOAD) {
			m->result = load_finish(r, &b, from[k], j);
			if (m->result == -KV_ECORRUPT)
				r->st.corrupt++;
		}
		if (m->op == KV_MOVE_STORE) {
			r->st.stores++;
			if (m->result)
				r->st.store_failures++;
			else
				r->st.store_bytes += m->bytes;
		} else {
			r->st.loads++;
			if (m->result)
				r->st.load_failures++;
			else
				r->st.load_bytes += m->bytes;
		}
	}
	r->st.up = !down;
	pthread_mutex_unlock(&r->lock);
	free(b.cmds);
	free(b.names);
	free(b.hdrs);
	free(b.iovs);
	free(from);
}

/* ---- the view: the cluster as this thread saw it last ---------------------- */

struct view_walk {
	struct kv_remote_view *v;
	const char *addrs[KV_REMOTE_VIEW_NODES];	/* the client's names of
							 * v->nodes[], to match
							 * kv_rc_slot_owner()'s */
	bool remap;			/* a node's slots changed */
};

static void view_node(void *arg, const struct kv_rc_node_info *ni)
{
	struct view_walk *w = arg;
	struct kv_remote_view *v = w->v;
	struct kv_remote_node *n;

	v->nodes_known++;
	if (v->n_nodes == KV_REMOTE_VIEW_NODES)
		return;
	/* The client only appends nodes, so nodes[i] was this node last time,
	 * and its ranges still hold unless its slots changed. */
	n = &v->nodes[v->n_nodes];
	w->addrs[v->n_nodes++] = ni->addr;
	if (n->slots != ni->slots)
		w->remap = true;
	snprintf(n->addr, sizeof(n->addr), "%s", ni->addr);
	n->slots = ni->slots;
	n->conns_open = ni->conns_open;
	n->state = ni->state;
}

static void view_range(struct view_walk *w, const char *owner, unsigned first,
		       unsigned last)
{
	struct kv_remote_view *v = w->v;

	for (unsigned i = 0; i < v->n_nodes; i++) {
		struct kv_remote_node *n = &v->nodes[i];

		if (w->addrs[i] != owner)
			continue;
		if (n->n_ranges < KV_REMOTE_VIEW_RANGES)
			n->ranges[n->n_ranges++] = (struct kv_remote_range){
				(uint16_t)first, (uint16_t)last };
		n->ranges_total++;
		return;
	}
}

/* Every master's slot ranges, from the map: runs of slots of one owner. */
static void view_ranges(const struct kv_rc *rc, struct view_walk *w)
{
	const char *run = kv_rc_slot_owner(rc, 0);
	unsigned first = 0;

	for (unsigned i = 0; i < w->v->n_nodes; i++)
		w->v->nodes[i].n_ranges = w->v->nodes[i].ranges_total = 0;
	for (unsigned s = 1; s <= KV_RC_SLOTS; s++) {
		const char *owner = s < KV_RC_SLOTS ? kv_rc_slot_owner(rc, s) : NULL;

		if (s < KV_RC_SLOTS && owner == run)
			continue;
		if (run)
			view_range(w, run, first, s - 1);
		run = owner;
		first = s;
	}
}

/* Build the view and hand it to the loop thread. Walking the 16384 slots
 * is left for when the map changed, so a batch pays for a few nodes. */
static void view_publish(struct kv_remote *r)
{
	struct kv_remote_view *v = &r->next;
	struct view_walk w = { .v = v };
	struct kv_rc_stats rs;

	if (!r->rc)
		return;
	kv_rc_stats(r->rc, &rs);
	w.remap = !v->taken_ns || rs.refreshes != v->refreshes;
	v->nodes_known = v->n_nodes = 0;
	kv_rc_nodes(r->rc, view_node, &w);
	if (w.remap)
		view_ranges(r->rc, &w);
	v->taken_ns = kv_now_ns();
	v->moved = rs.moved;
	v->asks = rs.asks;
	v->refreshes = rs.refreshes;
	v->conn_errors = rs.conn_errors + rs.proto_errors;
	pthread_mutex_lock(&r->lock);
	r->view = *v;
	pthread_mutex_unlock(&r->lock);
}

static void *io_thread(void *arg)
{
	struct kv_remote *r = arg;

	for (;;) {
		struct kv_remote_job *list, *last, *next;
		unsigned n = 1;
		uint64_t bytes;

		pthread_mutex_lock(&r->lock);
		while (!r->in_head && !r->stop)
			pthread_cond_wait(&r->cond, &r->lock);
		if (!r->in_head) {		/* stopping, nothing left */
			pthread_mutex_unlock(&r->lock);
			break;
		}
		list = last = r->in_head;
		bytes = job_bytes(last);
		while (last->next && n < r->conf.batch &&
		       bytes + job_bytes(last->next) <= BATCH_BYTES) {
			last = last->next;
			bytes += job_bytes(last);
			n++;
		}
		r->in_head = last->next;
		if (!r->in_head)
			r->in_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&r->lock);
		run_batch(r, list);
		view_publish(r);	/* before the jobs: the loop sees both */
		for (; list; list = next) {
			next = list->next;
			unstage(r, list);
			finish(r, list);
		}
	}
	return NULL;
}

/* ---- the loop thread's side ---------------------------------------------------- */

int kv_remote_open(struct kv_remote **out, const struct kv_remote_conf *conf)
{
	struct kv_rc_conf rc;
	struct kv_remote *r;
	int ret;

	if (!conf->seeds || !*conf->seeds || !conf->timeout_ms ||
	    (conf->part_bytes && conf->part_bytes < 4096))
		return -EINVAL;
	/* TLS files that do not load would fail every connect: refuse now. */
	rc_conf_of(conf, &rc);
	ret = kv_rc_tls_check(&rc);
	if (ret)
		return ret;
	r = kv_xcalloc(1, sizeof(*r));
	r->conf = *conf;
	r->conf.seeds = kv_xstrdup(conf->seeds);
	r->conf.user = conf->user ? kv_xstrdup(conf->user) : NULL;
	r->conf.password = conf->password ? kv_xstrdup(conf->password) : NULL;
	r->conf.tls_ca_file = conf->tls_ca_file ? kv_xstrdup(conf->tls_ca_file) : NULL;
	r->conf.tls_cert_file = conf->tls_cert_file ? kv_xstrdup(conf->tls_cert_file) : NULL;
	r->conf.tls_key_file = conf->tls_key_file ? kv_xstrdup(conf->tls_key_file) : NULL;
	r->conf.batch = conf->batch ? conf->batch : 64;
	r->part = conf->part_bytes ? conf->part_bytes : KV_REMOTE_PART_DEFAULT;
	r->cx = kv_codec_ctx_new(conf->level);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		ret = -errno;
		kv_remote_close(r);
		return ret;
	}
	ret = pthread_create(&r->thread, NULL, io_thread, r);
	if (ret) {
		kv_remote_close(r);
		return -ret;
	}
	r->started = true;
	*out = r;
	return 0;
}

static void free_list(struct kv_remote_job *j)
{
	while (j) {
		struct kv_remote_job *next = j->next;

		kv_remote_free(j);
		j = next;
	}
}

void kv_remote_close(struct kv_remote *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);	/* it finishes what it has */
	}
	free_list(r->out_head);
	for (unsigned i = 0; i < r->n_spare; i++)
		free(r->spare[i]);
	kv_rc_close(r->rc);
	kv_codec_ctx_free(r->cx);
	if (r->efd >= 0)
		close(r->efd);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	if (r->conf.password)	/* not left in freed memory */
		explicit_bzero((char *)r->conf.password, strlen(r->conf.password));
	free((char *)r->conf.seeds);
	free((char *)r->conf.user);
	free((char *)r->conf.password);
	free((char *)r->conf.tls_ca_file);
	free((char *)r->conf.tls_cert_file);
	free((char *)r->conf.tls_key_file);
	free(r);
}

struct kv_remote_job *kv_remote_new(void)
{
	return kv_xcalloc(1, sizeof(struct kv_remote_job));
}

void kv_remote_free(struct kv_remote_job *j)
{
	if (!j)
		return;
	free(j->stage);
	free(j);
}

void kv_remote_submit(struct kv_remote *r, struct kv_remote_job *j)
{
	j->next = NULL;
	j->m.result = 0;
	pthread_mutex_lock(&r->lock);
	if (r->in_tail)
		r->in_tail->next = j;
	else
		r->in_head = j;
	r->in_tail = j;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

int kv_remote_event_fd(const struct kv_remote *r)
{
	return r->efd;
}

struct kv_remote_job *kv_remote_reap(struct kv_remote *r)
{
	struct kv_remote_job *list;
	uint64_t n;

	if (read(r->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_TIER, "remote: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&r->lock);
	list = r->out_head;
	r->out_head = r->out_tail = NULL;
	pthread_mutex_unlock(&r->lock);
	return list;
}

void kv_remote_stats(struct kv_remote *r, struct kv_remote_stats *st)
{
	pthread_mutex_lock(&r->lock);
	*st = r->st;
	pthread_mutex_unlock(&r->lock);
}

int kv_remote_view(struct kv_remote *r, struct kv_remote_view *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->view;
	out->st = r->st;
	pthread_mutex_unlock(&r->lock);
	return out->taken_ns ? 0 : -ENOTCONN;
}

/* ---- the tier table: the registry's view of the mover ------------------------ */

static void remote_close_op(void *priv)
{
	kv_remote_close(priv);
}

static struct kv_move *remote_move_new_op(void *priv)
{
	struct kv_remote_job *j = kv_remote_new();

	j->m.tier = KV_TIER_REMOTE;
	return &j->m;
}

static void remote_move_free_op(void *priv, struct kv_move *m)
{
	kv_remote_free(kv_remote_job_of(m));
}

static void remote_submit_op(void *priv, struct kv_move *m)
{
	kv_remote_submit(priv, kv_remote_job_of(m));
}

/* The reaped jobs as moves, linked by m.next in the same order. */
static struct kv_move *remote_reap_op(void *priv)
{
	struct kv_remote_job *j = kv_remote_reap(priv);
	struct kv_move *head = NULL, **tail = &head;

	for (; j; j = j->next) {
		*tail = &j->m;
		tail = &j->m.next;
	}
	*tail = NULL;
	return head;
}

static int remote_event_fd_op(void *priv)
{
	return kv_remote_event_fd(priv);
}

/* Opened by the store (kv_remote_open()), which hands the core priv. */
const struct kv_tier_ops kv_tier_remote = {
	.name		= "remote",
	.id		= KV_TIER_REMOTE,
	.close		= remote_close_op,
	.move_new	= remote_move_new_op,
	.move_free	= remote_move_free_op,
	.submit		= remote_submit_op,
	.reap		= remote_reap_op,
	.event_fd	= remote_event_fd_op,
};
