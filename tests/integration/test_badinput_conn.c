/*
 * test_badinput_conn.c - a live kvstored against hostile connections
 * (TESTING.md plan 6, "Bad input"): frames written one byte at a time,
 * and half a frame left waiting while another client is served; a
 * thousand PINGs, and a mix of requests, pipelined in one write;
 * descriptors sent with frames (SCM_RIGHTS), which the daemon must drop,
 * not keep; and connections dropped at every stage of a request, which
 * must leave nothing behind.
 *
 * Each case starts its own daemon and talks to it over raw AF_UNIX
 * connections (badinput_fx.c); after the attacks a fresh libkvc client
 * must be served and the daemon must shut down cleanly.
 *
 * Run: KVSTORED=$PWD/build/kvstored build/tests/integration/test_badinput_conn
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/proto.h"
#include "tests/lib/clock.h"
#include "tests/integration/badinput_fx.h"

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

/* Send a frame one byte at a time, a millisecond apart. */
static void send_slowly(int fd, const struct frame *f)
{
	for (size_t i = 0; i < f->len; i++) {
		send_all(fd, (const char *)f->w + i, 1);
		kvt_sleep_ms(1);
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
		kvt_sleep_ms(1);
	}
	expect_serves();
	for (size_t i = f.len / 2; i < f.len; i++) {
		send_all(fd, (char *)f.w + i, 1);
		kvt_sleep_ms(1);
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
		cmocka_unit_test_setup_teardown(test_slow_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_pings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scm_rights, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandoned_connections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
