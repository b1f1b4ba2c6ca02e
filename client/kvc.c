/*
 * kvc.c - libkvc: the client side of the protocol, and the data path.
 *
 * One request/reply exchange at a time per handle (the mutex); the one
 * exception is the RELEASE that ends a get, whose reply is read at the
 * start of the next exchange instead of waited for (replies are ordered);
 * batches larger than the daemon's per-message limits are split here, so
 * callers may pass any n. Chunk bytes move by memcpy between the caller's
 * memory and the DRAM arena, which this process maps once at connect.
 *
 * The daemon is trusted no further than the socket: every reply is checked
 * (its op, request id, length, count) and every offset it hands out is
 * checked against the mapping before a byte is copied. A handle whose
 * connection broke answers -KVC_ECLOSED from then on.
 *
 * Deadlines: each exchange (a request and its reply; connect and HELLO)
 * must finish within the handle's timeout (KVSTORE_TIMEOUT_MS, default
 * KVC_TIMEOUT_DEFAULT_MS, kvc_set_timeout(); 0: none). The socket stays
 * blocking; with a timeout every send and recv is MSG_DONTWAIT behind a
 * poll() for the time left. An exchange that runs out answers
 * -KVC_ETIMEDOUT and closes the connection: a reply may still come, and
 * the stream would be out of step.
 *
 * The library never logs and never raises signals (MSG_NOSIGNAL).
 */
#define XXH_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "lib/errors.h"
#include "lib/proto.h"

_Static_assert((int)KVC_EPROTO == (int)KV_EPROTO &&
	       (int)KVC_ECORRUPT == (int)KV_ECORRUPT &&
	       (int)KVC_ENOTIER == (int)KV_ENOTIER &&
	       (int)KVC_ENOPARENT == (int)KV_ENOPARENT &&
	       (int)KVC_EFORMAT == (int)KV_EFORMAT &&
	       (int)KVC_ETIMEDOUT == (int)KV_ETIMEDOUT &&
	       (int)KVC_EQUOTA == (int)KV_EQUOTA &&
	       (int)KVC_EREFUSED == (int)KV_EREFUSED && KV_EMAX == KV_EREFUSED + 1,
	       "kvc.h mirrors lib/errors.h");
_Static_assert((int)KVC_PLAN_LOADED == (int)KV_PLAN_LOADED &&
	       (int)KVC_PLAN_COMPUTED == (int)KV_PLAN_COMPUTED &&
	       (int)KVC_PLAN_BOTH == (int)KV_PLAN_BOTH, "kvc.h mirrors lib/proto.h");
_Static_assert(KVC_TIER_DRAM == KV_TIER_DRAM && KVC_TIER_NONE == KV_TIER_NONE &&
	       KVC_NS_ALL == KV_NS_ALL && KVC_MAX_BATCH == KV_PROTO_MAX_BATCH &&
	       (int)KVC_FLUSH_DROP == (int)KV_FLUSH_DROP, "kvc.h mirrors lib/proto.h");
_Static_assert(sizeof(((struct kvc_tenant *)0)->name) > KV_TENANT_NAME_BYTES &&
	       sizeof(((struct kvc_tenant *)0)->uids) / sizeof(uint32_t) ==
	       KV_TENANT_UIDS_SHOWN && KV_TIER_MAX == 3, "kvc_tenant mirrors kv_wire_tenant");
_Static_assert(sizeof(struct kvc_key) == sizeof(struct kv_wire_key),
	       "keys go on the wire as they are");
_Static_assert(KVC_NS_PAGE == KV_PROTO_NS_PAGE &&
	       sizeof(((struct kvc_ns_info *)0)->name) == KV_PROTO_NS_MAX + 1,
	       "kvc.h mirrors lib/proto.h");
_Static_assert(sizeof(((struct kvc_tier_stats *)0)->name) >
	       sizeof(((struct kv_wire_tier_stats *)0)->name) &&
	       sizeof(((struct kvc_tier_stats *)0)->policy) >
	       sizeof(((struct kv_wire_tier_stats *)0)->policy),
	       "room for the wire's NUL-padded names and a NUL");

#define HDR_LEN sizeof(struct kv_wire_hdr)
#define RX_CAP (16u << 10)	/* most replies arrive whole in one recv() */
/* The largest reply a valid request can get: an LS page. */
#define REPLY_MAX (sizeof(struct kv_wire_ls_reply) + \
		   KV_PROTO_MAX_BATCH * sizeof(struct kv_wire_entry))
_Static_assert(sizeof(struct kv_wire_ns_list_reply) +
	       KV_PROTO_NS_PAGE * sizeof(struct kv_wire_ns_entry) <= REPLY_MAX,
	       "an NS_LIST page fits a reply");

