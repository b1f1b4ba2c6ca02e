/*
 * handlers.c - one function per op, and the table that names them
 * (handlers.h); kv_handle_frame() looks an op up and calls its function.
 *
 * A handler runs its request against the store and the namespace table
 * and answers it with reply(), in the server's scratch buffer (large
 * enough for the largest reply a valid request can ask for, as the table
 * bounds it). A request that must wait for the store parks (park.h): the
 * ops flagged KV_H_MAY_PARK (NS_REGISTER, NS_DROP, ALLOC, PIN, FLUSH).
 * Their handlers are written to be run again from the start on each
 * replay: what they did before they parked is in c->park.
 *
 * Failures: a frame that is malformed gets an error reply, written once
 * without waiting, and the connection is closed; so is a refused HELLO. A
 * frame that is well formed but not allowed (unregistered namespace, batch
 * too large) gets an error status and the connection stays.
 *
 * The namespace ops are in handlers_ns.c.
 *
 * HELLO must come first (server.c's read_hello() sees to it); its reply
 * carries the DRAM arena's memfd, and the HBM arena's fd when there is
 * one, as SCM_RIGHTS ancillary data, sent with sendmsg() while the output
 * buffer is still empty.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvstore/handlers.h"
#include "kvstore/ns.h"
#include "kvstore/park.h"
#include "kvstore/server_int.h"
#include "kvstore/store.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tiers/remote.h"

/* ---- replies ------------------------------------------------------------- */

/* A reply body of len bytes, zeroed: the server's one buffer, which the
 * next request reuses (reply() copies it out). */
void *kvh_scratch(struct kv_server *srv, size_t len)
{
	if (len > srv->scratch_cap) {
		free(srv->scratch);
		srv->scratch = kv_xmalloc(len);
		srv->scratch_cap = len;
	}
	memset(srv->scratch, 0, len);
	return srv->scratch;
}

/* ---- HELLO ---------------------------------------------------------------- */

