/*
 * test_rcluster.c - the Redis Cluster client (tiers/rcluster.h) against a
 * real cluster of 3 masters and 3 replicas on loopback, started with
 * tests/lib/rcluster.sh (and stopped at the end, also when a case fails),
 * and against fake nodes that misbehave (TESTING.md plan 11):
 *  - slots: the spec's CRC16 check value and hash tags, and 500 keys
 *    against the cluster's own CLUSTER KEYSLOT;
 *  - 1,000 keys over every master, values of 0..4 MiB (log-uniform),
 *    written from 3 iovecs each and read back byte-exact, pipelined in
 *    batches; EXISTS and DEL;
 *  - a GET into a short buffer: -EMSGSIZE, and a GET of a missing key:
 *    -ENOENT; the same connection serves the next reply in order;
 *  - a slot migrated under the client: -ASK while keys are split between
 *    the two masters, -MOVED after, every key right both times;
 *  - a master killed: its commands fail within the deadline + 100 ms,
 *    the others succeed; once its replica takes over, commands succeed;
 *  - AUTH with a password and with an ACL user; a wrong one is -EACCES;
 *  - fake nodes: garbage, a 2^62 bulk length, a line that never ends, a
 *    payload that trickles, silence, endless MOVED: each ends in its error
 *    within the deadline + 100 ms, with no crash (run it under ASan).
 * Needs redis-server and redis-cli (scripts/deps.sh test); fails, not
 * skips, without them. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "lib/errors.h"
#include "tests/lib/clock.h"
#include "tests/integration/rc_client_fx.h"
#include "tests/lib/rcluster_fx.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/rcluster.h"

#define NKEYS		1000
#define BATCH		50
#define VMAX		(4u << 20)
#define TIMEOUT_MS	2000u		/* the cluster cases' deadline */
#define FAST_MS		300u		/* the dead and fake nodes' deadline */
#define SLACK_NS	(100ull * 1000000)

static char seeds[512];
static unsigned ports[6];

static struct kvt_cluster cl;

static int cluster_start(void **state)
{
	if (kvt_cluster_start(&cl))
		return -1;
	memcpy(seeds, cl.seeds, sizeof(seeds));
	memcpy(ports, cl.ports, sizeof(ports));
	return 0;
}

static int cluster_teardown(void **state)
{
	kvt_cluster_stop();
	return 0;
}

static struct kv_rc *rc_open(const char *s, unsigned timeout_ms, unsigned conns)
{
	struct kv_rc_conf conf = {
		.seeds = s,
		.timeout_ms = timeout_ms,
		.conns = conns,
	};
	struct kv_rc *rc = NULL;

	assert_int_equal(kv_rc_open(&rc, &conf), 0);
	return rc;
}

/* A direct connection to one node, for the cluster's own commands. */
static redisContext *admin(unsigned port)
{
	struct timeval tv = { .tv_sec = 5 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)port, tv);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

/* Value i: its length (log-uniform in 0..4 MiB) and bytes. */
static size_t value_len(unsigned i)
{
	uint64_t r = kvt_mix(i * 2 + 1);
	unsigned bits = (unsigned)(r % 23);

	if (i % 97 == 0)
		return VMAX;
	return (size_t)((r >> 8) & ((1ull << bits) - 1));
}

static void value_fill(void *buf, size_t len, unsigned i, unsigned gen)
{
	uint64_t st = kvt_mix(((uint64_t)gen << 32) | i);
	unsigned char *p = buf;
	size_t k = 0;

	for (; k + 8 <= len; k += 8) {
		uint64_t v = kvt_splitmix(&st);

		memcpy(p + k, &v, 8);
	}
	for (; k < len; k++)
		p[k] = (unsigned char)kvt_splitmix(&st);
}