struct kvc {
	pthread_mutex_t lock;
	int fd;				/* -1 once the connection broke */
	unsigned timeout_ms;		/* per exchange; 0: none */
	uint64_t deadline_ns;		/* the exchange under way must end by then */
	uint64_t next_id;
	char *dram;			/* the DRAM arena, mapped */
	size_t dram_bytes;
	struct kvci_hbm hbm_info;	/* the HBM arena, from HELLO */
	char *hbm;			/* ... as this process opened it, or NULL */
	struct kvc_gpu *gpu;		/* client/kvc_gpu.c's state */
	uint32_t max_batch;
	uint32_t max_msg;
	uint64_t *req;			/* request frame being built */
	size_t req_cap;
	uint64_t *rep;			/* reply body */
	size_t rep_cap;
	bool deferred;			/* a RELEASE's reply is still unread */
	uint64_t deferred_id;		/* ... the request id it will carry */
	char rx[RX_CAP];		/* bytes received, not consumed yet */
	size_t rx_head;
	size_t rx_tail;
	/* Per-batch scratch, used under the lock (not on callers' stacks). */
	struct kvc_key keys[KV_PROTO_MAX_BATCH];
	struct kvc_key held[KV_PROTO_MAX_BATCH];
	struct kvc_loc locs[KV_PROTO_MAX_BATCH];
	char *ptrs[KV_PROTO_MAX_BATCH];
	int status[KV_PROTO_MAX_BATCH];
};

const char *kvc_strerror(int err)
{
	return kv_strerror(err);
}

/* ---- keys ----------------------------------------------------------------- */

uint64_t kvc_ns_salt(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

static struct kvc_key key_hash(uint64_t seed, const struct kvc_key *parent,
			       const uint32_t *tokens, size_t n)
{
	XXH3_state_t st;
	XXH128_hash_t h;

	XXH3_128bits_reset_withSeed(&st, seed);
	if (parent)
		XXH3_128bits_update(&st, parent, sizeof(*parent));
	XXH3_128bits_update(&st, tokens, n * sizeof(uint32_t));
	h = XXH3_128bits_digest(&st);
	return (struct kvc_key){ .lo = h.low64, .hi = h.high64 };
}

struct kvc_key kvc_key_prefix(uint64_t salt, const struct kvc_key *parent,
			      const uint32_t *tokens, size_t n)
{
	static const struct kvc_key root = { 0, 0 };

	return key_hash(salt, parent ? parent : &root, tokens, n);
}

struct kvc_key kvc_key_content(uint64_t salt, const uint32_t *tokens, size_t n)
{
	return key_hash(salt ^ 0x636f6e74656e7421ull, NULL, tokens, n);
}

size_t kvc_key_chain(uint64_t salt, const uint32_t *tokens, size_t n_tokens,
		     size_t chunk_tokens, struct kvc_key *out, size_t max)
{
	size_t chunks = chunk_tokens ? n_tokens / chunk_tokens : 0;
	struct kvc_key prev;

	for (size_t i = 0; i < chunks && i < max; i++) {
		out[i] = kvc_key_prefix(salt, i ? &prev : NULL,
					tokens + i * chunk_tokens, chunk_tokens);
		prev = out[i];
	}
	return chunks;
}

void kvc_key_to_hex(const struct kvc_key *k, char out[33])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[i] = digits[(k->hi >> (60 - 4 * i)) & 15];
		out[16 + i] = digits[(k->lo >> (60 - 4 * i)) & 15];
	}
	out[32] = '\0';
}

int kvc_key_from_hex(const char *hex, struct kvc_key *out)
{
	uint64_t w[2] = { 0, 0 };

	if (!hex || strlen(hex) != 32)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		char ch = hex[i];
		unsigned v;

		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v = ch - 'A' + 10;
		else
			return -EINVAL;
		w[i / 16] = w[i / 16] << 4 | v;
	}
	out->hi = w[0];
	out->lo = w[1];
	return 0;
}

/* ---- transport ------------------------------------------------------------ */

static void conn_break(struct kvc *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Start an exchange: its deadline is the handle's timeout from now. */
static void exchange_start(struct kvc *c)
{
	c->deadline_ns = c->timeout_ms ? now_ns() + c->timeout_ms * 1000000ull : 0;
}

/*
 * Wait until the socket is ready for events, or the exchange's deadline
 * passes: then the connection is closed (its stream is out of step) and
 * -KVC_ETIMEDOUT returned. Only with a timeout.
 */
static int wait_ready(struct kvc *c, short events)
{
	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = events };
		uint64_t now = now_ns();
		int n;

		if (now >= c->deadline_ns) {
			conn_break(c);
			return -KVC_ETIMEDOUT;
		}
		n = poll(&p, 1, (int)((c->deadline_ns - now + 999999) / 1000000));
		if (n > 0)
			return 0;	/* readable, writable, or an error recv reports */
		if (n < 0 && errno != EINTR) {
			conn_break(c);
			return -KVC_ECLOSED;
		}
	}
}

