/*
 * server.h - the control plane: a Unix stream socket on a libevent loop.
 *
 * Accepts connections (mode 0600 socket, SO_PEERCRED against the
 * allow-list, a connection limit), reads length-prefixed frames, checks
 * them with lib/proto.h, runs them against the store and answers. A
 * malformed frame gets an error reply and its connection is closed; the
 * daemon goes on serving everyone else. Everything a connection holds in
 * the store is let go when it closes.
 *
 * Deadlines and memory: a connection must send HELLO within
 * hello_timeout_ms, and before it may send nothing else (its header is
 * checked as soon as it arrives); a frame once begun must be complete
 * within frame_timeout_ms; an allocation not committed within
 * alloc_lease_ms is aborted. All connections together hold at most
 * max_client_memory bytes of buffers beyond a small allowance each; a
 * request that would need more is answered KV_EMEMORY. One timer sweeps
 * every connection a few times per shortest deadline.
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
	uint64_t max_client_memory;	/* bytes all connections may buffer
					 * beyond their own first 32 KiB */
	uint32_t hello_timeout_ms;	/* 0: none */
	uint32_t frame_timeout_ms;	/* 0: none */
	uint32_t alloc_lease_ms;	/* 0: none */
};

/*
 * One daemon per socket: take a write lock (fcntl) on '<socket_path>.lock',
 * created 0644 when missing, and write this process's pid into it. Returns
 * the lock's descriptor (close-on-exec; the lock lasts until it is closed
 * or the process ends), or -KV_ELOCKED after logging "cannot use '<socket>':
 * kvstored pid N holds it", or another negative error (logged). Take it
 * before kv_server_open(), which removes a stale socket file, so no two
 * daemons starting at once can remove each other's socket.
 */
int kv_server_lock(const char *socket_path);

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