static void test_slot(void **state)
{
	redisContext *a = admin(ports[0]);

	assert_int_equal(kv_rc_slot("123456789", 9), 0x31C3 & 16383);
	assert_int_equal(kv_rc_slot("foo", 3), 12182);
	assert_int_equal(kv_rc_slot("{user1000}.following", 20),
			 kv_rc_slot("{user1000}.followers", 20));
	assert_int_equal(kv_rc_slot("{user1000}.following", 20), kv_rc_slot("user1000", 8));
	/* Empty tags hash the whole key; only the first '{' counts. */
	assert_int_equal(kv_rc_slot("foo{}{bar}", 10), kv_rc_slot("foo{}{bar}x", 10));
	assert_int_not_equal(kv_rc_slot("foo{}{bar}", 10), kv_rc_slot("bar", 3));
	assert_int_equal(kv_rc_slot("foo{{bar}}zap", 13), kv_rc_slot("{bar", 4));
	assert_int_equal(kv_rc_slot("foo{bar}{zap}", 13), kv_rc_slot("bar", 3));
	assert_int_equal(kv_rc_slot("", 0), 0);
	/* And as the cluster computes it, binary keys included. */
	for (unsigned i = 0; i < 500; i++) {
		unsigned char key[24];
		size_t len = i % 24;
		redisReply *r;

		value_fill(key, len, i, 7);
		if (i % 5 == 0 && len > 4) {
			key[1] = '{';
			key[len - 1] = '}';
		}
		r = redisCommand(a, "CLUSTER KEYSLOT %b", key, len);
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_INTEGER);
		assert_int_equal(kv_rc_slot(key, len), (unsigned)r->integer);
		freeReplyObject(r);
	}
	redisFree(a);
}

static void key_of(char *key, size_t cap, const char *prefix, unsigned i)
{
	snprintf(key, cap, "%s:%u:%llx", prefix, i, (unsigned long long)kvt_mix(i));
}

static void test_roundtrip(void **state)
{
	static char keys[NKEYS][48];
	struct kv_rc_cmd cmds[BATCH];
	struct iovec iov[BATCH][3];
	struct kv_rc_stats st;
	unsigned char *vals = malloc((size_t)BATCH * VMAX);
	unsigned char *want = malloc(VMAX);
	unsigned char *got = malloc((size_t)BATCH * VMAX);
	bool slot_seen[KV_RC_SLOTS] = { false };
	unsigned distinct = 0;
	uint64_t bytes = 0;
	struct kv_rc *rc;

	assert_non_null(vals);
	assert_non_null(want);
	assert_non_null(got);
	rc = rc_open(seeds, 10000, 2);
	for (unsigned i = 0; i < NKEYS; i++) {
		key_of(keys[i], sizeof(keys[i]), "rt", i);
		distinct += !slot_seen[kv_rc_slot(keys[i], strlen(keys[i]))];
		slot_seen[kv_rc_slot(keys[i], strlen(keys[i]))] = true;
	}
	assert_true(distinct > 900);	/* 1000 keys over 16384 slots */
	for (unsigned b = 0; b < NKEYS; b += BATCH) {
		memset(cmds, 0, sizeof(cmds));
		for (unsigned k = 0; k < BATCH; k++) {
			unsigned i = b + k;
			size_t len = value_len(i);
			unsigned char *v = vals + (size_t)k * VMAX;

			value_fill(v, len, i, 1);
			bytes += len;
			/* Three pieces, as an arena's pages would be. */
			iov[k][0] = (struct iovec){ v, len / 3 };
			iov[k][1] = (struct iovec){ v + len / 3, len / 3 };
			iov[k][2] = (struct iovec){ v + 2 * (len / 3), len - 2 * (len / 3) };
			cmds[k] = (struct kv_rc_cmd){
				.op = KV_RC_SET, .key = keys[i], .key_len = strlen(keys[i]),
				.iov = iov[k], .iovcnt = 3,
			};
		}
		run_ok(rc, cmds, BATCH);
	}
	for (unsigned b = 0; b < NKEYS; b += BATCH) {
		for (unsigned k = 0; k < BATCH; k++) {
			unsigned i = b + k;

			cmds[k] = (struct kv_rc_cmd){
				.op = KV_RC_GET, .key = keys[i], .key_len = strlen(keys[i]),
				.buf = got + (size_t)k * VMAX, .cap = VMAX,
			};
		}
		assert_int_equal(kv_rc_run(rc, cmds, BATCH), 0);
		for (unsigned k = 0; k < BATCH; k++) {
			unsigned i = b + k;

			assert_int_equal(cmds[k].result, 0);
			assert_int_equal(cmds[k].len, value_len(i));
			value_fill(want, value_len(i), i, 1);
			if (value_len(i))
				assert_memory_equal(got + (size_t)k * VMAX, want, value_len(i));
		}
	}
	/* EXISTS, DEL of every other key, then EXISTS, DEL and GET again. */
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned b = 0; b < NKEYS; b += BATCH) {
			for (unsigned k = 0; k < BATCH; k++) {
				unsigned i = b + k;
				uint8_t op = round == 0 || round == 2 ? KV_RC_EXISTS : KV_RC_DEL;

				if (round == 3)
					op = i % 2 ? KV_RC_GET : KV_RC_DEL;
				else if (round == 1 && i % 2)
					op = KV_RC_EXISTS;
				cmds[k] = (struct kv_rc_cmd){
					.op = op, .key = keys[i], .key_len = strlen(keys[i]),
					.buf = got + (size_t)k * VMAX, .cap = VMAX,
				};
			}
			assert_int_equal(kv_rc_run(rc, cmds, BATCH), 0);
			for (unsigned k = 0; k < BATCH; k++) {
				unsigned i = b + k;
				bool gone = round >= 2 && i % 2 == 0;

				assert_int_equal(cmds[k].result, gone ? -ENOENT : 0);
			}
		}
	}
	kv_rc_stats(rc, &st);
	assert_int_equal(st.masters, 3);
	assert_int_equal(st.proto_errors + st.conn_errors + st.timeouts, 0);
	print_message("figure: %u keys, %.1f MiB set and got byte-exact over %u slots\n",
		      NKEYS, (double)bytes / (1 << 20), distinct);
	kv_rc_close(rc);
	free(vals);
	free(want);
	free(got);
}