static int send_all(struct kvc *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(c->fd, p, len,
				 MSG_NOSIGNAL | (c->timeout_ms ? MSG_DONTWAIT : 0));

		if (n < 0 && errno == EAGAIN && c->timeout_ms) {
			int ret = wait_ready(c, POLLOUT);

			if (ret)
				return ret;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_break(c);
			return -KVC_ECLOSED;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Read exactly len bytes. Small replies come through c->rx, so a header
 * and its body usually cost one recv(); large bodies go straight to buf.
 */
static int recv_all(struct kvc *c, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		size_t have = c->rx_tail - c->rx_head;
		ssize_t n;

		if (have) {
			size_t take = have < len ? have : len;

			memcpy(p, c->rx + c->rx_head, take);
			c->rx_head += take;
			p += take;
			len -= take;
			continue;
		}
		if (c->timeout_ms) {
			int ret = wait_ready(c, POLLIN);

			if (ret)
				return ret;
		}
		if (len >= RX_CAP / 2)
			n = recv(c->fd, p, len, c->timeout_ms ? MSG_DONTWAIT : 0);
		else
			n = recv(c->fd, c->rx, RX_CAP, c->timeout_ms ? MSG_DONTWAIT : 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			conn_break(c);
			return -KVC_ECLOSED;
		}
		if (len >= RX_CAP / 2) {
			p += n;
			len -= n;
		} else {
			c->rx_head = 0;
			c->rx_tail = (size_t)n;
		}
	}
	return 0;
}

static void *grow(uint64_t **buf, size_t *cap, size_t len)
{
	if (len > *cap) {
		void *p = realloc(*buf, len);

		if (!p)
			return NULL;
		*buf = p;
		*cap = len;
	}
	return *buf;
}

/* Space for a request body of len bytes, after the header. */
static void *req_body(struct kvc *c, size_t len)
{
	char *p = grow(&c->req, &c->req_cap, HDR_LEN + len);

	if (!p)
		return NULL;
	memset(p, 0, HDR_LEN + len);
	return p + HDR_LEN;
}

/* Read and check a reply header for (op, id). */
static int recv_hdr(struct kvc *c, unsigned op, uint64_t id, struct kv_wire_hdr *h)
{
	int ret = recv_all(c, h, sizeof(*h));

	if (ret)
		return ret;
	if (h->op == KV_OP_ERROR && h->status) {
		/* The daemon refused the connection (limit, allow-list). */
		conn_break(c);
		return -h->status;
	}
	if (!(h->flags & KV_WIRE_REPLY) || h->op != op || h->req_id != id ||
	    h->len > REPLY_MAX || h->len % 8 || h->status < 0) {
		conn_break(c);
		return -KVC_EPROTO;
	}
	return 0;
}

/* Send the request built in c->req (body of len bytes); returns its id. */
static int send_req(struct kvc *c, unsigned op, uint32_t count, size_t len,
		    uint64_t *id)
{
	struct kv_wire_hdr *rq = (struct kv_wire_hdr *)c->req;

	if (c->fd < 0)
		return -KVC_ECLOSED;
	exchange_start(c);
	memset(rq, 0, sizeof(*rq));
	rq->len = (uint32_t)len;
	rq->op = (uint16_t)op;
	rq->req_id = *id = ++c->next_id;
	rq->count = count;
	return send_all(c, rq, HDR_LEN + len);
}

/*
 * Read the reply to (op, id) into *h and c->rep. Replies come in request
 * order, so the reply of a deferred RELEASE (sent earlier by a get, its
 * answer not waited for) comes first: read and drop it. Every exchange
 * drains it, so at most one is ever outstanding.
 */
static int recv_reply(struct kvc *c, unsigned op, uint64_t id,
		      struct kv_wire_hdr *h)
{
	bool mine;
	int ret;

	do {
		mine = !c->deferred;
		ret = recv_hdr(c, mine ? op : KV_OP_RELEASE,
			       mine ? id : c->deferred_id, h);
		if (ret)
			return ret;
		if (!grow(&c->rep, &c->rep_cap, h->len ? h->len : 8)) {
			conn_break(c);	/* the unread body would desynchronize us */
			return -ENOMEM;
		}
		ret = recv_all(c, c->rep, h->len);
		if (ret)
			return ret;
		c->deferred = false;
	} while (!mine);
	return h->status ? -h->status : 0;
}

/*
 * Send the request built in c->req (body of len bytes) and wait for its
 * reply: 0 with the reply's header in *h and body in c->rep, or -status
 * of an error reply, or -KVC_ECLOSED / -KVC_EPROTO / -ENOMEM.
 */
static int rpc(struct kvc *c, unsigned op, uint32_t count, size_t len,
	       struct kv_wire_hdr *h)
{
	uint64_t id;
	int ret;

	ret = send_req(c, op, count, len, &id);
	if (ret)
		return ret;
	return recv_reply(c, op, id, h);
}

/* Keys per message for items of item bytes after an 8-byte header. */
static uint32_t batch_of(const struct kvc *c, size_t item)
{
	size_t by_msg = (c->max_msg - sizeof(struct kv_wire_keys)) / item;

	return by_msg < c->max_batch ? (uint32_t)by_msg : c->max_batch;
}

/* Build a key-list request (ns header and keys) for n keys. */
static int keys_req_flags(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
			  uint32_t n, uint32_t flags)
{
	struct kv_wire_keys *k = req_body(c, kv_proto_keys_len(n));

	if (!k)
		return -ENOMEM;
	k->ns = ns;
	k->flags = flags;
	memcpy(k + 1, keys, (size_t)n * sizeof(*keys));
	return 0;
}

static int keys_req(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		    uint32_t n)
{
	return keys_req_flags(c, ns, keys, n, 0);
}

/*
 * A key-list op answered with one int32 status per key (COMMIT, ABORT,
 * RELEASE, EVICT): per-key results into status (may be NULL) as negative
 * codes; returns how many succeeded or a call-wide error.
 */
static int status_op(struct kvc *c, unsigned op, uint32_t ns,
		     const struct kvc_key *keys, size_t n, int *status)
{
	uint32_t step = batch_of(c, sizeof(struct kv_wire_key));
	int ok = 0;

	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kv_wire_hdr h;
		const int32_t *st;
		int ret;

		ret = keys_req(c, ns, keys + i, m);
		if (!ret)
			ret = rpc(c, op, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_status_len(m))) {
			conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			return ret;
		st = (const int32_t *)c->rep;
		for (uint32_t j = 0; j < m; j++) {
			if (status)
				status[i + j] = -st[j];
			ok += st[j] == 0;
		}
	}
	return ok;
}

