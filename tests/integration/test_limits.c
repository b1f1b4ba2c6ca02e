/*
 * test_limits.c - overload and tenants (TESTING.md plans 7 and 8) against
 * a live daemon: each limit answers its own error code and the daemon
 * keeps serving; users not on the allow-list are refused; a user cannot
 * see or take another user's namespace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"

#define NOBODY 65534

static void must_stop(struct kvt_daemon *d)
{
	assert_int_equal(kvt_stop(d), 0);
}

/* A close is seen by the daemon a moment after kvc_close() returns. */
static void wait_unpinned(struct kvc *c)
{
	struct kvc_stats st;

	for (int i = 0; i < 100; i++) {
		assert_int_equal(kvc_stats(c, &st), 0);
		if (st.pinned_chunks == 0 && st.pending_chunks == 0)
			return;
		usleep(10000);
	}
	fail_msg("pins still held 1 s after their connection closed");
}

static void test_connection_limit(void **state)
{
	const char *args[] = { "--max-conns", "4", NULL };
	struct kvc *c[5] = { 0 };
	struct kvt_daemon d;

	assert_int_equal(kvt_start(&d, args), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kvc_connect(d.sock, &c[i]), 0);
	assert_int_equal(kvc_connect(d.sock, &c[4]), -KVC_ECONNS);
	assert_true(kvt_log_has(&d, "limit of 4 connections"));
	kvc_close(c[0]);
	/* The daemon sees the close and takes the next one. */
	for (int i = 0; i < 100; i++) {
		if (kvc_connect(d.sock, &c[0]) == 0)
			break;
		c[0] = NULL;
		usleep(10000);
	}
	assert_non_null(c[0]);
	assert_int_equal(kvc_ping(c[0], NULL), 0);
	for (int i = 0; i < 4; i++)
		kvc_close(c[i]);
	must_stop(&d);
}

static void test_peer_not_allowed(void **state)
{
	const char *args[] = { "--allow-uids", "12345", NULL };
	struct kvt_daemon d;
	struct kvc *c = NULL;

	/* Up, but it refuses us: kvt_spawn only waits for the socket. */
	assert_int_equal(kvt_spawn(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), -KVC_EPEER);
	assert_true(kvt_log_has(&d, "refused connection from uid 0"));
	assert_true(kvt_log_has(&d, "not on the allow-list"));
	must_stop(&d);

	{
		const char *ok[] = { "--allow-uids", "12345,0", NULL };

		assert_int_equal(kvt_start(&d, ok), 0);
		assert_int_equal(kvc_connect(d.sock, &c), 0);
		kvc_close(c);
		must_stop(&d);
	}
}

static int as_nobody(int (*fn)(const char *), const char *sock)
{
	return kvt_as_user(NOBODY, fn, sock);
}

static int connect_expect_eacces(const char *sock)
{
	struct kvc *c;

	return kvc_connect(sock, &c) == -EACCES ? 0 : 1;
}

static int connect_expect_epeer(const char *sock)
{
	struct kvc *c;

	return kvc_connect(sock, &c) == -KVC_EPEER ? 0 : 1;
}

static int tenant_nobody(const char *sock)
{
	struct kvc_entry e[16];
	struct kvc_key k = { 1, 1 };
	uint64_t cursor = 0, v = 42;
	struct kvc *c;
	uint32_t ns;
	int n;

	if (kvc_connect(sock, &c))
		return 1;
	if (kvc_ns_register(c, "root/model", &ns) != -EACCES)
		return 2;
	if (kvc_ns_register(c, "nobody/model", &ns))
		return 3;
	if (kvc_put(c, ns, &k, NULL, 1, 0, &v, sizeof(v)))
		return 4;
	/* Only its own namespace's chunk shows in a listing of all. */
	n = kvc_ls(c, KVC_NS_ALL, KVC_TIER_NONE, &cursor, e, 16);
	if (n != 1 || e[0].ns != ns)
		return 5;
	/* Another namespace's id, not registered here, is refused. */
	if (kvc_lookup(c, 0, &k, 1, NULL) != -KVC_ENONS)
		return 6;
	kvc_close(c);
	return 0;
}

