/*
 * test_codec.c - unit tests for the chunk codecs (tiers/codec.c).
 *
 * Names and arguments, the byte-plane transform against a byte-by-byte
 * model, round trips of both codecs over sizes from 1 byte to 4 MiB of
 * synthetic bf16 KV data (and random bytes, which must come back -ENOSPC),
 * the cap, and a decoder that trusts nothing: truncated frames, trailing
 * bytes, a second frame, skippable frames, a raw_len off by one either
 * way, frames without a content size, and frames with random bytes
 * flipped. Destinations are poisoned first and followed by a guard, or
 * allocated to the exact size so that ASan sees an overrun, so a short or
 * long decode cannot pass for a good one.
 *
 * A flipped byte inside a literal can still decode (zstd's own checksum is
 * off by design): then the decoder must still produce exactly raw_len
 * bytes, and the test checks that the tier's XXH3-64 over the stored bytes
 * tells the frames apart, which is what catches that in the SSD tier. On
 * this data that is nearly every flip: the noise plane is stored as raw
 * literals and the Huffman codes of the rest are close to fixed-length,
 * so a flip rarely upsets the frame's structure. The counts are printed.
 *
 * The figures: compression ratio of zstd and shuffle+zstd on the bf16 data
 * at 4 MiB and at 64 KiB + 1; shuffle+zstd must win at both.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "lib/util.h"
#include "tests/lib/kvdata.h"
#include "tests/lib/rng.h"
#include "tiers/codec.h"

#define KIB (1ul << 10)
#define MIB (1ul << 20)

#define POISON	0xa5
#define GUARD	64	/* bytes after a destination that must stay POISON */

static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

/* uniform in [lo, hi]; the modulo bias is irrelevant here */
static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

/*
 * KV-like bf16 (tests/lib/kvdata.h) from seed; rng_state goes on from
 * where the fill left it.
 */
static void fill_bf16(void *buf, size_t len, uint64_t seed)
{
	rng_state = seed;
	kvt_fill_bf16(buf, len, &rng_state);
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;

	rng_state = seed;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)rnd();
}

/* A destination of len bytes followed by a guard, all poisoned. */
static unsigned char *poisoned(size_t len)
{
	unsigned char *p = kv_xmalloc(len + GUARD);

	memset(p, POISON, len + GUARD);
	return p;
}

static void check_guard(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < GUARD; i++)
		assert_int_equal(p[len + i], POISON);
}

/* Encode into a buffer of the codec's bound; returns the length or error. */
static ssize_t encode(struct kv_codec_ctx *cx, unsigned codec,
		      const void *src, size_t len, unsigned char **out)
{
	size_t cap = kv_codec_bound(codec, len);
	ssize_t n;

	assert_true(cap > len);
	*out = kv_xmalloc(cap);
	n = kv_codec_encode(cx, codec, src, len, *out, cap);
	if (n > 0) {
		assert_true((size_t)n < len);
		assert_true((size_t)n <= cap);
	}
	return n;
}

/* ---- names and arguments ------------------------------------------------ */

static void test_names(void **state)
{
	static const char *const bad[] = {
		"", "ZSTD", "Zstd", "zstd ", " zstd", "zst", "zstd1", "shuffle",
		"shuffle-zstd", "shuffle+zstd\n", "raw", "lz4", "?", "None",
	};

	assert_int_equal(kv_codec_parse("none"), KV_CODEC_NONE);
	assert_int_equal(kv_codec_parse("zstd"), KV_CODEC_ZSTD);
	assert_int_equal(kv_codec_parse("shuffle+zstd"), KV_CODEC_SHUFFLE_ZSTD);
	for (unsigned c = 0; c < KV_CODEC_MAX; c++)
		assert_int_equal(kv_codec_parse(kv_codec_name(c)), (int)c);
	for (size_t i = 0; i < KV_ARRAY_SIZE(bad); i++)
		assert_int_equal(kv_codec_parse(bad[i]), -EINVAL);
	assert_int_equal(kv_codec_parse(NULL), -EINVAL);

	assert_string_equal(kv_codec_name(KV_CODEC_MAX), "?");
	assert_string_equal(kv_codec_name(KV_CODEC_MAX + 1), "?");
	assert_string_equal(kv_codec_name(UINT_MAX), "?");
}

