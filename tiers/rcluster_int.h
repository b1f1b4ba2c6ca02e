/*
 * rcluster_int.h - what rcluster.c (routing, the map, the API) and
 * rcluster_wire.c (connections, RESP in and out) share. Nothing outside
 * tiers/rcluster*.c includes it.
 *
 * A run is a series of rounds. In a round, rcluster.c queues requests on
 * connections (rc_conn_push()), then rc_pump() sends them all and reads
 * until every queued request on every connection has its reply, its
 * connection failed, or the deadline passed. Replies other than a GET's
 * payload come back through rc_reply(); failures through rc_req_fail().
 */
#ifndef KV_RCLUSTER_INT_H
#define KV_RCLUSTER_INT_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "tiers/rcluster.h"

#define RC_NODES_MAX	256u		/* nodes a cluster can make us know */
#define RC_HOST_MAX	255u
#define RC_ADDR_MAX	(RC_HOST_MAX + 9)	/* "host:port" or "[v6]:port" */
#define RC_REPLY_MAX	(4u << 20)	/* any reply but a GET's payload */
#define RC_LINE_MAX	4096u		/* a status, error or length line */
#define RC_ARRAY_MAX	65536		/* elements of one array */
#define RC_DEPTH_MAX	8		/* arrays nested */
#define RC_RBUF_MIN	(64u << 10)	/* receive buffer, grown to RC_REPLY_MAX */
#define RC_TBUF		(16u << 10)	/* TLS: small segments gathered, one record */

/* A command's result while the run is still working on it. */
#define RC_PENDING	1		/* to be sent (again) */
#define RC_REDIRECT	2		/* -MOVED or -ASK: sent again next round */

enum rc_kind {
	RQ_CMD,				/* rc->cmds[cmd] */
	RQ_ASKING,			/* ASKING before the command after it */
	RQ_AUTH,
	RQ_SLOTS,			/* CLUSTER SLOTS */
};

struct rc_req {
	uint32_t cmd;			/* RQ_CMD: index in rc->cmds */
	uint8_t kind;			/* enum rc_kind */
};

enum rc_rd {
	RD_REPLY,			/* at the start of a reply */
	RD_PAYLOAD,			/* a GET's payload, into the caller's buffer */
	RD_SKIP,			/* a GET's payload longer than cap, dropped */
	RD_TRAILER,			/* the CRLF after a payload */
};

struct rc_conn {
	struct rc_node *node;
	int fd;				/* -1 while closed */
	bool connecting;		/* connect() in progress */
	bool active;			/* on rc->active this round */
	/* TLS (rc->ssl_ctx): the handshake follows the connect. */
	SSL *ssl;			/* NULL: plain TCP */
	bool handshaking;		/* SSL_do_handshake() not done yet */
	bool want_write;		/* the last SSL call wants POLLOUT */
	/* This round's requests; replies come in order, reqs[head] next. */
	struct rc_req *reqs;
	size_t n_reqs;
	size_t head;
	size_t reqs_cap;
	/* What to send: iov[iov_pos..n_iov), headers in hdr. */
	struct iovec *iov;
	size_t n_iov;
	size_t iov_pos;
	size_t iov_cap;
	char *hdr;
	size_t hdr_cap;
	/* TLS: segments under RC_TBUF gathered into tbuf[toff..tlen), sent
	 * before iov[iov_pos]; an SSL_write() that would block is retried
	 * with the same bytes. */
	char *tbuf;
	size_t toff;
	size_t tlen;
	/* Received bytes not yet parsed: rbuf[rpos..rend). */
	char *rbuf;
	size_t rpos;
	size_t rend;
	size_t rcap;
	uint8_t rd;			/* enum rc_rd, for reqs[head] */
	int rd_res;			/* the GET's result once its CRLF is read */
	uint64_t left;			/* payload bytes still to come */
	uint64_t got;			/* payload bytes landed */
};

struct rc_node {
	char addr[RC_ADDR_MAX + 1];	/* "host:port", as the cluster names it */
	char host[RC_HOST_MAX + 1];
	struct sockaddr_storage sa;
	socklen_t sa_len;		/* 0: the name did not resolve */
	struct rc_conn *conns;		/* rc->n_conns of them */
	unsigned rr;			/* next connection, round-robin */
	unsigned slots;			/* slots the map gives it */
	uint64_t retry_ns;		/* in back-off until then */
	unsigned backoff_ms;		/* the back-off after the next failure */
	int err;			/* the failure that started the back-off */
};

/* Per command of a run: where an -ASK sent it, and how often it moved. */
struct rc_wait {
	struct rc_node *ask;
	unsigned redirects;
};

struct kv_rc {
	char *seeds;
	char *user;
	char *password;
	unsigned timeout_ms;
	unsigned n_conns;
	SSL_CTX *ssl_ctx;		/* NULL: plain TCP */
	struct rc_node *nodes[RC_NODES_MAX];
	unsigned n_nodes;
	struct rc_node *slots[KV_RC_SLOTS];
	struct rc_node *next[KV_RC_SLOTS];	/* a map being loaded */
	/* The run in progress. */
	struct kv_rc_cmd *cmds;
	size_t n_cmds;
	struct rc_wait *wait;
	size_t wait_cap;
	/* The round in progress. */
	struct rc_conn **active;
	size_t n_active;
	size_t active_cap;
	struct pollfd *pfd;
	size_t pfd_cap;
	redisReader *reader;
	/* The map. */
	bool stale;			/* refresh when allowed */
	bool moved;			/* a MOVED this run: refresh now */
	uint64_t next_refresh_ns;	/* no refresh for errors before then */
	unsigned refresh_rr;		/* the node asked first next time */
	int slots_res;			/* a CLUSTER SLOTS' outcome */
	struct kv_rc_stats st;
};

uint64_t rc_now_ns(void);

/* Queue a request on c (opening it when closed: a failure to start the
 * connect is returned, and marks the node down). 0, -ENOMEM or -errno. */
int rc_conn_push(struct kv_rc *rc, struct rc_conn *c, uint8_t kind, uint32_t cmd);

/* Send every queued request and read every reply, until done or the
 * deadline (requests still waiting then fail with -ETIMEDOUT). */
void rc_pump(struct kv_rc *rc, uint64_t deadline);

/* TLS: a client context from conf (CA, client certificate and key
 * loaded) in *out, the caller's. 0, -EINVAL (logged: no CA file, a file
 * that does not load, a certificate without its key) or -ENOMEM. */
int rc_tls_ctx(SSL_CTX **out, const struct kv_rc_conf *conf);

/* Close c (its queued requests must be finished or failed first). */
void rc_conn_close(struct rc_conn *c);

/* rcluster.c: a reply (not a GET's bulk) for rq. Returns 0, or a negative
 * error that ends the connection (-EPROTO: the reply made no sense). */
int rc_reply(struct kv_rc *rc, struct rc_conn *c, const struct rc_req *rq,
	     const redisReply *r);

/* rcluster.c: rq failed with err (its connection is going). */
void rc_req_fail(struct kv_rc *rc, const struct rc_req *rq, int err);

/* rcluster.c: a request on node succeeded, or its connection failed. */
void rc_node_ok(struct rc_node *node);
void rc_node_failed(struct kv_rc *rc, struct rc_node *node, int err);

#endif
