/*
 * test_cluster_tls.c - the remote tier over TLS (docs/cluster.md, "TLS"):
 * two daemons on one TLS-only Redis Cluster (tests/lib/rcluster.sh with
 * RC_TLS_DIR; the nodes require a client certificate), started with
 * --remote rediss-cluster://... and the --remote-tls-* files:
 *  - share: B reads byte-exact every chunk A put (1 byte to 64 KiB, keys
 *    over all slots), from the cluster, with no connection error;
 *  - refusals: rediss-cluster:// without a CA file, a certificate without
 *    its key, and a CA file that does not load each stop the daemon at
 *    start with a message that says why.
 * Needs redis-server, redis-cli and openssl (scripts/deps.sh test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "client/kvc.h"
#include "tests/integration/cluster_fx.h"
#include "tests/integration/harness.h"
#include "tests/lib/rcluster_fx.h"

#define NSHARE		500

static char ca[320], cert[320], key[320];

static int setup(void **state)
{
	if (cluster_setup_tls(state))
		return -1;
	snprintf(ca, sizeof(ca), "%s/ca.crt", cl.tls);
	snprintf(cert, sizeof(cert), "%s/client.crt", cl.tls);
	snprintf(key, sizeof(key), "%s/client.key", cl.tls);
	return 0;
}

static void test_share(void **state)
{
	const char *const tls[] = { "--remote-tls-ca-file", ca, "--remote-tls-cert-file", cert,
				    "--remote-tls-key-file", key, NULL };
	struct kvt_daemon d;
	struct kvc *c;

	(void)state;
	share(tls, NSHARE);
	/* It was TLS: the daemon says so. */
	c = start(&d, tls);
	assert_true(kvt_log_has(&d, "over TLS"));
	stop(&d, c);
}

/* A daemon with args exits 2 at start, its log saying why. */
static void refused(const char *const *args, const char *why)
{
	struct kvt_opts o = { .no_wait = true };
	struct kvt_daemon d;
	int st;

	assert_int_equal(kvt_start_opts(&d, args, &o), 0);
	st = kvt_wait_exit(&d, 10000);
	if (st <= 0 || !kvt_log_has(&d, why)) {
		kvt_dump_log(&d);
		fail_msg("exit %d, want non-zero and '%s' in the log", st, why);
	}
	kvt_cleanup(&d);
}

static void test_refusals(void **state)
{
	char none[400];

	(void)state;
	snprintf(none, sizeof(none), "%s/none.crt", cl.tls);
	refused((const char *const[]){ "--remote", remote, NULL }, "needs remote_tls_ca_file");
	refused((const char *const[]){ "--remote", remote, "--remote-tls-ca-file", ca,
				       "--remote-tls-cert-file", cert, NULL },
		"remote_tls_cert_file and remote_tls_key_file go together");
	refused((const char *const[]){ "--remote", remote, "--remote-tls-ca-file", none,
				       NULL },
		"cannot load the TLS CA file");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, cluster_teardown);
}
