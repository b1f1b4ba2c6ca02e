/*
 * ssd_meta_fx.c - what the SSD index's tests share (test_ssd_meta.c,
 * test_ssd_meta_disk.c, test_lmdb_check.c): random records and batches, a
 * scratch directory per test, loading everything back and comparing it
 * field by field, and LMDB opened directly (only while the module has the
 * environment closed) to read or write behind the module's back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>
#include <xxhash.h>

#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/ssd_meta.h"
#include "tests/unit/ssd_meta_fx.h"

const struct kv_ssd_geom geom0 = {
	.bytes = 1ull << 40, .block = 4096, .file_bytes = 1ull << 34,
};

uint64_t rng_state;
char not_a_handle;	/* *out must still point here on failure */

/* splitmix64 (tests/lib/rng.h) */
uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

/* ---- helpers ---------------------------------------------------------- */

void tmpdir(char *buf, size_t len)
{
	assert_int_equal(kvt_tmpdir(buf, len, "/tmp", "test_ssd_meta."), 0);
}

void rmtree(const char *dir)
{
	assert_int_equal(kvt_rmtree(dir), 0);
}

void index_path(char *buf, size_t len, const char *dir, const char *file)
{
	assert_true(snprintf(buf, len, "%s/index%s%s", dir, file ? "/" : "",
			     file ? file : "") < (int)len);
}

struct kv_ssd_rec make_rec(void)
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

struct kv_ssd_op put_op(uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct kv_ssd_op op = {
		.ns = ns, .key = { .lo = lo, .hi = hi }, .rec = make_rec(),
	};

	return op;
}

struct kv_ssd_op del_op(uint32_t ns, uint64_t lo, uint64_t hi)
{
	struct kv_ssd_op op = { .del = true, .ns = ns, .key = { .lo = lo, .hi = hi } };

	return op;
}

struct kv_ssd_meta *open_conf(const struct kv_ssd_meta_conf *conf,
			      struct kv_ssd_geom *geom)
{
	struct kv_ssd_meta *m = NULL;

	assert_int_equal(kv_ssd_meta_open(&m, conf, geom), 0);
	assert_non_null(m);
	return m;
}

struct kv_ssd_meta *open_dir(const char *dir)
{
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };

	return open_conf(&conf, NULL);
}

int item_cmp(const void *a, const void *b)
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

void items_add(struct items *it, uint32_t ns, const struct kv_key *key,
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

int collect(void *arg, uint32_t ns, const struct kv_key *key,
	    const struct kv_ssd_rec *rec)
{
	assert_true(kv_ssd_rec_valid(rec));
	items_add(arg, ns, key, rec);
	return 0;
}

/* Load everything into *it (emptied first); returns the bad count. */
uint64_t load_all(struct kv_ssd_meta *m, struct items *it)
{
	uint64_t bad = 12345;

	it->n = 0;
	assert_int_equal(kv_ssd_meta_load(m, collect, it, &bad), 0);
	return bad;
}

/* Apply n random puts in batches of b; add them to *want. */
void put_random(struct kv_ssd_meta *m, struct items *want, size_t n, size_t b,
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
void check_same(struct items *want, const struct items *got)
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
MDB_env *env_direct(const char *dir)
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
void direct_write(const char *dir, const char *db, const void *key, size_t klen,
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
size_t direct_format(const char *dir, struct fmt *f, size_t *chunks)
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

void *read_file(const char *path, size_t *len)
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

uint64_t file_hash(const char *path)
{
	size_t len;
	void *buf = read_file(path, &len);
	uint64_t h = XXH3_64bits(buf, len);

	free(buf);
	return h;
}

int group_setup(void **state)
{
	/* ignore a KV_FAULT in the environment: the tests arm it themselves */
	kv_fault_arm(KV_FAULT_META, 0);
	return 0;
}
