/*
 * badinput_fx.c - what the bad-input tests share (test_badinput.c,
 * test_badinput_conn.c): request frames built by hand, raw AF_UNIX
 * connections to the daemon (libkvc only ever sends good frames) with
 * every reply read under a timeout, the daemon each case starts
 * (--max-batch 64 --max-msg 65536, so the configured limits are what is
 * checked), its descriptor count from /proc/PID/fd, and the check that a
 * fresh libkvc client is still served and the daemon still stops cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/proto.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/integration/badinput_fx.h"

struct kvt_daemon kvd;
static unsigned serve_round;

/* ---- frames ------------------------------------------------------------ */

struct kv_wire_hdr *fr_hdr(struct frame *f)
{
	return (struct kv_wire_hdr *)f->w;
}

char *fr_body(struct frame *f)
{
	return (char *)f->w + HDR_LEN;
}

void fr_make(struct frame *f, unsigned op, uint64_t id, uint32_t count,
	     size_t blen)
{
	assert_true(HDR_LEN + blen <= sizeof(f->w));
	memset(f->w, 0, HDR_LEN + blen);
	fr_hdr(f)->len = (uint32_t)blen;
	fr_hdr(f)->op = (uint16_t)op;
	fr_hdr(f)->req_id = id;
	fr_hdr(f)->count = count;
	f->len = HDR_LEN + blen;
}

void fr_hello(struct frame *f, uint64_t id, uint32_t version)
{
	struct kv_wire_hello *h;

	fr_make(f, KV_OP_HELLO, id, 0, sizeof(*h));
	h = (struct kv_wire_hello *)fr_body(f);
	h->version = version;
	h->pid = (uint64_t)getpid();
	memcpy(h->name, "test_badinput", 13);
}

void fr_ns(struct frame *f, uint64_t id, const char *name)
{
	size_t n = strlen(name);

	fr_make(f, KV_OP_NS_REGISTER, id, (uint32_t)n, kv_proto_pad8(n));
	memcpy(fr_body(f), name, n);
}

/* A key-list op (or ALLOC) on namespace ns with count items. */
void fr_keys(struct frame *f, unsigned op, uint64_t id, uint32_t ns,
	     uint32_t count)
{
	size_t blen = op == KV_OP_ALLOC ? kv_proto_alloc_len(count) :
					  kv_proto_keys_len(count);
	struct kv_wire_keys *k;

	fr_make(f, op, id, count, blen);
	k = (struct kv_wire_keys *)fr_body(f);
	k->ns = ns;
	if (op == KV_OP_ALLOC) {
		struct kv_wire_alloc *it = (struct kv_wire_alloc *)(k + 1);

		for (uint32_t i = 0; i < count; i++) {
			it[i].key.lo = i + 1;
			it[i].bytes = 4096;
			it[i].tokens = 16;
		}
	} else {
		struct kv_wire_key *keys = (struct kv_wire_key *)(k + 1);

		for (uint32_t i = 0; i < count; i++)
			keys[i].lo = i + 1;
	}
}

/* ---- raw connections --------------------------------------------------- */

int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(kvd.sock) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, kvd.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

/* Send all of buf; the daemon must take it (no EPIPE, no timeout). */
void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("send: %s", n < 0 ? strerror(errno) : "0 bytes");
		p += n;
		len -= n;
	}
}

/* Send what the daemon takes of buf: it may close on us half-way. */
void send_some(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return;
		if (n <= 0)
			fail_msg("send: %s", n < 0 ? strerror(errno) : "0 bytes");
		p += n;
		len -= n;
	}
}

void send_frame(int fd, const struct frame *f)
{
	send_all(fd, f->w, f->len);
}

/*
 * Read exactly len bytes. Descriptors that come along (the HELLO reply
 * carries the DRAM arena's memfd) are counted in *nfds and closed.
 * Returns 0, or 1 when the daemon closed the connection (EOF, or
 * ECONNRESET when it closed with our bytes unread) before the first byte.
 * A timeout or a close in the middle fails the test.
 */
