/*
 * server.c - connections, framing and request dispatch on the loop thread.
 *
 * Before HELLO a connection has no buffers: its bytes go into hello_buf,
 * one HELLO frame's worth, and the header is checked as soon as its 24
 * bytes are in (a HELLO of HELLO's size, or the connection is closed), so
 * a client that connects and stalls holds struct conn and nothing more.
 * After HELLO a connection reads into an evbuffer and handles whole frames
 * as they complete; each frame is copied into an 8-byte-aligned buffer
 * first, so kv_proto_parse() can hand out aligned pointers. Replies are
 * built in one scratch buffer (large enough for the largest reply a valid
 * request can ask for) and appended to the output evbuffer, which is
 * written as the socket takes it.
 *
 * Memory for clients: a frame is admitted when its header arrives, which
 * reserves its bytes and the largest reply its op and count can get
 * (reply_max()). A connection holds CONN_FREE bytes on its own; beyond
 * that, all connections together hold at most max_client_memory (input,
 * frame copies, reserved and queued replies). A frame that does not fit is
 * answered KV_EMEMORY and its body read and dropped. A frame is handled
 * only when its reply fits under out_max (the largest reply of any op), and
 * input is not read meanwhile, so a client that never reads its replies
 * holds one reply's worth. After a burst of connections let go of their
 * memory, malloc_trim() hands it back to the system.
 *
 * Deadlines: one timer sweeps every connection (period tick_ms(): a
 * quarter of the shortest deadline, 10 ms .. 1 s), so a deadline costs
 * nothing per request and one pass over the connections per tick: HELLO
 * within hello_timeout_ms of accept; a frame whose first byte is in
 * complete within frame_timeout_ms (counted only while the connection is
 * read: a client that waits for us is not late); uncommitted allocations
 * aborted alloc_lease_ms after their ALLOC.
 *
 * Out of file descriptors at accept: a spare descriptor is closed to take
 * each waiting connection and refuse it with KV_ECONNS, then the listener
 * rests ACCEPT_PAUSE_MS, so a full descriptor table never spins the loop.
 *
 * Failures: a frame that is malformed (or too large) gets an error reply,
 * written once without waiting, and the connection is closed. A frame that
 * is well formed but not allowed (unregistered namespace, batch too large)
 * gets an error status and the connection stays.
 *
 * HELLO must come first; its reply carries the DRAM arena's memfd, and
 * the HBM arena's fd when there is one, as SCM_RIGHTS ancillary data, sent
 * with sendmsg() while the output buffer is still empty.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "kvstore/ns.h"
#include "lib/proto.h"
#include "kvstore/server.h"
#include "kvstore/store.h"
#include "lib/util.h"
#include "tiers/codec.h"

#define READ_CHUNK	(64u << 10)	/* (evbuffer_read() takes 4 KiB at most) */
#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define HELLO_LEN	(HDR_LEN + sizeof(struct kv_wire_hello))
#define CONN_FREE	(32u << 10)	/* held by a connection outside max_client_memory */
#define FRAME_KEEP	(4u << 10)	/* larger frame buffers are freed after use */
#define EXPIRED_KEEP	64		/* expired allocations a connection remembers */
#define TRIM_SLACK	(16u << 20)	/* malloc_trim() once this much was let go */
#define ACCEPT_PAUSE_MS	100		/* the listener's rest when out of descriptors */

/* An allocation aborted at the end of its lease: a late COMMIT of it
 * answers KV_EEXPIRED rather than ENOENT. */
struct expired {
	uint32_t ns;
	struct kv_wire_key key;
};

struct conn {
	struct kv_server *srv;
	struct conn *next;
	struct conn *prev;
	int fd;
	uid_t uid;
	pid_t pid;
	unsigned tenant;		/* kv_store_tenant_of(uid) */
	bool hello;			/* HELLO answered */
	bool reading;			/* read event enabled */
	struct event *rev;
	struct event *wev;
	struct evbuffer *in;		/* NULL before HELLO */
	struct evbuffer *out;		/* NULL before HELLO */
	uint64_t hello_buf[HELLO_LEN / 8];	/* before HELLO: its bytes so far */
	size_t hello_have;
	uint64_t since_ns;		/* before HELLO: accepted; after: the first
					 * byte of a frame not yet complete, or 0 */
	struct kv_owner *owner;
	uint64_t *ns_bits;		/* namespaces registered here */
	size_t ns_words;
	uint64_t *frame;		/* aligned copy of the current frame */
	size_t frame_cap;		/* bytes */
	/* The next frame, once its header is in and admitted (admit()). */
	bool admitted;
	size_t want_in;			/* its bytes, header included */
	size_t want_out;		/* its largest reply, until answered */
	size_t skip;			/* bytes of a refused frame still to drop */
	size_t held;			/* conn_bytes() as last counted */
	struct expired *expired;	/* ring of EXPIRED_KEEP, once needed */
	uint64_t n_expired;
	char name[KV_PROTO_NAME_MAX + 1];
	/*
	 * Parked: the current frame waits for the SSD (a PIN of chunks on
	 * their way up, an ALLOC waiting for write-backs, a FLUSH). Nothing
	 * more is read until it is answered, so replies keep their order.
	 */
	bool parked;
	size_t park_len;		/* the frame's length in frame */
	uint32_t park_next;		/* ALLOC: the next item to allocate */
	void *park_reply;		/* ALLOC, PIN: the replies so far */
	uint64_t flush_base[3];		/* FLUSH: write-back counters at start */
	bool flush_started;
	uint64_t drop_sync;		/* FLUSH --drop: the SSD sync point its
					 * reply waits for, or 0 */
	struct kv_wire_flush_reply drop_fr;
	bool ns_wait;			/* NS_REGISTER, NS_DROP: waiting on the
					 * record of ns_wait_id */
	uint32_t ns_wait_id;
	struct kv_wire_ns_drop_reply ns_drop;	/* NS_DROP: what went */
	struct conn *pnext;		/* the server's parked list */
};

