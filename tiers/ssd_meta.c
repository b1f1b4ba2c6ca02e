/*
 * ssd_meta.c - the SSD tier's LMDB index (see ssd_meta.h).
 *
 * Layout of DIR/index/ (one LMDB environment, four DBIs at most):
 *   "chunks"  key: ns (4 bytes) | key.lo (8) | key.hi (8), all big-endian,
 *             so a cursor walk visits a namespace's records together;
 *             value: struct kv_ssd_rec, host order, sealed by rec_check.
 *   "meta"    "format" -> struct fmt: magic "KVSI", KV_SSD_FORMAT, geometry;
 *             "ns" + id (4 bytes, big-endian) -> uid, name length, name.
 *
 * Every write goes through meta_write(): one write transaction running a
 * body, aborted on any error (LMDB poisons a transaction after a failed
 * write), and on MDB_MAP_FULL aborted, the map doubled and the body run
 * again from the start. Growing the map is allowed only while no
 * transaction of this process is active, which holds because a struct
 * kv_ssd_meta is used by one thread at a time and load's read transaction
 * ends before load writes.
 *
 * Opening the DBIs happens inside the first write transaction: a refused
 * format aborts it, so nothing is ever written to a directory we refuse.
 *
 * Nothing here trusts the file: open checks the structure of every page
 * LMDB will walk before the first transaction (tiers/lmdb_check.c), and
 * values are copied out (they are only 2-byte aligned in the page) and
 * checked for size and rec_check before anyone sees them.
 *
 * Locking: none (ssd_meta.h). Ownership: the struct owns the environment;
 * load's callback borrows each record for the duration of the call and must
 * not call back into the same struct kv_ssd_meta.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/codec.h"
#include "tiers/lmdb_check.h"
#include "tiers/ssd_meta.h"

#define KEY_BYTES	20
#define FMT_MAGIC	0x4953564bu	/* "KVSI" little-endian */
#define MIB		(1ull << 20)
#define GIB		(1ull << 30)
#define MAP_DEFAULT	(64 * MIB)
#define MAP_MAX_DEFAULT	(64 * GIB)
#define MAP_GRAIN	4096ull		/* map sizes stay page multiples */

/* The "format" record of the "meta" database. */
struct fmt {
	uint32_t magic;			/* FMT_MAGIC */
	uint32_t version;		/* KV_SSD_FORMAT */
	struct kv_ssd_geom geom;
};

/* No padding anywhere: rec_check and the stored formats hash raw bytes. */
_Static_assert(sizeof(struct kv_ssd_rec) == 104, "kv_ssd_rec layout");
_Static_assert(offsetof(struct kv_ssd_rec, parent) == 16 &&
	       sizeof(((struct kv_ssd_rec *)0)->parent) == 16, "kv_ssd_rec layout");
_Static_assert(offsetof(struct kv_ssd_rec, salt) == 88, "kv_ssd_rec layout");
_Static_assert(offsetof(struct kv_ssd_rec, rec_check) == 96, "kv_ssd_rec layout");
_Static_assert(sizeof(struct fmt) == 32, "fmt layout");
_Static_assert(KV_CODEC_MAX == 3, "records accept codecs 0..2");

struct kv_ssd_meta {
	MDB_env *env;
	MDB_dbi chunks;
	MDB_dbi meta;
	char *path;			/* DIR/index, for log lines */
	uint64_t map;			/* current map size */
	uint64_t max_map;		/* growth limit */
};

static const char fmt_key[] = "format";

static void key_encode(unsigned char *out, uint32_t ns, const struct kv_key *key)
{
	uint32_t be32 = htobe32(ns);
	uint64_t lo = htobe64(key->lo);
	uint64_t hi = htobe64(key->hi);

	memcpy(out, &be32, 4);
	memcpy(out + 4, &lo, 8);
	memcpy(out + 12, &hi, 8);
}

static void key_decode(const unsigned char *in, uint32_t *ns, struct kv_key *key)
{
	uint32_t be32;
	uint64_t lo;
	uint64_t hi;

	memcpy(&be32, in, 4);
	memcpy(&lo, in + 4, 8);
	memcpy(&hi, in + 12, 8);
	*ns = be32toh(be32);
	key->lo = be64toh(lo);
	key->hi = be64toh(hi);
}

uint64_t kv_ssd_seed(uint64_t salt, uint32_t ns, const struct kv_key *key)
{
	unsigned char k[KEY_BYTES];

	key_encode(k, ns, key);
	return XXH3_64bits_withSeed(k, sizeof(k), salt);
}

