/*
 * codec.h - how a chunk's bytes are stored on SSD: raw, zstd, or
 * shuffle+zstd (16-bit values split into byte planes, then zstd).
 *
 * KV tensors are bf16/fp16: the high byte of each value (sign, exponent,
 * top of the mantissa) repeats a lot, the low byte is noise. Splitting the
 * values into a plane of low bytes and a plane of high bytes lets zstd see
 * the repetition; plain zstd on interleaved bytes barely compresses.
 *
 * Contracts:
 * - A decoder never trusts the frame: the caller says how many bytes the
 *   chunk has (from the index), and anything that does not decode to
 *   exactly that many is -EBADMSG. zstd's own frame checksum is not relied
 *   on; the SSD tier keeps an XXH3-64 per chunk over the stored bytes.
 * - An encoder that cannot make the data smaller says so (-ENOSPC); the
 *   caller then stores it raw (KV_CODEC_NONE), which always works.
 *
 * Locking: a context belongs to one thread at a time; the functions that
 * take no context are thread-safe.
 */
#ifndef KV_CODEC_H
#define KV_CODEC_H

#include <stddef.h>
#include <sys/types.h>

enum kv_codec {
	KV_CODEC_NONE = 0,
	KV_CODEC_ZSTD = 1,
	KV_CODEC_SHUFFLE_ZSTD = 2,	/* byte planes of 16-bit values, then zstd */
	KV_CODEC_MAX
};

#define KV_CODEC_LEVEL_DEFAULT 1	/* zstd's fast end */

/* "none", "zstd", "shuffle+zstd" -> enum kv_codec, or -EINVAL. */
int kv_codec_parse(const char *name);

/*
 * The codec a list "PREFIX=CODEC[,PREFIX=CODEC...]" gives the name of len
 * bytes (the first prefix that matches; a name NULL only checks the list).
 * Returns the codec, -ENOENT (no prefix matches) or -EINVAL (a bad list).
 */
int kv_codec_for(const char *list, const char *name, size_t len);

/* The codec's name, or "?" for a value out of range. */
const char *kv_codec_name(unsigned codec);

/* Largest encoded size of len bytes: a dst of this many bytes always fits. */
size_t kv_codec_bound(unsigned codec, size_t len);

struct kv_codec_ctx;		/* opaque: zstd contexts and a scratch buffer */

/*
 * A context for one thread, compressing at zstd level (1..19; values out
 * of range are clamped). Never fails (control-plane memory: kv_xmalloc).
 */
struct kv_codec_ctx *kv_codec_ctx_new(int level);
void kv_codec_ctx_free(struct kv_codec_ctx *cx);	/* accepts NULL */

/*
 * Encode len bytes of src into dst (cap bytes). Returns the encoded length
 * (> 0), or:
 *   -ENOSPC  the result would not be smaller than len (store it raw), or
 *            it does not fit in cap
 *   -EINVAL  codec is KV_CODEC_NONE or out of range, or len is 0
 *   -EIO     the compressor failed
 * An odd len under shuffle+zstd is fine: the last byte is kept as is.
 */
ssize_t kv_codec_encode(struct kv_codec_ctx *cx, unsigned codec,
			const void *src, size_t len, void *dst, size_t cap);

/*
 * Decode len encoded bytes of src into exactly raw_len bytes at dst.
 * Returns 0, or -EBADMSG (malformed, truncated, trailing bytes, or any
 * size other than raw_len), -EINVAL (codec none or out of range). dst may
 * hold garbage after an error.
 */
int kv_codec_decode(struct kv_codec_ctx *cx, unsigned codec,
		    const void *src, size_t len, void *dst, size_t raw_len);

/* The byte-plane transform alone (exposed for tests and benchmarks). */
void kv_shuffle16(const void *src, void *dst, size_t len);
void kv_unshuffle16(const void *src, void *dst, size_t len);

#endif
