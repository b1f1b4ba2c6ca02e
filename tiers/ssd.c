/*
 * ssd.c - the SSD tier: files, space, and the I/O thread (see ssd.h).
 *
 * Two threads touch a struct kv_ssd. The loop thread owns the allocator,
 * submits jobs and reaps them; the I/O thread owns the I/O engine, the
 * codec context and, once started, the LMDB index. They meet only at the
 * two job queues (in: submitted, out: finished), under one mutex, and the
 * eventfd that tells the loop thread something finished.
 *
 * The I/O thread's cycle: take the submitted jobs in order; a FORGET or NS
 * becomes an index change; a WRITE first commits any FORGET before it (so
 * no record points at space it is about to overwrite), then is encoded,
 * checksummed and queued; a READ is queued. Then it runs the engine, and
 * after each round commits the index records of every write that
 * completed in it, in one transaction (after fdatasync when sync is on),
 * and only then reports those writes: a chunk counts as on the SSD once
 * its record is committed, never before.
 *
 * Opening and closing are in ssd_open.c; struct kv_ssd in ssd_int.h.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/codec.h"
#include "tiers/ssd.h"
#include "tiers/ssd_int.h"
#include "tiers/ssd_io.h"

static void key_str(const struct kv_ssd_job *j, char *buf, size_t len)
{
	snprintf(buf, len, "ns %u key %016llx%016llx", (unsigned)j->ns,
		 (unsigned long long)j->key.hi, (unsigned long long)j->key.lo);
}

/* ---- staging buffers (I/O thread) ------------------------------------ */

/* An aligned buffer of at least len bytes for j, or -ENOMEM. */
static int bounce_get(struct kv_ssd *s, struct kv_ssd_job *j, uint64_t len)
{
	unsigned best = s->n_idle;

	for (unsigned i = 0; i < s->n_idle; i++)
		if (s->idle_cap[i] >= len &&
		    (best == s->n_idle || s->idle_cap[i] < s->idle_cap[best]))
			best = i;
	if (best < s->n_idle) {
		j->bounce = s->idle[best];
		j->bounce_cap = s->idle_cap[best];
		s->bounce_out += j->bounce_cap;
		s->idle_bytes -= s->idle_cap[best];
		s->n_idle--;
		s->idle[best] = s->idle[s->n_idle];
		s->idle_cap[best] = s->idle_cap[s->n_idle];
		return 0;
	}
	len = round_up(len, 1u << 20);	/* sizes that serve the next chunks too */
	if (posix_memalign(&j->bounce, s->mem_align, len)) {
		j->bounce = NULL;
		return -ENOMEM;
	}
	j->bounce_cap = len;
	s->bounce_out += len;
	return 0;
}

static void bounce_put(struct kv_ssd *s, struct kv_ssd_job *j)
{
	if (!j->bounce)
		return;
	s->bounce_out -= j->bounce_cap;
	if (s->n_idle < BOUNCE_SLOTS && s->idle_bytes + j->bounce_cap <= BOUNCE_KEEP) {
		s->idle[s->n_idle] = j->bounce;
		s->idle_cap[s->n_idle++] = j->bounce_cap;
		s->idle_bytes += j->bounce_cap;
	} else {
		free(j->bounce);
	}
	j->bounce = NULL;
}

/* ---- job queues -------------------------------------------------------- */

static void finish(struct kv_ssd *s, struct kv_ssd_job *j)
{
	uint64_t one = 1;

	bounce_put(s, j);
	j->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->out_tail)
		s->out_tail->next = j;
	else
		s->out_head = j;
	s->out_tail = j;
	pthread_mutex_unlock(&s->lock);
	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: eventfd write: %s", strerror(errno));
}

static void queue_job(struct kv_ssd *s, struct kv_ssd_job *j)
{
	j->next = NULL;
	j->result = 0;
	j->bounce = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->in_tail)
		s->in_tail->next = j;
	else
		s->in_head = j;
	s->in_tail = j;
	pthread_mutex_unlock(&s->lock);
	kv_io_wake(s->io);
}

void kv_ssd_submit(struct kv_ssd *s, struct kv_ssd_job *j)
{
	j->m.op = KV_MOVE_OWN;
	queue_job(s, j);
}

struct kv_ssd_job *kv_ssd_reap(struct kv_ssd *s)
{
	struct kv_ssd_job *list;
	uint64_t n;

