/*
 * ns.h - the namespace table: names to small ids, each with an owner.
 *
 * A namespace (model, dtype, layout, parallel rank, chunk size, owner) is
 * what makes two chunks comparable. The first user to register a name owns
 * it; ids are dense, from 0, and never reused while the daemon runs.
 *
 * A name may be pending: registered, but its record is not yet durable
 * (the SSD tier records names before any chunk of them is written); no
 * chunk may be written under it until kv_ns_set_pending(t, id, false). An
 * id whose record failed, or whose namespace was dropped, is burned: its
 * name is forgotten (a later registration of it gets a new id) and the id
 * is never handed out again in this run, like the ids skipped at restore.
 *
 * Locking: none; the loop thread owns it.
 */
#ifndef KV_NS_H
#define KV_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kv_ns_table;		/* opaque */

/* Returns 0 and stores the table in *out, or -EINVAL (max 0). */
int kv_ns_open(struct kv_ns_table **out, uint32_t max);
void kv_ns_close(struct kv_ns_table *t);	/* accepts NULL */

/*
 * Register name (len bytes, 1..255, no NUL) for uid. Returns 0 and stores
 * its id (new or existing, pending perhaps: see kv_ns_pending()) in *id,
 * -EACCES when another uid owns it, or -KV_ENSLIMIT when the table is full.
 */
int kv_ns_register(struct kv_ns_table *t, const char *name, size_t len,
		   uid_t uid, uint32_t *id);

/* The id of name (len bytes) in *id: 0, or -ENOENT when never registered. */
int kv_ns_find(const struct kv_ns_table *t, const char *name, size_t len,
	       uint32_t *id);

/*
 * Put back a namespace recorded before a restart, under the same id (ids
 * in increasing order; ids skipped become unusable placeholders). Returns
 * 0, -EINVAL (id not above the last, a bad name) or -KV_ENSLIMIT.
 */
int kv_ns_restore(struct kv_ns_table *t, uint32_t id, uid_t uid, const char *name);

/* The owner of id in *uid: 0, or -ENOENT for an id never handed out. */
int kv_ns_owner(const struct kv_ns_table *t, uint32_t id, uid_t *uid);

/* The name of id (NUL-terminated, borrowed), or NULL. */
const char *kv_ns_name(const struct kv_ns_table *t, uint32_t id);

/* The id of name without registering it: 0, or -ENOENT (never registered,
 * burned, or still pending). The caller checks the owner. */
int kv_ns_lookup(const struct kv_ns_table *t, const char *name, size_t len,
		 uint32_t *id);

/* Mark a registered id's record as on its way (true) or durable (false). */
void kv_ns_set_pending(struct kv_ns_table *t, uint32_t id, bool pending);
bool kv_ns_pending(const struct kv_ns_table *t, uint32_t id);

/* Burn id: forget its name; the id is never handed out again. */
void kv_ns_burn(struct kv_ns_table *t, uint32_t id);

/* Ids handed out so far, burned and skipped ones included (the next id). */
uint32_t kv_ns_count(const struct kv_ns_table *t);

#endif
