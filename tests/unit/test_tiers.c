/*
 * test_tiers.c - every registered tier driven through the same ops
 * (tiers/tier.h): the registry, space (alloc until full, stats, free), and
 * for every tier that moves bytes, a STORE of random bytes from host
 * memory and a LOAD back, compared byte for byte, through move_new,
 * submit, event_fd and reap.
 *
 * Each tier is opened its own way (DRAM by name, the SSD in a scratch
 * directory, HBM on GPU 0 when there is one); from then on the test sees
 * only the ops table. A tier this machine cannot open (HBM without a GPU)
 * is skipped with a line saying why, and the others still run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/kv_gpu.h"
#include "lib/key.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/codec.h"
#include "tiers/hbm.h"
#include "tiers/ssd.h"
#include "tiers/tier.h"

#define MIB		(1ull << 20)
#define SPACE		(16 * MIB)	/* each tier's space */
#define HOST		(16 * MIB)	/* the host range moves address */
#define ALIGN		4096ull

/* One tier, opened. */
struct fx {
	const struct kv_tier_ops *ops;
	void *space;		/* priv of alloc, free, stats */
	void *mover;		/* priv of the move verbs (NULL: none) */
	void *part;		/* kv_move.part */
	struct kv_tier dram;	/* DRAM: its handle */
	struct kv_ssd *ssd;
	struct kv_hbm *hbm;
	char dir[256];
};

static char *host;		/* the "DRAM range" of the moves */
static uint64_t seed = 13;

static int no_records(void *arg, uint32_t ns, const struct kv_key *key,
		      const struct kv_ssd_rec *rec, struct kv_extent *ext)
{
	return 0;
}

/* Open tier id its own way. false (and a line why) when it cannot be here. */
static bool fx_open(struct fx *f, unsigned id)
{
	struct kv_tier_conf tc = { .bytes = SPACE, .align = ALIGN };
	char why[128];
	int n = 0;

	memset(f, 0, sizeof(*f));
	f->ops = kv_tier_by_id(id);
	assert_non_null(f->ops);
	switch (id) {
	case KV_TIER_DRAM:
		assert_int_equal(kv_tier_open(&f->dram, "dram", &tc), 0);
		f->space = f->dram.priv;
		return true;
	case KV_TIER_SSD: {
		struct kv_ssd_conf sc = {
			.bytes = SPACE, .queue_depth = 8, .level = KV_CODEC_LEVEL_DEFAULT,
			.dram_base = host, .dram_bytes = HOST,
		};

		assert_int_equal(kvt_tmpdir(f->dir, sizeof(f->dir), NULL, "kvt-tiers-"), 0);
		sc.dir = f->dir;
		assert_int_equal(kv_ssd_open(&f->ssd, &sc, no_records, NULL), 0);
		f->space = f->mover = f->ssd;
		return true;
	}
	case KV_TIER_HBM: {
		struct kv_hbm_conf hc = { .align = ALIGN, .gpu = 0 };
		struct kv_hbm_arena *a;

		if (!kv_gpu_available(&n, why, sizeof(why))) {
			print_message("hbm: skipped (%s)\n", why);
			return false;
		}
		if (kv_hbm_open(&f->hbm, &hc) || kv_hbm_arena_open(f->hbm, SPACE, &a)) {
			print_message("hbm: skipped (%s)\n", kv_gpu_last_error());
			kv_hbm_close(f->hbm);
			return false;
		}
		f->space = f->part = a;
		f->mover = f->hbm;
		return true;
	}
	}
	fail_msg("tier %u has no way to open it here", id);
	return false;
}

static void fx_close(struct fx *f)
{
	kv_tier_close(&f->dram);
	kv_ssd_close(f->ssd);
	kv_hbm_close(f->hbm);		/* and its arena */
	if (f->dir[0])
		kvt_rmtree(f->dir);
}

static void test_registry(void **state)
{
	for (unsigned id = 0; id < KV_TIER_ALL; id++) {
		const struct kv_tier_ops *ops = kv_tier_by_id(id);
		bool moves, space = id != KV_TIER_REMOTE;

		assert_non_null(ops);
		assert_int_equal(ops->id, id);
		assert_ptr_equal(kv_tier_find(ops->name), ops);
		/* The remote tier's space is the cluster's servers', not
		 * the daemon's: it has no allocator. */
		assert_int_equal(ops->alloc != NULL, space);
		assert_int_equal(ops->free != NULL, space);
		assert_int_equal(ops->stats != NULL, space);
		assert_non_null(ops->close);
		/* The move verbs come together, and every tier but the host
		 * has them. */
		moves = ops->submit != NULL;
		assert_int_equal(ops->move_new != NULL, moves);
		assert_int_equal(ops->move_free != NULL, moves);
		assert_int_equal(ops->reap != NULL, moves);
		assert_int_equal(ops->event_fd != NULL, moves);
		assert_int_equal(moves, id != KV_TIER_DRAM);
	}
	assert_null(kv_tier_by_id(KV_TIER_ALL));
	assert_null(kv_tier_find("tape"));
}

