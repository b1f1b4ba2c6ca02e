/*
 * test_ssd.c - the SSD tier through a live daemon: demotion and promotion
 * with exact bytes, PREFETCH, flush --tier dram, kill -9 and SIGTERM
 * restarts, corruption of the data files and of the index, the io_uring
 * refusal fallback, short transfers, and a crash that tears writes.
 *
 * Every read is checked byte for byte against what was put under its key:
 * a chunk is either exactly right or a miss, never anything else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"

#define MIB (1u << 20)

static char ssd_dir[256];

/* The bytes of chunk i: a pattern no other chunk has. */
static void fill(void *buf, size_t len, uint64_t i)
{
	uint64_t *p = buf;

	for (size_t w = 0; w < len / 8; w++)
		p[w] = kvt_mix(i * 0x100000001b3ull + w);
}

/* bf16-like values: compressible by shuffle+zstd. */
static void fill_bf16(void *buf, size_t len, uint64_t i)
{
	uint16_t *p = buf;

	for (size_t w = 0; w < len / 2; w++)
		p[w] = (uint16_t)(0x3c00 | (kvt_mix(i * 131 + w) & 0x1ff));
}

static struct kvc_key key_of(uint64_t i)
{
	return (struct kvc_key){ kvt_mix(i), i };
}

static int setup(void **state)
{
	return kvt_tmpdir(ssd_dir, sizeof(ssd_dir), NULL, "kvt-ssd-");
}

static int teardown(void **state)
{
	return kvt_rmtree(ssd_dir);
}

/* A fresh SSD directory for one test. */
static void fresh_dir(void)
{
	assert_int_equal(kvt_rmtree(ssd_dir), 0);
	assert_int_equal(mkdir(ssd_dir, 0777), 0);
}

/* Start a daemon on ssd_dir with 8 MiB of DRAM and 64 MiB of SSD. */
static void start(struct kvt_daemon *d, const char *extra1, const char *extra2)
{
	const char *args[] = { "--dram-bytes", "8M", "--ssd-dir", ssd_dir,
			       "--ssd-bytes", "64M", "--log", "info",
			       extra1, extra2, NULL, NULL };

	if (extra1 && !extra2)
		args[9] = NULL;
	assert_int_equal(kvt_start(d, args), 0);
}

static void put_range(struct kvc *c, uint32_t ns, uint64_t from, uint64_t to,
		      size_t len)
{
	void *buf = malloc(len);

	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = key_of(i);

		fill(buf, len, i);
		assert_int_equal(kvc_put(c, ns, &k, NULL, 16, 0, buf, len), 0);
	}
	free(buf);
}

/* Read chunks [from, to): count exact ones; fail on any wrong byte. */
static unsigned check_range(struct kvc *c, uint32_t ns, uint64_t from,
			    uint64_t to, size_t len)
{
	void *want = malloc(len), *got = malloc(len);
	unsigned exact = 0;

	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = key_of(i);
		size_t n = 0;
		int ret;

		memset(got, 0x5a, len);
		ret = kvc_get(c, ns, &k, got, len, &n);
		if (ret == -ENOENT)
			continue;
		assert_int_equal(ret, 0);
		assert_int_equal(n, len);
		fill(want, len, i);
		assert_memory_equal(got, want, len);
		exact++;
	}
	free(want);
	free(got);
	return exact;
}

static const struct kvc_tier_stats *tier(const struct kvc_stats *st, const char *name)
{
	for (unsigned i = 0; i < st->n_tiers; i++)
		if (!strcmp(st->tiers[i].name, name))
			return &st->tiers[i];
	fail_msg("no tier %s", name);
	return NULL;
}