static void test_bound(void **state)
{
	static const size_t lens[] = { 1, 2, 3, 100, 4 * KIB, 128 * KIB + 1,
				       4 * MIB, 32 * MIB };

	for (size_t i = 0; i < KV_ARRAY_SIZE(lens); i++) {
		size_t len = lens[i];

		assert_int_equal(kv_codec_bound(KV_CODEC_NONE, len), len);
		assert_true(kv_codec_bound(KV_CODEC_ZSTD, len) > len);
		assert_int_equal(kv_codec_bound(KV_CODEC_SHUFFLE_ZSTD, len),
				 kv_codec_bound(KV_CODEC_ZSTD, len));
		assert_int_equal(kv_codec_bound(KV_CODEC_ZSTD, len),
				 ZSTD_compressBound(len));
	}
	/* zstd cannot take this much: nothing is big enough */
	assert_int_equal(kv_codec_bound(KV_CODEC_ZSTD, SIZE_MAX), SIZE_MAX);
}

static void test_args(void **state)
{
	static const int levels[] = { INT_MIN, -5, 0, 1, 3, 19, 20, 100, INT_MAX };
	unsigned char src[4096];
	unsigned char dst[8192];
	unsigned char *enc;
	struct kv_codec_ctx *cx = kv_codec_ctx_new(KV_CODEC_LEVEL_DEFAULT);
	ssize_t n;

	fill_bf16(src, sizeof(src), 1);
	for (unsigned c = 0; c < KV_CODEC_MAX + 2; c++) {
		if (c == KV_CODEC_ZSTD || c == KV_CODEC_SHUFFLE_ZSTD) {
			assert_int_equal(kv_codec_encode(cx, c, src, 0, dst,
							 sizeof(dst)), -EINVAL);
			continue;
		}
		assert_int_equal(kv_codec_encode(cx, c, src, sizeof(src), dst,
						 sizeof(dst)), -EINVAL);
		assert_int_equal(kv_codec_decode(cx, c, src, sizeof(src), dst,
						 sizeof(dst)), -EINVAL);
	}
	assert_int_equal(kv_codec_encode(cx, UINT_MAX, src, sizeof(src), dst,
					 sizeof(dst)), -EINVAL);
	assert_int_equal(kv_codec_decode(cx, UINT_MAX, src, sizeof(src), dst,
					 sizeof(dst)), -EINVAL);

	/* a good frame with an empty src or an empty result is still bad */
	n = encode(cx, KV_CODEC_ZSTD, src, sizeof(src), &enc);
	assert_true(n > 0);
	assert_int_equal(kv_codec_decode(cx, KV_CODEC_ZSTD, enc, 0, dst,
					 sizeof(src)), -EBADMSG);
	assert_int_equal(kv_codec_decode(cx, KV_CODEC_ZSTD, enc, (size_t)n,
					 dst, 0), -EBADMSG);
	free(enc);
	kv_codec_ctx_free(cx);
	kv_codec_ctx_free(NULL);

	/* every level is usable: out of range ones are clamped */
	for (size_t i = 0; i < KV_ARRAY_SIZE(levels); i++) {
		cx = kv_codec_ctx_new(levels[i]);
		for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
			n = kv_codec_encode(cx, c, src, sizeof(src), dst,
					    sizeof(dst));
			assert_true(n > 0);
			assert_int_equal(kv_codec_decode(cx, c, dst, (size_t)n,
							 dst + 4096, 4096), 0);
			assert_memory_equal(dst + 4096, src, 4096);
		}
		kv_codec_ctx_free(cx);
	}
}

/* ---- the byte-plane transform ------------------------------------------- */

static void check_shuffle(size_t len, uint64_t seed)
{
	unsigned char *src = kv_xmalloc(len + 1);	/* len 0: malloc(0) */
	unsigned char *pl = poisoned(len);
	unsigned char *back = poisoned(len);
	size_t n = len / 2;

	fill_random(src, len, seed);
	kv_shuffle16(src, pl, len);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(pl[i], src[2 * i]);
		assert_int_equal(pl[n + i], src[2 * i + 1]);
	}
	if (len & 1)
		assert_int_equal(pl[len - 1], src[len - 1]);
	check_guard(pl, len);

	kv_unshuffle16(pl, back, len);
	assert_memory_equal(back, src, len);
	check_guard(back, len);
	free(src);
	free(pl);
	free(back);
}

