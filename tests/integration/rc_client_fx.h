/*
 * rc_client_fx.h - what the programs that test the Redis Cluster client
 * directly (test_rcluster, test_rcluster_tls) share (rc_client_fx.c). The
 * functions fail the running cmocka test on any error.
 */
#ifndef KVT_RC_CLIENT_FX_H
#define KVT_RC_CLIENT_FX_H

#include <stddef.h>

#include "tiers/rcluster.h"

/* Run n commands; every one must succeed. */
void run_ok(struct kv_rc *rc, struct kv_rc_cmd *cmds, size_t n);

/* The port of a "host:port". */
unsigned addr_port(const char *addr);

#endif