/* 40 MiB through an 8 MiB DRAM tier: demoted, promoted, all exact. */
static void test_demote_promote(void **state)
{
	struct kvt_daemon d;
	struct kvc_stats st;
	struct kvc *c;
	uint8_t tiers[40];
	uint32_t ns;
	int pstat[40];
	struct kvc_key keys[40];

	fresh_dir();
	start(&d, NULL, NULL);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "demote", &ns), 0);
	put_range(c, ns, 0, 40, MIB);
	for (int i = 0; i < 40; i++)
		keys[i] = key_of((uint64_t)i);
	assert_int_equal(kvc_lookup(c, ns, keys, 40, tiers), 40);
	assert_int_equal(tiers[0], KVC_TIER_SSD);	/* the oldest went down */
	assert_int_equal(tiers[39], KVC_TIER_DRAM);
	/* PREFETCH answers at once; the gets then find them in DRAM. */
	assert_int_equal(kvc_prefetch(c, ns, keys, 4, pstat), 4);
	assert_int_equal(check_range(c, ns, 0, 40, MIB), 40);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_true(tier(&st, "ssd")->chunks >= 32);
	assert_true(tier(&st, "ssd")->promotions >= 32);
	assert_true(tier(&st, "dram")->demotions >= 32);
	assert_int_equal(st.checksum_failures, 0);
	{
		struct kvc_key missing = key_of(1000);

		assert_int_equal(kvc_prefetch(c, ns, &missing, 1, pstat), 0);
		assert_int_equal(pstat[0], -ENOENT);
	}
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/* A prefix chain longer than DRAM: every link comes back, in order. */
static void test_chain(void **state)
{
	struct kvt_daemon d;
	struct kvc_key k[24];
	struct kvc *c;
	uint32_t ns;
	void *buf = malloc(MIB);

	fresh_dir();
	start(&d, "--ssd-codec", "shuffle+zstd");
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "chain", &ns), 0);
	for (uint64_t i = 0; i < 24; i++) {
		k[i] = key_of(500 + i);
		fill_bf16(buf, MIB, i);
		assert_int_equal(kvc_put(c, ns, &k[i], i ? &k[i - 1] : NULL, 256,
					 (uint32_t)i * 256, buf, MIB), 0);
	}
	assert_int_equal(kvc_lookup(c, ns, k, 24, NULL), 24);
	for (uint64_t i = 0; i < 24; i++) {
		void *got = malloc(MIB);
		size_t n;

		assert_int_equal(kvc_get(c, ns, &k[i], got, MIB, &n), 0);
		fill_bf16(buf, MIB, i);
		assert_memory_equal(got, buf, MIB);
		free(got);
	}
	kvc_close(c);
	free(buf);
	assert_int_equal(kvt_stop(&d), 0);
}

/* A codec per namespace: bf16 data takes less room where it is shuffled. */
static void test_codec_per_ns(void **state)
{
	struct kvc_flush_result fr;
	struct kvt_daemon d;
	struct kvc_stats st;
	uint64_t raw, packed;
	struct kvc *c;
	uint32_t ns[2];
	void *buf = malloc(MIB), *got = malloc(MIB);

	fresh_dir();
	start(&d, "--ssd-codec-ns", "kv-bf16=shuffle+zstd,kv-z=zstd");
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "plain", &ns[0]), 0);
	assert_int_equal(kvc_ns_register(c, "kv-bf16-llama", &ns[1]), 0);
	for (int n = 0; n < 2; n++) {
		for (uint64_t i = 0; i < 6; i++) {
			struct kvc_key k = key_of(i);

			fill_bf16(buf, MIB, i);
			assert_int_equal(kvc_put(c, ns[n], &k, NULL, 16, 0, buf, MIB), 0);
		}
		assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
		assert_int_equal(kvc_stats(c, &st), 0);
		if (n == 0)
			raw = tier(&st, "ssd")->used_bytes;
		else
			packed = tier(&st, "ssd")->used_bytes - raw;
	}
	assert_int_equal(raw, 6 * MIB);
	assert_true(packed < raw * 3 / 4);
	printf("figure: shuffle+zstd stored 6 MiB of bf16-like chunks in %.2f MiB\n",
	       (double)packed / MIB);
	for (uint64_t i = 0; i < 6; i++) {	/* and they come back exact */
		struct kvc_key k = key_of(i);
		size_t n;

		assert_int_equal(kvc_evict(c, ns[1], &k, 1, NULL), 1);
		assert_int_equal(kvc_get(c, ns[1], &k, got, MIB, &n), 0);
		fill_bf16(buf, MIB, i);
		assert_memory_equal(got, buf, MIB);
	}
	kvc_close(c);
	free(buf);
	free(got);
	assert_int_equal(kvt_stop(&d), 0);
}

/* After flush --tier dram, kill -9: everything flushed comes back. */
static void test_kill9_restart(void **state)
{
	struct kvc_flush_result fr;
	struct kvt_daemon d, d2;
	struct kvc_stats st;
	struct kvc *c;
	uint32_t ns, ns2;

	fresh_dir();
	start(&d, NULL, NULL);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "other", &ns2), 0);
	assert_int_equal(kvc_ns_register(c, "restart", &ns), 0);
	put_range(c, ns, 0, 20, 256 << 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	kvc_close(c);
	kvt_kill(&d);
	kvt_cleanup(&d);

	start(&d2, NULL, NULL);
	assert_int_equal(kvc_connect(d2.sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "ssd")->chunks, 20);
	/* The namespace keeps its id across the restart. */
	assert_int_equal(kvc_ns_register(c, "restart", &ns2), 0);
	assert_int_equal(ns2, ns);
	assert_int_equal(check_range(c, ns, 0, 20, 256 << 10), 20);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d2), 0);
}

