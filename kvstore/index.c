/*
 * index.c - chained hash table of chunk records.
 *
 * Cursor encoding for kv_index_next(): (bucket << 20 | position in chain)
 * plus one, so 0 means "start". Chains stay far shorter than 2^20 at load
 * factor 1.
 *
 * Keys come from clients: they are hashes when clients behave, but nothing
 * makes them so. A bucket is therefore a keyed hash (XXH3-64 with a seed
 * drawn at open) of (namespace, key), so no client can choose keys that
 * pile into one chain.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#include "kvstore/index.h"
#include "lib/util.h"

struct kv_index {
	struct kv_index_entry **buckets;
	uint64_t mask;			/* buckets - 1 */
	uint64_t count;
	uint64_t seed;			/* keys the bucket hash */
};

#define CURSOR_POS_BITS 20

static uint64_t bucket_of(const struct kv_index *idx, uint32_t ns,
			  const struct kv_key *key)
{
	uint64_t buf[3] = { key->lo, key->hi, ns };

	return XXH3_64bits_withSeed(buf, sizeof(buf), idx->seed) & idx->mask;
}

int kv_index_open(struct kv_index **out, unsigned hash_bits)
{
	struct kv_index *idx;

	if (hash_bits < 4 || hash_bits > 30)
		return -EINVAL;
	idx = kv_xcalloc(1, sizeof(*idx));
	idx->buckets = kv_xcalloc((size_t)1 << hash_bits, sizeof(*idx->buckets));
	idx->mask = ((uint64_t)1 << hash_bits) - 1;
	if (getrandom(&idx->seed, sizeof(idx->seed), GRND_NONBLOCK) != sizeof(idx->seed))
		idx->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)idx;
	*out = idx;
	return 0;
}

void kv_index_close(struct kv_index *idx, void (*drop)(struct kv_index_entry *e))
{
	if (!idx)
		return;
	for (uint64_t b = 0; b <= idx->mask; b++) {
		struct kv_index_entry *c = idx->buckets[b];

		while (c) {
			struct kv_index_entry *next = c->hnext;

			if (drop)
				drop(c);
			c = next;
		}
	}
	free(idx->buckets);
	free(idx);
}

static bool same(const struct kv_index_entry *c, uint32_t ns,
		 const struct kv_key *key)
{
	return c->ns == ns && c->key.lo == key->lo && c->key.hi == key->hi;
}

struct kv_index_entry *kv_index_find(const struct kv_index *idx, uint32_t ns,
			       const struct kv_key *key)
{
	struct kv_index_entry *c = idx->buckets[bucket_of(idx, ns, key)];

	while (c && !same(c, ns, key))
		c = c->hnext;
	return c;
}

/*
 * Double the table. NEEDSWORK: a full rehash stalls the loop for about
 * 10 ms per million chunks; make it incremental (as Redis does) once the
 * SSD tier makes tables that large.
 */
static void grow(struct kv_index *idx)
{
	uint64_t nb = (idx->mask + 1) * 2;
	struct kv_index_entry **old = idx->buckets;
	uint64_t old_n = idx->mask + 1;

	idx->buckets = kv_xcalloc(nb, sizeof(*idx->buckets));
	idx->mask = nb - 1;
	for (uint64_t b = 0; b < old_n; b++) {
		struct kv_index_entry *c = old[b];

		while (c) {
			struct kv_index_entry *next = c->hnext;
			uint64_t nbk = bucket_of(idx, c->ns, &c->key);

			c->hnext = idx->buckets[nbk];
			idx->buckets[nbk] = c;
			c = next;
		}
	}
	free(old);
}

void kv_index_add(struct kv_index *idx, struct kv_index_entry *e)
{
	uint64_t b;

	if (idx->count >= idx->mask + 1 && idx->mask < (1ull << 30))
		grow(idx);
	b = bucket_of(idx, e->ns, &e->key);
	e->hnext = idx->buckets[b];
	idx->buckets[b] = e;
	idx->count++;
}

void kv_index_del(struct kv_index *idx, struct kv_index_entry *c)
{
	struct kv_index_entry **pp = &idx->buckets[bucket_of(idx, c->ns, &c->key)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = c->hnext;
		idx->count--;
	}
	c->hnext = NULL;
}

uint64_t kv_index_count(const struct kv_index *idx)
{
	return idx->count;
}

struct kv_index_entry *kv_index_next(const struct kv_index *idx, uint64_t *cursor)
{
	uint64_t b, pos;

	if (*cursor == 0) {
		b = 0;
		pos = 0;
	} else {
		b = (*cursor - 1) >> CURSOR_POS_BITS;
		pos = (*cursor - 1) & ((1u << CURSOR_POS_BITS) - 1);
	}
	for (; b <= idx->mask; b++, pos = 0) {
		struct kv_index_entry *c = idx->buckets[b];
		uint64_t i = 0;

		while (c && i < pos) {
			c = c->hnext;
			i++;
		}
		if (c) {
			*cursor = ((b << CURSOR_POS_BITS) | (pos + 1)) + 1;
			return c;
		}
	}
	*cursor = 0;
	return NULL;
}
