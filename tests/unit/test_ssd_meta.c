/*
 * test_ssd_meta.c - unit tests for the SSD tier's LMDB index
 * (tiers/ssd_meta.c): its interface.
 *
 * Round trips across close and reopen, key order, batch order, clearing,
 * map growth and its limit, a load stopped early, the KV_FAULT_META point,
 * the geometry, salted seeds, and namespaces and forgetting one. What the
 * index does with files it did not write is in test_ssd_meta_disk.c and
 * test_lmdb_check.c; the helpers all three share are in ssd_meta_fx.c.
 * Each test works in its own scratch directory and removes it. Where a
 * test writes into the environment behind the module's back it opens it
 * with LMDB directly, and only while the module has it closed (one process
 * must not open an environment twice).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "lib/util.h"
#include "tiers/ssd_meta.h"
#include "tests/unit/ssd_meta_fx.h"

static bool has_key(const struct items *it, uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct item k = { .ns = ns, .key = { .lo = lo, .hi = hi } };

	for (size_t i = 0; i < it->n; i++)
		if (!item_cmp(&it->v[i], &k))
			return true;
	return false;
}

/* ---- tests ------------------------------------------------------------ */

static void test_open_args(void **state)
{
	struct kv_ssd_meta *sentinel = (struct kv_ssd_meta *)&not_a_handle;
	struct kv_ssd_meta *m = sentinel;
	struct kv_ssd_meta_conf conf = { 0 };
	char dir[64];

	assert_int_equal(kv_ssd_meta_open(NULL, &conf, NULL), -EINVAL);
	assert_int_equal(kv_ssd_meta_open(&m, NULL, NULL), -EINVAL);
	assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -EINVAL);	/* no dir */
	conf.dir = "";
	assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -EINVAL);
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;
	conf.map_bytes = 2 * MIB;
	conf.max_map_bytes = 1 * MIB;
	assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -EINVAL);
	conf.dir = "/proc/self/no/such/dir";
	conf.map_bytes = 0;
	conf.max_map_bytes = 0;
	assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -ENOENT);
	assert_ptr_equal(m, sentinel);

	/* a small limit alone clamps the default map instead of failing */
	conf.dir = dir;
	conf.max_map_bytes = 1 * MIB;
	m = open_conf(&conf, NULL);
	assert_int_equal(kv_ssd_meta_count(m), 0);
	assert_int_equal(kv_ssd_meta_apply(m, NULL, 0), 0);
	assert_int_equal(kv_ssd_meta_apply(m, NULL, 1), -EINVAL);
	kv_ssd_meta_close(m);
	kv_ssd_meta_close(NULL);
	rmtree(dir);
}

static void test_seal(void **state)
{
	struct kv_key k1 = { .lo = 1, .hi = 2 };
	struct kv_key k2 = { .lo = 2, .hi = 1 };
	struct kv_ssd_rec r;
	unsigned char *p = (unsigned char *)&r;

	rng_state = 1;
	assert_int_equal(kv_ssd_seed(1, 7, &k1), kv_ssd_seed(1, 7, &k1));
	assert_int_not_equal(kv_ssd_seed(1, 7, &k1), kv_ssd_seed(1, 8, &k1));
	assert_int_not_equal(kv_ssd_seed(1, 7, &k1), kv_ssd_seed(1, 7, &k2));
	/* the same id and key under another name's salt: another seed, so a
	 * record that reaches another namespace fails its checksum */
	assert_int_not_equal(kv_ssd_seed(kv_ssd_salt("alpha"), 7, &k1),
			     kv_ssd_seed(kv_ssd_salt("beta"), 7, &k1));
	/* the salt is the NS_REGISTER reply's: XXH3-64 of the name */
	assert_int_equal(kv_ssd_salt("demo"), 0x07f72fb3af456330ull);

	r = make_rec();
	assert_false(kv_ssd_rec_valid(&r));	/* not sealed yet */
	kv_ssd_rec_seal(&r);
	assert_true(kv_ssd_rec_valid(&r));
	/* every single-bit flip anywhere in the record is caught */
	for (size_t i = 0; i < sizeof(r); i++)
		for (int b = 0; b < 8; b++) {
			p[i] ^= (unsigned char)(1u << b);
			assert_false(kv_ssd_rec_valid(&r));
			p[i] ^= (unsigned char)(1u << b);
		}
	assert_true(kv_ssd_rec_valid(&r));
	/* sealed but malformed */
	r.codec = 3;
	kv_ssd_rec_seal(&r);
	assert_false(kv_ssd_rec_valid(&r));
	r.codec = 2;
	r.reserved = 1;
	kv_ssd_rec_seal(&r);
	assert_false(kv_ssd_rec_valid(&r));
	r.reserved = 0;
	r.reserved2 = 1;
	kv_ssd_rec_seal(&r);
	assert_false(kv_ssd_rec_valid(&r));
	r.reserved2 = 0;
	r.magic ^= 1;
	kv_ssd_rec_seal(&r);
	assert_false(kv_ssd_rec_valid(&r));
}

