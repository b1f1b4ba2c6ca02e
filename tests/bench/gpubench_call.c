/*
 * gpubench_call.c - kvbench --gpu's measurements: the copy ceilings of the
 * GPU; one call (a batch of chunks through kvc_get_gpu, kvc_put_gpu,
 * kvc_get_paged, kvc_put_paged or the layer-wise get) queued, waited for,
 * checked and cleaned up; the gate that holds the stream until the calls
 * have returned, so the events time the copy alone; and a figure, the
 * median of its gated and wall samples (gpubench.c's header comment has
 * the method).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/bench/gpubench_int.h"
#include "tests/lib/clock.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v); the lower middle for even n. */
static double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(n - 1) / 2];
}

/* ---- the gate: hold the stream until the calls have returned ------------ */

static int gate_close(struct gb *b)
{
	int ret = 0;

	for (unsigned i = 0; i < b->gate_reps && !ret; i++)
		ret = kv_gpu_memset(b->gate_buf, (int)(i & 0xff), GATE_BYTES, b->gs);
	if (!ret)
		ret = kv_gpu_event_record(b->gate, b->gs);
	if (!ret)
		ret = kv_gpu_stream_wait(b->s, b->gate);
	if (!ret)
		ret = kv_gpu_event_record(b->start, b->s);
	if (ret)
		return fail(ret, "cannot set up the gate");
	return 0;
}

/* Does the gate still hold (so the stream had all the work before it ran)? */
static bool gate_held(struct gb *b)
{
	return kv_gpu_event_query(b->gate) == -EAGAIN;
}

/* ---- ceilings ----------------------------------------------------------- */

static int copy_gbps(struct gb *b, void *dst, const void *src, enum ceil which,
		     double *out)
{
	double ms[MAX_SAMPLES];
	unsigned n = b->samples < 5 && !b->o->quick ? 5 : b->samples;
	float t = 0;

	for (unsigned i = 0; i < WARM_COPIES + n; i++) {
		int ret = kv_gpu_event_record(b->start, b->s);

		if (!ret)
			ret = kv_gpu_memcpy(dst, src, b->ceil_bytes, b->s);
		if (!ret)
			ret = kv_gpu_event_record(b->done, b->s);
		if (!ret)
			ret = kv_gpu_event_sync(b->done);
		if (!ret)
			ret = kv_gpu_event_ms(b->start, b->done, &t);
		if (ret)
			return fail(ret, "ceiling %s: copy of %zu bytes", ceil_key[which],
				    b->ceil_bytes);
		if (i >= WARM_COPIES)
			ms[i - WARM_COPIES] = t;
	}
	*out = gbps((double)b->ceil_bytes, median(ms, n));
	return 0;
}

int ceilings(struct gb *b, double *g)
{
	if (copy_gbps(b, b->ca, b->host, CEIL_H2D, &g[CEIL_H2D]) ||
	    copy_gbps(b, b->host, b->ca, CEIL_D2H, &g[CEIL_D2H]) ||
	    copy_gbps(b, b->cb, b->ca, CEIL_D2D, &g[CEIL_D2D]))
		return -1;
	return 0;
}

/* ---- one call: queue it, wait, check it --------------------------------- */

static bool is_put(const struct op *op)
{
	return op->kind == OP_PUT_GPU || op->kind == OP_PUT_PAGED;
}

static struct kv_gpu_event *op_done(struct gb *b, const struct op *op)
{
	return op->kind == OP_GET_LAYERS ? b->lev[b->sh.layers - 1] : b->done;
}

static const char *kind_name(enum op_kind k)
{
	switch (k) {
	case OP_GET_GPU:	return "kvc_get_gpu";
	case OP_PUT_GPU:	return "kvc_put_gpu";
	case OP_GET_PAGED:	return "kvc_get_paged";
	case OP_PUT_PAGED:	return "kvc_put_paged";
	case OP_GET_LAYERS:	return "kvc_get_paged_begin";
	}
	return "?";
}