static void test_msgsize(void **state)
{
	char big[1000];
	char small[10];
	char out[1000];
	struct iovec v = { big, sizeof(big) };
	struct kv_rc_cmd cmds[3];
	struct kv_rc_stats before;
	struct kv_rc_stats after;
	struct kv_rc *rc = rc_open(seeds, TIMEOUT_MS, 1);

	memset(big, 'x', sizeof(big));
	memset(small, 's', sizeof(small));
	/* Both keys in one slot: one connection, replies in order. */
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = "{ms}big", .key_len = 7,
				      .iov = &v, .iovcnt = 1 };
	cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = "{ms}small", .key_len = 9,
				      .iov = &(struct iovec){ small, sizeof(small) },
				      .iovcnt = 1 };
	run_ok(rc, cmds, 2);
	kv_rc_stats(rc, &before);
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = "{ms}big", .key_len = 7,
				      .buf = out, .cap = 100 };
	cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = "{ms}small", .key_len = 9,
				      .buf = out + 100, .cap = 100 };
	cmds[2] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = "{ms}big", .key_len = 7,
				      .buf = out, .cap = 0 };
	assert_int_equal(kv_rc_run(rc, cmds, 3), 0);
	assert_int_equal(cmds[0].result, -EMSGSIZE);
	assert_int_equal(cmds[0].len, sizeof(big));
	assert_int_equal(cmds[1].result, 0);
	assert_int_equal(cmds[1].len, sizeof(small));
	assert_memory_equal(out + 100, small, sizeof(small));
	assert_int_equal(cmds[2].result, -EMSGSIZE);
	/* A GET of a missing key ("$-1") is -ENOENT, and the connection
	 * serves the next reply (it was -EPROTO and a reconnect). */
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = "{ms}none", .key_len = 8,
				      .buf = out, .cap = sizeof(out) };
	cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = "{ms}big", .key_len = 7,
				      .buf = out, .cap = sizeof(out) };
	assert_int_equal(kv_rc_run(rc, cmds, 2), 0);
	assert_int_equal(cmds[0].result, -ENOENT);
	assert_int_equal(cmds[1].result, 0);
	assert_memory_equal(out, big, sizeof(big));
	kv_rc_stats(rc, &after);
	/* The same connection all along: no error, no reconnect. */
	assert_int_equal(after.connects, before.connects);
	assert_int_equal(after.proto_errors + after.conn_errors, 0);
	/* Bad arguments: nothing runs. */
	cmds[0].op = 9;
	assert_int_equal(kv_rc_run(rc, cmds, 1), -EINVAL);
	assert_int_equal(kv_rc_run(rc, NULL, 1), -EINVAL);
	assert_int_equal(kv_rc_run(rc, NULL, 0), 0);
	kv_rc_close(rc);
}

/* GETRANGE reads a value's head (the remote tier's headers) pipelined with
 * other commands; a missing key reads as nothing; a bad range runs nothing. */