/* A HELLO refused, or whose reply cannot be sent, closes the connection. */
static void handle_hello(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	const struct kv_wire_hello *h = r->u.hello;
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello_reply b;
	} msg;
	union {
		char buf[CMSG_SPACE(KV_HELLO_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { &msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	uint64_t dram_bytes;
	int fds[KV_HELLO_MAX_FDS];
	unsigned nfd = 0;
	ssize_t n;

	if (c->hello || h->version != KV_PROTO_VERSION || h->flags) {
		kv_log(KV_WARN, KV_LOG_NET, "refused hello from pid %d: %s",
		       (int)c->pid, c->hello ? "second hello" :
		       h->flags ? "unknown flags" : "protocol version mismatch");
		reply(c, &r->hdr, c->hello || h->flags ? KV_EPROTO : KV_EVERSION, 0, NULL, 0);
		c->closing = true;
		return;
	}
	memcpy(c->name, h->name, KV_PROTO_NAME_MAX);
	c->name[KV_PROTO_NAME_MAX] = '\0';
	for (char *p = c->name; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';	/* it goes into log lines */

	fds[nfd++] = kv_store_dram_fd(srv->store, c->tenant, &dram_bytes);
	memset(&msg, 0, sizeof(msg));
	put_hdr(&msg.h, KV_OP_HELLO, r->hdr.req_id, 0, 0, sizeof(msg.b));
	msg.b.version = KV_PROTO_VERSION;
	msg.b.flags = KV_HELLO_FD;
	msg.b.dram_bytes = dram_bytes;
	msg.b.max_batch = srv->conf.max_batch;
	msg.b.max_msg = srv->conf.max_msg;
	msg.b.max_pins = srv->conf.max_pins;
	msg.b.max_uncommitted = srv->conf.max_uncommitted;
	_Static_assert(KV_HBM_PCI_BYTES == KV_STORE_PCI_BYTES, "HELLO's field holds a PCI id");
	fds[nfd] = kv_store_hbm_export(srv->store, c->tenant, &msg.b.hbm_bytes,
				       &msg.b.hbm_map_bytes, msg.b.hbm_pci);
	if (fds[nfd] >= 0) {
		msg.b.flags |= KV_HELLO_HBM;
		nfd++;
	}

	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));

	/* HELLO is the first frame, so nothing is queued before this reply. */
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		kv_log(KV_WARN, KV_LOG_NET, "cannot send hello reply to pid %d: %s",
		       (int)c->pid, strerror(errno));
		c->closing = true;
		return;
	}
	if ((size_t)n < sizeof(msg))
		evbuffer_add(c->out, (char *)&msg + n, sizeof(msg) - n);
	c->hello = true;
	kv_log(KV_INFO, KV_LOG_NET, "client '%s' (pid %d, uid %u, tenant '%s') connected",
	       c->name, (int)c->pid, (unsigned)c->uid,
	       kv_store_tenant_name(srv->store, c->tenant));
}

/* ---- keys of one namespace ------------------------------------------------ */

/* The wire's key i of a KV_H_KEYS request, as the store takes it. */
static struct kv_key key_at(const struct kv_req *r, uint32_t i)
{
	return kv_key_from_wire(&r->u.keys.keys[i]);
}

/* The namespace of a KV_H_KEYS request. */
static uint32_t keys_ns(const struct kv_req *r)
{
	return r->hdr.op == KV_OP_ALLOC ? r->u.alloc.ns : r->u.keys.ns;
}

/*
 * Local tiers first; the keys none has, in a namespace that uses the
 * cluster, are asked of it while the request parks (one pipelined round,
 * under the remote tier's deadline: a key it does not answer is a miss).
 */
static void handle_lookup(struct conn *c, const struct kv_req *r)
{
	struct kv_store *st = c->srv->store;
	uint32_t n = r->hdr.count;
	size_t len = kv_proto_lookup_reply_len(n);
	size_t at = (len + 7) / 8 * 8;
	struct kv_wire_lookup_reply *lr = kvh_scratch(c->srv, at + n * sizeof(struct kv_key));
	struct kv_key *keys = (struct kv_key *)((char *)lr + at);
	uint8_t *tiers = (uint8_t *)(lr + 1);

	if (kv_park_resume_batch(c, KV_PARK_PROBE, lr, len)) {
		if (kv_store_probe_result(st, c->park.probe, tiers, n, &lr->leading)) {
			kv_park_batch(c, KV_PARK_PROBE, lr, len);
			return;
		}
		c->park.probe = NULL;	/* freed with its answer */
		reply(c, &r->hdr, 0, n, lr, len);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		keys[i] = key_at(r, i);
	lr->leading = kv_store_lookup(st, r->u.keys.ns, keys, n, tiers);
	if (lr->leading < n &&
	    kv_store_lookup_remote(st, r->u.keys.ns, keys, n, tiers, &c->park.probe)) {
		kv_park_batch(c, KV_PARK_PROBE, lr, len);
		return;
	}
	reply(c, &r->hdr, 0, n, lr, len);
}

/* Items in order; one that waits for room parks the request, and its
 * replay carries on from that item. */
static void handle_alloc(struct conn *c, const struct kv_req *r)
{
	struct kv_store *st = c->srv->store;
	uint32_t n = r->hdr.count;
	uint32_t ns = r->u.alloc.ns;
	struct kv_wire_alloc_reply *ar;
	size_t len = (size_t)n * sizeof(*ar);
	uint32_t i = 0;

	ar = kvh_scratch(c->srv, len);
	if (kv_park_resume_batch(c, KV_PARK_ROOM, ar, len))
		i = c->park.item;	/* carry on where it stopped */
	for (; i < n; i++) {
		const struct kv_wire_alloc *a = &r->u.alloc.items[i];
		struct kv_store_put p = {
			.key = kv_key_from_wire(&a->key),
			.parent = kv_key_from_wire(&a->parent),
			.has_parent = a->flags & KV_ALLOC_PARENT,
			.hbm = a->flags & KV_ALLOC_HBM,
			.bytes = a->bytes,
			.tokens = a->tokens,
			.position = a->position,
		};
		int ret = kv_store_alloc_in(st, c->owner, ns, &p, &ar[i].tier, &ar[i].offset);

		if (ret == -EINPROGRESS) {	/* room comes with write-backs */
			c->park.item = i;
			kv_park_batch(c, KV_PARK_ROOM, ar, len);
			return;
		}
		ar[i].status = -ret;
	}
	reply(c, &r->hdr, 0, n, ar, len);
}

/*
 * A chunk on SSD answers -EINPROGRESS and starts up; the others are pinned
 * at once, and hold while the rest arrive. Each time promotions finish,
 * the keys still waiting are asked again; the reply goes when none is.
 */
static void handle_pin(struct conn *c, const struct kv_req *r)
{
	struct kv_store *st = c->srv->store;
	uint32_t n = r->hdr.count;
	uint32_t ns = r->u.keys.ns;
	struct kv_wire_pin_reply *pr;
	size_t len = (size_t)n * sizeof(*pr);
	uint32_t waiting = 0;
	unsigned flags = r->u.keys.flags & KV_PIN_GPU ? KV_STORE_PIN_GPU : 0;
	bool again;

	pr = kvh_scratch(c->srv, len);
	again = kv_park_resume_batch(c, KV_PARK_COPIES, pr, len);
	if (again)
		flags |= KV_STORE_PIN_RETRY;
	for (uint32_t i = 0; i < n; i++) {
		struct kv_key key = key_at(r, i);
		struct kv_store_loc loc;
		int ret;

		if (again && pr[i].status != EINPROGRESS)
			continue;
		ret = kv_store_pin(st, c->owner, ns, &key, flags, &loc);
		if (ret == 0)
			pr[i] = (struct kv_wire_pin_reply){
				.tier = loc.tier, .offset = loc.offset, .bytes = loc.bytes,
			};
		if (ret == -EINPROGRESS) {
			pr[i].status = EINPROGRESS;
			waiting++;
			continue;
		}
		pr[i].status = -ret;
		if (ret)
			pr[i].tier = KV_TIER_NONE;
	}
	if (waiting) {
		kv_park_batch(c, KV_PARK_COPIES, pr, len);
		return;
	}
	reply(c, &r->hdr, 0, n, pr, len);
}

/* The store's entry on the wire. */
static void wire_entry(const struct kv_store_entry *se, struct kv_wire_entry *e)
{
	*e = (struct kv_wire_entry){
		.key = kv_key_to_wire(&se->key),
		.parent = kv_key_to_wire(&se->parent),
		.ns = se->ns,
		.tier = se->tier,
		.has_parent = se->has_parent,
		.bytes = se->bytes,
		.offset = se->offset,
		.tokens = se->tokens,
		.position = se->position,
		.pins = se->pins,
		.children = se->children,
		.hits = se->hits,
		.age_ms = se->age_ms,
	};
}

static void handle_inspect(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_entry *e = kvh_scratch(c->srv, sizeof(*e));
	struct kv_key key = key_at(r, 0);
	struct kv_store_entry se;
	int ret = kv_store_inspect(c->srv->store, r->u.keys.ns, &key, &se);

	if (ret) {
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	wire_entry(&se, e);
	reply(c, &r->hdr, 0, 1, e, sizeof(*e));
}

/*
 * The ops answered with one status per key: fn(c, r, i) gives key i's (0
 * or a negative error), for each key in turn, from the last to the first
 * when deepest_first.
 */
static void each_key(struct conn *c, const struct kv_req *r, bool deepest_first,
		     int (*fn)(struct conn *, const struct kv_req *, uint32_t,
			       const struct kv_key *))
{
	uint32_t n = r->hdr.count;
	size_t len = kv_proto_status_len(n);
	int32_t *status = kvh_scratch(c->srv, len);

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = deepest_first ? n - 1 - k : k;
		struct kv_key key = key_at(r, i);

		status[i] = -fn(c, r, i, &key);
	}
	reply(c, &r->hdr, 0, n, status, len);
}

static bool was_expired(const struct conn *c, uint32_t ns, const struct kv_key *key)
{
	uint64_t n = c->n_expired < EXPIRED_KEEP ? c->n_expired : EXPIRED_KEEP;

	for (uint64_t i = 0; i < n; i++)
		if (c->expired[i].ns == ns && c->expired[i].key.lo == key->lo &&
		    c->expired[i].key.hi == key->hi)
			return true;
	return false;
}

/* COMMIT's or ABORT's answer ret for key i, but KV_EEXPIRED rather than
 * ENOENT when its allocation was aborted at the end of its lease. */
static int lease_status(const struct conn *c, const struct kv_req *r,
			const struct kv_key *key, int ret)
{
	if (ret == -ENOENT && c->expired && was_expired(c, r->u.keys.ns, key))
		ret = -KV_EEXPIRED;	/* its lease ran out */
	return ret;
}

static int commit_key(struct conn *c, const struct kv_req *r, uint32_t i,
		       const struct kv_key *key)
{
	return lease_status(c, r, key, kv_store_commit(c->srv->store, c->owner,
						       r->u.keys.ns, key));
}

/*
 * From the last key to the first: a put names a prompt's chunks in order,
 * and committing the deepest first leaves each parent more recent than its
 * child (DESIGN.md section 5).
 */
static void handle_commit(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, true, commit_key);
}

static int abort_key(struct conn *c, const struct kv_req *r, uint32_t i,
		      const struct kv_key *key)
{
	return lease_status(c, r, key, kv_store_abort(c->srv->store, c->owner,
						      r->u.keys.ns, key));
}

static void handle_abort(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, false, abort_key);
}