/* Poison what a get writes; give a put fresh keys. */
static int prepare(struct gb *b, struct op *op)
{
	const struct shape *sh = &b->sh;
	int ret = 0;

	switch (op->kind) {
	case OP_GET_GPU:
		ret = kv_gpu_memset(b->dget, POISON, sh->batch * sh->chunk_bytes, b->s);
		break;
	case OP_GET_PAGED:
	case OP_GET_LAYERS:
		ret = kv_gpu_memset(op->lay->dev, POISON, op->lay->bytes, b->s);
		break;
	case OP_PUT_GPU:
	case OP_PUT_PAGED:
		op->key0 = b->next_key;
		b->next_key += sh->batch;
		break;
	}
	if (ret)
		return fail(ret, "cannot poison the destination");
	return 0;
}

/* Check one chunk's result of a call. */
static int desc_ok(const struct op *op, unsigned j, int status, int tier, uint64_t bytes,
		   uint64_t want_bytes)
{
	const char *fn = kind_name(op->kind);

	if (status)
		return fail(status, "%s: chunk %u of the batch", fn, j);
	if (tier >= 0 && tier != op->tier)
		return fail(0, "%s: chunk %u came from tier %d, not %u", fn, j, tier, op->tier);
	if (bytes != want_bytes)
		return fail(0, "%s: chunk %u is %" PRIu64 " bytes, not %" PRIu64, fn, j,
			    bytes, want_bytes);
	return 0;
}

static int get_layers(struct gb *b, struct op *op)
{
	struct kvc_paged_op *po = NULL;
	unsigned n = b->sh.batch;
	int got, ret = 0;

	got = kvc_get_paged_begin(b->c, b->ns, &op->lay->kl, b->qd, n, b->s, &po);
	if (got < 0)
		return fail(got, "kvc_get_paged_begin of %u chunks", n);
	if (b->gating && b->open_at == OPEN_NEVER && !gate_held(b))
		b->open_at = OPEN_BEGIN;
	for (unsigned j = 0; j < n && !ret; j++)
		ret = desc_ok(op, j, b->qd[j].status, b->qd[j].tier, 0, 0);
	if (!ret && got != (int)n)
		ret = fail(0, "kvc_get_paged_begin found %d of %u chunks", got, n);
	for (unsigned l = 0; l < b->sh.layers && !ret; l++) {
		int err = kvc_get_paged_layers(po, l, l + 1, (kvc_event_t)b->lev[l]);

		if (err)
			ret = fail(err, "kvc_get_paged_layers(%u, %u)", l, l + 1);
		if (b->gating && b->open_at == OPEN_NEVER && !gate_held(b))
			b->open_at = (int)l;
	}
	if (po) {
		int err = kvc_get_paged_end(po);

		if (err && !ret)
			ret = fail(err, "kvc_get_paged_end");
	}
	return ret;
}

/* Queue the call; its done event is op_done(). */
static int issue(struct gb *b, struct op *op)
{
	const struct shape *sh = &b->sh;
	kvc_stream_t s = (kvc_stream_t)b->s;
	kvc_event_t done = (kvc_event_t)b->done;
	unsigned n = sh->batch, flags = op->tier == KVC_TIER_HBM ? KVC_PUT_HBM : 0;
	int got = 0, ret = 0;

	switch (op->kind) {
	case OP_GET_GPU:
		for (unsigned j = 0; j < n; j++)
			b->gd[j] = (struct kvc_gpu_desc){
				.key = key_of(op->first + j),
				.dev = b->dget + j * sh->chunk_bytes,
				.cap = sh->chunk_bytes,
			};
		got = kvc_get_gpu(b->c, b->ns, b->gd, n, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->gd[j].status, b->gd[j].tier, b->gd[j].bytes,
				      sh->chunk_bytes);
		break;
	case OP_PUT_GPU:
		for (unsigned j = 0; j < n; j++)
			b->pd[j] = (struct kvc_put_desc){
				.key = key_of(op->key0 + j),
				.tokens = sh->chunk_tokens,
				.data = b->dput + j * sh->chunk_bytes,
				.bytes = sh->chunk_bytes,
			};
		got = kvc_put_gpu(b->c, b->ns, b->pd, n, flags, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->pd[j].status, -1, 0, 0);
		break;
	case OP_GET_PAGED:
	case OP_PUT_PAGED:
	case OP_GET_LAYERS:
		for (unsigned j = 0; j < n; j++)
			b->qd[j] = (struct kvc_paged_desc){
				.key = key_of((op->kind == OP_PUT_PAGED ? op->key0 : op->first)
					      + j),
				.pages = op->lay->pages + j * op->lay->ppc,
			};
		if (op->kind == OP_GET_LAYERS)
			return get_layers(b, op);
		if (op->kind == OP_GET_PAGED)
			got = kvc_get_paged(b->c, b->ns, &op->lay->kl, b->qd, n, s, done);
		else
			got = kvc_put_paged(b->c, b->ns, &op->lay->kl, b->qd, n, flags, s, done);
		for (unsigned j = 0; got >= 0 && j < n && !ret; j++)
			ret = desc_ok(op, j, b->qd[j].status,
				      op->kind == OP_GET_PAGED ? b->qd[j].tier : -1, 0, 0);
		break;
	}
	if (got < 0)
		return fail(got, "%s of %u chunks", kind_name(op->kind), n);
	if (!ret && got != (int)n)
		ret = fail(0, "%s queued %d of %u chunks", kind_name(op->kind), got, n);
	return ret;
}

