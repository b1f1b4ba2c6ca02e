/*
 * remote_fmt.c - a chunk as values in a Redis Cluster (see remote_fmt.h).
 *
 * The header's layout, little-endian:
 *    0 magic u32     4 version u16   6 codec u8   7 flags u8 (bit 0: has_parent)
 *    8 part u32     12 parts u32    16 salt u64  24 key.lo u64  32 key.hi u64
 *   40 bytes u64    48 stored u64   56 len u32   60 tokens u32  64 position u32
 *   68 reserved u32 (0)             72 parent.lo u64            80 parent.hi u64
 *   88 whole u64    96 checksum u64 104 hdr_check u64 (XXH3-64 of bytes 0..103)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "tiers/remote_fmt.h"

#define HDR_CHECKED	104	/* bytes the header's own checksum covers */
#define F_PARENT	0x01

_Static_assert(KV_REMOTE_HDR == HDR_CHECKED + 8, "the header's layout");

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint32_t kv_remote_parts(uint64_t stored, uint32_t part_bytes)
{
	uint64_t n;

	if (!part_bytes)
		return 0;
	n = stored ? (stored - 1) / part_bytes + 1 : 1;
	return n > KV_REMOTE_PARTS_MAX ? 0 : (uint32_t)n;
}

void kv_remote_part_span(uint64_t stored, uint32_t part_bytes, uint32_t i,
			 uint64_t *off, uint32_t *len)
{
	uint64_t at = (uint64_t)i * part_bytes;

	*off = at < stored ? at : stored;
	*len = (uint32_t)(stored - *off < part_bytes ? stored - *off : part_bytes);
}

size_t kv_remote_name(char *buf, uint64_t salt, const struct kv_key *key, uint32_t part)
{
	int n = snprintf(buf, KV_REMOTE_NAME_MAX, "kv:{%016llx.%016llx%016llx:%x}",
			 (unsigned long long)salt, (unsigned long long)key->hi,
			 (unsigned long long)key->lo, (unsigned)part);

	return (size_t)n;
}

uint64_t kv_remote_seed(uint64_t salt, const struct kv_key *key, uint32_t part)
{
	unsigned char b[28];

	put64(b, salt);
	put64(b + 8, key->lo);
	put64(b + 16, key->hi);
	put32(b + 24, part);
	return XXH3_64bits(b, sizeof(b));
}

uint64_t kv_remote_whole(uint64_t salt, const struct kv_key *key, const void *stored,
			 uint64_t len)
{
	return XXH3_64bits_withSeed(stored, len, kv_remote_seed(salt, key, UINT32_MAX));
}

void kv_remote_hdr_write(struct kv_remote_hdr *h, const void *payload, void *out)
{
	unsigned char *p = out;

	h->checksum = XXH3_64bits_withSeed(payload, h->len,
					   kv_remote_seed(h->salt, &h->key, h->part));
	memset(p, 0, KV_REMOTE_HDR);
	put32(p, KV_REMOTE_MAGIC);
	put16(p + 4, KV_REMOTE_VERSION);
	p[6] = h->codec;
	p[7] = h->has_parent ? F_PARENT : 0;
	put32(p + 8, h->part);
	put32(p + 12, h->parts);
	put64(p + 16, h->salt);
	put64(p + 24, h->key.lo);
	put64(p + 32, h->key.hi);
	put64(p + 40, h->bytes);
	put64(p + 48, h->stored);
	put32(p + 56, h->len);
	put32(p + 60, h->tokens);
	put32(p + 64, h->position);
	if (h->has_parent) {
		put64(p + 72, h->parent.lo);
		put64(p + 80, h->parent.hi);
	}
	put64(p + 88, h->whole);
	put64(p + 96, h->checksum);
	put64(p + 104, XXH3_64bits(p, HDR_CHECKED));
}

int kv_remote_same(const struct kv_remote_hdr *a, const struct kv_remote_hdr *b)
{
	return a->codec == b->codec && a->parts == b->parts && a->salt == b->salt &&
	       a->key.lo == b->key.lo && a->key.hi == b->key.hi &&
	       a->bytes == b->bytes && a->stored == b->stored && a->whole == b->whole &&
	       a->tokens == b->tokens && a->position == b->position &&
	       a->has_parent == b->has_parent && a->parent.lo == b->parent.lo &&
	       a->parent.hi == b->parent.hi;
}

int kv_remote_check_hdr(const void *hdr, uint64_t salt, const struct kv_key *key,
			uint32_t part, struct kv_remote_hdr *h)
{
	const unsigned char *p = hdr;

	if (get32(p) != KV_REMOTE_MAGIC || get16(p + 4) != KV_REMOTE_VERSION)
		return -KV_EFORMAT;
	if (get64(p + 104) != XXH3_64bits(p, HDR_CHECKED) || (p[7] & ~F_PARENT) ||
	    get32(p + 68) || (!(p[7] & F_PARENT) && (get64(p + 72) || get64(p + 80))))
		return -KV_ECORRUPT;
	*h = (struct kv_remote_hdr){
		.codec = p[6],
		.part = get32(p + 8),
		.parts = get32(p + 12),
		.salt = get64(p + 16),
		.key = { get64(p + 24), get64(p + 32) },
		.bytes = get64(p + 40),
		.stored = get64(p + 48),
		.len = get32(p + 56),
		.tokens = get32(p + 60),
		.position = get32(p + 64),
		.has_parent = p[7] & F_PARENT,
		.parent = { get64(p + 72), get64(p + 80) },
		.whole = get64(p + 88),
		.checksum = get64(p + 96),
	};
	if (h->salt != salt || h->key.lo != key->lo || h->key.hi != key->hi ||
	    h->part != part)
		return -ESTALE;
	/* The sizes must agree with each other; that the parts add up to
	 * stored is the reader's to check, with the whole chunk's checksum,
	 * once it has them all. */
	if (!h->parts || h->parts > KV_REMOTE_PARTS_MAX || h->part >= h->parts ||
	    h->len > h->stored)
		return -KV_ECORRUPT;
	/* Part 0 is a full part, and says how large the parts are: the chunk
	 * is exactly that many of them (a reader sizes its buffers by it). */
	if (h->part == 0 && (h->parts == 1 ? h->len != h->stored :
			     !h->len || (uint64_t)h->len * (h->parts - 1) >= h->stored ||
			     (uint64_t)h->len * h->parts < h->stored))
		return -KV_ECORRUPT;
	return 0;
}

bool kv_remote_payload_ok(const struct kv_remote_hdr *h, const void *payload, size_t len)
{
	return len == h->len &&
	       XXH3_64bits_withSeed(payload, len, kv_remote_seed(h->salt, &h->key, h->part)) ==
	       h->checksum;
}

int kv_remote_check(const void *value, size_t len, uint64_t salt,
		    const struct kv_key *key, uint32_t part, struct kv_remote_hdr *h)
{
	const unsigned char *p = value;
	int ret;

	if (len < KV_REMOTE_HDR)
		return -KV_EFORMAT;
	ret = kv_remote_check_hdr(p, salt, key, part, h);
	if (ret)
		return ret;
	return kv_remote_payload_ok(h, p + KV_REMOTE_HDR, len - KV_REMOTE_HDR) ? 0 : -KV_ECORRUPT;
}