static int release_key(struct conn *c, const struct kv_req *r, uint32_t i,
		        const struct kv_key *key)
{
	return kv_store_release(c->srv->store, c->owner, r->u.keys.ns, key);
}

static void handle_release(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, false, release_key);
}

static int score_key(struct conn *c, const struct kv_req *r, uint32_t i,
		      const struct kv_key *key)
{
	return kv_store_score(c->srv->store, r->u.keys.ns, key, r->u.score.scores[i]);
}

static void handle_score(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, false, score_key);
}

static int prefetch_key(struct conn *c, const struct kv_req *r, uint32_t i,
		         const struct kv_key *key)
{
	int32_t status = 0;

	kv_store_prefetch(c->srv->store, r->u.keys.ns, key, 1, &status);
	return -status;
}

static void handle_prefetch(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, false, prefetch_key);
}

static int evict_key(struct conn *c, const struct kv_req *r, uint32_t i,
		      const struct kv_key *key)
{
	return kv_store_evict(c->srv->store, r->u.keys.ns, key);
}

static void handle_evict(struct conn *c, const struct kv_req *r)
{
	each_key(c, r, false, evict_key);
}

/* ---- STATS, LS, FLUSH, POLICY, TENANTS, PING, reports --------------------- */

/* A NUL-padded wire field from a name (not NUL-terminated when full). */
static void pad_copy(char *dst, size_t len, const char *src)
{
	memcpy(dst, src, strnlen(src, len));
}

