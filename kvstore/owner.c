/*
 * owner.c - owners (one per connection) and what they hold: pins and
 * pending allocations.
 *
 * A pin is one record shared by the chunk's pin list and the owner's, so
 * both a release by key and an owner's exit are cheap. A pending chunk is
 * on its writer's list until it is committed or aborted; the owner's
 * uncommitted bytes and its tenant's count it meanwhile.
 */
#include <errno.h>
#include <stdlib.h>

#include "lib/util.h"
#include "kvstore/store_int.h"

struct kv_owner *kv_store_owner_open(struct kv_store *s, unsigned tenant)
{
	struct kv_owner *o = kv_xcalloc(1, sizeof(*o));

	o->tenant = &s->tenants[tenant < s->n_tenants ? tenant : 0];
	kv_list_init(&o->pending);
	kv_list_add(&s->owners, &o->link);
	return o;
}

static void pin_free(struct kv_store *s, struct kv_pin *p)
{
	struct kv_chunk *c = p->chunk;
	struct kv_owner *o = p->owner;
	struct kv_pin **pp = &c->pin_list;

	while (*pp != p)
		pp = &(*pp)->cnext;
	*pp = p->cnext;
	if (p->oprev)
		p->oprev->onext = p->onext;
	else
		o->pins = p->onext;
	if (p->onext)
		p->onext->oprev = p->oprev;
	c->pins -= p->count;
	o->n_pins -= p->count;
	if (c->pins == 0) {
		s->pinned_chunks--;
		refresh_hold(s, c);
	}
	free(p);
}

void kv_store_owner_close(struct kv_store *s, struct kv_owner *o)
{
	if (!o)
		return;
	while (o->pins)
		pin_free(s, o->pins);
	while (!kv_list_empty(&o->pending))
		chunk_drop(s, kv_list_first_entry(&o->pending, struct kv_chunk, wlink));
	kv_list_del(&o->link);
	free(o);
}

/* c, just allocated, is o's until committed or aborted. */
void owner_add_pending(struct kv_owner *o, struct kv_chunk *c)
{
	c->writer = o;
	kv_list_add(&o->pending, &c->wlink);
	o->uncommitted += c->bytes;
	o->tenant->uncommitted += c->bytes;
}

void writer_unlink(struct kv_chunk *c)
{
	struct kv_owner *o = c->writer;

	kv_list_del(&c->wlink);
	o->uncommitted -= c->bytes;
	o->tenant->uncommitted -= c->bytes;
	c->writer = NULL;
}

/* One more pin of o on c (the caller checked o's limit). */
void pin_add(struct kv_store *s, struct kv_owner *o, struct kv_chunk *c)
{
	struct kv_pin *p;

	for (p = c->pin_list; p && p->owner != o; p = p->cnext)
		;
	if (!p) {
		p = kv_xcalloc(1, sizeof(*p));
		p->chunk = c;
		p->owner = o;
		p->cnext = c->pin_list;
		c->pin_list = p;
		p->onext = o->pins;
		if (o->pins)
			o->pins->oprev = p;
		o->pins = p;
	}
	p->count++;
	o->n_pins++;
}

int kv_store_release(struct kv_store *s, struct kv_owner *o, uint32_t ns,
		     const struct kv_key *key)
{
	struct kv_chunk *c = chunk_visible(s, ns, key);
	struct kv_pin *p;

	if (!c)
		return -ENOENT;
	for (p = c->pin_list; p && p->owner != o; p = p->cnext)
		;
	if (!p)
		return -ENOENT;
	if (p->count == 1) {
		pin_free(s, p);
		return 0;
	}
	p->count--;
	c->pins--;
	o->n_pins--;
	return 0;
}

unsigned kv_store_owner_expire(struct kv_store *s, struct kv_owner *o,
			       uint64_t now_ns, uint64_t lease_ns,
			       kv_store_expired_fn *fn, void *arg)
{
	struct kv_list *at, *next;
	unsigned n = 0;

	if (!o)
		return 0;
	for (at = o->pending.next; at != &o->pending; at = next) {
		struct kv_chunk *c = kv_list_entry(at, struct kv_chunk, wlink);

		next = at->next;
		if (now_ns - c->alloc_ns < lease_ns)
			continue;
		if (fn)
			fn(arg, c->ie.ns, &c->ie.key);
		chunk_drop(s, c);	/* as kv_store_abort() */
		n++;
	}
	return n;
}