static void test_round_trip(void **state)
{
	static const uint32_t nss[] = { 0, 1, 7, 0x10000, 0xffffffffu };
	struct kv_ssd_meta_conf conf = { .geom = geom0, .sync = true };
	struct kv_ssd_geom g = { 0 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	char dir[64];

	rng_state = 2;
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;
	m = open_conf(&conf, &g);
	assert_memory_equal(&g, &geom0, sizeof(g));
	put_random(m, &want, 1000, 100, nss, KV_ARRAY_SIZE(nss));
	assert_int_equal(kv_ssd_meta_count(m), 1000);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);

	/* another geometry asked for: the stored one comes back */
	conf.geom.bytes = 12345 * 4096;
	conf.geom.block = 512;
	memset(&g, 0, sizeof(g));
	m = open_conf(&conf, &g);
	assert_memory_equal(&g, &geom0, sizeof(g));
	assert_int_equal(kv_ssd_meta_count(m), 1000);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);

	free(want.v);
	free(got.v);
	rmtree(dir);
}

static void test_key_order(void **state)
{
	/* byte order matters: ns 256 sorts after ns 2 only if big-endian */
	static const struct item order[] = {
		{ .ns = 0, .key = { .lo = UINT64_MAX, .hi = UINT64_MAX } },
		{ .ns = 1, .key = { .lo = 0, .hi = 1 } },
		{ .ns = 1, .key = { .lo = 0, .hi = 0x100 } },
		{ .ns = 1, .key = { .lo = 0, .hi = UINT64_MAX } },
		{ .ns = 1, .key = { .lo = 1, .hi = 0 } },
		{ .ns = 1, .key = { .lo = 0x100, .hi = 0 } },
		{ .ns = 1, .key = { .lo = UINT64_MAX, .hi = 0 } },
		{ .ns = 2, .key = { .lo = 0, .hi = 0 } },
		{ .ns = 256, .key = { .lo = 0, .hi = 0 } },
		{ .ns = 0x01000000, .key = { .lo = 0, .hi = 0 } },
	};
	static const uint32_t nss[] = { 3, 300, 70000, 0x80000000u };
	struct kv_ssd_op ops[KV_ARRAY_SIZE(order)];
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	bool seen[KV_ARRAY_SIZE(nss)] = { false };
	char dir[64];

	rng_state = 3;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	/* applied in reverse, so insertion order cannot explain the walk */
	for (size_t i = 0; i < KV_ARRAY_SIZE(order); i++) {
		size_t j = KV_ARRAY_SIZE(order) - 1 - i;

		ops[i] = put_op(order[j].ns, order[j].key.lo, order[j].key.hi);
	}
	assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, KV_ARRAY_SIZE(order));
	for (size_t i = 0; i < got.n; i++) {
		assert_int_equal(got.v[i].ns, order[i].ns);
		assert_int_equal(got.v[i].key.lo, order[i].key.lo);
		assert_int_equal(got.v[i].key.hi, order[i].key.hi);
	}
	assert_int_equal(kv_ssd_meta_clear(m), 0);

	/* random keys in a few namespaces: each namespace is one run */
	put_random(m, &want, 500, 50, nss, KV_ARRAY_SIZE(nss));
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, 500);
	for (size_t i = 0; i < got.n; i++) {
		size_t s = 0;

		while (nss[s] != got.v[i].ns)
			s++;
		if (i && got.v[i].ns != got.v[i - 1].ns) {
			assert_true(got.v[i].ns > got.v[i - 1].ns);
			assert_false(seen[s]);	/* a namespace never comes back */
		}
		seen[s] = true;
		if (i)
			assert_true(item_cmp(&got.v[i - 1], &got.v[i]) < 0);
	}
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