static void handle_stats(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	size_t len = sizeof(struct kv_wire_stats) +
		     KV_TIER_ALL * sizeof(struct kv_wire_tier_stats);
	struct kv_wire_stats *g = kvh_scratch(srv, len);
	struct kv_wire_tier_stats *wt = (struct kv_wire_tier_stats *)(g + 1);
	struct kv_store_tier_stats ts[KV_TIER_ALL];
	struct kv_store_stats ss;
	uint32_t n;

	n = kv_store_stats(srv->store, &ss, ts, KV_TIER_ALL);
	*g = (struct kv_wire_stats){
		.n_tiers = n,
		.pinned_chunks = ss.pinned_chunks,
		.pending_chunks = ss.pending_chunks,
		.checksum_failures = ss.checksum_failures,
		.uptime_ms = ss.uptime_ms,
		.writeback_failures = ss.writeback_failures,
		.writeback_lost = ss.writeback_lost,
		.ssd_records_missing = ss.ssd_records_missing,
		.ssd_records_wrong_ns = ss.ssd_records_wrong_ns,
		.records = ss.records,
		.max_records = ss.max_records,
		.meta_bytes = ss.meta_bytes,
		.plans_loaded = ss.plans[KV_STORE_PLAN_LOADED],
		.plans_computed = ss.plans[KV_STORE_PLAN_COMPUTED],
		.plans_both = ss.plans[KV_STORE_PLAN_BOTH],
		.plan_tokens_loaded = ss.plan_tokens_loaded,
		.plan_tokens_computed = ss.plan_tokens_computed,
	};
	for (uint32_t i = 0; i < n; i++) {
		const struct kv_store_tier_stats *t = &ts[i];

		wt[i] = (struct kv_wire_tier_stats){
			.capacity_bytes = t->capacity_bytes,
			.used_bytes = t->used_bytes,
			.chunks = t->chunks,
			.hits = t->hits,
			.misses = t->misses,
			.evictions = t->evictions,
			.promotions = t->promotions,
			.demotions = t->demotions,
			.alloc_failures = t->alloc_failures,
			.read_bw = t->read_bw,
			.read_samples = t->read_samples,
			.read_bytes = t->read_bytes,
		};
		pad_copy(wt[i].name, sizeof(wt[i].name), t->name);
		pad_copy(wt[i].policy, sizeof(wt[i].policy), t->policy);
	}
	g->connections = srv->n_conns;
	g->namespaces = kv_ns_count(srv->ns);
	reply(c, &r->hdr, 0, n, g,
	      sizeof(*g) + n * sizeof(struct kv_wire_tier_stats));
}

