/*
 * dram.c - the DRAM tier: one memfd arena shared with every client.
 *
 * The arena is a memfd of conf->bytes, mapped MAP_SHARED here and, through
 * the descriptor passed at HELLO, in every client. Clients read and write
 * chunk bytes in it directly; the daemon never copies a chunk on a hit.
 *
 * Opening is quick: memfd_create, ftruncate, seals and mmap only (under a
 * millisecond). The expensive part, allocating and zeroing every page (on
 * the H100 host 8 GiB take 4.6 s on one thread, 2 s on several) and, with
 * conf->use_gpu, page-locking the whole mapping with CUDA
 * (cudaHostRegister, 0.3 to 0.5 s more), runs on a background thread: it
 * hands the arena out in PIECE-sized pieces to up to FILL_THREADS threads
 * (MADV_POPULATE_WRITE), then registers the whole arena in one call. The
 * daemon serves meanwhile. One INFO line reports when that is over:
 *   dram arena ready: 8 GiB populated in 2014 ms (8 threads), registered in 295 ms
 *
 * Invariants:
 * - The memfd is sealed against shrinking and growing, so no client can
 *   truncate it and make the daemon (or another client) fault with SIGBUS.
 * - Memory: open refuses, with a clear message, an arena larger than the
 *   memory available now (MemAvailable, and the room under a cgroup v2
 *   memory.max), then allocates in the background. Trade-off: the pages
 *   were allocated synchronously at open before, so no write into the
 *   arena could ever fail for lack of memory. Now, if something else takes
 *   the memory in the seconds between open and the end of the background
 *   fill, the fill stops with an ERR line, and a client's first write to a
 *   page never filled allocates it at fault time, where a shortage means
 *   the OOM killer (a memfd has no size limit, so never SIGBUS). The check
 *   also races with other processes starting at the same moment. We take
 *   that for a daemon that serves in milliseconds instead of seconds.
 * - Huge pages are used when the kernel has them reserved (MFD_HUGETLB);
 *   their fallocate stays synchronous, since only it tells whether the
 *   pages are there. Otherwise transparent huge pages are asked for
 *   (MADV_HUGEPAGE), and 4 KiB pages are the fallback.
 *
 * Clients may write into the arena while it is being filled: nothing the
 * fill does changes bytes already written. MADV_POPULATE_WRITE faults each
 * page in "just as if manually writing to each page; however, avoid the
 * actual memory access" (madvise(2)): a page already in the memfd is
 * mapped as it is, and shmem zeroes only pages that are not yet up to date
 * (new, or fallocated and never touched), under the folio lock that a
 * client's own fault on the same page also takes. fallocate(2) mode 0 (the
 * fallback before Linux 5.14) leaves ranges that hold data unchanged, and
 * shmem_fallocate() skips folios already up to date. cudaHostRegister pins
 * the pages present (FOLL_WRITE faults, same as above); a page it migrates
 * out of a movable zone moves with its contents.
 *
 * Threads: the loop thread owns the tier. The fill threads touch only the
 * mapping, the fd and the fields under "the background fill" in struct
 * dram; dram_close() stops them (they look at the stop flag between
 * pieces) and joins them before it unregisters and unmaps. A registration in progress cannot be
 * cut short, so a close during one waits for it (under a second per 8 GiB).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/memfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"
#include "lib/key.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/tier.h"

#define HUGE_2M		(2u << 20)
/*
 * The unit of work handed to the fill threads, and how often they look at
 * the stop flag. Measured on the H100 host (16 CPUs, 8 GiB, 16 threads):
 * pieces of 4 MiB to 1 GiB all populate in about 2.0 s. Slabs as large as
 * 1 GiB leave threads idle at the end (8 slabs for 16 threads), and a
 * small piece lets a close stop the fill sooner (16 MiB: tens of ms).
 */
#define PIECE		(16ull << 20)
/*
 * Fill threads, at most. Measured on the H100 host, 8 GiB: 1 thread 4.6 s,
 * 2 threads 3.0 s, and 4, 6, 8, 12 or 16 threads all 1.8 to 2.2 s: past 4
 * they only contend on the memfd's page-cache locks (and make the daemon's
 * own mmap callers wait longer: worst 4 ms with 4 threads, 11 ms with 16).
 * 8 leaves room for hosts where zeroing, not locking, is the limit (shmem
 * THP on). On a 2-core VM, 2 threads populate 4 GiB in 2.8 to 4.3 s, one
 * in 6 to 7 s.
 */
