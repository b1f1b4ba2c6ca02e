/*
 * index.h - the daemon's table of chunks, keyed by (namespace id, 128-bit key).
 *
 * A chained hash table of entries embedded in the caller's records, in the
 * manner of Redis's dict: the index reads only an entry's ns, key and
 * hnext, and knows nothing of what holds it (the store's struct kv_chunk,
 * kvstore/store_int.h). The caller allocates and frees its records;
 * kv_index_add() links one in, kv_index_del() unlinks it. The table
 * doubles when it holds more entries than buckets. Keys come from clients,
 * so a bucket is a keyed hash of (namespace, key) (index.c).
 *
 * Locking: none; the daemon's loop thread owns the index (DESIGN.md
 * section 3).
 */
#ifndef KV_INDEX_H
#define KV_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/key.h"

struct kv_index;		/* opaque */

struct kv_index_entry {
	struct kv_index_entry *hnext;	/* the index's: bucket chain */
	uint32_t ns;			/* set before kv_index_add(), then fixed */
	struct kv_key key;
};

/*
 * Create an empty index with 1 << hash_bits buckets to start (4..30).
 * Returns 0 and stores it in *out, or -EINVAL with *out untouched.
 */
int kv_index_open(struct kv_index **out, unsigned hash_bits);

/* Free the index, handing each entry still in it to drop (NULL: leave
 * them). Accepts NULL. */
void kv_index_close(struct kv_index *idx, void (*drop)(struct kv_index_entry *e));

/* The entry under (ns, key), or NULL. */
struct kv_index_entry *kv_index_find(const struct kv_index *idx, uint32_t ns,
				     const struct kv_key *key);

/* Link in e under (e->ns, e->key), which must not be present. Never fails
 * (control-plane memory). */
void kv_index_add(struct kv_index *idx, struct kv_index_entry *e);

/* Unlink an entry that is in the index (the caller frees its record). */
void kv_index_del(struct kv_index *idx, struct kv_index_entry *e);

uint64_t kv_index_count(const struct kv_index *idx);

/*
 * Walk the index: start with *cursor = 0; each call returns the next entry
 * and advances *cursor, or returns NULL at the end (and sets it to 0). The
 * walk may miss or repeat entries when the table grows between calls, and
 * the caller must not delete the entry just returned before the next call
 * (collect first, then delete).
 */
struct kv_index_entry *kv_index_next(const struct kv_index *idx, uint64_t *cursor);

#endif
