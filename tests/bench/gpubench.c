/*
 * gpubench.c - kvbench --gpu: chunks between kvstored's tiers and an
 * engine's GPU memory through libkvc, against the copy ceilings of the same
 * GPU measured in the same run (TESTING.md, "Measuring performance").
 *
 * In one run, in this order:
 *   - ceilings: 1 GiB cudaMemcpyAsync pinned host -> GPU (h2d), GPU ->
 *     pinned host (d2h), GPU -> GPU (d2d, bytes copied), each the median of
 *     several copies after two warm-up copies, timed with events;
 *   - DRAM: a set of Llama-3-8B chunks (32 layers, 8 KV heads, 128 dims,
 *     bf16, 256 tokens: 32 MiB) put from host memory with kvc_put, then
 *     kvc_get_gpu (contiguous) and kvc_put_gpu of fresh keys; kvc_get_paged
 *     into, and kvc_put_paged of fresh keys out of, a vLLM layout (16-token
 *     blocks) and an SGLang layout (token slots), each in both
 *     kvc_gpu_mode()s (zero-copy, staged); the layer-wise get
 *     (kvc_get_paged_begin, one kvc_get_paged_layers per layer, end) into
 *     the vLLM layout in both modes. Ratios to h2d (gets) or d2h (puts);
 *   - HBM: a set put from GPU memory with kvc_put_gpu(KVC_PUT_HBM) into a
 *     daemon started with --hbm-bytes (and --hbm-promote off, so the DRAM
 *     set stays in DRAM), then kvc_get_gpu and kvc_get_paged (vLLM,
 *     SGLang) of it, and kvc_put_gpu(KVC_PUT_HBM) of fresh keys. Ratios
 *     to d2d;
 *   - the ceilings again; the higher of the two medians is the ceiling.
 *
 * Every call moves a batch of chunks (16: 512 MiB). Two times per call:
 *   - GB/s: from events on the stream. Before the call, a gate (memsets on
 *     a second stream, waited on with an event) holds the stream, and the
 *     start event is recorded behind it; the gate is made long enough that
 *     it still holds when the call (and for the layer-wise get, all 32 calls)
 *     has returned, so start -> done is the copy's time on the GPU, without
 *     the call's round trips. A sample whose gate opened early is redone
 *     with a gate twice as long, unless the call waits on the host for
 *     the GPU (a layers call found it open at the same layer twice): then
 *     the figure says where, and its samples count anyway (the stream
 *     stays busy while the host waits, so the time is still the copy's);
 *   - wall GB/s: no gate; from before the call to its done event synced
 *     (puts: to kvc_gpu_flush() returned, so the commit round trip is in).
 * Each is the median of several calls, after a warm-up call; gated and
 * wall calls take turns, so drift on a shared machine hits both alike.
 * Pins are let go (kvc_gpu_flush) after each call, outside both times;
 * fresh puts are evicted after each call, so the tiers never evict.
 *
 * Correctness: chunk bytes are a pattern of (chunk, layer, K/V, token,
 * word). Destinations are poisoned before every call. After the warm-up
 * call of each figure everything is compared: the whole layout (pages no
 * chunk owns must still hold the poison) or every chunk; after each timed
 * call a few pages (or slices) and, for puts, two chunks read back with
 * kvc_get (DRAM) or kvc_get_gpu (HBM), after checking with kvc_lookup that
 * they landed in the tier asked for. Gets check each chunk's tier too.
 * Wrong bytes fail the run.
 *
 * The DRAM mapping is page-locked up front (KVC_GPU_REGISTER_ALL, waited
 * for, and timed): the figures are an engine's steady state.
 *
 * This file holds the run: the GPU, the daemon and the client set up, the
 * sets of chunks, the figures and the report. The byte pattern and the
 * paged layouts are in gpubench_data.c; the gate, the ceilings and how one
 * call is issued, checked and timed in gpubench_call.c; what the three
 * share in gpubench_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/bench/gpubench.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/rng.h"
#include "tests/lib/size.h"
#include "tests/bench/gpubench_int.h"

const char *const ceil_key[N_CEIL] = { "h2d", "d2h", "d2d" };
static const char *const ceil_what[N_CEIL] = {
	"pinned host -> GPU", "GPU -> pinned host", "GPU -> GPU (bytes copied)",
};

static const struct shape shape_full = {
	.name = "Llama-3-8B", .layers = 32, .kv_heads = 8, .head_dim = 128,
	.elem_bytes = 2, .chunk_tokens = 256, .block_tokens = 16, .batch = 16,
};

static const struct shape shape_quick = {
	.name = "tiny (--quick)", .layers = 4, .kv_heads = 2, .head_dim = 64,
	.elem_bytes = 2, .chunk_tokens = 32, .block_tokens = 16, .batch = 2,
};

_Static_assert(MAX_BATCH >= 16 && MAX_LAYERS >= 32, "the full shape fits");

/* Print "kvbench --gpu: <what>: <error name>" and return -1. */
__attribute__((format(printf, 2, 3)))
int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvbench --gpu: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", kvc_strerror(err));
	if ((err == -KVC_EGPU || err == -KVC_ENOGPU) && *kv_gpu_last_error())
		fprintf(stderr, " (%s)", kv_gpu_last_error());
	fputc('\n', stderr);
	return -1;
}