/* Fill the tier's space with extents of mixed sizes, check the stats and
 * that no two overlap, then free them all. */
static void space_one(struct fx *f)
{
	struct kv_extent *e[4096];
	struct kv_alloc_stats st;
	uint64_t sum = 0;
	size_t n = 0;
	int ret;

	for (;;) {
		uint64_t bytes = 1 + kvt_splitmix(&seed) % (512 * 1024);

		assert_true(n < 4096);
		ret = f->ops->alloc(f->space, bytes, &e[n]);
		if (ret == -ENOMEM)
			break;
		assert_int_equal(ret, 0);
		assert_true(kv_extent_size(e[n]) >= bytes);
		sum += kv_extent_size(e[n]);
		n++;
	}
	f->ops->stats(f->space, &st);
	assert_int_equal(st.used, sum);
	assert_int_equal(st.extents, n);
	assert_true(sum <= st.size);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_true(kv_extent_offset(e[i]) + kv_extent_size(e[i]) <=
				    kv_extent_offset(e[j]) ||
				    kv_extent_offset(e[j]) + kv_extent_size(e[j]) <=
				    kv_extent_offset(e[i]));
	for (size_t i = 0; i < n; i++)
		f->ops->free(f->space, e[i]);
	f->ops->stats(f->space, &st);
	assert_int_equal(st.used, 0);
	assert_int_equal(st.extents, 0);
}

/* Wait for the tier's next finished move and take it. */
static struct kv_move *reap_one(const struct fx *f)
{
	struct pollfd p = { .fd = f->ops->event_fd(f->mover), .events = POLLIN };
	struct kv_move *m;

	for (int i = 0; i < 1000; i++) {
		m = f->ops->reap(f->mover);
		if (m) {
			assert_null(m->next);	/* one at a time here */
			return m;
		}
		assert_true(poll(&p, 1, 100) >= 0);
	}
	fail_msg("%s: no move came back in 100 s", f->ops->name);
	return NULL;
}

static struct kv_move *move_one(const struct fx *f, uint8_t op, struct kv_extent *e,
				uint64_t host_off, uint64_t bytes,
				const struct kv_move_rec *rec)
{
	struct kv_move *m = f->ops->move_new(f->mover);
	struct kv_move *done;

	m->op = op;
	m->part = f->part;
	m->ext = e;
	m->host = host + host_off;
	m->host_off = host_off;
	m->host_len = (bytes + ALIGN - 1) / ALIGN * ALIGN;	/* the extent's */
	m->bytes = bytes;
	m->ns = 7;
	m->key = (struct kv_key){ bytes, 42 };
	m->cookie = &m;
	if (rec)
		m->rec = *rec;
	f->ops->submit(f->mover, m);
	done = reap_one(f);
	assert_ptr_equal(done, m);
	assert_ptr_equal(done->cookie, &m);
	return done;
}

/* STORE random bytes from one host extent, LOAD them into another, and
 * compare; sizes from a byte to several MiB, compressible or not. */
static void moves_one(struct fx *f)
{
	static const uint64_t sizes[] = { 1, 4095, 4096, 65536 + 17, 3 * MIB + 5 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t bytes = sizes[i], from = 0, to = 8 * MIB;
		struct kv_move_rec rec = { .salt = 99, .codec = KV_CODEC_NONE };
		struct kv_extent *e;
		struct kv_move *m;

		for (uint64_t b = 0; b < bytes; b++)	/* half random, half runs */
			host[from + b] = (char)(i % 2 ? kvt_splitmix(&seed) : b / 64);
		memset(host + to, 0x5a, bytes);
		rec.codec = i % 2 ? KV_CODEC_NONE : KV_CODEC_ZSTD;
		assert_int_equal(f->ops->alloc(f->space, bytes, &e), 0);
		m = move_one(f, KV_MOVE_STORE, e, from, bytes, &rec);
		assert_int_equal(m->result, 0);
		rec = m->rec;		/* as stored */
		f->ops->move_free(f->mover, m);
		m = move_one(f, KV_MOVE_LOAD, e, to, bytes, &rec);
		assert_int_equal(m->result, 0);
		f->ops->move_free(f->mover, m);
		assert_memory_equal(host + to, host + from, bytes);
		f->ops->free(f->space, e);
	}
}

static void for_each_tier(void (*fn)(struct fx *f), bool moving)
{
	for (unsigned id = 0; id < KV_TIER_MAX; id++) {
		struct fx f;

		if (moving && !kv_tier_by_id(id)->submit)
			continue;
		if (!fx_open(&f, id))
			continue;
		print_message("%s\n", f.ops->name);
		fn(&f);
		fx_close(&f);
	}
}

static void test_space(void **state)
{
	for_each_tier(space_one, false);
}

static void test_moves(void **state)
{
	for_each_tier(moves_one, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_space),
		cmocka_unit_test(test_moves),
	};
	int ret;

	host = mmap(NULL, HOST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (host == MAP_FAILED)
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	munmap(host, HOST);
	return ret;
}