#define FILL_THREADS	8u

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

struct dram {
	int fd;
	void *base;
	uint64_t bytes;
	struct kv_alloc *alloc;
	bool huge;
	bool fixed;			/* mapped at conf->at, in the caller's range */
	bool use_gpu;
	int gpu;

	/* The background fill; see fill_thread(). */
	pthread_t filler;
	bool filling;			/* filler started: join it at close */
	unsigned threads;		/* fill threads, the filler included */
	bool registered;		/* set by the filler once page-locked */
	pthread_mutex_t lock;		/* fill_err, fill_off */
	int fill_err;			/* first error of the fill, and where */
	uint64_t fill_off;
	_Atomic uint64_t next;		/* offset of the next piece to fill */
	_Atomic uint64_t filled_ns;	/* when the last piece was done */
	_Atomic bool stop;		/* close: threads stop between pieces */
	_Atomic bool no_populate;	/* MADV_POPULATE_WRITE unsupported */
};

static int dram_memfd_huge(uint64_t bytes)
{
	int fd;

	if (bytes % HUGE_2M)
		return -EINVAL;
	fd = memfd_create("kvstore-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			  MFD_HUGETLB | MFD_HUGE_2MB);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, bytes) < 0 || fallocate(fd, 0, 0, bytes) < 0) {
		close(fd);	/* too few huge pages reserved */
		return -ENOMEM;
	}
	return fd;
}

static int dram_memfd(uint64_t bytes)
{
	int fd;

	fd = memfd_create("kvstore-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, bytes) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* The value of the line "key N ..." in a small text file, or -1. */
static int64_t read_key(const char *path, const char *key)
{
	size_t klen = strlen(key);
	char line[256];
	int64_t v = -1;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long n;

		if (strncmp(line, key, klen) || sscanf(line + klen, " %llu", &n) != 1)
			continue;
		v = n > INT64_MAX ? INT64_MAX : (int64_t)n;
		break;
	}
	fclose(f);
	return v;
}

/* read_key() of /sys/fs/cgroup<dir>/<file>. */
static int64_t cgroup_key(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "/sys/fs/cgroup%s/%s", dir, file) >=
	    (int)sizeof(path))
		return -1;
	return read_key(path, key);
}

/*
 * Room under the cgroup v2 memory.max of dir and each of its ancestors:
 * the limit, less what is charged, plus the page cache that reclaim would
 * give back (the file LRUs; shmem sits on the anon ones). -1 when no limit
 * is found (cgroup v1, no memory controller, "max" everywhere). Cuts dir.
 */
static int64_t cgroup_room(char *dir)
{
	int64_t room = -1;

	for (;;) {
		int64_t max = cgroup_key(dir, "memory.max", "");
		int64_t cur = cgroup_key(dir, "memory.current", "");
		int64_t act = cgroup_key(dir, "memory.stat", "active_file");
		int64_t inact = cgroup_key(dir, "memory.stat", "inactive_file");
		char *slash;

		if (max >= 0 && cur >= 0) {
			int64_t r = max - cur + (act > 0 ? act : 0) +
				    (inact > 0 ? inact : 0);

			if (r < 0)
				r = 0;
			if (room < 0 || r < room)
				room = r;
		}
		slash = strrchr(dir, '/');
		if (!slash || (slash == dir && !dir[1]))
			break;
		slash[slash == dir] = '\0';	/* "/a/b" -> "/a" -> "/" */
	}
	return room;
}

/*
 * Bytes of memory a new arena may take now: MemAvailable, or less where a
 * cgroup limit is tighter; what says which. -1 when /proc/meminfo cannot
 * tell (then nothing is checked).
 */
static int64_t mem_available(const char **what)
{
	int64_t avail, room;
	char line[PATH_MAX + 8];
	FILE *f;

	avail = read_key("/proc/meminfo", "MemAvailable:");
	if (avail < 0)
		return -1;
	avail = avail > INT64_MAX / 1024 ? INT64_MAX : avail * 1024;
	*what = "MemAvailable in /proc/meminfo";
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return avail;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::/", 4))
			continue;	/* cgroup v2 only */
		line[strcspn(line, "\n")] = '\0';
		room = cgroup_room(line + 3);
		if (room >= 0 && room < avail) {
			avail = room;
			*what = "the cgroup's memory.max";
		}
		break;
	}
	fclose(f);
	return avail;
}

