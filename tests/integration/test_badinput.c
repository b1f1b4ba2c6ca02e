/*
 * test_badinput.c - a live kvstored against malformed and hostile clients
 * (TESTING.md plan 6, "Bad input").
 *
 * Each case starts its own daemon (--max-batch 64 --max-msg 65536, so the
 * configured limits are what is checked), talks to it over raw AF_UNIX
 * connections (libkvc only ever sends good frames), and checks the answer
 * to each attack:
 *   - a malformed frame: an error reply with the expected status, the
 *     request's op and id, then EOF;
 *   - a well-formed frame that is not allowed (too many keys, a namespace
 *     not registered on this connection): an error reply, and the
 *     connection still answers a PING.
 * After the attacks a fresh libkvc client must connect, register a
 * namespace, put a chunk and get it back byte-exact, and the daemon must
 * shut down cleanly: kvt_stop() returns 0, so it never crashed (and, built
 * with ASan, leaked nothing). Descriptor leaks are checked by counting
 * /proc/PID/fd of the daemon.
 *
 * Run: KVSTORED=$PWD/build/kvstored build/tests/integration/test_badinput
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/errors.h"
#include "lib/proto.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define MAX_BATCH	64		/* --max-batch */
#define MAX_MSG		65536		/* --max-msg */
#define IO_TIMEOUT_S	5		/* a reply later than this is a hang */
#define FRAME_BYTES	(HDR_LEN + sizeof(struct kv_wire_keys) + \
			 (KV_PROTO_MAX_BATCH + 8) * sizeof(struct kv_wire_alloc))
#define MAX_FDS		253		/* SCM_MAX_FD */

/* A request frame, 8-byte aligned. */
struct frame {
	size_t len;
	uint64_t w[FRAME_BYTES / 8];
};

static struct kvt_daemon kvd;
static unsigned serve_round;
static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- frames ------------------------------------------------------------ */

static struct kv_wire_hdr *fr_hdr(struct frame *f)
{
	return (struct kv_wire_hdr *)f->w;
}

static char *fr_body(struct frame *f)
{
	return (char *)f->w + HDR_LEN;
}

