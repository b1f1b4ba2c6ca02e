/*
 * handlers_ns.c - the namespace ops (NS_REGISTER, NS_LOOKUP, NS_LIST,
 * NS_DROP) and what every handler asks of a connection's namespaces:
 * which it registered, which it may see. The table is in handlers.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kvstore/handlers.h"
#include "kvstore/ns.h"
#include "kvstore/park.h"
#include "kvstore/server_int.h"
#include "kvstore/store.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tiers/codec.h"

/* ---- namespaces ----------------------------------------------------------- */

bool kvh_ns_registered(const struct conn *c, uint32_t ns)
{
	return ns / 64 < c->ns_words && (c->ns_bits[ns / 64] >> (ns % 64) & 1);
}

void kvh_ns_mark(struct conn *c, uint32_t ns)
{
	size_t w = ns / 64;

	if (w >= c->ns_words) {
		size_t nw = w + 1;

		c->ns_bits = kv_xrealloc(c->ns_bits, nw * sizeof(uint64_t));
		memset(c->ns_bits + c->ns_words, 0, (nw - c->ns_words) * sizeof(uint64_t));
		c->ns_words = nw;
	}
	c->ns_bits[w] |= 1ull << (ns % 64);
}

/* Namespaces a connection sees in a listing of all of them: its tenant's,
 * or all for the daemon's own user and root. */
bool kvh_ns_visible(uint32_t ns, void *arg)
{
	struct conn *c = arg;
	int t;

	if (c->uid == 0 || c->uid == c->srv->self_uid)
		return true;
	t = kv_store_ns_tenant(c->srv->store, ns);
	return t >= 0 && (unsigned)t == c->tenant;
}

/* ---- NS_REGISTER ---------------------------------------------------------- */

/*
 * Where a pending namespace's record stands: 0 durable (the name is usable
 * from now on), -EINPROGRESS, or -KV_ENSREC: it could not be written, and
 * the id is burned, so that nothing is ever written under it in this run.
 */
static int ns_resolve(struct kv_server *srv, uint32_t id)
{
	const char *name = kv_ns_name(srv->ns, id);
	int ret;

	if (!name || !*name)
		return -KV_ENSREC;	/* burned meanwhile */
	if (!kv_ns_pending(srv->ns, id))
		return 0;
	ret = kv_store_ns_durable(srv->store, id);
	if (ret == -EINPROGRESS)
		return ret;
	if (ret == 0) {
		kv_ns_set_pending(srv->ns, id, false);
		return 0;
	}
	kv_log(KV_ERR, KV_LOG_MAIN, "namespace '%s' refused: its record could not be written (%s); id %u is not used again",
	       name, kv_strerror(ret), (unsigned)id);
	kv_ns_burn(srv->ns, id);
	return -KV_ENSREC;
}

/* A new name: its record goes to the disk (pending until it is there);
 * one that cannot even be sent is refused as a failed record is. */
static void ns_record(struct kv_server *srv, uint32_t id, uid_t uid)
{
	int ret = kv_store_ns_added(srv->store, id, uid, kv_ns_name(srv->ns, id));

	if (ret == -EINPROGRESS) {
		kv_ns_set_pending(srv->ns, id, true);
	} else if (ret) {
		kv_log(KV_ERR, KV_LOG_MAIN, "namespace '%s' refused: its record cannot be written (%s)",
		       kv_ns_name(srv->ns, id), kv_strerror(ret));
		kv_ns_burn(srv->ns, id);
	}
}

/* ns_resolve() for a request, which parks while the record is on its way. */
static int ns_settle(struct conn *c, uint32_t id)
{
	int ret = ns_resolve(c->srv, id);

	if (ret == -EINPROGRESS) {
		c->park.ns = id;
		kv_park(c, KV_PARK_NS_RECORD);
	}
	return ret;
}

/*
 * A new name is recorded on the SSD before it is answered, so no chunk of
 * it is ever written before its record is durable; the request parks
 * meanwhile, and so does any other registration of that name.
 */