/* Read chunk key idx (content PUT_BASE + j) back from its tier and compare. */
static int put_read_back(struct gb *b, const struct op *op, unsigned j, const char *what)
{
	const struct shape *sh = &b->sh;
	struct kvc_key k = key_of(op->key0 + j);
	size_t got = 0;
	int ret;

	if (op->tier == KVC_TIER_DRAM) {
		ret = kvc_get(b->c, b->ns, &k, b->chunk, sh->chunk_bytes, &got);
		if (ret)
			return fail(ret, "%s: kvc_get of chunk %u", what, j);
		if (got != sh->chunk_bytes)
			return fail(0, "%s: chunk %u is %zu bytes", what, j, got);
		return chunk_ok(b, b->chunk, PUT_BASE + j, what) ? 0 : -1;
	}
	b->gd[0] = (struct kvc_gpu_desc){ .key = k, .dev = b->dget, .cap = sh->chunk_bytes };
	ret = kvc_get_gpu(b->c, b->ns, b->gd, 1, (kvc_stream_t)b->s, NULL);
	if (ret != 1)
		return fail(ret < 0 ? ret : b->gd[0].status, "%s: kvc_get_gpu of chunk %u",
			    what, j);
	ret = kv_gpu_memcpy(b->host, b->dget, sh->chunk_bytes, b->s);
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (!ret)
		ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "%s: cannot read chunk %u back", what, j);
	return chunk_ok(b, b->host, PUT_BASE + j, what) ? 0 : -1;
}

static int check_puts(struct gb *b, const struct op *op, bool full, const char *what)
{
	uint8_t tiers[MAX_BATCH];
	unsigned n = b->sh.batch;
	int got;

	for (unsigned j = 0; j < n; j++)
		b->keys[j] = key_of(op->key0 + j);
	got = kvc_lookup(b->c, b->ns, b->keys, n, tiers);
	if (got != (int)n)
		return fail(got < 0 ? got : 0, "%s: %d of the %u chunks put are cached",
			    what, got, n);
	for (unsigned j = 0; j < n; j++)
		if (tiers[j] != op->tier)
			return fail(0, "%s: chunk %u landed in tier %u, not %u", what, j,
				    tiers[j], op->tier);
	if (full) {
		for (unsigned j = 0; j < n; j++)
			if (put_read_back(b, op, j, what))
				return -1;
		return 0;
	}
	if (put_read_back(b, op, 0, what) ||
	    put_read_back(b, op, (unsigned)(rnd(b) % n), what))
		return -1;
	return 0;
}

static int check_get_gpu(struct gb *b, const struct op *op, bool full, const char *what)
{
	const struct shape *sh = &b->sh;
	size_t slice = sh->chunk_tokens * sh->row_bytes;
	unsigned j[CHECK_SLICES], l[CHECK_SLICES], kv[CHECK_SLICES];
	int ret = 0;

	if (full) {
		ret = kv_gpu_memcpy(b->host, b->dget, sh->batch * sh->chunk_bytes, b->s);
		if (!ret)
			ret = kv_gpu_stream_sync(b->s);
		if (ret)
			return fail(ret, "%s: cannot read the chunks back", what);
		for (unsigned i = 0; i < sh->batch; i++)
			if (!chunk_ok(b, b->host + i * sh->chunk_bytes, op->first + i, what))
				return -1;
		return 0;
	}
	for (unsigned i = 0; i < CHECK_SLICES && !ret; i++) {
		j[i] = (unsigned)(rnd(b) % sh->batch);
		l[i] = (unsigned)(rnd(b) % sh->layers);
		kv[i] = (unsigned)(rnd(b) & 1);
		ret = kv_gpu_memcpy(b->hsmall + i * slice,
				    b->dget + j[i] * sh->chunk_bytes + slice_off(sh, l[i], kv[i]),
				    slice, b->s);
	}
	if (!ret)
		ret = kv_gpu_stream_sync(b->s);
	if (ret)
		return fail(ret, "%s: cannot read slices back", what);
	for (unsigned i = 0; i < CHECK_SLICES; i++)
		if (!rows_ok(b, b->hsmall + i * slice, op->first + j[i], l[i], kv[i], 0,
			     sh->chunk_tokens, what))
			return -1;
	return 0;
}

