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
 * Opening (the loop thread, before the I/O thread starts): DIR/LOCK is
 * write-locked before anything else in DIR is touched, so two daemons never
 * share a directory; the data files are checked against the free space and
 * preallocated for real (a tier that could run out of blocks under its
 * writes does not start), and a start that fails removes what it made;
 * records whose data file was missing or short, or whose namespace id no
 * longer names the namespace they were written for (their salt), are
 * forgotten before anyone can read them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/codec.h"
#include "tiers/ssd.h"
#include "tiers/ssd_io.h"

#define FILE_BYTES_MAX	(1ull << 30)	/* data files are at most 1 GiB */
#define BOUNCE_KEEP	(256ull << 20)	/* idle staging buffers kept, bytes */
#define BOUNCE_SLOTS	64
#define SEG_DEFAULT	(1u << 20)

struct ssd_ns {
	uint32_t id;
	uid_t uid;
	char *name;
	uint64_t salt;			/* kv_ssd_salt(name) */
};

struct kv_ssd {
	struct kv_ssd_conf conf;
	char *dir;
	int *fds;
	unsigned n_files;
	uint64_t file_bytes;
	uint64_t space;			/* n_files * file_bytes */
	uint32_t block;
	uint32_t mem_align;
	struct kv_alloc *alloc;		/* loop thread */
	struct kv_ssd_meta *meta;	/* I/O thread once started */
	int lock_fd;			/* DIR/LOCK, write-locked while open */
	/* What this start found and made, for undo_start() and load(). */
	bool undo;			/* the lock is ours: undo may touch DIR */
	bool made_dir;
	bool made_index;
	bool *made_file;		/* per data file */
	uint64_t *old_size;		/* per data file: its size before this
					 * start (0: missing) */
	uint64_t records_missing;	/* forgotten at open: data file missing
					 * or short */
	uint64_t records_wrong_ns;	/* forgotten at open: salt mismatch */
	struct kv_io *io;		/* I/O thread once started */
	struct kv_codec_ctx *cx;	/* I/O thread */
	char *dram;			/* the DRAM arena */
	uint64_t dram_bytes;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	struct kv_ssd_job *in_head;	/* submitted, not taken; lock */
	struct kv_ssd_job *in_tail;
	struct kv_ssd_job *out_head;	/* finished, not reaped; lock */
	struct kv_ssd_job *out_tail;
	bool stop;			/* lock */
	int efd;			/* finished jobs wait */

	/* the namespaces found at open (the index is the I/O thread's after) */
	struct ssd_ns *ns;
	size_t n_ns;

	/* I/O thread only */
	struct kv_ssd_op *ops;		/* index changes not yet committed */
	size_t n_ops;
	size_t cap_ops;
	bool forget_pending;		/* ops holds a FORGET */
	int sync_err;			/* a commit failed since the last SYNC */
	struct kv_ssd_job *committing;	/* writes done, records in ops */
	struct kv_ssd_job *in_flight;	/* writes queued on the engine */
	/* Idle staging buffers: a fresh 32 MiB one per compressed chunk
	 * costs the kernel zeroing its pages, measured at half this thread's
	 * time at queue depth 32, so they are kept for the next job. */
	void *idle[BOUNCE_SLOTS];
	uint64_t idle_cap[BOUNCE_SLOTS];
	unsigned n_idle;
	uint64_t idle_bytes;
	/* Staging memory held by jobs in flight is bounded too: past
	 * BOUNCE_KEEP, jobs that need it wait here, in order. */
	uint64_t bounce_out;
	struct kv_ssd_job *stalled;
	struct kv_ssd_job *stalled_tail;

	_Atomic uint64_t bytes_written;
	_Atomic uint64_t raw_written;
	_Atomic uint64_t bytes_read;
	_Atomic uint64_t checksum_failures;
	_Atomic uint64_t io_errors;
};

static uint64_t round_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

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

