/*
 * test_rcluster_tls.c - the Redis Cluster client (tiers/rcluster.h) over
 * TLS, against a cluster of 3 masters and 3 replicas on loopback that
 * speaks TLS only (tests/lib/rcluster.sh with RC_TLS_DIR; certificates
 * made now by tests/lib/tls_certs.sh; the nodes require a client
 * certificate):
 *  - 600 keys over every master, values of 1 byte .. 4 MiB (log-uniform),
 *    written from 3 iovecs each, pipelined in batches of 50 on 2
 *    connections per node, read back byte-exact; GETRANGE of a few;
 *  - a slot moved to another master under the client: -MOVED is followed
 *    and the value is right;
 *  - a client that trusts another CA, one without a client certificate,
 *    and one that speaks plain TCP to the TLS ports: each fails to open
 *    with an error, fast (well inside its deadline), and nothing crashes;
 *  - files that do not load (a missing CA, a certificate without its key,
 *    a key that is not the certificate's): -EINVAL at open.
 * Needs redis-server, redis-cli (built with TLS, as Debian's) and openssl
 * (scripts/deps.sh test); fails, not skips, without them. Run from the
 * repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "tests/lib/clock.h"
#include "tests/integration/rc_client_fx.h"
#include "tests/lib/rcluster_fx.h"
#include "tests/lib/rng.h"
#include "tiers/rcluster.h"

#define NKEYS		600
#define BATCH		50
#define VMAX		(4u << 20)
#define TIMEOUT_MS	5000u
#define FAST_NS		(1000ull * 1000000)	/* a refused client fails by then */

static struct kvt_cluster cl;
static char ca[320], other_ca[320], cert[320], key[320];

static int setup(void **state)
{
	(void)state;
	if (kvt_cluster_start_tls(&cl))
		return -1;
	snprintf(ca, sizeof(ca), "%s/ca.crt", cl.tls);
	snprintf(other_ca, sizeof(other_ca), "%s/other-ca.crt", cl.tls);
	snprintf(cert, sizeof(cert), "%s/client.crt", cl.tls);
	snprintf(key, sizeof(key), "%s/client.key", cl.tls);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kvt_cluster_stop();
	return 0;
}

static struct kv_rc_conf tls_conf(unsigned conns)
{
	return (struct kv_rc_conf){
		.seeds = cl.seeds,
		.timeout_ms = TIMEOUT_MS,
		.conns = conns,
		.tls = true,
		.tls_ca_file = ca,
		.tls_cert_file = cert,
		.tls_key_file = key,
	};
}

static struct kv_rc *rc_open(unsigned conns)
{
	struct kv_rc_conf conf = tls_conf(conns);
	struct kv_rc *rc = NULL;

	assert_int_equal(kv_rc_open(&rc, &conf), 0);
	return rc;
}

/* redis-cli over TLS to the node on port; its first output line in out
 * (may be NULL). The exit status. */
static int cli(char *out, size_t cap, unsigned port, const char *fmt, ...)
{
	char cmd[1536];
	char args[512];
	va_list ap;
	FILE *f;
	int n;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	n = snprintf(cmd, sizeof(cmd),
		     "redis-cli --tls --cacert '%s' --cert '%s' --key '%s' -p %u %s", ca, cert,
		     key, port, args);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	f = popen(cmd, "r");
	assert_non_null(f);
	if (out) {
		if (!fgets(out, (int)cap, f))
			out[0] = '\0';
		out[strcspn(out, "\r\n")] = '\0';
	}
	return pclose(f);
}

struct masters {
	unsigned port[6];
	unsigned n;
};

static void add_master(void *arg, const struct kv_rc_node_info *ni)
{
	struct masters *m = arg;

	if (ni->slots && m->n < 6)
		m->port[m->n++] = addr_port(ni->addr);
}

/* The masters as the client's map has them (a failover may have moved
 * them since the cluster was created). */
static struct masters masters_of(struct kv_rc *rc)
{
	struct masters m = { .n = 0 };

	kv_rc_nodes(rc, add_master, &m);
	assert_int_equal(m.n, 3);
	return m;
}

static size_t value_len(unsigned i)
{
	uint64_t r = kvt_mix(i * 2 + 1);
	unsigned bits = (unsigned)(r % 23);

	if (i % 97 == 0)
		return VMAX;
	return 1 + (size_t)((r >> 8) & ((1ull << bits) - 1));
}

static void value_fill(void *buf, size_t len, unsigned i)
{
	uint64_t st = kvt_mix(i ^ 0x715);
	unsigned char *p = buf;

	for (size_t k = 0; k < len; k++)
		p[k] = (unsigned char)kvt_splitmix(&st);
}

