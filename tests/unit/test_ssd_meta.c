/*
 * test_ssd_meta.c - unit tests for the SSD tier's LMDB index
 * (tiers/ssd_meta.c).
 *
 * Round trips across close and reopen, key order, batch order, map growth
 * and its limit, format checks, garbage and invalid records, the
 * KV_FAULT_META point, a stale reader left by a killed process, random
 * byte flips in data.mdb, salted seeds, and forgetting a namespace. Each
 * test works in its own mkdtemp() directory and removes it. Where a test
 * writes into the environment behind the module's back it opens it with
 * LMDB directly, and only while the module has it closed (one process must
 * not open an environment twice).
 *
 * Children (the stale reader, the corruption runs) are forked while this
 * process holds no environment open, and open their own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/ssd_meta.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)

#define FMT_MAGIC 0x4953564bu	/* "KVSI": the on-disk format, pinned here */

struct fmt {
	uint32_t magic;
	uint32_t version;
	struct kv_ssd_geom geom;
};

struct item {
	uint32_t ns;
	struct kv_key key;
	struct kv_ssd_rec rec;
};

struct items {
	struct item *v;
	size_t n;
	size_t cap;
};

static const struct kv_ssd_geom geom0 = {
	.bytes = 1ull << 40, .block = 4096, .file_bytes = 1ull << 34,
};

static uint64_t rng_state;
static char not_a_handle;	/* *out must still point here on failure */

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

/* ---- helpers ---------------------------------------------------------- */

static void tmpdir(char *buf, size_t len)
{
	assert_int_equal(kvt_tmpdir(buf, len, "/tmp", "test_ssd_meta."), 0);
}

static void rmtree(const char *dir)
{
	assert_int_equal(kvt_rmtree(dir), 0);
}

static void index_path(char *buf, size_t len, const char *dir, const char *file)
{
	assert_true(snprintf(buf, len, "%s/index%s%s", dir, file ? "/" : "",
			     file ? file : "") < (int)len);
}

static struct kv_ssd_rec make_rec(void)
{
	struct kv_ssd_rec r = {
		.magic = KV_SSD_REC_MAGIC,
		.codec = (uint8_t)(rnd() % 3),
		.has_parent = (uint8_t)(rnd() & 1),
		.tokens = (uint32_t)rnd(),
		.position = (uint32_t)rnd(),
		.offset = rnd() & ~4095ull,
		.stored = rnd() >> 20,
		.bytes = rnd() >> 20,
		.checksum = rnd(),
		.hits = rnd(),
		.freq = (uint32_t)rnd(),
		.score = (double)(rnd() >> 11) / 9007199254740992.0,
		.salt = rnd(),
	};

	if (r.has_parent) {
		r.parent.lo = rnd();
		r.parent.hi = rnd();
	}
	return r;
}

static struct kv_ssd_op put_op(uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct kv_ssd_op op = {
		.ns = ns, .key = { .lo = lo, .hi = hi }, .rec = make_rec(),
	};

	return op;
}

static struct kv_ssd_op del_op(uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct kv_ssd_op op = { .del = true, .ns = ns, .key = { .lo = lo, .hi = hi } };

	return op;
}

static struct kv_ssd_meta *open_conf(const struct kv_ssd_meta_conf *conf,
				     struct kv_ssd_geom *geom)
{
	struct kv_ssd_meta *m = NULL;

	assert_int_equal(kv_ssd_meta_open(&m, conf, geom), 0);
	assert_non_null(m);
	return m;
}

static struct kv_ssd_meta *open_dir(const char *dir)
{
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };

	return open_conf(&conf, NULL);
}

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a;
	const struct item *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	if (x->key.lo != y->key.lo)
		return x->key.lo < y->key.lo ? -1 : 1;
	if (x->key.hi != y->key.hi)
		return x->key.hi < y->key.hi ? -1 : 1;
	return 0;
}

static void items_add(struct items *it, uint32_t ns, const struct kv_key *key,
		      const struct kv_ssd_rec *rec)
{
	if (it->n == it->cap) {
		it->cap = it->cap ? 2 * it->cap : 64;
		it->v = realloc(it->v, it->cap * sizeof(*it->v));
		assert_non_null(it->v);
	}
	it->v[it->n].ns = ns;
	it->v[it->n].key = *key;
	it->v[it->n].rec = *rec;
	it->n++;
}