void kvh_ns_register(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_ns_reply rep = { 0 };
	struct kv_store *st = c->srv->store;
	int ret = 0;

	if (kv_park_resumed(c, KV_PARK_NS_RECORD)) {	/* the record is in, or failed */
		rep.ns = c->park.ns;
	} else if (kv_ns_find(c->srv->ns, r->u.ns_name.name, r->u.ns_name.len,
			      &rep.ns) == 0) {
		/* A name is its owner's tenant's: any of its uids may use it. */
		int t = kv_store_ns_tenant(st, rep.ns);

		if (t < 0 || (unsigned)t != c->tenant)
			ret = -EACCES;
	} else {
		ret = kv_store_ns_admit(st, c->tenant);
		if (!ret)
			ret = kv_ns_register(c->srv->ns, r->u.ns_name.name, r->u.ns_name.len,
					     c->uid, &rep.ns);
		if (!ret)	/* new: keep it */
			ns_record(c->srv, rep.ns, c->uid);
	}
	if (!ret)
		ret = ns_settle(c, rep.ns);
	if (ret == -EINPROGRESS)
		return;
	if (!ret && c->srv->conf.codec_ns) {
		int codec = kv_codec_for(c->srv->conf.codec_ns, r->u.ns_name.name,
					 r->u.ns_name.len);

		if (codec >= 0)
			kv_store_set_codec(c->srv->store, rep.ns, (unsigned)codec);
	}
	if (ret) {
		kv_log(KV_WARN, KV_LOG_NET, "namespace '%.*s' refused to uid %u: %s",
		       (int)r->u.ns_name.len, r->u.ns_name.name, (unsigned)c->uid,
		       kv_strerror(ret));
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	if (r->u.ns_name.model) {
		const struct kv_wire_ns_model *wm = r->u.ns_name.model;
		struct kv_cost_model m = { wm->hidden, wm->a, wm->b };

		ret = kv_store_set_model(c->srv->store, rep.ns, &m);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_NET, "namespace '%.*s': bad cost model from pid %d",
			       (int)r->u.ns_name.len, r->u.ns_name.name, (int)c->pid);
			reply(c, &r->hdr, ret, 0, NULL, 0);
			return;
		}
	}
	rep.salt = XXH3_64bits(r->u.ns_name.name, r->u.ns_name.len);
	kvh_ns_mark(c, rep.ns);
	reply(c, &r->hdr, 0, 1, &rep, sizeof(rep));
}

/* ---- NS_LOOKUP, NS_LIST, NS_DROP ------------------------------------------ */

/* The id of a usable name this connection may see: 0, -ENOENT or -EACCES. */
static int ns_find(struct conn *c, const struct kv_req *r, uint32_t *id)
{
	if (kv_ns_lookup(c->srv->ns, r->u.ns_name.name, r->u.ns_name.len, id))
		return -ENOENT;
	return kvh_ns_visible(*id, c) ? 0 : -EACCES;
}

