/*
 * ssdbench.c - SSD-tier get bandwidth against fio O_DIRECT random reads.
 *
 * One chunk size, one codec and one queue depth per run (--quick: two
 * depths). It starts kvstored with an SSD tier in a fresh directory on the
 * disk under test (--dir; default /var/tmp), puts a data set of distinct
 * chunks, flushes DRAM to SSD (kvc_flush), and drops every DRAM copy
 * (kvc_evict of a chunk with an SSD copy demotes it). Then it times
 * kvc_get_batch of qd keys at a time, in random order: each batch promotes
 * qd chunks at once (io_uring O_DIRECT reads into the DRAM arena, XXH3
 * check, decode) and copies them out to the caller. After each batch the
 * DRAM copies of its keys are dropped again, and before it kvc_lookup
 * checks that every key is on SSD only, so every timed get reads the disk.
 * Lookups, evictions and checks lie outside the timed region.
 *
 * The figure is GB/s (1e9 B/s) of decoded bytes delivered to the caller:
 * bytes of all timed batches over the sum of their get_batch times. The
 * ceiling is fio's randread bandwidth at the same block size and depth on
 * the same directory, measured by tests/bench/ssdbench.sh right before
 * this run and passed in with --fio-mbps; the ratio to it is printed. For
 * the codecs, the stored ratio is the bytes put over the SSD tier's
 * used_bytes once the data set is on SSD (raw / stored, as codecbench).
 *
 * Where the time goes: after the timed batches, a few more batches run as
 * kvc_pin (the promotions: read, check, decode, and the round trip), then
 * the copy out of the arena, then kvc_release, each timed alone: the
 * "breakdown" line. kvc_get_batch does the same three steps in one call.
 *
 * The data: a pool of bf16-like values (normal floats, each of 128
 * channels scaled by a power of two between 1/16 and 2, truncated to bf16,
 * the generator of tests/unit/test_codec.c); chunk i is a window of the
 * pool at an offset of its own, stamped with i in its first and last
 * words. The same data for every codec, so runs compare.
 *
 * Correctness: every chunk of every batch must come back with its size
 * and its stamps; the first batch of each measurement (--quick: every
 * batch) is poisoned first and compared byte for byte with what was put,
 * outside the timed region. Wrong bytes fail the run.
 *
 * Exit status: 0, or 1 on a real error (a call failed, bytes came back
 * wrong, a get that would not read the disk, the daemon did not stop
 * cleanly). Low figures never fail it: CI runs --quick only to check that
 * the benchmark works.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/kvdata.h"
#include "tests/lib/rng.h"
#include "tests/lib/size.h"
#include "tests/lib/tmpdir.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

#define MAX_QDS		2		/* depths measured in one run */
#define MIN_BATCHES	2		/* timed batches, whatever --seconds says */
#define BREAK_BYTES	(256 * MIB)	/* the breakdown reads this much, */
#define BREAK_BATCHES	64		/* in at most this many batches */
#define POOL_EXTRA	(1 * MIB)	/* pool = chunk + this: window offsets */
#define ALIGN		(2 * MIB)
#define DATA_MIN	(512 * MIB)	/* the default data set, or one batch */
#define STAMP		0x6b7673736462656eull	/* "kvssdben" */
#define POISON		0xa5

struct opts {
	const char *daemon;		/* --daemon, or NULL */
	const char *dir;		/* where the SSD tier's directory goes */
	const char *codec;
	uint64_t size;			/* chunk bytes */
	uint64_t data;			/* data set bytes */
	uint64_t total;			/* bytes read per measurement */
	unsigned qds[MAX_QDS];
	unsigned n_qds;
	double seconds;			/* cap per measurement */
	double fio_mbps;		/* the ceiling; 0: none */
	bool quick;
	bool pipeline;			/* prefetch the next batch during this one */
};

struct meas {
	unsigned qd;
	uint64_t bytes;			/* delivered in timed batches */
	double ns;			/* their get_batch time */
	size_t batches;
	double p50_ms;			/* per batch */
	double min_ms;
	double max_ms;
	uint64_t verified;		/* bytes compared byte for byte */
	double pin_ns;			/* breakdown: per batch */
	double copy_ns;
	double release_ns;
	size_t break_batches;
};

/* The run's shared state. */
struct bench {
	const struct opts *o;
	struct kvc *c;
	uint32_t ns;
	uint64_t n;			/* chunks in the data set */
	unsigned char *pool;
	size_t pool_bytes;
	unsigned char *want;		/* scratch: one chunk as it was put */
	unsigned char *bufs;		/* qd_max destinations */
	struct kvc_get_desc *d;
	struct kvc_key *keys;
	struct kvc_key *dram_keys;	/* scratch: KVC_MAX_BATCH keys */
	struct kvc_loc *locs;
	uint8_t *tiers;
	int *status;
	uint64_t *perm;
	uint64_t rng;
};

/* Print "kvssdbench: <what>: <error name>" and return -1. */
static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvssdbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", kvc_strerror(err));
	fputc('\n', stderr);
	return -1;
}

