/*
 * park.h - requests that wait for the store, and their replay (in the
 * manner of Redis's blocked.c).
 *
 * A handler whose store call says the work is under way (-EINPROGRESS:
 * chunks on their way up for a PIN, SSD write-backs that free room for an
 * ALLOC or make DRAM durable for a FLUSH, an SSD index sync, a namespace
 * record being written or deleted; -EAGAIN: I/O on the chunks of a
 * namespace to drop) saves what it has done so far in its connection's
 * struct kv_park and parks. The frame stays in the connection's frame
 * buffer, and nothing more is read from the connection until it is
 * answered, so replies keep their order. Whenever the store may have made
 * progress, kv_park_replay() runs every parked frame through its handler
 * again: the handler asks kv_park_resumed() what it waited for, takes its
 * saved state back and carries on, or parks again.
 *
 * Only ops with KV_H_MAY_PARK in the handler table park, never HELLO.
 *
 * Ownership: the saved state is the park's; it lasts, through any number
 * of replays, until the frame is answered or the connection closes
 * (kv_park_cancel()).
 * Locking: none; everything runs on the loop thread.
 */
#ifndef KV_PARK_H
#define KV_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"

struct conn;
struct kv_server;
struct kv_store_probe;

/* What a parked request waits for. */
enum kv_park_wait {
	KV_PARK_NONE = 0,	/* not parked, nor being replayed */
	KV_PARK_ROOM,		/* ALLOC: room, which SSD write-backs free */
	KV_PARK_COPIES,		/* PIN: chunks on their way up from the SSD, or
				 * down from HBM, into DRAM */
	KV_PARK_WRITEBACK,	/* FLUSH: DRAM written back to the SSD */
	KV_PARK_SYNC,		/* FLUSH --drop: the SSD index synced */
	KV_PARK_NS_RECORD,	/* NS_REGISTER, NS_DROP: a namespace's record
				 * written, or deleted */
	KV_PARK_NS_IO,		/* NS_DROP: I/O on the namespace's chunks
				 * over, so they can go; nothing saved */
	KV_PARK_PROBE,		/* LOOKUP: the cluster asked of the keys no
				 * local tier has */
};

/* A connection's parked request: embedded in struct conn. */
struct kv_park {
	bool parked;			/* on the server's parked list */
	enum kv_park_wait wait;		/* what it waits for (while it is
					 * replayed: what it waited for) */
	size_t len;			/* the frame's length in the frame buffer */
	struct conn *next;		/* the server's parked list */
	/* What the request had done when it parked, for its replay: */
	void *reply;			/* ALLOC, PIN: the replies so far */
	uint32_t item;			/* ALLOC: the next item to allocate */
	uint64_t wb_base[3];		/* FLUSH: the write-back counters at its
					 * start (kv_store_wb_counters()) */
	uint64_t sync;			/* FLUSH --drop: the SSD sync point its
					 * reply waits for */
	struct kv_wire_flush_reply flush;	/* FLUSH --drop: its reply */
	uint32_t ns;			/* KV_PARK_NS_RECORD: the namespace */
	struct kv_wire_ns_drop_reply drop;	/* NS_DROP: what went */
	struct kv_store_probe *probe;	/* LOOKUP: the question to the cluster
					 * (cancelled if the request goes) */
};

/*
 * Park the request in c's frame buffer until it is replayed; it waits for
 * wait. Its other saved state is what the handler put in c->park.
 */
void kv_park(struct conn *c, enum kv_park_wait wait);

/*
 * kv_park() for a batch answered item by item: saves a copy of the len
 * bytes of replies so far (the same len when it parks again).
 */
void kv_park_batch(struct conn *c, enum kv_park_wait wait, const void *reply,
		   size_t len);

/* Is c's request replayed after it parked waiting for wait? */
bool kv_park_resumed(const struct conn *c, enum kv_park_wait wait);

/*
 * The request, replayed after kv_park_batch(c, wait, ...), takes the
 * replies it had back into reply (len bytes) and returns true; otherwise
 * reply is left alone and it returns false.
 */
bool kv_park_resume_batch(const struct conn *c, enum kv_park_wait wait,
			  void *reply, size_t len);

/*
 * The store may have moved on (finished jobs taken in, room freed): run
 * every parked request again. Those that still wait park again; the
 * others are answered, and their connections handle what they sent
 * meanwhile. A connection may close on the way.
 */
void kv_park_replay(struct kv_server *srv);

/* c is closing: take its request off the parked list and free what it
 * saved. */
void kv_park_cancel(struct conn *c);

#endif
