/*
 * kvbench.c - the DRAM tier's data path against the host's memcpy ceiling.
 *
 * For each chunk size (4 MiB: a 256-token chunk of a 1B model; 32 MiB: of
 * Llama-3-8B, both bf16) it measures, in one run and in this order:
 *   - the ceiling: memcpy between two pre-faulted heap buffers;
 *   - put: kvc_put of distinct keys from a pre-faulted buffer;
 *   - get: kvc_get of cached keys into a pre-faulted buffer;
 * and prints put and get as ratios to the ceiling (TESTING.md, "Measuring
 * performance": absolute GB/s drift on shared machines, ratios hold). Then
 * kvc_get_batch of 16 x 4 MiB, and the latency of kvc_lookup of a 64-chunk
 * prefix chain. Throughputs are medians of per-call times.
 *
 * The ceiling is measured twice, right before the store's figures and right
 * after them, and the higher median is the one used: on a shared machine a
 * noisy neighbour during the one window would otherwise give ratios above 1.
 * Both are printed. A second ceiling copies from a source set larger than
 * the CPU caches: the 4 MiB ceiling above stays in the last-level cache,
 * while gets read chunks that are not cached, so at 4 MiB "get / cold
 * memcpy" is the like-for-like ratio.
 *
 * Steady state: each size starts on a fresh connection (a fresh mapping of
 * the arena), and a warm-up pass puts a tier's worth of chunks first, so
 * every arena page has been touched through this process's mapping and the
 * tier is full: the timed puts run with LRU eviction making room, as in a
 * long-running engine. The warm-up pass, and a pass of gets on a second
 * fresh connection, are reported too ("1st use"), with the minor page
 * faults per chunk, because every new client pays them.
 *
 * Correctness: every get checks the chunk's stamp (its key index in its
 * first and last words), and once per size a chunk filled with a pattern is
 * put, read back and compared byte for byte. Wrong bytes fail the run.
 *
 * Exit status: 0, or 1 on a real error (a call failed, bytes came back
 * wrong, the daemon did not stop cleanly). Low figures never fail it: CI
 * runs --quick only to check that the benchmark works.
 *
 * --gpu runs the GPU benchmark instead (gpubench.c): libkvc's GPU paths
 * against cudaMemcpyAsync ceilings; exit status 77 without a GPU.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/proto.h"
#include "tests/bench/gpubench.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/rng.h"
#include "tests/lib/size.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

#define N_SIZES		2
#define MIN_DRAM	(128 * MIB)	/* 16 x 4 MiB cached at once, 4 x 32 MiB fit */
#define MAX_OPS		(1u << 16)	/* samples kept per measurement */
#define MIN_OPS		3
#define BATCH		16		/* chunks per kvc_get_batch */
#define LK_KEYS		64		/* the lookup chain */
#define LK_TOKENS	256		/* tokens per chunk */
#define LK_BYTES	(4 * KIB)
#define STAMP		0x6b7662656e636821ull	/* "kvbench!" */
#define COLD_MIN	(256 * MIB)	/* the cold-source set, full mode */
#define COLD_MAX	GIB

struct opts {
	const char *daemon;		/* --daemon, or NULL */
	const char *socket;		/* --socket, or NULL */
	bool quick;
	bool gpu;			/* --gpu: gpubench.c instead */
	bool dram_given;		/* --dram-bytes was given */
	uint64_t dram_bytes;		/* for a daemon we start */
	uint64_t hbm_bytes;		/* --gpu: its HBM tier (0: default) */
	double seconds;			/* per measurement */
	size_t lookup_calls;
};

struct size_res {
	size_t bytes;
	size_t arena;			/* the DRAM tier's size */
	unsigned long page_kb;		/* the arena's pages, as mapped here */
	unsigned long pmd_mib;		/* how much of it is mapped huge */
	double memcpy_gbps;		/* the ceiling: the higher of: */
	double memcpy_before_gbps;
	double memcpy_after_gbps;
	double memcpy_cold_gbps;	/* from a set past the CPU caches */
	double put_gbps;
	double get_gbps;
	double get_p50_us;
	double cold_put_gbps;		/* the warm-up pass */
	double cold_get_gbps;		/* gets on a fresh connection */
	double flt_cold_put;		/* minor faults per chunk */
	double flt_put;
	double flt_get;
	double flt_cold_get;
	double batch_gbps;		/* 16 x 4 MiB; 4 MiB only */
	double batch_memcpy_gbps;	/* its ceiling: the same copies */
	size_t warm_chunks;
	size_t put_ops;
	size_t get_keys;
};

struct lookup_res {
	double p50_us;
	double p99_us;
	double p999_us;
	double keys_per_s;
	size_t calls;
	/* ceiling: a bare socket round trip of the same sizes, no daemon */
	double pp_p50_us;
	double pp_p99_us;
	double pp_p999_us;
};

/* Heap memory for the cold-source ceiling: n chunks of the largest size. */
struct cold_set {
	char *buf;
	size_t bytes;
};