/*
 * Threads to fill with: the CPUs this process may run on (its affinity,
 * which a container's cpuset narrows; else the online CPUs), at most
 * FILL_THREADS, and no more than there are pieces.
 */
static unsigned fill_threads(uint64_t bytes)
{
	uint64_t pieces = (bytes + PIECE - 1) / PIECE;
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	if ((uint64_t)n > pieces)
		n = (long)pieces;
	return n > (long)FILL_THREADS ? FILL_THREADS : (unsigned)n;
}

/*
 * Allocate and zero [off, off + len) of the arena and map it here, keeping
 * what is there. Not fallocate() first: shmem_fallocate() holds the inode
 * lock, so it runs one thread at a time (8 GiB in 1 to 2 s on the H100
 * host), and pipelining it ahead of the populating threads measured no
 * faster there, while populating pages that exist holds the mmap lock
 * longer (the daemon's mmap callers, CUDA's set-up among them, waited up
 * to 55 ms a call, and the daemon served 0.7 s after start instead of
 * 0.16 s).
 */
static int fill_piece(struct dram *d, uint64_t off, uint64_t len)
{
	if (!atomic_load_explicit(&d->no_populate, memory_order_relaxed)) {
		if (madvise((char *)d->base + off, len, MADV_POPULATE_WRITE) == 0)
			return 0;
		if (errno != EINVAL)
			return -errno;
		atomic_store(&d->no_populate, true);	/* before Linux 5.14 */
	}
	/* Allocated only: each page is zeroed at its first touch. */
	if (fallocate(d->fd, 0, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

static void *fill_worker(void *arg)
{
	struct dram *d = arg;
	uint64_t done = 0;

	while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
		uint64_t off = atomic_fetch_add(&d->next, PIECE);
		uint64_t len;
		int ret;

		if (off >= d->bytes)
			break;
		len = d->bytes - off < PIECE ? d->bytes - off : PIECE;
		ret = fill_piece(d, off, len);
		if (ret) {
			pthread_mutex_lock(&d->lock);
			if (!d->fill_err) {
				d->fill_err = ret;
				d->fill_off = off;
			}
			pthread_mutex_unlock(&d->lock);
			atomic_store(&d->next, d->bytes);	/* all stop */
			break;
		}
		done = kv_now_ns();
	}
	if (done) {
		uint64_t t = atomic_load(&d->filled_ns);

		while (t < done && !atomic_compare_exchange_weak(&d->filled_ns, &t, done))
			;
	}
	return NULL;
}

/*
 * Make d->gpu this thread's device; CUDA 12 creates the device's primary
 * context here (a quarter of a second on the H100 host). Returns 1 when
 * done, 0 when this host has no such GPU (why says so; the daemon runs
 * without one, as the HBM tier does), or a negative code when CUDA failed
 * (why names the call).
 */
static int gpu_setup(struct dram *d, char *why, size_t len)
{
	int n = 0;
	int ret;

	if (!kv_gpu_available(&n, why, len))
		return 0;
	if (d->gpu < 0 || d->gpu >= n) {
		snprintf(why, len, "no GPU %d (this host has %d)", d->gpu, n);
		return 0;
	}
	ret = kv_gpu_set_device(d->gpu);
	if (ret) {
		snprintf(why, len, "%s", kv_gpu_last_error());
		return ret;
	}
	return 1;
}

/* "8 GiB", or "64 MiB", or "1048640 bytes". */
static const char *size_str(char *buf, size_t len, uint64_t bytes)
{
	if (bytes && bytes % (1ull << 30) == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
	else if (bytes && bytes % (1ull << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
	else
		snprintf(buf, len, "%" PRIu64 " bytes", bytes);
	return buf;
}

/*
 * The background fill: threads populate the arena piece by piece, then,
 * with use_gpu, this thread page-locks it: one registration of the whole
 * mapping, so every copy the daemon makes, whatever chunks it spans, lies
 * in one pinned range. That call holds the daemon's mmap lock throughout
 * (8 GiB: 0.2 s during which its own mmap and munmap callers wait; the loop
 * thread's pings did not, worst 6 ms); registering in 256 MiB slabs would
 * bound that to 7 ms, but a copy spanning two slabs would then have to be
 * split. With use_gpu this thread first sets up the CUDA context while the
 * others fill, then joins them. Whatever happens, the daemon runs on,
 * unpinned if need be.
 */
static void *fill_thread(void *arg)
{
	struct dram *d = arg;
	pthread_t workers[FILL_THREADS];
	unsigned want = d->use_gpu ? d->threads : d->threads - 1;
	unsigned n = 0;
	char why[256] = "no GPU in use";
	char sz[32];
	uint64_t t0 = kv_now_ns();
	uint64_t fill_ms;
	uint64_t reg_ms = 0;
	int gpu = 0;

	while (n < want && pthread_create(&workers[n], NULL, fill_worker, d) == 0)
		n++;
	if (d->use_gpu) {
		gpu = gpu_setup(d, why, sizeof(why));
		kv_log(KV_DEBUG, KV_LOG_TIER, "dram arena: CUDA device %d set up in %" PRIu64 " ms",
		       d->gpu, (kv_now_ns() - t0) / 1000000);
	}
	fill_worker(d);		/* with use_gpu, it helps with what is left */
	for (unsigned i = 0; i < n; i++)
		pthread_join(workers[i], NULL);
	/* Not counting a CUDA set-up that outlasted the fill. */
	fill_ms = ((d->filled_ns ? d->filled_ns : kv_now_ns()) - t0) / 1000000;
	size_str(sz, sizeof(sz), d->bytes);
	if (!d->use_gpu || n == 0)
		n++;		/* this thread filled from the start */

	if (atomic_load(&d->stop)) {
		kv_log(KV_DEBUG, KV_LOG_TIER, "dram arena fill stopped by close after %" PRIu64 " ms",
		       fill_ms);
		goto out;
	}
	if (d->fill_err) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot populate the DRAM arena at offset %" PRIu64 ": %s; pages are allocated on first use",
		       d->fill_off, kv_strerror(d->fill_err));
		snprintf(why, sizeof(why), "not populated");
		gpu = 0;
	} else if (gpu > 0) {
		uint64_t t1 = kv_now_ns();

		/* The mapping covers whole pages; so does the registration. */
		if (kv_gpu_host_register(d->base, (d->bytes + 4095) & ~4095ull)) {
			snprintf(why, sizeof(why), "%s", kv_gpu_last_error());
			gpu = -1;
		} else {
			d->registered = true;
		}
		reg_ms = (kv_now_ns() - t1) / 1000000;
	}
	if (gpu < 0)
		kv_log(KV_WARN, KV_LOG_TIER, "cannot page-lock the DRAM arena for CUDA device %d: %s; GPU copies from it run unpinned",
		       d->gpu, why);
	if (d->registered)
		kv_log(KV_INFO, KV_LOG_TIER, "dram arena ready: %s populated in %" PRIu64 " ms (%u threads), registered in %" PRIu64 " ms",
		       sz, fill_ms, n, reg_ms);
	else
		kv_log(KV_INFO, KV_LOG_TIER, "dram arena ready: %s populated in %" PRIu64 " ms (%u threads), not registered: %s",
		       sz, fill_ms, n, why);
out:
	return NULL;
}

/*
 * Start the fill in the background with every signal blocked (they are the
 * loop thread's business); if no thread can be had, fill right here.
 */
static void fill_start(struct dram *d)
{
	sigset_t all;
	sigset_t old;
	int ret;

	d->threads = fill_threads(d->bytes);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&d->filler, NULL, fill_thread, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == 0) {
		d->filling = true;
		return;
	}
	kv_log(KV_WARN, KV_LOG_TIER, "cannot start a thread to fill the DRAM arena: %s; filling it now",
	       strerror(ret));
	fill_thread(d);
}

/*
 * Unmap the arena; one mapped inside the caller's reserved range leaves the
 * range reserved (inaccessible) rather than a hole another mapping could
 * take.
 */
static void unmap_arena(struct dram *d)
{
	if (d->fixed && mmap(d->base, d->bytes, PROT_NONE,
			     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     -1, 0) != MAP_FAILED)
		return;
	munmap(d->base, d->bytes);
}

static int dram_open(void **priv, const struct kv_tier_conf *conf)
{
	struct kv_alloc_conf ac = { .size = conf->bytes, .align = conf->align };
	struct dram *d;
	int ret;

	if (conf->bytes == 0 || conf->align == 0 || conf->bytes % conf->align)
		return -EINVAL;
	d = kv_xcalloc(1, sizeof(*d));
	d->bytes = conf->bytes;
	d->use_gpu = conf->use_gpu;
	d->gpu = conf->gpu;
	pthread_mutex_init(&d->lock, NULL);
	ret = dram_memfd_huge(conf->bytes);
	if (ret >= 0) {
		d->huge = true;
	} else {
		const char *what = "";
		int64_t avail = mem_available(&what);
		uint64_t need = conf->mem_check ? conf->mem_check : conf->bytes;

		if (avail >= 0 && need > (uint64_t)avail) {
			ret = -ENOMEM;
			kv_log(KV_ERR, KV_LOG_TIER, "cannot create %" PRIu64 " bytes of DRAM arenas: only %" PRId64 " bytes of memory available (%s)",
			       need, avail, what);
			goto out_free;
		}
		ret = dram_memfd(conf->bytes);
	}
	if (ret < 0) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot create a %" PRIu64 "-byte DRAM arena: %s",
		       conf->bytes, kv_strerror(ret));
		goto out_free;
	}
	d->fd = ret;
	if (fcntl(d->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot seal the DRAM arena: %s",
		       kv_strerror(ret));
		goto out_close;
	}
	d->base = mmap(conf->at, conf->bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED | (conf->at ? MAP_FIXED : 0), d->fd, 0);
	if (d->base == MAP_FAILED) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot map the DRAM arena: %s",
		       kv_strerror(ret));
		goto out_close;
	}
	d->fixed = conf->at != NULL;
	if (!d->huge)
		madvise(d->base, conf->bytes, MADV_HUGEPAGE);	/* a hint */
	ret = kv_alloc_open(&d->alloc, &ac);
	if (ret)
		goto out_unmap;
	kv_log(KV_INFO, KV_LOG_TIER, "dram tier: %" PRIu64 " bytes, %s pages",
	       conf->bytes, d->huge ? "2 MiB huge" : "regular");
	fill_start(d);
	*priv = d;
	return 0;