static void test_shuffle(void **state)
{
	/* around the unrolled block of 32 values and its tail loop */
	for (size_t len = 0; len <= 260; len++)
		check_shuffle(len, len);
	check_shuffle(4 * KIB, 1);
	check_shuffle(4 * KIB + 1, 2);
	check_shuffle(1 * MIB + 3, 3);
	rng_state = 99;
	for (int i = 0; i < 50; i++) {
		size_t len = rnd_range(1, 70000);

		check_shuffle(len, rnd());
	}
}

/* ---- round trips -------------------------------------------------------- */

/*
 * Encode and decode len bytes; with must_fit, -ENOSPC is a failure. The
 * destination is poisoned with a guard after it, so a decode that writes
 * too little or too much is caught. Returns the encoded length or 0.
 */
static size_t round_trip(struct kv_codec_ctx *cx, unsigned codec,
			 const unsigned char *src, size_t len, bool must_fit)
{
	unsigned char *enc;
	unsigned char *out;
	ssize_t n;

	n = encode(cx, codec, src, len, &enc);
	if (n == -ENOSPC && !must_fit) {
		free(enc);
		return 0;
	}
	assert_true(n > 0);

	out = poisoned(len);
	assert_int_equal(kv_codec_decode(cx, codec, enc, (size_t)n, out, len), 0);
	assert_memory_equal(out, src, len);
	check_guard(out, len);
	free(out);
	free(enc);
	return (size_t)n;
}

static void test_round_trip_bf16(void **state)
{
	static const size_t sizes[] = {
		1, 2, 3, 63, 64, 65, 4 * KIB - 1, 4 * KIB, 4 * KIB + 1,
		64 * KIB + 7, 1 * MIB, 1 * MIB + 1, 4 * MIB, 4 * MIB - 3,
	};
	static const int levels[] = { 1, 3 };
	struct kv_codec_ctx *cx;
	unsigned char *src = kv_xmalloc(4 * MIB);

	for (size_t l = 0; l < KV_ARRAY_SIZE(levels); l++) {
		cx = kv_codec_ctx_new(levels[l]);
		for (size_t i = 0; i < KV_ARRAY_SIZE(sizes); i++) {
			size_t len = sizes[i];

			fill_bf16(src, len, 10 + i);
			for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
				/* under 4 KiB the frame overhead may win */
				size_t n = round_trip(cx, c, src, len,
						      len >= 4 * KIB);

				if (len == 1)
					assert_int_equal(n, 0);
			}
		}
		/* random odd and even sizes */
		rng_state = 77 + l;
		for (int i = 0; i < 20; i++) {
			size_t len = rnd_range(4 * KIB, 300 * KIB);

			fill_bf16(src, len, len);
			for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++)
				round_trip(cx, c, src, len, true);
		}
		kv_codec_ctx_free(cx);
	}
	free(src);
}

static void test_random_bytes(void **state)
{
	static const size_t sizes[] = { 1, 2, 65, 4 * KIB, 4 * KIB + 1,
					1 * MIB + 1, 4 * MIB };
	struct kv_codec_ctx *cx = kv_codec_ctx_new(3);
	unsigned char *src = kv_xmalloc(4 * MIB);

	for (size_t i = 0; i < KV_ARRAY_SIZE(sizes); i++) {
		fill_random(src, sizes[i], 20 + i);
		for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
			unsigned char *enc;

			assert_int_equal(encode(cx, c, src, sizes[i], &enc),
					 -ENOSPC);
			free(enc);
		}
	}
	kv_codec_ctx_free(cx);
	free(src);
}

/* The cap: the exact length fits, one byte less does not. */
static void test_cap(void **state)
{
	const size_t len = 64 * KIB + 1;
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);
	unsigned char *src = kv_xmalloc(len);
	unsigned char *ref;
	unsigned char *dst;

	fill_bf16(src, len, 5);
	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		ssize_t n = encode(cx, c, src, len, &ref);

		assert_true(n > 0);
		/* exactly n bytes, allocated so that ASan sees an overrun */
		dst = kv_xmalloc((size_t)n);
		assert_int_equal(kv_codec_encode(cx, c, src, len, dst,
						 (size_t)n), n);
		assert_memory_equal(dst, ref, (size_t)n);
		free(dst);
		dst = kv_xmalloc((size_t)n - 1);
		assert_int_equal(kv_codec_encode(cx, c, src, len, dst,
						 (size_t)n - 1), -ENOSPC);
		assert_int_equal(kv_codec_encode(cx, c, src, len, dst, 0),
				 -ENOSPC);
		free(dst);
		free(ref);
	}
	kv_codec_ctx_free(cx);
	free(src);
}