static void test_roundtrip(void **state)
{
	static char keys[NKEYS][48];
	struct kv_rc_cmd cmds[BATCH];
	struct iovec iov[BATCH][3];
	unsigned char *vals = malloc((size_t)BATCH * VMAX);
	unsigned char *got = malloc((size_t)BATCH * VMAX);
	bool master_seen[6] = { false };
	struct kv_rc_stats st;
	uint64_t bytes = 0;
	struct kv_rc *rc = rc_open(2);
	struct masters m = masters_of(rc);

	(void)state;
	assert_non_null(vals);
	assert_non_null(got);
	for (unsigned i = 0; i < NKEYS; i++) {
		const char *owner;

		snprintf(keys[i], sizeof(keys[i]), "tls:%u:%llx", i,
			 (unsigned long long)kvt_mix(i + 99));
		owner = kv_rc_slot_owner(rc, kv_rc_slot(keys[i], strlen(keys[i])));
		assert_non_null(owner);
		for (unsigned k = 0; k < m.n; k++)
			if (addr_port(owner) == m.port[k])
				master_seen[k] = true;
	}
	for (unsigned k = 0; k < m.n; k++)
		assert_true(master_seen[k]);
	for (unsigned b = 0; b < NKEYS; b += BATCH) {
		/* SET, each value from 3 iovecs (split at a third and a half). */
		for (unsigned k = 0; k < BATCH; k++) {
			unsigned i = b + k;
			size_t len = value_len(i);
			unsigned char *v = vals + (size_t)k * VMAX;

			value_fill(v, len, i);
			iov[k][0] = (struct iovec){ v, len / 3 };
			iov[k][1] = (struct iovec){ v + len / 3, len / 2 - len / 3 };
			iov[k][2] = (struct iovec){ v + len / 2, len - len / 2 };
			cmds[k] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = keys[i],
						      .key_len = strlen(keys[i]), .iov = iov[k],
						      .iovcnt = 3 };
			bytes += len;
		}
		run_ok(rc, cmds, BATCH);
		/* GET them back, straight into each buffer. */
		for (unsigned k = 0; k < BATCH; k++) {
			unsigned i = b + k;

			cmds[k] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = keys[i],
						      .key_len = strlen(keys[i]),
						      .buf = got + (size_t)k * VMAX, .cap = VMAX };
		}
		run_ok(rc, cmds, BATCH);
		for (unsigned k = 0; k < BATCH; k++) {
			size_t len = value_len(b + k);

			assert_int_equal(cmds[k].len, len);
			if (memcmp(got + (size_t)k * VMAX, vals + (size_t)k * VMAX, len))
				fail_msg("key %u: the value read differs", b + k);
		}
	}
	/* A GETRANGE in the middle of a large value, and a missing key. */
	for (unsigned i = 0; i < NKEYS; i += 97) {
		struct kv_rc_cmd c[2] = {
			{ .op = KV_RC_GETRANGE, .key = keys[i], .key_len = strlen(keys[i]),
			  .buf = got, .cap = VMAX, .start = 1000, .end = 1999 },
			{ .op = KV_RC_GET, .key = "tls:none", .key_len = 8, .buf = got + VMAX,
			  .cap = VMAX },
		};

		value_fill(vals, VMAX, i);
		assert_int_equal(kv_rc_run(rc, c, 2), 0);
		assert_int_equal(c[0].result, 0);
		assert_int_equal(c[0].len, 1000);
		assert_memory_equal(got, vals + 1000, 1000);
		assert_int_equal(c[1].result, -ENOENT);
	}
	kv_rc_stats(rc, &st);
	assert_int_equal(st.proto_errors + st.conn_errors + st.timeouts, 0);
	assert_true(st.connects >= 3);
	fprintf(stderr, "tls roundtrip: %u keys, %.1f MiB each way, %llu connections\n", NKEYS,
		(double)bytes / (1 << 20), (unsigned long long)st.connects);
	kv_rc_close(rc);
	free(vals);
	free(got);
}

/* A slot with no keys moves to another master behind the client's back:
 * the SET meets -MOVED, follows it, and the value reads back right. */