static void *io_thread(void *arg)
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

/* ---- open and close -------------------------------------------------------- */

/*
 * Take DIR/LOCK before anything else in DIR is touched. A second kvstored
 * (or anyone holding a write lock on the file) makes this start fail with
 * -KV_ELOCKED and a log line naming the holder. An fcntl lock goes with its
 * process, so a crash never leaves one behind; the pid written into the
 * file only helps when F_GETLK cannot say (a holder in another pid
 * namespace).
 */
static int lock_dir(struct kv_ssd *s)
{
	char path[4096];
	char buf[32];
	struct flock fl;
	ssize_t n;
	int fd, ret;
	int err = EAGAIN;
	long pid;

	snprintf(path, sizeof(path), "%s/LOCK", s->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot open '%s': %s", path, strerror(errno));
		return ret;
	}
	for (int tries = 0; tries < 3; tries++) {
		fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
		if (fcntl(fd, F_SETLK, &fl) == 0) {
			n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
			if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
				kv_log(KV_WARN, KV_LOG_TIER, "ssd: cannot write the pid into '%s': %s",
				       path, strerror(errno));
			s->lock_fd = fd;
			return 0;
		}
		if (errno != EACCES && errno != EAGAIN) {
			err = errno;
			break;
		}
		fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
		if (fcntl(fd, F_GETLK, &fl) < 0) {
			err = errno;
			break;
		}
		if (fl.l_type == F_UNLCK)
			continue;	/* let go meanwhile: try again */
		pid = fl.l_pid;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		if (pid <= 0)
			pid = strtol(buf, NULL, 10);
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: '%s' is in use by another kvstored (pid %ld holds '%s'): refusing to start",
		       s->dir, pid, path);
		close(fd);
		return -KV_ELOCKED;
	}
	kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot lock '%s': %s", path, strerror(err));
	close(fd);
	return -err;
}

static uint64_t file_len(const struct kv_ssd *s, unsigned i)
{
	return i + 1 < s->n_files ? s->file_bytes : s->space - (uint64_t)i * s->file_bytes;
}

static void data_path(const struct kv_ssd *s, unsigned i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/data.%u", s->dir, i);
}

/* Room kept for the index beside the data files: LMDB grows its file as
 * records come (about 250 bytes each; 1/256 of the tier holds a record per
 * 64 KiB of chunks). */
static uint64_t index_room(uint64_t space)
{
	uint64_t r = space / 256;

	return r < (8ull << 20) ? 8ull << 20 : r > (1ull << 30) ? 1ull << 30 : r;
}

/*
 * Before anything is made: note what each data file holds now (a restart
 * keeps its data), and refuse a tier the filesystem cannot hold. Only what
 * is missing counts: the files' unallocated blocks, and room for the index.
 */
static int check_space(struct kv_ssd *s)
{
	uint64_t need = 0, avail;
	struct statvfs vfs;
	char path[4096];
	struct stat st;

	s->old_size = kv_xcalloc(s->n_files, sizeof(*s->old_size));
	s->made_file = kv_xcalloc(s->n_files, sizeof(*s->made_file));
	for (unsigned i = 0; i < s->n_files; i++) {
		uint64_t len = file_len(s, i), have;

		data_path(s, i, path, sizeof(path));
		if (stat(path, &st) < 0) {
			if (errno != ENOENT) {
				int ret = -errno;

				kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot stat %s: %s", path,
				       strerror(errno));
				return ret;
			}
			s->made_file[i] = true;
			need += len;
			continue;
		}
		s->old_size[i] = (uint64_t)st.st_size;
		have = (uint64_t)st.st_blocks * 512;
		need += len > have ? len - have : 0;
	}
	if (need == 0)
		return 0;
	if (statvfs(s->dir, &vfs) < 0) {
		int ret = -errno;

		kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot stat the filesystem of %s: %s",
		       s->dir, strerror(errno));
		return ret;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (need + index_room(s->space) > avail) {
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: %s cannot hold ssd_bytes %llu: its filesystem has %llu bytes free, the data files need %llu more and the index up to %llu",
		       s->dir, (unsigned long long)s->space, (unsigned long long)avail,
		       (unsigned long long)need, (unsigned long long)index_room(s->space));
		return -ENOSPC;
	}
	return 0;
}

