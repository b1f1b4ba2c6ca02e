/*
 * dram.c - the DRAM tier: one memfd arena shared with every client.
 *
 * The arena is a memfd of conf->bytes, mapped MAP_SHARED here and, through
 * the descriptor passed at HELLO, in every client. Clients read and write
 * chunk bytes in it directly; the daemon never copies a chunk on a hit.
 *
 * Invariants:
 * - The memfd is sealed against shrinking and growing, so no client can
 *   truncate it and make the daemon (or another client) fault with SIGBUS.
 * - Its pages are allocated at open (fallocate), so a write into the arena
 *   can never fault for lack of memory later; a machine without the memory
 *   fails at start instead, with a clear message.
 * - Huge pages are used when the kernel has them reserved (MFD_HUGETLB);
 *   otherwise transparent huge pages are asked for (MADV_HUGEPAGE), and
 *   4 KiB pages are the fallback.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvstore/errors.h"
#include "kvstore/log.h"
#include "kvstore/proto.h"
#include "kvstore/util.h"
#include "tiers/tier.h"

#define HUGE_2M (2u << 20)

struct dram {
	int fd;
	void *base;
	uint64_t bytes;
	struct kv_alloc *alloc;
};

static int dram_memfd(uint64_t bytes, bool *huge)
{
	int fd;

	*huge = false;
	if (bytes % HUGE_2M == 0) {
		fd = memfd_create("kvstore-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING |
				  MFD_HUGETLB | MFD_HUGE_2MB);
		if (fd >= 0) {
			if (ftruncate(fd, bytes) == 0 &&
			    fallocate(fd, 0, 0, bytes) == 0) {
				*huge = true;
				return fd;
			}
			close(fd);	/* too few huge pages reserved */
		}
	}
	fd = memfd_create("kvstore-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, bytes) < 0 || fallocate(fd, 0, 0, bytes) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

/*
 * Make the arena's pages exist and be zeroed now, not at a client's first
 * write: a first touch of a fallocated shmem page costs a zeroing fault
 * (measured about 13 us per 4 MiB chunk's worth vs 2 us once populated).
 * NEEDSWORK: done serially at start (about 0.2 s per GiB here); issue 5
 * makes it parallel and in the background.
 */
static void populate(void *base, uint64_t bytes)
{
	uint64_t t0 = kv_now_ns();

	if (madvise(base, bytes, MADV_POPULATE_WRITE) < 0) {
		kv_log(KV_INFO, KV_LOG_TIER, "cannot pre-populate the DRAM arena: %s; pages fill on first use",
		       strerror(errno));
		return;
	}
	kv_log(KV_DEBUG, KV_LOG_TIER, "dram arena populated in %llu ms",
	       (unsigned long long)((kv_now_ns() - t0) / 1000000));
}

static int dram_open(void **priv, const struct kv_tier_conf *conf)
{
	struct kv_alloc_conf ac = { .size = conf->bytes, .align = conf->align };
	struct dram *d;
	bool huge;
	int ret;

	if (conf->bytes == 0 || conf->align == 0 || conf->bytes % conf->align)
		return -EINVAL;
	d = kv_xcalloc(1, sizeof(*d));
	d->bytes = conf->bytes;
	ret = dram_memfd(conf->bytes, &huge);
	if (ret < 0) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot create a %llu-byte DRAM arena: %s",
		       (unsigned long long)conf->bytes, kv_strerror(ret));
		goto out_free;
	}
	d->fd = ret;
	if (fcntl(d->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot seal the DRAM arena: %s",
		       kv_strerror(ret));
		goto out_close;
	}
	d->base = mmap(NULL, conf->bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		       d->fd, 0);
	if (d->base == MAP_FAILED) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot map the DRAM arena: %s",
		       kv_strerror(ret));
		goto out_close;
	}
	if (!huge)
		madvise(d->base, conf->bytes, MADV_HUGEPAGE);	/* a hint */
	populate(d->base, conf->bytes);
	ret = kv_alloc_open(&d->alloc, &ac);
	if (ret)
		goto out_unmap;
	kv_log(KV_INFO, KV_LOG_TIER, "dram tier: %llu bytes, %s pages",
	       (unsigned long long)conf->bytes, huge ? "2 MiB huge" : "regular");
	*priv = d;
	return 0;

out_unmap:
	munmap(d->base, conf->bytes);
out_close:
	close(d->fd);
out_free:
	free(d);
	return ret;
}

static void dram_close(void *priv)
{
	struct dram *d = priv;

	if (!d)
		return;
	kv_alloc_close(d->alloc);
	munmap(d->base, d->bytes);
	close(d->fd);
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

static int dram_read(void *priv, const struct kv_extent *e, void *buf, size_t len)
{
	struct dram *d = priv;

	if (len > kv_extent_size(e))
		return -EINVAL;
	memcpy(buf, (char *)d->base + kv_extent_offset(e), len);
	return 0;
}

static int dram_write(void *priv, const struct kv_extent *e, const void *buf,
		      size_t len)
{
	struct dram *d = priv;

	if (len > kv_extent_size(e))
		return -EINVAL;
	memcpy((char *)d->base + kv_extent_offset(e), buf, len);
	return 0;
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
	.read		= dram_read,
	.write		= dram_write,
	.stats		= dram_stats,
	.share_fd	= dram_share_fd,
	.base		= dram_base,
};