static void test_getrange(void **state)
{
	char val[5000], out[3][200];
	struct iovec v = { val, sizeof(val) };
	struct kv_rc_cmd cmds[4];
	struct kv_rc *rc = rc_open(seeds, TIMEOUT_MS, 1);

	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (char)(i * 7 + 3);
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = "{gr}v", .key_len = 5,
				      .iov = &v, .iovcnt = 1 };
	run_ok(rc, cmds, 1);
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_GETRANGE, .key = "{gr}v", .key_len = 5,
				      .start = 0, .end = 111, .buf = out[0], .cap = 200 };
	cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_GETRANGE, .key = "{gr}v", .key_len = 5,
				      .start = 4990, .end = 9999, .buf = out[1], .cap = 200 };
	cmds[2] = (struct kv_rc_cmd){ .op = KV_RC_GETRANGE, .key = "{gr}none", .key_len = 8,
				      .start = 0, .end = 111, .buf = out[2], .cap = 200 };
	cmds[3] = (struct kv_rc_cmd){ .op = KV_RC_GETRANGE, .key = "{gr}v", .key_len = 5,
				      .start = 0, .end = 999, .buf = out[2], .cap = 200 };
	assert_int_equal(kv_rc_run(rc, cmds, 4), 0);
	assert_int_equal(cmds[0].result, 0);
	assert_int_equal(cmds[0].len, 112);
	assert_memory_equal(out[0], val, 112);
	assert_int_equal(cmds[1].result, 0);		/* clipped at the end */
	assert_int_equal(cmds[1].len, 10);
	assert_memory_equal(out[1], val + 4990, 10);
	assert_int_equal(cmds[2].result, 0);
	assert_int_equal(cmds[2].len, 0);
	assert_int_equal(cmds[3].result, -EMSGSIZE);
	assert_int_equal(cmds[3].len, 1000);
	cmds[0].start = 10;
	cmds[0].end = 9;
	assert_int_equal(kv_rc_run(rc, cmds, 1), -EINVAL);
	kv_rc_close(rc);
}

static char *node_id(unsigned port)
{
	redisContext *a = admin(port);
	redisReply *r = redisCommand(a, "CLUSTER MYID");
	char *id;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	id = strdup(r->str);
	freeReplyObject(r);
	redisFree(a);
	return id;
}

static void admin_ok(unsigned port, const char *fmt, ...)
{
	redisContext *a = admin(port);
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(a, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("port %u: %s", port, r->str);
	freeReplyObject(r);
	redisFree(a);
}

#define MKEYS 20

/* Every key of the migrating slot read back byte-exact. */
static void check_mkeys(struct kv_rc *rc, char keys[][32], unsigned n)
{
	static char buf[MKEYS + 1][4096];
	struct kv_rc_cmd cmds[MKEYS + 1];
	char want[4096];

	for (unsigned i = 0; i < n; i++)
		cmds[i] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = keys[i],
					      .key_len = strlen(keys[i]), .buf = buf[i],
					      .cap = sizeof(buf[i]) };
	assert_int_equal(kv_rc_run(rc, cmds, n), 0);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(cmds[i].result, 0);
		assert_int_equal(cmds[i].len, 1000 + i);
		value_fill(want, 1000 + i, i, 3);
		assert_memory_equal(buf[i], want, 1000 + i);
	}
}

static void test_migrate(void **state)
{
	static char keys[MKEYS + 1][32];
	static char vals[MKEYS + 1][4096];
	struct kv_rc_cmd cmds[MKEYS + 1];
	struct iovec iov[MKEYS + 1];
	struct kv_rc_stats st;
	struct kv_rc *rc = rc_open(seeds, TIMEOUT_MS, 2);
	unsigned slot = kv_rc_slot("mig", 3);
	unsigned src = addr_port(kv_rc_slot_owner(rc, slot));
	unsigned dst = 0;
	char *src_id;
	char *dst_id;

	for (unsigned i = 0; i < 3; i++) {
		unsigned p = addr_port(kv_rc_slot_owner(rc, i * 6000));

		if (p != src)
			dst = p;
	}
	assert_int_not_equal(dst, 0);
	src_id = node_id(src);
	dst_id = node_id(dst);
	for (unsigned i = 0; i <= MKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "{mig}%u", i);
		value_fill(vals[i], 1000 + i, i, 3);
		iov[i] = (struct iovec){ vals[i], 1000 + i };
		cmds[i] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = keys[i],
					      .key_len = strlen(keys[i]), .iov = &iov[i],
					      .iovcnt = 1 };
	}
	run_ok(rc, cmds, MKEYS);

	/* Half the keys to dst: the rest answer at src, the moved ones ASK. */
	admin_ok(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id);
	admin_ok(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id);
	for (unsigned i = 0; i < MKEYS / 2; i++)
		admin_ok(src, "MIGRATE 127.0.0.1 %u %s 0 5000", dst, keys[i]);
	check_mkeys(rc, keys, MKEYS);
	kv_rc_stats(rc, &st);
	assert_true(st.asks >= MKEYS / 2);
	assert_int_equal(st.moved, 0);
	/* A new key of the slot goes to dst (ASK) while the slot moves. */
	assert_int_equal(kv_rc_run(rc, &cmds[MKEYS], 1), 0);
	assert_int_equal(cmds[MKEYS].result, 0);
	for (unsigned i = MKEYS / 2; i < MKEYS; i++)
		admin_ok(src, "MIGRATE 127.0.0.1 %u %s 0 5000", dst, keys[i]);
	for (unsigned i = 0; i < 3; i++)
		admin_ok(ports[i], "CLUSTER SETSLOT %u NODE %s", slot, dst_id);
	/* The client still thinks src: MOVED, then the map is refreshed. */
	check_mkeys(rc, keys, MKEYS + 1);
	kv_rc_stats(rc, &st);
	assert_true(st.moved >= 1);
	assert_true(st.refreshes >= 2);
	assert_int_equal(addr_port(kv_rc_slot_owner(rc, slot)), dst);
	check_mkeys(rc, keys, MKEYS + 1);
	print_message("figure: slot %u moved %u -> %u: %llu ASK, %llu MOVED followed, "
		      "%u keys exact\n", slot, src, dst, (unsigned long long)st.asks,
		      (unsigned long long)st.moved, MKEYS + 1);
	free(src_id);
	free(dst_id);
	kv_rc_close(rc);
}