static int collect(void *arg, uint32_t ns, const struct kv_key *key,
		   const struct kv_ssd_rec *rec)
{
	assert_true(kv_ssd_rec_valid(rec));
	items_add(arg, ns, key, rec);
	return 0;
}

/* Load everything into *it (emptied first); returns the bad count. */
static uint64_t load_all(struct kv_ssd_meta *m, struct items *it)
{
	uint64_t bad = 12345;

	it->n = 0;
	assert_int_equal(kv_ssd_meta_load(m, collect, it, &bad), 0);
	return bad;
}

static bool has_key(const struct items *it, uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct item k = { .ns = ns, .key = { .lo = lo, .hi = hi } };

	for (size_t i = 0; i < it->n; i++)
		if (!item_cmp(&it->v[i], &k))
			return true;
	return false;
}

/* Apply n random puts in batches of b; add them to *want. */
static void put_random(struct kv_ssd_meta *m, struct items *want, size_t n, size_t b,
		       const uint32_t *nss, size_t n_ns)
{
	struct kv_ssd_op *ops = calloc(b, sizeof(*ops));

	assert_non_null(ops);
	for (size_t done = 0; done < n; ) {
		size_t k = n - done < b ? n - done : b;

		for (size_t i = 0; i < k; i++)
			ops[i] = put_op(nss[rnd() % n_ns], rnd(), rnd());
		assert_int_equal(kv_ssd_meta_apply(m, ops, k), 0);
		for (size_t i = 0; i < k; i++) {
			assert_true(kv_ssd_rec_valid(&ops[i].rec));	/* sealed */
			items_add(want, ops[i].ns, &ops[i].key, &ops[i].rec);
		}
		done += k;
	}
	free(ops);
}

/* The loaded set equals the wanted one, field by field, in key order. */
static void check_same(struct items *want, const struct items *got)
{
	qsort(want->v, want->n, sizeof(*want->v), item_cmp);
	assert_int_equal(got->n, want->n);
	for (size_t i = 0; i < want->n; i++) {
		const struct item *w = &want->v[i];
		const struct item *g = &got->v[i];

		assert_int_equal(g->ns, w->ns);
		assert_int_equal(g->key.lo, w->key.lo);
		assert_int_equal(g->key.hi, w->key.hi);
		assert_int_equal(g->rec.magic, w->rec.magic);
		assert_int_equal(g->rec.codec, w->rec.codec);
		assert_int_equal(g->rec.has_parent, w->rec.has_parent);
		assert_int_equal(g->rec.tokens, w->rec.tokens);
		assert_int_equal(g->rec.position, w->rec.position);
		assert_int_equal(g->rec.parent.lo, w->rec.parent.lo);
		assert_int_equal(g->rec.parent.hi, w->rec.parent.hi);
		assert_int_equal(g->rec.offset, w->rec.offset);
		assert_int_equal(g->rec.stored, w->rec.stored);
		assert_int_equal(g->rec.bytes, w->rec.bytes);
		assert_int_equal(g->rec.checksum, w->rec.checksum);
		assert_int_equal(g->rec.hits, w->rec.hits);
		assert_int_equal(g->rec.freq, w->rec.freq);
		assert_true(g->rec.score == w->rec.score);
		assert_int_equal(g->rec.salt, w->rec.salt);
		assert_int_equal(g->rec.rec_check, w->rec.rec_check);
		assert_memory_equal(&g->rec, &w->rec, sizeof(w->rec));
	}
}

/* Open the environment with LMDB directly (the module must have it closed). */
static MDB_env *env_direct(const char *dir)
{
	char path[PATH_MAX];
	MDB_env *env;

	index_path(path, sizeof(path), dir, NULL);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 * MIB), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	return env;
}

