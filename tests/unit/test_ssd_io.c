/*
 * test_ssd_io.c - unit tests for the SSD tier's I/O engine (tiers/ssd_io.c).
 *
 * Three 8 MiB data files, opened O_DIRECT and fallocated in a temporary
 * directory under /var/tmp (ext4, not tmpfs: O_DIRECT must be real), and a
 * shadow copy of what they hold. Every case runs on both paths, io_uring and
 * pread/pwrite: random writes of random aligned sizes (some across file
 * boundaries, some longer than a segment) at small and large queue depths,
 * with and without registered buffers, then everything read back and
 * compared; short transfers (KV_FAULT_SHORT), failed requests (KV_FAULT_IO,
 * the N-th submission for N = 1, 2, ... until the batch succeeds), io_uring
 * refused (KV_FAULT_URING), a transfer that stops at the end of a file,
 * argument checks, kv_io_wake() from another thread, close with operations in
 * flight (ASan checks that nothing leaks), and whether requests inside the
 * registered range really use fixed buffers. Last, a throughput figure:
 * 32 x 1 MiB reads at queue depth 32 and 1 (printed, not asserted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/ssd_io.h"

#define KIB		(1ull << 10)
#define MIB		(1ull << 20)
#define GIB		(1ull << 30)

#define N_FILES		3u
#define FILE_BYTES	(8 * MIB)
#define SPACE		(N_FILES * FILE_BYTES)
#define BLOCK		4096u
#define SEG		((uint32_t)(192 * KIB))	/* not a power of two on purpose */
#define MAX_BATCH	64u
#define N_RANDOM	200u

struct variant {
	bool sync;
	bool reg;
	unsigned qd;
	uint64_t seed;
};

/* one operation; its tag is the record itself */
struct rec {
	uint64_t addr;
	uint64_t len;
	char *buf;
	unsigned calls;
	int res;
};

struct ctx {
	unsigned calls;
	unsigned cuts;			/* runs in which KV_FAULT_SHORT fired */
};

static char tmpdir[64];
static int data_fds[N_FILES];
static char *mem;			/* 2 * SPACE: write arena, read arena */
static unsigned char *shadow;		/* SPACE: what the files hold */
static bool uring_works;
static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static void fill_random(void *p, uint64_t len)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = rnd();
}

static char *rbuf(void)
{
	return mem + SPACE;
}

static void file_path(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "%s/data.%u", tmpdir, i);
}

static int group_setup(void **state)
{
	struct io_uring ring;
	char path[128];

	/* ignore a KV_FAULT in the environment: the tests arm points themselves */
	kv_fault_arm(KV_FAULT_IO, 0);
	kv_fault_arm(KV_FAULT_SHORT, 0);
	kv_fault_arm(KV_FAULT_URING, 0);

	if (kvt_tmpdir(tmpdir, sizeof(tmpdir), "/var/tmp", "test_ssd_io."))
		return -1;
	for (unsigned i = 0; i < N_FILES; i++) {
		file_path(path, sizeof(path), i);
		data_fds[i] = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC,
				   0600);
		if (data_fds[i] < 0 || fallocate(data_fds[i], 0, 0, FILE_BYTES))
			return -1;
	}
	if (posix_memalign((void **)&mem, 4096, 2 * SPACE))
		return -1;
	shadow = calloc(1, SPACE);	/* fallocated space reads as zeros */
	if (!shadow)
		return -1;

	/* the io_uring cases must use io_uring wherever it works */
	uring_works = io_uring_queue_init(4, &ring, 0) == 0;
	if (uring_works)
		io_uring_queue_exit(&ring);
	else
		print_message("io_uring is refused here: io_uring cases run on pread/pwrite\n");
	return 0;
}

static int group_teardown(void **state)
{
	char path[128];

	for (unsigned i = 0; i < N_FILES; i++) {
		if (data_fds[i] > 0)
			close(data_fds[i]);
		file_path(path, sizeof(path), i);
		unlink(path);
	}
	rmdir(tmpdir);
	free(mem);
	free(shadow);
	return 0;
}

static struct kv_io_conf make_conf(const struct variant *v)
{
	return (struct kv_io_conf){
		.fds = data_fds,
		.n_files = N_FILES,
		.file_bytes = FILE_BYTES,
		.block = BLOCK,
		.mem_align = 4096,
		.queue_depth = v->qd,
		.seg_bytes = SEG,
		.reg_base = v->reg ? mem : NULL,
		.reg_len = v->reg ? 2 * SPACE : 0,
		.sync = v->sync,
	};
}

static struct kv_io *open_conf(const struct kv_io_conf *conf)
{
	struct kv_io *io = NULL;

	assert_int_equal(kv_io_open(&io, conf), 0);
	assert_non_null(io);
	if (conf->sync || !uring_works)
		assert_false(kv_io_uring(io));
	else
		assert_true(kv_io_uring(io));
	assert_int_equal(kv_io_pending(io), 0);
	return io;
}