struct kv_server {
	struct kv_server_conf conf;
	struct event_base *base;
	struct kv_store *store;
	struct kv_ns_table *ns;
	struct event *lev;
	int lfd;
	char *path;
	uid_t self_uid;
	struct conn *conns;
	uint32_t n_conns;
	uint64_t *scratch;		/* reply body */
	size_t scratch_cap;
	struct event *ioev;		/* the store's SSD completions */
	struct event *gpuev;		/* the store's GPU copy completions */
	struct event *pumpev;		/* the store has background work */
	struct conn *parked;		/* connections parked on the SSD */
	size_t held;			/* every connection's conn_bytes() */
	size_t charged;			/* ... beyond CONN_FREE each */
	size_t held_peak;		/* held's peak since the last trim */
	size_t out_max;			/* the largest reply of any request */
	struct event *tick;		/* the deadline sweep */
	struct event *resume;		/* listen again after running out of fds */
	int spare_fd;			/* given up to refuse at EMFILE */
};

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static bool process(struct conn *c);

/* ---- memory for clients ----------------------------------------------------- */

static size_t charge(size_t held)
{
	return held > CONN_FREE ? held - CONN_FREE : 0;
}

/* The bytes a connection holds for its client, reservations included. */
static size_t conn_bytes(const struct conn *c)
{
	size_t in = c->in ? evbuffer_get_length(c->in) : 0;

	if (c->admitted && in < c->want_in)
		in = c->want_in;	/* the rest of the frame is coming */
	return in + c->frame_cap + c->want_out +
	       (c->out ? evbuffer_get_length(c->out) : 0);
}

/* Bring the server's counts up to date with c's buffers. */
static void account(struct conn *c)
{
	struct kv_server *srv = c->srv;
	size_t now = conn_bytes(c);

	srv->held = srv->held - c->held + now;
	srv->charged = srv->charged - charge(c->held) + charge(now);
	c->held = now;
	if (srv->held > srv->held_peak)
		srv->held_peak = srv->held;
}

/* May c hold more bytes than account() last counted? */
static bool fits(const struct conn *c, size_t more)
{
	const struct kv_server *srv = c->srv;

	return srv->charged - charge(c->held) + charge(c->held + more) <=
	       srv->conf.max_client_memory;
}

/*
 * The largest reply, header included, that a request with this (checked)
 * header can get: bounded by its op and count, whatever its body says.
 */
static size_t reply_max(const struct kv_server *srv, const struct kv_wire_hdr *h)
{
	uint32_t n = h->count <= srv->conf.max_batch ? h->count : 0; /* KV_EBATCH */
	size_t body;

	switch (h->op) {
	case KV_OP_HELLO:
		body = sizeof(struct kv_wire_hello_reply);
		break;
	case KV_OP_NS_REGISTER:
	case KV_OP_NS_LOOKUP:
		body = sizeof(struct kv_wire_ns_reply);
		break;
	case KV_OP_NS_LIST:	/* its limit is in the body: at most a page */
		body = sizeof(struct kv_wire_ns_list_reply) +
		       KV_PROTO_NS_PAGE * sizeof(struct kv_wire_ns_entry);
		break;
	case KV_OP_NS_DROP:
		body = sizeof(struct kv_wire_ns_drop_reply);
		break;
	case KV_OP_TENANTS:
		body = KV_TENANT_MAX * sizeof(struct kv_wire_tenant);
		break;
	case KV_OP_LOOKUP:
		body = kv_proto_lookup_reply_len(n);
		break;
	case KV_OP_ALLOC:
		body = (size_t)n * sizeof(struct kv_wire_alloc_reply);
		break;
	case KV_OP_PIN:
		body = (size_t)n * sizeof(struct kv_wire_pin_reply);
		break;
	case KV_OP_STATS:
		body = sizeof(struct kv_wire_stats) +
		       KV_TIER_MAX * sizeof(struct kv_wire_tier_stats);
		break;
	case KV_OP_LS:		/* its limit is in the body: at most max_batch */
		body = sizeof(struct kv_wire_ls_reply) +
		       (size_t)srv->conf.max_batch * sizeof(struct kv_wire_entry);
		break;
	case KV_OP_INSPECT:
		body = sizeof(struct kv_wire_entry);
		break;
	case KV_OP_FLUSH:
		body = sizeof(struct kv_wire_flush_reply);
		break;
	case KV_OP_PING:
		body = sizeof(struct kv_wire_ping_reply);
		break;
	case KV_OP_POLICY:
		body = sizeof(struct kv_wire_policy);
		break;
	case KV_OP_BW_REPORT:
	case KV_OP_PLAN_REPORT:
		body = 0;	/* a status alone */
		break;
	default:		/* one status per key */
		body = kv_proto_status_len(n);
		break;
	}
	return HDR_LEN + body;
}

/* ---- expired allocations ------------------------------------------------------ */

static void remember_expired(void *arg, uint32_t ns, const struct kv_wire_key *key)
{
	struct conn *c = arg;

	if (!c->expired)
		c->expired = kv_xcalloc(EXPIRED_KEEP, sizeof(*c->expired));
	c->expired[c->n_expired++ % EXPIRED_KEEP] = (struct expired){ ns, *key };
}

static bool was_expired(const struct conn *c, uint32_t ns, const struct kv_wire_key *key)
{
	uint64_t n = c->n_expired < EXPIRED_KEEP ? c->n_expired : EXPIRED_KEEP;

	for (uint64_t i = 0; i < n; i++)
		if (c->expired[i].ns == ns && c->expired[i].key.lo == key->lo &&
		    c->expired[i].key.hi == key->hi)
			return true;
	return false;
}

static void park(struct conn *c)
{
	c->parked = true;
	c->pnext = c->srv->parked;
	c->srv->parked = c;
}

/* ---- replies ------------------------------------------------------------- */

static void put_hdr(struct kv_wire_hdr *h, uint16_t op, uint64_t req_id,
		    int status, uint32_t count, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->len = len;
	h->op = op;
	h->flags = KV_WIRE_REPLY;
	h->req_id = req_id;
	h->status = status < 0 ? -status : status;
	h->count = count;
}

static void reply(struct conn *c, const struct kv_wire_hdr *req, int status,
		  uint32_t count, const void *body, size_t len)
{
	struct kv_wire_hdr h;

	put_hdr(&h, req->op, req->req_id, status, count, (uint32_t)len);
	evbuffer_add(c->out, &h, sizeof(h));
	if (len)
		evbuffer_add(c->out, body, len);
}

/*
 * Answer with an error and close: one write attempt, no waiting (the
 * reply is small and the client may never read).
 */
