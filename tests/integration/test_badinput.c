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
 * This file holds the malformed and disallowed frames; slow, pipelined and
 * abandoned connections and descriptors passed with a frame are in
 * test_badinput_conn.c, and the frames, raw connections and daemon both
 * use in badinput_fx.c.
 *
 * Run: KVSTORED=$PWD/build/kvstored build/tests/integration/test_badinput
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/errors.h"
#include "lib/proto.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"
#include "tests/integration/badinput_fx.h"

static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
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

/*
 * CLUSTER takes no body: one (8 bytes, a whole reply's worth, or a count)
 * is malformed and closes the connection. A valid one, to a daemon
 * without a remote tier, is answered: flags 0, no nodes.
 */
static void test_cluster_request(void **state)
{
	static const struct {
		uint32_t count;
		size_t blen;
	} bad[] = {
		{ 0, 8 }, { 0, sizeof(struct kv_wire_cluster) }, { 1, 0 }, { 1, 8 },
		{ UINT32_MAX, 0 },
	};
	struct kv_wire_cluster w;
	struct kv_wire_hdr h;
	struct frame f;
	int fd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = raw_session();
		fr_make(&f, KV_OP_CLUSTER, 2 + i, bad[i].count, bad[i].blen);
		send_frame(fd, &f);
		expect_fail_close(fd, KV_OP_CLUSTER, 2 + i, KV_EPROTO);
	}
	fd = raw_session();
	fr_make(&f, KV_OP_CLUSTER, 20, 0, 0);
	send_frame(fd, &f);
	assert_int_equal(read_reply(fd, &h, &w, sizeof(w), NULL), 0);
	assert_int_equal(h.op, KV_OP_CLUSTER);
	assert_int_equal(h.req_id, 20);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.count, 0);
	assert_int_equal(h.len, sizeof(w));
	assert_int_equal(w.flags, 0);
	assert_int_equal(w.n_nodes, 0);
	expect_serving(fd, 21);
	close(fd);
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
		cmocka_unit_test_setup_teardown(test_cluster_request, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