/*
 * Make len bytes of the file real blocks, so that no write into the tier
 * can fail for lack of space later. Where the filesystem cannot allocate
 * (EOPNOTSUPP), glibc's posix_fallocate() writes the blocks out, through a
 * descriptor without O_DIRECT.
 */
static int prealloc(int fd, const char *path, uint64_t len)
{
	int err, pfd;

	if (fallocate(fd, 0, 0, (off_t)len) == 0)
		return 0;
	err = errno;
	if (err == EOPNOTSUPP) {
		pfd = open(path, O_RDWR | O_CLOEXEC);
		err = pfd < 0 ? errno : posix_fallocate(pfd, 0, (off_t)len);
		if (pfd >= 0)
			close(pfd);
		if (!err)
			return 0;
	}
	kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot preallocate %s to %llu bytes: %s",
	       path, (unsigned long long)len, strerror(err));
	return -err;
}

static int open_files(struct kv_ssd *s)
{
	bool direct = true;

	s->fds = kv_xcalloc(s->n_files, sizeof(*s->fds));
	for (unsigned i = 0; i < s->n_files; i++)
		s->fds[i] = -1;
	for (unsigned i = 0; i < s->n_files; i++) {
		char path[4096];
		int fd, ret;

		data_path(s, i, path, sizeof(path));
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
		if (fd < 0 && errno == EINVAL && direct) {
			kv_log(KV_WARN, KV_LOG_TIER, "ssd: %s cannot do O_DIRECT; using the page cache",
			       s->dir);
			direct = false;
			fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		}
		if (fd < 0) {
			ret = -errno;
			kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot open %s: %s", path,
			       strerror(errno));
			return ret;
		}
		s->fds[i] = fd;
		ret = prealloc(fd, path, file_len(s, i));
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A start that fails takes back what it made, so that it leaves no data
 * files that fill the filesystem and no fresh index: files it made go,
 * files it grew go back to their size, an index it made goes, and so does
 * a directory it made. A tier that was there keeps its data (and DIR/LOCK,
 * which means nothing once no process holds it).
 */
static void undo_start(struct kv_ssd *s)
{
	static const char *const index_files[] = { "data.mdb", "lock.mdb" };
	char path[4200];

	if (!s->undo)
		return;
	for (unsigned i = 0; s->fds && i < s->n_files && s->fds[i] >= 0; i++) {
		data_path(s, i, path, sizeof(path));
		if (s->made_file[i]) {
			if (unlink(path) < 0 && errno != ENOENT)
				kv_log(KV_WARN, KV_LOG_TIER, "ssd: cannot remove %s: %s",
				       path, strerror(errno));
		} else if (s->old_size[i] < file_len(s, i) &&
			   ftruncate(s->fds[i], (off_t)s->old_size[i]) < 0) {
			kv_log(KV_WARN, KV_LOG_TIER, "ssd: cannot shrink %s back: %s",
			       path, strerror(errno));
		}
	}
	if (s->made_index) {
		for (size_t i = 0; i < KV_ARRAY_SIZE(index_files); i++) {
			snprintf(path, sizeof(path), "%s/index/%s", s->dir, index_files[i]);
			unlink(path);
		}
		snprintf(path, sizeof(path), "%s/index", s->dir);
		rmdir(path);
	}
	if (s->made_dir) {
		snprintf(path, sizeof(path), "%s/LOCK", s->dir);
		unlink(path);
		if (rmdir(s->dir) < 0)
			kv_log(KV_WARN, KV_LOG_TIER, "ssd: cannot remove %s: %s", s->dir,
			       strerror(errno));
	}
	kv_log(KV_INFO, KV_LOG_TIER, "ssd: the failed start removed what it made in %s", s->dir);
}

struct found {
	uint32_t ns;
	struct kv_key key;
	struct kv_ssd_rec rec;
};

struct load_ctx {
	struct found *v;
	size_t n;
	size_t cap;
	uint64_t bad;
};

static int collect(void *arg, uint32_t ns, const struct kv_key *key,
		   const struct kv_ssd_rec *rec)
{
	struct load_ctx *lc = arg;

	if (lc->n == lc->cap) {
		lc->cap = lc->cap ? 2 * lc->cap : 1024;
		lc->v = kv_xrealloc(lc->v, lc->cap * sizeof(*lc->v));
	}
	lc->v[lc->n++] = (struct found){ ns, *key, *rec };
	return 0;
}

/*
 * Does any block of the record lie where its data file was missing or
 * short at this start? Then its bytes are gone (the file was made or grown
 * again with zeros): *file gets the first such file.
 */
static bool rec_missing(const struct kv_ssd *s, const struct kv_ssd_rec *rec,
			unsigned *file)
{
	uint64_t at = rec->offset;
	uint64_t end = rec->offset + round_up(rec->stored, s->block);

	while (at < end) {
		unsigned i = (unsigned)(at / s->file_bytes);
		uint64_t in = at % s->file_bytes;
		uint64_t len = end - at < s->file_bytes - in ? end - at : s->file_bytes - in;

		if (in + len > s->old_size[i]) {
			*file = i;
			return true;
		}
		at += len;
	}
	return false;
}

static int ns_cmp(const void *key, const void *elem)
{
	uint32_t id = *(const uint32_t *)key;
	const struct ssd_ns *n = elem;

	return (id > n->id) - (id < n->id);
}

/* Was the record written for the namespace its id names now? */
static bool rec_ns_ok(const struct kv_ssd *s, uint32_t ns, const struct kv_ssd_rec *rec)
{
	const struct ssd_ns *n = s->n_ns ? bsearch(&ns, s->ns, s->n_ns, sizeof(*s->ns),
						   ns_cmp) : NULL;

	return n && n->salt == rec->salt;
}

/* Does a record fit the space as configured now, and decode sanely? */
static bool rec_fits(const struct kv_ssd *s, const struct kv_ssd_rec *rec)
{
	return rec->offset % s->block == 0 && rec->offset < s->space &&
	       rec->stored && round_up(rec->stored, s->block) <= s->space - rec->offset &&
	       rec->codec < KV_CODEC_MAX && rec->bytes && rec->bytes <= s->dram_bytes &&
	       (rec->codec != KV_CODEC_NONE || rec->stored == rec->bytes);
}

static int by_offset(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return (x->rec.offset > y->rec.offset) - (x->rec.offset < y->rec.offset);
}

/*
 * Rebuild from the index: claim each record's space in offset order and
 * hand it to the store. Records that do not fit, overlap, or that the
 * store refuses are deleted from the index before anything is written.
 */
static int load(struct kv_ssd *s, kv_ssd_found_fn *found, void *arg)
{
	struct load_ctx lc = { 0 };
	struct kv_ssd_op *drop = NULL;
	size_t n_drop = 0;
	uint64_t bad_rec = 0;
	uint64_t missing = 0, wrong_ns = 0;
	unsigned gone = 0, file;
	uint32_t wrong_id = 0;
	int ret;

	ret = kv_ssd_meta_load(s->meta, collect, &lc, &bad_rec);
	if (ret)
		goto out;
	if (lc.n)
		qsort(lc.v, lc.n, sizeof(*lc.v), by_offset);
	drop = kv_xcalloc(lc.n ? lc.n : 1, sizeof(*drop));
	for (size_t i = 0; i < lc.n; i++) {
		struct found *f = &lc.v[i];
		struct kv_extent *e = NULL;

		if (!rec_fits(s, &f->rec)) {
			lc.bad++;
		} else if (rec_missing(s, &f->rec, &file)) {
			if (!missing++)
				gone = file;
		} else if (!rec_ns_ok(s, f->ns, &f->rec)) {
			if (!wrong_ns++)
				wrong_id = f->ns;
		} else if (kv_alloc_claim(s->alloc, f->rec.offset,
					round_up(f->rec.stored, s->block), &e))
			e = NULL;
		else if (found(arg, f->ns, &f->key, &f->rec, e)) {
			kv_alloc_put(s->alloc, e);
			e = NULL;
		} else {
			continue;
		}
		drop[n_drop++] = (struct kv_ssd_op){ .del = true, .ns = f->ns, .key = f->key };
	}
	if (missing) {
		char why[64] = "missing";

		if (s->old_size[gone])
			snprintf(why, sizeof(why), "%llu of %llu bytes",
				 (unsigned long long)s->old_size[gone],
				 (unsigned long long)file_len(s, gone));
		kv_log(KV_WARN, KV_LOG_TIER, "ssd: %llu index records forgotten at start: their data file was missing or short (first: data.%u, %s)",
		       (unsigned long long)missing, gone, why);
	}
	if (wrong_ns)
		kv_log(KV_WARN, KV_LOG_TIER, "ssd: %llu index records forgotten at start: their namespace id names no namespace now, or another one than they were written for (first: ns %u)",
		       (unsigned long long)wrong_ns, (unsigned)wrong_id);
	s->records_missing = missing;
	s->records_wrong_ns = wrong_ns;
	if (n_drop - missing - wrong_ns || bad_rec)
		kv_log(KV_WARN, KV_LOG_TIER, "ssd: %llu index records dropped at start (damaged: %llu, outside the tier: %llu, overlapping or refused: %llu)",
		       (unsigned long long)(n_drop - missing - wrong_ns + bad_rec),
		       (unsigned long long)bad_rec, (unsigned long long)lc.bad,
		       (unsigned long long)(n_drop - lc.bad - missing - wrong_ns));
	else if (lc.n)
		kv_log(KV_INFO, KV_LOG_TIER, "ssd: %zu chunks found in the index", lc.n - n_drop);
	/* A failure here leaves records that the next start drops again. */
	if (n_drop && kv_ssd_meta_apply(s->meta, drop, n_drop))
		kv_log(KV_WARN, KV_LOG_TIER, "ssd: cannot delete the dropped records yet");
out:
	free(lc.v);
	free(drop);
	return ret;
}

static int keep_ns(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct kv_ssd *s = arg;

	s->ns = kv_xrealloc(s->ns, (s->n_ns + 1) * sizeof(*s->ns));
	s->ns[s->n_ns++] = (struct ssd_ns){ id, uid, kv_xstrdup(name), kv_ssd_salt(name) };
	return 0;
}

static void free_ns(struct kv_ssd *s)
{
	for (size_t i = 0; i < s->n_ns; i++)
		free(s->ns[i].name);
	free(s->ns);
	s->ns = NULL;
	s->n_ns = 0;
}

/*
 * The namespaces first (read now: once the I/O thread runs, the index is
 * its alone), since a chunk record is kept only if its namespace id still
 * names the namespace it was written for; then the chunks.
 */
static int load_index(struct kv_ssd *s, kv_ssd_found_fn *found, void *arg)
{
	int ret;

	free_ns(s);
	ret = kv_ssd_meta_ns_load(s->meta, keep_ns, s);
	return ret ? ret : load(s, found, arg);
}

/*
 * Open the index; a damaged one (or, with damaged, the one just opened) is
 * kept aside for a post-mortem and the tier starts empty: the data files
 * are then only space.
 */
static int open_index(struct kv_ssd *s, const struct kv_ssd_meta_conf *mc,
		      struct kv_ssd_geom *stored, bool damaged)
{
	char from[4096], to[4200];
	int ret = damaged ? -EIO : kv_ssd_meta_open(&s->meta, mc, stored);

	if (ret != -EIO)
		return ret;
	snprintf(from, sizeof(from), "%s/index", s->dir);
	snprintf(to, sizeof(to), "%s/index.damaged.%lld", s->dir,
		 (long long)(kv_now_ns() / 1000000));
	if (rename(from, to) < 0)
		return ret;
	kv_log(KV_ERR, KV_LOG_TIER, "ssd: the index is damaged: moved to %s; the tier starts empty",
	       to);
	return kv_ssd_meta_open(&s->meta, mc, stored);
}

int kv_ssd_open(struct kv_ssd **out, const struct kv_ssd_conf *conf,
		kv_ssd_found_fn *found, void *arg)
{
	struct kv_ssd_meta_conf mc;
	struct kv_ssd_geom geom, stored;
	struct kv_alloc_conf ac;
	struct kv_io_conf ic;
	struct kv_ssd *s;
	struct stat st;
	char path[4200];
	uint32_t mem_align, block;
	int ret;

	if (!conf->dir || !conf->bytes || !conf->queue_depth || !conf->dram_base)
		return -EINVAL;
	s = kv_xcalloc(1, sizeof(*s));
	s->conf = *conf;
	s->dir = kv_xstrdup(conf->dir);
	s->conf.dir = s->dir;
	s->dram = conf->dram_base;
	s->dram_bytes = conf->dram_bytes;
	s->efd = -1;
	s->lock_fd = -1;
	pthread_mutex_init(&s->lock, NULL);

	/* The geometry: the block from the first file's O_DIRECT rules. */
	s->block = 4096;
	s->file_bytes = conf->file_bytes ? conf->file_bytes :
			conf->bytes < FILE_BYTES_MAX ? conf->bytes : FILE_BYTES_MAX;
	s->file_bytes -= s->file_bytes % s->block;
	if (s->file_bytes < s->block) {
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: ssd_bytes %llu is smaller than a block",
		       (unsigned long long)conf->bytes);
		ret = -EINVAL;
		goto fail;
	}
	/* Whole files of file_bytes, the last one shorter: the capacity is
	 * what was asked for (to the block), and a resize keeps file_bytes. */
	s->space = conf->bytes - conf->bytes % s->block;
	s->n_files = (unsigned)((s->space + s->file_bytes - 1) / s->file_bytes);

	/* Nothing in the directory is touched before its lock is ours. */
	if (mkdir(s->dir, 0700) == 0) {
		s->made_dir = true;
	} else if (errno != EEXIST) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: cannot make %s: %s", s->dir, strerror(errno));
		goto fail;
	}
	ret = lock_dir(s);
	if (ret)
		goto fail;
	s->undo = true;
	snprintf(path, sizeof(path), "%s/index", s->dir);
	s->made_index = stat(path, &st) < 0 && errno == ENOENT;
	ret = check_space(s);
	if (ret)
		goto fail;
	ret = open_files(s);
	if (ret)
		goto fail;
	ret = kv_io_dio_align(s->fds[0], &mem_align, &block);
	if (ret)
		mem_align = block = 512;	/* page cache: anything goes */
	s->mem_align = mem_align < 64 ? 64 : mem_align;
	if (block > s->block) {
		kv_log(KV_ERR, KV_LOG_TIER, "ssd: %s wants %u-byte O_DIRECT blocks; more than 4096 is not supported",
		       s->dir, block);
		ret = -EINVAL;
		goto fail;
	}

	geom = (struct kv_ssd_geom){ s->space, s->block, s->file_bytes };
	mc = (struct kv_ssd_meta_conf){ .dir = s->dir, .geom = geom, .sync = conf->sync };
	ret = open_index(s, &mc, &stored, false);
	if (ret)
		goto fail;
	if (stored.block != geom.block || stored.file_bytes != geom.file_bytes) {
		kv_log(KV_WARN, KV_LOG_TIER, "ssd: %s was made with %llu-byte files of %llu-byte blocks, now %llu and %llu: starting the tier empty",
		       s->dir, (unsigned long long)stored.file_bytes,
		       (unsigned long long)stored.block, (unsigned long long)geom.file_bytes,
		       (unsigned long long)geom.block);
		ret = kv_ssd_meta_clear(s->meta);
		if (!ret)
			ret = kv_ssd_meta_set_geom(s->meta, &geom);
		if (ret)
			goto fail;
	}
	ac = (struct kv_alloc_conf){ .size = s->space, .align = s->block };
	ret = kv_alloc_open(&s->alloc, &ac);
	if (ret)
		goto fail;
	ret = load_index(s, found, arg);
	if (ret == -EIO) {	/* damaged beyond what load() can skip */
		kv_ssd_meta_close(s->meta);
		s->meta = NULL;
		ret = open_index(s, &mc, &stored, true);
		if (!ret)
			ret = load_index(s, found, arg);
	}
	if (ret)
		goto fail;
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		ret = -errno;
		goto fail;
	}
	s->cx = kv_codec_ctx_new(conf->level);
	ic = (struct kv_io_conf){
		.fds = s->fds,
		.n_files = s->n_files,
		.file_bytes = s->file_bytes,
		.block = s->block,
		.mem_align = s->mem_align,
		.queue_depth = conf->queue_depth,
		.seg_bytes = conf->seg_bytes ? conf->seg_bytes : SEG_DEFAULT,
		.reg_base = conf->dram_base,
		.reg_len = conf->dram_bytes,
		.sync = conf->io_sync,
	};
	ret = kv_io_open(&s->io, &ic);
	if (ret)
		goto fail;
	ret = pthread_create(&s->thread, NULL, io_thread, s);
	if (ret) {
		ret = -ret;
		goto fail;
	}
	s->started = true;
	kv_log(KV_INFO, KV_LOG_TIER, "ssd tier: %s, %llu bytes in %u files, %u-byte blocks, %s, queue depth %u",
	       s->dir, (unsigned long long)s->space, s->n_files, s->block,
	       kv_io_uring(s->io) ? "io_uring" : "pread/pwrite", conf->queue_depth);
	*out = s;
	return 0;

