/*
 * test_ssd_io_faults.c - the SSD tier's I/O engine (tiers/ssd_io.c) at its
 * fault points, on the data files of ssd_io_fx.c, each case on both paths
 * (io_uring and pread/pwrite): short transfers (KV_FAULT_SHORT), failed
 * requests (KV_FAULT_IO, the N-th submission for N = 1, 2, ... until the
 * batch succeeds), io_uring refused (KV_FAULT_URING), and a transfer that
 * stops at the end of a file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "lib/util.h"
#include "tiers/ssd_io.h"
#include "tests/unit/ssd_io_fx.h"

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

/* ---- the list ---------------------------------------------------------------- */

static const struct variant short_uring_qd4_reg = { .qd = 4, .reg = true, .seed = 11 };
static const struct variant short_uring_qd64 = { .qd = 64, .seed = 12 };
static const struct variant short_sync = { .qd = 4, .sync = true, .seed = 13 };
static const struct variant fio_uring_qd4 = { .qd = 4, .seed = 21 };
static const struct variant fio_uring_qd64_reg = { .qd = 64, .reg = true, .seed = 22 };
static const struct variant fio_sync = { .qd = 8, .sync = true, .seed = 23 };

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE("short io_uring qd 4 registered", test_short, &short_uring_qd4_reg),
		CASE("short io_uring qd 64", test_short, &short_uring_qd64),
		CASE("short pread", test_short, &short_sync),
		CASE("fault io io_uring qd 4", test_fault_io, &fio_uring_qd4),
		CASE("fault io io_uring qd 64 registered", test_fault_io, &fio_uring_qd64_reg),
		CASE("fault io pread", test_fault_io, &fio_sync),
		cmocka_unit_test(test_fault_uring),
		CASE("eof io_uring", test_eof, &uring_qd8),
		CASE("eof pread", test_eof, &sync_qd8),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
