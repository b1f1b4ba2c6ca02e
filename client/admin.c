/*
 * admin.c - libkvc's administration calls, for kvctl and operators:
 * listing and dropping namespaces, stats, ls, inspect, evict, prefetch,
 * flush, score, policy, the bandwidth and plan reports, tenants, the
 * remote tier (CLUSTER) and ping.
 *
 * Each is one exchange over conn.c under the handle's lock (batches split
 * at the daemon's limits), its reply checked like any other.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "lib/errors.h"
#include "lib/proto.h"

/* ---- namespaces -------------------------------------------------------------- */

int kvc_ns_drop(struct kvc *c, const char *name, uint64_t *chunks, uint64_t *bytes)
{
	const struct kv_wire_ns_drop_reply *r;
	int ret;

	if (!kvci_ns_name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_ns_name_rpc(c, KV_OP_NS_DROP, name, NULL, sizeof(*r));
	if (!ret) {
		r = (const struct kv_wire_ns_drop_reply *)c->rep;
		if (chunks)
			*chunks = r->chunks;
		if (bytes)
			*bytes = r->bytes;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ns_list(struct kvc *c, uint32_t *cursor, struct kvc_ns_info *out,
		size_t max)
{
	const struct kv_wire_ns_list_reply *r;
	const struct kv_wire_ns_entry *e;
	struct kv_wire_ns_list *q;
	struct kv_wire_hdr h;
	int ret;

	if (!cursor || !out || max == 0)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	q = kvci_req_body(c, sizeof(*q));
	if (!q) {
		ret = -ENOMEM;
		goto out;
	}
	q->cursor = *cursor;
	q->limit = max < KV_PROTO_NS_PAGE ? (uint32_t)max : KV_PROTO_NS_PAGE;
	ret = kvci_rpc(c, KV_OP_NS_LIST, 0, sizeof(*q), &h);
	if (ret)
		goto out;
	if (h.count > q->limit || h.len != sizeof(*r) + h.count * sizeof(*e)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
		goto out;
	}
	r = (const struct kv_wire_ns_list_reply *)c->rep;
	e = (const struct kv_wire_ns_entry *)(r + 1);
	for (uint32_t i = 0; i < h.count; i++) {
		struct kvc_ns_info *o = &out[i];
		size_t len = e[i].name_len <= KV_PROTO_NS_MAX ? e[i].name_len : 0;

		memset(o, 0, sizeof(*o));
		o->ns = e[i].ns;
		o->uid = e[i].uid;
		o->salt = e[i].salt;
		o->chunks = e[i].chunks;
		o->bytes = e[i].bytes;
		o->pending = e[i].state == KV_NS_PENDING;
		memcpy(o->name, e[i].name, len);
	}
	*cursor = r->next_cursor;
	ret = (int)h.count;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* ---- administration ---------------------------------------------------------------- */

int kvc_stats(struct kvc *c, struct kvc_stats *st)
{
	const struct kv_wire_stats *g;
	const struct kv_wire_tier_stats *t;
	struct kv_wire_hdr h;
	size_t glen;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = kvci_req_body(c, 0) ? kvci_rpc(c, KV_OP_STATS, 0, 0, &h) : -ENOMEM;
	if (ret)
		goto out;
	g = (const struct kv_wire_stats *)c->rep;
	glen = h.count <= KVC_MAX_TIERS && h.len >= h.count * sizeof(*t) ?
	       h.len - h.count * sizeof(*t) : 0;
	if (glen != sizeof(*g) || g->n_tiers != h.count) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
		goto out;
	}
	memset(st, 0, sizeof(*st));
	st->n_tiers = g->n_tiers;
	st->connections = g->connections;
	st->pinned_chunks = g->pinned_chunks;
	st->pending_chunks = g->pending_chunks;
	st->checksum_failures = g->checksum_failures;
	st->uptime_ms = g->uptime_ms;
	st->namespaces = g->namespaces;
	st->writeback_failures = g->writeback_failures;
	st->writeback_lost = g->writeback_lost;
	st->ssd_records_missing = g->ssd_records_missing;
	st->ssd_records_wrong_ns = g->ssd_records_wrong_ns;
	st->records = g->records;
	st->max_records = g->max_records;
	st->meta_bytes = g->meta_bytes;
	st->plans_loaded = g->plans_loaded;
	st->plans_computed = g->plans_computed;
	st->plans_both = g->plans_both;
	st->plan_tokens_loaded = g->plan_tokens_loaded;
	st->plan_tokens_computed = g->plan_tokens_computed;
	t = (const struct kv_wire_tier_stats *)(g + 1);
	for (unsigned i = 0; i < g->n_tiers; i++) {
		struct kvc_tier_stats *o = &st->tiers[i];

		memcpy(o->name, t[i].name, sizeof(t[i].name));
		memcpy(o->policy, t[i].policy, sizeof(t[i].policy));
		o->capacity_bytes = t[i].capacity_bytes;
		o->used_bytes = t[i].used_bytes;
		o->chunks = t[i].chunks;
		o->hits = t[i].hits;
		o->misses = t[i].misses;
		o->evictions = t[i].evictions;
		o->promotions = t[i].promotions;
		o->demotions = t[i].demotions;
		o->alloc_failures = t[i].alloc_failures;
		o->read_bw = t[i].read_bw;
		o->read_samples = t[i].read_samples;
		o->read_bytes = t[i].read_bytes;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static void entry_out(const struct kv_wire_entry *e, struct kvc_entry *o)
{
	memset(o, 0, sizeof(*o));
	memcpy(&o->key, &e->key, sizeof(o->key));
	memcpy(&o->parent, &e->parent, sizeof(o->parent));
	o->has_parent = e->has_parent;
	o->ns = e->ns;
	o->tier = e->tier;
	o->bytes = e->bytes;
	o->offset = e->offset;
	o->tokens = e->tokens;
	o->position = e->position;
	o->pins = e->pins;
	o->children = e->children;
	o->hits = e->hits;
	o->age_ms = e->age_ms;
}

int kvc_ls(struct kvc *c, uint32_t ns, uint8_t tier, uint64_t *cursor,
	   struct kvc_entry *out, size_t max)
{
	const struct kv_wire_ls_reply *r;
	const struct kv_wire_entry *e;
	struct kv_wire_ls *ls;
	struct kv_wire_hdr h;
	int ret;

	if (!cursor || !out || max == 0)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ls = kvci_req_body(c, sizeof(*ls));
	if (!ls) {
		ret = -ENOMEM;
		goto out;
	}
	ls->ns = ns;
	ls->tier = tier;
	ls->cursor = *cursor;
	ls->limit = max < c->max_batch ? (uint32_t)max : c->max_batch;
	ret = kvci_rpc(c, KV_OP_LS, 0, sizeof(*ls), &h);
	if (ret)
		goto out;
	if (h.count > ls->limit || h.len != sizeof(*r) + h.count * sizeof(*e)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
		goto out;
	}
	r = (const struct kv_wire_ls_reply *)c->rep;
	e = (const struct kv_wire_entry *)(r + 1);
	for (uint32_t i = 0; i < h.count; i++)
		entry_out(&e[i], &out[i]);
	*cursor = r->next_cursor;
	ret = (int)h.count;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_inspect(struct kvc *c, uint32_t ns, const struct kvc_key *key,
		struct kvc_entry *out)
{
	struct kv_wire_hdr h;
	int ret;

	if (!key || !out)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_keys_req(c, ns, key, 1);
	if (!ret)
		ret = kvci_rpc(c, KV_OP_INSPECT, 1, kv_proto_keys_len(1), &h);
	if (!ret && h.len != sizeof(struct kv_wire_entry)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (!ret)
		entry_out((const struct kv_wire_entry *)c->rep, out);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_evict(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	      int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_status_op(c, KV_OP_EVICT, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_prefetch(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		 size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_status_op(c, KV_OP_PREFETCH, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_flush(struct kvc *c, uint8_t tier, unsigned flags,
	      struct kvc_flush_result *res)
{
	const struct kv_wire_flush_reply *r;
	struct kv_wire_flush *f;
	struct kv_wire_hdr h;
	int ret;

	pthread_mutex_lock(&c->lock);
	f = kvci_req_body(c, sizeof(*f));
	if (!f) {
		ret = -ENOMEM;
		goto out;
	}
	f->tier = tier;
	f->flags = flags;
	ret = kvci_rpc(c, KV_OP_FLUSH, 0, sizeof(*f), &h);
	if (!ret && h.len != sizeof(*r)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (!ret) {
		r = (const struct kv_wire_flush_reply *)c->rep;
		if (res) {
			res->chunks = r->chunks;
			res->bytes = r->bytes;
			res->skipped = r->skipped;
			res->why = r->status ? -r->why : 0;
		}
		/* Refusals by the tier below come with the figures. */
		if (r->status)
			ret = r->status == KV_EREFUSED ? -KVC_EREFUSED : -KVC_EPROTO;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_score(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	      const float *scores, size_t n, int *status)
{
	uint32_t step;
	int ok = 0, ret = 0;

	if (n > INT32_MAX || (n && (!keys || !scores)))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = kvci_batch_of(c, sizeof(struct kv_wire_key) + sizeof(float));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kv_wire_keys *k = kvci_req_body(c, kv_proto_score_len(m));
		struct kv_wire_hdr h;
		const int32_t *st;

		if (!k) {
			ret = -ENOMEM;
			break;
		}
		k->ns = ns;
		memcpy(k + 1, keys + i, (size_t)m * sizeof(*keys));
		memcpy((char *)k + kv_proto_keys_len(m), scores + i, (size_t)m * sizeof(float));
		ret = kvci_rpc(c, KV_OP_SCORE, m, kv_proto_score_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_status_len(m))) {
			kvci_conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			break;
		st = (const int32_t *)c->rep;
		for (uint32_t j = 0; j < m; j++) {
			if (status)
				status[i + j] = -st[j];
			ok += st[j] == 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : ok;
}

int kvc_policy(struct kvc *c, uint8_t tier, const char *set, char name[16])
{
	struct kv_wire_policy *p;
	struct kv_wire_hdr h;
	int ret;

	if (set && (!*set || strlen(set) >= sizeof(p->name)))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	p = kvci_req_body(c, sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	p->tier = tier;
	if (set) {
		p->set = 1;
		memcpy(p->name, set, strlen(set));
	}
	ret = kvci_rpc(c, KV_OP_POLICY, 0, sizeof(*p), &h);
	if (!ret && h.len != sizeof(*p)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (!ret && name) {
		memcpy(name, ((const struct kv_wire_policy *)c->rep)->name, 15);
		name[15] = '\0';
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Send a report of len bytes (op's body) whose reply is a status alone. */
static int report(struct kvc *c, unsigned op, const void *body, size_t len)
{
	struct kv_wire_hdr h;
	void *p;
	int ret;

	pthread_mutex_lock(&c->lock);
	p = kvci_req_body(c, len);
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(p, body, len);
	ret = kvci_rpc(c, op, 0, len, &h);
	if (!ret && (h.len || h.count)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_report_bw(struct kvc *c, uint8_t tier, uint64_t bytes, uint64_t ns)
{
	const struct kv_wire_bw_report b = { .tier = tier, .bytes = bytes, .ns = ns };

	return report(c, KV_OP_BW_REPORT, &b, sizeof(b));
}

int kvc_report_plan(struct kvc *c, unsigned kind, uint64_t tokens_loaded,
		    uint64_t tokens_computed)
{
	const struct kv_wire_plan_report p = {
		.kind = kind,
		.tokens_loaded = tokens_loaded,
		.tokens_computed = tokens_computed,
	};

	return report(c, KV_OP_PLAN_REPORT, &p, sizeof(p));
}

int kvc_tenants(struct kvc *c, struct kvc_tenant *out, size_t max)
{
	const struct kv_wire_tenant *w;
	struct kv_wire_hdr h;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = kvci_req_body(c, 0) ? kvci_rpc(c, KV_OP_TENANTS, 0, 0, &h) : -ENOMEM;
	if (!ret && (h.count > 4096 || h.len != h.count * sizeof(*w))) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (ret)
		goto out;
	w = (const struct kv_wire_tenant *)c->rep;
	for (uint32_t i = 0; i < h.count && i < max; i++) {
		struct kvc_tenant *t = &out[i];

		memset(t, 0, sizeof(*t));
		memcpy(t->name, w[i].name, sizeof(w[i].name));
		t->n_uids = w[i].n_uids;
		for (unsigned u = 0; u < w[i].n_uids && u < KV_TENANT_UIDS_SHOWN; u++)
			t->uids[u] = w[i].uids[u];
		t->connections = w[i].connections;
		for (unsigned k = 0; k < KV_TIER_MAX; k++) {
			t->capacity[k] = w[i].capacity[k];
			t->used[k] = w[i].used[k];
			t->chunks[k] = w[i].chunks[k];
		}
		t->namespaces = w[i].namespaces;
		t->max_namespaces = w[i].max_namespaces;
		t->uncommitted = w[i].uncommitted;
		t->max_uncommitted = w[i].max_uncommitted;
		t->records = w[i].records;
		t->max_records = w[i].max_records;
	}
	ret = (int)h.count;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* ---- the remote tier ------------------------------------------------------- */

_Static_assert(KVC_CLUSTER_NODES == KV_CLUSTER_NODES_MAX &&
	       KVC_CLUSTER_RANGES == KV_CLUSTER_RANGES_MAX &&
	       sizeof(((struct kvc_cluster_node *)0)->addr) == KV_CLUSTER_ADDR_BYTES,
	       "a reply fits struct kvc_cluster whole");

/* A node entry as the daemon builds it: a name that ends, at most every
 * slot, a positive error code, its ranges in order, none left out unless
 * ranges[] is full. */
static bool cluster_node_ok(const struct kv_wire_cluster_node *n)
{
	if (!memchr(n->addr, '\0', sizeof(n->addr)) || n->slots > KV_CLUSTER_SLOTS ||
	    n->state < 0 || n->n_ranges > KV_CLUSTER_RANGES_MAX ||
	    n->ranges_total < n->n_ranges ||
	    (n->ranges_total > n->n_ranges && n->n_ranges < KV_CLUSTER_RANGES_MAX))
		return false;
	for (unsigned i = 0; i < n->n_ranges; i++) {
		const struct kv_wire_slot_range *r = &n->ranges[i];

		if (r->first > r->last || r->last >= KV_CLUSTER_SLOTS ||
		    (i && r->first <= n->ranges[i - 1].last))
			return false;
	}
	return true;
}

static bool cluster_ok(const struct kv_wire_hdr *h, const struct kv_wire_cluster *w)
{
	static const struct kv_wire_cluster none;
	const struct kv_wire_cluster_node *n = (const struct kv_wire_cluster_node *)(w + 1);
	const uint32_t known = KV_CLUSTER_REMOTE | KV_CLUSTER_UP | KV_CLUSTER_SEEN;

	if (h->count > KV_CLUSTER_NODES_MAX || h->len != kv_proto_cluster_len(h->count))
		return false;
	if (!(w->flags & KV_CLUSTER_REMOTE))	/* no remote tier: nothing else */
		return !memcmp(w, &none, sizeof(*w));
	if ((w->flags & ~known) || w->n_nodes != h->count || w->nodes_known < w->n_nodes ||
	    w->masters_down > w->masters || w->pad ||
	    (!(w->flags & KV_CLUSTER_SEEN) && w->n_nodes))
		return false;
	for (uint32_t i = 0; i < h->count; i++)
		if (!cluster_node_ok(&n[i]))
			return false;
	return true;
}

static void cluster_node_out(const struct kv_wire_cluster_node *n, struct kvc_cluster_node *o)
{
	memcpy(o->addr, n->addr, sizeof(o->addr));
	o->slots = n->slots;
	o->conns_open = n->conns_open;
	o->state = -n->state;
	o->n_ranges = n->n_ranges;
	o->ranges_total = n->ranges_total;
	for (unsigned i = 0; i < n->n_ranges; i++) {
		o->ranges[i].first = n->ranges[i].first;
		o->ranges[i].last = n->ranges[i].last;
	}
}

int kvc_cluster(struct kvc *c, struct kvc_cluster *out)
{
	const struct kv_wire_cluster *w;
	struct kv_wire_hdr h;
	int ret;

	if (!out)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_req_body(c, 0) ? kvci_rpc(c, KV_OP_CLUSTER, 0, 0, &h) : -ENOMEM;
	if (ret)
		goto out;
	w = (const struct kv_wire_cluster *)c->rep;
	if (!cluster_ok(&h, w)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->remote = !!(w->flags & KV_CLUSTER_REMOTE);
	out->up = !!(w->flags & KV_CLUSTER_UP);
	out->seen = !!(w->flags & KV_CLUSTER_SEEN);
	out->masters = w->masters;
	out->masters_down = w->masters_down;
	out->nodes_known = w->nodes_known;
	out->n_nodes = w->n_nodes;
	out->write_queue = w->write_queue;
	out->write_inflight = w->write_inflight;
	out->age_ms = w->age_ms;
	out->stores = w->stores;
	out->store_bytes = w->store_bytes;
	out->store_failures = w->store_failures;
	out->loads = w->loads;
	out->load_bytes = w->load_bytes;
	out->load_failures = w->load_failures;
	out->probes = w->probes;
	out->probe_hits = w->probe_hits;
	out->corrupt = w->corrupt;
	out->timeouts = w->timeouts;
	out->errors = w->errors;
	out->moved = w->moved;
	out->asks = w->asks;
	out->refreshes = w->refreshes;
	out->conn_errors = w->conn_errors;
	for (uint32_t i = 0; i < w->n_nodes; i++)
		cluster_node_out((const struct kv_wire_cluster_node *)(w + 1) + i,
				 &out->nodes[i]);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ping(struct kvc *c, uint64_t *uptime_ms)
{
	struct kv_wire_hdr h;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = kvci_req_body(c, 0) ? kvci_rpc(c, KV_OP_PING, 0, 0, &h) : -ENOMEM;
	if (!ret && h.len != sizeof(struct kv_wire_ping_reply)) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (!ret && uptime_ms)
		*uptime_ms = ((const struct kv_wire_ping_reply *)c->rep)->uptime_ms;
	pthread_mutex_unlock(&c->lock);
	return ret;
}