/* Per-call times of one measurement, with its time budget. */
struct run {
	double *ns;
	size_t n;
	size_t min_ops;
	uint64_t start;
	uint64_t budget_ns;
};

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Print "kvbench: <what>: <error name>" and return -1. */
static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", kvc_strerror(err));
	fputc('\n', stderr);
	return -1;
}

/* ---- buffers and stamps ------------------------------------------------- */

static void fill(void *buf, size_t bytes, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < bytes / 8; i++)
		w[i] = kvt_hash64(seed + i);
}

/* A heap buffer whose every page is already mapped. */
static void *buf_alloc(size_t bytes, uint64_t seed)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, bytes))
		return NULL;
	fill(p, bytes, seed);
	return p;
}

static void stamp_set(void *buf, size_t bytes, uint64_t idx)
{
	uint64_t *w = buf;

	w[0] = STAMP ^ idx;
	w[bytes / 8 - 1] = STAMP ^ idx;
}

static bool stamp_ok(const void *buf, size_t bytes, uint64_t idx)
{
	const uint64_t *w = buf;

	return w[0] == (STAMP ^ idx) && w[bytes / 8 - 1] == (STAMP ^ idx);
}

/* Keys of the throughput runs: distinct per size within a namespace. */
static struct kvc_key data_key(size_t bytes, uint64_t idx)
{
	return (struct kvc_key){ .lo = idx, .hi = STAMP ^ bytes };
}

/* Keep the compiler from dropping a copy nobody reads. */
static void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- statistics ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p * (double)n);

	if (k == 0)
		k = 1;
	return v[k > n ? n - 1 : k - 1];
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return pct(v, n, 0.5);
}

static double gbps(double bytes, double ns)
{
	return ns > 0 ? bytes / ns : 0;	/* bytes per ns is GB/s */
}

static double ratio(double x, double ceiling)
{
	return ceiling > 0 ? x / ceiling : 0;
}

static void run_begin(struct run *r, size_t min_ops, double seconds)
{
	r->n = 0;
	r->min_ops = min_ops;
	r->budget_ns = (uint64_t)(seconds * 1e9);
	r->start = kvt_now_ns();
}

static bool run_more(const struct run *r)
{
	if (r->n < r->min_ops)
		return true;
	return r->n < MAX_OPS && kvt_now_ns() - r->start < r->budget_ns;
}

static void run_add(struct run *r, uint64_t t0, uint64_t t1)
{
	r->ns[r->n++] = (double)(t1 - t0);
}

/* Median GB/s of memcpy into dst from the nsrc chunks at src, in turn. */
static double bench_memcpy(struct run *r, double seconds, char *dst,
			   const char *src, size_t nsrc, size_t bytes)
{
	run_begin(r, MIN_OPS, seconds);
	while (run_more(r)) {
		const char *from = src + (r->n % nsrc) * bytes;
		uint64_t t0, t1;

		t0 = kvt_now_ns();
		memcpy(dst, from, bytes);
		clobber(dst);
		t1 = kvt_now_ns();
		run_add(r, t0, t1);
	}
	return gbps((double)bytes, median(r->ns, r->n));
}

static bool arena_pages(const void *base, unsigned long *page_kb,
			unsigned long *pmd_kb);

/* ---- one chunk size ---------------------------------------------------------- */

static int connect_ns(const char *sock, const char *name, struct kvc **c,
		      uint32_t *ns)
{
	int ret = kvc_connect(sock, c);

	if (ret)
		return fail(ret, "cannot connect to '%s'", sock);
	ret = kvc_ns_register(*c, name, ns);
	if (ret) {
		kvc_close(*c);
		*c = NULL;
		return fail(ret, "cannot register namespace '%s'", name);
	}
	return 0;
}

static int put_one(struct kvc *c, uint32_t ns, size_t bytes, uint64_t idx,
		   void *src)
{
	struct kvc_key k = data_key(bytes, idx);
	char sz[24];
	int ret;

	stamp_set(src, bytes, idx);
	ret = kvc_put(c, ns, &k, NULL, LK_TOKENS, 0, src, bytes);
	if (ret)
		return fail(ret, "put of %s chunk %" PRIu64,
			    kvt_size_name(bytes, sz, sizeof(sz)), idx);
	return 0;
}

static int get_one(struct kvc *c, uint32_t ns, size_t bytes, uint64_t idx,
		   void *dst)
{
	struct kvc_key k = data_key(bytes, idx);
	size_t got = 0;
	char sz[24];
	int ret;

	ret = kvc_get(c, ns, &k, dst, bytes, &got);
	if (ret == -ENOENT)
		return fail(ret, "get of %s chunk %" PRIu64 " (evicted by another client?)",
			    kvt_size_name(bytes, sz, sizeof(sz)), idx);
	if (ret)
		return fail(ret, "get of %s chunk %" PRIu64,
			    kvt_size_name(bytes, sz, sizeof(sz)), idx);
	if (got != bytes || !stamp_ok(dst, bytes, idx))
		return fail(0, "get of %s chunk %" PRIu64 " returned the wrong bytes (%zu bytes)",
			    kvt_size_name(bytes, sz, sizeof(sz)), idx, got);
	return 0;
}