double gbps(double bytes, double ms)
{
	return ms > 0 ? bytes / (ms * 1e6) : 0;	/* bytes per ns is GB/s */
}

double ratio(double x, double ceiling)
{
	return ceiling > 0 ? x / ceiling : 0;
}

/* splitmix64 (tests/lib/rng.h) */
uint64_t rnd(struct gb *b)
{
	return kvt_splitmix(&b->rng);
}

struct kvc_key key_of(uint64_t idx)
{
	return (struct kvc_key){ .lo = idx, .hi = KEY_HI };
}

/* ---- the sets of chunks ----------------------------------------------------- */

/* What contiguous puts store: chunk j of dput has content PUT_BASE + j. */
static int fill_dput(struct gb *b)
{
	const struct shape *sh = &b->sh;
	int ret;

	for (unsigned j = 0; j < sh->batch; j++)
		pat_chunk(sh, b->host + j * sh->chunk_bytes, PUT_BASE + j);
	ret = kv_gpu_memcpy(b->dput, b->host, sh->batch * sh->chunk_bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "cannot fill the put buffer");
	return 0;
}

/* The DRAM set: chunks 0..batch, put from host memory. */
static int seed_dram(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint8_t tiers[MAX_BATCH];
	int ret;

	for (unsigned j = 0; j < sh->batch; j++) {
		b->keys[j] = key_of(j);
		pat_chunk(sh, b->chunk, j);
		ret = kvc_put(b->c, b->ns, &b->keys[j], NULL, sh->chunk_tokens, 0, b->chunk,
			      sh->chunk_bytes);
		if (ret)
			return fail(ret, "kvc_put of DRAM chunk %u", j);
	}
	ret = kvc_lookup(b->c, b->ns, b->keys, sh->batch, tiers);
	if (ret != (int)sh->batch)
		return fail(ret < 0 ? ret : 0, "lookup found %d of the %u DRAM chunks", ret,
			    sh->batch);
	for (unsigned j = 0; j < sh->batch; j++)
		if (tiers[j] != KVC_TIER_DRAM)
			return fail(0, "DRAM chunk %u is in tier %u", j, tiers[j]);
	return 0;
}

/*
 * The HBM set: chunks HBM_BASE.., put from GPU memory with KVC_PUT_HBM.
 * Returns 0 (b->has_hbm says whether they landed in HBM; if not, they are
 * evicted again and b->hbm_note says why) or -1.
 */