static void fr_make(struct frame *f, unsigned op, uint64_t id, uint32_t count,
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

static void fr_hello(struct frame *f, uint64_t id, uint32_t version)
{
	struct kv_wire_hello *h;

	fr_make(f, KV_OP_HELLO, id, 0, sizeof(*h));
	h = (struct kv_wire_hello *)fr_body(f);
	h->version = version;
	h->pid = (uint64_t)getpid();
	memcpy(h->name, "test_badinput", 13);
}

static void fr_ns(struct frame *f, uint64_t id, const char *name)
{
	size_t n = strlen(name);

	fr_make(f, KV_OP_NS_REGISTER, id, (uint32_t)n, kv_proto_pad8(n));
	memcpy(fr_body(f), name, n);
}

/* A key-list op (or ALLOC) on namespace ns with count items. */
static void fr_keys(struct frame *f, unsigned op, uint64_t id, uint32_t ns,
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

static void fr_ls(struct frame *f, uint64_t id, uint32_t ns, uint32_t limit)
{
	struct kv_wire_ls *ls;

	fr_make(f, KV_OP_LS, id, 0, sizeof(*ls));
	ls = (struct kv_wire_ls *)fr_body(f);
	ls->ns = ns;
	ls->tier = KV_TIER_NONE;
	ls->limit = limit;
}

/* ---- raw connections --------------------------------------------------- */

static int raw_connect(void)
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
static void send_all(int fd, const void *buf, size_t len)
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
static void send_some(int fd, const void *buf, size_t len)
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

static void send_frame(int fd, const struct frame *f)
{
	send_all(fd, f->w, f->len);
}

/* Send buf with nfds descriptors attached as SCM_RIGHTS. */
static void send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = CMSG_SPACE(nfds * sizeof(int)),
	};
	struct cmsghdr *cm;
	ssize_t n;

	assert_true(nfds > 0 && nfds <= MAX_FDS);
	memset(&cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		fail_msg("sendmsg with %d fds: %s", nfds, strerror(errno));
	assert_int_equal(n, len);
}

/*
 * Read exactly len bytes. Descriptors that come along (the HELLO reply
 * carries the DRAM arena's memfd) are counted in *nfds and closed.
 * Returns 0, or 1 when the daemon closed the connection (EOF, or
 * ECONNRESET when it closed with our bytes unread) before the first byte.
 * A timeout or a close in the middle fails the test.
 */
static int recv_exact(int fd, void *buf, size_t len, int *nfds)
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
static int read_reply(int fd, struct kv_wire_hdr *h, void *body, size_t cap,
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
static void expect_reply(int fd, unsigned op, uint64_t id, int status)
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
static void expect_closed(int fd)
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
static void expect_fail_close(int fd, unsigned op, uint64_t id, int status)
{
	expect_reply(fd, op, id, status);
	expect_closed(fd);
	close(fd);
}

/* The connection still serves: a PING is answered. */
static void expect_serving(int fd, uint64_t id)
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
static void raw_hello(int fd, uint64_t id)
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
static int raw_session(void)
{
	int fd = raw_connect();

	raw_hello(fd, 1);
	return fd;
}

/* Register name on a raw connection; returns its id. */
static uint32_t raw_ns(int fd, uint64_t id, const char *name)
{
	struct kv_wire_ns_reply nr;
	struct kv_wire_hdr h;
	struct frame f;

	fr_ns(&f, id, name);
	send_frame(fd, &f);
	assert_int_equal(read_reply(fd, &h, &nr, sizeof(nr), NULL), 0);
	assert_int_equal(h.op, KV_OP_NS_REGISTER);
	assert_int_equal(h.req_id, id);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.len, sizeof(nr));
	return nr.ns;
}

/* ---- the daemon -------------------------------------------------------- */

static int setup(void **state)
{
	static const char *const args[] = {
		"--max-batch", "64", "--max-msg", "65536", NULL,
	};

	return kvt_start(&kvd, args) ? -1 : 0;
}

static int teardown(void **state)
{
	if (kvt_alive(&kvd)) {
		kvt_dump_log(&kvd);
		kvt_kill(&kvd);
	}
	kvt_cleanup(&kvd);
	return 0;
}

/* Descriptors the daemon holds now. */
static int daemon_fds(void)
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
static int settled_fds(void)
{
	int last = daemon_fds();
	int same = 0;

	for (int i = 0; i < 500 && same < 20; i++) {
		int n;

		sleep_ms(10);
		n = daemon_fds();
		same = n == last ? same + 1 : 0;
		last = n;
	}
	return last;
}

/* Wait (2 s at most) for the daemon to hold no more than want descriptors. */
static void expect_fds_at_most(int want)
{
	int n = daemon_fds();

	for (int i = 0; i < 200 && n > want; i++) {
		sleep_ms(10);
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
static void expect_serves(void)
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
static void expect_serves_and_stops(void)
{
	expect_serves();
	assert_int_equal(kvt_stop(&kvd), 0);
}

/* ---- attacks ----------------------------------------------------------- */

static void test_oversized_len(void **state)
{
	static const uint32_t lens[] = {
		0xffffffffu, 0xfffffff8u, 0x80000000u, KV_PROTO_MAX_MSG + 8,
		MAX_MSG + 8, MAX_MSG + 1,
	};
	struct frame f;
	int fd;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* after HELLO: the header alone is enough to refuse it */
		fd = raw_session();
		fr_make(&f, KV_OP_PING, 100 + i, 0, 0);
		fr_hdr(&f)->len = lens[i];
		send_frame(fd, &f);
		expect_fail_close(fd, KV_OP_PING, 100 + i, KV_EMSGSIZE);

		/* and before it */
		fd = raw_connect();
		fr_make(&f, KV_OP_LOOKUP, 200 + i, 1, 0);
		fr_hdr(&f)->len = lens[i];
		send_frame(fd, &f);
		expect_fail_close(fd, KV_OP_LOOKUP, 200 + i, KV_EMSGSIZE);
	}

	/* a body within max_msg but too long for the op: read, then refused */
	fd = raw_session();
	fr_make(&f, KV_OP_PING, 300, 0, 0);
	fr_hdr(&f)->len = MAX_MSG;
	send_frame(fd, &f);
	{
		char *zeros = calloc(1, MAX_MSG);

		assert_non_null(zeros);
		send_some(fd, zeros, MAX_MSG);
		free(zeros);
	}
	expect_fail_close(fd, KV_OP_PING, 300, KV_EPROTO);
	expect_serves_and_stops();
}

static void test_huge_count(void **state)
{
	struct frame f;
	uint32_t ns;
	int fd = raw_session();

	ns = raw_ns(fd, 2, "badinput/count");

	/* a count no body could hold: refused by count, the connection stays */
	fr_keys(&f, KV_OP_LOOKUP, 10, ns, 0);
	fr_hdr(&f)->count = 0xffffffffu;
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LOOKUP, 10, KV_EBATCH);
	expect_serving(fd, 11);

	/* counts whose byte size wraps to the body sent in 32 bits */
	fr_keys(&f, KV_OP_LOOKUP, 12, ns, 0);
	fr_hdr(&f)->count = 1u << 28;
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LOOKUP, 12, KV_EBATCH);
	fr_keys(&f, KV_OP_ALLOC, 13, ns, 0);
	fr_hdr(&f)->count = 1u << 29;
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_ALLOC, 13, KV_EBATCH);
	expect_serving(fd, 14);

	/* one over the configured batch, with the whole body */
	fr_keys(&f, KV_OP_LOOKUP, 20, ns, MAX_BATCH + 1);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LOOKUP, 20, KV_EBATCH);
	fr_keys(&f, KV_OP_ALLOC, 21, ns, MAX_BATCH + 1);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_ALLOC, 21, KV_EBATCH);
	fr_keys(&f, KV_OP_PIN, 22, ns, KV_PROTO_MAX_BATCH + 1);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_PIN, 22, KV_EBATCH);
	fr_ls(&f, 23, KV_NS_ALL, MAX_BATCH + 1);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LS, 23, KV_EBATCH);
	fr_ls(&f, 24, KV_NS_ALL, 0);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LS, 24, KV_EBATCH);
	expect_serving(fd, 25);

	/* at the limit it is served */
	fr_keys(&f, KV_OP_LOOKUP, 30, ns, MAX_BATCH);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LOOKUP, 30, 0);
	fr_ls(&f, 31, KV_NS_ALL, MAX_BATCH);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LS, 31, 0);
	expect_serving(fd, 32);

	/* a name count no body could hold is malformed: closed */
	fr_ns(&f, 40, "badinput");
	fr_hdr(&f)->count = 0xffffffffu;
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_NS_REGISTER, 40, KV_EPROTO);
	expect_serves_and_stops();
}

