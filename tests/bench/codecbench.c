/*
 * codecbench.c - what the SSD tier's chunk codecs cost and save.
 *
 * On one thread, for buffers of synthetic bf16 KV data (4 MiB and 32 MiB;
 * --quick: 64 KiB + 1 and 1 MiB; --size: one size of your choice) it
 * measures the compression ratio and the encode and decode speed of zstd
 * and shuffle+zstd at levels 1 and 3, the byte-plane transform alone, and
 * memcpy of the same buffer in the same run as the ceiling. MB/s are of
 * raw (uncompressed) bytes, 10^6 bytes per MB. Each figure is the best of
 * as many repetitions as fit in about a quarter second (at least 3;
 * --quick: one), on a machine that may be shared: compare rows within a
 * run, not across runs.
 *
 * The data: normal values (Box-Muller over splitmix64, fixed seed), each
 * of 128 channels scaled by a power of two between 1/16 and 2, truncated
 * to bf16, little-endian: kvt_fill_bf16() of tests/lib/kvdata.h, which
 * tests/unit/test_codec.c uses too.
 *
 * Every decode is compared with the original. Output: a table, then one
 * line "result: key=value ..." with, per size tag (4m, 32m, ...),
 * <size>_memcpy_mbs and <size>_<codec>_{ratio,enc_mbs,dec_mbs} for codec
 * zstd1, zstd3, shuf1, shuf3 and shuffle16 (the transform alone).
 *
 * Exit status: 0, or 1 on bad arguments or a codec that fails or does not
 * give back its input. Low figures never fail it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "lib/util.h"
#include "tests/lib/kvdata.h"
#include "tiers/codec.h"

#define KIB		(1ul << 10)
#define MIB		(1ul << 20)
#define MIN_NS		250000000ull	/* time per figure, full runs */
#define MIN_REPS	3
#define MIN_SIZE	4096	/* smaller bf16 chunks may not compress at all */
#define MAX_SIZE	(1ul << 30)

struct config {
	const char *tag;	/* in the result line */
	unsigned codec;		/* KV_CODEC_NONE: the shuffle alone */
	int level;
};

static const struct config configs[] = {
	{ "zstd1", KV_CODEC_ZSTD, 1 },
	{ "zstd3", KV_CODEC_ZSTD, 3 },
	{ "shuf1", KV_CODEC_SHUFFLE_ZSTD, 1 },
	{ "shuf3", KV_CODEC_SHUFFLE_ZSTD, 3 },
	{ "shuffle16", KV_CODEC_NONE, 0 },
};

struct row {
	double ratio;
	double enc_mbs;
	double dec_mbs;
};

/* Keep the compiler from dropping a copy nobody reads. */
static void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/*
 * Everything one buffer size needs; the buffers are written once before
 * any timing so that page faults are not part of a figure.
 */
struct bufs {
	size_t len;
	unsigned char *src;
	unsigned char *enc;	/* the bound of len */
	size_t cap;
	unsigned char *out;
	ssize_t enc_len;
};

/* One timed operation; returns its duration in ns, or 0 on failure. */
enum op { OP_MEMCPY, OP_ENCODE, OP_DECODE };

static uint64_t run_op(enum op op, const struct config *cf,
		       struct kv_codec_ctx *cx, struct bufs *b)
{
	uint64_t t0 = kv_now_ns();
	uint64_t t;

	switch (op) {
	case OP_MEMCPY:
		memcpy(b->out, b->src, b->len);
		clobber(b->out);
		break;
	case OP_ENCODE:
		if (cf->codec == KV_CODEC_NONE) {
			kv_shuffle16(b->src, b->enc, b->len);
			clobber(b->enc);
			b->enc_len = (ssize_t)b->len;
			break;
		}
		b->enc_len = kv_codec_encode(cx, cf->codec, b->src, b->len,
					     b->enc, b->cap);
		if (b->enc_len < 0) {
			fprintf(stderr, "kvcodecbench: %s encode of %zu bytes: %s\n",
				cf->tag, b->len, strerror((int)-b->enc_len));
			return 0;
		}
		break;
	case OP_DECODE:
		if (cf->codec == KV_CODEC_NONE) {
			kv_unshuffle16(b->enc, b->out, b->len);
			clobber(b->out);
			break;
		}
		if (kv_codec_decode(cx, cf->codec, b->enc, (size_t)b->enc_len,
				    b->out, b->len)) {
			fprintf(stderr, "kvcodecbench: %s decode of %zu bytes failed\n",
				cf->tag, b->len);
			return 0;
		}
		break;
	}
	t = kv_now_ns() - t0;
	return t ? t : 1;
}

/* Best MB/s over the repetitions, or a negative value on failure. */
static double measure(enum op op, const struct config *cf,
		      struct kv_codec_ctx *cx, struct bufs *b, bool quick)
{
	uint64_t best = UINT64_MAX;
	uint64_t total = 0;
	unsigned reps = 0;

	do {
		uint64_t t = run_op(op, cf, cx, b);

		if (!t)
			return -1;
		best = t < best ? t : best;
		total += t;
		reps++;
	} while (!quick && (reps < MIN_REPS || total < MIN_NS));
	return (double)b->len * 1e3 / (double)best;
}

static const char *size_tag(size_t len, char *buf, size_t n)
{
	if (len % MIB == 0)
		snprintf(buf, n, "%zum", len / MIB);
	else if (len % KIB == 0)
		snprintf(buf, n, "%zuk", len / KIB);
	else
		snprintf(buf, n, "%zub", len);
	return buf;
}

