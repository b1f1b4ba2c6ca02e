/*
 * rcluster.h - a small Redis Cluster client: slot routing, pipelining and
 * deadlines for the commands the remote tier needs (GET, SET, EXISTS, DEL,
 * GETRANGE), with values moved without copies: a GET's payload is read from the
 * socket straight into the caller's buffer, a SET's value is written with
 * sendmsg() from the caller's iovecs.
 *
 * Routing follows the Redis Cluster specification: a key's slot is the
 * CRC16 (XMODEM) of the key, or of its {hash tag}, modulo 16384; the slot
 * map comes from CLUSTER SLOTS; -MOVED updates the slot, schedules a full
 * refresh of the map and retries on the named node; -ASK sends ASKING and
 * retries once on the named node. A command is redirected at most
 * KV_RC_MAX_REDIRECTS times.
 *
 * Connections: conf->conns non-blocking sockets per node, opened when
 * first needed and driven with poll() inside kv_rc_run(); commands for one
 * node are spread over its connections round-robin and pipelined. A
 * connection that fails (refused, reset, timed out, a reply that breaks
 * the protocol) is closed, and its node is not tried again for a short
 * back-off (100 ms, doubling to 2 s while it keeps failing): its commands
 * fail at once with the error that closed it. The map is refreshed, from
 * any node that answers, after a MOVED and (at most every 200 ms) after a
 * connection error, so a promoted replica is found.
 *
 * What a peer controls is bounded: a bulk length (512 MiB, Redis's own
 * proto-max-bulk-len), any reply other than a GET's payload (4 MiB, of
 * which arrays of at most 65536 elements, nested at most 8 deep), status
 * and error lines (4 KiB), the nodes it can make us know (256), and the
 * time (every call's deadline). A reply that breaks these rules or RESP
 * itself ends its connection with -EPROTO; nothing a peer sends crashes
 * the client or makes it allocate more than these bounds.
 *
 * TLS (conf->tls, OpenSSL): each connection's handshake runs in the poll
 * loop after its connect; the peer must present a certificate the CA file
 * vouches for, naming the node's host or IP address. A handshake that
 * fails is a failed connection (-ECONNABORTED) like any other: the node
 * goes into back-off and the reason is logged once per outage. SIGPIPE is
 * blocked in the calling thread while a TLS run writes.
 *
 * Locking: none. One thread uses a struct kv_rc at a time; it is meant for
 * the remote tier's I/O thread, which may block in kv_rc_run() up to its
 * deadline, never for the daemon's loop thread. Host names in seeds and in
 * the cluster's answers are resolved (getaddrinfo, blocking) when a node
 * is first seen.
 *
 * Ownership: the client owns its sockets, nodes and map; a command's key,
 * iovecs and buffer are borrowed for the length of the kv_rc_run() call.
 */
#ifndef KV_RCLUSTER_H
#define KV_RCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define KV_RC_SLOTS		16384u
#define KV_RC_MAX_REDIRECTS	5u
#define KV_RC_KEY_MAX		(64u << 10)	/* longest key kv_rc_run() takes */
#define KV_RC_VALUE_MAX		(512ull << 20)	/* longest value, either way */
#define KV_RC_CONNS_MAX		64u

struct kv_rc;				/* opaque: one cluster */

struct kv_rc_conf {			/* public: callers fill it in */
	const char *seeds;		/* "host:port,host:port,..." (IPv4,
					 * [IPv6]:port, names); copied */
	const char *user;		/* NULL: AUTH with the password alone */
	const char *password;		/* NULL: no AUTH; copied, never logged */
	unsigned timeout_ms;		/* deadline of open and of each run, > 0 */
	unsigned conns;			/* connections per node, 1..64 */
	/* TLS: every connection, the server's certificate checked against
	 * the CA file and the node's name or IP address. */
	bool tls;
	const char *tls_ca_file;	/* PEM, needed with tls */
	const char *tls_cert_file;	/* PEM client certificate (chain), or
					 * NULL; needs tls_key_file */
	const char *tls_key_file;	/* PEM key of tls_cert_file, or NULL */
};

/*
 * Parse the seeds, connect to the first that answers and load the slot
 * map. Returns 0 and stores the client in *out (the caller owns it, frees
 * it with kv_rc_close()), or, with *out untouched: -EINVAL (a bad conf or
 * seed list; with tls, a CA file, certificate or key that does not load,
 * logged), -ENOMEM, -EACCES (AUTH refused), -ETIMEDOUT (no seed
 * answered in time), -EHOSTUNREACH (a seed name does not resolve), or the
 * error of the last seed tried (-ECONNREFUSED, -EPROTO, ...).
 */