/* One context, sizes up and down, both codecs, another context to decode. */
static void test_ctx_reuse(void **state)
{
	static const size_t sizes[] = { 1 * MIB, 4 * KIB, 2 * MIB + 1,
					8 * KIB + 1, 1 * MIB };
	struct kv_codec_ctx *a = kv_codec_ctx_new(1);
	struct kv_codec_ctx *b = kv_codec_ctx_new(5);
	unsigned char *src = kv_xmalloc(2 * MIB + 1);

	for (size_t i = 0; i < KV_ARRAY_SIZE(sizes); i++) {
		size_t len = sizes[i];

		fill_bf16(src, len, 30 + i);
		for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
			unsigned char *enc;
			unsigned char *out = poisoned(len);
			ssize_t n = encode(a, c, src, len, &enc);

			assert_true(n > 0);
			assert_int_equal(kv_codec_decode(b, c, enc, (size_t)n,
							 out, len), 0);
			assert_memory_equal(out, src, len);
			check_guard(out, len);
			memset(out, POISON, len);
			assert_int_equal(kv_codec_decode(a, c, enc, (size_t)n,
							 out, len), 0);
			assert_memory_equal(out, src, len);
			free(out);
			free(enc);
		}
	}
	kv_codec_ctx_free(a);
	kv_codec_ctx_free(b);
	free(src);
}

/* ---- the decoder trusts nothing ---------------------------------------- */

struct frame {
	unsigned codec;
	unsigned char *raw;
	size_t raw_len;
	unsigned char *enc;
	size_t len;
};

static void frame_make(struct frame *f, struct kv_codec_ctx *cx,
		       unsigned codec, size_t raw_len, uint64_t seed)
{
	ssize_t n;

	f->codec = codec;
	f->raw_len = raw_len;
	f->raw = kv_xmalloc(raw_len);
	fill_bf16(f->raw, raw_len, seed);
	n = encode(cx, codec, f->raw, raw_len, &f->enc);
	assert_true(n > 0);
	f->len = (size_t)n;
}

static void frame_release(struct frame *f)
{
	free(f->raw);
	free(f->enc);
}

/*
 * Decode src into a poisoned, guarded buffer of raw_len bytes and expect
 * -EBADMSG; the guard must hold whatever happened before the error.
 */
static void expect_bad(struct kv_codec_ctx *cx, unsigned codec,
		       const void *src, size_t len, size_t raw_len)
{
	unsigned char *out = poisoned(raw_len);

	assert_int_equal(kv_codec_decode(cx, codec, src, len, out, raw_len),
			 -EBADMSG);
	check_guard(out, raw_len);
	free(out);
}

static void test_truncated(void **state)
{
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);

	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		struct frame f;

		frame_make(&f, cx, c, 256 * KIB + 1, 40 + c);
		/* every header length, then a sample of the rest */
		for (size_t cut = 0; cut < 64; cut++)
			expect_bad(cx, c, f.enc, cut, f.raw_len);
		rng_state = 41;
		for (int i = 0; i < 200; i++)
			expect_bad(cx, c, f.enc, rnd_range(64, f.len - 1),
				   f.raw_len);
		expect_bad(cx, c, f.enc, f.len - 1, f.raw_len);
		frame_release(&f);
	}
	kv_codec_ctx_free(cx);
}