/* ---- connect / close ------------------------------------------------------- */

/* Room for more descriptors than a HELLO reply may carry, so that a reply
 * with too many is seen (and every one closed) rather than cut short. */
#define HELLO_FDS_ROOM	(KV_HELLO_MAX_FDS + 6)

/* Take the descriptors of every SCM_RIGHTS message in mh into fds[] (at
 * most room; any past that are closed at once). Returns how many came. */
static unsigned take_fds(struct msghdr *mh, int *fds, unsigned room)
{
	unsigned got = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++, got++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (got < room)
				fds[got] = fd;
			else
				close(fd);
		}
	}
	return got;
}

/*
 * HELLO, and the arenas its reply hands over: the DRAM memfd (mapped here,
 * then closed) and, with KV_HELLO_HBM, the HBM arena's fd (kept in
 * c->hbm_info.fd for kvc_gpu_open() to import, closed at kvc_close()).
 * A reply whose descriptors are not exactly the ones its flags announce is
 * -KVC_EPROTO, and every descriptor that came with it is closed.
 */
static int hello(struct kvc *c)
{
	struct kv_wire_hello *hb = req_body(c, sizeof(*hb));
	struct kv_wire_hdr *rq = (struct kv_wire_hdr *)c->req;
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello_reply b;
	} rep;
	union {
		char buf[CMSG_SPACE(HELLO_FDS_ROOM * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { &rep, sizeof(rep) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	struct stat st;
	int fds[HELLO_FDS_ROOM];
	unsigned nfd, want;
	int fd, ret;
	ssize_t n;

	if (!hb)
		return -ENOMEM;
	memset(&rep, 0, sizeof(rep));
	hb->version = KV_PROTO_VERSION;
	hb->pid = (uint64_t)getpid();
	memcpy(hb->name, program_invocation_short_name,
	       strnlen(program_invocation_short_name, sizeof(hb->name)));
	rq->len = sizeof(*hb);
	rq->op = KV_OP_HELLO;
	rq->req_id = ++c->next_id;
	/* If the daemon refused us at accept, this send may fail: read the
	 * reason anyway. A new socket's buffer takes these 72 bytes. */
	send(c->fd, rq, HDR_LEN + sizeof(*hb), MSG_NOSIGNAL | MSG_DONTWAIT);

	do {
		if (c->timeout_ms) {
			ret = wait_ready(c, POLLIN);
			if (ret)
				return ret;
		}
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | (c->timeout_ms ? MSG_DONTWAIT : 0));
	} while (n < 0 && (errno == EINTR || errno == EAGAIN));
	if (n <= 0)
		return n == 0 ? -KVC_ECLOSED : -errno;
	nfd = take_fds(&mh, fds, HELLO_FDS_ROOM);
	if ((size_t)n >= HDR_LEN && rep.h.status)
		ret = -(int)(rep.h.status > 0 ? rep.h.status : KVC_EPROTO);
	else if ((size_t)n < sizeof(rep) &&
		 recv_all(c, (char *)&rep + n, sizeof(rep) - n))
		ret = -KVC_ECLOSED;
	else if (rep.h.op != KV_OP_HELLO || !(rep.h.flags & KV_WIRE_REPLY) ||
		 rep.h.len != sizeof(rep.b) || !(rep.b.flags & KV_HELLO_FD) ||
		 rep.b.max_batch == 0 || rep.b.max_msg < 4096)
		ret = -KVC_EPROTO;
	else if (rep.b.version != KV_PROTO_VERSION)
		ret = -KVC_EVERSION;
	else
		ret = 0;
	/* Exactly the descriptors announced, none cut off by the kernel. */
	want = 1 + !!(rep.b.flags & KV_HELLO_HBM);
	if (!ret && (nfd != want || (mh.msg_flags & MSG_CTRUNC)))
		ret = -KVC_EPROTO;
	if (!ret && (rep.b.flags & KV_HELLO_HBM) &&
	    (rep.b.hbm_bytes == 0 || rep.b.hbm_map_bytes < rep.b.hbm_bytes))
		ret = -KVC_EPROTO;
	if (ret)
		goto out;
	fd = fds[0];

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < rep.b.dram_bytes ||
	    rep.b.dram_bytes == 0) {
		ret = -KVC_EPROTO;
		goto out;
	}
	c->dram = mmap(NULL, rep.b.dram_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c->dram == MAP_FAILED) {
		c->dram = NULL;
		ret = -errno;
		goto out;
	}
	madvise(c->dram, rep.b.dram_bytes, MADV_HUGEPAGE);
	c->dram_bytes = rep.b.dram_bytes;
	c->max_batch = rep.b.max_batch < KV_PROTO_MAX_BATCH ? rep.b.max_batch :
							       KV_PROTO_MAX_BATCH;
	c->max_msg = rep.b.max_msg < KV_PROTO_MAX_MSG ? rep.b.max_msg : KV_PROTO_MAX_MSG;
	if (rep.b.flags & KV_HELLO_HBM) {
		c->hbm_info.bytes = rep.b.hbm_bytes;
		c->hbm_info.map_bytes = rep.b.hbm_map_bytes;
		memcpy(c->hbm_info.pci, rep.b.hbm_pci, sizeof(c->hbm_info.pci));
		c->hbm_info.pci[sizeof(c->hbm_info.pci) - 1] = '\0';
		c->hbm_info.fd = fds[1];
		fds[1] = -1;		/* kept */
	}
out:
	/* The memfd's mapping keeps the DRAM arena; anything else is refused. */
	for (unsigned i = 0; i < nfd && i < HELLO_FDS_ROOM; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

/* KVSTORE_TIMEOUT_MS: decimal milliseconds; unset or not a number: the
 * default. */
static unsigned env_timeout(void)
{
	const char *v = getenv("KVSTORE_TIMEOUT_MS");
	unsigned long ms;
	char *end;

	if (!v || !*v)
		return KVC_TIMEOUT_DEFAULT_MS;
	errno = 0;
	ms = strtoul(v, &end, 10);
	if (*end || errno || ms > UINT32_MAX || *v == '-' || *v == '+' || *v == ' ')
		return KVC_TIMEOUT_DEFAULT_MS;
	return (unsigned)ms;
}

/*
 * connect() to a daemon whose backlog is full waits until it accepts:
 * with a timeout, try without waiting until the deadline instead.
 */
static int connect_by(struct kvc *c, const struct sockaddr_un *sa)
{
	int flags = c->timeout_ms ? fcntl(c->fd, F_GETFL) : -1;
	int ret;

	if (flags >= 0)
		fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
	for (;;) {
		struct timespec pause = { 0, 5000000 };

		ret = connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
		if (flags < 0 || ret != -EAGAIN)
			break;
		if (now_ns() >= c->deadline_ns) {
			ret = -KVC_ETIMEDOUT;
			break;
		}
		nanosleep(&pause, NULL);
	}
	if (flags >= 0)
		fcntl(c->fd, F_SETFL, flags);
	return ret;
}

int kvc_connect(const char *path, struct kvc **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kvc *c;
	int ret;

	if (!path)
		path = getenv("KVSTORE_SOCKET");
	if (!path || !*path)
		path = KVC_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->hbm_info.fd = -1;
	c->timeout_ms = env_timeout();
	exchange_start(c);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ret = -errno;
		goto out_free;
	}
	ret = connect_by(c, &sa);
	if (ret)
		goto out_close;
	ret = hello(c);
	if (ret)
		goto out_close;
	*out = c;
	return 0;

out_close:
	conn_break(c);
out_free:
	free(c->req);
	free(c->rep);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return ret;
}

void kvc_close(struct kvc *c)
{
	if (!c)
		return;
	kvci_gpu_close(c);	/* its copies finish, their pins go first */
	conn_break(c);
	if (c->dram)
		munmap(c->dram, c->dram_bytes);
	if (c->hbm_info.fd >= 0)
		close(c->hbm_info.fd);	/* an import of it stays mapped until then */
	free(c->req);
	free(c->rep);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int kvc_set_timeout(struct kvc *c, unsigned ms)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->timeout_ms = ms;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void kvci_hbm_info(struct kvc *c, struct kvci_hbm *out)
{
	*out = c->hbm_info;
}

void kvci_set_hbm(struct kvc *c, void *base)
{
	pthread_mutex_lock(&c->lock);
	c->hbm = base;
	pthread_mutex_unlock(&c->lock);
}

struct kvc_gpu **kvci_gpu(struct kvc *c)
{
	return &c->gpu;
}

void *kvc_dram_base(struct kvc *c, size_t *bytes)
{
	if (bytes)
		*bytes = c->dram_bytes;
	return c->dram;
}

/* ---- namespaces -------------------------------------------------------------- */

/*
 * A request that carries a namespace name (NS_REGISTER, NS_LOOKUP,
 * NS_DROP), with NS_REGISTER's optional model; under the lock. Returns 0
 * with the reply in c->rep (checked to be len bytes), or an error.
 */
static int ns_name_rpc(struct kvc *c, unsigned op, const char *name,
		       const struct kv_wire_ns_model *model, size_t len)
{
	size_t n = strlen(name);
	size_t blen = kv_proto_pad8(n) + (model ? sizeof(*model) : 0);
	struct kv_wire_hdr h;
	char *body;
	int ret;

	body = req_body(c, blen);
	if (!body)
		return -ENOMEM;
	memcpy(body, name, n);
	if (model)
		memcpy(body + kv_proto_pad8(n), model, sizeof(*model));
	ret = rpc(c, op, (uint32_t)n, blen, &h);
	if (!ret && h.len != len) {
		conn_break(c);
		ret = -KVC_EPROTO;
	}
	return ret;
}

static bool ns_name_ok(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	return len > 0 && len <= KV_PROTO_NS_MAX;
}

static int ns_register(struct kvc *c, const char *name,
		       const struct kv_wire_ns_model *model, uint32_t *ns)
{
	int ret;

	if (!ns_name_ok(name) || !ns)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = ns_name_rpc(c, KV_OP_NS_REGISTER, name, model,
			  sizeof(struct kv_wire_ns_reply));
	if (!ret)
		*ns = ((const struct kv_wire_ns_reply *)c->rep)->ns;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ns_lookup(struct kvc *c, const char *name, uint32_t *ns)
{
	int ret;

	if (!ns_name_ok(name) || !ns)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = ns_name_rpc(c, KV_OP_NS_LOOKUP, name, NULL, sizeof(struct kv_wire_ns_reply));
	if (!ret)
		*ns = ((const struct kv_wire_ns_reply *)c->rep)->ns;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ns_drop(struct kvc *c, const char *name, uint64_t *chunks, uint64_t *bytes)
{
	const struct kv_wire_ns_drop_reply *r;
	int ret;

	if (!ns_name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = ns_name_rpc(c, KV_OP_NS_DROP, name, NULL, sizeof(*r));
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
	q = req_body(c, sizeof(*q));
	if (!q) {
		ret = -ENOMEM;
		goto out;
	}
	q->cursor = *cursor;
	q->limit = max < KV_PROTO_NS_PAGE ? (uint32_t)max : KV_PROTO_NS_PAGE;
	ret = rpc(c, KV_OP_NS_LIST, 0, sizeof(*q), &h);
	if (ret)
		goto out;
	if (h.count > q->limit || h.len != sizeof(*r) + h.count * sizeof(*e)) {
		conn_break(c);
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

int kvc_ns_register(struct kvc *c, const char *name, uint32_t *ns)
{
	return ns_register(c, name, NULL, ns);
}

int kvc_ns_register_model(struct kvc *c, const char *name, uint32_t hidden,
			  double a, double b, uint32_t *ns)
{
	struct kv_wire_ns_model m = { .hidden = hidden, .a = a, .b = b };

	if (!hidden || !(a >= 0) || !(b >= 0))
		return -EINVAL;
	return ns_register(c, name, &m, ns);
}

/* ---- reading ------------------------------------------------------------------- */

int kvc_lookup(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, uint8_t *tiers)
{
	uint32_t step;
	int leading = 0, ret = 0;
	bool run = true;

	if (n > INT32_MAX || (n && !keys))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = batch_of(c, sizeof(struct kv_wire_key));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		const struct kv_wire_lookup_reply *r;
		struct kv_wire_hdr h;

		ret = keys_req(c, ns, keys + i, m);
		if (!ret)
			ret = rpc(c, KV_OP_LOOKUP, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_lookup_reply_len(m))) {
			conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			goto out;
		r = (const struct kv_wire_lookup_reply *)c->rep;
		if (r->leading > m) {
			conn_break(c);
			ret = -KVC_EPROTO;
			goto out;
		}
		if (tiers)
			memcpy(tiers + i, r + 1, m);
		if (run)
			leading += r->leading;
		run = run && r->leading == m;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : leading;
}

/* A reply's (tier, offset, bytes) as a pointer in this process, or NULL
 * for a tier it has not mapped; -KVC_EPROTO (connection broken) when the
 * daemon names bytes outside the arena. */
static int arena_ptr(struct kvc *c, uint8_t tier, uint64_t off, uint64_t bytes,
		     char **ptr)
{
	char *base = tier == KV_TIER_DRAM ? c->dram : tier == KV_TIER_HBM ? c->hbm : NULL;
	uint64_t size = tier == KV_TIER_DRAM ? c->dram_bytes : c->hbm_info.bytes;

	*ptr = NULL;
	if (!base)
		return 0;
	if (off > size || bytes > size - off) {
		conn_break(c);
		return -KVC_EPROTO;
	}
	*ptr = base + off;
	return 0;
}

/* PIN without taking the lock; the caller holds it. */
static int pin_locked(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		      size_t n, struct kvc_loc *locs, uint32_t flags)
{
	uint32_t step = batch_of(c, sizeof(struct kv_wire_key));

	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		const struct kv_wire_pin_reply *r;
		struct kv_wire_hdr h;
		char *p;
		int ret;

		ret = keys_req_flags(c, ns, keys + i, m, flags);
		if (!ret)
			ret = rpc(c, KV_OP_PIN, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != m * sizeof(*r))) {
			conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			return ret;
		r = (const struct kv_wire_pin_reply *)c->rep;
		for (uint32_t j = 0; j < m; j++) {
			struct kvc_loc *l = &locs[i + j];

			memset(l, 0, sizeof(*l));
			l->status = -r[j].status;
			l->tier = r[j].tier;
			if (r[j].status)
				continue;
			l->offset = r[j].offset;
			l->bytes = r[j].bytes;
			ret = arena_ptr(c, r[j].tier, r[j].offset, r[j].bytes, &p);
			if (ret)
				return ret;
			l->ptr = p;
		}
	}
	return 0;
}

int kvc_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	    struct kvc_loc *locs)
{
	int ret;

	if (n && (!keys || !locs))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = pin_locked(c, ns, keys, n, locs, 0);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvci_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	     struct kvc_loc *locs, unsigned flags)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = pin_locked(c, ns, keys, n, locs, flags);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_release(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = status_op(c, KV_OP_RELEASE, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : 0;
}

int kvc_get_batch(struct kvc *c, uint32_t ns, struct kvc_get_desc *d, size_t n)
{
	uint32_t step;
	int copied = 0, ret = 0;

	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = batch_of(c, sizeof(struct kv_wire_pin_reply));
	for (size_t i = 0; i < n && !ret; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kvc_key *keys = c->keys, *held = c->held;
		struct kvc_loc *locs = c->locs;
		uint32_t nheld = 0;

		for (uint32_t j = 0; j < m; j++)
			keys[j] = d[i + j].key;
		ret = pin_locked(c, ns, keys, m, locs, 0);
		if (ret)
			break;
		for (uint32_t j = 0; j < m; j++) {
			struct kvc_get_desc *g = &d[i + j];

			g->status = locs[j].status;
			g->bytes = locs[j].bytes;
			if (g->status)
				continue;
			held[nheld++] = g->key;
			if (!locs[j].ptr)
				g->status = -KVC_ENOTIER;
			else if (g->cap < locs[j].bytes)
				g->status = -ENOBUFS;
			else {
				memcpy(g->buf, locs[j].ptr, locs[j].bytes);
				copied++;
			}
		}
		/* Release without waiting for the answer (it can only say the
		 * pins were dropped): the daemon acts on it at once, and the
		 * next exchange reads the reply. One round trip per get. */
		if (nheld) {
			uint64_t id;

			ret = keys_req(c, ns, held, nheld);
			if (!ret)
				ret = send_req(c, KV_OP_RELEASE, nheld,
					       kv_proto_keys_len(nheld), &id);
			if (!ret) {
				c->deferred = true;
				c->deferred_id = id;
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : copied;
}

int kvc_get(struct kvc *c, uint32_t ns, const struct kvc_key *key, void *buf,
	    size_t cap, size_t *bytes)
{
	struct kvc_get_desc d = { .buf = buf, .cap = cap };
	int ret;

	if (!key)
		return -EINVAL;
	d.key = *key;
	ret = kvc_get_batch(c, ns, &d, 1);

	if (ret < 0)
		return ret;
	if (bytes)
		*bytes = d.bytes;
	return d.status;
}

/* ---- writing ------------------------------------------------------------------- */

/* ALLOC for d[0..m), without the lock. Stores arena pointers in ptrs and,
 * when tiers is not NULL, each one's tier. */
static int alloc_locked(struct kvc *c, uint32_t ns, struct kvc_put_desc *d,
			uint32_t m, char **ptrs, uint8_t *tiers, uint32_t flags)
{
	struct kv_wire_keys *k = req_body(c, kv_proto_alloc_len(m));
	struct kv_wire_alloc *a;
	const struct kv_wire_alloc_reply *r;
	struct kv_wire_hdr h;
	int ret, ok = 0;

	if (!k)
		return -ENOMEM;
	k->ns = ns;
	a = (struct kv_wire_alloc *)(k + 1);
	for (uint32_t j = 0; j < m; j++) {
		memcpy(&a[j].key, &d[j].key, sizeof(a[j].key));
		if (d[j].has_parent) {
			memcpy(&a[j].parent, &d[j].parent, sizeof(a[j].parent));
			a[j].flags = KV_ALLOC_PARENT;
		}
		a[j].flags |= flags;
		a[j].bytes = d[j].bytes;
		a[j].tokens = d[j].tokens;
		a[j].position = d[j].position;
	}
	ret = rpc(c, KV_OP_ALLOC, m, kv_proto_alloc_len(m), &h);
	if (!ret && (h.count != m || h.len != m * sizeof(*r))) {
		conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (ret)
		return ret;
	r = (const struct kv_wire_alloc_reply *)c->rep;
	for (uint32_t j = 0; j < m; j++) {
		d[j].status = -r[j].status;
		ptrs[j] = NULL;
		if (tiers)
			tiers[j] = r[j].tier;
		if (r[j].status)
			continue;
		/* Only a tier this process mapped: HBM only when asked for. */
		if (r[j].tier != KV_TIER_DRAM && !(flags & KV_ALLOC_HBM)) {
			conn_break(c);
			return -KVC_EPROTO;
		}
		ret = arena_ptr(c, r[j].tier, r[j].offset, d[j].bytes, &ptrs[j]);
		if (ret)
			return ret;
		if (!ptrs[j]) {
			conn_break(c);
			return -KVC_EPROTO;
		}
		ok++;
	}
	return ok;
}

static int check_puts(const struct kvc_put_desc *d, size_t n)
{
	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (d[i].bytes == 0)
			return -EINVAL;
	return 0;
}

int kvc_put_batch(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n)
{
	uint32_t step;
	int stored = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->lock);
	step = batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kvc_key *keys = c->keys;
		char **ptrs = c->ptrs;
		int *st = c->status;
		uint32_t nk = 0;

		ret = alloc_locked(c, ns, d + i, m, ptrs, NULL, 0);
		if (ret < 0)
			goto out;
		for (uint32_t j = 0; j < m; j++) {
			if (!ptrs[j])
				continue;
			if (d[i + j].data)
				memcpy(ptrs[j], d[i + j].data, d[i + j].bytes);
			keys[nk++] = d[i + j].key;
		}
		ret = nk ? status_op(c, KV_OP_COMMIT, ns, keys, nk, st) : 0;
		if (ret < 0)
			goto out;
		nk = 0;
		for (uint32_t j = 0; j < m; j++) {
			if (!ptrs[j])
				continue;
			d[i + j].status = st[nk++];
			stored += d[i + j].status == 0;
		}
	}
	ret = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : stored;
}

int kvc_put(struct kvc *c, uint32_t ns, const struct kvc_key *key,
	    const struct kvc_key *parent, uint32_t tokens, uint32_t position,
	    const void *data, size_t bytes)
{
	struct kvc_put_desc d = {
		.has_parent = parent != NULL,
		.tokens = tokens,
		.position = position,
		.data = data,
		.bytes = bytes,
	};
	int ret;

	if (!key)
		return -EINVAL;
	d.key = *key;
	if (parent)
		d.parent = *parent;
	ret = kvc_put_batch(c, ns, &d, 1);
	return ret < 0 ? ret : d.status;
}

int kvc_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	      void **ptrs)
{
	uint32_t step;
	int ok = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	if (n && !ptrs)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;

		ret = alloc_locked(c, ns, d + i, m, (char **)ptrs + i, NULL, 0);
		if (ret < 0)
			break;
		ok += ret;
	}
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : ok;
}

int kvci_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	       void **ptrs, uint8_t *tiers, unsigned flags)
{
	uint32_t step;
	int ok = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->lock);
	if (!c->hbm)
		flags &= ~(unsigned)KV_ALLOC_HBM;	/* not mapped here */
	step = batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;

		ret = alloc_locked(c, ns, d + i, m, (char **)ptrs + i, tiers ? tiers + i : NULL,
				   flags);
		if (ret < 0)
			break;
		ok += ret;
	}
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : ok;
}

int kvc_commit(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = status_op(c, KV_OP_COMMIT, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_abort(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	      size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = status_op(c, KV_OP_ABORT, ns, keys, n, status);
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
	ret = req_body(c, 0) ? rpc(c, KV_OP_STATS, 0, 0, &h) : -ENOMEM;
	if (ret)
		goto out;
	g = (const struct kv_wire_stats *)c->rep;
	glen = h.count <= KVC_MAX_TIERS && h.len >= h.count * sizeof(*t) ?
	       h.len - h.count * sizeof(*t) : 0;
	if (glen != sizeof(*g) || g->n_tiers != h.count) {
		conn_break(c);
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
	ls = req_body(c, sizeof(*ls));
	if (!ls) {
		ret = -ENOMEM;
		goto out;
	}
	ls->ns = ns;
	ls->tier = tier;
	ls->cursor = *cursor;
	ls->limit = max < c->max_batch ? (uint32_t)max : c->max_batch;
	ret = rpc(c, KV_OP_LS, 0, sizeof(*ls), &h);
	if (ret)
		goto out;
	if (h.count > ls->limit || h.len != sizeof(*r) + h.count * sizeof(*e)) {
		conn_break(c);
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
	ret = keys_req(c, ns, key, 1);
	if (!ret)
		ret = rpc(c, KV_OP_INSPECT, 1, kv_proto_keys_len(1), &h);
	if (!ret && h.len != sizeof(struct kv_wire_entry)) {
		conn_break(c);
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
	ret = status_op(c, KV_OP_EVICT, ns, keys, n, status);
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
	ret = status_op(c, KV_OP_PREFETCH, ns, keys, n, status);
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
	f = req_body(c, sizeof(*f));
	if (!f) {
		ret = -ENOMEM;
		goto out;
	}
	f->tier = tier;
	f->flags = flags;
	ret = rpc(c, KV_OP_FLUSH, 0, sizeof(*f), &h);
	if (!ret && h.len != sizeof(*r)) {
		conn_break(c);
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
	step = batch_of(c, sizeof(struct kv_wire_key) + sizeof(float));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kv_wire_keys *k = req_body(c, kv_proto_score_len(m));
		struct kv_wire_hdr h;
		const int32_t *st;

		if (!k) {
			ret = -ENOMEM;
			break;
		}
		k->ns = ns;
		memcpy(k + 1, keys + i, (size_t)m * sizeof(*keys));
		memcpy((char *)k + kv_proto_keys_len(m), scores + i, (size_t)m * sizeof(float));
		ret = rpc(c, KV_OP_SCORE, m, kv_proto_score_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_status_len(m))) {
			conn_break(c);
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
	p = req_body(c, sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	p->tier = tier;
	if (set) {
		p->set = 1;
		memcpy(p->name, set, strlen(set));
	}
	ret = rpc(c, KV_OP_POLICY, 0, sizeof(*p), &h);
	if (!ret && h.len != sizeof(*p)) {
		conn_break(c);
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
	p = req_body(c, len);
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(p, body, len);
	ret = rpc(c, op, 0, len, &h);
	if (!ret && (h.len || h.count)) {
		conn_break(c);
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
	ret = req_body(c, 0) ? rpc(c, KV_OP_TENANTS, 0, 0, &h) : -ENOMEM;
	if (!ret && (h.count > 4096 || h.len != h.count * sizeof(*w))) {
		conn_break(c);
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

int kvc_ping(struct kvc *c, uint64_t *uptime_ms)
{
	struct kv_wire_hdr h;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = req_body(c, 0) ? rpc(c, KV_OP_PING, 0, 0, &h) : -ENOMEM;
	if (!ret && h.len != sizeof(struct kv_wire_ping_reply)) {
		conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (!ret && uptime_ms)
		*uptime_ms = ((const struct kv_wire_ping_reply *)c->rep)->uptime_ms;
	pthread_mutex_unlock(&c->lock);
	return ret;
}