static void test_truncated_then_close(void **state)
{
	struct frame f;
	int base;
	int held;
	int fd;

	base = settled_fds();

	/* part of a header */
	fd = raw_connect();
	fr_hello(&f, 1, KV_PROTO_VERSION);
	send_all(fd, f.w, 10);
	close(fd);

	/* a header, part of its body */
	fd = raw_connect();
	send_all(fd, f.w, HDR_LEN + 20);
	close(fd);

	/* after HELLO: a key op cut in its keys, and a header alone */
	fd = raw_session();
	fr_keys(&f, KV_OP_LOOKUP, 2, 0, 4);
	send_all(fd, f.w, f.len - 24);
	close(fd);
	fd = raw_session();
	send_all(fd, f.w, HDR_LEN);
	close(fd);

	/* a body as large as allowed, half sent */
	fd = raw_session();
	fr_make(&f, KV_OP_LOOKUP, 3, (MAX_MSG - 8) / 16, 0);
	fr_hdr(&f)->len = MAX_MSG;
	send_all(fd, f.w, HDR_LEN);
	{
		char *half = calloc(1, MAX_MSG / 2);

		assert_non_null(half);
		send_all(fd, half, MAX_MSG / 2);
		free(half);
	}
	close(fd);

	/* a truncated frame left pending does not hold up other clients */
	fd = raw_session();
	fr_keys(&f, KV_OP_LOOKUP, 4, 0, 4);
	send_all(fd, f.w, f.len / 2);
	expect_serves();
	held = daemon_fds();
	close(fd);

	expect_fds_at_most(base);
	assert_true(held > base);
	expect_serves_and_stops();
}

/* The status the daemon owes a frame header that does not check. */
static int bad_hdr_status(const struct kv_wire_hdr *h)
{
	if (h->len > MAX_MSG)
		return KV_EMSGSIZE;
	assert_true(h->flags || h->status || h->op == KV_OP_ERROR ||
		    h->op >= KV_OP_MAX || h->len % 8);
	return KV_EPROTO;
}

static void test_garbage(void **state)
{
	enum { GARBAGE = 4096 };
	static uint64_t g[GARBAGE / 8];
	struct kv_wire_hdr h;
	struct frame f;
	int fd;

	rng_state = 6;
	for (int round = 0; round < 16; round++) {
		for (size_t i = 0; i < GARBAGE / 8; i++)
			g[i] = rnd();
		if (round == 14)
			memset(g, 0, sizeof(g));		/* op 0, len 0 */
		if (round == 15)
			memset(g, 0xff, sizeof(g));
		memcpy(&h, g, HDR_LEN);
		fd = round % 2 ? raw_session() : raw_connect();
		send_some(fd, g, sizeof(g));
		expect_fail_close(fd, h.op < KV_OP_MAX ? h.op : KV_OP_ERROR,
				  h.req_id, bad_hdr_status(&h));
	}

	/* garbage after a valid frame: the frame is answered, then the error */
	for (size_t i = 0; i < GARBAGE / 8; i++)
		g[i] = rnd();
	g[1] = 0x4242;			/* its req_id */
	g[2] = 1;			/* a status: never a request */
	fd = raw_session();
	fr_make(&f, KV_OP_PING, 7, 0, 0);
	memcpy((char *)f.w + f.len, g, sizeof(g));
	send_some(fd, f.w, f.len + sizeof(g));
	expect_reply(fd, KV_OP_PING, 7, 0);
	memcpy(&h, g, HDR_LEN);
	expect_fail_close(fd, h.op < KV_OP_MAX ? h.op : KV_OP_ERROR, 0x4242,
			  bad_hdr_status(&h));
	expect_serves_and_stops();
}