int recv_exact(int fd, void *buf, size_t len, int *nfds)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		union {
			char buf[CMSG_SPACE(8 * sizeof(int))];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = { p + got, len - got };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
		};
		struct cmsghdr *cm;
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fail_msg("no reply from the daemon in %d s (%zu of %zu bytes)",
				 IO_TIMEOUT_S, got, len);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			if (got == 0)
				return 1;
			fail_msg("connection closed inside a reply (%zu of %zu bytes)",
				 got, len);
		}
		if (n < 0)
			fail_msg("recvmsg: %s", strerror(errno));
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(rfd);
				if (nfds)
					(*nfds)++;
			}
		}
		got += n;
	}
	return 0;
}

/*
 * Read one reply: its header into *h and up to cap body bytes into body
 * (the rest is read and dropped). Returns 0, or 1 at EOF before it.
 */
int read_reply(int fd, struct kv_wire_hdr *h, void *body, size_t cap,
	       int *nfds)
{
	static char sink[MAX_MSG];

	if (recv_exact(fd, h, HDR_LEN, nfds))
		return 1;
	assert_true(h->flags & KV_WIRE_REPLY);
	assert_true(h->len <= sizeof(sink));
	assert_int_equal(recv_exact(fd, sink, h->len, nfds), 0);
	if (body)
		memcpy(body, sink, h->len < cap ? h->len : cap);
	return 0;
}

/* The next reply answers (op, id) with status (0 or a positive code). */
void expect_reply(int fd, unsigned op, uint64_t id, int status)
{
	struct kv_wire_hdr h;

	if (read_reply(fd, &h, NULL, 0, NULL))
		fail_msg("connection closed; wanted a reply to %s (id %llu) with status %d",
			 kv_proto_op_name(op), (unsigned long long)id, status);
	if (h.op != op || h.req_id != id || h.status != status)
		fail_msg("got %s id %llu status %d (%s); wanted %s id %llu status %d (%s)",
			 kv_proto_op_name(h.op), (unsigned long long)h.req_id,
			 h.status, kvc_strerror(h.status), kv_proto_op_name(op),
			 (unsigned long long)id, status, kvc_strerror(status));
	if (status) {
		assert_int_equal(h.len, 0);
		assert_int_equal(h.count, 0);
	}
}

/* The daemon closed the connection: EOF, not more bytes, not a hang. */
void expect_closed(int fd)
{
	char c;
	ssize_t n;

	do
		n = recv(fd, &c, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		fail_msg("the daemon sent more after the error reply; wanted EOF");
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		fail_msg("the daemon kept the connection open for %d s; wanted EOF",
			 IO_TIMEOUT_S);
	if (n < 0 && errno != ECONNRESET)
		fail_msg("recv: %s", strerror(errno));
}

/* An error reply, then EOF. Closes fd. */
void expect_fail_close(int fd, unsigned op, uint64_t id, int status)
{
	expect_reply(fd, op, id, status);
	expect_closed(fd);
	close(fd);
}

/* The connection still serves: a PING is answered. */
void expect_serving(int fd, uint64_t id)
{
	struct kv_wire_ping_reply pr;
	struct kv_wire_hdr h;
	struct frame f;

	fr_make(&f, KV_OP_PING, id, 0, 0);
	send_frame(fd, &f);
	if (read_reply(fd, &h, &pr, sizeof(pr), NULL))
		fail_msg("connection closed; it should still serve");
	assert_int_equal(h.op, KV_OP_PING);
	assert_int_equal(h.req_id, id);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.len, sizeof(pr));
	assert_int_equal(pr.version, KV_PROTO_VERSION);
	assert_int_equal(pr.pid, kvd.pid);
}

