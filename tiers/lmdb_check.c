/*
 * lmdb_check.c - a structural check of an LMDB environment's pages, before
 * LMDB reads them (see lmdb_check.h). Moved out of tiers/ssd_meta.c, which
 * calls it at open; nothing else of that file is used here.
 *
 * Locking: none; reads the file with pread while no transaction of this
 * process is active. Ownership: allocates its bitmaps and frees them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "lib/log.h"
#include "lib/util.h"
#include "tiers/lmdb_check.h"

/*
 * LMDB 0.9 trusts its pages: a flipped bit in a page header, a node offset,
 * a node's sizes or flags, a child page number or a free list makes it read
 * outside the page or the map (SIGSEGV, SIGBUS) or dereference a NULL
 * cursor; it returns MDB_CORRUPTED for only a few of these. So before the
 * first transaction, open walks every page reachable from the meta page
 * LMDB picked, reading the file with pread (never the map), and refuses
 * the environment unless all of it is in bounds and consistent:
 *  - page numbers within [2, last_pg], each page reached once, its header
 *    naming its own number, branch pages above leaves at the depth the
 *    database records, node offsets and sizes inside the page;
 *  - node flags this layout uses: named databases in the main one, plain
 *    or overflow values elsewhere, never duplicates;
 *  - leaf keys in LMDB's order; free-list entries well-formed, sorted, in
 *    range and disjoint from the live pages, so a write never reuses one.
 * The layout below is LMDB's on-disk format, MDB_DATA_VERSION 1 (stable
 * through 0.9.x), for 64-bit hosts. The walk reads the whole index once
 * (what load then reads again, from the page cache).
 */
#define LM_NUM_METAS	2
#define LM_PAGEHDR	16		/* pgno 8, pad 2, flags 2, lower 2, upper 2 */
#define LM_NODEHDR	8		/* lo 2, hi 2, flags 2, ksize 2 */
#define LM_DB_BYTES	48		/* struct MDB_db */
#define LM_META_TXNID	(LM_PAGEHDR + 128)
#define LM_META_LASTPG	(LM_PAGEHDR + 120)
#define LM_META_DBS	(LM_PAGEHDR + 24)	/* FREE_DBI, then MAIN_DBI */
#define LM_META_MAGIC	0xbeefc0deu
#define LM_P_BRANCH	0x01
#define LM_P_LEAF	0x02
#define LM_P_OVERFLOW	0x04
#define LM_P_META	0x08
#define LM_F_BIGDATA	0x01
#define LM_F_SUBDATA	0x02
#define LM_INVALID	UINT64_MAX	/* root of an empty database */
#define LM_MAX_DEPTH	32		/* LMDB's cursor stack */

_Static_assert(sizeof(size_t) == 8, "LMDB's 64-bit layout (pgno_t, size_t fields)");

enum lm_kind { LM_MAIN, LM_SUB, LM_FREE };

struct lm_walk {
	int fd;
	uint32_t psize;
	uint64_t last_pg;
	uint64_t *live;			/* bitmap: pages of the current tree */
	uint64_t *freed;		/* bitmap: pages on the free list */
	const char *why;		/* the first problem found */
	uint64_t where;			/* and its page */
};

static uint16_t get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static bool bit_test_set(uint64_t *map, uint64_t n)
{
	bool was = map[n / 64] & (1ull << (n % 64));

	map[n / 64] |= 1ull << (n % 64);
	return was;
}

static bool lm_bad(struct lm_walk *w, uint64_t pg, const char *why)
{
	if (!w->why) {
		w->why = why;
		w->where = pg;
	}
	return false;
}

static bool lm_read(struct lm_walk *w, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(w->fd, buf, len, (off_t)off);

	return n == (ssize_t)len;
}

/* Claim page pg (and n - 1 after it) for the live tree. */
static bool lm_claim(struct lm_walk *w, uint64_t pg, uint64_t n)
{
	if (pg < LM_NUM_METAS || pg > w->last_pg || n > w->last_pg - pg + 1)
		return lm_bad(w, pg, "page number out of range");
	for (uint64_t i = 0; i < n; i++)
		if (bit_test_set(w->live, pg + i))
			return lm_bad(w, pg + i, "page reached twice");
	return true;
}

/* LMDB's default order: memcmp over the shorter key, then the length. */
static int lm_keycmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static bool lm_tree(struct lm_walk *w, uint64_t pg, unsigned depth, enum lm_kind kind);

/* A free-list entry: a count, then that many page numbers, descending. */
static bool lm_idl(struct lm_walk *w, uint64_t pg, const unsigned char *d, size_t len)
{
	uint64_t n;
	uint64_t prev = UINT64_MAX;

	if (len < 8 || len % 8)
		return lm_bad(w, pg, "free-list entry of a bad size");
	n = get64(d);
	if (n != len / 8 - 1)
		return lm_bad(w, pg, "free-list count does not match its size");
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t id = get64(d + 8 * i);

		if (id < LM_NUM_METAS || id > w->last_pg || id >= prev)
			return lm_bad(w, pg, "free-list page out of range or order");
		if (bit_test_set(w->freed, id))
			return lm_bad(w, pg, "page freed twice");
		prev = id;
	}
	return true;
}

