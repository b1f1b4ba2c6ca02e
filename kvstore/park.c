/*
 * park.c - requests that wait for the store: the parked list, what each
 * saved, and the replay (park.h has the contract).
 *
 * A parked request keeps its frame in its connection's frame buffer and
 * its state in struct kv_park; the list is the server's. A replay takes the
 * whole list first, so a request that parks again waits for the next one.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore/handlers.h"
#include "kvstore/park.h"
#include "kvstore/server_int.h"
#include "kvstore/store.h"
#include "lib/util.h"

void kv_park(struct conn *c, enum kv_park_wait wait)
{
	const struct kv_wire_hdr *h = (const struct kv_wire_hdr *)c->frame;

	/* A frame from the frame buffer (HELLO, in hello_buf, never parks). */
	assert(h && (kv_handlers[h->op].flags & KV_H_MAY_PARK));
	c->park.wait = wait;
	c->park.len = HDR_LEN + h->len;
	c->park.parked = true;
	c->park.next = c->srv->parked;
	c->srv->parked = c;
}

void kv_park_batch(struct conn *c, enum kv_park_wait wait, const void *reply,
		   size_t len)
{
	if (!c->park.reply)
		c->park.reply = kv_xmalloc(len);
	memcpy(c->park.reply, reply, len);
	kv_park(c, wait);
}

bool kv_park_resumed(const struct conn *c, enum kv_park_wait wait)
{
	return !c->park.parked && c->park.wait == wait;
}

bool kv_park_resume_batch(const struct conn *c, enum kv_park_wait wait,
			  void *reply, size_t len)
{
	if (!kv_park_resumed(c, wait))
		return false;
	memcpy(reply, c->park.reply, len);
	return true;
}

/* The request is answered: nothing it saved is needed any more. */
static void park_done(struct conn *c)
{
	if (c->park.probe) {
		kv_store_probe_cancel(c->srv->store, c->park.probe);
		c->park.probe = NULL;
	}
	free(c->park.reply);
	c->park.reply = NULL;
	c->park.wait = KV_PARK_NONE;
}

/*
 * SSD jobs or GPU copies finished, or room came free: ask again for every
 * parked request (each parks again if it still waits).
 */
void kv_park_replay(struct kv_server *srv)
{
	struct conn *list, *c, *next;

	list = srv->parked;
	srv->parked = NULL;
	for (c = list; c; c = next) {
		next = c->park.next;
		c->park.parked = false;
		c->park.next = NULL;
		if (!kv_handle_frame(c, c->frame, c->park.len))
			continue;	/* closed */
		if (c->park.parked)
			continue;
		park_done(c);
		kv_conn_answered(c);
	}
}

void kv_park_cancel(struct conn *c)
{
	struct kv_server *srv = c->srv;

	if (c->park.parked) {
		struct conn **pp = &srv->parked;

		while (*pp != c)
			pp = &(*pp)->park.next;
		*pp = c->park.next;
		c->park.parked = false;
	}
	park_done(c);
}