/*
 * Drop chunks 0..n of this size, so the next size starts on an empty tier.
 * Returns 0 or the error of the call.
 */
static int evict_all(struct kvc *c, uint32_t ns, size_t bytes, uint64_t n)
{
	struct kvc_key keys[KVC_MAX_BATCH];

	for (uint64_t i = 0; i < n; i += KVC_MAX_BATCH) {
		size_t m = n - i < KVC_MAX_BATCH ? (size_t)(n - i) : KVC_MAX_BATCH;
		int ret;

		for (size_t j = 0; j < m; j++)
			keys[j] = data_key(bytes, i + j);
		ret = kvc_evict(c, ns, keys, m, NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * kvc_get_batch of BATCH chunks, the last ones put (first..first+BATCH),
 * into BATCH buffers; its ceiling is memcpy of BATCH uncached chunks into
 * the same buffers.
 */
static int bench_batch(struct kvc *c, uint32_t ns, const struct opts *o,
		       struct run *r, const struct cold_set *cs, size_t bytes,
		       uint64_t first, struct size_res *res)
{
	struct kvc_get_desc d[BATCH];
	char *bufs = buf_alloc(BATCH * bytes, 3);
	int ret = -1;

	if (!bufs)
		return fail(-ENOMEM, "cannot allocate %d x %zu bytes", BATCH, bytes);
	run_begin(r, MIN_OPS, o->seconds / 2);
	while (run_more(r)) {
		size_t from = r->n * BATCH % (cs->bytes / bytes - BATCH + 1);
		uint64_t t0, t1;

		t0 = kvt_now_ns();
		for (int i = 0; i < BATCH; i++)
			memcpy(bufs + i * bytes, cs->buf + (from + i) * bytes, bytes);
		clobber(bufs);
		t1 = kvt_now_ns();
		run_add(r, t0, t1);
	}
	res->batch_memcpy_gbps = gbps((double)BATCH * bytes, median(r->ns, r->n));

	run_begin(r, MIN_OPS, o->seconds);
	while (run_more(r)) {
		uint64_t t0, t1;
		int n;

		for (int i = 0; i < BATCH; i++)
			d[i] = (struct kvc_get_desc){
				.key = data_key(bytes, first + i),
				.buf = bufs + i * bytes,
				.cap = bytes,
			};
		t0 = kvt_now_ns();
		n = kvc_get_batch(c, ns, d, BATCH);
		t1 = kvt_now_ns();
		if (n < 0) {
			fail(n, "get_batch of %d chunks", BATCH);
			goto out;
		}
		for (int i = 0; i < BATCH; i++) {
			if (d[i].status) {
				fail(d[i].status, "get_batch: chunk %" PRIu64, first + i);
				goto out;
			}
			if (d[i].bytes != bytes || !stamp_ok(d[i].buf, bytes, first + i)) {
				fail(0, "get_batch: chunk %" PRIu64 " returned the wrong bytes",
				     first + i);
				goto out;
			}
		}
		if (n != BATCH) {
			fail(0, "get_batch copied %d of %d chunks", n, BATCH);
			goto out;
		}
		run_add(r, t0, t1);
	}
	res->batch_gbps = gbps((double)BATCH * bytes, median(r->ns, r->n));
	ret = 0;
out:
	free(bufs);
	return ret;
}

static int bench_size(const char *sock, const struct opts *o, struct run *r,
		      const struct cold_set *cs, size_t bytes, struct size_res *res)
{
	struct kvc *c = NULL, *c2 = NULL;
	char name[64], sz[24];
	uint32_t ns, ns2;
	size_t arena, cap, n_get;
	uint64_t next = 0, first, t0, t1;
	unsigned long pmd_kb;
	char *src, *dst;
	long flt;
	int ret = -1, err;

	memset(res, 0, sizeof(*res));
	res->bytes = bytes;
	src = buf_alloc(bytes, 1);
	dst = buf_alloc(bytes, 2);
	if (!src || !dst) {
		fail(-ENOMEM, "cannot allocate 2 x %zu bytes", bytes);
		goto out_free;
	}
	snprintf(name, sizeof(name), "kvbench/%d/%zu", (int)getpid(), bytes);
	if (connect_ns(sock, name, &c, &ns))
		goto out_free;
	kvc_dram_base(c, &arena);
	if (arena < MIN_DRAM) {
		fail(0, "the DRAM tier has %zu MiB; the benchmark needs at least %llu MiB",
		     arena / (size_t)MIB, MIN_DRAM / MIB);
		goto out_close;
	}
	res->arena = arena;
	cap = arena / bytes;
	kvt_size_name(bytes, sz, sizeof(sz));

	/* The ceilings, right before the store's figures. */
	res->memcpy_before_gbps = bench_memcpy(r, o->seconds / 2, dst, src, 1, bytes);
	res->memcpy_cold_gbps = bench_memcpy(r, o->seconds / 2, dst, cs->buf,
					     cs->bytes / bytes, bytes);

	/* Warm-up: fill the tier (and fault in this mapping of the arena). */
	res->warm_chunks = cap + 1;
	flt = minor_faults();
	t0 = kvt_now_ns();
	for (size_t i = 0; i < res->warm_chunks; i++)
		if (put_one(c, ns, bytes, next++, src))
			goto out_evict;
	t1 = kvt_now_ns();
	res->cold_put_gbps = gbps((double)res->warm_chunks * bytes, (double)(t1 - t0));
	res->flt_cold_put = (double)(minor_faults() - flt) / (double)res->warm_chunks;

	/* Steady-state puts: distinct keys, eviction making room. */
	flt = minor_faults();
	run_begin(r, MIN_OPS, o->seconds);
	while (run_more(r)) {
		struct kvc_key k = data_key(bytes, next);

		stamp_set(src, bytes, next);
		t0 = kvt_now_ns();
		err = kvc_put(c, ns, &k, NULL, LK_TOKENS, 0, src, bytes);
		t1 = kvt_now_ns();
		if (err) {
			fail(err, "put of %s chunk %" PRIu64, sz, next);
			goto out_evict;
		}
		next++;
		run_add(r, t0, t1);
	}
	res->put_ops = r->n;
	res->flt_put = (double)(minor_faults() - flt) / (double)r->n;
	res->put_gbps = gbps((double)bytes, median(r->ns, r->n));
	arena_pages(kvc_dram_base(c, NULL), &res->page_kb, &pmd_kb);
	res->pmd_mib = pmd_kb / 1024;

	/* Correctness: a chunk full of a pattern comes back byte for byte. */
	fill(src, bytes, 0x5eed ^ bytes);
	stamp_set(src, bytes, next);
	if (put_one(c, ns, bytes, next, src))
		goto out_evict;
	memset(dst, 0, bytes);
	if (get_one(c, ns, bytes, next, dst))
		goto out_evict;
	if (memcmp(dst, src, bytes)) {
		fail(0, "get of %s chunk %" PRIu64 " differs from what was put", sz, next);
		goto out_evict;
	}
	next++;

	/* Gets of the newest half of the tier: cached, and cold in the CPU cache. */
	n_get = cap / 2;
	res->get_keys = n_get;
	first = next - n_get;
	flt = minor_faults();
	run_begin(r, MIN_OPS, o->seconds);
	while (run_more(r)) {
		uint64_t idx = first + r->n % n_get;
		struct kvc_key k = data_key(bytes, idx);
		size_t got = 0;

		t0 = kvt_now_ns();
		err = kvc_get(c, ns, &k, dst, bytes, &got);
		t1 = kvt_now_ns();
		if (err) {
			fail(err, "get of %s chunk %" PRIu64, sz, idx);
			goto out_evict;
		}
		if (got != bytes || !stamp_ok(dst, bytes, idx)) {
			fail(0, "get of %s chunk %" PRIu64 " returned the wrong bytes", sz, idx);
			goto out_evict;
		}
		run_add(r, t0, t1);
	}
	res->flt_get = (double)(minor_faults() - flt) / (double)r->n;
	qsort(r->ns, r->n, sizeof(r->ns[0]), cmp_double);
	res->get_p50_us = pct(r->ns, r->n, 0.5) / 1e3;
	res->get_gbps = gbps((double)bytes, pct(r->ns, r->n, 0.5));

	if (bytes == 4 * MIB && bench_batch(c, ns, o, r, cs, bytes, next - BATCH, res))
		goto out_evict;

	/* The ceiling again, right after; the store's figures lie between. */
	res->memcpy_after_gbps = bench_memcpy(r, o->seconds / 2, dst, src, 1, bytes);
	res->memcpy_gbps = fmax(res->memcpy_before_gbps, res->memcpy_after_gbps);

	/* First touch: the same gets through another, fresh mapping. */
	if (connect_ns(sock, name, &c2, &ns2))
		goto out_evict;
	flt = minor_faults();
	t0 = kvt_now_ns();
	for (size_t i = 0; i < n_get; i++)
		if (get_one(c2, ns2, bytes, first + i, dst))
			goto out_evict;
	t1 = kvt_now_ns();
	res->cold_get_gbps = gbps((double)n_get * bytes, (double)(t1 - t0));
	res->flt_cold_get = (double)(minor_faults() - flt) / (double)n_get;
	ret = 0;

out_evict:
	/* After a failure the connection may be gone: say nothing more then. */
	err = evict_all(c, ns, bytes, next + 1);
	if (err && !ret)
		ret = fail(err, "evict of the %s chunks", sz);
	kvc_close(c2);
out_close:
	kvc_close(c);
out_free:
	free(src);
	free(dst);
	return ret;
}

/* ---- 64-key lookup ------------------------------------------------------------- */

static bool read_full(int fd, char *buf, size_t n)
{
	while (n) {
		ssize_t r = read(fd, buf, n);

		if (r <= 0)
			return false;
		buf += r;
		n -= (size_t)r;
	}
	return true;
}

/*
 * The LOOKUP ceiling: the same exchange with no daemon behind it. A child
 * process echoes, over a socketpair, a reply of a 64-key LOOKUP's size
 * (header + 8 + 64 bytes) for each request of its size (header + 8 + 64
 * keys); we time each round trip as the lookup loop does.
 */
static int bench_pingpong(size_t calls, struct lookup_res *res)
{
	enum {
		REQ = sizeof(struct kv_wire_hdr) + sizeof(struct kv_wire_keys) +
		      LK_KEYS * sizeof(struct kv_wire_key),
		REP = sizeof(struct kv_wire_hdr) + sizeof(struct kv_wire_lookup_reply) +
		      LK_KEYS,
	};
	char req[REQ], rep[REP];
	size_t warm = calls / 10 + 1;
	double *lat = malloc(calls * sizeof(*lat));
	int sv[2], ret = -1;
	pid_t pid;

	if (!lat || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		free(lat);
		return fail(-errno, "cannot set up the ping-pong ceiling");
	}
	memset(req, 1, sizeof(req));
	memset(rep, 2, sizeof(rep));
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		while (read_full(sv[1], req, sizeof(req)))
			if (write(sv[1], rep, sizeof(rep)) != (ssize_t)sizeof(rep))
				break;
		_exit(0);
	}
	close(sv[1]);
	if (pid < 0)
		goto out;
	for (size_t i = 0; i < warm + calls; i++) {
		uint64_t t0 = kvt_now_ns();

		if (write(sv[0], req, sizeof(req)) != (ssize_t)sizeof(req) ||
		    !read_full(sv[0], rep, sizeof(rep))) {
			fail(-EPIPE, "ping-pong ceiling: echo process gone");
			goto out;
		}
		if (i >= warm)
			lat[i - warm] = (double)(kvt_now_ns() - t0);
	}
	qsort(lat, calls, sizeof(*lat), cmp_double);
	res->pp_p50_us = pct(lat, calls, 0.50) / 1e3;
	res->pp_p99_us = pct(lat, calls, 0.99) / 1e3;
	res->pp_p999_us = pct(lat, calls, 0.999) / 1e3;
	ret = 0;
out:
	close(sv[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	free(lat);
	return ret;
}

static int bench_lookup(const char *sock, const struct opts *o,
			struct lookup_res *res)
{
	static uint32_t tokens[LK_KEYS * LK_TOKENS];
	struct kvc_key keys[LK_KEYS];
	uint8_t tiers[LK_KEYS];
	char name[64], chunk[LK_BYTES];
	size_t warm = o->lookup_calls / 10 + 1;
	struct kvc *c = NULL;
	double *lat;
	uint64_t salt, t0, t1, start = 0;
	uint32_t ns;
	int ret = -1, err, n;

	memset(res, 0, sizeof(*res));
	lat = malloc(o->lookup_calls * sizeof(*lat));
	if (!lat)
		return fail(-ENOMEM, "cannot allocate %zu samples", o->lookup_calls);
	snprintf(name, sizeof(name), "kvbench/%d/lookup", (int)getpid());
	if (connect_ns(sock, name, &c, &ns))
		goto out_free;
	salt = kvc_ns_salt(name);
	for (size_t i = 0; i < LK_KEYS * LK_TOKENS; i++)
		tokens[i] = (uint32_t)(kvt_hash64(i) % 128256);	/* Llama-3's vocabulary */
	if (kvc_key_chain(salt, tokens, LK_KEYS * LK_TOKENS, LK_TOKENS, keys,
			  LK_KEYS) != LK_KEYS) {
		fail(0, "kvc_key_chain did not make %d keys", LK_KEYS);
		goto out_close;
	}
	for (int i = 0; i < LK_KEYS; i++) {
		fill(chunk, sizeof(chunk), (uint64_t)i);
		err = kvc_put(c, ns, &keys[i], i ? &keys[i - 1] : NULL, LK_TOKENS,
			      (uint32_t)i * LK_TOKENS, chunk, sizeof(chunk));
		if (err) {
			fail(err, "put of lookup chunk %d", i);
			goto out_evict;
		}
	}
	n = kvc_lookup(c, ns, keys, LK_KEYS, tiers);
	if (n != LK_KEYS) {
		fail(n < 0 ? n : 0, "lookup found %d of %d keys", n, LK_KEYS);
		goto out_evict;
	}
	for (int i = 0; i < LK_KEYS; i++) {
		if (tiers[i] != KVC_TIER_DRAM) {
			fail(0, "lookup: chunk %d is in tier %u, not DRAM", i, tiers[i]);
			goto out_evict;
		}
	}

	for (size_t i = 0; i < warm + o->lookup_calls; i++) {
		if (i == warm)
			start = kvt_now_ns();
		t0 = kvt_now_ns();
		n = kvc_lookup(c, ns, keys, LK_KEYS, NULL);
		t1 = kvt_now_ns();
		if (n != LK_KEYS) {
			fail(n < 0 ? n : 0, "lookup found %d of %d keys", n, LK_KEYS);
			goto out_evict;
		}
		if (i >= warm)
			lat[i - warm] = (double)(t1 - t0);
	}
	t1 = kvt_now_ns();
	res->calls = o->lookup_calls;
	res->keys_per_s = (double)LK_KEYS * (double)o->lookup_calls /
			  ((double)(t1 - start) / 1e9);
	qsort(lat, o->lookup_calls, sizeof(*lat), cmp_double);
	res->p50_us = pct(lat, o->lookup_calls, 0.50) / 1e3;
	res->p99_us = pct(lat, o->lookup_calls, 0.99) / 1e3;
	res->p999_us = pct(lat, o->lookup_calls, 0.999) / 1e3;
	ret = bench_pingpong(o->lookup_calls, res);

out_evict:
	err = kvc_evict(c, ns, keys, LK_KEYS, NULL);
	if (err < 0 && !ret)
		ret = fail(err, "evict of the lookup chunks");
out_close:
	kvc_close(c);
out_free:
	free(lat);
	return ret;
}

/* ---- the arena's pages, as this process maps them -------------------------- */

/*
 * From /proc/self/smaps: the page size of the mapping at base and how much
 * of it is mapped with PMD (2 MiB) entries. Returns false if not found.
 */
static bool arena_pages(const void *base, unsigned long *page_kb,
			unsigned long *pmd_kb)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;
	unsigned long v;

	*page_kb = 0;
	*pmd_kb = 0;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* A mapping's first line; its fields start with a name and ':' */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			if (in)
				break;
			in = lo == (unsigned long)base;
			found |= in;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, "KernelPageSize: %lu kB", &v) == 1)
			*page_kb = v;
		else if (sscanf(line, "ShmemPmdMapped: %lu kB", &v) == 1 ||
			 sscanf(line, "FilePmdMapped: %lu kB", &v) == 1)
			*pmd_kb += v;
	}
	fclose(f);
	return found;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: kvbench [--gpu] [--daemon PATH] [--socket PATH] [--quick] "
		"[--dram-bytes SIZE] [--hbm-bytes SIZE] [--seconds S]\n"
		"  --gpu             the GPU paths (kvc_get_gpu, kvc_get_paged, ...) against\n"
		"                    cudaMemcpyAsync ceilings; exits 77 without a GPU\n"
		"  --daemon PATH     start this kvstored (default: $KVSTORED or build/kvstored)\n"
		"  --socket PATH     benchmark a daemon that is already running there\n"
		"  --quick           small counts: checks that everything works (CI)\n"
		"  --dram-bytes SIZE DRAM tier of the daemon it starts (default 2G; --quick 256M;\n"
		"                    --gpu --quick 64M)\n"
		"  --hbm-bytes SIZE  --gpu: HBM tier of the daemon it starts (default 8G;\n"
		"                    --quick 64M)\n"
		"  --seconds S       time per measurement (default 1; --quick 0.05; not --gpu)\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *dram = NULL, *secs = NULL, *hbm = NULL;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--quick")) {
			o->quick = true;
			continue;
		} else if (!strcmp(a, "--gpu")) {
			o->gpu = true;
			continue;
		} else if (!strcmp(a, "--daemon")) {
			val = &o->daemon;
		} else if (!strcmp(a, "--socket")) {
			val = &o->socket;
		} else if (!strcmp(a, "--dram-bytes")) {
			val = &dram;
		} else if (!strcmp(a, "--seconds")) {
			val = &secs;
		} else if (!strcmp(a, "--hbm-bytes")) {
			val = &hbm;
		} else {
			fprintf(stderr, "kvbench: unknown argument '%s'\n", a);
			usage(stderr);
			return -1;
		}
		if (++i == argc) {
			fprintf(stderr, "kvbench: %s needs a value\n", a);
			return -1;
		}
		*val = argv[i];
	}
	if (o->socket && (o->daemon || dram || hbm)) {
		fprintf(stderr, "kvbench: --socket benchmarks a running daemon: "
			"no --daemon, --dram-bytes or --hbm-bytes with it\n");
		return -1;
	}
	if (o->gpu && secs) {
		fprintf(stderr, "kvbench: --seconds does not apply to --gpu\n");
		return -1;
	}
	if (!o->gpu && hbm) {
		fprintf(stderr, "kvbench: --hbm-bytes needs --gpu\n");
		return -1;
	}
	if (hbm && kvt_parse_size(hbm, &o->hbm_bytes)) {
		fprintf(stderr, "kvbench: --hbm-bytes '%s': give a size\n", hbm);
		return -1;
	}
	o->dram_given = dram != NULL;
	o->dram_bytes = o->quick ? 256 * MIB : 2 * GIB;
	if (dram && (kvt_parse_size(dram, &o->dram_bytes) || o->dram_bytes < MIN_DRAM)) {
		fprintf(stderr, "kvbench: --dram-bytes '%s': give a size of at least 128M\n",
			dram);
		return -1;
	}
	o->seconds = o->quick ? 0.05 : 1.0;
	if (secs) {
		char *end;

		o->seconds = strtod(secs, &end);
		if (*end || !(o->seconds > 0 && o->seconds <= 3600)) {
			fprintf(stderr, "kvbench: --seconds '%s': give a number of seconds\n",
				secs);
			return -1;
		}
	}
	o->lookup_calls = o->quick ? 2000 : 200000;
	return 0;
}