static int seed_hbm(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint8_t tiers[MAX_BATCH];
	size_t bytes = sh->batch * sh->chunk_bytes;
	int ret, got;

	for (unsigned j = 0; j < sh->batch; j++)
		pat_chunk(sh, b->host + j * sh->chunk_bytes, HBM_BASE + j);
	ret = kv_gpu_memcpy(b->dget, b->host, bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "cannot copy the HBM set to the GPU");
	for (unsigned j = 0; j < sh->batch; j++) {
		b->keys[j] = key_of(HBM_BASE + j);
		b->pd[j] = (struct kvc_put_desc){
			.key = b->keys[j],
			.tokens = sh->chunk_tokens,
			.data = b->dget + j * sh->chunk_bytes,
			.bytes = sh->chunk_bytes,
		};
	}
	got = kvc_put_gpu(b->c, b->ns, b->pd, sh->batch, KVC_PUT_HBM, (kvc_stream_t)b->s,
			  (kvc_event_t)b->done);
	if (got < 0)
		return fail(got, "kvc_put_gpu(KVC_PUT_HBM) of the HBM set");
	for (unsigned j = 0; j < sh->batch; j++)
		if (b->pd[j].status)
			return fail(b->pd[j].status, "kvc_put_gpu(KVC_PUT_HBM): chunk %u", j);
	ret = kv_gpu_event_sync(b->done);
	if (!ret)
		ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "kvc_put_gpu(KVC_PUT_HBM): waiting for the copies");
	got = kvc_lookup(b->c, b->ns, b->keys, sh->batch, tiers);
	if (got != (int)sh->batch)
		return fail(got < 0 ? got : 0, "lookup found %d of the %u HBM chunks", got,
			    sh->batch);
	b->has_hbm = true;
	for (unsigned j = 0; j < sh->batch; j++)
		if (tiers[j] != KVC_TIER_HBM)
			b->has_hbm = false;
	if (b->has_hbm)
		return 0;
	snprintf(b->hbm_note, sizeof(b->hbm_note),
		 "chunks put with KVC_PUT_HBM landed in tier %u, not HBM (0)", tiers[0]);
	got = kvc_evict(b->c, b->ns, b->keys, sh->batch, NULL);
	if (got < 0)
		return fail(got, "evict of the HBM set");
	return 0;
}

/* ---- setup ----------------------------------------------------------------- */

static int gpu_setup(struct gb *b)
{
	const struct shape *sh = &b->sh;
	size_t batch_bytes = sh->batch * sh->chunk_bytes, page_max = 0, slice;
	int ret;

	ret = kv_gpu_set_device(b->dev);
	if (!ret)
		ret = kv_gpu_device_name(b->dev, b->gpu_name, sizeof(b->gpu_name));
	if (ret)
		return fail(ret, "cannot use GPU %d", b->dev);
	ret = kv_gpu_stream_create(&b->s);
	if (!ret)
		ret = kv_gpu_stream_create(&b->gs);
	if (!ret)
		ret = kv_gpu_event_create(&b->start, true);
	if (!ret)
		ret = kv_gpu_event_create(&b->done, true);
	if (!ret)
		ret = kv_gpu_event_create(&b->gate, false);
	for (unsigned l = 0; l < sh->layers && !ret; l++)
		ret = kv_gpu_event_create(&b->lev[l], true);
	if (ret)
		return fail(ret, "cannot create streams and events");

	if (lay_setup(b, &b->lay[0], KVC_LAYOUT_VLLM) ||
	    lay_setup(b, &b->lay[1], KVC_LAYOUT_SGLANG))
		return -1;
	for (int i = 0; i < 2; i++)
		if (b->lay[i].page_bytes > page_max)
			page_max = b->lay[i].page_bytes;
	slice = sh->chunk_tokens * sh->row_bytes;

	b->host_bytes = b->ceil_bytes;
	if (b->host_bytes < batch_bytes)
		b->host_bytes = batch_bytes;
	for (int i = 0; i < 2; i++)
		if (b->host_bytes < b->lay[i].bytes)
			b->host_bytes = b->lay[i].bytes;
	b->hsmall_bytes = (CHECK_PAGES + CHECK_HOLES) * page_max;
	if (b->hsmall_bytes < CHECK_SLICES * slice)
		b->hsmall_bytes = CHECK_SLICES * slice;
	b->expect_bytes = page_max > sh->row_bytes ? page_max : sh->row_bytes;

	ret = kv_gpu_host_alloc(b->host_bytes, (void **)&b->host);
	if (!ret)
		ret = kv_gpu_host_alloc(b->hsmall_bytes, (void **)&b->hsmall);
	if (!ret)
		ret = kv_gpu_malloc(b->ceil_bytes, &b->ca);
	if (!ret)
		ret = kv_gpu_malloc(b->ceil_bytes, &b->cb);
	if (!ret)
		ret = kv_gpu_malloc(batch_bytes, (void **)&b->dget);
	if (!ret)
		ret = kv_gpu_malloc(batch_bytes, (void **)&b->dput);
	if (!ret)
		ret = kv_gpu_malloc(GATE_BYTES, &b->gate_buf);
	if (ret)
		return fail(ret, "cannot allocate GPU and pinned buffers");
	b->chunk = malloc(sh->chunk_bytes);
	b->expect = malloc(b->expect_bytes);
	if (!b->chunk || !b->expect)
		return fail(-ENOMEM, "cannot allocate host buffers");
	/* Touch the pinned buffer: the h2d ceiling reads it. */
	memset(b->host, 0x3c, b->host_bytes);
	return 0;
}