	if (read(s->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&s->lock);
	list = s->out_head;
	s->out_head = s->out_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	return list;
}

int kv_ssd_event_fd(const struct kv_ssd *s)
{
	return s->efd;
}

/* ---- the I/O thread ------------------------------------------------------ */

static void op_add(struct kv_ssd *s, const struct kv_ssd_op *op)
{
	if (s->n_ops == s->cap_ops) {
		s->cap_ops = s->cap_ops ? 2 * s->cap_ops : 64;
		s->ops = kv_xrealloc(s->ops, s->cap_ops * sizeof(*s->ops));
	}
	s->ops[s->n_ops++] = *op;
}

/*
 * Commit the index changes gathered so far, then report the writes they
 * record. With sync on, the data is made durable first, so a record never
 * reaches the disk before its bytes.
 */
static int commit(struct kv_ssd *s)
{
	struct kv_ssd_job *j, *next;
	int ret = 0;

	if (!s->n_ops && !s->committing)
		return 0;
	if (s->committing && s->conf.sync)
		ret = kv_io_sync(s->io);
	if (!ret && s->n_ops)
		ret = kv_ssd_meta_apply(s->meta, s->ops, s->n_ops);
	if (ret) {
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: index commit of %zu changes failed: %s",
		       s->n_ops, kv_strerror(ret));
		atomic_fetch_add(&s->io_errors, 1);
		s->sync_err = ret;
	}
	s->n_ops = 0;
	s->forget_pending = false;
	for (j = s->committing; j; j = next) {
		next = j->wnext;
		j->result = ret;
		if (!ret) {
			atomic_fetch_add(&s->bytes_written, j->rec.stored);
			atomic_fetch_add(&s->raw_written, j->rec.bytes);
		}
		finish(s, j);
	}
	s->committing = NULL;
	return ret;
}

/*
 * The crash test (KV_FAULT_CRASH): die as a power cut would leave the
 * disk, with this write torn and every write not yet committed garbled,
 * then SIGKILL ourselves before any record of them is written.
 */
static void crash_now(struct kv_ssd *s, struct kv_ssd_job *torn)
{
	size_t len = s->block;
	void *junk = NULL;

	if (posix_memalign(&junk, s->mem_align > 4096 ? s->mem_align : 4096, len))
		abort();
	memset(junk, 0xa5, len);
	for (int pass = 0; pass < 3; pass++) {
		struct kv_ssd_job *j = pass == 0 ? torn : pass == 1 ? s->in_flight : s->committing;

		for (; j; j = pass == 0 ? NULL : j->wnext) {
			uint64_t at = j->rec.offset;

			if (pass == 0)	/* torn: its second half */
				at += round_up(j->io_len / 2, len);
			if (at >= s->space)
				continue;
			if (pwrite(s->fds[at / s->file_bytes], junk, len,
				   (off_t)(at % s->file_bytes)) < 0)
				kv_log(KV_WARN, KV_LOG_TIER, "ssd: crash test: %s",
				       strerror(errno));
		}
	}
	kv_log(KV_WARN, KV_LOG_TIER, "ssd: KV_FAULT_CRASH: dying mid-write");
	raise(SIGKILL);
}

static void start_write(struct kv_ssd *s, struct kv_ssd_job *j)
{
	const char *raw = s->dram + j->dram_off;
	const void *stored = raw;
	uint64_t bytes = j->rec.bytes;
	char ks[64];
	int ret;

	j->rec.codec = KV_CODEC_NONE;
	j->rec.stored = bytes;
	if (j->codec != KV_CODEC_NONE && j->codec < KV_CODEC_MAX) {
		size_t cap = kv_codec_bound(j->codec, bytes);
		ssize_t n;

		if (bounce_get(s, j, round_up(cap, s->block)))
			goto nomem;
		n = kv_codec_encode(s->cx, j->codec, raw, bytes, j->bounce, cap);
		if (n > 0) {
			stored = j->bounce;
			j->rec.stored = (uint64_t)n;
			j->rec.codec = j->codec;
		} else {
			bounce_put(s, j);	/* does not compress: store it raw */
		}
	}
	j->io_len = round_up(j->rec.stored, s->block);
	if (stored == raw && (((uintptr_t)raw % s->mem_align) || j->io_len > j->dram_len)) {
		if (bounce_get(s, j, j->io_len))
			goto nomem;
		memcpy(j->bounce, raw, bytes);
		stored = j->bounce;
	}
	if (stored == j->bounce)	/* no stale heap bytes on the disk */
		memset((char *)j->bounce + j->rec.stored, 0, j->io_len - j->rec.stored);
	if (j->io_len > j->ssd_len) {
		key_str(j, ks, sizeof(ks));
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: write of %s: %llu bytes for a %llu-byte extent",
		       ks, (unsigned long long)j->io_len, (unsigned long long)j->ssd_len);
		j->result = -EINVAL;
		finish(s, j);
		return;
	}
	j->rec.checksum = XXH3_64bits_withSeed(stored, j->rec.stored,
					       kv_ssd_seed(j->rec.salt, j->ns, &j->key));
	if (kv_fault_hit(KV_FAULT_CRASH))
		crash_now(s, j);
	ret = kv_io_queue(s->io, true, j->rec.offset, (void *)stored, j->io_len, j);
	if (ret) {
		j->result = ret;
		finish(s, j);
		return;
	}
	j->wnext = s->in_flight;
	s->in_flight = j;
	return;