fail:
	undo_start(s);
	kv_ssd_close(s);
	return ret;
}

int kv_ssd_namespaces(struct kv_ssd *s, kv_ssd_ns_fn *fn, void *arg)
{
	for (size_t i = 0; i < s->n_ns; i++) {
		int ret = fn(arg, s->ns[i].id, s->ns[i].uid, s->ns[i].name);

		if (ret)
			return ret;
	}
	return 0;
}

void kv_ssd_close(struct kv_ssd *s)
{
	struct kv_ssd_job *j, *next;

	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_mutex_unlock(&s->lock);
		kv_io_wake(s->io);
		pthread_join(s->thread, NULL);
	}
	kv_io_close(s->io);
	for (unsigned i = 0; i < s->n_idle; i++)
		free(s->idle[i]);
	for (j = s->out_head; j; j = next) {	/* never reaped */
		next = j->next;
		free(j);
	}
	kv_codec_ctx_free(s->cx);
	kv_ssd_meta_close(s->meta);
	kv_alloc_close(s->alloc);
	for (unsigned i = 0; s->fds && i < s->n_files; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	if (s->efd >= 0)
		close(s->efd);
	pthread_mutex_destroy(&s->lock);
	free_ns(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);	/* the directory is free for another daemon */
	free(s->made_file);
	free(s->old_size);
	free(s->ops);
	free(s->fds);
	free(s->dir);
	free(s);
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