static const char *size_name(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= GIB && bytes % GIB == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", bytes / GIB);
	else if (bytes >= MIB && bytes % MIB == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bytes / MIB);
	else if (bytes >= KIB && bytes % KIB == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", bytes / KIB);
	else
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	return buf;
}

static uint64_t round_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

static double gbps(double bytes, double ns)
{
	return ns > 0 ? bytes / ns : 0;	/* bytes per ns is GB/s */
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ---- data ----------------------------------------------------------------- */

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(uint64_t *state)
{
	return kvt_splitmix(state);
}

/* KV-like bf16 (tests/lib/kvdata.h), as tests/unit/test_codec.c's. */
static void fill_bf16(unsigned char *p, size_t len, uint64_t seed)
{
	uint64_t st = seed;

	kvt_fill_bf16(p, len, &st);
}

static struct kvc_key key_of(const struct bench *b, uint64_t i)
{
	return (struct kvc_key){ .lo = i, .hi = STAMP ^ b->o->size };
}

/* Chunk i's window of the pool: channel-aligned, its own offset. */
static const unsigned char *window(const struct bench *b, uint64_t i)
{
	uint64_t st = i ^ 0x5eed;
	size_t slots = (b->pool_bytes - b->o->size) / (2 * KVT_BF16_CHANNELS) + 1;

	return b->pool + (rnd(&st) % slots) * (2 * KVT_BF16_CHANNELS);
}

static void stamp_set(void *buf, uint64_t bytes, uint64_t i)
{
	uint64_t *w = buf;

	w[0] = STAMP ^ i;
	w[bytes / 8 - 1] = STAMP ^ i;
}

static bool stamp_ok(const void *buf, uint64_t bytes, uint64_t i)
{
	const uint64_t *w = buf;

	return w[0] == (STAMP ^ i) && w[bytes / 8 - 1] == (STAMP ^ i);
}

/* Chunk i exactly as put, into dst. */
static void chunk_bytes(const struct bench *b, uint64_t i, void *dst)
{
	memcpy(dst, window(b, i), b->o->size);
	stamp_set(dst, b->o->size, i);
}

/* ---- the data set ------------------------------------------------------------ */

static const struct kvc_tier_stats *tier_stats(const struct kvc_stats *st,
					       const char *name)
{
	for (unsigned i = 0; i < st->n_tiers; i++)
		if (!strcmp(st->tiers[i].name, name))
			return &st->tiers[i];
	return NULL;
}

/*
 * Drop the DRAM copies of keys[0..n). kvc_evict drops a chunk from the
 * cache altogether unless it has a copy in DRAM (then it drops just that),
 * so only chunks that kvc_lookup finds in DRAM are evicted, and each of
 * those must go.
 */
static int drop_dram(struct bench *b, const struct kvc_key *keys, size_t n)
{
	struct kvc_key *in_dram = b->dram_keys;

	for (size_t i = 0; i < n; i += KVC_MAX_BATCH) {
		size_t m = n - i < KVC_MAX_BATCH ? n - i : KVC_MAX_BATCH, k = 0;
		int ret = kvc_lookup(b->c, b->ns, keys + i, m, b->tiers);

		if (ret < 0)
			return fail(ret, "lookup of %zu chunks", m);
		for (size_t j = 0; j < m; j++) {
			if (b->tiers[j] == KVC_TIER_DRAM)
				in_dram[k++] = keys[i + j];
			else if (b->tiers[j] != KVC_TIER_SSD)
				return fail(0, "chunk %" PRIu64 " is gone (tier %u)",
					    keys[i + j].lo, b->tiers[j]);
		}
		if (!k)
			continue;
		ret = kvc_evict(b->c, b->ns, in_dram, k, b->status);
		if (ret < 0)
			return fail(ret, "evict of %zu chunks", k);
		for (size_t j = 0; j < k; j++)
			if (b->status[j])
				return fail(b->status[j], "evict of chunk %" PRIu64,
					    in_dram[j].lo);
	}
	return 0;
}

/* Every key of keys[0..n) must be on SSD only: a get of it reads the disk. */
static int check_on_ssd(struct bench *b, const struct kvc_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i += KVC_MAX_BATCH) {
		size_t m = n - i < KVC_MAX_BATCH ? n - i : KVC_MAX_BATCH;
		int ret = kvc_lookup(b->c, b->ns, keys + i, m, b->tiers);

		if (ret < 0)
			return fail(ret, "lookup of %zu chunks", m);
		for (size_t j = 0; j < m; j++)
			if (b->tiers[j] != KVC_TIER_SSD)
				return fail(0, "chunk %" PRIu64 " is in tier %u, not SSD only: "
					    "its get would not read the disk",
					    keys[i + j].lo, b->tiers[j]);
	}
	return 0;
}

struct put_res {
	double put_s;			/* puts, then the flush */
	double flush_s;
	uint64_t ssd_used;
	uint64_t ssd_capacity;
	uint64_t ssd_chunks;
};

/* Put the data set, flush it to SSD, drop every DRAM copy. */
static int load(struct bench *b, struct put_res *pr)
{
	const uint64_t size = b->o->size;
	struct kvc_flush_result fr;
	struct kvc_stats st;
	const struct kvc_tier_stats *ssd;
	uint64_t t0, t1, t2;
	int ret;

	t0 = kvt_now_ns();
	for (uint64_t i = 0; i < b->n; i++) {
		struct kvc_key k = key_of(b, i);

		chunk_bytes(b, i, b->want);
		ret = kvc_put(b->c, b->ns, &k, NULL, 256, 0, b->want, size);
		if (ret)
			return fail(ret, "put of chunk %" PRIu64, i);
	}
	t1 = kvt_now_ns();
	ret = kvc_flush(b->c, KVC_TIER_DRAM, 0, &fr);
	if (ret)
		return fail(ret, "flush of the DRAM tier");
	t2 = kvt_now_ns();
	if (fr.skipped)
		return fail(0, "flush left %" PRIu64 " chunks unwritten", fr.skipped);
	pr->put_s = (double)(t1 - t0) / 1e9;
	pr->flush_s = (double)(t2 - t1) / 1e9;

	ret = kvc_stats(b->c, &st);
	if (ret)
		return fail(ret, "stats");
	ssd = tier_stats(&st, "ssd");
	if (!ssd)
		return fail(0, "the daemon has no ssd tier");
	pr->ssd_used = ssd->used_bytes;
	pr->ssd_capacity = ssd->capacity_bytes;
	pr->ssd_chunks = ssd->chunks;
	if (ssd->chunks != b->n)
		return fail(0, "%" PRIu64 " of the %" PRIu64 " chunks are on SSD "
			    "(SSD tier: %" PRIu64 " of %" PRIu64 " bytes used)",
			    ssd->chunks, b->n, ssd->used_bytes, ssd->capacity_bytes);

	for (uint64_t i = 0; i < b->n; i++)
		b->keys[i] = key_of(b, i);
	if (drop_dram(b, b->keys, b->n) || check_on_ssd(b, b->keys, b->n))
		return -1;
	return 0;
}

/* ---- one queue depth ----------------------------------------------------------- */

/* Fisher-Yates over 0..n. */
static void shuffle(struct bench *b)
{
	for (uint64_t i = 0; i < b->n; i++)
		b->perm[i] = i;
	for (uint64_t i = b->n - 1; i > 0; i--) {
		uint64_t j = rnd(&b->rng) % (i + 1), t = b->perm[i];

		b->perm[i] = b->perm[j];
		b->perm[j] = t;
	}
}

/* The next qd keys of the random order (never one twice in a batch). */
static void next_batch(struct bench *b, unsigned qd, uint64_t *pos)
{
	if (*pos + qd > b->n) {
		shuffle(b);
		*pos = 0;
	}
	for (unsigned i = 0; i < qd; i++)
		b->keys[i] = key_of(b, b->perm[*pos + i]);
	*pos += qd;
}

/* What came back for the batch in d[0..qd): sizes and stamps; all bytes if full. */
static int check_batch(struct bench *b, unsigned qd, bool full, uint64_t *verified)
{
	const uint64_t size = b->o->size;

	for (unsigned i = 0; i < qd; i++) {
		const struct kvc_get_desc *g = &b->d[i];
		uint64_t idx = g->key.lo;

		if (g->status)
			return fail(g->status, "get of chunk %" PRIu64, idx);
		if (g->bytes != size)
			return fail(0, "get of chunk %" PRIu64 ": %zu bytes, not %" PRIu64,
				    idx, g->bytes, size);
		if (!stamp_ok(g->buf, size, idx))
			return fail(0, "get of chunk %" PRIu64 " returned another chunk's bytes",
				    idx);
		if (!full)
			continue;
		chunk_bytes(b, idx, b->want);
		if (memcmp(g->buf, b->want, size)) {
			const unsigned char *got = g->buf;
			uint64_t at = 0;

			while (got[at] == b->want[at])
				at++;
			return fail(0, "get of chunk %" PRIu64 " differs from what was put "
				    "at byte %" PRIu64 " of %" PRIu64, idx, at, size);
		}
		*verified += size;
	}
	return 0;
}

/*
 * Get the batch b->keys[0..qd) once, timed: check what came back (every
 * byte if full), drop the DRAM copies again, and record the batch in m and
 * lat. Returns the get's nanoseconds, or -1 (reported).
 */
static double timed_get(struct bench *b, unsigned qd, bool full, struct meas *m,
			double *lat)
{
	const uint64_t size = b->o->size;
	uint64_t t0, t1;
	int n;

	for (unsigned i = 0; i < qd; i++)
		b->d[i] = (struct kvc_get_desc){
			.key = b->keys[i],
			.buf = b->bufs + i * size,
			.cap = size,
		};
	if (full)
		memset(b->bufs, POISON, qd * size);
	t0 = kvt_now_ns();
	n = kvc_get_batch(b->c, b->ns, b->d, qd);
	t1 = kvt_now_ns();
	if (n < 0)
		return fail(n, "get_batch of %u chunks", qd);
	if (check_batch(b, qd, full, &m->verified))
		return -1;
	if ((unsigned)n != qd)
		return fail(0, "get_batch copied %d of %u chunks", n, qd);
	if (drop_dram(b, b->keys, qd))
		return -1;
	lat[m->batches++] = (double)(t1 - t0);
	m->bytes += qd * size;
	return (double)(t1 - t0);
}

/* Per-batch latency figures from the samples. */
static void latencies(struct meas *m, double *lat)
{
	qsort(lat, m->batches, sizeof(*lat), cmp_double);
	m->p50_ms = lat[(m->batches - 1) / 2] / 1e6;
	m->min_ms = lat[0] / 1e6;
	m->max_ms = lat[m->batches - 1] / 1e6;
}

/*
 * The next qd keys of one half of the data set (even or odd chunks), in a
 * random order per half: consecutive batches of a pipeline come from
 * different halves, so the batch being prefetched never overlaps the one
 * being read, whatever the shuffles do.
 */
static void next_half(struct bench *b, unsigned half, unsigned qd, uint64_t *perm,
		      uint64_t *pos, struct kvc_key *out)
{
	uint64_t n = b->n / 2;

	if (*pos + qd > n) {
		for (uint64_t i = 0; i < n; i++)
			perm[i] = 2 * i + half;
		for (uint64_t i = n - 1; i > 0; i--) {
			uint64_t j = rnd(&b->rng) % (i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		*pos = 0;
	}
	for (unsigned i = 0; i < qd; i++)
		out[i] = key_of(b, perm[*pos + i]);
	*pos += qd;
}

/*
 * --pipeline: as an engine does with kvc_prefetch() while a request waits
 * in its queue. Batch k+1 is prefetched (its reads start) before batch k
 * is got and copied out, so the disk never waits for the copy. GB/s is
 * over the whole loop's time, lookups and evictions included.
 */
static int measure_pipelined(struct bench *b, unsigned qd, struct meas *m)
{
	const struct opts *o = b->o;
	const uint64_t size = o->size;
	uint64_t *perm[2], pos[2] = { UINT64_MAX / 2, UINT64_MAX / 2 };
	struct kvc_key *cur = malloc(qd * sizeof(*cur));
	struct kvc_key *nxt = malloc(qd * sizeof(*nxt));
	size_t cap = (size_t)(o->total / (qd * size)) + MIN_BATCHES + 1;
	double *lat = malloc(cap * sizeof(*lat));
	uint64_t start;
	unsigned half = 0;
	int ret = -1;

	perm[0] = malloc((b->n / 2 + 1) * sizeof(uint64_t));
	perm[1] = malloc((b->n / 2 + 1) * sizeof(uint64_t));
	if (!cur || !nxt || !lat || !perm[0] || !perm[1]) {
		fail(-ENOMEM, "cannot allocate the pipeline");
		goto out;
	}
	memset(m, 0, sizeof(*m));
	m->qd = qd;
	b->rng = 0x9195 ^ qd;
	next_half(b, half, qd, perm[half], &pos[half], cur);
	if (check_on_ssd(b, cur, qd))
		goto out;
	start = kvt_now_ns();
	if ((ret = kvc_prefetch(b->c, b->ns, cur, qd, NULL)) < 0) {
		fail(ret, "prefetch of %u chunks", qd);
		goto out;
	}
	ret = -1;
	for (;;) {
		bool last = m->batches + 1 >= cap ||
			    (m->batches + 1 >= MIN_BATCHES &&
			     (m->bytes + qd * size >= o->total ||
			      (double)(kvt_now_ns() - start) / 1e9 >= o->seconds));
		bool full = m->batches == 0;
		int n;

		if (!last) {	/* the next batch's reads start now */
			half ^= 1;
			next_half(b, half, qd, perm[half], &pos[half], nxt);
			if (check_on_ssd(b, nxt, qd))
				goto out;
			n = kvc_prefetch(b->c, b->ns, nxt, qd, NULL);
			if (n < 0) {
				fail(n, "prefetch of %u chunks", qd);
				goto out;
			}
		}
		memcpy(b->keys, cur, qd * sizeof(*cur));
		if (timed_get(b, qd, full, m, lat) < 0)
			goto out;
		if (last)
			break;
		memcpy(cur, nxt, qd * sizeof(*cur));
	}
	m->ns = (double)(kvt_now_ns() - start);
	latencies(m, lat);
	ret = 0;
out:
	free(cur);
	free(nxt);
	free(lat);
	free(perm[0]);
	free(perm[1]);
	return ret;
}

/*
 * Timed batches until --total bytes were read (or --seconds passed, after
 * MIN_BATCHES), then the breakdown.
 */
static int measure(struct bench *b, unsigned qd, struct meas *m)
{
	const struct opts *o = b->o;
	const uint64_t size = o->size;
	size_t cap = (size_t)(o->total / (qd * size)) + MIN_BATCHES + 1;
	double *lat = malloc(cap * sizeof(*lat));
	uint64_t pos = b->n, start;
	int ret = -1;

	if (!lat)
		return fail(-ENOMEM, "cannot allocate %zu samples", cap);
	if (o->pipeline) {
		free(lat);
		return measure_pipelined(b, qd, m);
	}
	memset(m, 0, sizeof(*m));
	m->qd = qd;
	b->rng = 0x51ed ^ qd;
	start = kvt_now_ns();
	for (;;) {
		bool full = o->quick || m->batches == 0;
		double t;

		if (m->batches >= MIN_BATCHES &&
		    (m->bytes >= o->total ||
		     (double)(kvt_now_ns() - start) / 1e9 >= o->seconds ||
		     m->batches == cap))
			break;
		next_batch(b, qd, &pos);
		if (check_on_ssd(b, b->keys, qd))
			goto out;
		t = timed_get(b, qd, full, m, lat);
		if (t < 0)
			goto out;
		m->ns += t;
	}
	latencies(m, lat);

	/* The breakdown: what get_batch does, one step at a time. */
	for (uint64_t done = 0; m->break_batches < BREAK_BATCHES &&
	     (o->quick ? m->break_batches < 2 : done < BREAK_BYTES); done += qd * size) {
		uint64_t t0, t1, t2, t3;

		next_batch(b, qd, &pos);
		if (check_on_ssd(b, b->keys, qd))
			goto out;
		t0 = kvt_now_ns();
		ret = kvc_pin(b->c, b->ns, b->keys, qd, b->locs);
		t1 = kvt_now_ns();
		if (ret) {
			fail(ret, "pin of %u chunks", qd);
			goto out;
		}
		for (unsigned i = 0; i < qd; i++) {
			if (b->locs[i].status || !b->locs[i].ptr || b->locs[i].bytes != size) {
				fail(b->locs[i].status, "pin of chunk %" PRIu64, b->keys[i].lo);
				goto out;
			}
			memcpy(b->bufs + i * size, b->locs[i].ptr, size);
		}
		t2 = kvt_now_ns();
		ret = kvc_release(b->c, b->ns, b->keys, qd, b->status);
		t3 = kvt_now_ns();
		if (ret) {
			fail(ret, "release of %u chunks", qd);
			goto out;
		}
		for (unsigned i = 0; i < qd; i++) {
			if (!stamp_ok(b->bufs + i * size, size, b->keys[i].lo)) {
				fail(0, "pinned chunk %" PRIu64 " holds another chunk's bytes",
				     b->keys[i].lo);
				goto out;
			}
		}
		if (drop_dram(b, b->keys, qd))
			goto out;
		m->pin_ns += (double)(t1 - t0);
		m->copy_ns += (double)(t2 - t1);
		m->release_ns += (double)(t3 - t2);
		m->break_batches++;
	}
	m->pin_ns /= (double)m->break_batches;
	m->copy_ns /= (double)m->break_batches;
	m->release_ns /= (double)m->break_batches;
	ret = 0;
	goto out_ret;
out:
	ret = -1;
out_ret:
	free(lat);
	return ret;
}

/* ---- setup ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: kvssdbench [--dir DIR] [--codec C] [--size BYTES] [--qd N] "
		"[--data BYTES] [--total BYTES]\n"
		"                  [--seconds S] [--fio-mbps X] [--daemon PATH] [--quick]\n"
		"  --dir DIR       put the SSD tier in a fresh directory under DIR "
		"(default /var/tmp); removed at the end\n"
		"  --codec C       none, zstd or shuffle+zstd (default none)\n"
		"  --size BYTES    chunk size (default 32M)\n"
		"  --qd N          chunks per kvc_get_batch, all promoted at once (default 32)\n"
		"  --data BYTES    data set on SSD (default the larger of 512M and qd chunks)\n"
		"  --total BYTES   bytes read per measurement (default the data set)\n"
		"  --seconds S     stop a measurement after S seconds (default 10)\n"
		"  --fio-mbps X    the ceiling: fio randread MB/s (1e6 B/s) at this size and qd\n"
		"  --daemon PATH   kvstored to start (default: $KVSTORED or build/kvstored)\n"
		"  --quick         256 KiB chunks, 4 MiB, qd 1 and 4, all bytes checked (CI)\n"
		"  --pipeline      prefetch batch k+1 while batch k is got (an engine's use)\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *size = NULL, *data = NULL, *total = NULL, *qd = NULL;
	const char *secs = NULL, *fio = NULL;
	char *end;

	memset(o, 0, sizeof(*o));
	o->codec = "none";
	o->dir = "/var/tmp";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--quick")) {
			o->quick = true;
			continue;
		} else if (!strcmp(a, "--pipeline")) {
			o->pipeline = true;
			continue;
		} else if (!strcmp(a, "--dir")) {
			val = &o->dir;
		} else if (!strcmp(a, "--codec")) {
			val = &o->codec;
		} else if (!strcmp(a, "--size")) {
			val = &size;
		} else if (!strcmp(a, "--qd")) {
			val = &qd;
		} else if (!strcmp(a, "--data")) {
			val = &data;
		} else if (!strcmp(a, "--total")) {
			val = &total;
		} else if (!strcmp(a, "--seconds")) {
			val = &secs;
		} else if (!strcmp(a, "--fio-mbps")) {
			val = &fio;
		} else if (!strcmp(a, "--daemon")) {
			val = &o->daemon;
		} else {
			fprintf(stderr, "kvssdbench: unknown argument '%s'\n", a);
			usage(stderr);
			return -1;
		}
		if (++i == argc) {
			fprintf(stderr, "kvssdbench: %s needs a value\n", a);
			return -1;
		}
		*val = argv[i];
	}
	if (strcmp(o->codec, "none") && strcmp(o->codec, "zstd") &&
	    strcmp(o->codec, "shuffle+zstd")) {
		fprintf(stderr, "kvssdbench: --codec '%s': none, zstd or shuffle+zstd\n",
			o->codec);
		return -1;
	}
	if (o->quick) {
		if (size || qd || data || total) {
			fprintf(stderr, "kvssdbench: --quick sets its own sizes and depths\n");
			return -1;
		}
		o->size = 256 * KIB;
		o->qds[0] = 1;
		o->qds[1] = 4;
		o->n_qds = 2;
		o->data = 4 * MIB;
		o->total = 4 * MIB;
	} else {
		o->size = 32 * MIB;
		o->qds[0] = 32;
		o->n_qds = 1;
	}
	if (size && (kvt_parse_size(size, &o->size) || o->size % 4096 || o->size > 4 * GIB)) {
		fprintf(stderr, "kvssdbench: --size '%s': a multiple of 4096 up to 4G\n", size);
		return -1;
	}
	if (qd) {
		unsigned long v = strtoul(qd, &end, 10);

		if (*end || v == 0 || v > KVC_MAX_BATCH) {
			fprintf(stderr, "kvssdbench: --qd '%s': 1 to %d\n", qd, KVC_MAX_BATCH);
			return -1;
		}
		o->qds[0] = (unsigned)v;
	}
	if (!o->quick) {
		uint64_t batch = (uint64_t)o->qds[0] * o->size * (o->pipeline ? 2 : 1);

		o->data = batch > DATA_MIN ? batch : DATA_MIN;
	}
	if (data && kvt_parse_size(data, &o->data)) {
		fprintf(stderr, "kvssdbench: --data '%s': give a size\n", data);
		return -1;
	}
	o->data = o->data / o->size * o->size;
	if (o->data < o->qds[o->n_qds - 1] * o->size * (o->pipeline ? 2 : 1)) {
		fprintf(stderr, "kvssdbench: the data set must hold at least qd chunks "
			"(2 qd with --pipeline)\n");
		return -1;
	}
	if (!o->quick)
		o->total = o->data;
	if (total && kvt_parse_size(total, &o->total)) {
		fprintf(stderr, "kvssdbench: --total '%s': give a size\n", total);
		return -1;
	}
	o->seconds = o->quick ? 5 : 10;
	if (secs) {
		o->seconds = strtod(secs, &end);
		if (*end || !(o->seconds > 0 && o->seconds <= 3600)) {
			fprintf(stderr, "kvssdbench: --seconds '%s': give a number of seconds\n",
				secs);
			return -1;
		}
	}
	if (fio) {
		o->fio_mbps = strtod(fio, &end);
		if (*end || !(o->fio_mbps >= 0)) {
			fprintf(stderr, "kvssdbench: --fio-mbps '%s': give MB/s\n", fio);
			return -1;
		}
	}
	return 0;
}

/* Map every page of the arena in this process, as a long-running engine has. */
static void touch_arena(struct kvc *c)
{
	size_t bytes = 0;
	const volatile unsigned char *p = kvc_dram_base(c, &bytes);

	for (size_t off = 0; p && off < bytes; off += 4096)
		(void)p[off];
}

static int bench_alloc(struct bench *b, const struct opts *o)
{
	unsigned qd = o->qds[o->n_qds - 1];

	memset(b, 0, sizeof(*b));
	b->o = o;
	b->n = o->data / o->size;
	b->pool_bytes = o->size + POOL_EXTRA;
	b->pool = malloc(b->pool_bytes);
	b->want = malloc(o->size);
	b->d = calloc(qd, sizeof(*b->d));
	b->keys = calloc(b->n, sizeof(*b->keys));
	b->dram_keys = calloc(KVC_MAX_BATCH, sizeof(*b->dram_keys));
	b->locs = calloc(qd, sizeof(*b->locs));
	b->tiers = calloc(KVC_MAX_BATCH, 1);
	b->status = calloc(KVC_MAX_BATCH, sizeof(*b->status));
	b->perm = calloc(b->n, sizeof(*b->perm));
	if (posix_memalign((void **)&b->bufs, 4096, qd * o->size))
		b->bufs = NULL;
	if (!b->pool || !b->want || !b->d || !b->keys || !b->dram_keys || !b->locs || !b->tiers ||
	    !b->status || !b->perm || !b->bufs)
		return fail(-ENOMEM, "cannot allocate the buffers");
	fill_bf16(b->pool, b->pool_bytes, 0xb16);
	return 0;
}

/*
 * Fault in the buffers the timed region writes. After kvt_start(): its
 * fork write-protects every page of this process (copy-on-write until the
 * child's exec), and the first write to each page after it faults.
 */
static void touch_buffers(struct bench *b)
{
	memset(b->bufs, POISON, (size_t)b->o->qds[b->o->n_qds - 1] * b->o->size);
	memset(b->want, 0, b->o->size);
}

static void bench_free(struct bench *b)
{
	free(b->pool);
	free(b->want);
	free(b->d);
	free(b->keys);
	free(b->dram_keys);
	free(b->locs);
	free(b->tiers);
	free(b->status);
	free(b->perm);
	free(b->bufs);
}

/* ---- report ----------------------------------------------------------------------- */

static void report(const struct opts *o, const struct bench *b, const char *ssd_dir,
		   uint64_t dram, const struct put_res *pr, bool direct, bool uring,
		   const struct meas *ms)
{
	double put = (double)o->data;
	double stored = pr->ssd_used ? put / (double)pr->ssd_used : 0;
	double fio = o->fio_mbps / 1e3;
	char sz[24], ds[24], dr[24], vb[24], fs[16], rs[16];

	size_name(o->size, sz, sizeof(sz));
	printf("kvssdbench: SSD-tier gets (promote to DRAM, copy out) against fio O_DIRECT "
	       "randread\n");
	printf("daemon: %s; DRAM tier %s; SSD tier in %s: %s, %s, codec %s, queue depth 64\n",
	       kvt_daemon_path(), size_name(dram, dr, sizeof(dr)), ssd_dir,
	       direct ? "O_DIRECT" : "PAGE CACHE (no O_DIRECT there)",
	       uring ? "io_uring" : "pread/pwrite", o->codec);
	printf("data: %" PRIu64 " chunks of %s (%s), bf16-like; put %.2f s + flush %.2f s "
	       "(%.2f GB/s raw to SSD); SSD used %" PRIu64 " bytes: stored ratio %.3f\n",
	       b->n, sz, size_name(o->data, ds, sizeof(ds)), pr->put_s, pr->flush_s,
	       gbps(put, (pr->put_s + pr->flush_s) * 1e9), pr->ssd_used, stored);
	if (o->pipeline)
		printf("method: pipelined: kvc_prefetch of batch k+1, then kvc_get_batch of batch k "
		       "(qd keys, each on SSD only); GB/s = 1e9 B/s of decoded bytes over the "
		       "whole loop\n");
	else
		printf("method: kvc_get_batch of qd keys in random order, each on SSD only (checked "
		       "before); GB/s = 1e9 B/s of decoded bytes over the sum of get_batch times\n");
	printf("size      qd  codec         store GB/s  fio GB/s  ratio  stored  batch p50 ms "
	       "(min-max)        batches  verified\n");
	for (unsigned i = 0; i < o->n_qds; i++) {
		const struct meas *m = &ms[i];
		double g = gbps((double)m->bytes, m->ns);

		strcpy(fs, "-");
		strcpy(rs, "-");
		if (fio > 0) {
			snprintf(fs, sizeof(fs), "%.3f", fio);
			snprintf(rs, sizeof(rs), "%.3f", g / fio);
		}
		printf("%-8s %4u  %-12s  %10.3f  %8s  %5s  %6.3f  %12.2f (%.2f-%.2f)  %7zu  %s\n",
		       sz, m->qd, o->codec, g, fs, rs, stored, m->p50_ms, m->min_ms,
		       m->max_ms, m->batches, size_name(m->verified, vb, sizeof(vb)));
	}
	for (unsigned i = 0; i < o->n_qds; i++) {
		const struct meas *m = &ms[i];
		double batch = (double)m->qd * (double)o->size;

		if (!m->break_batches)	/* --pipeline measures no breakdown */
			continue;
		printf("breakdown qd %u (%zu batches, per batch): pin (promote: read, check, "
		       "decode) %.2f ms = %.3f GB/s; copy out %.2f ms = %.3f GB/s; "
		       "release %.2f ms\n", m->qd, m->break_batches, m->pin_ns / 1e6,
		       gbps(batch, m->pin_ns), m->copy_ns / 1e6, gbps(batch, m->copy_ns),
		       m->release_ns / 1e6);
	}
	for (unsigned i = 0; i < o->n_qds; i++) {
		const struct meas *m = &ms[i];
		double g = gbps((double)m->bytes, m->ns);

		if (fio > 0)
			printf("figure: SSD get %s qd %u %s: %.3f GB/s, %.2f of fio randread "
			       "%.3f GB/s%s\n", sz, m->qd, o->codec, g, g / fio, fio,
			       strcmp(o->codec, "none") ? "" : " (target >= 0.90)");
		else
			printf("figure: SSD get %s qd %u %s: %.3f GB/s (no fio ceiling given)\n",
			       sz, m->qd, o->codec, g);
	}
	printf("result: quick=%d codec=%s size=%" PRIu64 " data=%" PRIu64 " chunks=%" PRIu64
	       " stored_ratio=%.4f ssd_used=%" PRIu64 " put_gbps=%.3f direct=%d uring=%d",
	       o->quick, o->codec, o->size, o->data, b->n, stored, pr->ssd_used,
	       gbps(put, (pr->put_s + pr->flush_s) * 1e9), direct, uring);
	for (unsigned i = 0; i < o->n_qds; i++) {
		const struct meas *m = &ms[i];
		double g = gbps((double)m->bytes, m->ns);
		double batch = (double)m->qd * (double)o->size;

		printf(" qd%u_gbps=%.4f qd%u_fio_gbps=%.4f qd%u_ratio=%.4f qd%u_bytes=%" PRIu64
		       " qd%u_batches=%zu qd%u_p50_ms=%.3f qd%u_pin_gbps=%.4f qd%u_copy_gbps=%.4f"
		       " qd%u_verified=%" PRIu64,
		       m->qd, g, m->qd, fio, m->qd, fio > 0 ? g / fio : 0, m->qd, m->bytes,
		       m->qd, m->batches, m->qd, m->p50_ms, m->qd, gbps(batch, m->pin_ns),
		       m->qd, gbps(batch, m->copy_ns), m->qd, m->verified);
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bench b;
	struct kvt_daemon d;
	struct put_res pr = { 0 };
	struct meas ms[MAX_QDS];
	char top[512], ssd_dir[540], dram_s[32], ssd_s[32], name[64];
	uint64_t dram, ssd_bytes;
	bool started = false, made_dir = false, direct, uring;
	unsigned qd_max;
	int status = 1;

	if (parse_args(argc, argv, &o))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A reader that goes away must not leave the daemon running. */
	signal(SIGPIPE, SIG_IGN);
	if (o.daemon && setenv("KVSTORED", o.daemon, 1)) {
		fail(-errno, "setenv");
		return 1;
	}
	if (bench_alloc(&b, &o))
		goto out_free;

	/* top/tier: the SSD tier's directory. */
	if (kvt_tmpdir(top, sizeof(top), o.dir, "kvssdbench.")) {
		fail(-errno, "cannot make a directory under '%s'", o.dir);
		goto out_free;
	}
	made_dir = true;
	snprintf(ssd_dir, sizeof(ssd_dir), "%s/tier", top);
	qd_max = o.qds[o.n_qds - 1];

	/*
	 * DRAM: the promotions of a batch at once, plus slack. SSD: the data
	 * set stored raw, plus slack, in whole data files (1 GiB each, and a
	 * tier over 1 GiB uses whole files only).
	 */
	dram = round_up((o.pipeline ? 2 : 1) * qd_max * round_up(o.size, 4096) +
			4 * o.size + 32 * MIB, ALIGN);
	ssd_bytes = round_up(o.data + o.data / 8 + 64 * MIB, MIB);
	if (ssd_bytes > GIB)
		ssd_bytes = round_up(ssd_bytes, GIB);
	snprintf(dram_s, sizeof(dram_s), "%" PRIu64, dram);
	snprintf(ssd_s, sizeof(ssd_s), "%" PRIu64, ssd_bytes);
	{
		const char *args[] = { "--dram-bytes", dram_s, "--ssd-dir", ssd_dir,
				       "--ssd-bytes", ssd_s, "--ssd-codec", o.codec,
				       "--ssd-queue-depth", "64", "--log", "warn", NULL };

		if (kvt_start(&d, args)) {
			fail(0, "cannot start '%s'", kvt_daemon_path());
			kvt_cleanup(&d);
			goto out_dir;
		}
	}
	started = true;
	direct = !kvt_log_has(&d, "cannot do O_DIRECT");
	uring = !kvt_log_has(&d, "using pread/pwrite");

	if (kvc_connect(d.sock, &b.c)) {
		fail(0, "cannot connect to '%s'", d.sock);
		goto out_stop;
	}
	snprintf(name, sizeof(name), "kvssdbench/%d", (int)getpid());
	{
		int ret = kvc_ns_register(b.c, name, &b.ns);

		if (ret) {
			fail(ret, "cannot register namespace '%s'", name);
			goto out_close;
		}
	}
	touch_arena(b.c);
	touch_buffers(&b);
	if (load(&b, &pr))
		goto out_close;
	for (unsigned i = 0; i < o.n_qds; i++)
		if (measure(&b, o.qds[i], &ms[i]))
			goto out_close;
	report(&o, &b, ssd_dir, dram, &pr, direct, uring, ms);
	status = 0;

out_close:
	kvc_close(b.c);
out_stop:
	if (started) {
		int st = kvt_stop(&d);

		if (st) {
			fail(0, "kvstored did not stop cleanly (exit status %d)", st);
			status = 1;
		}
	}
out_dir:
	if (made_dir && kvt_rmtree(top))
		fprintf(stderr, "kvssdbench: cannot remove '%s': %s\n", top, strerror(errno));
out_free:
	bench_free(&b);
	return status;
}
