/*
 * server.h - the control plane: a Unix stream socket on a libevent loop.
 *
 * Accepts connections (mode 0600 socket, SO_PEERCRED against the
 * allow-list, a connection limit), reads length-prefixed frames, checks
 * them with kvstore/proto.h, runs them against the store and answers. A
 * malformed frame gets an error reply and its connection is closed; the
 * daemon goes on serving everyone else. Everything a connection holds in
 * the store is let go when it closes.
 *
 * Locking: none; everything runs on the loop thread of base.
 */
#ifndef KV_SERVER_H
#define KV_SERVER_H

#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct kv_store;
struct kv_server;		/* opaque */

struct kv_server_conf {
	const char *socket_path;
	const char *socket_group;	/* NULL or "": mode 0600 */
	uint32_t max_conns;
	uint32_t max_msg;		/* body bytes */
	uint32_t max_batch;		/* keys per message */
	uint32_t max_namespaces;
	uint32_t max_pins;		/* reported in HELLO */
	uint64_t max_uncommitted;	/* reported in HELLO */
	const char *codec_ns;		/* SSD codec per namespace name prefix
					 * (kv_codec_for()); NULL: none */
};

/*
 * Create the socket (refusing to replace a live daemon's, removing a stale
 * one) and start accepting on base. Returns 0 and stores the server in
 * *out, or a negative error (logged) with *out untouched. The store is
 * borrowed and must outlive the server.
 */
int kv_server_open(struct kv_server **out, const struct kv_server_conf *conf,
		   struct kv_store *store, struct event_base *base);

/* Close every connection (releasing their holdings), stop listening and
 * remove the socket file. Accepts NULL. */
void kv_server_close(struct kv_server *srv);

#endif