static int verify(struct gb *b, const struct op *op, bool full, const char *what)
{
	switch (op->kind) {
	case OP_GET_GPU:
		return check_get_gpu(b, op, full, what);
	case OP_GET_PAGED:
	case OP_GET_LAYERS:
		if (full)
			return lay_check_all(b, op->lay, op->first, what);
		return lay_check_some(b, op->lay, op->first, what);
	case OP_PUT_GPU:
	case OP_PUT_PAGED:
		return check_puts(b, op, full, what);
	}
	return 0;
}

/* Drop a call's fresh puts, so the tier never has to evict. */
static int cleanup(struct gb *b, const struct op *op, const char *what)
{
	unsigned n = b->sh.batch;
	int status[MAX_BATCH];
	int got;

	if (!is_put(op))
		return 0;
	for (unsigned j = 0; j < n; j++)
		b->keys[j] = key_of(op->key0 + j);
	got = kvc_evict(b->c, b->ns, b->keys, n, status);
	if (got < 0)
		return fail(got, "%s: kvc_evict of the chunks put", what);
	for (unsigned j = 0; j < n; j++)
		if (status[j])
			return fail(status[j], "%s: kvc_evict of chunk %u", what, j);
	return 0;
}

static int layer_times(struct gb *b, struct sres *r)
{
	double ms[MAX_LAYERS] = { 0 };
	unsigned n = b->sh.layers;
	float t = 0;

	for (unsigned l = 0; l < n; l++) {
		int ret = kv_gpu_event_ms(l ? b->lev[l - 1] : b->start, b->lev[l], &t);

		if (ret)
			return fail(ret, "layer %u's time", l);
		ms[l] = t;
	}
	r->first_ms = ms[0];
	r->layer_max_ms = 0;
	for (unsigned l = 0; l < n; l++)
		r->layer_max_ms = fmax(r->layer_max_ms, ms[l]);
	r->layer_ms = median(ms, n);
	return 0;
}

static int sample(struct gb *b, struct op *op, enum smode m, struct sres *r,
		  const char *what)
{
	struct kv_gpu_event *done = op_done(b, op);
	uint64_t t0 = 0, t1;
	float t = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->open_at = OPEN_NEVER;
	if (prepare(b, op))
		return -1;
	if (m == S_GATED) {
		if (gate_close(b))
			return -1;
	} else {
		ret = kv_gpu_stream_sync(b->s);
		if (ret)
			return fail(ret, "%s: stream sync", what);
		t0 = kvt_now_ns();
	}
	b->gating = m == S_GATED;
	b->open_at = OPEN_NEVER;
	ret = issue(b, op);
	b->gating = false;
	if (ret) {
		(void)kv_gpu_stream_sync(b->s);
		(void)kvc_gpu_flush(b->c);
		return -1;
	}
	if (m == S_GATED) {
		r->held = gate_held(b);
		r->open_at = b->open_at;
	}
	ret = kv_gpu_event_sync(done);
	if (ret)
		return fail(ret, "%s: waiting for the done event", what);
	if (m == S_WALL && is_put(op)) {
		ret = kvc_gpu_flush(b->c);
		if (ret)
			return fail(ret, "%s: kvc_gpu_flush", what);
	}
	t1 = kvt_now_ns();
	ret = kvc_gpu_flush(b->c);
	if (ret)
		return fail(ret, "%s: kvc_gpu_flush", what);
	if (m == S_GATED) {
		ret = kv_gpu_event_ms(b->start, done, &t);
		if (ret)
			return fail(ret, "%s: event time", what);
		r->ms = t;
		if (op->kind == OP_GET_LAYERS && layer_times(b, r))
			return -1;
	} else {
		r->ms = (double)(t1 - t0) / 1e6;
	}
	if (verify(b, op, m == S_WARM, what))
		return -1;
	return cleanup(b, op, what);
}

