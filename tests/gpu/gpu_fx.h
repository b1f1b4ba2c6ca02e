/*
 * gpu_fx.h - what the GPU client tests share: data from a seed, the
 * fixture, engine caches and the checks of gets (gpu_fx.c), and the child
 * processes (gpu_child.c). The functions fail the running cmocka test on
 * any error; a failure message names the seed.
 */
#ifndef KVT_GPU_FX_H
#define KVT_GPU_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"

#define MIB		((size_t)1 << 20)
#define POISON		0xa5
#define SPARE		4096	/* poisoned bytes after each gotten chunk */
#define MAX_LAYERS	16
#define MAX_DEV		32
#define MAX_HOST	160
#define MAX_CONN	8
#define TIER_BIT(t)	(1u << (t))

/* Item numbers: what fill() and key_of() are given, per purpose. */
#define ITEM_PUT	1000	/* chunks put by a child process */
#define ITEM_BIG	2000	/* case 4's chunks that overflow HBM */
#define ITEM_CACHE	9000	/* random engine caches */

/* What a case holds, released by teardown() even when it fails. */
struct fixture {
	struct kvt_daemon d[2];
	bool up[2];
	struct kvc *c[MAX_CONN];
	void *dev[MAX_DEV];
	void *host[MAX_HOST];
	struct kv_gpu_stream *s;
	struct kv_gpu_event *ev[MAX_LAYERS];
};

struct shape {
	enum kvc_layout_kind kind;
	uint32_t layers;
	uint32_t block_size;
	uint32_t num_blocks;
	uint32_t kv_heads;
	uint32_t head_dim;
	uint32_t elem_bytes;
	uint32_t chunk_tokens;
};

/*
 * A cache in device memory with a host image of what it should hold. Layers
 * lie in reverse order, and with K and V apart all K tensors come before
 * all V ones, so a copy that derives one layer's address from another's
 * (or V's from K's) writes the wrong place.
 */
struct cache {
	struct shape sh;
	size_t row;		/* one token's K (or V) in one layer */
	size_t page;		/* block_size rows */
	size_t seg;		/* a page's contiguous pieces: the page, or (HF)
				 * one head of one token */
	size_t seg_stride;	/* from one piece of a page to the next */
	uint32_t segs;		/* pieces a page: 1, or (HF) kv_heads */
	size_t tensor;		/* one layer's K (or V) pages */
	size_t bytes;
	uint32_t ppc;		/* pages per chunk */
	uint8_t *dev;
	uint8_t *want;
	uint8_t *got;
	void *k[MAX_LAYERS];
	void *v[MAX_LAYERS];
	struct kvc_layout l;
};

extern struct fixture fx;
extern uint64_t seed;
extern struct kvt_daemon shared_d;
void fill(void *buf, size_t len, uint64_t idx);
struct kvc_key key_of(uint64_t idx);
const char *err_name(int ret);
void expect_ret(int got, int want, const char *what);
void same_bytes(const void *got, const void *want, size_t n,
		const char *what, size_t item);
uint64_t now_ms(void);
int setup(void **state);
int teardown(void **state);
int group_setup(void **state);
int group_teardown(void **state);
struct kvt_daemon *fx_start(const char *const *args);
void fx_stop(struct kvt_daemon *d);
struct kvc *fx_connect(const char *sock, const char *ns_name, uint32_t *ns);
void fx_close(struct kvc *c);
void *fx_dev(size_t bytes);
void *fx_host(size_t bytes);
void upload(void *dev, const void *host, size_t n);
void download(void *host, const void *dev, size_t n);
void poison_dev(void *dev, size_t n);
void sync_event(int i, const char *what);
const struct kvc_tier_stats *find_tier(const struct kvc_stats *st, const char *name);
void check_tier(uint8_t tier, unsigned mask, const char *what, size_t item);
const char *kind_name(enum kvc_layout_kind kind);
const char *mode_name(enum kvc_gpu_mode mode);
struct shape small_shape(enum kvc_layout_kind kind);
struct shape big_shape(uint32_t num_blocks);
size_t shape_chunk_bytes(const struct shape *sh);
size_t page_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t p);
size_t chunk_off(const struct cache *ca, uint32_t l, unsigned kv, uint32_t t);
void cache_layout(struct cache *ca, const struct shape *sh, void *dev);
void cache_open(struct cache *ca, const struct shape *sh);
void cache_poison(struct cache *ca);
void cache_random(struct cache *ca, uint64_t item);
int32_t *random_pages(const struct cache *ca, size_t n);
void gather_host(struct cache *ca, const int32_t *pages, uint8_t *chunk);
void scatter_host(struct cache *ca, const uint8_t *chunk, const int32_t *pages,
		  uint32_t lb, uint32_t le);
void cache_check(struct cache *ca, const char *what);
void check_get_paged(struct kvc *c, uint32_t ns, struct cache *ca,
		     const struct kvc_key *keys, uint8_t *const *want, size_t n,
		     unsigned mask, const char *what);
void check_get_gpu(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		   uint8_t *const *want, size_t n, size_t bytes, unsigned mask,
		   uint8_t *tiers, uint8_t *dev, uint8_t *host, const char *what);
void check_get_host(struct kvc *c, uint32_t ns, const struct kvc_key *key,
		    const uint8_t *want, size_t bytes, uint8_t *buf, const char *what,
		    size_t item);
void put_host_chain(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		    uint8_t *const *data, size_t n, size_t bytes, uint32_t tokens);
void wait_dram_chunks(struct kvc *c, uint64_t chunks, const char *what);
int count_in_hbm(struct kvc *c, uint32_t ns, const struct kvc_key *keys, int n);
int gpu_start(void);

/* gpu_child.c */
pid_t spawn_child(const char *const *args);
void wait_child(pid_t pid, const char *what);
int child_main(int argc, char **argv);

#endif