static void conn_fail(struct conn *c, uint16_t op, uint64_t req_id, int status)
{
	struct kv_wire_hdr h;

	put_hdr(&h, op, req_id, status, 0, 0);
	if (c->out) {
		evbuffer_add(c->out, &h, sizeof(h));
		evbuffer_write(c->out, c->fd);
	} else if (send(c->fd, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* gone, or not reading: it sees the end of the stream */
	}
	conn_close(c);
}

/* ---- namespaces ----------------------------------------------------------- */

static bool ns_registered(const struct conn *c, uint32_t ns)
{
	return ns / 64 < c->ns_words && (c->ns_bits[ns / 64] >> (ns % 64) & 1);
}

static void ns_mark(struct conn *c, uint32_t ns)
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
static bool ns_visible(uint32_t ns, void *arg)
{
	struct conn *c = arg;
	int t;

	if (c->uid == 0 || c->uid == c->srv->self_uid)
		return true;
	t = kv_store_ns_tenant(c->srv->store, ns);
	return t >= 0 && (unsigned)t == c->tenant;
}

/* ---- handlers ------------------------------------------------------------- */

static void *scratch(struct kv_server *srv, size_t len)
{
	if (len > srv->scratch_cap) {
		free(srv->scratch);
		srv->scratch = kv_xmalloc(len);
		srv->scratch_cap = len;
	}
	memset(srv->scratch, 0, len);
	return srv->scratch;
}

/* Returns false when the connection was closed. */
static bool handle_hello(struct conn *c, const struct kv_req *r)
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
		conn_fail(c, KV_OP_HELLO, r->hdr.req_id,
			  c->hello || h->flags ? KV_EPROTO : KV_EVERSION);
		return false;
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
		conn_close(c);
		return false;
	}
	if ((size_t)n < sizeof(msg))
		evbuffer_add(c->out, (char *)&msg + n, sizeof(msg) - n);
	c->hello = true;
	kv_log(KV_INFO, KV_LOG_NET, "client '%s' (pid %d, uid %u, tenant '%s') connected",
	       c->name, (int)c->pid, (unsigned)c->uid,
	       kv_store_tenant_name(srv->store, c->tenant));
	return true;
}

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
		c->ns_wait = true;
		c->ns_wait_id = id;
		park(c);
	}
	return ret;
}

/*
 * A new name is recorded on the SSD before it is answered, so no chunk of
 * it is ever written before its record is durable; the request parks
 * meanwhile, and so does any other registration of that name.
 */
