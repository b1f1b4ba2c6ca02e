/*
 * issue_11_ssd.c - issue 11, "the SSD tier tells the truth", and its
 * exclusive --ssd-dir:
 *
 *   - an ssd_bytes the filesystem cannot hold is refused, and the failed
 *     start removes what it made; a restart of an existing tier that cannot
 *     grow is refused and keeps its data (root: a 64 MiB loop filesystem);
 *   - a filesystem that fills up under the index: flush says how many
 *     chunks are not durable, and a restart finds exactly the rest (root);
 *   - refused write-backs are counted, so are chunks lost after them, and
 *     `kvctl flush` exits non-zero and says why;
 *   - `flush --drop --tier T` drops exactly tier T's copies;
 *   - a short or missing data file is found at start (a counter, one log
 *     line), not as checksum failures on read;
 *   - a second daemon on the same directory refuses to start, naming the
 *     first's pid, while the first keeps serving exact bytes.
 *
 * Cases that need root (or a loop device) skip with the reason otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <inttypes.h>

#include "tests/lib/tmpdir.h"
#include "tests/regress/issue_11.h"

static struct kvt_daemon dm[2];
static struct i11_loopfs fs;
static char ssd_dir[300];

static int setup(void **state)
{
	memset(dm, 0, sizeof(dm));
	memset(&fs, 0, sizeof(fs));
	return kvt_tmpdir(ssd_dir, sizeof(ssd_dir), NULL, "kvt-i11ssd-");
}

/* Whatever a case left behind goes, failed or not. */
static int teardown(void **state)
{
	for (int i = 0; i < 2; i++) {
		kvt_kill(&dm[i]);
		kvt_cleanup(&dm[i]);
	}
	i11_loopfs_drop(&fs);
	return kvt_rmtree(ssd_dir) == 0 ? 0 : -1;
}

static void need_loopfs(unsigned mib)
{
	char why[128];

	if (i11_loopfs_make(&fs, mib, why, sizeof(why))) {
		print_message("skipped: %s\n", why);
		skip();
	}
}

static void start(struct kvt_daemon *d, const char *dir, const char *dram,
		  const char *ssd)
{
	const char *args[] = { "--dram-bytes", dram, "--ssd-dir", dir,
			       "--ssd-bytes", ssd, "--log", "info", NULL };

	assert_int_equal(kvt_start(d, args), 0);
}

static const struct kvc_tier_stats *tier(const struct kvc_stats *st, const char *name)
{
	for (unsigned i = 0; i < st->n_tiers; i++)
		if (!strcmp(st->tiers[i].name, name))
			return &st->tiers[i];
	fail_msg("no tier %s", name);
	return NULL;
}

static bool has_data_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while ((e = readdir(d)))
		found |= !strncmp(e->d_name, "data.", 5);
	closedir(d);
	return found;
}

/*
 * ssd_bytes of 1 GiB on a 64 MiB filesystem. Before: a restart of an
 * existing tier with it was accepted (a failed fallocate became a sparse
 * file, write-backs failed with ENOSPC, `flush` said nothing and chunks
 * were lost), and a fresh start failed leaving a 1 GiB file that filled
 * the disk. Now both are refused at start: the existing tier keeps its
 * data, the fresh start leaves nothing behind.
 */