/* A name's id without creating it; the connection may then use the id. */
void kvh_ns_lookup(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_ns_reply rep = { 0 };
	int ret = ns_find(c, r, &rep.ns);

	if (ret) {
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	rep.salt = XXH3_64bits(r->u.ns_name.name, r->u.ns_name.len);
	kvh_ns_mark(c, rep.ns);
	reply(c, &r->hdr, 0, 1, &rep, sizeof(rep));
}

void kvh_ns_list(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	const struct kv_wire_ns_list *q = r->u.ns_list;
	uint32_t n = kv_ns_count(srv->ns), id, m = 0;
	struct kv_wire_ns_list_reply *lr;
	struct kv_wire_ns_entry *e;
	uint64_t *chunks, *bytes;
	uint32_t *ids;

	lr = kvh_scratch(srv, sizeof(*lr) + (size_t)q->limit * sizeof(*e));
	e = (struct kv_wire_ns_entry *)(lr + 1);
	for (id = q->cursor; id < n && m < q->limit; id++) {
		const char *name;
		uid_t uid;

		if (kv_ns_pending(srv->ns, id))
			ns_resolve(srv, id);
		name = kv_ns_name(srv->ns, id);
		if (!*name || !kvh_ns_visible(id, c))
			continue;	/* burned, skipped at restore, or not ours */
		kv_ns_owner(srv->ns, id, &uid);
		e[m].ns = id;
		e[m].uid = (uint32_t)uid;
		e[m].name_len = (uint16_t)strlen(name);
		e[m].salt = XXH3_64bits(name, e[m].name_len);
		e[m].state = kv_ns_pending(srv->ns, id) ? KV_NS_PENDING : KV_NS_READY;
		memcpy(e[m].name, name, e[m].name_len);
		m++;
	}
	lr->next_cursor = id < n ? id : 0;
	if (m) {	/* one walk of the index for the page */
		ids = kv_xcalloc(m, sizeof(*ids));
		chunks = kv_xcalloc(m, sizeof(*chunks));
		bytes = kv_xcalloc(m, sizeof(*bytes));
		for (uint32_t i = 0; i < m; i++)
			ids[i] = e[i].ns;
		kv_store_ns_usage(srv->store, ids, m, chunks, bytes);
		for (uint32_t i = 0; i < m; i++) {
			e[i].chunks = chunks[i];
			e[i].bytes = bytes[i];
		}
		free(ids);
		free(chunks);
		free(bytes);
	}
	reply(c, &r->hdr, 0, m, lr, sizeof(*lr) + (size_t)m * sizeof(*e));
}

/* Nothing may be written under id again: burn it, and take it from every
 * connection that registered it. */
static void ns_forget(struct kv_server *srv, uint32_t id)
{
	kv_ns_burn(srv->ns, id);
	for (struct conn *c = srv->conns; c; c = c->next)
		if (id / 64 < c->ns_words)
			c->ns_bits[id / 64] &= ~(1ull << (id % 64));
}

/*
 * NS_DROP: every chunk of the namespace from every tier, then its records
 * on the SSD, durably (the reply waits); its id is burned at once. Only
 * its owner, root and the daemon's own user may; a namespace with a chunk
 * pinned or being written is refused (EBUSY), and one with I/O in flight
 * on its chunks waits for it.
 */
void kvh_ns_drop(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	struct kv_wire_ns_drop_reply *rep = &c->park.drop;
	const char *name = r->u.ns_name.name;
	int len = (int)r->u.ns_name.len;
	uid_t owner;
	int ret;

	if (kv_park_resumed(c, KV_PARK_NS_RECORD)) {	/* its records being deleted */
		ret = kv_store_ns_durable(srv->store, c->park.ns);
		if (ret == -EINPROGRESS) {
			kv_park(c, KV_PARK_NS_RECORD);
			return;
		}
		goto done;
	}
	memset(rep, 0, sizeof(*rep));
	ret = ns_find(c, r, &rep->ns);
	if (!ret && kv_ns_owner(srv->ns, rep->ns, &owner) == 0 && owner != c->uid &&
	    c->uid != 0 && c->uid != srv->self_uid)
		ret = -EACCES;
	if (!ret)
		ret = kv_store_ns_drop(srv->store, rep->ns, &rep->chunks, &rep->bytes);
	if (ret == -EAGAIN) {		/* I/O on its chunks: ask again after it */
		kv_park(c, KV_PARK_NS_IO);
		return;
	}
	if (ret && ret != -EINPROGRESS) {
		kv_log(KV_WARN, KV_LOG_NET, "namespace '%.*s' not dropped for pid %d: %s",
		       len, name, (int)c->pid, ret == -EBUSY ?
		       "a chunk of it is pinned or being written" : kv_strerror(ret));
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	ns_forget(srv, rep->ns);
	kv_log(KV_INFO, KV_LOG_MAIN, "namespace '%.*s' (id %u) dropped by pid %d: %llu chunks",
	       len, name, (unsigned)rep->ns, (int)c->pid, (unsigned long long)rep->chunks);
	if (ret == -EINPROGRESS) {
		c->park.ns = rep->ns;
		kv_park(c, KV_PARK_NS_RECORD);
		return;
	}
done:
	if (ret) {
		kv_log(KV_ERR, KV_LOG_MAIN, "namespace '%.*s' (id %u): its records could not be deleted from the SSD index (%s); it may come back after a restart",
		       len, name, (unsigned)rep->ns, kv_strerror(ret));
		reply(c, &r->hdr, KV_ENSREC, 0, NULL, 0);
		return;
	}
	reply(c, &r->hdr, 0, 1, rep, sizeof(*rep));
}