static void test_moved(void **state)
{
	struct kv_rc *rc = rc_open(1);
	struct masters m = masters_of(rc);
	struct kv_rc_stats st;
	char k[32], out[128], dst_id[64];
	unsigned slot = 0, src = 0, dst = 0;
	unsigned char got[64];
	const char val[] = "moved over TLS";
	struct iovec v = { (void *)val, sizeof(val) };
	struct kv_rc_cmd c[2];

	(void)state;
	for (unsigned i = 0;; i++) {
		assert_true(i < 100);
		snprintf(k, sizeof(k), "tlsmove:%u", i);
		slot = kv_rc_slot(k, strlen(k));
		src = addr_port(kv_rc_slot_owner(rc, slot));
		assert_int_equal(cli(out, sizeof(out), src, "CLUSTER COUNTKEYSINSLOT %u", slot), 0);
		if (!strcmp(out, "0"))
			break;
	}
	dst = m.port[0] == src ? m.port[1] : m.port[0];
	assert_int_equal(cli(dst_id, sizeof(dst_id), dst, "CLUSTER MYID"), 0);
	assert_int_equal(strlen(dst_id), 40);
	/* The new owner first, then the old one, then the third master. */
	assert_int_equal(cli(out, sizeof(out), dst, "CLUSTER SETSLOT %u NODE %s", slot, dst_id),
			 0);
	assert_string_equal(out, "OK");
	assert_int_equal(cli(out, sizeof(out), src, "CLUSTER SETSLOT %u NODE %s", slot, dst_id),
			 0);
	assert_string_equal(out, "OK");
	for (unsigned i = 0; i < m.n; i++) {
		if (m.port[i] == src || m.port[i] == dst)
			continue;
		assert_int_equal(cli(out, sizeof(out), m.port[i], "CLUSTER SETSLOT %u NODE %s",
				     slot, dst_id), 0);
	}
	c[0] = (struct kv_rc_cmd){ .op = KV_RC_SET, .key = k, .key_len = strlen(k), .iov = &v,
				   .iovcnt = 1 };
	c[1] = (struct kv_rc_cmd){ .op = KV_RC_GET, .key = k, .key_len = strlen(k),
				   .buf = got, .cap = sizeof(got) };
	run_ok(rc, c, 2);
	assert_int_equal(c[1].len, sizeof(val));
	assert_memory_equal(got, val, sizeof(val));
	kv_rc_stats(rc, &st);
	assert_true(st.moved >= 1);
	assert_int_equal(addr_port(kv_rc_slot_owner(rc, slot)), dst);
	/* The value is where the cluster says. */
	assert_int_equal(cli(out, sizeof(out), dst, "GET %s", k), 0);
	assert_string_equal(out, val);
	kv_rc_close(rc);
}

/* kv_rc_open() with conf fails with an error (which in *err) well inside
 * its deadline, however many times it is tried. */
static void open_fails(struct kv_rc_conf *conf, int *err)
{
	for (int i = 0; i < 3; i++) {
		struct kv_rc *rc = NULL;
		uint64_t t0 = kvt_now_ns();
		int ret = kv_rc_open(&rc, conf);
		uint64_t ns = kvt_now_ns() - t0;

		assert_int_not_equal(ret, 0);
		assert_null(rc);
		if (ns > FAST_NS)
			fail_msg("open failed with %s after %llu ms", kv_strerror(ret),
				 (unsigned long long)(ns / 1000000));
		*err = ret;
	}
}

static void test_wrong_ca(void **state)
{
	struct kv_rc_conf conf = tls_conf(1);
	int err = 0;

	(void)state;
	conf.tls_ca_file = other_ca;
	open_fails(&conf, &err);
	assert_int_equal(err, -ECONNABORTED);
}

static void test_no_client_cert(void **state)
{
	struct kv_rc_conf conf = tls_conf(1);
	int err = 0;

	(void)state;
	conf.tls_cert_file = conf.tls_key_file = NULL;
	open_fails(&conf, &err);
	/* TLS 1.3: the server's alert comes after the client's handshake. */
	assert_true(err == -ECONNABORTED || err == -ECONNRESET);
}

static void test_plain_to_tls(void **state)
{
	struct kv_rc_conf conf = {
		.seeds = cl.seeds,
		.timeout_ms = TIMEOUT_MS,
		.conns = 1,
	};
	int err = 0;

	(void)state;
	open_fails(&conf, &err);
	assert_true(err == -ECONNRESET || err == -EPROTO);
}

static void test_bad_files(void **state)
{
	struct kv_rc_conf conf = tls_conf(1);
	struct kv_rc *rc = NULL;
	char none[400];

	(void)state;
	snprintf(none, sizeof(none), "%s/none.crt", cl.tls);
	conf.tls_ca_file = none;
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	assert_int_equal(kv_rc_tls_check(&conf), -EINVAL);
	conf.tls_ca_file = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	conf = tls_conf(1);
	conf.tls_key_file = NULL;
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	conf = tls_conf(1);
	conf.tls_key_file = ca;		/* not a key */
	assert_int_equal(kv_rc_open(&rc, &conf), -EINVAL);
	assert_null(rc);
	conf = tls_conf(1);
	assert_int_equal(kv_rc_tls_check(&conf), 0);
	conf.tls = false;
	conf.tls_ca_file = none;	/* not looked at without tls */
	assert_int_equal(kv_rc_tls_check(&conf), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_moved),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_plain_to_tls),
		cmocka_unit_test(test_bad_files),
	};

	/* Not ignored: the client must not die of a peer that hangs up. */
	signal(SIGPIPE, SIG_DFL);
	return cmocka_run_group_tests(tests, setup, teardown);
}