static void handle_ls(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	const struct kv_wire_ls *ls = r->u.ls;
	struct kv_wire_ls_reply *lr;
	struct kv_wire_entry *e;
	struct kv_store_entry *se;
	uint64_t cursor = ls->cursor;
	size_t at;
	uint32_t n;

	if (ls->ns != KV_NS_ALL && !kvh_ns_registered(c, ls->ns)) {
		reply(c, &r->hdr, KV_ENONS, 0, NULL, 0);
		return;
	}
	if (!kv_store_has_tier(srv->store, ls->tier)) {
		reply(c, &r->hdr, KV_ENOTIER, 0, NULL, 0);
		return;
	}
	at = sizeof(*lr) + (size_t)ls->limit * sizeof(*e);
	lr = kvh_scratch(srv, at + (size_t)ls->limit * sizeof(*se));
	e = (struct kv_wire_entry *)(lr + 1);
	se = (struct kv_store_entry *)((char *)lr + at);
	_Static_assert(KV_NS_ALL == KV_STORE_NS_ALL, "LS's 'every namespace'");
	n = kv_store_ls(srv->store, ls->ns, ls->tier, kvh_ns_visible, c, &cursor,
			se, ls->limit);
	for (uint32_t i = 0; i < n; i++)
		wire_entry(&se[i], &e[i]);
	lr->next_cursor = cursor;
	reply(c, &r->hdr, 0, n, lr, sizeof(*lr) + n * sizeof(struct kv_wire_entry));
}

static void handle_flush(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_flush_reply fr;
	struct kv_store_flushed fd;
	bool drop = r->u.flush->flags & KV_FLUSH_DROP;
	uint64_t *base = c->park.wb_base;
	uint8_t tier = r->u.flush->tier;
	int ret;

	/* A write-back of DRAM (to the SSD) is answered when it is durable. */
	if (!drop && (tier == KV_TIER_DRAM || tier == KV_TIER_NONE) &&
	    kv_store_has_tier(c->srv->store, KV_TIER_SSD)) {
		uint64_t w, b, f;
		bool start = !kv_park_resumed(c, KV_PARK_WRITEBACK);

		if (start)
			kv_store_wb_counters(c->srv->store, &base[0], &base[1], &base[2]);
		if (kv_store_writeback(c->srv->store, start) == -EINPROGRESS) {
			kv_park(c, KV_PARK_WRITEBACK);
			return;
		}
		kv_store_wb_counters(c->srv->store, &w, &b, &f);
		fr = (struct kv_wire_flush_reply){ w - base[0], b - base[1] };
		/* Exact: what is in DRAM and not on the SSD now was refused. */
		fr.skipped = kv_store_wb_refused(c->srv->store, &fr.why);
		fr.status = fr.skipped ? KV_EREFUSED : 0;
		if (fr.skipped)
			kv_log(KV_WARN, KV_LOG_MAIN, "flush by pid %d: %llu chunks written back, %llu refused by the SSD (%s): not durable",
			       (int)c->pid, (unsigned long long)fr.chunks,
			       (unsigned long long)fr.skipped, kv_strerror(fr.why));
		else
			kv_log(KV_INFO, KV_LOG_MAIN, "flush by pid %d: %llu chunks written back",
			       (int)c->pid, (unsigned long long)fr.chunks);
		reply(c, &r->hdr, 0, 1, &fr, sizeof(fr));
		return;
	}
	if (kv_park_resumed(c, KV_PARK_SYNC)) {	/* are the drops on the disk? */
		ret = kv_store_ssd_synced(c->srv->store, c->park.sync);
		if (ret == -EINPROGRESS) {
			kv_park(c, KV_PARK_SYNC);
			return;
		}
		if (ret)
			kv_log(KV_ERR, KV_LOG_MAIN, "flush by pid %d: dropped SSD copies may come back after a restart: %s",
			       (int)c->pid, kv_strerror(ret));
		reply(c, &r->hdr, 0, 1, &c->park.flush, sizeof(c->park.flush));
		return;
	}
	ret = kv_store_flush(c->srv->store, r->u.flush->tier, drop, kvh_ns_visible, c, &fd);
	if (ret) {
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	fr = (struct kv_wire_flush_reply){ fd.chunks, fd.bytes, fd.skipped };
	kv_log(KV_INFO, KV_LOG_MAIN, "flush by pid %d: %llu chunks %s, %llu skipped",
	       (int)c->pid, (unsigned long long)fr.chunks,
	       drop ? "dropped" : "written back",
	       (unsigned long long)fr.skipped);
	/* Dropped SSD copies are answered once their records are gone for
	 * good: a dropped chunk must not come back after a crash. */
	if (drop && fr.chunks &&
	    (c->park.sync = kv_store_ssd_sync(c->srv->store))) {
		c->park.flush = fr;
		kv_park(c, KV_PARK_SYNC);
		return;
	}
	reply(c, &r->hdr, 0, 1, &fr, sizeof(fr));
}

/* Any allowed peer may read a tier's policy; only root and the daemon's
 * own user may switch it, since it changes the cache for every tenant. */
static void handle_policy(struct conn *c, const struct kv_req *r)
{
	const struct kv_wire_policy *p = r->u.policy;
	struct kv_wire_policy rep = { .tier = p->tier };
	const char *cur = kv_store_policy(c->srv->store, p->tier);
	char name[sizeof(p->name) + 1];
	int ret;

	if (!cur) {
		reply(c, &r->hdr, KV_ENOTIER, 0, NULL, 0);
		return;
	}
	if (p->set) {
		memcpy(name, p->name, sizeof(p->name));
		name[sizeof(p->name)] = '\0';
		if (c->uid != 0 && c->uid != c->srv->self_uid)
			ret = -EACCES;
		else
			ret = kv_store_set_policy(c->srv->store, p->tier, name);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_EVICT, "policy '%s' refused to pid %d: %s",
			       name, (int)c->pid,
			       ret == -ENOENT ? "no such policy" : kv_strerror(ret));
			reply(c, &r->hdr, ret, 0, NULL, 0);
			return;
		}
		kv_log(KV_INFO, KV_LOG_EVICT, "tier %u policy: %s -> %s (by pid %d)",
		       (unsigned)p->tier, cur, name, (int)c->pid);
		cur = kv_store_policy(c->srv->store, p->tier);
	}
	memcpy(rep.name, cur, strnlen(cur, sizeof(rep.name)));
	reply(c, &r->hdr, 0, 1, &rep, sizeof(rep));
}

