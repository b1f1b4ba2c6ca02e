/*
 * ssd_open.c - opening and closing the SSD tier (see ssd.h).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/ssd_int.h"

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
	ret = pthread_create(&s->thread, NULL, kv_ssd_io_thread, s);
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