uint64_t kv_ssd_salt(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

static uint64_t rec_hash(const struct kv_ssd_rec *r)
{
	return XXH3_64bits(r, offsetof(struct kv_ssd_rec, rec_check));
}

void kv_ssd_rec_seal(struct kv_ssd_rec *r)
{
	r->rec_check = rec_hash(r);
}

bool kv_ssd_rec_valid(const struct kv_ssd_rec *r)
{
	return r->magic == KV_SSD_REC_MAGIC && r->reserved == 0 &&
	       r->reserved2 == 0 && r->codec < KV_CODEC_MAX &&
	       r->has_parent <= 1 && r->rec_check == rec_hash(r);
}

/* Anything LMDB returns that is not an errno value. */
static bool is_mdb_err(int rc)
{
	return rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE;
}

/*
 * Run body in one write transaction and commit it; on MDB_MAP_FULL (from
 * the body or the commit) double the map and run it again. The body
 * returns 0, an MDB_* or errno code from LMDB (positive or MDB_*), or a
 * negative kvstore code, which is passed up as is. With fault set, the
 * KV_FAULT_META point is checked once per call, before the first commit.
 * Returns 0, -ENOSPC, -EIO, or the body's negative code.
 */
static int meta_write(struct kv_ssd_meta *m, const char *what,
		      int (*body)(struct kv_ssd_meta *m, MDB_txn *txn, void *arg),
		      void *arg, bool fault)
{
	bool checked = !fault;
	MDB_txn *txn;
	uint64_t grow;
	int rc;

	for (;;) {
		rc = mdb_txn_begin(m->env, NULL, 0, &txn);
		if (rc) {
			kv_log(KV_ERR, KV_LOG_TIER, "cannot begin %s in '%s': %s",
			       what, m->path, mdb_strerror(rc));
			return -EIO;
		}
		rc = body(m, txn, arg);
		if (rc < 0 && !is_mdb_err(rc)) {
			mdb_txn_abort(txn);
			return rc;
		}
		if (rc == 0 && !checked) {
			checked = true;
			if (kv_fault_hit(KV_FAULT_META)) {
				mdb_txn_abort(txn);
				return -EIO;
			}
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);	/* frees txn even on error */
		else
			mdb_txn_abort(txn);
		if (rc == 0)
			return 0;
		if (rc != MDB_MAP_FULL) {
			kv_log(KV_ERR, KV_LOG_TIER, "cannot %s in '%s': %s",
			       what, m->path, mdb_strerror(rc));
			/* A full filesystem is worth telling apart: the
			 * operator can make room. */
			return rc == ENOSPC || rc == EDQUOT ? -ENOSPC : -EIO;
		}

		if (m->map >= m->max_map) {
			kv_log_once(KV_WARN, KV_LOG_TIER,
				    "index '%s' is full at its map limit of %" PRIu64 " bytes",
				    m->path, m->max_map);
			return -ENOSPC;
		}
		grow = m->map > m->max_map / 2 ? m->max_map : m->map * 2;
		rc = mdb_env_set_mapsize(m->env, (size_t)grow);
		if (rc) {
			kv_log(KV_ERR, KV_LOG_TIER,
			       "cannot grow the map of '%s' to %" PRIu64 " bytes: %s",
			       m->path, grow, mdb_strerror(rc));
			return -EIO;
		}
		kv_log(KV_INFO, KV_LOG_TIER, "index '%s' map grown to %" PRIu64 " bytes",
		       m->path, grow);
		m->map = grow;
	}
}

/* ---- open ----------------------------------------------------------------- */

struct open_ctx {
	const struct kv_ssd_meta_conf *conf;
	struct kv_ssd_geom geom;	/* out: what the directory holds */
};

static int open_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	struct open_ctx *oc = arg;
	struct fmt want = {
		.magic = FMT_MAGIC,
		.version = KV_SSD_FORMAT,
		.geom = oc->conf->geom,
	};
	MDB_val k = { .mv_size = sizeof(fmt_key) - 1, .mv_data = (void *)fmt_key };
	MDB_val v;
	MDB_stat st;
	struct fmt have = { 0 };
	int rc;

	rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &m->chunks);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &m->meta);
	if (rc == MDB_INCOMPATIBLE) {
		/* a plain key of that name, or other flags: not our layout */
		kv_log(KV_ERR, KV_LOG_TIER,
		       "'%s' holds an LMDB environment of another layout, expected index format %u",
		       m->path, KV_SSD_FORMAT);
		return -KV_EFORMAT;
	}
	if (rc)
		return rc;

	rc = mdb_get(txn, m->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = mdb_stat(txn, m->chunks, &st);
		if (rc)
			return rc;
		if (st.ms_entries) {
			kv_log(KV_ERR, KV_LOG_TIER,
			       "'%s' holds %zu records but no format, expected index format %u",
			       m->path, st.ms_entries, KV_SSD_FORMAT);
			return -KV_EFORMAT;
		}
		v.mv_size = sizeof(want);
		v.mv_data = &want;
		rc = mdb_put(txn, m->meta, &k, &v, 0);
		if (rc)
			return rc;
		oc->geom = want.geom;
		return 0;
	}
	if (rc)
		return rc;

	memcpy(&have, v.mv_data, v.mv_size < sizeof(have) ? v.mv_size : sizeof(have));
	if (v.mv_size != sizeof(have) || have.magic != FMT_MAGIC ||
	    have.version != KV_SSD_FORMAT) {
		kv_log(KV_ERR, KV_LOG_TIER,
		       "'%s' holds index format %u (magic %#" PRIx32 ", %zu bytes), expected format %u (magic %#x, %zu bytes)",
		       m->path, have.version, have.magic, v.mv_size,
		       KV_SSD_FORMAT, FMT_MAGIC, sizeof(want));
		return -KV_EFORMAT;
	}
	oc->geom = have.geom;
	return 0;
}