static int bench_size(size_t len, bool quick, FILE *rf)
{
	struct kv_codec_ctx *cx[2];
	struct bufs b = { .len = len };
	char tag[32];
	double memcpy_mbs;
	int ret = 1;

	size_tag(len, tag, sizeof(tag));
	b.cap = kv_codec_bound(KV_CODEC_ZSTD, len);
	b.src = kv_xmalloc(len);
	b.enc = kv_xmalloc(b.cap);
	b.out = kv_xmalloc(len);
	{
		uint64_t seed = 42;

		kvt_fill_bf16(b.src, len, &seed);
	}
	memset(b.enc, 0, b.cap);
	memset(b.out, 0, len);
	cx[0] = kv_codec_ctx_new(1);
	cx[1] = kv_codec_ctx_new(3);

	memcpy_mbs = measure(OP_MEMCPY, NULL, NULL, &b, quick);
	printf("%-6s %-13s %6s %9s %9.0f %9s %9s %9s\n", tag, "memcpy", "",
	       "1.000", memcpy_mbs, "1.000", "", "");
	fprintf(rf, " %s_memcpy_mbs=%.0f", tag, memcpy_mbs);

	for (size_t i = 0; i < KV_ARRAY_SIZE(configs); i++) {
		const struct config *cf = &configs[i];
		struct kv_codec_ctx *c = cx[cf->level == 3];
		struct row r;
		char level[8] = "";

		/* one untimed round trip warms the contexts and checks */
		memset(b.out, 0xa5, len);
		if (!run_op(OP_ENCODE, cf, c, &b) ||
		    !run_op(OP_DECODE, cf, c, &b))
			goto out;
		if (memcmp(b.out, b.src, len)) {
			fprintf(stderr, "kvcodecbench: %s round trip of %zu bytes differs\n",
				cf->tag, len);
			goto out;
		}
		r.enc_mbs = measure(OP_ENCODE, cf, c, &b, quick);
		r.dec_mbs = measure(OP_DECODE, cf, c, &b, quick);
		if (r.enc_mbs < 0 || r.dec_mbs < 0)
			goto out;
		/* the timed runs must have given the same bytes back */
		if (memcmp(b.out, b.src, len)) {
			fprintf(stderr, "kvcodecbench: %s round trip of %zu bytes differs\n",
				cf->tag, len);
			goto out;
		}
		r.ratio = (double)len / (double)b.enc_len;
		if (cf->codec != KV_CODEC_NONE)
			snprintf(level, sizeof(level), "%d", cf->level);
		printf("%-6s %-13s %6s %9.3f %9.0f %9.3f %9.0f %9.3f\n", tag,
		       cf->codec == KV_CODEC_NONE ? "shuffle16" :
		       kv_codec_name(cf->codec), level, r.ratio, r.enc_mbs,
		       r.enc_mbs / memcpy_mbs, r.dec_mbs, r.dec_mbs / memcpy_mbs);
		fprintf(rf, " %s_%s_ratio=%.3f %s_%s_enc_mbs=%.0f %s_%s_dec_mbs=%.0f",
			tag, cf->tag, r.ratio, tag, cf->tag, r.enc_mbs, tag,
			cf->tag, r.dec_mbs);
		fflush(stdout);
	}
	ret = 0;
out:
	kv_codec_ctx_free(cx[0]);
	kv_codec_ctx_free(cx[1]);
	free(b.src);
	free(b.enc);
	free(b.out);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kvcodecbench [--quick] [--size BYTES]\n"
		   "  --quick     64 KiB + 1 and 1 MiB, one repetition, round trips checked (CI)\n"
		   "  --size      one buffer of this many bytes (4K to 1G, e.g. 8M) instead of 4 MiB and 32 MiB\n");
}

int main(int argc, char **argv)
{
	static const size_t full_sizes[] = { 4 * MIB, 32 * MIB };
	static const size_t quick_sizes[] = { 64 * KIB + 1, 1 * MIB };
	const size_t *sizes;
	size_t nsizes;
	size_t one = 0;
	bool quick = false;
	char *result = NULL;
	size_t rlen = 0;
	FILE *rf;
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			uint64_t v;

			if (kv_parse_size(argv[++i], &v) || v < MIN_SIZE ||
			    v > MAX_SIZE) {
				fprintf(stderr, "kvcodecbench: bad --size '%s' (4K to 1G)\n",
					argv[i]);
				return 1;
			}
			one = (size_t)v;
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (one) {
		sizes = &one;
		nsizes = 1;
	} else {
		sizes = quick ? quick_sizes : full_sizes;
		nsizes = 2;
	}

	/* the result line is built as the rows come, printed last */
	rf = open_memstream(&result, &rlen);
	if (!rf) {
		perror("kvcodecbench: open_memstream");
		return 1;
	}
	printf("kvcodecbench: chunk codecs on synthetic bf16 KV data, one thread%s\n",
	       quick ? " (quick: one repetition)" : "");
	printf("MB/s of raw bytes (10^6), best of the repetitions; x memcpy: MB/s over "
	       "memcpy's, same buffer, same run\n");
	printf("%-6s %-13s %6s %9s %9s %9s %9s %9s\n", "size", "codec", "level",
	       "ratio", "enc MB/s", "x memcpy", "dec MB/s", "x memcpy");
	for (size_t s = 0; s < nsizes && !ret; s++)
		ret = bench_size(sizes[s], quick, rf);
	fclose(rf);
	if (!ret)
		printf("result: quick=%d%s\n", quick, result);
	free(result);
	return ret;
}