static struct kv_io *open_variant(const struct variant *v)
{
	struct kv_io_conf conf = make_conf(v);

	rng_state = v->seed;
	return open_conf(&conf);
}

static void on_done(void *arg, void *tag, int res)
{
	struct ctx *c = arg;
	struct rec *r = tag;

	r->calls++;
	r->res = res;
	c->calls++;
}

/*
 * Run until nothing is pending. With cut, arm KV_FAULT_SHORT before every
 * run and count the runs in which the engine took it (the probe afterwards
 * finds it still armed otherwise, and disarms it).
 */
static void drive(struct kv_io *io, struct ctx *c, bool cut)
{
	unsigned runs = 0;

	while (kv_io_pending(io)) {
		int n;

		if (cut)
			kv_fault_arm(KV_FAULT_SHORT, 1);
		n = kv_io_run(io, true, on_done, c);
		assert_true(n >= 0);
		if (cut && !kv_fault_hit(KV_FAULT_SHORT))
			c->cuts++;
		assert_true(++runs < 1000000);
	}
	if (cut)
		kv_fault_arm(KV_FAULT_SHORT, 0);
}

static void rec_init(struct rec *r, uint64_t addr, uint64_t len, char *buf)
{
	r->addr = addr;
	r->len = len;
	r->buf = buf;
	r->calls = 0;
	r->res = 1;	/* neither 0 nor an error */
}

/* A random aligned range of the space; some cross a file boundary, some
 * are longer than a segment. */
static void pick_range(uint64_t *addr, uint64_t *len)
{
	uint64_t blocks;

	switch (rnd() % 8) {
	case 0:
		blocks = 1;
		break;
	case 1:
		blocks = rnd_range(2, 512);
		*len = blocks * BLOCK;
		*addr = rnd_range(1, N_FILES - 1) * FILE_BYTES -
			rnd_range(1, blocks - 1) * BLOCK;
		return;
	case 2:
		blocks = rnd_range(SEG / BLOCK + 1, 512);
		break;
	default:
		blocks = rnd_range(1, 256);
		break;
	}
	*len = blocks * BLOCK;
	*addr = rnd_range(0, (SPACE - *len) / BLOCK) * BLOCK;
}

static bool crosses_file(uint64_t addr, uint64_t len)
{
	return addr / FILE_BYTES != (addr + len - 1) / FILE_BYTES;
}

static bool overlaps(const struct rec *r, unsigned n, uint64_t addr,
		     uint64_t len)
{
	for (unsigned i = 0; i < n; i++)
		if (addr < r[i].addr + r[i].len && r[i].addr < addr + len)
			return true;
	return false;
}

/*
 * nops random writes in batches of disjoint ranges, each batch queued at
 * once and run to the end; every write reported once with 0, then recorded
 * in the shadow. Returns how many crossed a file boundary.
 */
static unsigned random_writes(struct kv_io *io, unsigned nops, bool cut,
			      unsigned *cuts)
{
	static struct rec recs[MAX_BATCH];
	unsigned crossing = 0;
	unsigned left = nops;

	while (left) {
		struct ctx c = { 0 };
		uint64_t used = 0;
		unsigned n = 0;

		while (n < MAX_BATCH && n < left) {
			uint64_t addr;
			uint64_t len;

			pick_range(&addr, &len);
			if (overlaps(recs, n, addr, len))
				break;
			rec_init(&recs[n], addr, len, mem + used);
			used += len;
			fill_random(recs[n].buf, len);
			assert_int_equal(kv_io_queue(io, true, addr, recs[n].buf,
						     len, &recs[n]), 0);
			crossing += crosses_file(addr, len);
			n++;
		}
		assert_int_equal(kv_io_pending(io), n);
		drive(io, &c, cut);
		assert_int_equal(c.calls, n);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(recs[i].calls, 1);
			assert_int_equal(recs[i].res, 0);
			memcpy(shadow + recs[i].addr, recs[i].buf, recs[i].len);
		}
		if (cuts)
			*cuts += c.cuts;
		left -= n;
	}
	return crossing;
}

/* Read the whole space back in random pieces, all queued at once. */
static void read_verify(struct kv_io *io, bool cut)
{
	struct rec *recs = calloc(SPACE / BLOCK, sizeof(*recs));
	struct ctx c = { 0 };
	uint64_t addr = 0;
	unsigned n = 0;

	assert_non_null(recs);
	memset(rbuf(), 0xa5, SPACE);
	while (addr < SPACE) {
		uint64_t len = rnd_range(1, 768) * BLOCK;

		if (len > SPACE - addr)
			len = SPACE - addr;
		rec_init(&recs[n], addr, len, rbuf() + addr);
		assert_int_equal(kv_io_queue(io, false, addr, recs[n].buf, len,
					     &recs[n]), 0);
		addr += len;
		n++;
	}
	drive(io, &c, cut);
	assert_int_equal(c.calls, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(recs[i].calls, 1);
		assert_int_equal(recs[i].res, 0);
	}
	assert_memory_equal(rbuf(), shadow, SPACE);
	free(recs);
}

