/*
 * server.c - connections and the loop: the listening socket and its lock,
 * accept, reading frames, admission and backpressure, writing replies, the
 * deadline sweep, and the store's wakeups. Each whole frame goes to
 * kv_handle_frame() (handlers.c, one function per op); a request that
 * waits for the store is parked and replayed by park.c.
 *
 * Before HELLO a connection has no buffers: its bytes go into hello_buf,
 * one HELLO frame's worth, and the header is checked as soon as its 24
 * bytes are in (a HELLO of HELLO's size, or the connection is closed), so
 * a client that connects and stalls holds struct conn and nothing more.
 * After HELLO a connection reads into an evbuffer and handles whole frames
 * as they complete; each frame is copied into an 8-byte-aligned buffer
 * first, so kv_proto_parse() can hand out aligned pointers. Replies are
 * appended to the output evbuffer, which is written as the socket takes
 * it. While a connection's request is parked, nothing more is read from it.
 *
 * Memory for clients: a frame is admitted when its header arrives, which
 * reserves its bytes and the largest reply its op and count can get
 * (reply_max(), from the handler table). A connection holds CONN_FREE
 * bytes on its own; beyond that, all connections together hold at most
 * max_client_memory (input, frame copies, reserved and queued replies). A
 * frame that does not fit is answered KV_EMEMORY and its body read and
 * dropped. A frame is handled only when its reply fits under out_max (the
 * largest reply of any op), and input is not read meanwhile, so a client
 * that never reads its replies holds one reply's worth. After a burst of
 * connections let go of their memory, malloc_trim() hands it back to the
 * system.
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
 * Failures: a frame whose header is bad (or too large), or anything but
 * a HELLO first, gets an error reply, written once without waiting, and
 * the connection is closed; handlers.c says what a body can get.
 *
 * The store's wakeups (SSD completions, GPU copies) run reap_and_replay():
 * the store takes in its finished work, then every parked request is
 * asked again.
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

#include "kvstore/handlers.h"
#include "kvstore/ns.h"
#include "kvstore/park.h"
#include "kvstore/server.h"
#include "kvstore/server_int.h"
#include "kvstore/store.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "lib/util.h"

#define READ_CHUNK	(64u << 10)	/* (evbuffer_read() takes 4 KiB at most) */
#define CONN_FREE	(32u << 10)	/* held by a connection outside max_client_memory */
#define FRAME_KEEP	(4u << 10)	/* larger frame buffers are freed after use */
#define TRIM_SLACK	(16u << 20)	/* malloc_trim() once this much was let go */
#define ACCEPT_PAUSE_MS	100		/* the listener's rest when out of descriptors */

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
	const struct kv_handler *op = &kv_handlers[h->op];
	uint32_t n = h->count <= srv->conf.max_batch ? h->count : 0; /* KV_EBATCH */

	if (op->flags & KV_H_PAGE)	/* its limit is in the body */
		n = srv->conf.max_batch;
	return HDR_LEN + op->reply + kv_proto_pad8((size_t)n * op->reply_key);
}

/* ---- expired allocations ------------------------------------------------------ */

static void remember_expired(void *arg, uint32_t ns, const struct kv_key *key)
{
	struct conn *c = arg;

	if (!c->expired)
		c->expired = kv_xcalloc(EXPIRED_KEEP, sizeof(*c->expired));
	c->expired[c->n_expired++ % EXPIRED_KEEP] = (struct expired){ ns, *key };
}

/* ---- replies ------------------------------------------------------------- */

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
	kv_conn_close(c);
}

void kv_conn_end(struct conn *c)
{
	if (evbuffer_get_length(c->out))
		evbuffer_write(c->out, c->fd);
	kv_conn_close(c);
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

	while (!c->park.parked) {
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
		if (!kv_handle_frame(c, c->frame, total))
			return false;
		if (!c->park.parked)
			frame_done(c);
	}
	set_reading(c, need_input && !c->park.parked);
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
		kv_conn_close(c);
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
	if (kv_handle_frame(c, c->hello_buf, HELLO_LEN) && process(c))
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
		kv_conn_close(c);
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
		kv_conn_close(c);
		return;
	}
	account(c);
	if (evbuffer_get_length(c->out))
		event_add(c->wev, NULL);
	else if (!c->reading && !c->park.parked && process(c))
		conn_flush(c);	/* output drained: take input again */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

void kv_conn_answered(struct conn *c)
{
	frame_done(c);
	if (process(c))
		conn_flush(c);
}

void kv_conn_close(struct conn *c)
{
	struct kv_server *srv = c->srv;

	kv_park_cancel(c);
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
		if (conf->alloc_lease_ms && !c->park.parked) {
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
		kv_park_replay(srv);	/* ALLOCs waiting for room */
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

/*
 * The store's background work, once per loop turn with anything to do,
 * then the requests that wait for it: kv_store_pump() takes in finished
 * moves and starts queued ones, then every parked request is replayed.
 */
static void reap_and_replay(struct kv_server *srv)
{
	kv_store_pump(srv->store);
	kv_park_replay(srv);
}

static void on_store_io(evutil_socket_t fd, short what, void *arg)
{
	reap_and_replay(arg);
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
	for (unsigned t = 0; t < KV_TIER_ALL; t++) {
		int fd = kv_store_event_fd(store, t);

		if (fd < 0)
			continue;
		srv->tierev[t] = event_new(base, fd, EV_READ | EV_PERSIST, on_store_io, srv);
		if (!srv->tierev[t] || event_add(srv->tierev[t], NULL)) {
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
	for (unsigned t = 0; t < KV_TIER_ALL; t++)
		if (srv->tierev[t])
			event_free(srv->tierev[t]);
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
		kv_conn_close(srv->conns);
	for (unsigned t = 0; t < KV_TIER_ALL; t++)
		if (srv->tierev[t])
			event_free(srv->tierev[t]);
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