/* SIGTERM writes DRAM back: the restart is warm without a flush. */
static void test_sigterm_warm(void **state)
{
	struct kvt_daemon d, d2;
	struct kvc_stats st;
	struct kvc *c;
	uint32_t ns;

	fresh_dir();
	start(&d, NULL, NULL);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "warm", &ns), 0);
	put_range(c, ns, 0, 6, 512 << 10);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);

	start(&d2, NULL, NULL);
	assert_int_equal(kvc_connect(d2.sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "ssd")->chunks, 6);
	assert_int_equal(kvc_ns_register(c, "warm", &ns), 0);
	assert_int_equal(check_range(c, ns, 0, 6, 512 << 10), 6);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d2), 0);
}

/* Flip a byte inside each of several chunks on the disk: all detected. */
static void test_corrupt_data(void **state)
{
	struct kvc_flush_result fr;
	struct kvt_daemon d, d2;
	struct kvc_stats st;
	uint64_t offs[16];
	struct kvc *c;
	uint32_t ns;
	char path[300];
	int fd;

	fresh_dir();
	start(&d, NULL, NULL);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "corrupt", &ns), 0);
	put_range(c, ns, 0, 16, 64 << 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	for (uint64_t i = 0; i < 16; i++) {
		struct kvc_key k = key_of(i);
		struct kvc_entry e;

		assert_int_equal(kvc_evict(c, ns, &k, 1, NULL), 1);	/* DRAM copy */
		assert_int_equal(kvc_inspect(c, ns, &k, &e), 0);
		assert_int_equal(e.tier, KVC_TIER_SSD);
		offs[i] = e.offset;
	}
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);

	snprintf(path, sizeof(path), "%s/data.0", ssd_dir);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (int i = 0; i < 16; i += 2) {	/* every other chunk */
		off_t at = (off_t)(offs[i] + kvt_mix((uint64_t)i) % (64 << 10));
		unsigned char b;

		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x10;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);

	start(&d2, NULL, NULL);
	assert_int_equal(kvc_connect(d2.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "corrupt", &ns), 0);
	assert_int_equal(check_range(c, ns, 0, 16, 64 << 10), 8);
	for (uint64_t i = 0; i < 16; i += 2) {	/* a miss now, and stays one */
		struct kvc_key k = key_of(i);

		assert_int_equal(kvc_lookup(c, ns, &k, 1, NULL), 0);
	}
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.checksum_failures, 8);
	assert_true(kvt_log_has(&d2, "checksum mismatch"));
	kvc_close(c);
	assert_int_equal(kvt_stop(&d2), 0);
}

/* Garbage in the LMDB file: the daemon starts anyway, never serves wrong. */
static void test_corrupt_index(void **state)
{
	struct kvc_flush_result fr;
	struct kvt_daemon d, d2;
	struct kvc *c;
	uint32_t ns;
	char path[300];
	struct stat sb;
	int fd;

	fresh_dir();
	start(&d, NULL, NULL);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "index", &ns), 0);
	put_range(c, ns, 0, 12, 128 << 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);

	snprintf(path, sizeof(path), "%s/index/data.mdb", ssd_dir);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	for (int i = 0; i < 64; i++) {
		off_t at = (off_t)(kvt_mix((uint64_t)i + 77) % (uint64_t)sb.st_size);
		unsigned char b = (unsigned char)kvt_mix((uint64_t)i);

		assert_int_equal(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);

	start(&d2, NULL, NULL);
	assert_int_equal(kvc_connect(d2.sock, &c), 0);
	if (kvc_ns_register(c, "index", &ns) == 0)
		check_range(c, ns, 0, 12, 128 << 10);	/* exact or miss */
	/* and it still takes new chunks */
	assert_int_equal(kvc_ns_register(c, "index-after", &ns), 0);
	put_range(c, ns, 100, 104, 128 << 10);
	assert_int_equal(check_range(c, ns, 100, 104, 128 << 10), 4);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d2), 0);
}

/*
 * Fault injection on the slow paths (TESTING.md plan 9): the N-th I/O
 * request, index commit or arena allocation fails, N = 1..3. Every chunk
 * is then exact or a miss, the failure is logged, and the daemon still
 * shuts down cleanly (under ASan: without a leak).
 */
