/*
 * test_ssd_io.c - unit tests for the SSD tier's I/O engine (tiers/ssd_io.c).
 *
 * On the data files of ssd_io_fx.c, each case on both paths, io_uring and
 * pread/pwrite: argument checks, random writes at small and large queue
 * depths, with and without registered buffers, then everything read back
 * and compared; requests queued from a completion; kv_io_wake() from
 * another thread; close with operations in flight (ASan checks that
 * nothing leaks); whether requests inside the registered range really use
 * fixed buffers. Last, a throughput figure: 32 x 1 MiB reads at queue
 * depth 32 and 1 (printed, not asserted). The fault points are in
 * test_ssd_io_faults.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "tiers/ssd_io.h"
#include "tests/unit/ssd_io_fx.h"

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