static void test_batch_order(void **state)
{
	struct kv_ssd_op ops[8];
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	struct kv_ssd_rec last;
	char dir[64];

	rng_state = 4;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	ops[0] = put_op(1, 10, 0);	/* put then delete: absent */
	ops[1] = del_op(1, 10, 0);
	ops[2] = del_op(1, 20, 0);	/* delete then put: present */
	ops[3] = put_op(1, 20, 0);
	ops[4] = put_op(1, 30, 0);	/* put twice: the second wins */
	ops[5] = put_op(1, 30, 0);
	ops[6] = del_op(2, 99, 99);	/* never there: fine */
	ops[7] = del_op(1, 10, 0);	/* already gone in this batch: fine */
	assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
	assert_int_equal(kv_ssd_meta_count(m), 2);
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, 2);
	assert_int_equal(got.v[0].key.lo, 20);
	assert_memory_equal(&got.v[0].rec, &ops[3].rec, sizeof(ops[3].rec));
	assert_int_equal(got.v[1].key.lo, 30);
	assert_memory_equal(&got.v[1].rec, &ops[5].rec, sizeof(ops[5].rec));

	/* across batches, and a put that apply refuses to seal */
	last = ops[5].rec;
	ops[0] = del_op(1, 20, 0);
	ops[1] = put_op(1, 40, 0);
	ops[1].rec.magic = 0;
	assert_int_equal(kv_ssd_meta_apply(m, ops, 2), -EINVAL);
	assert_int_equal(kv_ssd_meta_count(m), 2);
	assert_int_equal(kv_ssd_meta_apply(m, ops, 1), 0);
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, 1);
	assert_memory_equal(&got.v[0].rec, &last, sizeof(last));
	kv_ssd_meta_close(m);
	free(got.v);
	rmtree(dir);
}

static void test_clear(void **state)
{
	static const uint32_t nss[] = { 5 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	char dir[64];

	rng_state = 5;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 300, 300, nss, 1);
	assert_int_equal(kv_ssd_meta_count(m), 300);
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	assert_int_equal(kv_ssd_meta_count(m), 0);
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, 0);
	kv_ssd_meta_close(m);

	m = open_dir(dir);	/* cleared for good, format kept */
	assert_int_equal(kv_ssd_meta_count(m), 0);
	want.n = 0;
	put_random(m, &want, 10, 10, nss, 1);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

static void test_map_growth(void **state)
{
	static const uint32_t nss[] = { 1, 2, 3 };
	struct kv_ssd_meta_conf conf = { .geom = geom0, .map_bytes = 256 * KIB };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	char path[PATH_MAX];
	struct stat sb;
	char dir[64];

	rng_state = 6;
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;
	m = open_conf(&conf, NULL);
	/* one batch that needs several doublings by itself */
	put_random(m, &want, 5000, 5000, nss, KV_ARRAY_SIZE(nss));
	/* then many small ones */
	put_random(m, &want, 10000, 250, nss, KV_ARRAY_SIZE(nss));
	assert_int_equal(kv_ssd_meta_count(m), 15000);
	kv_ssd_meta_close(m);

	index_path(path, sizeof(path), dir, "data.mdb");
	assert_int_equal(stat(path, &sb), 0);
	print_message("ssd_meta map growth: 15000 records, data.mdb %lld KiB from a 256 KiB map\n",
		      (long long)sb.st_size / 1024);
	assert_true((uint64_t)sb.st_size > 4 * 256 * KIB);	/* >= 3 doublings */

	/* reopened with the small map: LMDB maps at least the file */
	m = open_conf(&conf, NULL);
	assert_int_equal(kv_ssd_meta_count(m), 15000);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	put_random(m, &want, 5000, 1000, nss, KV_ARRAY_SIZE(nss));
	kv_ssd_meta_close(m);
	m = open_conf(&conf, NULL);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);

	/*
	 * Cleared: one transaction frees every page, so the free list holds
	 * an entry too large for a page (LMDB's overflow pages), which the
	 * structural check at open must walk and accept.
	 */
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	kv_ssd_meta_close(m);
	{
		MDB_env *env = env_direct(dir);
		MDB_txn *txn;
		MDB_stat st;

		assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		assert_int_equal(mdb_stat(txn, 0, &st), 0);	/* FREE_DBI */
		assert_true(st.ms_overflow_pages > 0);
		mdb_txn_abort(txn);
		mdb_env_close(env);
	}
	m = open_conf(&conf, NULL);
	assert_int_equal(kv_ssd_meta_count(m), 0);
	want.n = 0;
	put_random(m, &want, 1000, 1000, nss, KV_ARRAY_SIZE(nss));
	kv_ssd_meta_close(m);
	m = open_conf(&conf, NULL);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