int kv_rc_open(struct kv_rc **out, const struct kv_rc_conf *conf);

/* With conf->tls, load conf's CA file, certificate and key as
 * kv_rc_open() would, and drop them: 0, -EINVAL (logged) or -ENOMEM.
 * Without, 0. Lets a caller that connects later refuse a bad conf now. */
int kv_rc_tls_check(const struct kv_rc_conf *conf);

/* Close every connection and free the client. Accepts NULL. */
void kv_rc_close(struct kv_rc *rc);

/* The slot of a key: CRC16 of the key or its first non-empty {hash tag},
 * modulo 16384. */
unsigned kv_rc_slot(const void *key, size_t len);

enum kv_rc_op {
	KV_RC_GET,
	KV_RC_SET,
	KV_RC_EXISTS,
	KV_RC_DEL,
	KV_RC_GETRANGE,			/* GET's reply of bytes [start, end] */
};

struct kv_rc_cmd {
	uint8_t op;			/* enum kv_rc_op */
	const void *key;		/* borrowed; key_len <= KV_RC_KEY_MAX */
	size_t key_len;
	const struct iovec *iov;	/* SET: the value, sent as is (borrowed) */
	unsigned iovcnt;
	void *buf;			/* GET: where the value lands (borrowed) */
	size_t cap;			/* GET: buf's size */
	uint64_t start, end;		/* GETRANGE: the bytes, inclusive (a
					 * missing key reads as 0 bytes) */
	size_t len;			/* out, GET: the value's length (also set
					 * with -EMSGSIZE) */
	int result;			/* out, see kv_rc_run() */
};

/*
 * Run n commands, pipelined per node, under one deadline (timeout_ms from
 * the call); block until every command has a result in cmd->result:
 *   0			done (GET, GETRANGE: the value is in buf[0..len); EXISTS, DEL:
 *			the key existed)
 *   -ENOENT		GET of a missing key, EXISTS or DEL found none
 *   -EMSGSIZE		GET: the value is longer than cap (len says how long);
 *			the payload is read and dropped, the connection kept
 *   -ETIMEDOUT		the deadline passed first
 *   -EIO		an error reply (-ERR, -CLUSTERDOWN, ...), or too many
 *			redirects
 *   -EPROTO		the reply broke the protocol or a bound above; that
 *			connection is dropped
 *   -EHOSTUNREACH	no node serves the key's slot in the map
 *   -EACCES		AUTH was refused
 *   -ECONNREFUSED, -ECONNRESET, ...	the node's connection failed now or
 *			within its back-off
 * Returns 0, or -EINVAL with no command run: a NULL cmds with n > 0, an
 * unknown op, a key or value over its limit, a NULL buffer with a length.
 * A GET whose result is not 0 may have written to buf.
 */
int kv_rc_run(struct kv_rc *rc, struct kv_rc_cmd *cmds, size_t n);

struct kv_rc_stats {
	uint64_t commands;		/* commands run to a result */
	uint64_t moved;			/* -MOVED replies followed */
	uint64_t asks;			/* -ASK replies followed */
	uint64_t timeouts;		/* commands that ended in -ETIMEDOUT */
	uint64_t proto_errors;		/* connections dropped for -EPROTO */
	uint64_t conn_errors;		/* connections that failed otherwise */
	uint64_t connects;		/* connections opened (the first and
					 * every reconnect) */
	uint64_t refreshes;		/* slot maps loaded */
	uint64_t refresh_failures;	/* refreshes no node answered */
	unsigned nodes;			/* nodes known */
	unsigned masters;		/* nodes serving slots in the map */
	unsigned masters_down;		/* of those, in back-off after a failure */
};

void kv_rc_stats(const struct kv_rc *rc, struct kv_rc_stats *out);

struct kv_rc_node_info {
	const char *addr;		/* "host:port", valid during the callback */
	unsigned slots;			/* slots the map gives it (0: not a master) */
	unsigned conns_open;		/* its connections open now */
	int state;			/* 0: up or never tried; else the error of
					 * its last failure, while in back-off */
};

/* Call fn once per known node, in the order they became known. */
void kv_rc_nodes(const struct kv_rc *rc,
		 void (*fn)(void *arg, const struct kv_rc_node_info *ni), void *arg);

/* The "host:port" of the node serving slot in the map as last seen, or
 * NULL when none does (slot >= 16384, or a hole). Valid until the next
 * kv_rc_run() or kv_rc_close(). */
const char *kv_rc_slot_owner(const struct kv_rc *rc, unsigned slot);

#endif
