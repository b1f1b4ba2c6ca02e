/*
 * server_int.h - what kvstore/server.c (connections and the loop),
 * kvstore/handlers.c (one function per op) and kvstore/park.c (requests
 * that wait for the store) share, and nothing else includes: the
 * connection and the server, and the helpers that answer a request.
 *
 * Contracts between them: server.c reads frames and calls
 * kv_handle_frame() with each whole one; a handler answers with reply(),
 * parks (park.h), or sets c->closing (HELLO refused), and never frees the
 * connection itself: kv_handle_frame() closes it (kv_conn_end()) once the
 * handler returns. When a parked frame is answered on its replay, park.c
 * hands the connection back to server.c with kv_conn_answered().
 *
 * Locking: none; everything runs on the loop thread of the server's base.
 */
#ifndef KV_SERVER_INT_H
#define KV_SERVER_INT_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "kvstore/park.h"
#include "kvstore/server.h"
#include "lib/proto.h"

struct event;
struct kv_ns_table;
struct kv_owner;

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define HELLO_LEN	(HDR_LEN + sizeof(struct kv_wire_hello))
#define EXPIRED_KEEP	64		/* expired allocations a connection remembers */

/* An allocation aborted at the end of its lease: a late COMMIT of it
 * answers KV_EEXPIRED rather than ENOENT. */
struct expired {
	uint32_t ns;
	struct kv_key key;
};

struct conn {
	struct kv_server *srv;
	struct conn *next;
	struct conn *prev;
	int fd;
	uid_t uid;
	pid_t pid;
	unsigned tenant;		/* kv_store_tenant_of(uid) */
	bool hello;			/* HELLO answered */
	bool reading;			/* read event enabled */
	bool closing;			/* a handler refused it: close once the
					 * handler returns */
	struct event *rev;
	struct event *wev;
	struct evbuffer *in;		/* NULL before HELLO */
	struct evbuffer *out;		/* NULL before HELLO */
	uint64_t hello_buf[HELLO_LEN / 8];	/* before HELLO: its bytes so far */
	size_t hello_have;
	uint64_t since_ns;		/* before HELLO: accepted; after: the first
					 * byte of a frame not yet complete, or 0 */
	struct kv_owner *owner;
	uint64_t *ns_bits;		/* namespaces registered here */
	size_t ns_words;
	uint64_t *frame;		/* aligned copy of the current frame */
	size_t frame_cap;		/* bytes */
	/* The next frame, once its header is in and admitted (admit()). */
	bool admitted;
	size_t want_in;			/* its bytes, header included */
	size_t want_out;		/* its largest reply, until answered */
	size_t skip;			/* bytes of a refused frame still to drop */
	size_t held;			/* conn_bytes() as last counted */
	struct expired *expired;	/* ring of EXPIRED_KEEP, once needed */
	uint64_t n_expired;
	char name[KV_PROTO_NAME_MAX + 1];
	/*
	 * The current frame waits for the store (a PIN of chunks on their
	 * way up, an ALLOC waiting for write-backs, a FLUSH...): park.h.
	 * Nothing more is read until it is answered, so replies keep their
	 * order.
	 */
	struct kv_park park;
};

struct kv_server {
	struct kv_server_conf conf;
	struct event_base *base;
	struct kv_store *store;
	struct kv_ns_table *ns;
	struct event *lev;
	int lfd;
	char *path;
	uid_t self_uid;
	struct conn *conns;
	uint32_t n_conns;
	uint64_t *scratch;		/* reply body */
	size_t scratch_cap;
	struct event *tierev[KV_TIER_ALL];	/* the store's tiers' completions
						 * (SSD jobs, GPU copies, the
						 * cluster's answers) */
	struct event *pumpev;		/* the store has background work */
	struct conn *parked;		/* connections parked on the store (park.c) */
	size_t held;			/* every connection's conn_bytes() */
	size_t charged;			/* ... beyond CONN_FREE each */
	size_t held_peak;		/* held's peak since the last trim */
	size_t out_max;			/* the largest reply of any request */
	struct event *tick;		/* the deadline sweep */
	struct event *resume;		/* listen again after running out of fds */
	int spare_fd;			/* given up to refuse at EMFILE */
};

static inline void put_hdr(struct kv_wire_hdr *h, uint16_t op, uint64_t req_id,
			   int status, uint32_t count, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->len = len;
	h->op = op;
	h->flags = KV_WIRE_REPLY;
	h->req_id = req_id;
	h->status = status < 0 ? -status : status;
	h->count = count;
}

/* Queue the reply to req: a status, count items, len bytes of body. */
static inline void reply(struct conn *c, const struct kv_wire_hdr *req, int status,
			 uint32_t count, const void *body, size_t len)
{
	struct kv_wire_hdr h;

	put_hdr(&h, req->op, req->req_id, status, count, (uint32_t)len);
	evbuffer_add(c->out, &h, sizeof(h));
	if (len)
		evbuffer_add(c->out, body, len);
}

/* Close c now, letting go of everything it holds (server.c). */
void kv_conn_close(struct conn *c);

/*
 * Close c after one attempt to write what it has queued (the error reply
 * of a request refused): no waiting, since the client may never read
 * (server.c).
 */
void kv_conn_end(struct conn *c);

/*
 * c's parked frame was answered on its replay: let the frame's buffers
 * go, handle what the client sent meanwhile, and write (server.c). The
 * connection may close on the way.
 */
void kv_conn_answered(struct conn *c);

/* A reply body of len bytes, zeroed: the server's one buffer, which the
 * next request reuses (reply() copies it out) (handlers.c). */
void *kvh_scratch(struct kv_server *srv, size_t len);

/* handlers_ns.c: a connection's namespaces, and the namespace ops. */
bool kvh_ns_registered(const struct conn *c, uint32_t ns);
void kvh_ns_mark(struct conn *c, uint32_t ns);
bool kvh_ns_visible(uint32_t ns, void *arg);	/* arg: the conn */
void kvh_ns_register(struct conn *c, const struct kv_req *r);
void kvh_ns_lookup(struct conn *c, const struct kv_req *r);
void kvh_ns_list(struct conn *c, const struct kv_req *r);
void kvh_ns_drop(struct conn *c, const struct kv_req *r);

#endif