/* Each tenant's quotas and holdings: a connection's own tenant, or all of
 * them for root and the daemon's own uid. */
static void handle_tenants(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	unsigned n = kv_store_tenants(srv->store), k = 0;
	bool admin = c->uid == 0 || c->uid == srv->self_uid;
	struct kv_wire_tenant *w = kvh_scratch(srv, n * sizeof(*w));

	for (unsigned t = 0; t < n; t++) {
		struct kv_store_tenant_stats st;

		if (!admin && t != c->tenant)
			continue;
		kv_store_tenant_stats(srv->store, t, &st);
		memcpy(w[k].name, st.name, strnlen(st.name, sizeof(w[k].name)));
		for (unsigned i = 0; i < KV_TIER_MAX; i++) {
			w[k].capacity[i] = st.capacity[i];
			w[k].used[i] = st.used[i];
			w[k].chunks[i] = st.chunks[i];
		}
		w[k].namespaces = st.namespaces;
		w[k].max_namespaces = st.max_namespaces;
		w[k].uncommitted = st.uncommitted;
		w[k].max_uncommitted = st.max_uncommitted;
		w[k].records = st.records;
		w[k].max_records = st.max_records;
		w[k].n_uids = st.n_uids;
		for (unsigned u = 0; u < st.n_uids && u < KV_TENANT_UIDS_SHOWN; u++)
			w[k].uids[u] = (uint32_t)st.uids[u];
		for (const struct conn *o = srv->conns; o; o = o->next)
			w[k].connections += o->tenant == t;
		k++;
	}
	reply(c, &r->hdr, 0, k, w, k * sizeof(*w));
}

static void handle_ping(struct conn *c, const struct kv_req *r)
{
	struct kv_store_stats g;
	struct kv_store_tier_stats t;
	struct kv_wire_ping_reply pr = { 0 };

	kv_store_stats(c->srv->store, &g, &t, 0);
	pr.version = KV_PROTO_VERSION;
	pr.pid = (uint32_t)getpid();
	pr.uptime_ms = g.uptime_ms;
	reply(c, &r->hdr, 0, 1, &pr, sizeof(pr));
}

/*
 * A client's timed read of a tier. Samples from clients are untrusted: a
 * refused one changes nothing, and says why at DEBUG only, since a client
 * can send them as fast as it likes.
 */
static void handle_bw_report(struct conn *c, const struct kv_req *r)
{
	const struct kv_wire_bw_report *b = r->u.bw;
	int ret = kv_store_report_bw(c->srv->store, b->tier, b->bytes, b->ns);

	if (ret)
		kv_log(KV_DEBUG, KV_LOG_NET, "bandwidth sample from pid %d refused (tier %u, %llu bytes in %llu ns): %s",
		       (int)c->pid, (unsigned)b->tier, (unsigned long long)b->bytes,
		       (unsigned long long)b->ns,
		       ret == -EINVAL && b->tier == KV_TIER_SSD ?
		       "the daemon times the SSD tier itself" : kv_strerror(ret));
	reply(c, &r->hdr, ret, 0, NULL, 0);
}