/*
 * A meta page can claim more pages than the file holds (a flipped bit in
 * it, or a truncated file); touching the map past the end of the file then
 * raises SIGBUS, which LMDB does not check for. Refuse that up front.
 */
static int check_size(struct kv_ssd_meta *m)
{
	struct stat sb;
	MDB_envinfo info;
	MDB_stat st;
	int fd;
	int rc;

	rc = mdb_env_info(m->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(m->env, &st);
	if (rc == 0)
		rc = mdb_env_get_fd(m->env, &fd);
	if (rc == 0 && fstat(fd, &sb))
		rc = errno;
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot stat the index '%s': %s",
		       m->path, mdb_strerror(rc));
		return -EIO;
	}
	if (((uint64_t)info.me_last_pgno + 1) * st.ms_psize > (uint64_t)sb.st_size) {
		kv_log(KV_ERR, KV_LOG_TIER,
		       "index '%s' is corrupt: it claims %zu pages of %u bytes, the file has %lld bytes",
		       m->path, info.me_last_pgno + 1, st.ms_psize,
		       (long long)sb.st_size);
		return -EIO;
	}
	m->map = info.me_mapsize;
	return 0;
}

static int make_dir(const char *path)
{
	int ret;

	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	ret = -errno;
	kv_log(KV_ERR, KV_LOG_TIER, "cannot create '%s': %s", path, kv_strerror(ret));
	return ret;
}

static uint64_t round_map(uint64_t n)
{
	return (n + MAP_GRAIN - 1) & ~(MAP_GRAIN - 1);
}

int kv_ssd_meta_open(struct kv_ssd_meta **out, const struct kv_ssd_meta_conf *conf,
		     struct kv_ssd_geom *geom_out)
{
	struct open_ctx oc = { .conf = conf };
	struct kv_ssd_meta *m;
	unsigned flags;
	int dead = 0;
	int ret;
	int rc;

	if (!out || !conf || !conf->dir || !conf->dir[0])
		return -EINVAL;

	m = kv_xcalloc(1, sizeof(*m));
	m->max_map = round_map(conf->max_map_bytes ? conf->max_map_bytes : MAP_MAX_DEFAULT);
	if (conf->map_bytes)
		m->map = round_map(conf->map_bytes);
	else
		m->map = MAP_DEFAULT < m->max_map ? MAP_DEFAULT : m->max_map;
	if (m->map > m->max_map || m->max_map > SIZE_MAX / 2) {
		ret = -EINVAL;
		goto out_free;
	}
	m->path = kv_xmalloc(strlen(conf->dir) + sizeof("/index"));
	sprintf(m->path, "%s/index", conf->dir);

	ret = make_dir(conf->dir);
	if (ret)
		goto out_free;
	ret = make_dir(m->path);
	if (ret)
		goto out_free;