void fig_print(const struct gb *b, const struct fig *f, const char *prefix)
{
	double c = b->ceil[f->ceil];

	printf("%s%s %.2f GB/s, %.3f of %s %.2f (target >= %.2f); wall %.2f GB/s, %.3f",
	       prefix, f->key, f->gbps, ratio(f->gbps, c), ceil_key[f->ceil], c,
	       f->target, f->wall_gbps, ratio(f->wall_gbps, c));
	if (f->layered)
		printf("; per layer %.3f ms (slowest %.3f), layer 0 done after %.3f ms",
		       f->layer_ms, f->layer_max_ms, f->first_ms);
	if (f->ungated && f->layered && f->open_at >= 0)
		printf(" [%u samples: the gate opened before the calls returned: "
		       "kvc_get_paged_layers(%d, %d) found it open]", f->ungated, f->open_at,
		       f->open_at + 1);
	else if (f->ungated && f->layered && f->open_at == OPEN_BEGIN)
		printf(" [%u samples: the gate opened in kvc_get_paged_begin]", f->ungated);
	else if (f->ungated)
		printf(" [%u samples: the gate opened before the call returned]", f->ungated);
	putchar('\n');
}

/* Measure one figure: a warm-up call, then gated and wall-timed calls in turn. */
int measure(struct gb *b, struct op *op, const char *what, const char *key,
	    enum ceil which, double target)
{
	double ev[MAX_SAMPLES], wall[MAX_SAMPLES], first[MAX_SAMPLES];
	double lmed[MAX_SAMPLES], lmax[MAX_SAMPLES];
	double bytes = (double)b->sh.batch * (double)b->sh.chunk_bytes;
	unsigned reps = b->gate_reps, n = 0;
	int prev_open = OPEN_NEVER;
	struct fig *f;
	struct sres r;
	int ret;

	if (b->n_figs == MAX_FIGS)
		return fail(0, "too many figures");
	f = &b->figs[b->n_figs];
	memset(f, 0, sizeof(*f));
	f->open_at = OPEN_NEVER;
	snprintf(f->what, sizeof(f->what), "%s", what);
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->ceil = which;
	f->target = target;
	f->layered = op->kind == OP_GET_LAYERS;

	ret = kvc_gpu_mode(b->c, op->mode);
	if (ret < 0)
		return fail(ret, "%s: kvc_gpu_mode", what);
	if (sample(b, op, S_WARM, &r, what))
		return -1;
	while (n < b->samples) {
		if (sample(b, op, S_GATED, &r, what))
			return -1;
		/* Opened early: a longer gate, unless a layers call found it
		 * open at the same layer as before (the call waits on the host
		 * for an earlier layer: no gate can outlast that). */
		if (!r.held && b->gate_reps < GATE_MAX_REPS &&
		    !(r.open_at >= 0 && r.open_at == prev_open)) {
			prev_open = r.open_at;
			b->gate_reps *= 2;
			continue;
		}
		if (!r.held) {
			f->ungated++;
			f->open_at = r.open_at;
		}
		ev[n] = r.ms;
		first[n] = r.first_ms;
		lmed[n] = r.layer_ms;
		lmax[n] = r.layer_max_ms;
		/* Wall samples in between, so drift hits both alike. */
		if (sample(b, op, S_WALL, &r, what))
			return -1;
		wall[n++] = r.ms;
	}
	/* A gate that never held says the call waits for the stream: don't
	 * make the next figures pay for the longest gate. */
	if (f->ungated == b->samples)
		b->gate_reps = reps;
	f->ms = median(ev, b->samples);
	f->wall_ms = median(wall, b->samples);
	f->gbps = gbps(bytes, f->ms);
	f->wall_gbps = gbps(bytes, f->wall_ms);
	if (f->layered) {
		f->first_ms = median(first, b->samples);
		f->layer_ms = median(lmed, b->samples);
		f->layer_max_ms = median(lmax, b->samples);
	}
	b->n_figs++;
	fig_print(b, f, "  ");
	return 0;
}
