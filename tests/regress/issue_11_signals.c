/*
 * issue_11_signals.c - issue 11: "SIGHUP kills the daemon with no
 * write-back, no log line, and the socket file left behind". SIGHUP now
 * reopens log_file (for logrotate) and never ends the process; without
 * log_file it logs one line and carries on.
 *
 * Run: KVSTORED=$PWD/build/kvstored build/tests/regress/issue_11_signals
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/tmpdir.h"

/* Wait up to 2 s for needle in path. */
static bool file_gets(const char *path, const char *needle)
{
	for (int i = 0; i < 200; i++) {
		if (kvt_file_has(path, needle))
			return true;
		usleep(10000);
	}
	return false;
}

static void expect_serves(const struct kvt_daemon *d)
{
	struct kvc *c;

	assert_int_equal(kvc_connect(d->sock, &c), 0);
	assert_int_equal(kvc_ping(c, NULL), 0);
	kvc_close(c);
}

static void test_sighup_without_log_file(void **state)
{
	struct kvt_daemon d;
	struct kvc *c;

	assert_int_equal(kvt_start(&d, NULL), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kill(d.pid, SIGHUP), 0);
		usleep(100000);
	}
	assert_true(kvt_alive(&d));
	assert_int_equal(kvc_ping(c, NULL), 0);	/* the same connection */
	kvc_close(c);
	assert_true(file_gets(d.log, "hangup: no log_file to reopen"));
	expect_serves(&d);
	assert_int_equal(kvt_stop(&d), 0);
}

static void test_sighup_reopens_log_file(void **state)
{
	char dir[] = "/tmp/kvt11log.XXXXXX";
	char logf[64], rotated[64];
	const char *args[] = { "--log-file", logf, NULL };
	struct kvt_daemon d;

	assert_int_equal(kvt_tmpdir(dir, sizeof(dir), "/tmp", "kvt11log."), 0);
	snprintf(logf, sizeof(logf), "%s/kvstored.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/kvstored.log.1", dir);
	assert_int_equal(kvt_start(&d, args), 0);
	assert_true(kvt_file_has(logf, "kvstored ready"));

	/* logrotate: move the file away, then SIGHUP */
	assert_int_equal(rename(logf, rotated), 0);
	assert_int_equal(kill(d.pid, SIGHUP), 0);
	assert_true(file_gets(logf, "hangup: reopened log file"));
	assert_true(kvt_alive(&d));
	expect_serves(&d);
	assert_true(file_gets(logf, "connected"));
	assert_false(kvt_file_has(rotated, "hangup"));
	assert_true(kvt_file_has(rotated, "kvstored ready"));

	/* A clean stop still writes its last lines there. */
	assert_int_equal(kvt_stop(&d), 0);
	assert_true(kvt_file_has(logf, "stopped"));
	assert_int_equal(kvt_rmtree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sighup_without_log_file),
		cmocka_unit_test(test_sighup_reopens_log_file),
	};

	if (getenv("KVT_ONLY"))		/* one case: KVT_ONLY=test_name */
		cmocka_set_test_filter(getenv("KVT_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