nomem:
	j->result = -ENOMEM;	/* data-plane memory: fail the job, not the daemon */
	finish(s, j);
}

static void start_read(struct kv_ssd *s, struct kv_ssd_job *j)
{
	char *dst = s->dram + j->dram_off;
	void *buf = dst;
	int ret;

	j->io_len = round_up(j->rec.stored, s->block);
	if (j->rec.bytes > j->dram_len || j->rec.offset + j->io_len > s->space) {
		j->result = -EINVAL;
		finish(s, j);
		return;
	}
	if (j->rec.codec != KV_CODEC_NONE || ((uintptr_t)dst % s->mem_align) ||
	    j->io_len > j->dram_len) {
		if (bounce_get(s, j, j->io_len)) {
			j->result = -ENOMEM;
			finish(s, j);
			return;
		}
		buf = j->bounce;
	}
	ret = kv_io_queue(s->io, false, j->rec.offset, buf, j->io_len, j);
	if (ret) {
		j->result = ret;
		finish(s, j);
	}
}

/* A read is in: check it, decode it into the DRAM extent. */
static void end_read(struct kv_ssd *s, struct kv_ssd_job *j)
{
	char *dst = s->dram + j->dram_off;
	const char *got = j->bounce ? j->bounce : dst;
	char ks[64];

	atomic_fetch_add(&s->bytes_read, j->io_len);
	if (XXH3_64bits_withSeed(got, j->rec.stored,
				 kv_ssd_seed(j->rec.salt, j->ns, &j->key)) != j->rec.checksum) {
		key_str(j, ks, sizeof(ks));
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: checksum mismatch on %s at offset %llu: dropped",
		       ks, (unsigned long long)j->rec.offset);
		atomic_fetch_add(&s->checksum_failures, 1);
		j->result = -KV_ECORRUPT;
	} else if (j->rec.codec != KV_CODEC_NONE) {
		if (kv_codec_decode(s->cx, j->rec.codec, got, j->rec.stored, dst,
				    j->rec.bytes)) {
			key_str(j, ks, sizeof(ks));
			kv_log(KV_ERR, KV_LOG_TIER, "ssd: %s does not decode (%s): dropped",
			       ks, kv_codec_name(j->rec.codec));
			atomic_fetch_add(&s->checksum_failures, 1);
			j->result = -KV_ECORRUPT;
		}
	} else if (j->bounce) {
		memcpy(dst, j->bounce, j->rec.bytes);
	}
	finish(s, j);
}

static void unlink_in_flight(struct kv_ssd *s, struct kv_ssd_job *j)
{
	struct kv_ssd_job **pp = &s->in_flight;

	while (*pp && *pp != j)
		pp = &(*pp)->wnext;
	if (*pp)
		*pp = j->wnext;
	j->wnext = NULL;
}

static void io_done(void *arg, void *tag, int res)
{
	struct kv_ssd *s = arg;
	struct kv_ssd_job *j = tag;
	char ks[64];

	if (res) {
		key_str(j, ks, sizeof(ks));
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: %s of %s at offset %llu failed: %s",
		       j->op == KV_SSD_WRITE ? "write" : "read", ks,
		       (unsigned long long)j->rec.offset, kv_strerror(res));
		atomic_fetch_add(&s->io_errors, 1);
	}
	if (j->op == KV_SSD_READ) {
		if (res) {
			j->result = res;
			finish(s, j);
		} else {
			end_read(s, j);
		}
		return;
	}
	unlink_in_flight(s, j);
	if (res) {
		j->result = res;
		finish(s, j);
		return;
	}
	/* Done on the disk: its record goes in with this round's commit. */
	op_add(s, &(struct kv_ssd_op){ .ns = j->ns, .key = j->key, .rec = j->rec });
	j->wnext = s->committing;
	s->committing = j;
}