static bool lm_subdb(struct lm_walk *w, uint64_t pg, const unsigned char *d)
{
	uint16_t flags = get16(d + 4);
	uint16_t depth = get16(d + 6);
	uint64_t root = get64(d + 40);

	if (flags)
		return lm_bad(w, pg, "database with flags this index never sets");
	if (root == LM_INVALID)
		return depth == 0 ? true : lm_bad(w, pg, "empty database with a depth");
	if (depth < 1 || depth > LM_MAX_DEPTH)
		return lm_bad(w, pg, "database depth out of range");
	return lm_tree(w, root, depth, LM_SUB);
}

/* Node i of a leaf page p (number pg); *pk, *pklen: the previous key. */
static bool lm_leaf_node(struct lm_walk *w, uint64_t pg, const unsigned char *p, size_t off,
			 enum lm_kind kind, const unsigned char **pk, size_t *pklen)
{
	const unsigned char *node = p + off;
	uint32_t dsize = get16(node) | (uint32_t)get16(node + 2) << 16;
	uint16_t flags = get16(node + 4);
	uint16_t ksize = get16(node + 6);
	const unsigned char *key = node + LM_NODEHDR;
	const unsigned char *data = key + ksize;
	size_t room = w->psize - off - LM_NODEHDR;
	unsigned char *big = NULL;
	bool ok;

	if (ksize > room)
		return lm_bad(w, pg, "key runs past its page");
	room -= ksize;
	if (kind == LM_FREE) {
		if (ksize != 8)
			return lm_bad(w, pg, "free-list key of a bad size");
		if (*pk && get64(*pk) >= get64(key))
			return lm_bad(w, pg, "free-list keys out of order");
	} else if (*pk && lm_keycmp(*pk, *pklen, key, ksize) >= 0) {
		return lm_bad(w, pg, "keys out of order");
	}
	*pk = key;
	*pklen = ksize;

	if (flags == LM_F_BIGDATA && kind != LM_MAIN) {
		unsigned char hdr[LM_PAGEHDR];
		uint64_t ov;
		uint32_t pages;

		if (room < 8)
			return lm_bad(w, pg, "overflow reference runs past its page");
		ov = get64(data);
		if (ov < LM_NUM_METAS || ov > w->last_pg ||
		    !lm_read(w, hdr, sizeof(hdr), ov * w->psize))
			return lm_bad(w, pg, "overflow page out of range");
		memcpy(&pages, hdr + 12, sizeof(pages));
		if (get64(hdr) != ov || get16(hdr + 10) != LM_P_OVERFLOW || pages < 1 ||
		    (uint64_t)dsize > (uint64_t)pages * w->psize - LM_PAGEHDR)
			return lm_bad(w, ov, "bad overflow page");
		if (!lm_claim(w, ov, pages))
			return false;
		if (kind != LM_FREE)
			return true;
		big = kv_xmalloc(dsize ? dsize : 1);
		ok = lm_read(w, big, dsize, ov * w->psize + LM_PAGEHDR) ?
			lm_idl(w, ov, big, dsize) : lm_bad(w, ov, "overflow page unreadable");
		free(big);
		return ok;
	}
	if (dsize > room)
		return lm_bad(w, pg, "value runs past its page");
	if (kind == LM_MAIN && flags == LM_F_SUBDATA)
		return dsize == LM_DB_BYTES ? lm_subdb(w, pg, data) :
			lm_bad(w, pg, "database record of a bad size");
	if (flags)
		return lm_bad(w, pg, "node flags this index never uses");
	return kind == LM_FREE ? lm_idl(w, pg, data, dsize) : true;
}