static void gpu_release(struct gb *b)
{
	if (b->s)
		(void)kv_gpu_stream_sync(b->s);
	for (int i = 0; i < 2; i++)
		lay_release(&b->lay[i]);
	kv_gpu_free(b->gate_buf);
	kv_gpu_free(b->dput);
	kv_gpu_free(b->dget);
	kv_gpu_free(b->cb);
	kv_gpu_free(b->ca);
	kv_gpu_host_free(b->hsmall);
	kv_gpu_host_free(b->host);
	free(b->expect);
	free(b->chunk);
	for (unsigned l = 0; l < MAX_LAYERS; l++)
		kv_gpu_event_destroy(b->lev[l]);
	kv_gpu_event_destroy(b->gate);
	kv_gpu_event_destroy(b->done);
	kv_gpu_event_destroy(b->start);
	kv_gpu_stream_destroy(b->gs);
	kv_gpu_stream_destroy(b->s);
}

static int daemon_start(struct gb *b)
{
	char dram[32], hbm[32], gpu[16];
	const char *args[] = {
		"--dram-bytes", dram, "--hbm-bytes", hbm, "--hbm-promote", "off",
		"--gpu", gpu, NULL,
	};

	if (b->o->socket) {
		b->sock = b->o->socket;
		return 0;
	}
	snprintf(dram, sizeof(dram), "%" PRIu64, b->dram_bytes);
	snprintf(hbm, sizeof(hbm), "%" PRIu64, b->hbm_bytes);
	snprintf(gpu, sizeof(gpu), "%d", b->dev);
	if (b->o->daemon && setenv("KVSTORED", b->o->daemon, 1))
		return fail(-errno, "setenv");
	if (kvt_start(&b->d, args)) {
		kvt_cleanup(&b->d);
		return fail(0, "cannot start '%s'", kvt_daemon_path());
	}
	b->started = true;
	b->sock = b->d.sock;
	return 0;
}

/* Connect, bind to the GPU and page-lock the whole DRAM mapping (timed). */
static int client_open(struct gb *b)
{
	const struct shape *sh = &b->sh;
	uint64_t need = (2ull * sh->batch + 1) * sh->chunk_bytes, t0;
	char name[96];
	size_t arena = 0;
	int ret;

	ret = kvc_connect(b->sock, &b->c);
	if (ret)
		return fail(ret, "cannot connect to '%s'", b->sock);
	snprintf(name, sizeof(name), "kvbench-gpu/%d/%s/bf16/c%u", (int)getpid(), sh->name,
		 sh->chunk_tokens);
	ret = kvc_ns_register(b->c, name, &b->ns);
	if (ret)
		return fail(ret, "cannot register namespace '%s'", name);
	kvc_dram_base(b->c, &arena);
	b->dram_arena = arena;
	if (arena < need)
		return fail(0, "the DRAM tier has %zu bytes; the benchmark needs %" PRIu64,
			    arena, need);
	t0 = kvt_now_ns();
	ret = kvc_gpu_open(b->c, b->dev, KVC_GPU_REGISTER_ALL);
	if (ret)
		return fail(ret, "kvc_gpu_open(%d, KVC_GPU_REGISTER_ALL)", b->dev);
	for (;;) {
		kvc_gpu_registered(b->c, &b->reg_done, &b->reg_total);
		if (b->reg_done >= b->reg_total)
			break;
		if (kvt_now_ns() - t0 > REG_WAIT_S * 1000000000ull) {
			printf("warning: after %d s only %" PRIu64 " of %" PRIu64 " bytes of "
			       "the DRAM mapping are page-locked\n", REG_WAIT_S, b->reg_done,
			       b->reg_total);
			break;
		}
		kvt_sleep_ms(5);
	}
	b->reg_s = (double)(kvt_now_ns() - t0) / 1e9;
	return 0;
}

