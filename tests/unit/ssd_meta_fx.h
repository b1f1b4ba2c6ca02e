/*
 * ssd_meta_fx.h - what the SSD index's tests share (ssd_meta_fx.c): the
 * on-disk format record, a set of (namespace, key, record) items, and the
 * helpers. They fail the running cmocka test on any error.
 */
#ifndef KVT_SSD_META_FX_H
#define KVT_SSD_META_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

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

extern const struct kv_ssd_geom geom0;
extern uint64_t rng_state;
extern char not_a_handle;
uint64_t rnd(void);
void tmpdir(char *buf, size_t len);
void rmtree(const char *dir);
void index_path(char *buf, size_t len, const char *dir, const char *file);
struct kv_ssd_rec make_rec(void);
struct kv_ssd_op put_op(uint32_t ns, uint64_t lo, uint64_t hi);
struct kv_ssd_op del_op(uint32_t ns, uint64_t lo, uint64_t hi);
struct kv_ssd_meta *open_conf(const struct kv_ssd_meta_conf *conf,
			      struct kv_ssd_geom *geom);
struct kv_ssd_meta *open_dir(const char *dir);
int item_cmp(const void *a, const void *b);
void items_add(struct items *it, uint32_t ns, const struct kv_key *key,
	       const struct kv_ssd_rec *rec);
int collect(void *arg, uint32_t ns, const struct kv_key *key,
	    const struct kv_ssd_rec *rec);
uint64_t load_all(struct kv_ssd_meta *m, struct items *it);
void put_random(struct kv_ssd_meta *m, struct items *want, size_t n, size_t b,
		const uint32_t *nss, size_t n_ns);
void check_same(struct items *want, const struct items *got);
MDB_env *env_direct(const char *dir);
void direct_write(const char *dir, const char *db, const void *key, size_t klen,
		  const void *val, size_t vlen);
size_t direct_format(const char *dir, struct fmt *f, size_t *chunks);
void *read_file(const char *path, size_t *len);
uint64_t file_hash(const char *path);
int group_setup(void **state);

#endif
