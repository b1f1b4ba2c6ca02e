/*
 * test_keys.c - chunk keys: the documented construction, identical in two
 * processes, prefix and content keys apart, hex round trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "client/kvc.h"

#define NTOK 4096
#define CHUNK 256

static uint32_t tokens[NTOK];

static void make_tokens(void)
{
	for (int i = 0; i < NTOK; i++)
		tokens[i] = (uint32_t)(i * 2654435761u) % 128256;	/* a Llama-3 vocab */
}

/* The construction as docs/protocol.md states it, from libxxhash alone. */
static struct kvc_key reference(uint64_t seed, const struct kvc_key *parent,
				const uint32_t *t, size_t n)
{
	unsigned char buf[16 + CHUNK * 4];
	XXH128_hash_t h;

	memset(buf, 0, 16);
	if (parent) {
		memcpy(buf, &parent->lo, 8);
		memcpy(buf + 8, &parent->hi, 8);
	}
	memcpy(buf + 16, t, n * 4);
	h = XXH3_128bits_withSeed(buf, 16 + n * 4, seed);
	return (struct kvc_key){ h.low64, h.high64 };
}

static void test_documented_construction(void **state)
{
	uint64_t salt = kvc_ns_salt("llama3-8b/bf16/tp0of1/c256");
	struct kvc_key k0, k1, c;
	XXH128_hash_t h;

	assert_int_equal(salt, XXH3_64bits("llama3-8b/bf16/tp0of1/c256", 26));
	k0 = kvc_key_prefix(salt, NULL, tokens, CHUNK);
	c = reference(salt, NULL, tokens, CHUNK);
	assert_memory_equal(&k0, &c, sizeof(k0));
	k1 = kvc_key_prefix(salt, &k0, tokens + CHUNK, CHUNK);
	c = reference(salt, &k0, tokens + CHUNK, CHUNK);
	assert_memory_equal(&k1, &c, sizeof(k1));
	c = kvc_key_content(salt, tokens, CHUNK);
	h = XXH3_128bits_withSeed(tokens, CHUNK * 4, salt ^ 0x636f6e74656e7421ull);
	assert_int_equal(c.lo, h.low64);
	assert_int_equal(c.hi, h.high64);
}

static void test_prefix_semantics(void **state)
{
	uint64_t salt = kvc_ns_salt("ns");
	struct kvc_key chain[NTOK / CHUNK], other[NTOK / CHUNK], c;
	size_t n;

	n = kvc_key_chain(salt, tokens, NTOK + 17, CHUNK, chain, NTOK / CHUNK);
	assert_int_equal(n, NTOK / CHUNK);	/* the partial tail has no key */
	/* Change one token of chunk 3: chunks 0-2 keep their keys, every
	 * later one changes, since each key covers the whole prefix. */
	tokens[3 * CHUNK + 5] ^= 1;
	kvc_key_chain(salt, tokens, NTOK, CHUNK, other, NTOK / CHUNK);
	tokens[3 * CHUNK + 5] ^= 1;
	for (size_t i = 0; i < n; i++) {
		if (i < 3)
			assert_memory_equal(&chain[i], &other[i], sizeof(chain[i]));
		else
			assert_memory_not_equal(&chain[i], &other[i], sizeof(chain[i]));
	}
	/* A content key is position-free and never a prefix key. */
	c = kvc_key_content(salt, tokens, CHUNK);
	assert_memory_not_equal(&c, &chain[0], sizeof(c));
	other[0] = kvc_key_content(salt, tokens + 7 * CHUNK, CHUNK);
	tokens[7 * CHUNK] ^= 1;
	other[1] = kvc_key_content(salt, tokens + 7 * CHUNK, CHUNK);
	tokens[7 * CHUNK] ^= 1;
	assert_memory_not_equal(&other[0], &other[1], sizeof(c));
	/* Another namespace, other keys. */
	c = kvc_key_prefix(kvc_ns_salt("ns2"), NULL, tokens, CHUNK);
	assert_memory_not_equal(&c, &chain[0], sizeof(c));
}

/*
 * Another process (this binary run again with --emit, a fresh address
 * space and hash state) recomputes the chain and exits 0 only if its last
 * key equals ours, passed in $KVT_KEYS_GOLDEN by main().
 */
static void test_two_processes(void **state)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "/proc/self/exe", "--emit", (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_hex(void **state)
{
	struct kvc_key k = { .lo = 0x0123456789abcdefull, .hi = 0xfedcba9876543210ull }, back;
	char hex[33];

	kvc_key_to_hex(&k, hex);
	assert_string_equal(hex, "fedcba98765432100123456789abcdef");
	assert_int_equal(kvc_key_from_hex(hex, &back), 0);
	assert_memory_equal(&k, &back, sizeof(k));
	assert_int_equal(kvc_key_from_hex("FEDCBA98765432100123456789ABCDEF", &back), 0);
	assert_memory_equal(&k, &back, sizeof(k));
	assert_int_equal(kvc_key_from_hex("fedcba98765432100123456789abcde", &back), -EINVAL);
	assert_int_equal(kvc_key_from_hex("fedcba98765432100123456789abcdefa", &back), -EINVAL);
	assert_int_equal(kvc_key_from_hex("gedcba98765432100123456789abcdef", &back), -EINVAL);
	assert_int_equal(kvc_key_from_hex(NULL, &back), -EINVAL);
}

/* The other process of test_two_processes. */
static int emit(void)
{
	struct kvc_key k[NTOK / CHUNK];
	const char *want = getenv("KVT_KEYS_GOLDEN");
	char hex[33];

	kvc_key_chain(kvc_ns_salt("shared"), tokens, NTOK, CHUNK, k, NTOK / CHUNK);
	kvc_key_to_hex(&k[NTOK / CHUNK - 1], hex);
	return want && !strcmp(want, hex) ? 0 : 1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documented_construction),
		cmocka_unit_test(test_prefix_semantics),
		cmocka_unit_test(test_two_processes),
		cmocka_unit_test(test_hex),
	};
	struct kvc_key k[NTOK / CHUNK];
	char hex[33];

	make_tokens();
	if (argc > 1 && !strcmp(argv[1], "--emit"))
		return emit();
	/* Hand the last key of the chain to the child process to recompute. */
	kvc_key_chain(kvc_ns_salt("shared"), tokens, NTOK, CHUNK, k, NTOK / CHUNK);
	kvc_key_to_hex(&k[NTOK / CHUNK - 1], hex);
	setenv("KVT_KEYS_GOLDEN", hex, 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