/* Will this job stage its bytes (a codec)? Then it may have to wait. */
static bool staged(const struct kv_ssd_job *j)
{
	return (j->op == KV_SSD_WRITE && j->codec != KV_CODEC_NONE) ||
	       (j->op == KV_SSD_READ && j->rec.codec != KV_CODEC_NONE);
}

static bool staging_full(const struct kv_ssd *s)
{
	return s->bounce_out > 0 && s->bounce_out >= BOUNCE_KEEP;
}

static void start_job(struct kv_ssd *s, struct kv_ssd_job *j);

static void take_job(struct kv_ssd *s, struct kv_ssd_job *j)
{
	if (staged(j) && (s->stalled || staging_full(s))) {
		j->next = NULL;
		if (s->stalled_tail)
			s->stalled_tail->next = j;
		else
			s->stalled = j;
		s->stalled_tail = j;
		return;
	}
	start_job(s, j);
}

static void start_job(struct kv_ssd *s, struct kv_ssd_job *j)
{
	int ret;

	switch (j->op) {
	case KV_SSD_FORGET:
		op_add(s, &(struct kv_ssd_op){ .del = true, .ns = j->ns, .key = j->key });
		s->forget_pending = true;
		finish(s, j);
		return;
	case KV_SSD_NS:
		ret = kv_ssd_meta_ns_put(s->meta, j->ns, j->uid, j->name);
		if (ret)
			kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot record namespace '%s': %s",
			       j->name, kv_strerror(ret));
		j->result = ret;
		finish(s, j);
		return;
	case KV_SSD_SYNC:
		commit(s);
		j->result = s->sync_err;
		s->sync_err = 0;
		finish(s, j);
		return;
	case KV_SSD_NS_DROP:
		/* The deletes gathered so far (the namespace's FORGETs among
		 * them) go first; then its records go in one transaction. */
		commit(s);
		ret = kv_ssd_meta_ns_drop(s->meta, j->ns);
		if (ret)
			kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot forget namespace %u: %s",
			       (unsigned)j->ns, kv_strerror(ret));
		j->result = ret;
		finish(s, j);
		return;
	case KV_SSD_WRITE:
		/* Space freed by an eviction may be reused by this write:
		 * the eviction's FORGET must be on the disk first. */
		if (s->forget_pending)
			commit(s);
		start_write(s, j);
		return;
	case KV_SSD_READ:
		start_read(s, j);
		return;
	default:
		j->result = -EINVAL;
		finish(s, j);
	}
}

void *kv_ssd_io_thread(void *arg)
{
	struct kv_ssd *s = arg;

	for (;;) {
		struct kv_ssd_job *list, *next;
		bool stop;
		int ret;

		pthread_mutex_lock(&s->lock);
		list = s->in_head;
		s->in_head = s->in_tail = NULL;
		stop = s->stop;
		pthread_mutex_unlock(&s->lock);
		/* What waited for staging memory goes first, in order. */
		while (s->stalled && !staging_full(s)) {
			struct kv_ssd_job *j = s->stalled;

			s->stalled = j->next;
			if (!s->stalled)
				s->stalled_tail = NULL;
			start_job(s, j);
		}
		for (; list; list = next) {	/* staged ones queue behind */
			next = list->next;
			take_job(s, list);
		}
		/* Deletes go to the disk now, not with the next write: a chunk
		 * dropped on purpose must not come back after a crash. */
		if (s->forget_pending)
			commit(s);
		if (stop && !kv_io_pending(s->io) && !s->committing && !s->n_ops &&
		    !s->stalled)
			break;
		/* Block for a completion or a new job; while stopping, only
		 * while I/O is still out. */
		ret = kv_io_run(s->io, !stop || kv_io_pending(s->io), io_done, s);
		if (ret < 0) {
			kv_log(KV_ERR, KV_LOG_TIER, "ssd: the I/O engine failed: %s; the I/O thread stops",
			       kv_strerror(ret));
			break;
		}
		/* A round is over: what it completed becomes durable now, in
		 * one transaction. */
		commit(s);
	}
	commit(s);
	return NULL;
}

/* ---- space and statistics (loop thread) -------------------------------------- */

int kv_ssd_alloc(struct kv_ssd *s, uint64_t bytes, struct kv_extent **out)
{
	return kv_alloc_get(s->alloc, bytes, out);
}