/* ---- argument checks ---------------------------------------------------- */

static void test_open_args(void **state)
{
	static const struct variant v = { .qd = 8 };
	static const int no_fds[N_FILES] = { -1, -1, -1 };
	struct kv_io *sentinel = (struct kv_io *)&rng_state;
	struct kv_io_conf good = make_conf(&v);
	struct kv_io_conf bad[20];
	unsigned n = 0;
	struct kv_io *io;

	for (unsigned i = 0; i < KV_ARRAY_SIZE(bad); i++)
		bad[i] = good;
	bad[n++].fds = NULL;
	bad[n++].n_files = 0;
	bad[n++].block = 0;
	bad[n++].block = 256;
	bad[n++].block = 3 * 1024;
	bad[n].block = 1u << 31;		/* over 1 GiB: requests hold an int */
	bad[n].file_bytes = 1ull << 32;
	bad[n++].seg_bytes = 1u << 31;
	bad[n].block = 8192;			/* seg is a multiple, */
	bad[n++].file_bytes = 8192 * 3 + 4096;	/* file_bytes not */
	bad[n++].fds = no_fds;
	bad[n++].file_bytes = 0;
	bad[n++].file_bytes = FILE_BYTES + 512;
	bad[n++].seg_bytes = 0;
	bad[n++].seg_bytes = SEG + 512;
	bad[n++].queue_depth = 0;
	bad[n++].queue_depth = 4097;
	bad[n++].mem_align = 0;
	bad[n++].mem_align = 3 * 1024;
	bad[n].n_files = 2;			/* the space overflows */
	bad[n++].file_bytes = (1ull << 63) + BLOCK;
	assert_true(n <= KV_ARRAY_SIZE(bad));

	for (unsigned i = 0; i < n; i++) {
		io = sentinel;
		assert_int_equal(kv_io_open(&io, &bad[i]), -EINVAL);
		assert_ptr_equal(io, sentinel);
	}
	io = sentinel;
	assert_int_equal(kv_io_open(&io, NULL), -EINVAL);
	assert_ptr_equal(io, sentinel);

	/* the extremes that are valid, on both paths */
	for (int sync = 0; sync < 2; sync++) {
		struct kv_io_conf c = good;

		c.sync = sync;
		c.queue_depth = 1;
		c.block = 512;
		c.mem_align = 1;
		kv_io_close(open_conf(&c));
		c.queue_depth = 4096;
		c.seg_bytes = 512;
		kv_io_close(open_conf(&c));
	}
	kv_io_close(NULL);
}

static void test_queue_args(void **state)
{
	static const struct variant vs[] = { { .qd = 4 }, { .qd = 4, .sync = true } };

	for (size_t i = 0; i < KV_ARRAY_SIZE(vs); i++) {
		struct kv_io *io = open_variant(&vs[i]);
		struct ctx c = { 0 };
		struct rec r;

		/* past the end of the last file */
		assert_int_equal(kv_io_queue(io, false, SPACE - BLOCK, mem,
					     2 * BLOCK, NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, false, SPACE, mem, BLOCK, NULL),
				 -EINVAL);
		assert_int_equal(kv_io_queue(io, true, 0, mem, SPACE + BLOCK,
					     NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, false, UINT64_MAX - BLOCK + 1,
					     mem, 2 * BLOCK, NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, false, BLOCK, mem,
					     UINT64_MAX - BLOCK + 1, NULL),
				 -EINVAL);
		/* misaligned address, length, buffer; empty; no buffer */
		assert_int_equal(kv_io_queue(io, false, 512, mem, BLOCK, NULL),
				 -EINVAL);
		assert_int_equal(kv_io_queue(io, false, 0, mem, BLOCK + 512,
					     NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, false, 0, mem + 512, BLOCK,
					     NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, true, 0, mem, 0, NULL), -EINVAL);
		assert_int_equal(kv_io_queue(io, true, 0, NULL, BLOCK, NULL),
				 -EINVAL);
		assert_int_equal(kv_io_pending(io), 0);
		assert_int_equal(kv_io_run(io, false, on_done, &c), 0);
		assert_int_equal(c.calls, 0);

		/* the whole space in one operation is fine */
		rec_init(&r, 0, SPACE, rbuf());
		assert_int_equal(kv_io_queue(io, false, 0, r.buf, SPACE, &r), 0);
		drive(io, &c, false);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, 0);
		assert_memory_equal(rbuf(), shadow, SPACE);
		kv_io_close(io);
	}
}