static void test_growth_limit(void **state)
{
	static const uint32_t nss[] = { 9 };
	struct kv_ssd_meta_conf conf = {
		.geom = geom0, .map_bytes = 256 * KIB, .max_map_bytes = 1 * MIB,
	};
	struct kv_ssd_op ops[200];
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	char dir[64];
	size_t batches = 0;
	int rc;

	rng_state = 7;
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;

	/* a single batch larger than the limit: -ENOSPC, nothing applied */
	m = open_conf(&conf, NULL);
	put_random(m, &want, 10, 10, nss, 1);
	{
		size_t n = 20000;
		struct kv_ssd_op *big = calloc(n, sizeof(*big));

		assert_non_null(big);
		for (size_t i = 0; i < n; i++)
			big[i] = put_op(9, rnd(), rnd());
		big[0] = del_op(9, want.v[0].key.lo, want.v[0].key.hi);
		assert_int_equal(kv_ssd_meta_apply(m, big, n), -ENOSPC);
		free(big);
	}
	assert_int_equal(kv_ssd_meta_count(m), 10);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);

	/* batches until the limit */
	for (;;) {
		for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
			ops[i] = put_op(9, rnd(), rnd());
		rc = kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops));
		if (rc)
			break;
		for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
			items_add(&want, ops[i].ns, &ops[i].key, &ops[i].rec);
		batches++;
		assert_true(batches < 1000);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(batches > 2);
	print_message("ssd_meta growth limit: %zu records fit in 1 MiB\n", want.n);
	assert_int_equal(kv_ssd_meta_count(m), want.n);
	assert_int_equal(load_all(m, &got), 0);
	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
		assert_false(has_key(&got, ops[i].ns, ops[i].key.lo, ops[i].key.hi));
	check_same(&want, &got);
	kv_ssd_meta_close(m);

	m = open_conf(&conf, NULL);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

struct stop_ctx {
	size_t seen;
	size_t stop_at;
};

static int stop_early(void *arg, uint32_t ns, const struct kv_key *key,
		      const struct kv_ssd_rec *rec)
{
	struct stop_ctx *s = arg;

	return ++s->seen == s->stop_at ? 42 : 0;
}

static void test_load_stop(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct stop_ctx s = { .stop_at = 5 };
	struct items want = { 0 };
	struct kv_ssd_meta *m;
	uint64_t bad = 99;
	char dir[64];

	rng_state = 11;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 20, 20, nss, 1);
	assert_int_equal(kv_ssd_meta_load(m, stop_early, &s, &bad), 42);
	assert_int_equal(s.seen, 5);
	assert_int_equal(bad, 0);
	assert_int_equal(kv_ssd_meta_load(m, NULL, NULL, &bad), -EINVAL);
	kv_ssd_meta_close(m);
	free(want.v);
	rmtree(dir);
}

static void test_fault(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct kv_ssd_meta_conf conf = { .geom = geom0, .map_bytes = 256 * KIB };
	struct kv_ssd_op ops[3000];
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	char dir[64];

	rng_state = 12;
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;
	m = open_conf(&conf, NULL);
	put_random(m, &want, 10, 10, nss, 1);

	/* N = 1, 2, 3: the N-th apply fails whole, the ones before succeed */
	for (unsigned nth = 1; nth <= 3; nth++) {
		kv_fault_arm(KV_FAULT_META, nth);
		for (unsigned i = 1; i <= nth; i++) {
			ops[0] = put_op(1, rnd(), rnd());
			ops[1] = del_op(1, want.v[0].key.lo, want.v[0].key.hi);
			ops[2] = put_op(1, rnd(), rnd());
			if (i < nth) {
				assert_int_equal(kv_ssd_meta_apply(m, ops, 1), 0);
				items_add(&want, 1, &ops[0].key, &ops[0].rec);
				continue;
			}
			assert_int_equal(kv_ssd_meta_apply(m, ops, 3), -EIO);
			assert_int_equal(kv_ssd_meta_count(m), want.n);
			assert_int_equal(load_all(m, &got), 0);
			check_same(&want, &got);
		}
	}
	/* once per apply, even when the batch grows the map and is retried */
	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
		ops[i] = put_op(1, rnd(), rnd());
	kv_fault_arm(KV_FAULT_META, 2);
	assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
		items_add(&want, 1, &ops[i].key, &ops[i].rec);
	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
		ops[i] = put_op(1, rnd(), rnd());
	assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), -EIO);
	assert_int_equal(kv_ssd_meta_count(m), want.n);
	assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
		items_add(&want, 1, &ops[i].key, &ops[i].rec);
	kv_ssd_meta_close(m);

	m = open_conf(&conf, NULL);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	kv_fault_arm(KV_FAULT_META, 0);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