static void handle_ns_register(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_ns_reply rep = { 0 };
	struct kv_store *st = c->srv->store;
	int ret = 0;

	if (c->ns_wait) {		/* resumed: the record is in, or failed */
		c->ns_wait = false;
		rep.ns = c->ns_wait_id;
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
	ns_mark(c, rep.ns);
	reply(c, &r->hdr, 0, 1, &rep, sizeof(rep));
}

/* ---- NS_LOOKUP, NS_LIST, NS_DROP ------------------------------------------ */

/* The id of a usable name this connection may see: 0, -ENOENT or -EACCES. */
static int ns_find(struct conn *c, const struct kv_req *r, uint32_t *id)
{
	if (kv_ns_lookup(c->srv->ns, r->u.ns_name.name, r->u.ns_name.len, id))
		return -ENOENT;
	return ns_visible(*id, c) ? 0 : -EACCES;
}

/* A name's id without creating it; the connection may then use the id. */
static void handle_ns_lookup(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_ns_reply rep = { 0 };
	int ret = ns_find(c, r, &rep.ns);

	if (ret) {
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	rep.salt = XXH3_64bits(r->u.ns_name.name, r->u.ns_name.len);
	ns_mark(c, rep.ns);
	reply(c, &r->hdr, 0, 1, &rep, sizeof(rep));
}

static void handle_ns_list(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	const struct kv_wire_ns_list *q = r->u.ns_list;
	uint32_t n = kv_ns_count(srv->ns), id, m = 0;
	struct kv_wire_ns_list_reply *lr;
	struct kv_wire_ns_entry *e;
	uint64_t *chunks, *bytes;
	uint32_t *ids;

	lr = scratch(srv, sizeof(*lr) + (size_t)q->limit * sizeof(*e));
	e = (struct kv_wire_ns_entry *)(lr + 1);
	for (id = q->cursor; id < n && m < q->limit; id++) {
		const char *name;
		uid_t uid;

		if (kv_ns_pending(srv->ns, id))
			ns_resolve(srv, id);
		name = kv_ns_name(srv->ns, id);
		if (!*name || !ns_visible(id, c))
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
static void handle_ns_drop(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	struct kv_wire_ns_drop_reply *rep = &c->ns_drop;
	const char *name = r->u.ns_name.name;
	int len = (int)r->u.ns_name.len;
	uid_t owner;
	int ret;

	if (c->ns_wait) {		/* resumed: its records are being deleted */
		ret = kv_store_ns_durable(srv->store, c->ns_wait_id);
		if (ret == -EINPROGRESS) {
			park(c);
			return;
		}
		c->ns_wait = false;
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
		park(c);
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
		c->ns_wait = true;
		c->ns_wait_id = rep->ns;
		park(c);
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

/* The ops that carry keys of one namespace. */
static void handle_keys(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	struct kv_store *st = srv->store;
	uint32_t n = r->hdr.count;
	uint32_t ns = r->hdr.op == KV_OP_ALLOC ? r->u.alloc.ns : r->u.keys.ns;
	const struct kv_wire_key *keys = r->u.keys.keys;
	int32_t *status;
	size_t len;

	if (!ns_registered(c, ns)) {
		reply(c, &r->hdr, KV_ENONS, 0, NULL, 0);
		return;
	}
	switch (r->hdr.op) {
	case KV_OP_LOOKUP: {
		struct kv_wire_lookup_reply *lr;

		len = kv_proto_lookup_reply_len(n);
		lr = scratch(srv, len);
		lr->leading = kv_store_lookup(st, ns, keys, n, (uint8_t *)(lr + 1));
		reply(c, &r->hdr, 0, n, lr, len);
		return;
	}
	case KV_OP_ALLOC: {
		struct kv_wire_alloc_reply *ar;
		uint32_t i = 0;

		len = (size_t)n * sizeof(*ar);
		ar = scratch(srv, len);
		if (c->park_reply) {	/* resumed: carry on where it stopped */
			memcpy(ar, c->park_reply, len);
			free(c->park_reply);
			c->park_reply = NULL;
			i = c->park_next;
		}
		for (; i < n; i++) {
			int ret = kv_store_alloc_in(st, c->owner, ns, &r->u.alloc.items[i],
						    &ar[i].tier, &ar[i].offset);

			if (ret == -EINPROGRESS) {	/* room comes with write-backs */
				c->park_reply = kv_xmalloc(len);
				memcpy(c->park_reply, ar, len);
				c->park_next = i;
				park(c);
				return;
			}
			ar[i].status = -ret;
		}
		reply(c, &r->hdr, 0, n, ar, len);
		return;
	}
	case KV_OP_PIN: {
		struct kv_wire_pin_reply *pr;
		bool again = c->park_reply != NULL;
		uint32_t waiting = 0;

		/*
		 * A chunk on SSD answers -EINPROGRESS and starts up; the others
		 * are pinned at once, and hold while the rest arrive. Each time
		 * promotions finish, the keys still waiting are asked again;
		 * the reply goes when none is.
		 */
		len = (size_t)n * sizeof(*pr);
		pr = scratch(srv, len);
		if (again) {
			memcpy(pr, c->park_reply, len);
			free(c->park_reply);
			c->park_reply = NULL;
		}
		for (uint32_t i = 0; i < n; i++) {
			int ret;

			if (again && pr[i].status != EINPROGRESS)
				continue;
			ret = kv_store_pin_again(st, c->owner, ns, &keys[i], &pr[i], again,
						 r->u.keys.flags & KV_PIN_GPU);
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
			c->park_reply = kv_xmalloc(len);
			memcpy(c->park_reply, pr, len);
			park(c);
			return;
		}
		reply(c, &r->hdr, 0, n, pr, len);
		return;
	}
	case KV_OP_INSPECT: {
		struct kv_wire_entry *e = scratch(srv, sizeof(*e));
		int ret = kv_store_inspect(st, ns, &keys[0], e);

		if (ret)
			reply(c, &r->hdr, ret, 0, NULL, 0);
		else
			reply(c, &r->hdr, 0, 1, e, sizeof(*e));
		return;
	}
	default:
		break;
	}

	/*
	 * COMMIT, ABORT, RELEASE, SCORE, EVICT: one status per key. A COMMIT
	 * runs from the last key to the first: a put names a prompt's chunks
	 * in order, and committing the deepest first leaves each parent more
	 * recent than its child (DESIGN.md section 5).
	 */
	len = kv_proto_status_len(n);
	status = scratch(srv, len);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = r->hdr.op == KV_OP_COMMIT ? n - 1 - k : k;
		int ret;

		switch (r->hdr.op) {
		case KV_OP_COMMIT:
			ret = kv_store_commit(st, c->owner, ns, &keys[i]);
			break;
		case KV_OP_ABORT:
			ret = kv_store_abort(st, c->owner, ns, &keys[i]);
			break;
		case KV_OP_RELEASE:
			ret = kv_store_release(st, c->owner, ns, &keys[i]);
			break;
		case KV_OP_SCORE:
			ret = kv_store_score(st, ns, &keys[i], r->u.score.scores[i]);
			break;
		case KV_OP_PREFETCH:
			kv_store_prefetch(st, ns, &keys[i], 1, status + i);
			continue;
		default: /* KV_OP_EVICT */
			ret = kv_store_evict(st, ns, &keys[i]);
			break;
		}
		if (ret == -ENOENT && c->expired &&
		    (r->hdr.op == KV_OP_COMMIT || r->hdr.op == KV_OP_ABORT) &&
		    was_expired(c, ns, &keys[i]))
			ret = -KV_EEXPIRED;	/* its lease ran out */
		status[i] = -ret;
	}
	reply(c, &r->hdr, 0, n, status, len);
}

static void handle_stats(struct conn *c, const struct kv_req *r)
{
	struct kv_server *srv = c->srv;
	size_t len = sizeof(struct kv_wire_stats) +
		     KV_TIER_MAX * sizeof(struct kv_wire_tier_stats);
	struct kv_wire_stats *g = scratch(srv, len);
	uint32_t n;

	n = kv_store_stats(srv->store, g, (struct kv_wire_tier_stats *)(g + 1),
			   KV_TIER_MAX);
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
	uint64_t cursor = ls->cursor;
	uint32_t n;

	if (ls->ns != KV_NS_ALL && !ns_registered(c, ls->ns)) {
		reply(c, &r->hdr, KV_ENONS, 0, NULL, 0);
		return;
	}
	if (!kv_store_has_tier(srv->store, ls->tier)) {
		reply(c, &r->hdr, KV_ENOTIER, 0, NULL, 0);
		return;
	}
	lr = scratch(srv, sizeof(*lr) + (size_t)ls->limit * sizeof(struct kv_wire_entry));
	n = kv_store_ls(srv->store, ls->ns, ls->tier, ns_visible, c, &cursor,
			(struct kv_wire_entry *)(lr + 1), ls->limit);
	lr->next_cursor = cursor;
	reply(c, &r->hdr, 0, n, lr, sizeof(*lr) + n * sizeof(struct kv_wire_entry));
}

static void handle_flush(struct conn *c, const struct kv_req *r)
{
	struct kv_wire_flush_reply fr;
	uint64_t *base = c->flush_base;
	uint8_t tier = r->u.flush->tier;
	int ret;

	/* A write-back of DRAM (to the SSD) is answered when it is durable. */
	if (!(r->u.flush->flags & KV_FLUSH_DROP) &&
	    (tier == KV_TIER_DRAM || tier == KV_TIER_NONE) &&
	    kv_store_has_tier(c->srv->store, KV_TIER_SSD)) {
		uint64_t w, b, f;
		bool start = !c->flush_started;

		if (start) {
			kv_store_wb_counters(c->srv->store, &base[0], &base[1], &base[2]);
			c->flush_started = true;
		}
		if (kv_store_writeback(c->srv->store, start) == -EINPROGRESS) {
			park(c);
			return;
		}
		c->flush_started = false;
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
	if (c->drop_sync) {	/* resumed: are the drops on the disk? */
		ret = kv_store_ssd_synced(c->srv->store, c->drop_sync);
		if (ret == -EINPROGRESS) {
			park(c);
			return;
		}
		if (ret)
			kv_log(KV_ERR, KV_LOG_MAIN, "flush by pid %d: dropped SSD copies may come back after a restart: %s",
			       (int)c->pid, kv_strerror(ret));
		c->drop_sync = 0;
		reply(c, &r->hdr, 0, 1, &c->drop_fr, sizeof(c->drop_fr));
		return;
	}
	ret = kv_store_flush(c->srv->store, r->u.flush->tier, r->u.flush->flags,
			     ns_visible, c, &fr);
	if (ret) {
		reply(c, &r->hdr, ret, 0, NULL, 0);
		return;
	}
	kv_log(KV_INFO, KV_LOG_MAIN, "flush by pid %d: %llu chunks %s, %llu skipped",
	       (int)c->pid, (unsigned long long)fr.chunks,
	       r->u.flush->flags & KV_FLUSH_DROP ? "dropped" : "written back",
	       (unsigned long long)fr.skipped);
	/* Dropped SSD copies are answered once their records are gone for
	 * good: a dropped chunk must not come back after a crash. */
	if ((r->u.flush->flags & KV_FLUSH_DROP) && fr.chunks &&
	    (c->drop_sync = kv_store_ssd_sync(c->srv->store))) {
		c->drop_fr = fr;
		park(c);
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
	struct kv_wire_tenant *w = scratch(srv, n * sizeof(*w));

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
	struct kv_wire_stats g;
	struct kv_wire_tier_stats t;
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

	if (ret)
		kv_log(KV_DEBUG, KV_LOG_NET, "plan report from pid %d refused: no plan kind %u",
		       (int)c->pid, (unsigned)p->kind);
	reply(c, &r->hdr, ret, 0, NULL, 0);
}

/* Handle one whole frame (in c->frame, or hello_buf), 8-byte aligned.
 * Returns false when the connection was closed. */
static bool handle_frame(struct conn *c, const void *frame, size_t len)
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
		conn_fail(c, r.hdr.op, r.hdr.req_id, ret);
		return false;
	}

	switch (r.hdr.op) {
	case KV_OP_HELLO:
		return handle_hello(c, &r);
	case KV_OP_NS_REGISTER:
		handle_ns_register(c, &r);
		break;
	case KV_OP_STATS:
		handle_stats(c, &r);
		break;
	case KV_OP_LS:
		handle_ls(c, &r);
		break;
	case KV_OP_FLUSH:
		handle_flush(c, &r);
		break;
	case KV_OP_PING:
		handle_ping(c, &r);
		break;
	case KV_OP_POLICY:
		handle_policy(c, &r);
		break;
	case KV_OP_NS_LOOKUP:
		handle_ns_lookup(c, &r);
		break;
	case KV_OP_NS_LIST:
		handle_ns_list(c, &r);
		break;
	case KV_OP_TENANTS:
		handle_tenants(c, &r);
		break;
	case KV_OP_NS_DROP:
		handle_ns_drop(c, &r);
		break;
	case KV_OP_BW_REPORT:
		handle_bw_report(c, &r);
		break;
	case KV_OP_PLAN_REPORT:
		handle_plan_report(c, &r);
		break;
	default:
		handle_keys(c, &r);
		break;
	}
	return true;
}

/* ---- connection I/O ------------------------------------------------------- */

static void set_reading(struct conn *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (on) {
		/* The frame's clock starts again: unread, it could not finish. */
		if (c->hello && c->since_ns)
			c->since_ns = kv_now_ns();
		event_add(c->rev, NULL);
	} else {
		event_del(c->rev);
	}
}

/* A frame answered (or dropped): let its buffers go. */
static void frame_done(struct conn *c)
{
	c->want_out = 0;
	if (c->frame_cap > FRAME_KEEP) {
		free(c->frame);
		c->frame = NULL;
		c->frame_cap = 0;
	}
}

/*
 * The next frame's header is in: check it, then reserve the frame's bytes
 * and its largest reply, or answer KV_EMEMORY and drop its body as it
 * comes. Returns false when the connection was closed.
 */
static bool admit(struct conn *c)
{
	struct kv_server *srv = c->srv;
	size_t have = evbuffer_get_length(c->in);
	struct kv_wire_hdr h;
	size_t total, rep;
	int ret;

	evbuffer_copyout(c->in, &h, HDR_LEN);
	ret = kv_proto_check_hdr(&h, srv->conf.max_msg, &h);
	if (ret) {
		kv_log(KV_WARN, KV_LOG_NET, "bad frame header from pid %d (op %u, %u bytes): %s; closing",
		       (int)c->pid, (unsigned)h.op, (unsigned)h.len, kv_strerror(ret));
		conn_fail(c, h.op < KV_OP_MAX ? h.op : KV_OP_ERROR, h.req_id, ret);
		return false;
	}
	total = HDR_LEN + h.len;
	rep = reply_max(srv, &h);
	account(c);
	if (!fits(c, (total > have ? total - have : 0) + rep)) {
		kv_log_once(KV_WARN, KV_LOG_NET, "refused %s of %zu bytes from pid %d: max_client_memory (%llu bytes) in use; answering %s",
			    kv_proto_op_name(h.op), total, (int)c->pid,
			    (unsigned long long)srv->conf.max_client_memory,
			    kv_strerror(KV_EMEMORY));
		reply(c, &h, KV_EMEMORY, 0, NULL, 0);
		c->skip = total;
		return true;
	}
	c->admitted = true;
	c->want_in = total;
	c->want_out = rep;
	return true;
}

/* Handle every complete frame in the input buffer whose reply has room.
 * Returns false when the connection was closed. */
static bool process(struct conn *c)
{
	struct kv_server *srv = c->srv;
	bool need_input = true;		/* false: waiting for output room */

	while (!c->parked) {
		size_t have = evbuffer_get_length(c->in);
		size_t out = evbuffer_get_length(c->out);
		size_t total;

		if (c->skip) {
			size_t n = have < c->skip ? have : c->skip;

			evbuffer_drain(c->in, n);
			c->skip -= n;
			if (c->skip)
				break;
			continue;
		}
		if (!c->admitted) {
			if (have < HDR_LEN)
				break;
			if (out >= srv->out_max) {
				need_input = false;
				break;
			}
			if (!admit(c))
				return false;
			continue;
		}
		total = c->want_in;
		if (have < total)
			break;
		if (out + c->want_out > srv->out_max) {
			need_input = false;	/* the client reads its replies first */
			break;
		}
		if (total > c->frame_cap) {
			free(c->frame);
			c->frame = kv_xmalloc(total);
			c->frame_cap = total;
		}
		evbuffer_remove(c->in, c->frame, total);
		c->admitted = false;
		c->want_in = 0;
		c->since_ns = 0;
		c->park_len = total;
		if (!handle_frame(c, c->frame, total))
			return false;
		if (!c->parked)
			frame_done(c);
	}
	set_reading(c, need_input && !c->parked);
	if (!c->skip && !evbuffer_get_length(c->in))
		c->since_ns = 0;
	else if (!c->since_ns)
		c->since_ns = kv_now_ns();	/* a frame begun */
	account(c);
	return true;
}

/*
 * Before HELLO: read no more than one HELLO frame into hello_buf. The
 * header is checked as soon as it is in, and anything but a HELLO of
 * HELLO's size closes the connection at once.
 */
static void read_hello(struct conn *c)
{
	struct kv_server *srv = c->srv;
	char *buf = (char *)c->hello_buf;
	bool had_hdr = c->hello_have >= HDR_LEN;
	struct kv_wire_hdr h;
	ssize_t n;
	int ret;

	n = recv(c->fd, buf + c->hello_have, HELLO_LEN - c->hello_have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		kv_log(KV_INFO, KV_LOG_NET, "client '%s' (pid %d) disconnected",
		       c->name, (int)c->pid);
		conn_close(c);
		return;
	}
	c->hello_have += (size_t)n;
	if (!had_hdr && c->hello_have >= HDR_LEN) {
		ret = kv_proto_check_hdr(buf, srv->conf.max_msg, &h);
		if (ret) {
			kv_log(KV_WARN, KV_LOG_NET, "bad frame header from pid %d (op %u, %u bytes): %s; closing",
			       (int)c->pid, (unsigned)h.op, (unsigned)h.len, kv_strerror(ret));
			conn_fail(c, h.op < KV_OP_MAX ? h.op : KV_OP_ERROR, h.req_id, ret);
			return;
		}
		if (h.op != KV_OP_HELLO) {
			kv_log(KV_WARN, KV_LOG_NET, "%s before hello from pid %d; closing",
			       kv_proto_op_name(h.op), (int)c->pid);
			conn_fail(c, h.op, h.req_id, KV_EPROTO);
			return;
		}
		if (h.len != HELLO_LEN - HDR_LEN) {
			kv_log(KV_WARN, KV_LOG_NET, "malformed hello message from pid %d: %u body bytes; closing",
			       (int)c->pid, (unsigned)h.len);
			conn_fail(c, KV_OP_HELLO, h.req_id, KV_EPROTO);
			return;
		}
	}
	if (c->hello_have < HELLO_LEN)
		return;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (!c->in || !c->out) {
		kv_log(KV_ERR, KV_LOG_NET, "out of memory for a connection");
		abort();
	}
	if (handle_frame(c, c->hello_buf, HELLO_LEN) && process(c))
		conn_flush(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t want = READ_CHUNK;
	int n;

	if (!c->hello) {
		read_hello(c);
		return;
	}
	/* An admitted frame: read up to its end, not into the next one,
	 * which is admitted on its own. */
	if (c->admitted && !c->skip) {
		size_t have = evbuffer_get_length(c->in);

		if (c->want_in > have && c->want_in - have < want)
			want = c->want_in - have;
	}
	n = evbuffer_read(c->in, fd, (int)want);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		kv_log(KV_INFO, KV_LOG_NET, "client '%s' (pid %d) disconnected",
		       c->name, (int)c->pid);
		conn_close(c);
		return;
	}
	if (process(c))
		conn_flush(c);
}

static void conn_flush(struct conn *c)
{
	if (evbuffer_get_length(c->out) == 0)
		return;
	if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN && errno != EINTR) {
		kv_log(KV_INFO, KV_LOG_NET, "cannot write to pid %d: %s; closing",
		       (int)c->pid, strerror(errno));
		conn_close(c);
		return;
	}
	account(c);
	if (evbuffer_get_length(c->out))
		event_add(c->wev, NULL);
	else if (!c->reading && !c->parked && process(c))
		conn_flush(c);	/* output drained: take input again */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

static void conn_close(struct conn *c)
{
	struct kv_server *srv = c->srv;

	if (c->parked) {
		struct conn **pp = &srv->parked;

		while (*pp != c)
			pp = &(*pp)->pnext;
		*pp = c->pnext;
	}
	free(c->park_reply);
	kv_store_owner_close(srv->store, c->owner);
	event_free(c->rev);
	event_free(c->wev);
	if (c->in)
		evbuffer_free(c->in);
	if (c->out)
		evbuffer_free(c->out);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	srv->held -= c->held;
	srv->charged -= charge(c->held);
	free(c->ns_bits);
	free(c->frame);
	free(c->expired);
	free(c);
}

/* ---- deadlines ---------------------------------------------------------------- */

/* The sweep's period: a quarter of the shortest deadline, 10 ms .. 1 s. */
static unsigned tick_ms(const struct kv_server_conf *conf)
{
	const uint32_t d[] = { conf->hello_timeout_ms, conf->frame_timeout_ms,
			       conf->alloc_lease_ms };
	unsigned t = 1000;

	for (size_t i = 0; i < KV_ARRAY_SIZE(d); i++)
		if (d[i] && d[i] / 4 < t)
			t = d[i] / 4;
	return t < 10 ? 10 : t;
}

/*
 * SSD jobs or GPU copies finished, or room came free: let the store take
 * the jobs in, then ask again for every parked request (each parks again
 * if it still waits).
 */
static void replay_parked(struct kv_server *srv)
{
	struct conn *list, *c, *next;

	list = srv->parked;
	srv->parked = NULL;
	for (c = list; c; c = next) {
		next = c->pnext;
		c->parked = false;
		c->pnext = NULL;
		if (!handle_frame(c, c->frame, c->park_len))
			continue;	/* closed */
		if (c->parked)
			continue;
		frame_done(c);
		if (process(c))
			conn_flush(c);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct kv_server *srv = arg;
	const struct kv_server_conf *conf = &srv->conf;
	uint64_t now = kv_now_ns();
	struct conn *c, *next;
	unsigned expired = 0;

	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (!c->hello) {
			if (conf->hello_timeout_ms &&
			    now - c->since_ns >= conf->hello_timeout_ms * 1000000ull) {
				kv_log(KV_WARN, KV_LOG_NET, "no hello from pid %d within %u ms; closing",
				       (int)c->pid, conf->hello_timeout_ms);
				conn_fail(c, KV_OP_ERROR, 0, KV_ETIMEDOUT);
			}
			continue;
		}
		if (conf->frame_timeout_ms && c->reading && c->since_ns &&
		    now - c->since_ns >= conf->frame_timeout_ms * 1000000ull) {
			kv_log(KV_WARN, KV_LOG_NET, "frame from pid %d not complete within %u ms; closing",
			       (int)c->pid, conf->frame_timeout_ms);
			conn_fail(c, KV_OP_ERROR, 0, KV_ETIMEDOUT);
			continue;
		}
		/* A parked ALLOC has handed out nothing yet: its lease waits. */
		if (conf->alloc_lease_ms && !c->parked) {
			unsigned n = kv_store_owner_expire(srv->store, c->owner, now,
							   conf->alloc_lease_ms * 1000000ull,
							   remember_expired, c);

			if (n)
				kv_log(KV_INFO, KV_LOG_NET, "%u allocations of pid %d not committed within %u ms; aborted",
				       n, (int)c->pid, conf->alloc_lease_ms);
			expired += n;
		}
	}
	if (expired)
		replay_parked(srv);	/* ALLOCs waiting for room */
	if (srv->held_peak - srv->held > TRIM_SLACK) {
		malloc_trim(0);
		srv->held_peak = srv->held;
	}
}

/* ---- accepting ------------------------------------------------------------- */

/* Refuse a connection with an error frame before closing it. */
static void refuse(int fd, int status)
{
	struct kv_wire_hdr h;

	put_hdr(&h, KV_OP_ERROR, 0, status, 0, 0);
	if (send(fd, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the peer is gone already */
	}
	close(fd);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct kv_server *srv = arg;

	if (srv->spare_fd < 0)
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	event_add(srv->lev, NULL);
}

/*
 * accept() found no descriptor free. Refuse the connections waiting, each
 * through the spare descriptor, so they hear KV_ECONNS instead of hanging;
 * then rest the listener a moment, so the loop never spins on a listener
 * that stays readable.
 */
static void accept_full(struct kv_server *srv, int err)
{
	struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };

	kv_log_once(KV_WARN, KV_LOG_NET, "cannot accept connections: %s; refusing them with %s",
		    strerror(err), kv_strerror(KV_ECONNS));
	for (int i = 0; i < 64 && srv->spare_fd >= 0; i++) {
		int fd;

		close(srv->spare_fd);
		fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			refuse(fd, KV_ECONNS);
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
	}
	event_del(srv->lev);
	event_add(srv->resume, &pause);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct kv_server *srv = arg;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct conn *c;
	int tenant;
	int fd;

	/* Take every pending connection, a few at a time per wakeup. */
	for (int i = 0; i < 64; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				accept_full(srv, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				kv_log_once(KV_WARN, KV_LOG_NET, "accept failed: %s",
					    strerror(errno));
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			kv_log(KV_WARN, KV_LOG_NET, "cannot read peer credentials: %s",
			       strerror(errno));
			close(fd);
			continue;
		}
		tenant = kv_store_tenant_of(srv->store, cred.uid);
		if (tenant < 0) {
			kv_log(KV_WARN, KV_LOG_NET, "refused connection from uid %u (pid %d): not on the allow-list",
			       (unsigned)cred.uid, (int)cred.pid);
			refuse(fd, KV_EPEER);
			continue;
		}
		if (srv->n_conns >= srv->conf.max_conns) {
			kv_log(KV_WARN, KV_LOG_NET, "refused connection from pid %d: limit of %u connections reached",
			       (int)cred.pid, srv->conf.max_conns);
			refuse(fd, KV_ECONNS);
			continue;
		}
		c = kv_xcalloc(1, sizeof(*c));
		c->srv = srv;
		c->fd = fd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->tenant = (unsigned)tenant;
		c->since_ns = kv_now_ns();
		strcpy(c->name, "?");
		/* The buffers come with HELLO (read_hello()). */
		c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_read, c);
		c->wev = event_new(srv->base, fd, EV_WRITE, on_write, c);
		if (!c->rev || !c->wev) {
			kv_log(KV_ERR, KV_LOG_NET, "out of memory for a connection");
			abort();
		}
		c->owner = kv_store_owner_open(srv->store, c->tenant);
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->n_conns++;
		set_reading(c, true);
	}
}

/*
 * A socket file may be left over from a daemon that died. Connect to it:
 * if someone answers, another daemon is serving there and we must not
 * steal its path; if not, remove it.
 */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		kv_log(KV_ERR, KV_LOG_NET, "cannot use '%s': exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (ret == 0) {
		kv_log(KV_ERR, KV_LOG_NET, "cannot use '%s': another kvstored is serving there",
		       path);
		return -EADDRINUSE;
	}
	kv_log(KV_INFO, KV_LOG_NET, "removing stale socket '%s'", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int listen_socket(struct kv_server *srv)
{
	const char *path = srv->conf.socket_path;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t mode = 0600, old;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		kv_log(KV_ERR, KV_LOG_NET, "socket path '%s' is longer than %zu bytes",
		       path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	ret = clear_stale(path, &sa);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* No window in which the socket exists with looser permissions. */
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_NET, "cannot bind '%s': %s", path, strerror(-ret));
		goto out_close;
	}
	if (srv->conf.socket_group && srv->conf.socket_group[0]) {
		struct group *g = getgrnam(srv->conf.socket_group);

		if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
			ret = g ? -errno : -ENOENT;
			kv_log(KV_ERR, KV_LOG_NET, "cannot give '%s' to group '%s': %s",
			       path, srv->conf.socket_group, kv_strerror(ret));
			goto out_unlink;
		}
		mode = 0660;
	}
	if (chmod(path, mode) < 0 || listen(fd, 512) < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_NET, "cannot listen on '%s': %s", path, strerror(-ret));
		goto out_unlink;
	}
	srv->lfd = fd;
	return 0;

out_unlink:
	unlink(path);
out_close:
	close(fd);
	return ret;
}

static int ns_restore(void *arg, uint32_t id, uid_t uid, const char *name)
{
	return kv_ns_restore(arg, id, uid, name);
}

/* Once per loop turn with anything to do: the store's background work
 * (its moves finished or queued), then every parked request again. */
static void on_store_io(evutil_socket_t fd, short what, void *arg)
{
	struct kv_server *srv = arg;

	kv_store_pump(srv->store);
	replay_parked(srv);
}

/* The store queued background work: pump it at the end of this turn. */
static void wake_pump(void *arg)
{
	struct kv_server *srv = arg;

	event_active(srv->pumpev, EV_TIMEOUT, 0);
}

int kv_server_lock(const char *socket_path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	char pid[24];
	int fd, n, ret;

	if (snprintf(path, sizeof(path), "%s.lock", socket_path) >= (int)sizeof(path)) {
		kv_log(KV_ERR, KV_LOG_NET, "socket path '%s' is longer than %zu bytes",
		       socket_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_NET, "cannot open '%s': %s", path, strerror(-ret));
		return ret;
	}
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		ret = -errno;
		if (ret == -EAGAIN || ret == -EACCES) {
			long holder = 0;

			fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
			if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
				holder = fl.l_pid;
			n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
			if (!holder && n > 0) {	/* it let go just now: its pid */
				pid[n] = '\0';
				holder = strtol(pid, NULL, 10);
			}
			kv_log(KV_ERR, KV_LOG_NET, "cannot use '%s': kvstored pid %ld holds it",
			       socket_path, holder);
			ret = -KV_ELOCKED;
		} else {
			kv_log(KV_ERR, KV_LOG_NET, "cannot lock '%s': %s", path, strerror(-ret));
		}
		close(fd);
		return ret;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		kv_log(KV_WARN, KV_LOG_NET, "cannot write the pid into '%s': %s", path,
		       strerror(errno));
	return fd;
}

int kv_server_open(struct kv_server **out, const struct kv_server_conf *conf,
		   struct kv_store *store, struct event_base *base)
{
	struct kv_server *srv;
	int ret;

	struct timeval tick;

	if (!conf->socket_path || !conf->max_conns || !conf->max_batch ||
	    conf->max_batch > KV_PROTO_MAX_BATCH || conf->max_msg < 4096 ||
	    conf->max_msg > KV_PROTO_MAX_MSG || !conf->max_namespaces)
		return -EINVAL;
	srv = kv_xcalloc(1, sizeof(*srv));
	srv->conf = *conf;
	for (uint16_t op = KV_OP_HELLO; op < KV_OP_MAX; op++) {
		struct kv_wire_hdr h = { .op = op, .count = conf->max_batch };

		if (reply_max(srv, &h) > srv->out_max)
			srv->out_max = reply_max(srv, &h);
	}
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	srv->base = base;
	srv->store = store;
	srv->self_uid = getuid();
	srv->path = kv_xstrdup(conf->socket_path);
	srv->conf.socket_path = srv->path;
	ret = kv_ns_open(&srv->ns, conf->max_namespaces);
	if (ret)
		goto out_free;
	ret = kv_store_namespaces(store, ns_restore, srv->ns);
	if (ret) {
		kv_log(KV_ERR, KV_LOG_MAIN, "cannot restore the namespaces: %s", kv_strerror(ret));
		goto out_ns;
	}
	srv->pumpev = event_new(base, -1, 0, on_store_io, srv);
	if (!srv->pumpev) {
		ret = -ENOMEM;
		goto out_ns;
	}
	kv_store_set_wake(store, wake_pump, srv);
	if (kv_store_event_fd(store) >= 0) {
		srv->ioev = event_new(base, kv_store_event_fd(store), EV_READ | EV_PERSIST,
				      on_store_io, srv);
		if (!srv->ioev || event_add(srv->ioev, NULL)) {
			ret = -ENOMEM;
			goto out_ns;
		}
	}
	if (kv_store_hbm_event_fd(store) >= 0) {
		srv->gpuev = event_new(base, kv_store_hbm_event_fd(store),
				       EV_READ | EV_PERSIST, on_store_io, srv);
		if (!srv->gpuev || event_add(srv->gpuev, NULL)) {
			ret = -ENOMEM;
			goto out_ns;
		}
	}
	ret = listen_socket(srv);
	if (ret)
		goto out_ns;
	srv->lev = event_new(base, srv->lfd, EV_READ | EV_PERSIST, on_accept, srv);
	srv->resume = evtimer_new(base, on_resume, srv);
	srv->tick = event_new(base, -1, EV_PERSIST, on_tick, srv);
	tick = (struct timeval){ tick_ms(conf) / 1000, tick_ms(conf) % 1000 * 1000 };
	if (!srv->lev || !srv->resume || !srv->tick || event_add(srv->lev, NULL) ||
	    event_add(srv->tick, &tick)) {
		ret = -ENOMEM;
		goto out_listen;
	}
	kv_log(KV_INFO, KV_LOG_NET, "listening on '%s'", srv->path);
	*out = srv;
	return 0;

out_listen:
	if (srv->lev)
		event_free(srv->lev);
	if (srv->resume)
		event_free(srv->resume);
	if (srv->tick)
		event_free(srv->tick);
	close(srv->lfd);
	unlink(srv->path);
out_ns:
	if (srv->ioev)
		event_free(srv->ioev);
	if (srv->gpuev)
		event_free(srv->gpuev);
	if (srv->pumpev)
		event_free(srv->pumpev);
	kv_store_set_wake(srv->store, NULL, NULL);
	kv_ns_close(srv->ns);
out_free:
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv->path);
	free(srv);
	return ret;
}

void kv_server_close(struct kv_server *srv)
{
	if (!srv)
		return;
	while (srv->conns)
		conn_close(srv->conns);
	if (srv->ioev)
		event_free(srv->ioev);
	if (srv->gpuev)
		event_free(srv->gpuev);
	if (srv->pumpev)
		event_free(srv->pumpev);
	kv_store_set_wake(srv->store, NULL, NULL);
	event_free(srv->lev);
	event_free(srv->resume);
	event_free(srv->tick);
	close(srv->lfd);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	unlink(srv->path);
	kv_ns_close(srv->ns);
	free(srv->scratch);
	free(srv->path);
	free(srv);
}