static void test_dio_align(void **state)
{
	uint32_t mem_align = 0;
	uint32_t block = 0;
	int pipefd[2];

	assert_int_equal(kv_io_dio_align(data_fds[0], &mem_align, &block), 0);
	print_message("dio_align on %s: mem_align %u, offset/length %u\n",
		      tmpdir, mem_align, block);
	assert_true(mem_align && !(mem_align & (mem_align - 1)));
	assert_true(block >= 1 && block <= 4096 && !(block & (block - 1)));

	/* a pipe says nothing about direct I/O: the 4096 default */
	assert_int_equal(pipe(pipefd), 0);
	mem_align = block = 0;
	assert_int_equal(kv_io_dio_align(pipefd[0], &mem_align, &block), 0);
	assert_int_equal(mem_align, 4096);
	assert_int_equal(block, 4096);
	close(pipefd[0]);
	close(pipefd[1]);

	assert_int_equal(kv_io_dio_align(-1, &mem_align, &block), -EBADF);
}

/* ---- random traffic --------------------------------------------------------- */

static void test_random(void **state)
{
	const struct variant *v = *state;
	struct kv_io *io = open_variant(v);
	unsigned crossing;

	crossing = random_writes(io, N_RANDOM, false, NULL);
	assert_true(crossing > 0);
	read_verify(io, false);
	kv_io_close(io);
}

/* Done callbacks may queue more work: a chain of writes, each queued by the
 * report of the one before, then read back the same way. */
struct chain {
	struct kv_io *io;
	struct rec recs[16];
	unsigned next;
	bool write;
	struct ctx c;
};

static void chain_done(void *arg, void *tag, int res)
{
	struct chain *ch = arg;
	struct rec *r;

	on_done(&ch->c, tag, res);
	if (ch->next == KV_ARRAY_SIZE(ch->recs))
		return;
	r = &ch->recs[ch->next++];
	assert_int_equal(kv_io_queue(ch->io, ch->write, r->addr, r->buf, r->len,
				     r), 0);
}

static void test_queue_from_done(void **state)
{
	static const struct variant vs[] = {
		{ .qd = 2, .seed = 31 }, { .qd = 2, .sync = true, .seed = 32 },
	};

	for (size_t k = 0; k < KV_ARRAY_SIZE(vs); k++) {
		struct chain ch = { .io = open_variant(&vs[k]) };

		for (int pass = 0; pass < 2; pass++) {
			ch.write = pass == 0;
			ch.next = 1;
			ch.c.calls = 0;
			for (unsigned i = 0; i < KV_ARRAY_SIZE(ch.recs); i++) {
				uint64_t addr = (uint64_t)i * 640 * KIB + 4 * MIB;

				rec_init(&ch.recs[i], addr, 512 * KIB,
					 (ch.write ? mem : rbuf()) + addr);
				if (ch.write)
					fill_random(ch.recs[i].buf, 512 * KIB);
			}
			assert_int_equal(kv_io_queue(ch.io, ch.write, ch.recs[0].addr,
						     ch.recs[0].buf, ch.recs[0].len,
						     &ch.recs[0]), 0);
			while (kv_io_pending(ch.io))
				assert_true(kv_io_run(ch.io, true, chain_done, &ch) >= 0);
			assert_int_equal(ch.c.calls, KV_ARRAY_SIZE(ch.recs));
			for (unsigned i = 0; i < KV_ARRAY_SIZE(ch.recs); i++) {
				struct rec *r = &ch.recs[i];

				assert_int_equal(r->calls, 1);
				assert_int_equal(r->res, 0);
				if (ch.write)
					memcpy(shadow + r->addr, r->buf, r->len);
				else
					assert_memory_equal(r->buf, shadow + r->addr,
							    r->len);
			}
		}
		kv_io_close(ch.io);
	}
}

/* ---- fault points ----------------------------------------------------------- */

/*
 * KV_FAULT_SHORT. First every operation alone with the point armed once: the
 * engine must take it (each has >= 2 blocks) and still move every byte.
 * Then random batches with the point re-armed before every run. Last, a
 * single-block request is never cut and leaves the point armed.
 */