static void test_socket_mode_and_tenants(void **state)
{
	const char *args[] = { "--allow-uids", "0," "65534", NULL };
	struct kvt_daemon d;
	struct kvc *c;
	struct stat st;
	struct kvc_key k = { 1, 1 };
	uint64_t v = 7;
	uint32_t ns;

	if (geteuid() != 0)
		skip();		/* needs to become another user */
	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(stat(d.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	chmod(d.dir, 0755);
	/* Mode 0600: another user cannot even connect. */
	assert_int_equal(as_nobody(connect_expect_eacces, d.sock), 0);

	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "root/model", &ns), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(kvc_put(c, ns, &k, NULL, 1, 0, &v, sizeof(v)), 0);
	/* Let nobody reach the socket; the daemon's checks must hold alone. */
	chmod(d.sock, 0666);
	assert_int_equal(as_nobody(tenant_nobody, d.sock), 0);
	kvc_close(c);
	must_stop(&d);

	/* Not on the allow-list at all: refused at accept, with the reason. */
	assert_int_equal(kvt_start(&d, NULL), 0);
	chmod(d.dir, 0755);
	chmod(d.sock, 0666);
	assert_int_equal(as_nobody(connect_expect_epeer, d.sock), 0);
	assert_true(kvt_log_has(&d, "refused connection from uid 65534"));
	must_stop(&d);
}

static void test_per_connection_limits(void **state)
{
	const char *args[] = { "--max-pins", "3", "--max-uncommitted", "3M",
			       "--dram-bytes", "9M", NULL };
	struct kvc_put_desc pd[2];
	struct kvc_loc loc[4];
	struct kvc_key k[4];
	struct kvt_daemon d;
	struct kvc *c, *c2;
	void *ptrs[2];
	uint32_t ns;
	char buf[4096] = { 0 };
	int st[4];

	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "limits", &ns), 0);
	for (int i = 0; i < 4; i++) {
		k[i] = (struct kvc_key){ (uint64_t)i, 9 };
		assert_int_equal(kvc_put(c, ns, &k[i], NULL, 1, 0, buf, sizeof(buf)), 0);
	}
	/* Pins: three, then KVC_EPINS, and a release makes room. */
	assert_int_equal(kvc_pin(c, ns, k, 4, loc), 0);
	assert_int_equal(loc[2].status, 0);
	assert_int_equal(loc[3].status, -KVC_EPINS);
	assert_int_equal(kvc_release(c, ns, k, 1, st), 0);
	assert_int_equal(st[0], 0);
	assert_int_equal(kvc_pin(c, ns, &k[3], 1, loc), 0);
	assert_int_equal(loc[0].status, 0);
	/* Uncommitted bytes: 2 MiB fits, another 2 MiB does not. */
	memset(pd, 0, sizeof(pd));
	pd[0].key = (struct kvc_key){ 100, 9 };
	pd[1].key = (struct kvc_key){ 101, 9 };
	pd[0].bytes = pd[1].bytes = 2u << 20;
	assert_int_equal(kvc_alloc(c, ns, pd, 2, ptrs), 1);
	assert_int_equal(pd[1].status, -KVC_EUNCOMMITTED);
	/* Larger than the tier. */
	pd[1].bytes = 10u << 20;
	assert_int_equal(kvc_alloc(c, ns, &pd[1], 1, ptrs), 0);
	assert_int_equal(pd[1].status, -KVC_ETOOBIG);
	assert_int_equal(kvc_abort(c, ns, &pd[0].key, 1, st), 1);

	kvc_close(c);	/* its pins and allocation go with it */

	/* Everything pinned: a put gets KVC_EFULL at once, no hang. Four
	 * 2 MiB chunks fill the 9 MiB tier (a fifth cannot fit in what is
	 * left); two clients pin them all (three pins each at most). */
	{
		static char big[2u << 20];
		struct kvc_key bk[5];
		struct kvc *c3;
		uint32_t ns3;

		assert_int_equal(kvc_connect(d.sock, &c2), 0);
		assert_int_equal(kvc_ns_register(c2, "limits", &ns), 0);
		assert_int_equal(kvc_connect(d.sock, &c3), 0);
		assert_int_equal(kvc_ns_register(c3, "limits", &ns3), 0);
		wait_unpinned(c2);
		for (int i = 0; i < 5; i++)
			bk[i] = (struct kvc_key){ 200 + (uint64_t)i, 9 };
		for (int i = 0; i < 4; i++)
			assert_int_equal(kvc_put(c2, ns, &bk[i], NULL, 1, 0, big,
						 sizeof(big)), 0);
		assert_int_equal(kvc_pin(c2, ns, bk, 3, loc), 0);
		assert_int_equal(kvc_pin(c3, ns3, &bk[3], 1, &loc[3]), 0);
		for (int i = 0; i < 4; i++)
			assert_int_equal(loc[i].status, 0);
		assert_int_equal(kvc_put(c2, ns, &bk[4], NULL, 1, 0, big, sizeof(big)),
				 -KVC_EFULL);
		/* Unpinned again, the put evicts and succeeds. */
		kvc_close(c3);
		assert_int_equal(kvc_release(c2, ns, bk, 3, NULL), 0);
		wait_unpinned(c2);
		assert_int_equal(kvc_put(c2, ns, &bk[4], NULL, 1, 0, big, sizeof(big)), 0);
		assert_int_equal(kvc_lookup(c2, ns, &bk[4], 1, NULL), 1);
	}
	kvc_close(c2);
	must_stop(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_peer_not_allowed),
		cmocka_unit_test(test_socket_mode_and_tenants),
		cmocka_unit_test(test_per_connection_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