/* Put (val != NULL) or delete one key of a named database, directly. */
static void direct_write(const char *dir, const char *db, const void *key, size_t klen,
			 const void *val, size_t vlen)
{
	MDB_env *env = env_direct(dir);
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };
	MDB_txn *txn;
	MDB_dbi dbi;

	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	if (val)
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Read the "format" record directly: its size, and its bytes into *f. */
static size_t direct_format(const char *dir, struct fmt *f, size_t *chunks)
{
	MDB_env *env = env_direct(dir);
	MDB_val k = { .mv_size = 6, .mv_data = "format" };
	MDB_val v = { 0 };
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;
	size_t len = 0;
	int rc;

	memset(f, 0, sizeof(*f));
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0) {
		len = v.mv_size;
		memcpy(f, v.mv_data, len < sizeof(*f) ? len : sizeof(*f));
	} else {
		assert_int_equal(rc, MDB_NOTFOUND);
	}
	assert_int_equal(mdb_dbi_open(txn, "chunks", 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &st), 0);
	*chunks = st.ms_entries;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return len;
}

static void encode_key(unsigned char *k, uint32_t ns, uint64_t lo, uint64_t hi)
{
	for (int i = 0; i < 4; i++)
		k[i] = (unsigned char)(ns >> (24 - 8 * i));
	for (int i = 0; i < 8; i++) {
		k[4 + i] = (unsigned char)(lo >> (56 - 8 * i));
		k[12 + i] = (unsigned char)(hi >> (56 - 8 * i));
	}
}

static void *read_file(const char *path, size_t *len)
{
	struct stat sb;
	void *buf;
	FILE *f;

	assert_int_equal(stat(path, &sb), 0);
	*len = (size_t)sb.st_size;
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint64_t file_hash(const char *path)
{
	size_t len;
	void *buf = read_file(path, &len);
	uint64_t h = XXH3_64bits(buf, len);

	free(buf);
	return h;
}

static int group_setup(void **state)
{
	/* ignore a KV_FAULT in the environment: the tests arm it themselves */
	kv_fault_arm(KV_FAULT_META, 0);
	return 0;
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

static void expect_eformat(const char *dir, const char *what)
{
	struct kv_ssd_meta *sentinel = (struct kv_ssd_meta *)&not_a_handle;
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };
	struct kv_ssd_geom g = { .bytes = 77 };
	struct kv_ssd_meta *m = sentinel;
	char path[PATH_MAX];
	uint64_t h;

	print_message("ssd_meta format check: %s\n", what);
	index_path(path, sizeof(path), dir, "data.mdb");
	h = file_hash(path);
	assert_int_equal(kv_ssd_meta_open(&m, &conf, &g), -KV_EFORMAT);
	assert_ptr_equal(m, sentinel);
	assert_int_equal(g.bytes, 77);
	assert_int_equal(file_hash(path), h);	/* not a byte written */
}

static void test_format(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	struct fmt f = { 0 };
	struct fmt good;
	size_t chunks;
	char dir[64];
	char plain[64];

	rng_state = 8;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 50, 50, nss, 1);
	kv_ssd_meta_close(m);

	/* what a new directory holds, pinned */
	assert_int_equal(direct_format(dir, &good, &chunks), sizeof(good));
	assert_int_equal(good.magic, FMT_MAGIC);
	assert_int_equal(good.version, KV_SSD_FORMAT);
	assert_memory_equal(&good.geom, &geom0, sizeof(geom0));
	assert_int_equal(chunks, 50);

	f = good;
	f.version = KV_SSD_FORMAT + 1;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "a newer version");
	assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
	assert_int_equal(f.version, KV_SSD_FORMAT + 1);
	assert_int_equal(chunks, 50);

	/* format 1 (before records carried the namespace salt) is refused */
	f = good;
	f.version = 1;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "format 1");

	f = good;
	f.magic = 0x12345678;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "another magic");

	direct_write(dir, "meta", "format", 6, &good, sizeof(good) - 8);
	expect_eformat(dir, "a short format record");

	direct_write(dir, "meta", "format", 6, NULL, 0);
	expect_eformat(dir, "records but no format");
	assert_int_equal(direct_format(dir, &f, &chunks), 0);
	assert_int_equal(chunks, 50);

	/* put back: all there, untouched */
	direct_write(dir, "meta", "format", 6, &good, sizeof(good));
	m = open_dir(dir);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	/* an empty index without a format is a new one: it gets one */
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	kv_ssd_meta_close(m);
	direct_write(dir, "meta", "format", 6, NULL, 0);
	m = open_dir(dir);
	kv_ssd_meta_close(m);
	assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
	assert_memory_equal(&f, &good, sizeof(f));
	rmtree(dir);

	/* an environment whose main database has a plain key "chunks" */
	tmpdir(plain, sizeof(plain));
	{
		char path[PATH_MAX];

		index_path(path, sizeof(path), plain, NULL);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	direct_write(plain, NULL, "chunks", 6, "not a database", 14);
	expect_eformat(plain, "another layout");
	rmtree(plain);

	free(want.v);
	free(got.v);
}