static void test_faults(void **state)
{
	static const char *const points[] = { "io", "meta", "arena" };
	static const char *const logged[] = { "failed", "index commit", NULL };

	for (int p = 0; p < 3; p++) {
		for (int n = 1; n <= 3; n++) {
			struct kvt_daemon d;
			struct kvc *c;
			uint32_t ns;
			char spec[32];
			unsigned exact;

			fresh_dir();
			snprintf(spec, sizeof(spec), "%s:%d", points[p], n);
			setenv("KV_FAULT", spec, 1);
			start(&d, NULL, NULL);
			unsetenv("KV_FAULT");
			assert_int_equal(kvc_connect(d.sock, &c), 0);
			assert_int_equal(kvc_ns_register(c, "faults", &ns), 0);
			for (uint64_t i = 0; i < 16; i++) {	/* a failed put is fine */
				struct kvc_key k = key_of(i);
				void *buf = malloc(MIB);

				fill(buf, MIB, i);
				kvc_put(c, ns, &k, NULL, 16, 0, buf, MIB);
				free(buf);
			}
			exact = check_range(c, ns, 0, 16, MIB);
			assert_true(exact >= 8);
			if (logged[p])
				assert_true(kvt_log_has(&d, logged[p]));
			kvc_close(c);
			assert_int_equal(kvt_stop(&d), 0);
		}
	}
}

/* Chunks the SSD cannot take: a flush still ends, and says so. */
static void test_flush_refused(void **state)
{
	const char *args[] = { "--dram-bytes", "8M", "--ssd-dir", ssd_dir,
			       "--ssd-bytes", "1M", "--log", "warn", NULL };
	struct kvc_flush_result fr;
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;

	fresh_dir();
	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "big", &ns), 0);
	put_range(c, ns, 0, 2, 2 * MIB);	/* each larger than the SSD */
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), -KVC_EREFUSED);
	assert_int_equal(fr.chunks, 0);
	assert_int_equal(fr.skipped, 2);
	assert_int_equal(fr.why, -KVC_ETOOBIG);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), -KVC_EREFUSED);	/* again */
	assert_int_equal(fr.skipped, 2);
	assert_int_equal(check_range(c, ns, 0, 2, 2 * MIB), 2);	/* still in DRAM */
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/* io_uring refused: pread/pwrite, said once in the log, same results. */
static void test_uring_refused(void **state)
{
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;

	fresh_dir();
	setenv("KV_FAULT", "uring:1", 1);
	start(&d, NULL, NULL);
	unsetenv("KV_FAULT");
	assert_true(kvt_log_has(&d, "io_uring refused"));
	assert_true(kvt_log_has(&d, "pread/pwrite"));
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "sync", &ns), 0);
	put_range(c, ns, 0, 24, MIB);
	assert_int_equal(check_range(c, ns, 0, 24, MIB), 24);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/* Short transfers from the device are finished, not taken as data. */
static void test_short_io(void **state)
{
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;

	fresh_dir();
	setenv("KV_FAULT", "short:2", 1);	/* one write request cut in half */
	start(&d, NULL, NULL);
	unsetenv("KV_FAULT");
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "short", &ns), 0);
	put_range(c, ns, 0, 24, MIB);
	assert_int_equal(check_range(c, ns, 0, 24, MIB), 24);
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/*
 * A crash in the middle of write-backs that tears the write under way and
 * garbles every one not yet committed: after the restart, everything
 * flushed before is there, and nothing is wrong.
 */
static void test_torn_crash(void **state)
{
	struct kvc_flush_result fr;
	struct kvt_daemon d, d2;
	struct kvc *c;
	uint32_t ns;
	void *buf = malloc(MIB);

	fresh_dir();
	setenv("KV_FAULT", "crash:14", 1);
	start(&d, NULL, NULL);
	unsetenv("KV_FAULT");
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "torn", &ns), 0);
	put_range(c, ns, 0, 10, MIB);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	assert_true(fr.chunks <= 10);	/* the rest were written already */
	for (uint64_t i = 10; i < 30; i++) {	/* until it dies */
		struct kvc_key k = key_of(i);

		fill(buf, MIB, i);
		if (kvc_put(c, ns, &k, NULL, 16, 0, buf, MIB))
			break;
	}
	kvc_close(c);
	for (int i = 0; i < 500 && kvt_alive(&d); i++)
		usleep(10000);
	assert_false(kvt_alive(&d));
	assert_true(kvt_log_has(&d, "KV_FAULT_CRASH"));
	kvt_cleanup(&d);

	start(&d2, NULL, NULL);
	assert_int_equal(kvc_connect(d2.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "torn", &ns), 0);
	assert_int_equal(check_range(c, ns, 0, 10, MIB), 10);
	check_range(c, ns, 10, 30, MIB);	/* exact or miss */
	kvc_close(c);
	free(buf);
	assert_int_equal(kvt_stop(&d2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demote_promote),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_codec_per_ns),
		cmocka_unit_test(test_kill9_restart),
		cmocka_unit_test(test_sigterm_warm),
		cmocka_unit_test(test_corrupt_data),
		cmocka_unit_test(test_corrupt_index),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_flush_refused),
		cmocka_unit_test(test_uring_refused),
		cmocka_unit_test(test_short_io),
		cmocka_unit_test(test_torn_crash),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