	rc = mdb_env_create(&m->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(m->env, 4);
	if (rc == 0)
		rc = mdb_env_set_mapsize(m->env, (size_t)m->map);
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot set up LMDB for '%s': %s",
		       m->path, mdb_strerror(rc));
		ret = is_mdb_err(rc) ? -EIO : -rc;
		goto out_env;
	}
	flags = MDB_NOTLS | (conf->sync ? 0 : MDB_NOSYNC);
	rc = mdb_env_open(m->env, m->path, flags, 0600);
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot open the index '%s': %s",
		       m->path, mdb_strerror(rc));
		/*
		 * EINVAL and ENOMEM come from mapping the sizes a damaged
		 * meta page claims; other errno values are the directory's.
		 */
		ret = is_mdb_err(rc) || rc == EINVAL || rc == ENOMEM ? -EIO : -rc;
		goto out_env;
	}

	rc = mdb_reader_check(m->env, &dead);
	if (rc)
		kv_log(KV_WARN, KV_LOG_TIER, "cannot check the readers of '%s': %s",
		       m->path, mdb_strerror(rc));
	else if (dead)
		kv_log(KV_INFO, KV_LOG_TIER, "cleared %d stale reader(s) of '%s'",
		       dead, m->path);

	ret = check_size(m);
	if (ret == 0)
		ret = kv_lmdb_check(m->env, m->path);
	if (ret)
		goto out_env;

	ret = meta_write(m, "open the index", open_body, &oc, false);
	if (ret)
		goto out_env;

	if (geom_out)
		*geom_out = oc.geom;
	*out = m;
	return 0;

out_env:
	mdb_env_close(m->env);	/* accepts NULL */
out_free:
	free(m->path);
	free(m);
	return ret;
}

void kv_ssd_meta_close(struct kv_ssd_meta *m)
{
	if (!m)
		return;
	mdb_env_close(m->env);
	free(m->path);
	free(m);
}

/* ---- load ----------------------------------------------------------------- */

struct bad_keys {
	MDB_dbi dbi;			/* the database they are in */
	MDB_val *v;			/* copies of the keys, owned */
	size_t n;
	size_t cap;
};

static void bad_add(struct bad_keys *b, const MDB_val *k)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		b->v = kv_xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	b->v[b->n].mv_size = k->mv_size;
	b->v[b->n].mv_data = kv_xmalloc(k->mv_size ? k->mv_size : 1);
	memcpy(b->v[b->n].mv_data, k->mv_data, k->mv_size);
	b->n++;
}

static void bad_free(struct bad_keys *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].mv_data);
	free(b->v);
}

static int bad_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	struct bad_keys *b = arg;
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		rc = mdb_del(txn, b->dbi, &b->v[i], NULL);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
	}
	return 0;
}

/*
 * End a cursor walk: a cursor error other than the end is -EIO (unless the
 * callback already stopped it with ret), the read ends, and then (the map
 * may grow only now) the invalid records met are deleted.
 */
static int walk_end(struct kv_ssd_meta *m, MDB_cursor *cur, MDB_txn *txn,
		    int rc, int ret, struct bad_keys *bk, const char *what)
{
	if (!ret && rc && rc != MDB_NOTFOUND) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot read the %s of '%s': %s",
		       what, m->path, mdb_strerror(rc));
		ret = -EIO;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (bk->n) {
		kv_log(KV_WARN, KV_LOG_TIER, "index '%s': dropping %zu invalid %s",
		       m->path, bk->n, what);
		rc = meta_write(m, "drop invalid records", bad_body, bk, false);
		if (!ret)
			ret = rc == -ENOSPC ? -EIO : rc;
	}
	bad_free(bk);
	return ret;
}

int kv_ssd_meta_load(struct kv_ssd_meta *m,
		     int (*fn)(void *arg, uint32_t ns, const struct kv_key *key,
			       const struct kv_ssd_rec *rec),
		     void *arg, uint64_t *bad)
{
	struct bad_keys bk = { .dbi = m ? m->chunks : 0 };
	struct kv_ssd_rec rec;
	struct kv_key key;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k;
	MDB_val v;
	uint32_t ns;
	int ret = 0;
	int rc;

	if (!m || !fn)
		return -EINVAL;
	if (bad)
		*bad = 0;

	rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot begin a read of '%s': %s",
		       m->path, mdb_strerror(rc));
		return -EIO;
	}
	rc = mdb_cursor_open(txn, m->chunks, &cur);
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot open a cursor on '%s': %s",
		       m->path, mdb_strerror(rc));
		mdb_txn_abort(txn);
		return -EIO;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (k.mv_size != KEY_BYTES || v.mv_size != sizeof(rec)) {
			bad_add(&bk, &k);
			continue;
		}
		memcpy(&rec, v.mv_data, sizeof(rec));
		if (!kv_ssd_rec_valid(&rec)) {
			bad_add(&bk, &k);
			continue;
		}
		key_decode(k.mv_data, &ns, &key);
		ret = fn(arg, ns, &key, &rec);
		if (ret)
			break;
	}
	if (bad)
		*bad = bk.n;
	return walk_end(m, cur, txn, rc, ret, &bk, "records");
}