out_unmap:
	unmap_arena(d);
out_close:
	close(d->fd);
out_free:
	pthread_mutex_destroy(&d->lock);
	free(d);
	return ret;
}

/*
 * Unregister with the device that registered, then give the calling thread
 * its own device back.
 */
static void dram_unregister(struct dram *d)
{
	int old = -1;
	int ret;

	if (kv_gpu_get_device(&old))
		old = -1;
	ret = kv_gpu_set_device(d->gpu);
	if (!ret)
		ret = kv_gpu_host_unregister(d->base);
	if (ret)
		kv_log(KV_WARN, KV_LOG_TIER, "cannot unregister the DRAM arena from CUDA device %d: %s",
		       d->gpu, kv_gpu_last_error());
	if (old >= 0 && old != d->gpu)
		kv_gpu_set_device(old);
}

static void dram_close(void *priv)
{
	struct dram *d = priv;

	if (!d)
		return;
	if (d->filling) {
		atomic_store(&d->stop, true);
		pthread_join(d->filler, NULL);
	}
	if (d->registered)
		dram_unregister(d);
	kv_alloc_close(d->alloc);
	unmap_arena(d);
	close(d->fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int dram_alloc(void *priv, uint64_t bytes, struct kv_extent **out)
{
	struct dram *d = priv;

	return kv_alloc_get(d->alloc, bytes, out);
}

static void dram_free(void *priv, struct kv_extent *e)
{
	struct dram *d = priv;

	kv_alloc_put(d->alloc, e);
}

static void dram_stats(void *priv, struct kv_alloc_stats *st)
{
	struct dram *d = priv;

	kv_alloc_stats(d->alloc, st);
}

static int dram_share_fd(void *priv, uint64_t *bytes)
{
	struct dram *d = priv;

	*bytes = d->bytes;
	return d->fd;
}

static void *dram_base(void *priv)
{
	struct dram *d = priv;

	return d->base;
}

const struct kv_tier_ops kv_tier_dram = {
	.name		= "dram",
	.id		= KV_TIER_DRAM,
	.open		= dram_open,
	.close		= dram_close,
	.alloc		= dram_alloc,
	.free		= dram_free,
	.stats		= dram_stats,
	.share_fd	= dram_share_fd,
	.base		= dram_base,
};