/* A key whose slot's owner is (want) or is not (!want) port. */
static void key_on(struct kv_rc *rc, char *key, size_t cap, unsigned port, bool want)
{
	for (unsigned i = 0;; i++) {
		snprintf(key, cap, "dead:%u", i);
		if ((addr_port(kv_rc_slot_owner(rc, kv_rc_slot(key, strlen(key)))) == port) == want)
			return;
	}
}

static void test_dead_master(void **state)
{
	struct kv_rc *rc = rc_open(seeds, FAST_MS, 1);
	char ka[32];
	char kb[32];
	char va[100];
	unsigned pid;
	char vb[100];
	char out[2][100];
	struct kv_rc_cmd cmds[2];
	unsigned victim;
	uint64_t t0;
	uint64_t took;
	uint64_t worst = 0;
	double back = 0;

	victim = addr_port(kv_rc_slot_owner(rc, kv_rc_slot("victim", 6)));
	key_on(rc, ka, sizeof(ka), victim, true);
	key_on(rc, kb, sizeof(kb), victim, false);
	memset(va, 'a', sizeof(va));
	memset(vb, 'b', sizeof(vb));
	cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = ka, .key_len = strlen(ka),
				      .iov = &(struct iovec){ va, sizeof(va) }, .iovcnt = 1 };
	cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = kb, .key_len = strlen(kb),
				      .iov = &(struct iovec){ vb, sizeof(vb) }, .iovcnt = 1 };
	run_ok(rc, cmds, 2);
	kvt_sleep_ms(500);		/* let the replica copy ka */

	pid = kvt_cluster_pid(&cl, victim);
	assert_true(pid > 1);	/* never kill(0) */
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	kvt_sleep_ms(50);
	/* Until the replica takes over: ka fails fast, kb is served. */
	for (int i = 0; i < 5; i++) {
		cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = ka, .key_len = strlen(ka),
					      .buf = out[0], .cap = sizeof(out[0]) };
		cmds[1] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = kb, .key_len = strlen(kb),
					      .buf = out[1], .cap = sizeof(out[1]) };
		t0 = kvt_now_ns();
		assert_int_equal(kv_rc_run(rc, cmds, 2), 0);
		took = kvt_now_ns() - t0;
		worst = took > worst ? took : worst;
		assert_true(took < FAST_MS * 1000000ull + SLACK_NS);
		if (cmds[0].result == 0)
			break;		/* already failed over */
		assert_true(cmds[0].result < 0);
		assert_int_equal(cmds[1].result, 0);
		assert_memory_equal(out[1], vb, sizeof(vb));
	}
	/* Failover (cluster-node-timeout 1000 ms): ka comes back. */
	t0 = kvt_now_ns();
	for (;;) {
		cmds[0] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = ka, .key_len = strlen(ka),
					      .buf = out[0], .cap = sizeof(out[0]) };
		assert_int_equal(kv_rc_run(rc, cmds, 1), 0);
		if (cmds[0].result == 0)
			break;
		if (kvt_now_ns() - t0 > 20000000000ull)
			fail_msg("no failover in 20 s: %s", kv_strerror(cmds[0].result));
		kvt_sleep_ms(50);
	}
	back = (double)(kvt_now_ns() - t0) / 1e9;
	assert_memory_equal(out[0], va, sizeof(va));
	assert_int_not_equal(addr_port(kv_rc_slot_owner(rc, kv_rc_slot(ka, strlen(ka)))), victim);
	print_message("figure: dead master: worst call %.0f ms (deadline %u ms), "
		      "served again %.1f s after the first failure\n", (double)worst / 1e6,
		      FAST_MS, back);
	kv_rc_close(rc);
}