/* ---- apply, clear, count -------------------------------------------------- */

struct apply_ctx {
	struct kv_ssd_op *ops;
	size_t n;
};

static int apply_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	struct apply_ctx *ac = arg;
	unsigned char kb[KEY_BYTES];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb };
	MDB_val v = { .mv_size = sizeof(struct kv_ssd_rec) };
	int rc;

	for (size_t i = 0; i < ac->n; i++) {
		struct kv_ssd_op *op = &ac->ops[i];

		key_encode(kb, op->ns, &op->key);
		if (op->del) {
			rc = mdb_del(txn, m->chunks, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			v.mv_data = &op->rec;
			rc = mdb_put(txn, m->chunks, &k, &v, 0);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int kv_ssd_meta_apply(struct kv_ssd_meta *m, struct kv_ssd_op *ops, size_t n)
{
	struct apply_ctx ac = { .ops = ops, .n = n };

	if (!m || (n && !ops))
		return -EINVAL;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].del)
			continue;
		kv_ssd_rec_seal(&ops[i].rec);
		if (!kv_ssd_rec_valid(&ops[i].rec))
			return -EINVAL;	/* would be dropped at the next load */
	}
	return meta_write(m, "apply a batch", apply_body, &ac, true);
}

static int clear_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	return mdb_drop(txn, m->chunks, 0);
}

int kv_ssd_meta_clear(struct kv_ssd_meta *m)
{
	if (!m)
		return -EINVAL;
	return meta_write(m, "clear the index", clear_body, NULL, false);
}

static int geom_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	struct fmt f = {
		.magic = FMT_MAGIC,
		.version = KV_SSD_FORMAT,
		.geom = *(const struct kv_ssd_geom *)arg,
	};
	MDB_val k = { .mv_size = sizeof(fmt_key) - 1, .mv_data = (void *)fmt_key };
	MDB_val v = { .mv_size = sizeof(f), .mv_data = &f };

	return mdb_put(txn, m->meta, &k, &v, 0);
}

int kv_ssd_meta_set_geom(struct kv_ssd_meta *m, const struct kv_ssd_geom *g)
{
	int ret;

	if (!m || !g)
		return -EINVAL;
	ret = meta_write(m, "record the geometry", geom_body, (void *)g, false);
	return ret == -ENOSPC ? -EIO : ret;
}

/*
 * Namespaces live in "meta" beside the format: key "ns" then the id
 * big-endian (so a cursor walks them in id order), value struct ns_val
 * then the name's bytes, no NUL.
 */
#define NS_PREFIX	"ns"
#define NS_KEY_BYTES	6
#define NS_NAME_MAX	255

struct ns_val {
	uint32_t uid;
	uint32_t len;			/* of the name that follows: 1..255 */
};

struct ns_put_ctx {
	unsigned char key[NS_KEY_BYTES];
	unsigned char *val;
	size_t len;
};

static void ns_key(unsigned char key[NS_KEY_BYTES], uint32_t id)
{
	uint32_t be = htobe32(id);

	memcpy(key, NS_PREFIX, 2);
	memcpy(key + 2, &be, sizeof(be));
}

static int ns_put_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	struct ns_put_ctx *c = arg;
	MDB_val k = { .mv_size = sizeof(c->key), .mv_data = c->key };
	MDB_val v = { .mv_size = c->len, .mv_data = c->val };

	return mdb_put(txn, m->meta, &k, &v, 0);
}