static void test_frame_before_hello(void **state)
{
	struct frame f;
	int fd;

	fd = raw_connect();
	fr_make(&f, KV_OP_PING, 5, 0, 0);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_PING, 5, KV_EPROTO);

	fd = raw_connect();
	fr_ns(&f, 6, "badinput/early");
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_NS_REGISTER, 6, KV_EPROTO);

	fd = raw_connect();
	fr_keys(&f, KV_OP_LOOKUP, 7, 0, 2);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_LOOKUP, 7, KV_EPROTO);

	fd = raw_connect();
	fr_make(&f, KV_OP_STATS, 8, 0, 0);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_STATS, 8, KV_EPROTO);

	/* a valid HELLO queued behind the early frame is never answered */
	{
		struct frame two;

		fd = raw_connect();
		fr_make(&two, KV_OP_PING, 9, 0, 0);
		fr_hello(&f, 10, KV_PROTO_VERSION);
		memcpy((char *)two.w + two.len, f.w, f.len);
		two.len += f.len;
		send_some(fd, two.w, two.len);
		expect_fail_close(fd, KV_OP_PING, 9, KV_EPROTO);
	}
	expect_serves_and_stops();
}

/*
 * A well-formed frame that only fails the batch limit, sent before HELLO:
 * the rule "nothing but HELLO first" applies to it as to any other frame.
 */
static void test_over_batch_before_hello(void **state)
{
	struct frame f;
	int fd;

	fd = raw_connect();
	fr_keys(&f, KV_OP_LOOKUP, 5, 0, MAX_BATCH + 1);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_LOOKUP, 5, KV_EPROTO);

	fd = raw_connect();
	fr_ls(&f, 6, KV_NS_ALL, 0);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_LS, 6, KV_EPROTO);

	/*
	 * With a HELLO right behind it in the same write: the HELLO reply is
	 * sent with sendmsg() straight away, so if the early frame were
	 * answered in the output buffer the replies would come out of order.
	 */
	{
		struct frame two;

		fd = raw_connect();
		fr_keys(&two, KV_OP_LOOKUP, 7, 0, MAX_BATCH + 1);
		fr_hello(&f, 8, KV_PROTO_VERSION);
		memcpy((char *)two.w + two.len, f.w, f.len);
		two.len += f.len;
		send_some(fd, two.w, two.len);
		expect_fail_close(fd, KV_OP_LOOKUP, 7, KV_EPROTO);
	}
	expect_serves_and_stops();
}

static void test_hello_wrong_version(void **state)
{
	static const uint32_t versions[] = {
		0, KV_PROTO_VERSION + 1, 0x100, 0xffffffffu,
	};
	struct kv_wire_hello *hb;
	struct frame f;
	int fd;

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		fd = raw_connect();
		fr_hello(&f, 20 + i, versions[i]);
		send_frame(fd, &f);
		expect_fail_close(fd, KV_OP_HELLO, 20 + i, KV_EVERSION);
	}

	/* unknown hello flags */
	fd = raw_connect();
	fr_hello(&f, 30, KV_PROTO_VERSION);
	hb = (struct kv_wire_hello *)fr_body(&f);
	hb->flags = 1;
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_HELLO, 30, KV_EPROTO);

	/* a HELLO body of the wrong size */
	fd = raw_connect();
	fr_hello(&f, 31, KV_PROTO_VERSION);
	fr_hdr(&f)->len -= 8;
	f.len -= 8;
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_HELLO, 31, KV_EPROTO);

	/* a client name with no NUL and control bytes is fine */
	fd = raw_connect();
	fr_hello(&f, 32, KV_PROTO_VERSION);
	hb = (struct kv_wire_hello *)fr_body(&f);
	memset(hb->name, '\n', sizeof(hb->name));
	hb->name[3] = '\x1b';
	hb->name[7] = '\xff';
	send_frame(fd, &f);
	{
		struct kv_wire_hdr h;
		int nfds = 0;

		assert_int_equal(read_reply(fd, &h, NULL, 0, &nfds), 0);
		assert_int_equal(h.status, 0);
		assert_int_equal(nfds, 1);
	}
	expect_serving(fd, 33);
	close(fd);
	expect_serves_and_stops();
}

static void test_second_hello(void **state)
{
	struct frame f;
	int fd;

	fd = raw_session();
	fr_hello(&f, 2, KV_PROTO_VERSION);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_HELLO, 2, KV_EPROTO);

	/* after some work, and with a different version */
	fd = raw_session();
	raw_ns(fd, 2, "badinput/second");
	expect_serving(fd, 3);
	fr_hello(&f, 4, KV_PROTO_VERSION + 1);
	send_frame(fd, &f);
	expect_fail_close(fd, KV_OP_HELLO, 4, KV_EPROTO);
	expect_serves_and_stops();
}