static void test_too_big_for_fs(void **state)
{
	char dir[400], log[400], sock[400];
	const char *args[] = { "--socket", sock, "--dram-bytes", "8M", "--hbm-bytes", "0",
			       "--ssd-dir", dir, "--ssd-bytes", "1G", "--log", "info",
			       NULL };
	struct kvc_flush_result fr;
	uint64_t free0;
	struct kvc *c;
	uint32_t ns;
	int rc;

	need_loopfs(64);
	snprintf(dir, sizeof(dir), "%s/ssd", fs.mnt);
	snprintf(log, sizeof(log), "%s/big.log", fs.dir);
	snprintf(sock, sizeof(sock), "%s/big.sock", fs.dir);
	free0 = i11_free(fs.mnt);

	/* A tier that fits, with chunks; then a restart asking for 1 GiB. */
	start(&dm[0], dir, "8M", "16M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "fits", &ns), 0);
	assert_int_equal(i11_put(c, ns, 2, 0, 10, MIB), 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
	rc = i11_run_daemon(args, log, 5000, NULL);
	if (rc == -1) {
		/* Accepted (the old daemon): measure what that costs. */
		unsigned stored, exact, wrong;

		start(&dm[0], dir, "8M", "1G");
		assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
		assert_int_equal(kvc_ns_register(c, "big", &ns), 0);
		stored = i11_put(c, ns, 1, 0, 200, 256 << 10);
		rc = kvc_flush(c, KVC_TIER_DRAM, 0, &fr);
		kvc_close(c);
		kvt_kill(&dm[0]);
		kvt_cleanup(&dm[0]);
		start(&dm[0], dir, "8M", "1G");
		assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
		assert_int_equal(kvc_ns_register(c, "big", &ns), 0);
		exact = i11_check(c, ns, 1, 0, 200, 256 << 10, &wrong);
		kvc_close(c);
		printf("figure: ssd_bytes 1G on a 64M filesystem accepted: flush returned %d "
		       "(%" PRIu64 " refused), %u of %u committed chunks lost, %u wrong\n",
		       rc, fr.skipped, stored - exact, stored, wrong);
		fail_msg("an ssd_bytes of 1 GiB was accepted on a 64 MiB filesystem");
	}
	if (rc <= 0 || !i11_file_has(log, "cannot hold")) {
		i11_dump(log);
		fail_msg("kvstored exited %d without refusing the size", rc);
	}
	/* Refused, and the tier it had is untouched. */
	start(&dm[0], dir, "8M", "16M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "fits", &ns), 0);
	assert_int_equal(i11_check(c, ns, 2, 0, 10, MIB, NULL), 10);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);

	/* A fresh directory: refused, and nothing is left behind. */
	snprintf(dir, sizeof(dir), "%s/fresh", fs.mnt);
	free0 = i11_free(fs.mnt);
	rc = i11_run_daemon(args, log, 5000, NULL);
	if (rc <= 0 || !i11_file_has(log, "cannot hold")) {
		i11_dump(log);
		fail_msg("kvstored exited %d without refusing the size", rc);
	}
	if (has_data_files(dir) || i11_free(fs.mnt) + MIB < free0) {
		i11_dump(log);
		fail_msg("the failed start left data files behind (%llu bytes free, %llu before)",
			 (unsigned long long)i11_free(fs.mnt), (unsigned long long)free0);
	}
	printf("figure: ssd_bytes 1G on a 64M filesystem: start refused (exit %d), "
	       "0 bytes left behind, the existing tier's 10 chunks kept\n", rc);
}

/*
 * The filesystem fills up after the start (the data files are
 * preallocated, the index is not): write-backs whose index records cannot
 * be written fail. `flush` reports exactly the chunks that are not durable,
 * the stats count the failures, and after a kill -9 the restart finds
 * exactly the others.
 */
static void test_full_fs_flush(void **state)
{
	const unsigned n = 400;
	struct kvc_flush_result fr;
	struct kvc_stats st;
	char dir[400];
	unsigned exact, wrong;
	struct kvc *c;
	uint32_t ns;
	int rc;

	need_loopfs(64);
	snprintf(dir, sizeof(dir), "%s/ssd", fs.mnt);
	start(&dm[0], dir, "16M", "16M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "full", &ns), 0);
	assert_int_equal(i11_put(c, ns, 3, 0, n / 4, 16 << 10), n / 4);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	i11_fill_fs(fs.mnt);
	assert_int_equal(i11_put(c, ns, 3, n / 4, n, 16 << 10), n - n / 4);
	rc = kvc_flush(c, KVC_TIER_DRAM, 0, &fr);
	assert_int_equal(kvc_stats(c, &st), 0);
	printf("figure: full filesystem, %u chunks put: flush returned %d, %" PRIu64
	       " refused (%s), writeback_failures %" PRIu64 "\n", n, rc, fr.skipped,
	       fr.why ? kvc_strerror(fr.why) : "-", st.writeback_failures);
	/* The index could not take them all: the flush must say so (LMDB
	 * says EIO for a write the full disk cut short). */
	if (rc != -KVC_EREFUSED)
		kvt_dump_log(&dm[0]);
	assert_int_equal(rc, -KVC_EREFUSED);
	assert_true(fr.skipped > 0 && fr.skipped <= n - n / 4);
	assert_true(fr.why == -ENOSPC || fr.why == -EIO);
	assert_true(st.writeback_failures >= fr.skipped);
	assert_int_equal(tier(&st, "ssd")->chunks, n - fr.skipped);
	kvc_close(c);
	kvt_kill(&dm[0]);
	kvt_cleanup(&dm[0]);
	i11_unfill_fs(fs.mnt);

	/* What the flush called durable is there, byte for byte. */
	start(&dm[0], dir, "16M", "16M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "full", &ns), 0);
	exact = i11_check(c, ns, 3, 0, n, 16 << 10, &wrong);
	printf("figure: after kill -9: %u of %u exact, %u wrong, %" PRIu64 " reported lost\n",
	       exact, n, wrong, fr.skipped);
	assert_int_equal(wrong, 0);
	assert_int_equal(exact, n - fr.skipped);
	/* With room again, a flush makes everything durable. */
	assert_int_equal(i11_put(c, ns, 3, 0, n, 16 << 10), fr.skipped);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	assert_int_equal(fr.skipped, 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
}

/*
 * Write-backs the SSD refuses (chunks larger than it): counted, and so are
 * the chunks that then leave DRAM with no copy; `kvctl flush` exits 2 and
 * says how many and why.
 */
static void test_refused_counted(void **state)
{
	struct kvc_flush_result fr;
	struct kvc_stats st;
	struct kvc_key keys[6];
	char out[4096];
	struct kvc *c;
	uint32_t ns;
	int rc, present;

	start(&dm[0], ssd_dir, "8M", "1M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "big", &ns), 0);
	assert_int_equal(i11_put(c, ns, 4, 0, 2, 2 * MIB), 2);	/* each larger than the SSD */
	rc = kvc_flush(c, KVC_TIER_DRAM, 0, &fr);
	assert_int_equal(rc, -KVC_EREFUSED);
	assert_int_equal(fr.skipped, 2);
	assert_int_equal(fr.why, -KVC_ETOOBIG);

	rc = i11_kvctl(&dm[0], "flush --tier dram", out, sizeof(out));
	if (rc != 2 || !strstr(out, "refused 2 chunks")) {
		print_message("kvctl flush exited %d:\n%s", rc, out);
		fail_msg("kvctl flush does not report the refused chunks");
	}
	rc = i11_kvctl(&dm[0], "flush --json", out, sizeof(out));
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "\"refused\": 2"));

	/* Four more: DRAM (8 MiB) makes room by dropping refused chunks. */
	assert_int_equal(i11_put(c, ns, 4, 2, 6, 2 * MIB), 4);
	for (int i = 0; i < 6; i++)
		keys[i] = i11_key((uint64_t)i);
	present = 0;
	for (int i = 0; i < 6; i++)
		present += kvc_lookup(c, ns, &keys[i], 1, NULL);
	assert_int_equal(kvc_stats(c, &st), 0);
	printf("figure: write-backs refused %" PRIu64 ", chunks lost after them %" PRIu64
	       " (6 put, %d still cached)\n", st.writeback_failures, st.writeback_lost,
	       present);
	assert_true(st.writeback_failures >= 6);
	assert_int_equal(st.writeback_lost, 6 - present);
	assert_true(st.writeback_lost >= 2);
	rc = i11_kvctl(&dm[0], "stats --json", out, sizeof(out));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"writeback_lost\""));
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
}

static void lookup_tiers(struct kvc *c, uint32_t ns, unsigned n, uint8_t *tiers)
{
	struct kvc_key keys[8];

	for (unsigned i = 0; i < n; i++)
		keys[i] = i11_key(i);
	kvc_lookup(c, ns, keys, n, tiers);
}

/*
 * `flush --drop --tier T` drops exactly T's copies. Before: --tier dram
 * also deleted the SSD copies, and --tier ssd dropped nothing that was
 * also in DRAM.
 */
static void test_drop_tier(void **state)
{
	struct kvc_flush_result fr;
	struct kvc_stats st;
	uint8_t t[8];
	struct kvc *c;
	uint32_t ns;

	start(&dm[0], ssd_dir, "8M", "64M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	ns = i11_ns_with(c, "drop", 5, 4, MIB);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);	/* in both */

	/* DRAM copies go; the SSD copies stay and come back exact. */
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, KVC_FLUSH_DROP, &fr), 0);
	assert_int_equal(fr.chunks, 4);
	lookup_tiers(c, ns, 4, t);
	for (int i = 0; i < 4; i++)
		assert_int_equal(t[i], KVC_TIER_SSD);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "dram")->chunks, 0);
	assert_int_equal(tier(&st, "ssd")->chunks, 4);
	assert_int_equal(i11_check(c, ns, 5, 0, 4, MIB, NULL), 4);	/* promoted: both */

	/* SSD copies go; the DRAM copies stay, and so does a chunk only in
	 * DRAM; a chunk only on SSD leaves the cache. */
	assert_int_equal(i11_put(c, ns, 5, 4, 5, MIB), 1);	/* 4: written back too */
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	{
		struct kvc_key k0 = i11_key(0);

		assert_int_equal(kvc_evict(c, ns, &k0, 1, NULL), 1);	/* 0: SSD only */
	}
	assert_int_equal(kvc_flush(c, KVC_TIER_SSD, KVC_FLUSH_DROP, &fr), 0);
	assert_int_equal(fr.chunks, 5);
	lookup_tiers(c, ns, 5, t);
	assert_int_equal(t[0], KVC_TIER_NONE);
	for (int i = 1; i < 5; i++)
		assert_int_equal(t[i], KVC_TIER_DRAM);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "ssd")->chunks, 0);
	assert_int_equal(tier(&st, "dram")->chunks, 4);
	assert_int_equal(i11_check(c, ns, 5, 1, 5, MIB, NULL), 4);
	kvc_close(c);

	/* The SSD records went too: after kill -9 nothing comes back. */
	kvt_kill(&dm[0]);
	kvt_cleanup(&dm[0]);
	start(&dm[0], ssd_dir, "8M", "64M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "ssd")->chunks, 0);
	assert_int_equal(kvc_ns_register(c, "drop", &ns), 0);
	assert_int_equal(i11_put(c, ns, 5, 0, 2, MIB), 2);
	/* No tier: everything unpinned goes. */
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	assert_int_equal(kvc_flush(c, KVC_TIER_NONE, KVC_FLUSH_DROP, &fr), 0);
	assert_int_equal(fr.chunks, 2);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(tier(&st, "ssd")->chunks + tier(&st, "dram")->chunks, 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
}

/*
 * A data file cut short, then one missing: the records pointing into the
 * lost bytes are forgotten at start (one WARN line, a counter), not found
 * later as checksum failures.
 */
static void test_missing_file(void **state)
{
	struct kvc_flush_result fr;
	struct kvc_stats st;
	uint64_t offs[8];
	unsigned beyond = 0;
	char path[400];
	struct kvc *c;
	uint32_t ns;

	start(&dm[0], ssd_dir, "8M", "16M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	ns = i11_ns_with(c, "gone", 6, 8, MIB);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	for (uint64_t i = 0; i < 8; i++) {
		struct kvc_key k = i11_key(i);
		struct kvc_entry e;

		assert_int_equal(kvc_inspect(c, ns, &k, &e), 0);
		if (e.tier == KVC_TIER_DRAM) {	/* demote it: the SSD copy shows */
			assert_int_equal(kvc_evict(c, ns, &k, 1, NULL), 1);
			assert_int_equal(kvc_inspect(c, ns, &k, &e), 0);
		}
		assert_int_equal(e.tier, KVC_TIER_SSD);
		offs[i] = e.offset;
		beyond += offs[i] + MIB > 4 * MIB;
	}
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
	assert_true(beyond > 0 && beyond < 8);

	snprintf(path, sizeof(path), "%s/data.0", ssd_dir);
	assert_int_equal(truncate(path, 4 * MIB), 0);
	start(&dm[0], ssd_dir, "8M", "16M");
	assert_true(kvt_log_has(&dm[0], "their data file was missing or short"));
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.ssd_records_missing, beyond);
	assert_int_equal(tier(&st, "ssd")->chunks, 8 - beyond);
	assert_int_equal(kvc_ns_register(c, "gone", &ns), 0);
	assert_int_equal(i11_check(c, ns, 6, 0, 8, MIB, NULL), 8 - beyond);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.checksum_failures, 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);

	/* Now without the file: everything in it is forgotten at start (the
	 * 8 - beyond chunks read above kept their SSD copies). */
	assert_int_equal(unlink(path), 0);
	start(&dm[0], ssd_dir, "8M", "16M");
	assert_true(kvt_log_has(&dm[0], "first: data.0, missing"));
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.ssd_records_missing, 8 - beyond);
	assert_int_equal(tier(&st, "ssd")->chunks, 0);
	assert_int_equal(kvc_ns_register(c, "gone", &ns), 0);
	assert_int_equal(i11_check(c, ns, 6, 0, 8, MIB, NULL), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.checksum_failures, 0);
	printf("figure: short data file: %u of 8 records forgotten at start, missing file: "
	       "%u; checksum failures on read: 0\n", beyond, 8 - beyond);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);
}