/* HELLO on a raw connection; checks the reply and its memfd. */
void raw_hello(int fd, uint64_t id)
{
	struct kv_wire_hello_reply hr;
	struct kv_wire_hdr h;
	struct frame f;
	int nfds = 0;

	fr_hello(&f, id, KV_PROTO_VERSION);
	send_frame(fd, &f);
	assert_int_equal(read_reply(fd, &h, &hr, sizeof(hr), &nfds), 0);
	assert_int_equal(h.op, KV_OP_HELLO);
	assert_int_equal(h.req_id, id);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.len, sizeof(hr));
	assert_int_equal(nfds, 1);
	assert_int_equal(hr.version, KV_PROTO_VERSION);
	assert_int_equal(hr.max_batch, MAX_BATCH);
	assert_int_equal(hr.max_msg, MAX_MSG);
}

/* A raw connection past HELLO. */
int raw_session(void)
{
	int fd = raw_connect();

	raw_hello(fd, 1);
	return fd;
}

/* ---- the daemon -------------------------------------------------------- */

int setup(void **state)
{
	static const char *const args[] = {
		"--max-batch", "64", "--max-msg", "65536", NULL,
	};

	return kvt_start(&kvd, args) ? -1 : 0;
}

int teardown(void **state)
{
	if (kvt_alive(&kvd)) {
		kvt_dump_log(&kvd);
		kvt_kill(&kvd);
	}
	kvt_cleanup(&kvd);
	return 0;
}

/* Descriptors the daemon holds now. */
int daemon_fds(void)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)kvd.pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The daemon's descriptor count once it has stopped changing. */
int settled_fds(void)
{
	int last = daemon_fds();
	int same = 0;

	for (int i = 0; i < 500 && same < 20; i++) {
		int n;

		kvt_sleep_ms(10);
		n = daemon_fds();
		same = n == last ? same + 1 : 0;
		last = n;
	}
	return last;
}

/* Wait (2 s at most) for the daemon to hold no more than want descriptors. */
void expect_fds_at_most(int want)
{
	int n = daemon_fds();

	for (int i = 0; i < 200 && n > want; i++) {
		kvt_sleep_ms(10);
		n = daemon_fds();
	}
	if (n > want)
		fail_msg("the daemon holds %d descriptors; %d before: it leaked %d",
			 n, want, n - want);
}

/*
 * A fresh libkvc client is served: it connects, registers a namespace,
 * puts a chunk and gets it back byte-exact.
 */
void expect_serves(void)
{
	enum { BYTES = 12345, TOKENS = 16 };
	static unsigned char in[BYTES];
	static unsigned char out[BYTES];
	uint32_t tokens[TOKENS];
	struct kvc_key key;
	struct kvc *c = NULL;
	char name[64];
	size_t bytes = 0;
	uint32_t ns;
	int ret;

	if (!kvt_alive(&kvd))
		fail_msg("kvstored is gone");
	serve_round++;
	snprintf(name, sizeof(name), "badinput/serve%u", serve_round);
	for (unsigned i = 0; i < TOKENS; i++)
		tokens[i] = serve_round * 1000 + i;
	for (unsigned i = 0; i < BYTES; i++)
		in[i] = (unsigned char)(i * 31 + serve_round);
	memset(out, 0, sizeof(out));

	ret = kvc_connect(kvd.sock, &c);
	if (ret)
		fail_msg("kvc_connect: %s", kvc_strerror(ret));
	assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	key = kvc_key_prefix(kvc_ns_salt(name), NULL, tokens, TOKENS);
	ret = kvc_put(c, ns, &key, NULL, TOKENS, 0, in, BYTES);
	if (ret)
		fail_msg("kvc_put: %s", kvc_strerror(ret));
	ret = kvc_get(c, ns, &key, out, sizeof(out), &bytes);
	if (ret)
		fail_msg("kvc_get: %s", kvc_strerror(ret));
	assert_int_equal(bytes, BYTES);
	assert_memory_equal(in, out, BYTES);
	assert_int_equal(kvc_ping(c, NULL), 0);
	kvc_close(c);
}

/* Served after the attacks, then a clean shutdown: it never crashed. */
void expect_serves_and_stops(void)
{
	expect_serves();
	assert_int_equal(kvt_stop(&kvd), 0);
}