static void test_garbage(void **state)
{
	static const size_t sizes[] = { 64 * KIB, 100, 4096, 8192 };
	struct kv_ssd_meta *sentinel = (struct kv_ssd_meta *)&not_a_handle;
	struct kv_ssd_meta_conf conf = { .geom = geom0 };
	char path[PATH_MAX];
	char dir[64];

	rng_state = 9;
	for (size_t s = 0; s < KV_ARRAY_SIZE(sizes); s++) {
		for (int zero = 0; zero < 2; zero++) {
			struct kv_ssd_meta *m = sentinel;
			unsigned char *buf = calloc(1, sizes[s]);
			uint64_t h;

			assert_non_null(buf);
			for (size_t i = 0; !zero && i < sizes[s]; i++)
				buf[i] = (unsigned char)rnd();
			tmpdir(dir, sizeof(dir));
			conf.dir = dir;
			index_path(path, sizeof(path), dir, NULL);
			assert_int_equal(mkdir(path, 0700), 0);
			index_path(path, sizeof(path), dir, "data.mdb");
			write_file(path, buf, sizes[s]);
			h = file_hash(path);
			assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -EIO);
			assert_ptr_equal(m, sentinel);
			assert_int_equal(file_hash(path), h);
			free(buf);
			rmtree(dir);
		}
	}
}

static void test_invalid_records(void **state)
{
	static const uint32_t nss[] = { 4 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	struct kv_ssd_rec r;
	unsigned char k[21] = { 0 };
	uint64_t bad;
	char dir[64];

	rng_state = 10;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 10, 10, nss, 1);
	kv_ssd_meta_close(m);

	/* value one byte short */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 1);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r) - 1);
	/* value one byte long */
	encode_key(k, 4, 100, 2);
	{
		unsigned char longer[sizeof(r) + 1] = { 0 };

		memcpy(longer, &r, sizeof(r));
		direct_write(dir, "chunks", k, 20, longer, sizeof(longer));
	}
	/* one flipped byte */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	((unsigned char *)&r)[40] ^= 0x10;
	encode_key(k, 4, 100, 3);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* wrong magic, sealed */
	r = make_rec();
	r.magic = 0x5253564c;
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 4);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* a codec out of range, sealed */
	r = make_rec();
	r.codec = 3;
	kv_ssd_rec_seal(&r);
	encode_key(k, 0, 100, 5);	/* sorts before everything */
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* a valid record under keys of the wrong size */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 6);
	direct_write(dir, "chunks", k, 19, &r, sizeof(r));
	direct_write(dir, "chunks", k, 21, &r, sizeof(r));

	m = open_dir(dir);
	assert_int_equal(kv_ssd_meta_count(m), 17);
	bad = load_all(m, &got);
	assert_int_equal(bad, 7);
	check_same(&want, &got);
	assert_int_equal(kv_ssd_meta_count(m), 10);
	assert_int_equal(load_all(m, &got), 0);	/* gone for good */
	check_same(&want, &got);
	/* bad may be NULL */
	got.n = 0;
	assert_int_equal(kv_ssd_meta_load(m, collect, &got, NULL), 0);
	assert_int_equal(got.n, 10);
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

/* ---- a stale reader ---------------------------------------------------- */

struct count_ctx {
	int pid;
	int n;
};

static int count_reader(const char *msg, void *arg)
{
	struct count_ctx *c = arg;
	int pid;

	if (sscanf(msg, "%d", &pid) == 1 && pid == c->pid)
		c->n++;
	return 0;
}