static bool lm_tree(struct lm_walk *w, uint64_t pg, unsigned depth, enum lm_kind kind)
{
	uint64_t units[65536 / 2 / 64];	/* 2-byte units of the page in use */
	unsigned char *p;
	const unsigned char *pk = NULL;
	size_t pklen = 0;
	size_t used = 0;
	uint16_t flags;
	uint16_t lower;
	uint16_t upper;
	size_t n;
	bool ok = true;

	if (!lm_claim(w, pg, 1))
		return false;
	p = kv_xmalloc(w->psize);
	if (!lm_read(w, p, w->psize, pg * w->psize)) {
		ok = lm_bad(w, pg, "page unreadable");
		goto out;
	}
	flags = get16(p + 10);
	lower = get16(p + 12);
	upper = get16(p + 14);
	if (get64(p) != pg)
		ok = lm_bad(w, pg, "page header names another page");
	else if (flags != (depth > 1 ? LM_P_BRANCH : LM_P_LEAF))
		ok = lm_bad(w, pg, "page of the wrong kind for its depth");
	else if (lower < LM_PAGEHDR + 2 || lower > upper || upper > w->psize ||
		 (lower - LM_PAGEHDR) % 2)
		ok = lm_bad(w, pg, "page bounds out of range");
	n = ok ? (size_t)(lower - LM_PAGEHDR) / 2 : 0;

	/*
	 * LMDB packs nodes from upper to the end of the page and, when it
	 * deletes one, moves the nodes below it by its size: the nodes must
	 * tile [upper, psize) exactly, or a write scrambles the page.
	 */
	memset(units, 0, (w->psize / 2 + 63) / 64 * sizeof(units[0]));
	for (size_t i = 0; ok && i < n; i++) {
		size_t off = get16(p + LM_PAGEHDR + 2 * i);
		const unsigned char *node = p + off;
		size_t sz;

		if (off < upper || off % 2 || off + LM_NODEHDR > w->psize) {
			ok = lm_bad(w, pg, "node offset out of range");
			break;
		}
		sz = LM_NODEHDR + get16(node + 6);
		if (depth == 1)
			sz += get16(node + 4) & LM_F_BIGDATA ? 8 :
			      (get16(node) | (size_t)get16(node + 2) << 16);
		sz += sz % 2;
		if (sz > w->psize - off) {
			ok = lm_bad(w, pg, "node runs past its page");
			break;
		}
		for (size_t u = off / 2; u < (off + sz) / 2; u++)
			if (bit_test_set(units, u))
				ok = lm_bad(w, pg, "nodes overlap");
		used += sz;
		if (!ok)
			break;
		if (depth > 1) {
			uint64_t child = get16(node) | (uint64_t)get16(node + 2) << 16 |
					 (uint64_t)get16(node + 4) << 32;

			ok = lm_tree(w, child, depth - 1, kind);
		} else {
			ok = lm_leaf_node(w, pg, p, off, kind, &pk, &pklen);
		}
	}
	if (ok && used != w->psize - upper)
		ok = lm_bad(w, pg, "nodes do not fill the page from upper");
out:
	free(p);
	return ok;
}

/*
 * Walk the tree of the meta page LMDB uses (the one with the larger txnid,
 * as LMDB picks it). Returns 0 or -EIO (logged).
 */
int kv_lmdb_check(MDB_env *env, const char *path)
{
	unsigned char meta[LM_NUM_METAS][LM_META_TXNID + 8];
	struct lm_walk w = { .why = NULL };
	const unsigned char *cur;
	const unsigned char *db;
	MDB_envinfo info;
	MDB_stat st;
	uint64_t words;
	uint32_t magic;
	int fd;
	int rc;

	rc = mdb_env_info(env, &info);
	if (rc == 0)
		rc = mdb_env_stat(env, &st);
	if (rc == 0)
		rc = mdb_env_get_fd(env, &fd);
	if (rc) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot stat the index '%s': %s",
		       path, mdb_strerror(rc));
		return -EIO;
	}
	w.fd = fd;
	w.psize = st.ms_psize;
	w.last_pg = info.me_last_pgno;
	if (w.psize < 512 || w.psize > 65536 || (w.psize & (w.psize - 1))) {
		w.why = "page size out of range";
		goto out_bad;
	}
	for (int i = 0; i < LM_NUM_METAS; i++) {
		if (!lm_read(&w, meta[i], sizeof(meta[i]), (uint64_t)i * w.psize)) {
			w.why = "meta page unreadable";
			goto out_bad;
		}
	}
	cur = get64(meta[1] + LM_META_TXNID) > get64(meta[0] + LM_META_TXNID) ?
		meta[1] : meta[0];
	memcpy(&magic, cur + LM_PAGEHDR, sizeof(magic));
	if (get16(cur + 10) != LM_P_META || magic != LM_META_MAGIC ||
	    get64(cur + LM_META_TXNID) != info.me_last_txnid ||
	    get64(cur + LM_META_LASTPG) != info.me_last_pgno) {
		w.why = "meta page differs from what LMDB reports";
		goto out_bad;
	}

	words = (w.last_pg + 64) / 64;
	w.live = kv_xcalloc(words, sizeof(*w.live));
	w.freed = kv_xcalloc(words, sizeof(*w.freed));
	for (int i = 0; i < 2; i++) {
		enum lm_kind kind = i ? LM_MAIN : LM_FREE;
		uint16_t depth;
		uint64_t root;

		db = cur + LM_META_DBS + i * LM_DB_BYTES;
		depth = get16(db + 6);
		root = get64(db + 40);
		if (root == LM_INVALID) {
			if (depth)
				lm_bad(&w, 0, "empty database with a depth");
		} else if (depth < 1 || depth > LM_MAX_DEPTH) {
			lm_bad(&w, 0, "database depth out of range");
		} else if (i == 1 && get16(db + 4)) {
			lm_bad(&w, 0, "main database with flags this index never sets");
		} else {
			lm_tree(&w, root, depth, kind);
		}
		if (w.why)
			break;
	}
	for (uint64_t i = 0; !w.why && i < words; i++)
		if (w.live[i] & w.freed[i])
			lm_bad(&w, i * 64 + (uint64_t)__builtin_ctzll(w.live[i] & w.freed[i]),
			       "live page on the free list");
	free(w.live);
	free(w.freed);
	if (!w.why)
		return 0;
out_bad:
	kv_log(KV_ERR, KV_LOG_TIER, "index '%s' is corrupt: %s (page %" PRIu64 ")",
	       path, w.why, w.where);
	return -EIO;
}