/* Every live node's own command (the dead master is skipped). */
static void admin_all(const char *cmd)
{
	for (int i = 0; i < 6; i++) {
		struct timeval tv = { .tv_sec = 2 };
		redisContext *a = redisConnectWithTimeout("127.0.0.1", (int)ports[i], tv);
		redisReply *r;

		if (!a || a->err) {
			redisFree(a);
			continue;
		}
		r = redisCommand(a, cmd);
		assert_non_null(r);
		if (r->type == REDIS_REPLY_ERROR)
			fail_msg("port %u: %s", ports[i], r->str);
		freeReplyObject(r);
		redisFree(a);
	}
}

/* Last (it locks the cluster): AUTH with a password, and with a user. */
static void test_auth(void **state)
{
	struct kv_rc_conf conf = { .seeds = seeds, .timeout_ms = TIMEOUT_MS, .conns = 2,
				   .password = "sesame" };
	struct kv_rc_cmd cmd = { .op = KV_RC_EXISTS, .key = "auth", .key_len = 4 };
	struct kv_rc *rc = NULL;

	admin_all("ACL SETUSER kvtier on >open-sesame ~* +@all");
	admin_all("CONFIG SET requirepass sesame");
	assert_int_equal(kv_rc_open(&rc, &conf), 0);
	assert_int_equal(kv_rc_run(rc, &cmd, 1), 0);
	assert_int_equal(cmd.result, -ENOENT);
	kv_rc_close(rc);
	conf.user = "kvtier";
	conf.password = "open-sesame";
	rc = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), 0);
	assert_int_equal(kv_rc_run(rc, &cmd, 1), 0);
	assert_int_equal(cmd.result, -ENOENT);
	kv_rc_close(rc);
	conf.password = "wrong";
	rc = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), -EACCES);
	assert_null(rc);
	conf.user = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), -EACCES);
	/* No password where one is needed: the map cannot be read. */
	conf.password = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), -EIO);
	assert_null(rc);
}

/* ---- fake nodes --------------------------------------------------------- */

enum fake_mode {
	FAKE_GARBAGE,			/* "hello" where a reply belongs */
	FAKE_HUGE,			/* a bulk length of 2^62 */
	FAKE_LINE,			/* a status line that never ends */
	FAKE_DEEP,			/* arrays nested without end */
	FAKE_TRICKLE,			/* a payload, a byte every 10 ms */
	FAKE_SILENT,			/* reads, never answers */
	FAKE_MOVED,			/* MOVED to itself, forever */
	FAKE_BADMAP,			/* CLUSTER SLOTS itself is garbage */
	FAKE_SPLIT,			/* right replies, cut at random points */
};

/* What each fake answers a command with (FAKE_MOVED: made up). */
static const char *const fake_reply[] = {
	[FAKE_GARBAGE]	= "hello\r\n",
	[FAKE_HUGE]	= "$4611686018427387904\r\n",
	[FAKE_LINE]	= "+aaaa",
	[FAKE_DEEP]	= "*1\r\n*1\r\n",
	[FAKE_TRICKLE]	= "$1000000\r\n",
	[FAKE_BADMAP]	= "*1\r\n*2\r\n:0\r\n:99999\r\n",
};

struct fake {
	int lfd;
	unsigned port;
	enum fake_mode mode;
	volatile bool stop;
	pthread_t thread;
};

static void send_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		p = (const char *)p + n;
		len -= (size_t)n;
	}
}

#define SPLIT_VALUE	3000		/* FAKE_SPLIT's GET replies' value */

/* The value FAKE_SPLIT's GETs return: bytes that hold no "\r\n". */
static void split_value(char *v)
{
	for (int i = 0; i < SPLIT_VALUE; i++)
		v[i] = (char)('a' + i % 26);
}

/* Send p in pieces of 1 to 7 bytes, now and then after a pause, so that
 * the client's reads split every reply at every kind of place. */
static void send_split(int fd, const char *p, size_t len, uint64_t *rng)
{
	while (len) {
		size_t n = 1 + kvt_splitmix(rng) % 7;

		n = n < len ? n : len;
		send_all(fd, p, n);
		if (kvt_splitmix(rng) % 16 == 0)
			kvt_sleep_ms(1);
		p += n;
		len -= n;
	}
}

/*
 * FAKE_SPLIT: answer every GET, SET and EXISTS found in the request bytes
 * (the markers may straddle two reads: a few bytes are carried over), in
 * order, each reply cut into pieces.
 */