/*
 * The holder keeps the environment open, so the parent's open is not the
 * only one and LMDB does not reset the reader table (it does when a
 * process gets the lock file to itself): only mdb_reader_check() can clear
 * the dead reader's slot then. On 'l' + a pid it answers how many slots
 * that pid holds; on 'q' it exits.
 */
static void holder_main(const char *dir, int cmd, int resp)
{
	char path[PATH_MAX];
	MDB_env *env;
	char c = 'r';

	snprintf(path, sizeof(path), "%s/index", dir);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
	    mdb_env_open(env, path, MDB_NOTLS, 0600))
		_exit(2);
	if (write(resp, &c, 1) != 1)
		_exit(3);
	while (read(cmd, &c, 1) == 1 && c == 'l') {
		struct count_ctx cc = { 0 };

		if (read(cmd, &cc.pid, sizeof(cc.pid)) != sizeof(cc.pid))
			_exit(4);
		mdb_reader_list(env, count_reader, &cc);
		if (write(resp, &cc.n, sizeof(cc.n)) != sizeof(cc.n))
			_exit(5);
	}
	mdb_env_close(env);
	_exit(c == 'q' ? 0 : 6);
}

static void reader_main(const char *dir, int resp)
{
	char path[PATH_MAX];
	MDB_env *env;
	MDB_txn *txn;
	char c = 'r';

	snprintf(path, sizeof(path), "%s/index", dir);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
	    mdb_env_open(env, path, MDB_NOTLS, 0600) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		_exit(2);
	if (write(resp, &c, 1) != 1)
		_exit(3);
	for (;;)
		pause();	/* killed with its read transaction open */
}

static int ask_slots(int cmd, int resp, int pid)
{
	char c = 'l';
	int n = -1;

	assert_int_equal(write(cmd, &c, 1), 1);
	assert_int_equal(write(cmd, &pid, sizeof(pid)), sizeof(pid));
	assert_int_equal(read(resp, &n, sizeof(n)), sizeof(n));
	return n;
}

static void test_stale_reader(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	int cmd[2];
	int resp[2];
	int ready[2];
	pid_t holder;
	pid_t reader;
	int status;
	char dir[64];
	char c;

	rng_state = 13;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 10, 10, nss, 1);
	kv_ssd_meta_close(m);	/* nothing open across fork() */

	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(resp), 0);
	assert_int_equal(pipe(ready), 0);
	holder = fork();
	assert_true(holder >= 0);
	if (holder == 0)
		holder_main(dir, cmd[0], resp[1]);
	assert_int_equal(read(resp[0], &c, 1), 1);
	reader = fork();
	assert_true(reader >= 0);
	if (reader == 0)
		reader_main(dir, ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);

	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 1);
	assert_int_equal(kill(reader, SIGKILL), 0);
	assert_int_equal(waitpid(reader, &status, 0), reader);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 1);	/* stale */

	m = open_dir(dir);	/* clears it */
	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 0);
	put_random(m, &want, 10, 10, nss, 1);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);

	c = 'q';
	assert_int_equal(write(cmd[1], &c, 1), 1);
	assert_int_equal(waitpid(holder, &status, 0), holder);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(cmd[0]);
	close(cmd[1]);
	close(resp[0]);
	close(resp[1]);
	close(ready[0]);
	close(ready[1]);

	/* and reopened alone: still all there */
	m = open_dir(dir);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

/* ---- corruption --------------------------------------------------------- */

/* longer soaks: build with -DCORRUPT_RUNS=N -DCORRUPT_SEED=S */
#ifndef CORRUPT_RUNS
#define CORRUPT_RUNS	300
#endif
#ifndef CORRUPT_SEED
#define CORRUPT_SEED	1000
#endif
#define CORRUPT_RECS	600

enum {
	CHILD_OK = 0,		/* opened, loaded; tallies in the result pipe */
	CHILD_OPEN_EIO = 10,
	CHILD_OPEN_EFORMAT = 11,
	CHILD_LOAD_EIO = 12,
	CHILD_WRONG = 20,	/* a record handed out that should not be */
	CHILD_ODD = 21,		/* an error code outside the contract */
};