static void test_short(void **state)
{
	const struct variant *v = *state;
	struct kv_io *io = open_variant(v);
	unsigned cuts = 0;

	for (unsigned i = 0; i < 2 * 40; i++) {
		bool write = i < 40;
		struct ctx c = { 0 };
		uint64_t addr;
		uint64_t len;
		struct rec r;

		do
			pick_range(&addr, &len);
		while (len < 2 * BLOCK);
		rec_init(&r, addr, len, write ? mem : rbuf());
		if (write)
			fill_random(r.buf, len);
		else
			memset(r.buf, 0x5a, len);
		assert_int_equal(kv_io_queue(io, write, addr, r.buf, len, &r), 0);
		kv_fault_arm(KV_FAULT_SHORT, 1);
		drive(io, &c, false);
		assert_false(kv_fault_hit(KV_FAULT_SHORT));	/* it was taken */
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, 0);
		if (write)
			memcpy(shadow + addr, r.buf, len);
		else
			assert_memory_equal(r.buf, shadow + addr, len);
	}

	random_writes(io, N_RANDOM, true, &cuts);
	print_message("short transfers in %u runs of the random batches\n", cuts);
	assert_true(cuts > 0);
	read_verify(io, true);

	/* one block: left whole, the point stays armed */
	{
		struct ctx c = { 0 };
		struct rec r;

		rec_init(&r, FILE_BYTES - BLOCK, BLOCK, rbuf());
		assert_int_equal(kv_io_queue(io, false, r.addr, r.buf, BLOCK, &r), 0);
		kv_fault_arm(KV_FAULT_SHORT, 1);
		drive(io, &c, false);
		assert_true(kv_fault_hit(KV_FAULT_SHORT));
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, 0);
		assert_memory_equal(r.buf, shadow + r.addr, BLOCK);
	}
	kv_io_close(io);
}

/*
 * KV_FAULT_IO on the N-th request submission, N = 1, 2, ... until a batch
 * goes through: exactly one operation reports -EIO, every operation is
 * reported once, and rewriting the failed one restores the shadow. Then the
 * same for reads.
 */
static void test_fault_io(void **state)
{
	/* disjoint; the second and the fourth cross a file boundary */
	static const uint64_t addrs[] = {
		0, FILE_BYTES - 256 * KIB, 2 * MIB, 2 * FILE_BYTES - 256 * KIB,
		12 * MIB, 20 * MIB,
	};
	const struct variant *v = *state;
	struct kv_io *io = open_variant(v);
	struct rec recs[KV_ARRAY_SIZE(addrs)];
	unsigned failed_rounds = 0;
	unsigned n;

	for (unsigned nth = 1;; nth++) {
		struct ctx c = { 0 };
		unsigned failed = 0;

		assert_true(nth < 1000);
		for (unsigned i = 0; i < KV_ARRAY_SIZE(recs); i++) {
			/* 3..5 requests each */
			uint64_t len = rnd_range(2 * SEG / BLOCK + 1,
						 5 * SEG / BLOCK) * BLOCK;
			uint64_t addr = addrs[i];

			rec_init(&recs[i], addr, len, mem + addr);
			fill_random(recs[i].buf, len);
			assert_int_equal(kv_io_queue(io, true, addr, recs[i].buf,
						     len, &recs[i]), 0);
		}
		kv_fault_arm(KV_FAULT_IO, nth);
		drive(io, &c, false);
		kv_fault_arm(KV_FAULT_IO, 0);
		assert_int_equal(c.calls, KV_ARRAY_SIZE(recs));
		assert_int_equal(kv_io_pending(io), 0);
		for (unsigned i = 0; i < KV_ARRAY_SIZE(recs); i++) {
			struct rec *r = &recs[i];

			assert_int_equal(r->calls, 1);
			if (r->res == 0) {
				memcpy(shadow + r->addr, r->buf, r->len);
				continue;
			}
			assert_int_equal(r->res, -EIO);
			failed++;
			/* its bytes are undefined now: write them again */
			rec_init(r, r->addr, r->len, r->buf);
			assert_int_equal(kv_io_queue(io, true, r->addr, r->buf,
						     r->len, r), 0);
			drive(io, &c, false);
			assert_int_equal(r->calls, 1);
			assert_int_equal(r->res, 0);
			memcpy(shadow + r->addr, r->buf, r->len);
		}
		assert_true(failed <= 1);
		if (!failed)
			break;
		failed_rounds++;
	}
	/* every request of the batch was a submission that could fail */
	assert_true(failed_rounds >= KV_ARRAY_SIZE(recs) * 3);
	read_verify(io, false);

	/* a read that fails leaves the others right */
	memset(rbuf(), 0x5a, SPACE);
	n = 0;
	for (unsigned i = 0; i < KV_ARRAY_SIZE(recs); i++) {
		uint64_t addr = addrs[i];

		rec_init(&recs[i], addr, 3 * SEG, rbuf() + addr);
		assert_int_equal(kv_io_queue(io, false, addr, recs[i].buf,
					     3 * SEG, &recs[i]), 0);
	}
	{
		struct ctx c = { 0 };

		kv_fault_arm(KV_FAULT_IO, 5);
		drive(io, &c, false);
		kv_fault_arm(KV_FAULT_IO, 0);
		assert_int_equal(c.calls, KV_ARRAY_SIZE(recs));
	}
	for (unsigned i = 0; i < KV_ARRAY_SIZE(recs); i++) {
		assert_int_equal(recs[i].calls, 1);
		if (recs[i].res) {
			assert_int_equal(recs[i].res, -EIO);
			n++;
			continue;
		}
		assert_memory_equal(recs[i].buf, shadow + recs[i].addr, 3 * SEG);
	}
	assert_int_equal(n, 1);
	print_message("KV_FAULT_IO: %u submissions failed one at a time\n",
		      failed_rounds);
	kv_io_close(io);
}