static void test_unregistered_ns(void **state)
{
	static const unsigned ops[] = {
		KV_OP_LOOKUP, KV_OP_ALLOC, KV_OP_COMMIT, KV_OP_ABORT, KV_OP_PIN,
		KV_OP_RELEASE, KV_OP_EVICT, KV_OP_INSPECT,
	};
	static const uint32_t ids[] = { 0, 1, 12345, 0x7fffffffu, 0xfffffffeu };
	struct frame f;
	uint32_t ns;
	int a, b;

	a = raw_session();
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		for (size_t j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
			uint64_t id = 100 * i + j + 10;

			fr_keys(&f, ops[i], id, ids[j], 1);
			send_frame(a, &f);
			expect_reply(a, ops[i], id, KV_ENONS);
		}
	}
	fr_ls(&f, 5, 12345, 4);
	send_frame(a, &f);
	expect_reply(a, KV_OP_LS, 5, KV_ENONS);
	expect_serving(a, 6);

	/* registered on one connection is not registered on another */
	ns = raw_ns(a, 7, "badinput/ns");
	b = raw_session();
	fr_keys(&f, KV_OP_LOOKUP, 8, ns, 1);
	send_frame(b, &f);
	expect_reply(b, KV_OP_LOOKUP, 8, KV_ENONS);
	fr_ls(&f, 9, ns, 4);
	send_frame(b, &f);
	expect_reply(b, KV_OP_LS, 9, KV_ENONS);
	expect_serving(b, 10);
	send_frame(a, &f);
	expect_reply(a, KV_OP_LS, 9, 0);
	fr_keys(&f, KV_OP_LOOKUP, 8, ns, 1);
	send_frame(a, &f);
	expect_reply(a, KV_OP_LOOKUP, 8, 0);
	close(a);
	close(b);
	expect_serves_and_stops();
}

/*
 * Well-formed frames with hostile field values: each item or request gets
 * its own error status, the connection stays.
 */
static void test_hostile_fields(void **state)
{
	static const uint8_t bad_tiers[] = { KV_TIER_MAX, 0x7f, 0xfe };
	static const uint64_t cursors[] = { UINT64_MAX, 1ull << 63, 12345 };
	struct kv_wire_alloc_reply ar[4];
	struct kv_wire_ls_reply lr;
	struct kv_wire_alloc *it;
	struct kv_wire_flush *fl;
	struct kv_wire_ls *ls;
	struct kv_wire_hdr h;
	struct frame f;
	uint32_t ns;
	int fd = raw_session();

	ns = raw_ns(fd, 2, "badinput/fields");

	/* ALLOC: no bytes, more than the address space, more than the tier */
	fr_keys(&f, KV_OP_ALLOC, 3, ns, 4);
	it = (struct kv_wire_alloc *)(fr_body(&f) + sizeof(struct kv_wire_keys));
	it[0].bytes = 0;
	it[1].bytes = UINT64_MAX;
	it[2].bytes = (64ull << 20) + 1;	/* the harness's 64M DRAM tier */
	it[3].tokens = UINT32_MAX;
	it[3].position = UINT32_MAX;
	send_frame(fd, &f);
	assert_int_equal(read_reply(fd, &h, ar, sizeof(ar), NULL), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.count, 4);
	assert_int_equal(ar[0].status, EINVAL);
	assert_int_equal(ar[1].status, KV_ETOOBIG);
	assert_int_equal(ar[2].status, KV_ETOOBIG);
	assert_int_equal(ar[3].status, 0);

	/* the same key twice in one batch, and a key already pending */
	fr_keys(&f, KV_OP_ALLOC, 4, ns, 2);
	it = (struct kv_wire_alloc *)(fr_body(&f) + sizeof(struct kv_wire_keys));
	it[0].key.lo = 100;
	it[1].key.lo = 100;
	send_frame(fd, &f);
	assert_int_equal(read_reply(fd, &h, ar, sizeof(ar), NULL), 0);
	assert_int_equal(h.count, 2);
	assert_int_equal(ar[0].status, 0);
	assert_int_equal(ar[1].status, EEXIST);

	/* FLUSH of tiers this daemon does not have */
	for (size_t i = 0; i < sizeof(bad_tiers); i++) {
		for (uint32_t flags = 0; flags <= KV_FLUSH_DROP; flags++) {
			fr_make(&f, KV_OP_FLUSH, 10 + i, 0, sizeof(*fl));
			fl = (struct kv_wire_flush *)fr_body(&f);
			fl->tier = bad_tiers[i];
			fl->flags = flags;
			send_frame(fd, &f);
			expect_reply(fd, KV_OP_FLUSH, 10 + i, KV_ENOTIER);
		}
	}

	/* LS of a tier that does not exist, and from cursors never handed out */
	fr_ls(&f, 20, ns, 8);
	ls = (struct kv_wire_ls *)fr_body(&f);
	ls->tier = 0x7f;
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_LS, 20, KV_ENOTIER);	/* as for FLUSH */
	for (size_t i = 0; i < sizeof(cursors) / sizeof(cursors[0]); i++) {
		fr_ls(&f, 21 + i, KV_NS_ALL, MAX_BATCH);
		ls = (struct kv_wire_ls *)fr_body(&f);
		ls->cursor = cursors[i];
		send_frame(fd, &f);
		assert_int_equal(read_reply(fd, &h, &lr, sizeof(lr), NULL), 0);
		assert_int_equal(h.status, 0);
		assert_true(h.count <= MAX_BATCH);
	}

	/* keys that were never stored */
	fr_keys(&f, KV_OP_INSPECT, 30, ns, 1);
	send_frame(fd, &f);
	expect_reply(fd, KV_OP_INSPECT, 30, ENOENT);
	expect_serving(fd, 31);
	close(fd);
	expect_serves_and_stops();
}