static void print_report(const struct opts *o, const char *sock, bool started,
			 const struct cold_set *cs, const struct size_res *s,
			 const struct lookup_res *lk)
{
	const struct size_res *s4 = &s[0], *s32 = &s[1];
	struct utsname u;
	char sz[24], csz[24];

	if (uname(&u))
		strcpy(u.nodename, "?");
	printf("kvbench: host memcpy ceiling and kvstore DRAM tier (machine: %s, %ld cores)\n",
	       u.nodename, sysconf(_SC_NPROCESSORS_ONLN));
	printf("daemon: %s %s; DRAM tier %s on %lu KiB pages (%lu MiB of it mapped huge)\n",
	       started ? "started" : "running at", started ? kvt_daemon_path() : sock,
	       kvt_size_name(s4->arena, sz, sizeof(sz)), s4->page_kb, s4->pmd_mib);
	printf("method: medians of per-call times, %.2f s per figure, GB/s = 1e9 B/s; puts of\n"
	       "        distinct keys into a tier a warm-up pass filled: LRU eviction runs\n",
	       o->seconds);
	printf("size     memcpy GB/s  put GB/s (ratio)  get GB/s (ratio)  get p50 us\n");
	for (int i = 0; i < N_SIZES; i++)
		printf("%-8s %11.2f  %7.2f (%4.2f)    %7.2f (%4.2f)    %9.0f\n",
		       kvt_size_name(s[i].bytes, sz, sizeof(sz)), s[i].memcpy_gbps,
		       s[i].put_gbps, ratio(s[i].put_gbps, s[i].memcpy_gbps),
		       s[i].get_gbps, ratio(s[i].get_gbps, s[i].memcpy_gbps),
		       s[i].get_p50_us);
	printf("batch    get_batch %d x 4 MiB: %.2f GB/s (%.2f); memcpy of the same, "
	       "uncached, %.2f GB/s: %.2f of it\n", BATCH, s4->batch_gbps,
	       ratio(s4->batch_gbps, s4->memcpy_gbps), s4->batch_memcpy_gbps,
	       ratio(s4->batch_gbps, s4->batch_memcpy_gbps));
	for (int i = 0; i < N_SIZES; i++)
		printf("ceiling  %-6s memcpy before %.2f, after %.2f GB/s; from a %s set "
		       "(uncached) %.2f GB/s: get %.2f of it\n",
		       kvt_size_name(s[i].bytes, sz, sizeof(sz)), s[i].memcpy_before_gbps,
		       s[i].memcpy_after_gbps,
		       kvt_size_name(cs->bytes, csz, sizeof(csz)), s[i].memcpy_cold_gbps,
		       ratio(s[i].get_gbps, s[i].memcpy_cold_gbps));
	for (int i = 0; i < N_SIZES; i++)
		printf("1st use  %-6s put %.2f GB/s (%.2f), %.0f faults/chunk; get %.2f GB/s "
		       "(%.2f), %.0f faults/chunk (later: %.0f, %.0f)\n",
		       kvt_size_name(s[i].bytes, sz, sizeof(sz)),
		       s[i].cold_put_gbps, ratio(s[i].cold_put_gbps, s[i].memcpy_gbps),
		       s[i].flt_cold_put,
		       s[i].cold_get_gbps, ratio(s[i].cold_get_gbps, s[i].memcpy_gbps),
		       s[i].flt_cold_get, s[i].flt_put, s[i].flt_get);
	printf("lookup64 p50 %.1f us  p99 %.1f us  p99.9 %.1f us  %.2f Mkeys/s  (%zu calls)\n",
	       lk->p50_us, lk->p99_us, lk->p999_us, lk->keys_per_s / 1e6, lk->calls);
	printf("ceiling  socket round trip of the same sizes, no daemon: p50 %.1f us  "
	       "p99 %.1f us  p99.9 %.1f us\n", lk->pp_p50_us, lk->pp_p99_us, lk->pp_p999_us);
	printf("figure: 4 MiB put %.2f, get %.2f of memcpy; get %.2f of uncached memcpy\n",
	       ratio(s4->put_gbps, s4->memcpy_gbps), ratio(s4->get_gbps, s4->memcpy_gbps),
	       ratio(s4->get_gbps, s4->memcpy_cold_gbps));
	printf("figure: 32 MiB put %.2f, get %.2f of memcpy (target: get >= 0.80)\n",
	       ratio(s32->put_gbps, s32->memcpy_gbps), ratio(s32->get_gbps, s32->memcpy_gbps));
	printf("figure: lookup64 p50 %.1f us (%.2f x socket round trip), p99 %.1f us "
	       "(%.2f x; target <= 25), %.2f Mkeys/s\n",
	       lk->p50_us, ratio(lk->p50_us, lk->pp_p50_us), lk->p99_us,
	       ratio(lk->p99_us, lk->pp_p99_us), lk->keys_per_s / 1e6);
	printf("kvbench {\"memcpy_gbps_4m\":%.3f,\"put_gbps_4m\":%.3f,\"get_gbps_4m\":%.3f,"
	       "\"memcpy_gbps_32m\":%.3f,\"put_gbps_32m\":%.3f,\"get_gbps_32m\":%.3f,"
	       "\"get_ratio_32m\":%.3f,\"lookup64_p50_us\":%.2f,\"lookup64_p99_us\":%.2f,"
	       "\"lookup64_keys_per_s\":%.0f,\"put_ratio_32m\":%.3f,\"get_ratio_4m\":%.3f,"
	       "\"memcpy_cold_gbps_4m\":%.3f,\"memcpy_cold_gbps_32m\":%.3f,"
	       "\"get_p50_us_4m\":%.1f,\"get_batch_gbps_4m\":%.3f,"
	       "\"get_batch_memcpy_gbps_4m\":%.3f,\"lookup64_p999_us\":%.2f,"
	       "\"pingpong_p50_us\":%.2f,\"pingpong_p99_us\":%.2f}\n",
	       s4->memcpy_gbps, s4->put_gbps, s4->get_gbps,
	       s32->memcpy_gbps, s32->put_gbps, s32->get_gbps,
	       ratio(s32->get_gbps, s32->memcpy_gbps), lk->p50_us, lk->p99_us,
	       lk->keys_per_s, ratio(s32->put_gbps, s32->memcpy_gbps),
	       ratio(s4->get_gbps, s4->memcpy_gbps),
	       s4->memcpy_cold_gbps, s32->memcpy_cold_gbps,
	       s4->get_p50_us, s4->batch_gbps, s4->batch_memcpy_gbps, lk->p999_us,
	       lk->pp_p50_us, lk->pp_p99_us);
}