static void test_fault_uring(void **state)
{
	static const struct variant v = { .qd = 16, .reg = true, .seed = 41 };
	struct kv_io_conf conf = make_conf(&v);
	struct kv_io *io = NULL;

	rng_state = v.seed;
	kv_fault_arm(KV_FAULT_URING, 1);
	assert_int_equal(kv_io_open(&io, &conf), 0);
	assert_false(kv_fault_hit(KV_FAULT_URING));	/* it was taken */
	assert_false(kv_io_uring(io));
	random_writes(io, N_RANDOM / 2, false, NULL);
	read_verify(io, false);
	kv_io_close(io);
}

/*
 * A transfer that stops at the end of a file is -EIO: the engine is told
 * the files are twice their real size. Reads only (a write would grow it).
 */
static void test_eof(void **state)
{
	const struct variant *v = *state;
	struct kv_io_conf conf = make_conf(v);
	static const struct {
		uint64_t addr;
		uint64_t len;
		int res;
	} cases[] = {
		{ FILE_BYTES - 64 * KIB, 64 * KIB, 0 },
		{ FILE_BYTES - 64 * KIB, 128 * KIB, -EIO },	/* short, then 0 */
		{ FILE_BYTES, 4 * KIB, -EIO },			/* 0 at once */
		{ FILE_BYTES - 1 * MIB, 2 * MIB, -EIO },	/* several requests */
	};
	struct kv_io *io;

	conf.n_files = 1;
	conf.file_bytes = 2 * FILE_BYTES;
	io = open_conf(&conf);
	for (size_t i = 0; i < KV_ARRAY_SIZE(cases); i++) {
		struct ctx c = { 0 };
		struct rec r;

		rec_init(&r, cases[i].addr, cases[i].len, rbuf());
		assert_int_equal(kv_io_queue(io, false, r.addr, r.buf, r.len, &r), 0);
		drive(io, &c, false);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, cases[i].res);
		if (!r.res)
			assert_memory_equal(r.buf, shadow + r.addr, r.len);
	}
	kv_io_close(io);
}

/* ---- wake and close ---------------------------------------------------------- */

static void *waker(void *arg)
{
	struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	kv_io_wake(arg);
	return NULL;
}

static void test_wake(void **state)
{
	const struct variant *v = *state;
	struct kv_io *io = open_variant(v);
	struct ctx c = { 0 };

	alarm(10);	/* a missed wake must fail the test, not hang it */
	for (int round = 0; round < 3; round++) {
		pthread_t t;
		uint64_t t0 = kv_now_ns();
		uint64_t ms;

		assert_int_equal(pthread_create(&t, NULL, waker, io), 0);
		assert_int_equal(kv_io_run(io, true, on_done, &c), 0);
		ms = (kv_now_ns() - t0) / 1000000;
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_true(ms >= 40);	/* it did block */
		assert_true(ms < 5000);
	}
	/* a wake before the run ends the next wait at once */
	kv_io_wake(io);
	assert_int_equal(kv_io_run(io, true, on_done, &c), 0);
	/* and is consumed: work still ends a wait the usual way */
	{
		struct rec r;

		rec_init(&r, 0, 64 * KIB, rbuf());
		assert_int_equal(kv_io_queue(io, false, 0, r.buf, r.len, &r), 0);
		drive(io, &c, false);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, 0);
	}
	alarm(0);
	assert_int_equal(c.calls, 1);
	kv_io_close(io);
}

/*
 * Close with operations in flight and queued: it waits for the kernel,
 * reports nothing, leaks nothing (ASan). The writes carry what the shadow
 * already holds, so whatever got written, the files stay as the shadow says.
 */
static void test_close_inflight(void **state)
{
	const struct variant *v = *state;
	static struct rec recs[48];

	for (int run_first = 0; run_first < 2; run_first++) {
		struct kv_io *io = open_variant(v);
		struct ctx c = { 0 };
		int n = 0;

		for (unsigned i = 0; i < KV_ARRAY_SIZE(recs); i++) {
			uint64_t addr = (uint64_t)i * (SPACE / KV_ARRAY_SIZE(recs));
			bool write = i % 2;
			char *buf = (write ? mem : rbuf()) + addr;

			rec_init(&recs[i], addr, 512 * KIB, buf);
			if (write)
				memcpy(buf, shadow + addr, 512 * KIB);
			assert_int_equal(kv_io_queue(io, write, addr, buf,
						     512 * KIB, &recs[i]), 0);
		}
		if (run_first) {
			n = kv_io_run(io, false, on_done, &c);
			assert_true(n >= 0);
		}
		assert_int_equal(kv_io_pending(io), KV_ARRAY_SIZE(recs) - (unsigned)n);
		kv_io_close(io);
		assert_int_equal(c.calls, (unsigned)n);
	}
	{
		struct kv_io *io = open_variant(v);

		read_verify(io, false);
		kv_io_close(io);
	}
}

