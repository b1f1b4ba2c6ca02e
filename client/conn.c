/*
 * conn.c - libkvc's connection: the socket, HELLO and the arenas its reply
 * hands over, the framing of requests and replies, and the exchange every
 * call of kvc.c and admin.c goes through.
 *
 * One request/reply exchange at a time per handle (the mutex); the one
 * exception is the RELEASE that ends a get, whose reply is read at the
 * start of the next exchange instead of waited for (replies are ordered).
 *
 * The daemon is trusted no further than the socket: every reply is checked
 * (its op, request id, length, count) before its body is used. A handle
 * whose connection broke answers -KVC_ECLOSED from then on.
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
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "lib/proto.h"

#define HDR_LEN sizeof(struct kv_wire_hdr)
/* The largest reply a valid request can get: an LS page. */
#define REPLY_MAX (sizeof(struct kv_wire_ls_reply) + \
		   KV_PROTO_MAX_BATCH * sizeof(struct kv_wire_entry))
_Static_assert(sizeof(struct kv_wire_ns_list_reply) +
	       KV_PROTO_NS_PAGE * sizeof(struct kv_wire_ns_entry) <= REPLY_MAX,
	       "an NS_LIST page fits a reply");
_Static_assert(sizeof(struct kv_wire_cluster) +
	       KV_CLUSTER_NODES_MAX * sizeof(struct kv_wire_cluster_node) <= REPLY_MAX,
	       "a CLUSTER reply fits");

/* ---- transport ------------------------------------------------------------ */

void kvci_conn_break(struct kvc *c)
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
			kvci_conn_break(c);
			return -KVC_ETIMEDOUT;
		}
		n = poll(&p, 1, (int)((c->deadline_ns - now + 999999) / 1000000));
		if (n > 0)
			return 0;	/* readable, writable, or an error recv reports */
		if (n < 0 && errno != EINTR) {
			kvci_conn_break(c);
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
			kvci_conn_break(c);
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
			kvci_conn_break(c);
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
void *kvci_req_body(struct kvc *c, size_t len)
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
		kvci_conn_break(c);
		return -h->status;
	}
	if (!(h->flags & KV_WIRE_REPLY) || h->op != op || h->req_id != id ||
	    h->len > REPLY_MAX || h->len % 8 || h->status < 0) {
		kvci_conn_break(c);
		return -KVC_EPROTO;
	}
	return 0;
}

/* Send the request built in c->req (body of len bytes); returns its id. */
int kvci_send_req(struct kvc *c, unsigned op, uint32_t count, size_t len,
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
			kvci_conn_break(c);	/* the unread body would desynchronize us */
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
int kvci_rpc(struct kvc *c, unsigned op, uint32_t count, size_t len,
	     struct kv_wire_hdr *h)
{
	uint64_t id;
	int ret;

	ret = kvci_send_req(c, op, count, len, &id);
	if (ret)
		return ret;
	return recv_reply(c, op, id, h);
}

/* Keys per message for items of item bytes after an 8-byte header. */
uint32_t kvci_batch_of(const struct kvc *c, size_t item)
{
	size_t by_msg = (c->max_msg - sizeof(struct kv_wire_keys)) / item;

	return by_msg < c->max_batch ? (uint32_t)by_msg : c->max_batch;
}

/* Build a key-list request (ns header and keys) for n keys. */
int kvci_keys_req_flags(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
			uint32_t n, uint32_t flags)
{
	struct kv_wire_keys *k = kvci_req_body(c, kv_proto_keys_len(n));

	if (!k)
		return -ENOMEM;
	k->ns = ns;
	k->flags = flags;
	memcpy(k + 1, keys, (size_t)n * sizeof(*keys));
	return 0;
}

int kvci_keys_req(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		  uint32_t n)
{
	return kvci_keys_req_flags(c, ns, keys, n, 0);
}

/*
 * A key-list op answered with one int32 status per key (COMMIT, ABORT,
 * RELEASE, EVICT): per-key results into status (may be NULL) as negative
 * codes; returns how many succeeded or a call-wide error.
 */
int kvci_status_op(struct kvc *c, unsigned op, uint32_t ns,
		   const struct kvc_key *keys, size_t n, int *status)
{
	uint32_t step = kvci_batch_of(c, sizeof(struct kv_wire_key));
	int ok = 0;

	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kv_wire_hdr h;
		const int32_t *st;
		int ret;

		ret = kvci_keys_req(c, ns, keys + i, m);
		if (!ret)
			ret = kvci_rpc(c, op, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_status_len(m))) {
			kvci_conn_break(c);
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
	struct kv_wire_hello *hb = kvci_req_body(c, sizeof(*hb));
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
	kvci_conn_break(c);
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
	if (c->gpu_close)
		c->gpu_close(c);	/* its copies finish, their pins go first */
	kvci_conn_break(c);
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

void *kvci_gpu(struct kvc *c)
{
	return c->gpu;
}

void kvci_set_gpu(struct kvc *c, void *gpu, void (*gpu_close)(struct kvc *c))
{
	c->gpu = gpu;
	c->gpu_close = gpu_close;
}

void *kvc_dram_base(struct kvc *c, size_t *bytes)
{
	if (bytes)
		*bytes = c->dram_bytes;
	return c->dram;
}