static void test_set_geom(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct kv_ssd_geom g2 = { .bytes = 1ull << 30, .block = 512, .file_bytes = 1ull << 28 };
	struct kv_ssd_meta_conf conf = { .geom = geom0 };
	struct kv_ssd_geom g = { 0 };
	struct items want = { 0 };
	struct kv_ssd_meta *m;
	struct fmt f;
	size_t chunks;
	char dir[64];

	rng_state = 15;
	tmpdir(dir, sizeof(dir));
	conf.dir = dir;
	m = open_conf(&conf, &g);
	put_random(m, &want, 20, 20, nss, 1);
	assert_int_equal(kv_ssd_meta_set_geom(m, NULL), -EINVAL);
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	assert_int_equal(kv_ssd_meta_set_geom(m, &g2), 0);
	kv_ssd_meta_close(m);

	assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
	assert_int_equal(f.magic, FMT_MAGIC);
	assert_int_equal(f.version, KV_SSD_FORMAT);
	assert_int_equal(chunks, 0);
	m = open_conf(&conf, &g);	/* conf still says geom0 */
	assert_memory_equal(&g, &g2, sizeof(g));
	kv_ssd_meta_close(m);
	free(want.v);
	rmtree(dir);
}

struct ns_seen {
	uint32_t id[16];
	uid_t uid[16];
	char name[16][256];
	size_t n;
	size_t stop_at;			/* 0: never */
};

static int ns_collect(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct ns_seen *s = arg;

	assert_true(s->n < 16);
	s->id[s->n] = id;
	s->uid[s->n] = uid;
	assert_true(strlen(name) < 256);
	strcpy(s->name[s->n], name);
	return ++s->n == s->stop_at ? 7 : 0;
}