/* ---- the figures ------------------------------------------------------------- */

static int figures_dram(struct gb *b)
{
	static const struct {
		enum kvc_gpu_mode mode;
		const char *name;
		const char *tag;
	} modes[] = {
		{ KVC_GPU_ZEROCOPY, "zero-copy", "zerocopy" },
		{ KVC_GPU_STAGED, "staged", "staged" },
	};
	char what[96], key[48];
	struct op op;

	op = (struct op){ .kind = OP_GET_GPU, .tier = KVC_TIER_DRAM, .first = 0 };
	if (measure(b, &op, "DRAM -> GPU, kvc_get_gpu, contiguous", "dram_get_gpu",
		    CEIL_H2D, DRAM_TARGET))
		return -1;
	op = (struct op){ .kind = OP_PUT_GPU, .tier = KVC_TIER_DRAM };
	if (measure(b, &op, "GPU -> DRAM, kvc_put_gpu, contiguous", "dram_put_gpu",
		    CEIL_D2H, DRAM_TARGET))
		return -1;

	for (int i = 0; i < 2; i++) {
		struct lay *y = &b->lay[i];

		for (int m = 0; m < 2; m++) {
			op = (struct op){ .kind = OP_GET_PAGED, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode, .first = 0 };
			snprintf(what, sizeof(what), "DRAM -> GPU, kvc_get_paged, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_get_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_H2D, DRAM_TARGET))
				return -1;
		}
		for (int m = 0; i == 0 && m < 2; m++) {
			op = (struct op){ .kind = OP_GET_LAYERS, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode, .first = 0 };
			snprintf(what, sizeof(what), "DRAM -> GPU, layer by layer, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_layers_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_H2D, DRAM_TARGET))
				return -1;
		}
		if (lay_fill(b, y, PUT_BASE))
			return -1;
		for (int m = 0; m < 2; m++) {
			op = (struct op){ .kind = OP_PUT_PAGED, .tier = KVC_TIER_DRAM,
					  .lay = y, .mode = modes[m].mode };
			snprintf(what, sizeof(what), "GPU -> DRAM, kvc_put_paged, %s, %s",
				 y->name, modes[m].name);
			snprintf(key, sizeof(key), "dram_put_%s_%s", y->tag, modes[m].tag);
			if (measure(b, &op, what, key, CEIL_D2H, DRAM_TARGET))
				return -1;
		}
	}
	return 0;
}

static int figures_hbm(struct gb *b)
{
	char what[96], key[48];
	struct op op;

	if (seed_hbm(b))
		return -1;
	if (!b->has_hbm) {
		if (b->started) {
			kvt_dump_log(&b->d);
			return fail(0, "%s: the daemon's HBM tier did not open (its log is above)",
				    b->hbm_note);
		}
		printf("no HBM figures: %s\n", b->hbm_note);
		return 0;
	}
	op = (struct op){ .kind = OP_GET_GPU, .tier = KVC_TIER_HBM, .first = HBM_BASE };
	if (measure(b, &op, "HBM -> GPU, kvc_get_gpu, contiguous", "hbm_get_gpu",
		    CEIL_D2D, HBM_TARGET))
		return -1;
	for (int i = 0; i < 2; i++) {
		struct lay *y = &b->lay[i];

		op = (struct op){ .kind = OP_GET_PAGED, .tier = KVC_TIER_HBM, .lay = y,
				  .first = HBM_BASE };
		snprintf(what, sizeof(what), "HBM -> GPU, kvc_get_paged, %s", y->name);
		snprintf(key, sizeof(key), "hbm_get_%s", y->tag);
		if (measure(b, &op, what, key, CEIL_D2D, HBM_TARGET))
			return -1;
	}
	op = (struct op){ .kind = OP_PUT_GPU, .tier = KVC_TIER_HBM };
	return measure(b, &op, "GPU -> HBM, kvc_put_gpu(KVC_PUT_HBM), contiguous",
		       "hbm_put_gpu", CEIL_D2D, HBM_TARGET);
}

/* ---- the report ------------------------------------------------------------- */

static void print_header(const struct gb *b)
{
	const struct shape *sh = &b->sh;
	struct utsname u;
	char sz[24], sz2[24];

	if (uname(&u))
		strcpy(u.nodename, "?");
	printf("kvbench --gpu: libkvc's GPU paths against this GPU's copy ceilings\n");
	printf("gpu: %d: %s (%d visible); host %s, %ld CPUs\n", b->dev, b->gpu_name, b->n_dev,
	       u.nodename, sysconf(_SC_NPROCESSORS_ONLN));
	if (b->started)
		printf("daemon: started %s --dram-bytes %s --hbm-bytes %s --hbm-promote off "
		       "--gpu %d\n", kvt_daemon_path(),
		       kvt_size_name(b->dram_bytes, sz, sizeof(sz)),
		       kvt_size_name(b->hbm_bytes, sz2, sizeof(sz2)), b->dev);
	else
		printf("daemon: running at %s\n", b->sock);
	printf("shape: %s, %u layers x %u KV heads x %u dims x %u bytes, %u-token chunks "
	       "(%s); %u chunks per call (%s); vLLM blocks of %u tokens\n", sh->name,
	       sh->layers, sh->kv_heads, sh->head_dim, sh->elem_bytes, sh->chunk_tokens,
	       kvt_size_name(sh->chunk_bytes, sz, sizeof(sz)), sh->batch,
	       kvt_size_name(sh->batch * sh->chunk_bytes, sz2, sizeof(sz2)), sh->block_tokens);
	printf("pages: a random permutation of twice the pages a call needs (the other "
	       "half must keep their poison)\n");
	printf("dram mapping: %s page-locked by the client in %.2f s (KVC_GPU_REGISTER_ALL, "
	       "%" PRIu64 " of %" PRIu64 " bytes)\n",
	       kvt_size_name(b->dram_arena, sz, sizeof(sz)), b->reg_s, b->reg_done, b->reg_total);
	printf("method: medians of %u calls after a warm-up call; GB/s from events: start "
	       "held by a gate until the call returned, to done; wall: from before the "
	       "call to done synced (puts: to kvc_gpu_flush, committed)\n", b->samples);
}

static void print_report(const struct gb *b)
{
	char sz[24];

	printf("\n| what | GB/s | ceiling | ratio | target | wall GB/s | wall ratio |\n");
	printf("| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
	for (int i = 0; i < N_CEIL; i++)
		printf("| ceiling: %s, cudaMemcpyAsync %s (before %.2f, after %.2f) "
		       "| %.2f | | | | | |\n", ceil_what[i],
		       kvt_size_name(b->ceil_bytes, sz, sizeof(sz)), b->ceil_before[i],
		       b->ceil_after[i], b->ceil[i]);
	for (unsigned i = 0; i < b->n_figs; i++) {
		const struct fig *f = &b->figs[i];
		double c = b->ceil[f->ceil];

		printf("| %s", f->what);
		if (f->layered)
			printf(" (per layer %.3f ms, slowest %.3f; layer 0 after %.3f ms)",
			       f->layer_ms, f->layer_max_ms, f->first_ms);
		printf(" | %.2f | %s %.2f | %.3f | >= %.2f%s | %.2f | %.3f |\n", f->gbps,
		       ceil_key[f->ceil], c, ratio(f->gbps, c), f->target,
		       ratio(f->gbps, c) >= f->target ? "" : " (missed)", f->wall_gbps,
		       ratio(f->wall_gbps, c));
	}
	if (!b->has_hbm)
		printf("| HBM figures: none (%s) | | | | | | |\n", b->hbm_note);
	putchar('\n');

	for (int i = 0; i < N_CEIL; i++)
		printf("figure: ceiling %s %.2f GB/s (before %.2f, after %.2f)\n", ceil_key[i],
		       b->ceil[i], b->ceil_before[i], b->ceil_after[i]);
	for (unsigned i = 0; i < b->n_figs; i++)
		fig_print(b, &b->figs[i], "figure: ");

	printf("kvbench-gpu {\"gpu\":\"%s\",\"cpus\":%ld,\"chunk_bytes\":%" PRIu64
	       ",\"batch\":%u", b->gpu_name, sysconf(_SC_NPROCESSORS_ONLN),
	       b->sh.chunk_bytes, b->sh.batch);
	for (int i = 0; i < N_CEIL; i++)
		printf(",\"%s_gbps\":%.3f", ceil_key[i], b->ceil[i]);
	for (unsigned i = 0; i < b->n_figs; i++) {
		const struct fig *f = &b->figs[i];

		printf(",\"%s_gbps\":%.3f,\"%s_ratio\":%.3f,\"%s_wall_gbps\":%.3f", f->key,
		       f->gbps, f->key, ratio(f->gbps, b->ceil[f->ceil]), f->key,
		       f->wall_gbps);
	}
	printf("}\n");
}

/* ---- entry ---------------------------------------------------------------------- */

int gpubench_run(const struct gpubench_opts *o)
{
	static struct gb gb;
	struct gb *b = &gb;
	char why[160] = "";
	int status = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(b, 0, sizeof(*b));
	b->o = o;
	if (!kv_gpu_available(&b->n_dev, why, sizeof(why))) {
		printf("kvbench --gpu: skipped: no usable GPU (%s)\n", why);
		return 77;
	}
	b->sh = o->quick ? shape_quick : shape_full;
	b->sh.row_bytes = (uint64_t)b->sh.kv_heads * b->sh.head_dim * b->sh.elem_bytes;
	b->sh.chunk_bytes = 2ull * b->sh.layers * b->sh.chunk_tokens * b->sh.row_bytes;
	b->samples = o->quick ? 2 : 7;
	b->ceil_bytes = o->quick ? 64 * MIB : GIB;
	b->dram_bytes = o->dram_bytes ? o->dram_bytes : o->quick ? 64 * MIB : 2 * GIB;
	b->hbm_bytes = o->hbm_bytes ? o->hbm_bytes : o->quick ? 64 * MIB : 8 * GIB;
	b->gate_reps = GATE_REPS;
	b->next_key = PUT_KEYS;
	b->rng = 0x5eed;
	b->dev = 0;

	if (gpu_setup(b))
		goto out;
	if (ceilings(b, b->ceil_before))
		goto out;
	if (daemon_start(b))
		goto out;
	if (client_open(b))
		goto out_stop;
	print_header(b);
	for (int i = 0; i < N_CEIL; i++)
		printf("  ceiling %s %.2f GB/s\n", ceil_key[i], b->ceil_before[i]);
	memcpy(b->ceil, b->ceil_before, sizeof(b->ceil));
	if (fill_dput(b) || seed_dram(b) || figures_dram(b))
		goto out_stop;
	if (figures_hbm(b))
		goto out_stop;
	if (ceilings(b, b->ceil_after))
		goto out_stop;
	for (int i = 0; i < N_CEIL; i++)
		b->ceil[i] = fmax(b->ceil_before[i], b->ceil_after[i]);
	print_report(b);
	status = 0;

out_stop:
	kvc_close(b->c);
	if (b->started) {
		int st = kvt_stop(&b->d);

		if (st) {
			fail(0, "kvstored did not stop cleanly (exit status %d)", st);
			status = 1;
		}
	}
out:
	gpu_release(b);
	return status;
}
