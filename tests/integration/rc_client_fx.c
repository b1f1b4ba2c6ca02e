/*
 * rc_client_fx.c - helpers of the Redis Cluster client's tests
 * (rc_client_fx.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "tests/integration/rc_client_fx.h"

void run_ok(struct kv_rc *rc, struct kv_rc_cmd *cmds, size_t n)
{
	assert_int_equal(kv_rc_run(rc, cmds, n), 0);
	for (size_t i = 0; i < n; i++)
		if (cmds[i].result)
			fail_msg("command %zu: %s", i, kv_strerror(cmds[i].result));
}

unsigned addr_port(const char *addr)
{
	const char *colon = strrchr(addr, ':');

	assert_non_null(colon);
	return (unsigned)atoi(colon + 1);
}
