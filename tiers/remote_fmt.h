/*
 * remote_fmt.h - a chunk as values in a Redis Cluster (the remote tier,
 * docs/cluster.md): the values' names and their self-describing header.
 *
 * A chunk's stored bytes (after its codec) are split into parts of at
 * most part_bytes each, one value per part. Every value is a header
 * followed by its part's payload. The header names what the value is (the
 * namespace's salt, the chunk key, the part's index and how many parts the
 * chunk has), the chunk's sizes and codec, what a daemon that never saw
 * the chunk needs to cache it (its parent key, tokens and position: the
 * prefix tree and the eviction cost), and three checksums: the whole
 * stored chunk's, the payload's (both seeded with the salt and key), and
 * the header's own. A reader checks all of it, and that every part it
 * reads comes from the same write of the chunk (kv_remote_same(): two
 * daemons may write one chunk with different codecs, and the server may
 * evict some parts of a chunk and keep others); anything that does not
 * match is a miss (and a counter), never bytes handed on.
 *
 * Names come from the namespace's name (its salt, kv_ssd_salt()) and the
 * chunk key, never from a daemon's local ids, so every daemon sharing the
 * cluster finds the same chunk under the same names. Each part's name is
 * a hash tag of its own ({salt.key:part}), so a chunk's parts spread over
 * the slots and the masters: a large chunk is read from all of them at
 * once (one master for a whole chunk kept gets of 4 MiB chunks to 0.69-0.74
 * of redis-benchmark's GET, spread 0.88-0.98, docs/benchmarks.md). The
 * price: a chunk of several parts misses while any master holding one is
 * down.
 *
 * The header is little-endian and fixed: KV_REMOTE_HDR bytes. Its layout
 * is part of the cluster's data format, read by every daemon version that
 * shares a cluster; a change takes a new version number.
 */
#ifndef KV_REMOTE_FMT_H
#define KV_REMOTE_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/key.h"

#define KV_REMOTE_MAGIC		0x4d52564bu	/* "KVRM" */
#define KV_REMOTE_VERSION	1
#define KV_REMOTE_HDR		112		/* header bytes before the payload */
#define KV_REMOTE_NAME_MAX	64		/* a name, NUL included */
#define KV_REMOTE_PARTS_MAX	4096		/* parts a chunk may have */

/* A value's header, decoded. */
struct kv_remote_hdr {
	uint8_t codec;			/* the chunk's (enum kv_codec) */
	uint32_t part;			/* this value's index, 0 .. parts - 1 */
	uint32_t parts;			/* values the chunk takes */
	uint64_t salt;			/* its namespace name's */
	struct kv_key key;		/* the chunk's */
	uint64_t bytes;			/* the chunk, decoded */
	uint64_t stored;		/* the chunk as stored: every part's payload */
	uint32_t len;			/* this value's payload */
	uint32_t tokens;
	uint32_t position;		/* its first token's index */
	bool has_parent;
	struct kv_key parent;		/* with has_parent */
	uint64_t whole;			/* XXH3-64 of the stored chunk, seeded */
	uint64_t checksum;		/* XXH3-64 of the payload, seeded */
};

/* How many values a chunk of stored bytes takes with parts of at most
 * part_bytes (at least one, even for 0 bytes); 0 when that would be more
 * than KV_REMOTE_PARTS_MAX or part_bytes is 0. */
uint32_t kv_remote_parts(uint64_t stored, uint32_t part_bytes);

/* Part i's payload: its offset in the stored bytes and its length. */
void kv_remote_part_span(uint64_t stored, uint32_t part_bytes, uint32_t i,
			 uint64_t *off, uint32_t *len);

/* Write part's value name into buf (KV_REMOTE_NAME_MAX bytes) and return
 * its length: "kv:{<salt>.<key hi><key lo>:<part>}", in hex. The whole
 * name is its hash tag: a chunk's parts spread over the slots, so a large
 * chunk is read from every master at once (docs/cluster.md). */
size_t kv_remote_name(char *buf, uint64_t salt, const struct kv_key *key, uint32_t part);

/* The seed of a payload's checksum: every name's part in it. */
uint64_t kv_remote_seed(uint64_t salt, const struct kv_key *key, uint32_t part);

/* The checksum of a whole stored chunk (h->whole). */
uint64_t kv_remote_whole(uint64_t salt, const struct kv_key *key, const void *stored,
			 uint64_t len);

/*
 * Fill h's payload checksum from payload (h->len bytes; h->whole is the
 * caller's, kv_remote_whole()) and write the header's KV_REMOTE_HDR bytes
 * to out. The value is out followed by the payload.
 */
void kv_remote_hdr_write(struct kv_remote_hdr *h, const void *payload, void *out);

/* Do two parts' headers come from one write of one chunk? */
int kv_remote_same(const struct kv_remote_hdr *a, const struct kv_remote_hdr *b);

/*
 * Check a value read under the name of (salt, key, part): its header
 * (magic, version, its own checksum, that it names this salt, key and
 * part, and sizes that agree: the payload is exactly what the value holds
 * after the header, no longer than the chunk's stored bytes), then the
 * payload's checksum; part 0 must also be a full part that, times parts,
 * covers the stored bytes. That a chunk's parts come from one write and add up
 * to its stored bytes is the reader's to check (kv_remote_same(), then
 * kv_remote_whole() over what they make). Returns 0 and the header in *h,
 * or:
 *   -KV_EFORMAT   not a value of this format or version
 *   -KV_ECORRUPT  a checksum failed, or the sizes disagree
 *   -ESTALE       a sound value of another chunk or part (a name reused)
 */
int kv_remote_check(const void *value, size_t len, uint64_t salt,
		    const struct kv_key *key, uint32_t part, struct kv_remote_hdr *h);

/*
 * The header alone (KV_REMOTE_HDR bytes, read with GETRANGE), checked as
 * kv_remote_check() does but for the payload: its length and checksum are
 * the caller's to check when it reads it (kv_remote_payload_ok()).
 */
int kv_remote_check_hdr(const void *hdr, uint64_t salt, const struct kv_key *key,
			uint32_t part, struct kv_remote_hdr *h);

/* Is payload (len bytes) the one h describes? */
bool kv_remote_payload_ok(const struct kv_remote_hdr *h, const void *payload, size_t len);

#endif