static void handle_plan_report(struct conn *c, const struct kv_req *r)
{
	const struct kv_wire_plan_report *p = r->u.plan;
	int ret = kv_store_report_plan(c->srv->store, p->kind, p->tokens_loaded,
				       p->tokens_computed);

	_Static_assert((int)KV_PLAN_LOADED == (int)KV_STORE_PLAN_LOADED &&
		       (int)KV_PLAN_COMPUTED == (int)KV_STORE_PLAN_COMPUTED &&
		       (int)KV_PLAN_BOTH == (int)KV_STORE_PLAN_BOTH,
		       "plan kinds pass as they are");

	if (ret)
		kv_log(KV_DEBUG, KV_LOG_NET, "plan report from pid %d refused: no plan kind %u",
		       (int)c->pid, (unsigned)p->kind);
	reply(c, &r->hdr, ret, 0, NULL, 0);
}

/* ---- CLUSTER ---------------------------------------------------------------- */

_Static_assert(KV_REMOTE_VIEW_NODES == KV_CLUSTER_NODES_MAX &&
	       KV_REMOTE_VIEW_RANGES == KV_CLUSTER_RANGES_MAX &&
	       KV_REMOTE_ADDR == KV_CLUSTER_ADDR_BYTES, "a view fits a reply whole");

static void cluster_figures(struct kv_wire_cluster *w, const struct kv_remote_view *v,
			    bool seen)
{
	const struct kv_remote_stats *st = &v->st;

	w->flags = KV_CLUSTER_REMOTE | (st->up ? KV_CLUSTER_UP : 0) |
		   (seen ? KV_CLUSTER_SEEN : 0);
	w->masters = st->masters;
	w->masters_down = st->masters_down;
	w->stores = st->stores;
	w->store_bytes = st->store_bytes;
	w->store_failures = st->store_failures;
	w->loads = st->loads;
	w->load_bytes = st->load_bytes;
	w->load_failures = st->load_failures;
	w->probes = st->probes;
	w->probe_hits = st->probe_hits;
	w->corrupt = st->corrupt;
	w->timeouts = st->timeouts;
	w->errors = st->errors;
	if (!seen)
		return;
	w->age_ms = (kv_now_ns() - v->taken_ns) / 1000000;
	w->nodes_known = v->nodes_known;
	w->n_nodes = v->n_nodes;
	w->moved = v->moved;
	w->asks = v->asks;
	w->refreshes = v->refreshes;
	w->conn_errors = v->conn_errors;
}

static void cluster_node(struct kv_wire_cluster_node *w, const struct kv_remote_node *n)
{
	pad_copy(w->addr, sizeof(w->addr) - 1, n->addr);
	w->slots = n->slots;
	w->conns_open = n->conns_open;
	w->state = n->state < 0 ? -n->state : n->state;	/* positive on the wire */
	w->n_ranges = (uint16_t)n->n_ranges;
	w->ranges_total = (uint16_t)n->ranges_total;
	for (unsigned i = 0; i < n->n_ranges; i++)
		w->ranges[i] = (struct kv_wire_slot_range){ n->ranges[i].first,
							    n->ranges[i].last };
}

/*
 * The remote tier as its mover last saw the cluster; without one, a reply
 * that says so (flags 0). Any peer may ask, as for STATS: it holds figures
 * and the cluster's addresses, no chunk, namespace or tenant's figure, and
 * an address opens nothing without the cluster's password, which never
 * leaves the daemon.
 */
static void handle_cluster(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	struct kv_wire_cluster *w = kvh_scratch(srv, kv_proto_cluster_len(KV_CLUSTER_NODES_MAX));
	struct kv_wire_cluster_node *wn = (struct kv_wire_cluster_node *)(w + 1);
	struct kv_remote_view *v = kv_xmalloc(sizeof(*v));
	uint32_t queued, inflight;
	int ret = kv_store_cluster(srv->store, v, &queued, &inflight);

	if (ret != -KV_ENOTIER) {
		cluster_figures(w, v, ret == 0);
		w->write_queue = queued;
		w->write_inflight = inflight;
		for (uint32_t i = 0; i < w->n_nodes; i++)
			cluster_node(&wn[i], &v->nodes[i]);
	}
	free(v);
	reply(c, &r->hdr, 0, w->n_nodes, w, kv_proto_cluster_len(w->n_nodes));
}

/* ---- the table ------------------------------------------------------------ */

_Static_assert(KV_OP_MAX == 25, "every op has its line in kv_handlers[]");