struct corrupt_res {
	uint64_t good;		/* handed out, equal to what was stored */
	uint64_t unknown;	/* valid, under a key never stored (key bytes hit) */
	uint64_t bad;		/* counted invalid by the first load */
	uint64_t bad2;		/* by the second */
};

struct corrupt_ctx {
	const struct items *want;	/* sorted */
	struct corrupt_res res;
	bool wrong;
};

static int corrupt_check(void *arg, uint32_t ns, const struct kv_key *key,
			 const struct kv_ssd_rec *rec)
{
	struct corrupt_ctx *cc = arg;
	struct item k = { .ns = ns, .key = *key };
	const struct item *w;

	if (!kv_ssd_rec_valid(rec)) {
		cc->wrong = true;
		return 0;
	}
	w = bsearch(&k, cc->want->v, cc->want->n, sizeof(k), item_cmp);
	if (!w)
		cc->res.unknown++;
	else if (memcmp(&w->rec, rec, sizeof(*rec)))
		cc->wrong = true;
	else
		cc->res.good++;
	return 0;
}

static void corrupt_child(const char *dir, const struct items *want, int res_fd)
{
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };
	struct corrupt_ctx cc = { .want = want };
	struct kv_ssd_meta *m = NULL;
	struct kv_ssd_op op;
	int ret;

	/* cmocka catches these to fail a test; here they must kill */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGSYS, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	ret = kv_ssd_meta_open(&m, &conf, NULL);
	if (ret == -EIO)
		exit(CHILD_OPEN_EIO);
	if (ret == -KV_EFORMAT)
		exit(CHILD_OPEN_EFORMAT);
	if (ret)
		exit(CHILD_ODD);
	ret = kv_ssd_meta_load(m, corrupt_check, &cc, &cc.res.bad);
	if (ret == 0 && !cc.wrong) {
		/* the survivors again: the bad ones are gone */
		cc.res.good = 0;
		cc.res.unknown = 0;
		ret = kv_ssd_meta_load(m, corrupt_check, &cc, &cc.res.bad2);
	}
	if (ret == 0 && !cc.wrong) {
		/* and it still takes writes */
		op = put_op(123, 456, 789);
		ret = kv_ssd_meta_apply(m, &op, 1);
		if (ret == -ENOSPC)
			ret = -EIO;
	}
	kv_ssd_meta_close(m);
	if (cc.wrong)
		exit(CHILD_WRONG);
	if (ret == -EIO)
		exit(CHILD_LOAD_EIO);
	if (ret)
		exit(CHILD_ODD);
	if (write(res_fd, &cc.res, sizeof(cc.res)) != sizeof(cc.res))
		exit(CHILD_ODD);
	exit(CHILD_OK);
}

/* Read fd to its end; keep the first len - 1 bytes, NUL-terminated. */
static void drain(int fd, char *buf, size_t len)
{
	size_t have = 0;
	char tmp[4096];
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		for (ssize_t i = 0; i < n && have + 1 < len; i++)
			buf[have++] = tmp[i];
	}
	buf[have] = '\0';
}