void kv_ssd_free(struct kv_ssd *s, struct kv_extent *e)
{
	kv_alloc_put(s->alloc, e);
}

void kv_ssd_trim(struct kv_ssd *s, struct kv_extent *e, uint64_t bytes)
{
	kv_alloc_trim(s->alloc, e, round_up(bytes, s->block));
}

void kv_ssd_stats(struct kv_ssd *s, struct kv_alloc_stats *as,
		  struct kv_ssd_stats *st)
{
	if (as)
		kv_alloc_stats(s->alloc, as);
	if (!st)
		return;
	st->bytes_written = atomic_load(&s->bytes_written);
	st->bytes_raw_written = atomic_load(&s->raw_written);
	st->bytes_read = atomic_load(&s->bytes_read);
	st->checksum_failures = atomic_load(&s->checksum_failures);
	st->io_errors = atomic_load(&s->io_errors);
	st->records_missing = s->records_missing;
	st->records_wrong_ns = s->records_wrong_ns;
	st->uring = kv_io_uring(s->io);
}

/* The generic tier table: the store opens this tier with kv_ssd_open(). */
static int ssd_alloc_op(void *priv, uint64_t bytes, struct kv_extent **out)
{
	return kv_ssd_alloc(priv, bytes, out);
}

static void ssd_free_op(void *priv, struct kv_extent *e)
{
	kv_ssd_free(priv, e);
}

static void ssd_stats_op(void *priv, struct kv_alloc_stats *st)
{
	kv_ssd_stats(priv, st, NULL);
}

static void ssd_close_op(void *priv)
{
	kv_ssd_close(priv);
}

/* Moves: a generic job becomes a WRITE (STORE) or a READ (LOAD). */
static struct kv_move *ssd_move_new_op(void *priv)
{
	struct kv_ssd_job *j = kv_xcalloc(1, sizeof(*j));

	return &j->m;
}

static void ssd_move_free_op(void *priv, struct kv_move *m)
{
	free(kv_ssd_job_of(m));
}

static void ssd_submit_op(void *priv, struct kv_move *m)
{
	struct kv_ssd_job *j = kv_ssd_job_of(m);
	struct kv_ssd_rec *r = &j->rec;

	j->op = m->op == KV_MOVE_STORE ? KV_SSD_WRITE : KV_SSD_READ;
	j->codec = m->rec.codec;
	j->ns = m->ns;
	j->key = m->key;
	memset(r, 0, sizeof(*r));
	r->magic = KV_SSD_REC_MAGIC;
	r->salt = m->rec.salt;
	r->has_parent = m->rec.has_parent;
	r->tokens = m->rec.tokens;
	r->position = m->rec.position;
	r->parent = m->rec.parent;
	r->bytes = m->bytes;
	r->hits = m->rec.hits;
	r->freq = m->rec.freq;
	r->score = m->rec.score;
	r->offset = kv_extent_offset(m->ext);
	if (m->op == KV_MOVE_STORE) {
		j->ssd_len = kv_extent_size(m->ext);
	} else {
		r->stored = m->rec.stored;
		r->codec = m->rec.codec;
		r->checksum = m->rec.checksum;
	}
	j->dram_off = m->host_off;
	j->dram_len = m->host_len;
	j->cookie = m->cookie;
	queue_job(priv, j);
}

static struct kv_move *ssd_reap_op(void *priv)
{
	struct kv_ssd_job *j = kv_ssd_reap(priv);
	struct kv_move *head = NULL, **tail = &head;

	for (; j; j = j->next) {
		struct kv_move *m = &j->m;

		m->result = j->result;
		if (j->op == KV_SSD_WRITE && m->op == KV_MOVE_STORE) {
			m->rec.stored = j->rec.stored;
			m->rec.codec = j->rec.codec;
			m->rec.checksum = j->rec.checksum;
		}
		m->next = NULL;
		*tail = m;
		tail = &m->next;
	}
	return head;
}

static int ssd_event_fd_op(void *priv)
{
	return kv_ssd_event_fd(priv);
}

const struct kv_tier_ops kv_tier_ssd = {
	.name		= "ssd",
	.id		= KV_TIER_SSD,
	.close		= ssd_close_op,
	.alloc		= ssd_alloc_op,
	.free		= ssd_free_op,
	.stats		= ssd_stats_op,
	.move_new	= ssd_move_new_op,
	.move_free	= ssd_move_free_op,
	.submit		= ssd_submit_op,
	.reap		= ssd_reap_op,
	.event_fd	= ssd_event_fd_op,
};