/* ---- registered buffers ----------------------------------------------------- */

/* Whether registering len bytes can succeed: CAP_IPC_LOCK, or the rlimit. */
static bool can_pin(uint64_t len)
{
	unsigned long long caps = 0;
	struct rlimit rl;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	if (f)
		fclose(f);
	if (caps & (1ull << 14))	/* CAP_IPC_LOCK */
		return true;
	return getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
	       (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= len);
}

/*
 * Whether a request used a fixed buffer, seen from outside: after
 * registration, fresh pages are mapped over the registered range. A fixed
 * read lands in the old, pinned pages, so the new ones stay zero; a plain
 * read lands in the new ones. Two pieces: 1 GiB and 4 MiB; a buffer inside
 * the second must go fixed, one straddling the two must go plain.
 */
static void test_fixed_pieces(void **state)
{
	static const struct variant v = { .qd = 8 };
	const uint64_t map_len = GIB + 4 * MIB;
	struct kv_io_conf conf = make_conf(&v);
	char *win;
	char *map;
	struct kv_io *io;
	struct rec r[2];
	struct ctx c = { 0 };

	if (!uring_works || !can_pin(map_len))
		skip();
	/* make sure the bytes read below are not zero */
	io = open_variant(&v);
	for (int i = 0; i < 2; i++) {
		uint64_t addr = i ? 4 * MIB : 1 * MIB;
		uint64_t len = i ? 1 * MIB : 2 * MIB;

		rec_init(&r[i], addr, len, mem + addr);
		memset(r[i].buf, 0x3c + i, len);
		assert_int_equal(kv_io_queue(io, true, addr, r[i].buf, len, &r[i]), 0);
	}
	drive(io, &c, false);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].res, 0);
		memcpy(shadow + r[i].addr, r[i].buf, r[i].len);
	}
	kv_io_close(io);

	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(map != MAP_FAILED);
	conf.reg_base = map;
	conf.reg_len = map_len;
	conf.seg_bytes = 4 * MIB;	/* one request per operation */
	io = open_conf(&conf);

	win = map + GIB - 2 * MIB;
	assert_true(mmap(win, 6 * MIB, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == win);
	rec_init(&r[0], 1 * MIB, 2 * MIB, map + GIB - 1 * MIB);	/* straddles */
	rec_init(&r[1], 4 * MIB, 1 * MIB, map + GIB + 1 * MIB);	/* piece 1 */
	for (int i = 0; i < 2; i++)
		assert_int_equal(kv_io_queue(io, false, r[i].addr, r[i].buf,
					     r[i].len, &r[i]), 0);
	drive(io, &c, false);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].res, 0);
	}
	/* no zeros on file: the plain read is seen, the fixed one is not */
	assert_memory_equal(r[0].buf, shadow + r[0].addr, r[0].len);
	for (uint64_t i = 0; i < r[1].len; i++)
		assert_int_equal(r[1].buf[i], 0);
	kv_io_close(io);
	munmap(map, map_len);
}