static void test_corruption(void **state)
{
	static const uint32_t nss[] = { 1, 2, 3, 70000 };
	static char log[16384];
	struct items want = { 0 };
	struct kv_ssd_meta *m;
	struct corrupt_res total = { 0 };
	unsigned tally[32] = { 0 };
	unsigned crashes = 0;
	unsigned failures = 0;
	unsigned silent = 0;
	char path[PATH_MAX];
	unsigned char *pristine;
	unsigned char *buf;
	size_t len;
	char dir[64];

	rng_state = 14;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, CORRUPT_RECS, 100, nss, KV_ARRAY_SIZE(nss));
	/* some deletes, so the free list has pages in it */
	{
		struct kv_ssd_op ops[100];

		for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
			ops[i] = del_op(want.v[i].ns, want.v[i].key.lo, want.v[i].key.hi);
		assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
		memmove(want.v, want.v + 100, (want.n - 100) * sizeof(*want.v));
		want.n -= 100;
	}
	kv_ssd_meta_close(m);
	qsort(want.v, want.n, sizeof(*want.v), item_cmp);
	index_path(path, sizeof(path), dir, "data.mdb");
	pristine = read_file(path, &len);
	rmtree(dir);
	buf = malloc(len);
	assert_non_null(buf);

	for (unsigned run = 0; run < CORRUPT_RUNS; run++) {
		int res[2];
		int err[2];
		struct corrupt_res r = { 0 };
		unsigned flips;
		pid_t pid;
		int status;
		char where[256];
		size_t wl = 0;

		/* seed per run, so any run can be replayed alone */
		rng_state = CORRUPT_SEED + run;
		memcpy(buf, pristine, len);
		flips = 1 + (unsigned)(rnd() % 8);
		for (unsigned f = 0; f < flips; f++) {
			size_t off;

			switch (run % 4) {
			case 0:		/* the two meta pages */
				off = rnd() % (len < 8192 ? len : 8192);
				break;
			case 1:		/* page headers and the node offsets after them */
				off = (rnd() % (len / 4096)) * 4096 + rnd() % 64;
				break;
			default:	/* anywhere */
				off = rnd() % len;
				break;
			}
			buf[off] ^= (unsigned char)(1 + rnd() % 255);
			if (wl < sizeof(where) - 16)
				wl += (size_t)snprintf(where + wl, sizeof(where) - wl,
						       " %zu", off);
		}

		tmpdir(dir, sizeof(dir));
		index_path(path, sizeof(path), dir, NULL);
		assert_int_equal(mkdir(path, 0700), 0);
		index_path(path, sizeof(path), dir, "data.mdb");
		write_file(path, buf, len);

		assert_int_equal(pipe(res), 0);
		assert_int_equal(pipe(err), 0);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(res[0]);
			close(err[0]);
			dup2(err[1], STDERR_FILENO);
			close(err[1]);
			corrupt_child(dir, &want, res[1]);
		}
		close(res[1]);
		close(err[1]);
		drain(err[0], log, sizeof(log));
		if (read(res[0], &r, sizeof(r)) != sizeof(r))
			memset(&r, 0, sizeof(r));
		close(res[0]);
		close(err[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);

		if (WIFSIGNALED(status)) {
			crashes++;
			print_message("ssd_meta corruption run %u: killed by signal %d; flips at%s\n%s",
				      run, WTERMSIG(status), where, log);
		} else {
			int code = WEXITSTATUS(status);

			tally[code < 32 ? code : 31]++;
			if (code == CHILD_OK) {
				total.good += r.good;
				total.unknown += r.unknown;
				total.bad += r.bad;
				total.bad2 += r.bad2;
				if (r.bad2)
					failures++;	/* deleted, yet back */
			} else if (code == CHILD_OPEN_EIO || code == CHILD_OPEN_EFORMAT ||
				   code == CHILD_LOAD_EIO) {
				if (!strstr(log, "ERR"))
					silent++;	/* refused without a log line */
			} else {
				failures++;
				print_message("ssd_meta corruption run %u: exit %d; flips at%s\n%s",
					      run, code, where, log);
			}
		}
		rmtree(dir);
	}
	print_message("ssd_meta corruption: %u runs over a %zu-byte data.mdb: %u loaded "
		      "(%llu records good, %llu under a changed key, %llu invalid and dropped), "
		      "%u refused at open (%u -EIO, %u -KV_EFORMAT), %u -EIO later, "
		      "%u crashed, %u wrong, %u refused without a log line\n",
		      CORRUPT_RUNS, len, tally[CHILD_OK],
		      (unsigned long long)total.good, (unsigned long long)total.unknown,
		      (unsigned long long)total.bad,
		      tally[CHILD_OPEN_EIO] + tally[CHILD_OPEN_EFORMAT],
		      tally[CHILD_OPEN_EIO], tally[CHILD_OPEN_EFORMAT],
		      tally[CHILD_LOAD_EIO], crashes, failures, silent);
	assert_int_equal(crashes, 0);
	assert_int_equal(failures, 0);
	assert_int_equal(silent, 0);
	free(buf);
	free(pristine);
	free(want.v);
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
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_invalid_records),
		cmocka_unit_test(test_load_stop),
		cmocka_unit_test(test_fault),
		cmocka_unit_test(test_set_geom),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_ns_drop),
		cmocka_unit_test(test_stale_reader),
		cmocka_unit_test(test_corruption),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