/*
 * Two daemons on one --ssd-dir. Before: both started and returned each
 * other's bytes. Now the second exits non-zero within a second, naming the
 * first's pid, and the first keeps serving exact bytes.
 */
static void test_lock(void **state)
{
	char log[400], sock[400], pid[32];
	const char *args[] = { "--socket", sock, "--dram-bytes", "8M", "--hbm-bytes", "0",
			       "--ssd-dir", ssd_dir, "--ssd-bytes", "64M", NULL };
	struct kvc_flush_result fr;
	struct kvc *c;
	double secs = 0;
	uint32_t ns;
	int rc;

	start(&dm[0], ssd_dir, "8M", "64M");
	assert_int_equal(kvc_connect(dm[0].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "first", &ns), 0);
	assert_int_equal(i11_put(c, ns, 7, 0, 16, 256 << 10), 16);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);

	snprintf(log, sizeof(log), "%s/second.log", dm[0].dir);
	snprintf(sock, sizeof(sock), "%s/second.sock", dm[0].dir);
	rc = i11_run_daemon(args, log, 5000, &secs);
	if (rc <= 0) {
		i11_dump(log);
		fail_msg("a second kvstored on the same --ssd-dir %s (exit %d)",
			 rc < 0 ? "kept running" : "exited 0", rc);
	}
	snprintf(pid, sizeof(pid), "pid %d", (int)dm[0].pid);
	if (!i11_file_has(log, pid)) {
		i11_dump(log);
		fail_msg("the second daemon's log does not name the first (%s)", pid);
	}
	printf("figure: second daemon on the same --ssd-dir: exit %d after %.3f s\n", rc, secs);
	assert_true(secs < 1.0);

	/* The first is unharmed: it serves, and every byte is right. */
	assert_true(kvt_alive(&dm[0]));
	assert_int_equal(i11_check(c, ns, 7, 0, 16, 256 << 10, NULL), 16);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[0]), 0);

	/* Once it is gone, the directory is free: a new daemon finds it all. */
	start(&dm[1], ssd_dir, "8M", "64M");
	assert_int_equal(kvc_connect(dm[1].sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "first", &ns), 0);
	assert_int_equal(i11_check(c, ns, 7, 0, 16, 256 << 10, NULL), 16);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm[1]), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_too_big_for_fs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_fs_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_tier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