static void test_trailing(void **state)
{
	/* a skippable frame: magic, 4 bytes of size, 4 bytes of payload */
	static const unsigned char skip[] = {
		0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4,
	};
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);

	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		struct frame f;
		unsigned char *buf;
		size_t n;

		frame_make(&f, cx, c, 100 * KIB, 50 + c);
		buf = kv_xmalloc(2 * f.len + sizeof(skip) + 16);

		/* garbage of 1 and 16 bytes, and zeros */
		memcpy(buf, f.enc, f.len);
		fill_random(buf + f.len, 16, 51);
		expect_bad(cx, c, buf, f.len + 1, f.raw_len);
		expect_bad(cx, c, buf, f.len + 16, f.raw_len);
		memset(buf + f.len, 0, 16);
		expect_bad(cx, c, buf, f.len + 4, f.raw_len);

		/* a second whole frame: zstd alone would decode both */
		memcpy(buf + f.len, f.enc, f.len);
		expect_bad(cx, c, buf, 2 * f.len, f.raw_len);
		expect_bad(cx, c, buf, 2 * f.len, 2 * f.raw_len);

		/* a skippable frame after, and one before */
		memcpy(buf + f.len, skip, sizeof(skip));
		expect_bad(cx, c, buf, f.len + sizeof(skip), f.raw_len);
		memcpy(buf, skip, sizeof(skip));
		memcpy(buf + sizeof(skip), f.enc, f.len);
		n = sizeof(skip) + f.len;
		expect_bad(cx, c, buf, n, f.raw_len);
		expect_bad(cx, c, buf, sizeof(skip), f.raw_len);

		/* and the frame alone is still good */
		round_trip(cx, c, f.raw, f.raw_len, true);
		free(buf);
		frame_release(&f);
	}
	kv_codec_ctx_free(cx);
}

/* Decode into a heap buffer of exactly raw_len bytes (ASan: no overrun). */
static int decode_exact(struct kv_codec_ctx *cx, unsigned codec,
			const void *src, size_t len, size_t raw_len)
{
	unsigned char *out = kv_xmalloc(raw_len);
	int ret;

	memset(out, POISON, raw_len);
	ret = kv_codec_decode(cx, codec, src, len, out, raw_len);
	free(out);
	return ret;
}

static void test_wrong_raw_len(void **state)
{
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);

	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		struct frame f;

		frame_make(&f, cx, c, 64 * KIB + 1, 60 + c);
		expect_bad(cx, c, f.enc, f.len, f.raw_len - 1);
		expect_bad(cx, c, f.enc, f.len, f.raw_len + 1);
		expect_bad(cx, c, f.enc, f.len, f.raw_len / 2);
		expect_bad(cx, c, f.enc, f.len, f.raw_len * 2);
		expect_bad(cx, c, f.enc, f.len, 1);
		assert_int_equal(decode_exact(cx, c, f.enc, f.len,
					      f.raw_len - 1), -EBADMSG);
		assert_int_equal(decode_exact(cx, c, f.enc, f.len, f.raw_len),
				 0);
		frame_release(&f);
	}
	kv_codec_ctx_free(cx);
}

/*
 * Frames that do not name their size (another writer, or a zstd that
 * stops writing it): the decoder must count what it gets. For shuffle+zstd
 * the frame holds the planes, as the encoder would have made them.
 */
static void test_no_content_size(void **state)
{
	const size_t raw_len = 96 * KIB + 1;
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	unsigned char *raw = kv_xmalloc(raw_len);
	unsigned char *planes = kv_xmalloc(raw_len);
	size_t cap = ZSTD_compressBound(raw_len);
	unsigned char *enc = kv_xmalloc(cap);

	assert_non_null(zc);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(zc,
					ZSTD_c_contentSizeFlag, 0)));
	fill_bf16(raw, raw_len, 70);
	kv_shuffle16(raw, planes, raw_len);
	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		const unsigned char *in = c == KV_CODEC_ZSTD ? raw : planes;
		unsigned char *out = poisoned(raw_len);
		size_t n = ZSTD_compress2(zc, enc, cap, in, raw_len);

		assert_false(ZSTD_isError(n));
		assert_int_equal(ZSTD_getFrameContentSize(enc, n),
				 ZSTD_CONTENTSIZE_UNKNOWN);
		assert_int_equal(kv_codec_decode(cx, c, enc, n, out, raw_len), 0);
		assert_memory_equal(out, raw, raw_len);
		check_guard(out, raw_len);
		free(out);

		/* the frame ends early: raw_len's last byte keeps its poison */
		expect_bad(cx, c, enc, n, raw_len + 1);
		expect_bad(cx, c, enc, n, raw_len + 4096);
		/* the frame has more than raw_len: no byte past raw_len */
		expect_bad(cx, c, enc, n, raw_len - 1);
		assert_int_equal(decode_exact(cx, c, enc, n, raw_len - 1),
				 -EBADMSG);
		assert_int_equal(decode_exact(cx, c, enc, n, 1), -EBADMSG);
	}
	ZSTD_freeCCtx(zc);
	kv_codec_ctx_free(cx);
	free(enc);
	free(planes);
	free(raw);
}