const struct kv_handler kv_handlers[KV_OP_MAX] = {
	[KV_OP_HELLO] = { .proc = handle_hello,
		.reply = sizeof(struct kv_wire_hello_reply) },
	[KV_OP_NS_REGISTER] = { .proc = kvh_ns_register, .flags = KV_H_MAY_PARK,
		.reply = sizeof(struct kv_wire_ns_reply) },
	[KV_OP_LOOKUP] = { .proc = handle_lookup, .flags = KV_H_KEYS | KV_H_MAY_PARK,
		.reply = sizeof(struct kv_wire_lookup_reply), .reply_key = 1 },
	[KV_OP_ALLOC] = { .proc = handle_alloc, .flags = KV_H_KEYS | KV_H_MAY_PARK,
		.reply_key = sizeof(struct kv_wire_alloc_reply) },
	[KV_OP_COMMIT] = { .proc = handle_commit, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_ABORT] = { .proc = handle_abort, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_PIN] = { .proc = handle_pin, .flags = KV_H_KEYS | KV_H_MAY_PARK,
		.reply_key = sizeof(struct kv_wire_pin_reply) },
	[KV_OP_RELEASE] = { .proc = handle_release, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_STATS] = { .proc = handle_stats,
		.reply = sizeof(struct kv_wire_stats) +
			 KV_TIER_ALL * sizeof(struct kv_wire_tier_stats) },
	[KV_OP_LS] = { .proc = handle_ls, .flags = KV_H_PAGE,
		.reply = sizeof(struct kv_wire_ls_reply),
		.reply_key = sizeof(struct kv_wire_entry) },
	[KV_OP_INSPECT] = { .proc = handle_inspect, .flags = KV_H_KEYS,
		.reply = sizeof(struct kv_wire_entry) },
	[KV_OP_EVICT] = { .proc = handle_evict, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_FLUSH] = { .proc = handle_flush, .flags = KV_H_MAY_PARK,
		.reply = sizeof(struct kv_wire_flush_reply) },
	[KV_OP_PING] = { .proc = handle_ping,
		.reply = sizeof(struct kv_wire_ping_reply) },
	[KV_OP_SCORE] = { .proc = handle_score, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_POLICY] = { .proc = handle_policy,
		.reply = sizeof(struct kv_wire_policy) },
	[KV_OP_PREFETCH] = { .proc = handle_prefetch, .flags = KV_H_KEYS,
		.reply_key = sizeof(int32_t) },
	[KV_OP_NS_LOOKUP] = { .proc = kvh_ns_lookup,
		.reply = sizeof(struct kv_wire_ns_reply) },
	[KV_OP_NS_LIST] = { .proc = kvh_ns_list,	/* at most a page */
		.reply = sizeof(struct kv_wire_ns_list_reply) +
			 KV_PROTO_NS_PAGE * sizeof(struct kv_wire_ns_entry) },
	[KV_OP_NS_DROP] = { .proc = kvh_ns_drop, .flags = KV_H_MAY_PARK,
		.reply = sizeof(struct kv_wire_ns_drop_reply) },
	[KV_OP_TENANTS] = { .proc = handle_tenants,
		.reply = KV_TENANT_MAX * sizeof(struct kv_wire_tenant) },
	[KV_OP_BW_REPORT] = { .proc = handle_bw_report },	/* a status alone */
	[KV_OP_PLAN_REPORT] = { .proc = handle_plan_report },
	[KV_OP_CLUSTER] = { .proc = handle_cluster,
		.reply = sizeof(struct kv_wire_cluster) +
			 KV_CLUSTER_NODES_MAX * sizeof(struct kv_wire_cluster_node) },
};

bool kv_handle_frame(struct conn *c, const void *frame, size_t len)
{
	struct kv_req r;
	int ret;

	/* The header was checked before the body was read: r.hdr is valid,
	 * and before HELLO it is a HELLO's (read_hello()). */
	ret = kv_proto_parse(frame, len, c->srv->conf.max_batch, &r);
	if (ret == -KV_EBATCH) {
		reply(c, &r.hdr, ret, 0, NULL, 0);	/* well formed: keep going */
		return true;
	}
	if (ret) {
		kv_log(KV_WARN, KV_LOG_NET, "malformed %s message from pid %d: %s; closing",
		       kv_proto_op_name(r.hdr.op), (int)c->pid, kv_strerror(ret));
		reply(c, &r.hdr, ret, 0, NULL, 0);
		c->closing = true;
	} else if ((kv_handlers[r.hdr.op].flags & KV_H_KEYS) &&
		   !kvh_ns_registered(c, keys_ns(&r))) {
		reply(c, &r.hdr, KV_ENONS, 0, NULL, 0);
	} else {
		kv_handlers[r.hdr.op].proc(c, &r);
	}
	if (c->closing) {
		kv_conn_end(c);
		return false;
	}
	return true;
}