/*
 * BW_REPORT and PLAN_REPORT: a body of another length or a count is
 * malformed (closed); hostile values are answered with a status, count
 * nothing, and the connection stays.
 */
static void test_reports(void **state)
{
	static const unsigned ops[] = { KV_OP_BW_REPORT, KV_OP_PLAN_REPORT };
	static const struct {
		uint8_t tier;
		uint64_t bytes, ns;
		int status;
	} bw[] = {
		{ KV_TIER_NONE, 1 << 20, 1000, KV_ENOTIER },
		{ KV_TIER_MAX, 1 << 20, 1000, KV_ENOTIER },
		{ KV_TIER_HBM, 1 << 20, 1000, KV_ENOTIER },
		{ KV_TIER_DRAM, 0, 0, EINVAL },
		{ KV_TIER_DRAM, UINT64_MAX, 1, ERANGE },
		{ KV_TIER_DRAM, 1, UINT64_MAX, ERANGE },
		{ KV_TIER_DRAM, UINT64_MAX, UINT64_MAX, 0 },	/* 1 GB/s */
	};
	static const uint32_t kinds[] = { 0, 4, 0x80000001u, UINT32_MAX };
	struct kv_wire_plan_report *p;
	struct kv_wire_bw_report *b;
	struct kvc_stats st;
	struct frame f;
	struct kvc *c;
	uint64_t id = 10;
	int fd;

	for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		fd = raw_session();
		fr_make(&f, ops[o], 2, 0, 16);
		send_frame(fd, &f);
		expect_fail_close(fd, ops[o], 2, KV_EPROTO);
		fd = raw_session();
		fr_make(&f, ops[o], 3, 1, 24);
		send_frame(fd, &f);
		expect_fail_close(fd, ops[o], 3, KV_EPROTO);
		fd = raw_session();
		fr_make(&f, ops[o], 4, 0, 32);
		send_frame(fd, &f);
		expect_fail_close(fd, ops[o], 4, KV_EPROTO);
	}

	fd = raw_session();
	for (size_t i = 0; i < sizeof(bw) / sizeof(bw[0]); i++) {
		fr_make(&f, KV_OP_BW_REPORT, ++id, 0, sizeof(*b));
		b = (struct kv_wire_bw_report *)fr_body(&f);
		b->tier = bw[i].tier;
		memset(b->pad, 0xee, sizeof(b->pad));	/* not checked */
		b->bytes = bw[i].bytes;
		b->ns = bw[i].ns;
		send_frame(fd, &f);
		expect_reply(fd, KV_OP_BW_REPORT, id, bw[i].status);
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		fr_make(&f, KV_OP_PLAN_REPORT, ++id, 0, sizeof(*p));
		p = (struct kv_wire_plan_report *)fr_body(&f);
		p->kind = kinds[i];
		p->tokens_loaded = UINT64_MAX;
		p->tokens_computed = UINT64_MAX;
		send_frame(fd, &f);
		expect_reply(fd, KV_OP_PLAN_REPORT, id, EINVAL);
	}
	/* counts saturate rather than wrap */
	for (int i = 0; i < 2; i++) {
		fr_make(&f, KV_OP_PLAN_REPORT, ++id, 0, sizeof(*p));
		p = (struct kv_wire_plan_report *)fr_body(&f);
		p->kind = KV_PLAN_BOTH;
		p->tokens_loaded = UINT64_MAX - 1;
		p->tokens_computed = 1;
		send_frame(fd, &f);
		expect_reply(fd, KV_OP_PLAN_REPORT, id, 0);
	}
	expect_serving(fd, ++id);
	close(fd);

	assert_int_equal(kvc_connect(kvd.sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	kvc_close(c);
	for (unsigned i = 0; i < st.n_tiers; i++) {
		bool dram = !strcmp(st.tiers[i].name, "dram");

		assert_int_equal(st.tiers[i].read_samples, dram);
		assert_int_equal(st.tiers[i].read_bw, dram ? 1000000000u : 0);
	}
	assert_int_equal(st.plans_loaded + st.plans_computed, 0);
	assert_int_equal(st.plans_both, 2);
	assert_int_equal(st.plan_tokens_loaded, UINT64_MAX);
	assert_int_equal(st.plan_tokens_computed, 2);
	expect_serves_and_stops();
}

/* Send a frame one byte at a time, a millisecond apart. */
static void send_slowly(int fd, const struct frame *f)
{
	for (size_t i = 0; i < f->len; i++) {
		send_all(fd, (const char *)f->w + i, 1);
		sleep_ms(1);
	}
}

static void test_slow_writer(void **state)
{
	struct kv_wire_ns_reply nr;
	struct kv_wire_hdr h;
	struct frame f;
	int nfds = 0;
	int fd = raw_connect();

	fr_hello(&f, 1, KV_PROTO_VERSION);
	send_slowly(fd, &f);
	assert_int_equal(read_reply(fd, &h, NULL, 0, &nfds), 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(nfds, 1);

	fr_ns(&f, 2, "badinput/slow");
	send_slowly(fd, &f);
	assert_int_equal(read_reply(fd, &h, &nr, sizeof(nr), NULL), 0);
	assert_int_equal(h.op, KV_OP_NS_REGISTER);
	assert_int_equal(h.status, 0);

	/* half a frame, another client served, then the rest */
	fr_keys(&f, KV_OP_LOOKUP, 3, nr.ns, 3);
	for (size_t i = 0; i < f.len / 2; i++) {
		send_all(fd, (char *)f.w + i, 1);
		sleep_ms(1);
	}
	expect_serves();
	for (size_t i = f.len / 2; i < f.len; i++) {
		send_all(fd, (char *)f.w + i, 1);
		sleep_ms(1);
	}
	expect_reply(fd, KV_OP_LOOKUP, 3, 0);

	fr_make(&f, KV_OP_PING, 4, 0, 0);
	send_slowly(fd, &f);
	expect_reply(fd, KV_OP_PING, 4, 0);
	close(fd);
	expect_serves_and_stops();
}

static void test_pipelined_pings(void **state)
{
	enum { N = 1000 };
	static uint64_t buf[N * HDR_LEN / 8];
	struct kv_wire_ping_reply pr;
	struct kv_wire_hdr h;
	int fd = raw_session();

	for (unsigned i = 0; i < N; i++) {
		struct kv_wire_hdr *q = (struct kv_wire_hdr *)((char *)buf + i * HDR_LEN);

		memset(q, 0, sizeof(*q));
		q->op = KV_OP_PING;
		q->req_id = 1000000 + i;
	}
	send_all(fd, buf, sizeof(buf));
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(read_reply(fd, &h, &pr, sizeof(pr), NULL), 0);
		if (h.req_id != 1000000 + i)
			fail_msg("reply %u answers request %llu; wanted %u", i,
				 (unsigned long long)h.req_id, 1000000 + i);
		assert_int_equal(h.op, KV_OP_PING);
		assert_int_equal(h.status, 0);
		assert_int_equal(h.len, sizeof(pr));
		assert_int_equal(pr.version, KV_PROTO_VERSION);
	}
	expect_serving(fd, 2);
	close(fd);
	expect_serves_and_stops();
}

/*
 * One write holding pings, refused batches, an unregistered namespace, a
 * registration and finally a malformed frame: every reply in order, the
 * error last, then EOF.
 */
static void test_pipelined_mixed(void **state)
{
	static struct frame all;
	struct frame f;
	uint64_t id = 1;
	int fd = raw_session();

	all.len = 0;
#define APPEND(fr) do {							\
		assert_true(all.len + (fr).len <= sizeof(all.w));	\
		memcpy((char *)all.w + all.len, (fr).w, (fr).len);	\
		all.len += (fr).len;					\
	} while (0)
	for (int i = 0; i < 100; i++) {
		fr_make(&f, KV_OP_PING, id++, 0, 0);
		APPEND(f);
	}
	fr_keys(&f, KV_OP_LOOKUP, id++, 0, MAX_BATCH + 1);
	APPEND(f);
	fr_keys(&f, KV_OP_LOOKUP, id++, 4242, 1);
	APPEND(f);
	fr_ns(&f, id++, "badinput/pipe");
	APPEND(f);
	for (int i = 0; i < 100; i++) {
		fr_make(&f, KV_OP_PING, id++, 0, 0);
		APPEND(f);
	}
	fr_make(&f, KV_OP_PING, id++, 0, 8);	/* a PING has no body */
	APPEND(f);
	fr_make(&f, KV_OP_PING, id++, 0, 0);	/* never answered */
	APPEND(f);
#undef APPEND
	send_some(fd, all.w, all.len);

	id = 1;
	for (int i = 0; i < 100; i++, id++)
		expect_reply(fd, KV_OP_PING, id, 0);
	expect_reply(fd, KV_OP_LOOKUP, id++, KV_EBATCH);
	expect_reply(fd, KV_OP_LOOKUP, id++, KV_ENONS);
	expect_reply(fd, KV_OP_NS_REGISTER, id++, 0);
	for (int i = 0; i < 100; i++, id++)
		expect_reply(fd, KV_OP_PING, id, 0);
	expect_fail_close(fd, KV_OP_PING, id, KV_EPROTO);
	expect_serves_and_stops();
}