/*
 * Random bytes flipped anywhere in the frame. Most flips break the frame
 * (-EBADMSG); one inside a literal or an unchecked field may decode, and
 * then it must still be exactly raw_len bytes. Either way the stored bytes
 * differ, so the tier's XXH3-64 over them catches it before decode.
 */
static void test_flipped(void **state)
{
	struct kv_codec_ctx *cx = kv_codec_ctx_new(1);

	rng_state = 80;
	for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++) {
		unsigned rejected = 0;
		unsigned decoded = 0;
		unsigned same = 0;
		struct frame f;
		unsigned char *bad;
		XXH64_hash_t good;

		frame_make(&f, cx, c, 32 * KIB + 1, 81 + c);
		good = XXH3_64bits(f.enc, f.len);
		bad = kv_xmalloc(f.len);

		/* the magic number is checked whatever else happens */
		for (size_t i = 0; i < 4; i++) {
			memcpy(bad, f.enc, f.len);
			bad[i] ^= 0x10;
			expect_bad(cx, c, bad, f.len, f.raw_len);
		}

		for (int t = 0; t < 1000; t++) {
			unsigned char *out = poisoned(f.raw_len);
			unsigned flips = (unsigned)rnd_range(1, 3);
			int ret;

			memcpy(bad, f.enc, f.len);
			for (unsigned k = 0; k < flips; k++)
				bad[rnd_range(0, f.len - 1)] ^=
					(unsigned char)rnd_range(1, 255);
			if (!memcmp(bad, f.enc, f.len)) {	/* flipped back */
				free(out);
				continue;
			}
			/* what the SSD tier checks before it decodes */
			assert_true(XXH3_64bits(bad, f.len) != good);

			ret = kv_codec_decode(cx, c, bad, f.len, out,
					      f.raw_len);
			if (ret == 0) {
				decoded++;
				same += !memcmp(out, f.raw, f.raw_len);
			} else {
				assert_int_equal(ret, -EBADMSG);
				rejected++;
			}
			check_guard(out, f.raw_len);
			free(out);
		}
		print_message("codec flips, %s: %u rejected by the decoder, %u decoded (%u to the original bytes), all %u told apart by XXH3\n",
			      kv_codec_name(c), rejected, decoded, same,
			      rejected + decoded);
		free(bad);
		frame_release(&f);
	}
	kv_codec_ctx_free(cx);
}

/* ---- the figure --------------------------------------------------------- */

/*
 * Both sizes matter: at 4 MiB the planes fill whole zstd blocks; at 64 KiB
 * they share one unless the encoder cuts a block between them.
 */
static void test_ratio(void **state)
{
	static const size_t sizes[] = { 4 * MIB, 64 * KIB + 1 };
	struct kv_codec_ctx *cx = kv_codec_ctx_new(KV_CODEC_LEVEL_DEFAULT);
	unsigned char *src = kv_xmalloc(4 * MIB);

	for (size_t i = 0; i < KV_ARRAY_SIZE(sizes); i++) {
		size_t len = sizes[i];
		double ratio[KV_CODEC_MAX] = { 0 };

		fill_bf16(src, len, 90);
		for (unsigned c = KV_CODEC_ZSTD; c < KV_CODEC_MAX; c++)
			ratio[c] = (double)len /
				   (double)round_trip(cx, c, src, len, true);
		print_message("figure: codec ratio on %zu bytes of bf16 KV-like data, level %d: zstd %.3f\n",
			      len, KV_CODEC_LEVEL_DEFAULT, ratio[KV_CODEC_ZSTD]);
		print_message("figure: codec ratio on %zu bytes of bf16 KV-like data, level %d: shuffle+zstd %.3f\n",
			      len, KV_CODEC_LEVEL_DEFAULT,
			      ratio[KV_CODEC_SHUFFLE_ZSTD]);
		assert_true(ratio[KV_CODEC_SHUFFLE_ZSTD] > ratio[KV_CODEC_ZSTD]);
	}
	kv_codec_ctx_free(cx);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_shuffle),
		cmocka_unit_test(test_round_trip_bf16),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_ctx_reuse),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_wrong_raw_len),
		cmocka_unit_test(test_no_content_size),
		cmocka_unit_test(test_flipped),
		cmocka_unit_test(test_ratio),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