static void test_namespaces(void **state)
{
	char longest[256];
	char too_long[257];
	struct ns_seen seen = { .n = 0 };
	struct kv_ssd_meta *m;
	unsigned char k[6] = { 'n', 's', 0, 0, 0, 9 };
	char dir[64];

	memset(longest, 'x', 255);
	longest[255] = '\0';
	memset(too_long, 'y', 256);
	too_long[256] = '\0';
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	assert_int_equal(kv_ssd_meta_ns_load(m, ns_collect, &seen), 0);
	assert_int_equal(seen.n, 0);
	assert_int_equal(kv_ssd_meta_ns_put(m, 1, 1000, ""), -EINVAL);
	assert_int_equal(kv_ssd_meta_ns_put(m, 1, 1000, NULL), -EINVAL);
	assert_int_equal(kv_ssd_meta_ns_put(m, 1, 1000, too_long), -EINVAL);
	assert_int_equal(kv_ssd_meta_ns_load(m, NULL, NULL), -EINVAL);
	/* out of order; id 256 sorts after 2 only big-endian */
	assert_int_equal(kv_ssd_meta_ns_put(m, 256, 0, "llama-3-8b/bf16/tp0"), 0);
	assert_int_equal(kv_ssd_meta_ns_put(m, 2, 1001, longest), 0);
	assert_int_equal(kv_ssd_meta_ns_put(m, 0, 1000, "a"), 0);
	assert_int_equal(kv_ssd_meta_ns_put(m, 2, 1002, "renamed"), 0);	/* replaces */
	/* namespaces are not chunks: clear keeps them */
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	assert_int_equal(kv_ssd_meta_count(m), 0);
	kv_ssd_meta_close(m);

	/* a damaged namespace record (a NUL in its name) and one too short */
	{
		unsigned char v[8 + 3] = { 0 };
		uint32_t len = 3;

		memcpy(v + 4, &len, 4);
		memcpy(v + 8, "a\0b", 3);
		direct_write(dir, "meta", k, 6, v, sizeof(v));
		k[5] = 10;
		direct_write(dir, "meta", k, 6, v, 7);
	}

	m = open_dir(dir);
	assert_int_equal(kv_ssd_meta_ns_load(m, ns_collect, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.id[0], 0);
	assert_int_equal(seen.uid[0], 1000);
	assert_string_equal(seen.name[0], "a");
	assert_int_equal(seen.id[1], 2);
	assert_int_equal(seen.uid[1], 1002);
	assert_string_equal(seen.name[1], "renamed");
	assert_int_equal(seen.id[2], 256);
	assert_int_equal(seen.uid[2], 0);
	assert_string_equal(seen.name[2], "llama-3-8b/bf16/tp0");
	kv_ssd_meta_close(m);

	/* the damaged ones are gone; the longest name survives a round trip */
	m = open_dir(dir);
	assert_int_equal(kv_ssd_meta_ns_put(m, 3, 5, longest), 0);
	seen.n = 0;
	seen.stop_at = 3;
	assert_int_equal(kv_ssd_meta_ns_load(m, ns_collect, &seen), 7);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.id[2], 3);
	assert_string_equal(seen.name[2], longest);
	seen.n = 0;
	seen.stop_at = 0;
	assert_int_equal(kv_ssd_meta_ns_load(m, ns_collect, &seen), 0);
	assert_int_equal(seen.n, 4);
	kv_ssd_meta_close(m);
	/* "meta" holds the format and the four namespaces, nothing else */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_stat st;
		struct fmt f;
		size_t chunks;

		assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
		assert_int_equal(f.version, KV_SSD_FORMAT);
		env = env_direct(dir);
		assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
		assert_int_equal(mdb_stat(txn, dbi, &st), 0);
		assert_int_equal(st.ms_entries, 5);
		mdb_txn_abort(txn);
		mdb_env_close(env);
	}
	rmtree(dir);
}

/* Forgetting a namespace deletes its records and its name, nothing else. */
static void test_ns_drop(void **state)
{
	static const uint32_t nss[] = { 1, 2, 3, 0x10002 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct ns_seen seen = { .n = 0 };
	struct kv_ssd_meta *m;
	size_t kept = 0;
	char dir[64];

	rng_state = 41;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(kv_ssd_meta_ns_put(m, nss[i], 1000, "n"), 0);
	put_random(m, &want, 600, 64, nss, 4);
	assert_int_equal(kv_ssd_meta_ns_drop(m, 2), 0);
	assert_int_equal(kv_ssd_meta_ns_drop(m, 2), 0);	/* again: nothing there */
	assert_int_equal(kv_ssd_meta_ns_drop(m, 77), 0);	/* never was */
	assert_int_equal(kv_ssd_meta_ns_drop(NULL, 2), -EINVAL);
	kv_ssd_meta_close(m);

	m = open_dir(dir);
	assert_int_equal(load_all(m, &got), 0);
	for (size_t i = 0; i < want.n; i++)
		if (want.v[i].ns != 2)
			want.v[kept++] = want.v[i];
	want.n = kept;
	assert_true(kept < 600 && kept > 300);
	check_same(&want, &got);
	assert_int_equal(kv_ssd_meta_ns_load(m, ns_collect, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.id[0], 1);
	assert_int_equal(seen.id[1], 3);
	assert_int_equal(seen.id[2], 0x10002);
	/* the fault point fails the whole transaction */
	kv_fault_arm(KV_FAULT_META, 1);
	assert_int_equal(kv_ssd_meta_ns_drop(m, 3), -EIO);
	assert_int_equal(load_all(m, &got), 0);
	assert_int_equal(got.n, kept);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_args),
		cmocka_unit_test(test_seal),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_key_order),
		cmocka_unit_test(test_batch_order),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_map_growth),
		cmocka_unit_test(test_growth_limit),
		cmocka_unit_test(test_load_stop),
		cmocka_unit_test(test_fault),
		cmocka_unit_test(test_set_geom),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_ns_drop),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
