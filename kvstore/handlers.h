/*
 * handlers.h - the protocol's ops: one handler function per op, in one
 * table with flags (in the manner of Redis's command table).
 *
 * kv_handle_frame() decodes a whole frame, checks what its op's flags ask
 * for (a key batch's namespace registered on the connection), and calls
 * the op's handler, which runs the request against the store and answers
 * it, or parks it (park.h). The table also bounds each op's reply, which
 * server.c reserves before it reads the frame.
 *
 * Locking: none; everything runs on the loop thread.
 */
#ifndef KV_HANDLERS_H
#define KV_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"

struct conn;

enum kv_handler_flags {
	/* A batch of keys of one namespace (struct kv_wire_keys first), which
	 * must be registered on the connection: else KV_ENONS, and the
	 * handler is not called. */
	KV_H_KEYS	= 1 << 0,
	/* May wait for the store, and be replayed (park.h). */
	KV_H_MAY_PARK	= 1 << 1,
	/* Its reply is a page of up to max_batch entries, however many its
	 * body asks for (LS). */
	KV_H_PAGE	= 1 << 2,
};

struct kv_handler {
	/* Answer r on c (reply()), or park it; a HELLO refused sets
	 * c->closing instead. */
	void (*proc)(struct conn *c, const struct kv_req *r);
	unsigned flags;			/* enum kv_handler_flags */
	/* Its largest reply's body: reply bytes, plus reply_key bytes per key
	 * (per entry with KV_H_PAGE), padded to 8. */
	uint32_t reply;
	uint32_t reply_key;
};

/* Indexed by op; every op from KV_OP_HELLO up has a handler. */
extern const struct kv_handler kv_handlers[KV_OP_MAX];

/*
 * Handle one whole frame of len bytes at frame (8-byte aligned; its header
 * checked already, with kv_proto_check_hdr()), which stays in place while
 * its request is parked. Returns false when the connection was closed
 * (the frame was malformed, or its handler refused it).
 */
bool kv_handle_frame(struct conn *c, const void *frame, size_t len);

#endif
