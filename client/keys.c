/*
 * keys.c - libkvc's keys: namespace salts, prefix and content keys
 * (XXH3-128 over the tokens: docs/protocol.md, "Key derivation") and their
 * hex form.
 * Plain functions of their arguments: no handle, no connection.
 */
#define XXH_STATIC_LINKING_ONLY
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "client/kvc.h"

uint64_t kvc_ns_salt(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

static struct kvc_key key_hash(uint64_t seed, const struct kvc_key *parent,
			       const uint32_t *tokens, size_t n)
{
	XXH3_state_t st;
	XXH128_hash_t h;

	XXH3_128bits_reset_withSeed(&st, seed);
	if (parent)
		XXH3_128bits_update(&st, parent, sizeof(*parent));
	XXH3_128bits_update(&st, tokens, n * sizeof(uint32_t));
	h = XXH3_128bits_digest(&st);
	return (struct kvc_key){ .lo = h.low64, .hi = h.high64 };
}

struct kvc_key kvc_key_prefix(uint64_t salt, const struct kvc_key *parent,
			      const uint32_t *tokens, size_t n)
{
	static const struct kvc_key root = { 0, 0 };

	return key_hash(salt, parent ? parent : &root, tokens, n);
}

struct kvc_key kvc_key_content(uint64_t salt, const uint32_t *tokens, size_t n)
{
	return key_hash(salt ^ 0x636f6e74656e7421ull, NULL, tokens, n);
}

size_t kvc_key_chain(uint64_t salt, const uint32_t *tokens, size_t n_tokens,
		     size_t chunk_tokens, struct kvc_key *out, size_t max)
{
	size_t chunks = chunk_tokens ? n_tokens / chunk_tokens : 0;
	struct kvc_key prev;

	for (size_t i = 0; i < chunks && i < max; i++) {
		out[i] = kvc_key_prefix(salt, i ? &prev : NULL,
					tokens + i * chunk_tokens, chunk_tokens);
		prev = out[i];
	}
	return chunks;
}

void kvc_key_to_hex(const struct kvc_key *k, char out[33])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[i] = digits[(k->hi >> (60 - 4 * i)) & 15];
		out[16 + i] = digits[(k->lo >> (60 - 4 * i)) & 15];
	}
	out[32] = '\0';
}

int kvc_key_from_hex(const char *hex, struct kvc_key *out)
{
	uint64_t w[2] = { 0, 0 };

	if (!hex || strlen(hex) != 32)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		char ch = hex[i];
		unsigned v;

		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v = ch - 'A' + 10;
		else
			return -EINVAL;
		w[i / 16] = w[i / 16] << 4 | v;
	}
	out->hi = w[0];
	out->lo = w[1];
	return 0;
}