static void fake_split(int fd, const char *buf, size_t n, char *carry, size_t *nc,
		       uint64_t *rng)
{
	static char value[SPLIT_VALUE];
	char all[4096 + 16], reply[SPLIT_VALUE + 32];
	size_t len = *nc + n, at = 0;

	split_value(value);
	memcpy(all, carry, *nc);
	memcpy(all + *nc, buf, n);
	for (;;) {
		const char *g = memmem(all + at, len - at, "\r\nGET\r\n", 7);
		const char *s = memmem(all + at, len - at, "\r\nSET\r\n", 7);
		const char *e = memmem(all + at, len - at, "\r\nEXISTS\r\n", 10);
		const char *first = g;
		size_t rlen;

		if (!first || (s && s < first))
			first = s;
		if (!first || (e && e < first))
			first = e;
		if (!first)
			break;
		if (first == g) {
			rlen = (size_t)snprintf(reply, sizeof(reply), "$%d\r\n", SPLIT_VALUE);
			memcpy(reply + rlen, value, SPLIT_VALUE);
			memcpy(reply + rlen + SPLIT_VALUE, "\r\n", 2);
			rlen += SPLIT_VALUE + 2;
		} else {
			rlen = (size_t)snprintf(reply, sizeof(reply), "%s",
						first == s ? "+OK\r\n" : ":1\r\n");
		}
		send_split(fd, reply, rlen, rng);
		at = (size_t)(first - all) + 7;
	}
	*nc = len - at < 16 ? len - at : 16;
	memcpy(carry, all + len - *nc, *nc);
}