/*
 * Heap memory past the CPU caches for the cold-source ceiling: twice the
 * last-level cache as the C library reports it, 256 MiB to 1 GiB, in whole
 * chunks of the largest size (--quick: two of them).
 */
static int cold_alloc(const struct opts *o, size_t chunk, struct cold_set *cs)
{
	long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
	size_t want = llc > 0 ? 2 * (size_t)llc : 0;

	if (o->quick)
		want = 2 * chunk;
	else if (want < COLD_MIN)
		want = COLD_MIN;
	else if (want > COLD_MAX)
		want = COLD_MAX;
	cs->bytes = (want + chunk - 1) / chunk * chunk;
	if (posix_memalign((void **)&cs->buf, 4096, cs->bytes)) {
		cs->buf = NULL;
		return fail(-ENOMEM, "cannot allocate %zu bytes", cs->bytes);
	}
	memset(cs->buf, 0x5a, cs->bytes);
	return 0;
}

int main(int argc, char **argv)
{
	static const size_t sizes[N_SIZES] = { 4 * MIB, 32 * MIB };
	struct size_res res[N_SIZES];
	struct lookup_res lk;
	struct kvt_daemon d;
	struct opts o;
	struct run r = { 0 };
	struct cold_set cs = { 0 };
	const char *sock;
	bool started = false;
	int status = 1;

	if (parse_args(argc, argv, &o))
		return 1;
	if (o.gpu) {
		struct gpubench_opts g = {
			.daemon = o.daemon,
			.socket = o.socket,
			.quick = o.quick,
			.dram_bytes = o.dram_given ? o.dram_bytes : 0,
			.hbm_bytes = o.hbm_bytes,
		};

		return gpubench_run(&g);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	r.ns = malloc(MAX_OPS * sizeof(*r.ns));
	if (!r.ns) {
		fail(-ENOMEM, "cannot allocate samples");
		return 1;
	}
	if (cold_alloc(&o, sizes[N_SIZES - 1], &cs))
		goto out;
	if (o.socket) {
		sock = o.socket;
	} else {
		char dram[32];
		const char *args[] = { "--dram-bytes", dram, NULL };

		snprintf(dram, sizeof(dram), "%" PRIu64, o.dram_bytes);
		if (o.daemon && setenv("KVSTORED", o.daemon, 1)) {
			fail(-errno, "setenv");
			goto out;
		}
		if (kvt_start(&d, args)) {
			fail(0, "cannot start '%s'", kvt_daemon_path());
			kvt_cleanup(&d);
			goto out;
		}
		started = true;
		sock = d.sock;
	}

	for (int i = 0; i < N_SIZES; i++)
		if (bench_size(sock, &o, &r, &cs, sizes[i], &res[i]))
			goto out_stop;
	if (bench_lookup(sock, &o, &lk))
		goto out_stop;
	print_report(&o, sock, started, &cs, res, &lk);
	status = 0;

out_stop:
	if (started) {
		int st = kvt_stop(&d);

		if (st) {
			fail(0, "kvstored did not stop cleanly (exit status %d)", st);
			status = 1;
		}
	}
out:
	free(cs.buf);
	free(r.ns);
	return status;
}