/* A registration the kernel refuses (pages it cannot pin): plain requests. */
static void test_reg_refused(void **state)
{
	static const struct variant v = { .qd = 8, .seed = 51 };
	struct kv_io_conf conf = make_conf(&v);
	struct kv_io *io;
	void *hole;

	hole = mmap(NULL, 2 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(hole != MAP_FAILED);
	conf.reg_base = hole;
	conf.reg_len = 2 * MIB;
	rng_state = v.seed;
	io = open_conf(&conf);
	random_writes(io, 20, false, NULL);
	read_verify(io, false);
	kv_io_close(io);
	munmap(hole, 2 * MIB);
}

/* ---- throughput ------------------------------------------------------------- */

/*
 * MB/s of rounds x count reads of size bytes (distinct buffers, addresses
 * in order for 1 MiB, random for smaller) at queue depth qd.
 */
static double read_mbps(unsigned qd, bool use_sync, uint64_t size,
			unsigned count, unsigned rounds)
{
	static const struct variant base = { .qd = 1, .seed = 71 };
	struct kv_io_conf conf = make_conf(&base);
	struct rec *recs = calloc(count, sizeof(*recs));
	struct kv_io *io;
	uint64_t t0;
	double s;

	assert_non_null(recs);
	assert_true(count * size <= 2 * SPACE);
	conf.queue_depth = qd;
	conf.seg_bytes = (uint32_t)(size > MIB ? size : MIB);
	conf.sync = use_sync;
	conf.reg_base = mem;
	conf.reg_len = 2 * SPACE;
	io = open_conf(&conf);
	t0 = kv_now_ns();
	for (unsigned k = 0; k < rounds; k++) {
		struct ctx c = { 0 };

		for (unsigned i = 0; i < count; i++) {
			uint64_t addr = size >= MIB ? (i * size) % SPACE :
					rnd_range(0, SPACE / size - 1) * size;

			rec_init(&recs[i], addr, size, mem + i * size);
			assert_int_equal(kv_io_queue(io, false, addr, recs[i].buf,
						     size, &recs[i]), 0);
		}
		drive(io, &c, false);
		for (unsigned i = 0; i < count; i++)
			assert_int_equal(recs[i].res, 0);
	}
	s = (double)(kv_now_ns() - t0) / 1e9;
	kv_io_close(io);
	free(recs);
	return (double)rounds * count * size / 1e6 / s;
}

static void test_throughput(void **state)
{
	const char *how = uring_works ? "io_uring" : "pread (io_uring refused)";
	double qd32;
	double qd1;
	double plain;

	rng_state = 81;
	read_mbps(32, false, MIB, 32, 2);	/* warm up device and code */
	qd32 = read_mbps(32, false, MIB, 32, 8);
	qd1 = read_mbps(1, false, MIB, 32, 8);
	plain = read_mbps(32, true, MIB, 32, 8);
	print_message("figure: ssd_io O_DIRECT read 32 x 1 MiB (8 rounds), %s: qd 32 %.0f MB/s, qd 1 %.0f MB/s, ratio %.2f\n",
		      how, qd32, qd1, qd32 / qd1);
	print_message("figure: ssd_io O_DIRECT read 32 x 1 MiB, pread/pwrite path: %.0f MB/s (%.2f of io_uring qd 32)\n",
		      plain, plain / qd32);

	qd32 = read_mbps(32, false, 4 * KIB, 4096, 1);
	qd1 = read_mbps(1, false, 4 * KIB, 4096, 1);
	print_message("figure: ssd_io O_DIRECT read 4096 x 4 KiB random, %s: qd 32 %.0f MB/s, qd 1 %.0f MB/s, ratio %.2f\n",
		      how, qd32, qd1, qd32 / qd1);
}

/* ---- the list ---------------------------------------------------------------- */

static const struct variant rnd_uring_qd4 = { .qd = 4, .seed = 1 };
static const struct variant rnd_uring_qd64_reg = { .qd = 64, .reg = true, .seed = 2 };
static const struct variant rnd_sync_qd4 = { .qd = 4, .sync = true, .seed = 3 };
static const struct variant rnd_sync_qd64_reg = { .qd = 64, .reg = true, .sync = true, .seed = 4 };
static const struct variant short_uring_qd4_reg = { .qd = 4, .reg = true, .seed = 11 };
static const struct variant short_uring_qd64 = { .qd = 64, .seed = 12 };
static const struct variant short_sync = { .qd = 4, .sync = true, .seed = 13 };
static const struct variant fio_uring_qd4 = { .qd = 4, .seed = 21 };
static const struct variant fio_uring_qd64_reg = { .qd = 64, .reg = true, .seed = 22 };
static const struct variant fio_sync = { .qd = 8, .sync = true, .seed = 23 };
static const struct variant uring_qd8 = { .qd = 8, .seed = 61 };
static const struct variant sync_qd8 = { .qd = 8, .sync = true, .seed = 62 };

#define CASE(name, fn, v) { name, fn, NULL, NULL, (void *)(v) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_args),
		cmocka_unit_test(test_queue_args),
		cmocka_unit_test(test_dio_align),
		CASE("random io_uring qd 4", test_random, &rnd_uring_qd4),
		CASE("random io_uring qd 64 registered", test_random, &rnd_uring_qd64_reg),
		CASE("random pread qd 4", test_random, &rnd_sync_qd4),
		CASE("random pread qd 64 registered", test_random, &rnd_sync_qd64_reg),
		cmocka_unit_test(test_queue_from_done),
		CASE("short io_uring qd 4 registered", test_short, &short_uring_qd4_reg),
		CASE("short io_uring qd 64", test_short, &short_uring_qd64),
		CASE("short pread", test_short, &short_sync),
		CASE("fault io io_uring qd 4", test_fault_io, &fio_uring_qd4),
		CASE("fault io io_uring qd 64 registered", test_fault_io, &fio_uring_qd64_reg),
		CASE("fault io pread", test_fault_io, &fio_sync),
		cmocka_unit_test(test_fault_uring),
		CASE("eof io_uring", test_eof, &uring_qd8),
		CASE("eof pread", test_eof, &sync_qd8),
		CASE("wake io_uring", test_wake, &uring_qd8),
		CASE("wake pread", test_wake, &sync_qd8),
		CASE("close in flight io_uring", test_close_inflight, &uring_qd8),
		CASE("close in flight pread", test_close_inflight, &sync_qd8),
		cmocka_unit_test(test_fixed_pieces),
		cmocka_unit_test(test_reg_refused),
		cmocka_unit_test(test_throughput),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