static void fake_serve(struct fake *f, int fd)
{
	char carry[16];
	size_t nc = 0;
	uint64_t rng = 99;
	char buf[4096];
	char line[256];
	char fill[1024];
	bool answering = false;
	unsigned ticks = 0;

	memset(fill, 'a', sizeof(fill));
	while (!f->stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10) == 0) {
			if (!answering)
				continue;
			if (f->mode == FAKE_TRICKLE)
				send_all(fd, "x", 1);
			else if (f->mode == FAKE_LINE)
				send_all(fd, fill, sizeof(fill));
			else if (f->mode == FAKE_DEEP)
				for (int k = 0; k < 4; k++)
					send_all(fd, "*1\r\n", 4);
			if (++ticks > 1000)
				return;
			continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		if (memmem(buf, (size_t)n, "SLOTS", 5) && f->mode != FAKE_BADMAP) {
			int len = snprintf(line, sizeof(line),
				"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:%u\r\n"
				"$40\r\n0123456789012345678901234567890123456789\r\n", f->port);

			send_all(fd, line, (size_t)len);
			continue;
		}
		answering = true;
		if (f->mode == FAKE_SPLIT) {
			fake_split(fd, buf, (size_t)n, carry, &nc, &rng);
			continue;
		}
		if (f->mode == FAKE_MOVED) {
			snprintf(line, sizeof(line), "-MOVED %u 127.0.0.1:%u\r\n",
				 kv_rc_slot("fake", 4), f->port);
			send_all(fd, line, strlen(line));
		} else if (fake_reply[f->mode]) {
			send_all(fd, fake_reply[f->mode], strlen(fake_reply[f->mode]));
		}
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	while (!f->stop) {
		struct pollfd p = { .fd = f->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		fake_serve(f, fd);
		close(fd);
	}
	return NULL;
}

/* A listening socket on a free loopback port. */
static int listen_loopback(unsigned *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->lfd = listen_loopback(&f->port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	f->stop = true;
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

/* One fake node as the only seed: the GET ends in want, on time. */
static void fake_case(enum fake_mode mode, int want, const char *what)
{
	static char buf[2u << 20];
	struct kv_rc_cmd cmd = { .op = KV_RC_GET, .key = "fake", .key_len = 4,
				 .buf = buf, .cap = sizeof(buf) };
	struct kv_rc_stats st;
	struct kv_rc *rc;
	struct fake f;
	char s[32];
	uint64_t t0;

	fake_start(&f, mode);
	snprintf(s, sizeof(s), "127.0.0.1:%u", f.port);
	rc = rc_open(s, FAST_MS, 1);
	for (int i = 0; i < 2; i++) {
		t0 = kvt_now_ns();
		assert_int_equal(kv_rc_run(rc, &cmd, 1), 0);
		assert_true(kvt_now_ns() - t0 < FAST_MS * 1000000ull + SLACK_NS);
		if (cmd.result != want)
			fail_msg("%s: %s, want %s", what, kv_strerror(cmd.result),
				 kv_strerror(want));
		if (mode != FAKE_MOVED)
			break;
	}
	kv_rc_stats(rc, &st);
	if (want == -EPROTO)
		assert_int_equal(st.proto_errors, 1);
	kv_rc_close(rc);
	fake_stop(&f);
}

/*
 * Right replies cut at random points, pipelined GETs, SETs and EXISTS
 * mixed: every reply parsed right, whatever a read ends on (the payload's
 * "$len" line, the payload, its trailer, a status or integer line).
 */
static void test_split_replies(void **state)
{
	static char bufs[24][SPLIT_VALUE + 100];
	char value[SPLIT_VALUE], s[32];
	struct iovec v = { "vvvv", 4 };
	struct kv_rc_cmd cmds[24];
	struct kv_rc_stats st;
	struct kv_rc *rc;
	struct fake f;

	split_value(value);
	fake_start(&f, FAKE_SPLIT);
	snprintf(s, sizeof(s), "127.0.0.1:%u", f.port);
	rc = rc_open(s, 5000, 1);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 24; i++) {
			cmds[i] = (struct kv_rc_cmd){ .op = (uint8_t)(i % 3 == 0 ? KV_RC_SET :
						      i % 3 == 1 ? KV_RC_GET : KV_RC_EXISTS),
						      .key = "k", .key_len = 1 };
			if (cmds[i].op == KV_RC_SET) {
				cmds[i].iov = &v;
				cmds[i].iovcnt = 1;
			}
			cmds[i].buf = bufs[i];
			cmds[i].cap = sizeof(bufs[i]);
		}
		assert_int_equal(kv_rc_run(rc, cmds, 24), 0);
		for (int i = 0; i < 24; i++) {
			if (cmds[i].result)
				fail_msg("round %d, command %d: %s", round, i,
					 kv_strerror(cmds[i].result));
			if (cmds[i].op == KV_RC_GET) {
				assert_int_equal(cmds[i].len, SPLIT_VALUE);
				assert_memory_equal(bufs[i], value, SPLIT_VALUE);
			}
		}
	}
	kv_rc_stats(rc, &st);
	assert_int_equal(st.proto_errors, 0);
	assert_int_equal(st.conn_errors, 0);
	assert_int_equal(st.connects, 1);
	kv_rc_close(rc);
	fake_stop(&f);
}

static void test_fake_nodes(void **state)
{
	struct kv_rc_conf conf = { .timeout_ms = FAST_MS, .conns = 1 };
	struct kv_rc *rc = NULL;
	struct fake f;
	char s[32];
	uint64_t t0;

	fake_case(FAKE_GARBAGE, -EPROTO, "garbage");
	fake_case(FAKE_HUGE, -EPROTO, "2^62 bulk");
	fake_case(FAKE_LINE, -EPROTO, "endless line");
	fake_case(FAKE_DEEP, -EPROTO, "endless nesting");
	fake_case(FAKE_TRICKLE, -ETIMEDOUT, "trickled payload");
	fake_case(FAKE_SILENT, -ETIMEDOUT, "silence");
	fake_case(FAKE_MOVED, -EIO, "endless MOVED");

	/* As the only seed, a bad map or silence fails the open, on time. */
	fake_start(&f, FAKE_BADMAP);
	snprintf(s, sizeof(s), "127.0.0.1:%u", f.port);
	conf.seeds = s;
	assert_int_equal(kv_rc_open(&rc, &conf), -EPROTO);
	assert_null(rc);
	fake_stop(&f);
	/* A listener nobody accepts on: the kernel completes the connect,
	 * and no reply ever comes. */
	f.lfd = listen_loopback(&f.port);
	snprintf(s, sizeof(s), "127.0.0.1:%u", f.port);
	t0 = kvt_now_ns();
	assert_int_equal(kv_rc_open(&rc, &conf), -ETIMEDOUT);
	assert_true(kvt_now_ns() - t0 < FAST_MS * 1000000ull + SLACK_NS);
	assert_null(rc);
	close(f.lfd);
	/* Bad seeds. */
	conf.seeds = "127.0.0.1";
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	conf.seeds = "127.0.0.1:99999";
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	conf.seeds = "";
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	assert_null(rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_msgsize),
		cmocka_unit_test(test_getrange),
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_fake_nodes),
		cmocka_unit_test(test_split_replies),
		cmocka_unit_test(test_dead_master),
		cmocka_unit_test(test_auth),
	};

	return cmocka_run_group_tests(tests, cluster_start, cluster_teardown);
}