int kv_ssd_meta_ns_put(struct kv_ssd_meta *m, uint32_t id, uid_t uid, const char *name)
{
	unsigned char buf[sizeof(struct ns_val) + NS_NAME_MAX];
	struct ns_put_ctx c = { .val = buf };
	struct ns_val nv;
	size_t len;

	if (!m || !name)
		return -EINVAL;
	len = strlen(name);
	if (len < 1 || len > NS_NAME_MAX)
		return -EINVAL;
	ns_key(c.key, id);
	nv.uid = (uint32_t)uid;
	nv.len = (uint32_t)len;
	memcpy(buf, &nv, sizeof(nv));
	memcpy(buf + sizeof(nv), name, len);
	c.len = sizeof(nv) + len;
	return meta_write(m, "record a namespace", ns_put_body, &c, false);
}

/* A stored namespace, checked; name gets it NUL-terminated. */
static bool ns_parse(const MDB_val *k, const MDB_val *v, uint32_t *id, uid_t *uid,
		     char *name)
{
	struct ns_val nv;
	uint32_t be;

	if (k->mv_size != NS_KEY_BYTES || v->mv_size < sizeof(nv) ||
	    v->mv_size > sizeof(nv) + NS_NAME_MAX)
		return false;
	memcpy(&nv, v->mv_data, sizeof(nv));
	if (nv.len < 1 || nv.len != v->mv_size - sizeof(nv))
		return false;
	memcpy(name, (const char *)v->mv_data + sizeof(nv), nv.len);
	name[nv.len] = '\0';
	if (strlen(name) != nv.len)
		return false;			/* a NUL inside */
	memcpy(&be, (const char *)k->mv_data + 2, sizeof(be));
	*id = be32toh(be);
	*uid = (uid_t)nv.uid;
	return true;
}

int kv_ssd_meta_ns_load(struct kv_ssd_meta *m,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg)
{
	struct bad_keys bk = { .dbi = m ? m->meta : 0 };
	char name[NS_NAME_MAX + 1];
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k = { .mv_size = 2, .mv_data = NS_PREFIX };
	MDB_val v;
	uint32_t id;
	uid_t uid;
	int ret = 0;
	int rc;

	if (!m || !fn)
		return -EINVAL;
	rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0) {
		rc = mdb_cursor_open(txn, m->meta, &cur);
		if (rc)
			mdb_txn_abort(txn);
	}
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot read the namespaces of '%s': %s",
		       m->path, mdb_strerror(rc));
		return -EIO;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 2 || memcmp(k.mv_data, NS_PREFIX, 2))
			break;
		if (!ns_parse(&k, &v, &id, &uid, name)) {
			bad_add(&bk, &k);
			continue;
		}
		ret = fn(arg, id, uid, name);
		if (ret)
			break;
	}
	return walk_end(m, cur, txn, rc, ret, &bk, "namespace records");
}

static int ns_drop_body(struct kv_ssd_meta *m, MDB_txn *txn, void *arg)
{
	uint32_t id = *(const uint32_t *)arg;
	unsigned char first[KEY_BYTES] = { 0 };
	unsigned char nk[NS_KEY_BYTES];
	MDB_val k;
	MDB_val v;
	MDB_cursor *cur;
	uint32_t be = htobe32(id);
	int rc;

	/* Chunk keys start with the id big-endian: the namespace's records
	 * are one run from (id, 0, 0) on. */
	memcpy(first, &be, sizeof(be));
	rc = mdb_cursor_open(txn, m->chunks, &cur);
	if (rc)
		return rc;
	/* Find the run's first record again after each delete: no cursor
	 * position is trusted across a delete that rebalances pages. */
	for (;;) {
		k = (MDB_val){ .mv_size = sizeof(first), .mv_data = first };
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (k.mv_size < sizeof(be) || memcmp(k.mv_data, &be, sizeof(be)))
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	ns_key(nk, id);
	k = (MDB_val){ .mv_size = sizeof(nk), .mv_data = nk };
	rc = mdb_del(txn, m->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int kv_ssd_meta_ns_drop(struct kv_ssd_meta *m, uint32_t id)
{
	if (!m)
		return -EINVAL;
	return meta_write(m, "forget a namespace", ns_drop_body, &id, true);
}

uint64_t kv_ssd_meta_count(struct kv_ssd_meta *m)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if (!m)
		return 0;
	rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0) {
		rc = mdb_stat(txn, m->chunks, &st);
		mdb_txn_abort(txn);
	}
	if (rc) {
		kv_log_once(KV_WARN, KV_LOG_TIER, "cannot count the records of '%s': %s",
			    m->path, mdb_strerror(rc));
		return 0;
	}
	return st.ms_entries;
}