/*
 * Clients never send descriptors. Ones that come anyway (SCM_RIGHTS on
 * any frame) must be dropped by the daemon, not kept: the write end of a
 * pipe sent over must reach EOF once we close ours, and the daemon's
 * descriptor count must not grow.
 */
static void test_scm_rights(void **state)
{
	int fds[MAX_FDS];
	struct frame f;
	struct pollfd pfd;
	int base;
	int p[2];
	int fd;
	char c;

	fd = raw_session();
	base = settled_fds();

	/* a pipe's write end, /dev/null and a memfd on a PING */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fds[0] = p[1];
	fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[2] = memfd_create("badinput", MFD_CLOEXEC);
	assert_true(fds[1] >= 0 && fds[2] >= 0);
	fr_make(&f, KV_OP_PING, 2, 0, 0);
	send_fds(fd, f.w, f.len, fds, 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	expect_reply(fd, KV_OP_PING, 2, 0);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(read(p[0], &c, 1), 0);	/* EOF: nobody kept it */
	close(p[0]);
	expect_fds_at_most(base);

	/* many descriptors on many frames, some split across the frame */
	for (int i = 0; i < MAX_FDS; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	for (int round = 0; round < 20; round++) {
		fr_keys(&f, KV_OP_LOOKUP, 10 + round, 12345, 2);
		if (round % 2) {
			send_fds(fd, f.w, HDR_LEN, fds, MAX_FDS);
			send_fds(fd, (char *)f.w + HDR_LEN, f.len - HDR_LEN, fds, 1);
		} else {
			send_fds(fd, f.w, f.len, fds, MAX_FDS);
		}
		expect_reply(fd, KV_OP_LOOKUP, 10 + round, KV_ENONS);
	}
	expect_serving(fd, 40);
	expect_fds_at_most(base);

	/* on a HELLO, on a malformed frame, on a frame cut short */
	close(fd);
	fd = raw_connect();
	fr_hello(&f, 50, KV_PROTO_VERSION);
	send_fds(fd, f.w, f.len, fds, MAX_FDS);
	{
		struct kv_wire_hdr h;
		int nfds = 0;

		assert_int_equal(read_reply(fd, &h, NULL, 0, &nfds), 0);
		assert_int_equal(h.status, 0);
		assert_int_equal(nfds, 1);	/* the arena's memfd, nothing of ours */
	}
	fr_make(&f, KV_OP_PING, 51, 0, 8);
	send_fds(fd, f.w, f.len, fds, MAX_FDS);
	expect_fail_close(fd, KV_OP_PING, 51, KV_EPROTO);
	fd = raw_session();
	fr_make(&f, KV_OP_PING, 52, 0, 0);
	send_fds(fd, f.w, 12, fds, MAX_FDS);
	close(fd);

	for (int i = 0; i < MAX_FDS; i++)
		close(fds[i]);
	expect_fds_at_most(base - 1);	/* without our session */
	expect_serves_and_stops();
}

/* Connections dropped at every stage of a request leave nothing behind. */
static void test_abandoned_connections(void **state)
{
	enum { N = 100 };
	int fds[N];
	struct frame f;
	int base = settled_fds();

	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect();
		switch (i % 5) {
		case 0:
			break;
		case 1:
			fr_hello(&f, i, KV_PROTO_VERSION);
			send_all(fds[i], f.w, 10);
			break;
		case 2:
			fr_hello(&f, i, KV_PROTO_VERSION);
			send_all(fds[i], f.w, f.len - 8);
			break;
		case 3:
			raw_hello(fds[i], i);
			fr_make(&f, KV_OP_PING, i, 0, 0);
			send_all(fds[i], f.w, HDR_LEN - 1);
			break;
		default:
			raw_hello(fds[i], i);
			fr_keys(&f, KV_OP_ALLOC, i, 0, 8);
			send_all(fds[i], f.w, f.len - 1);
			break;
		}
	}
	expect_serves();
	assert_true(daemon_fds() >= base + N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	expect_fds_at_most(base);
	expect_serves_and_stops();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oversized_len, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_then_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_before_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_over_batch_before_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_wrong_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregistered_ns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_pings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scm_rights, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandoned_connections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
