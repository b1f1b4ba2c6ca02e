/*
 * test_remote.c - the remote tier (tiers/remote.h) against a real Redis
 * Cluster of 3 masters and 3 replicas on loopback (tests/lib/rcluster.sh):
 *
 * - two tier instances, as two nodes' daemons would have, share: what A
 *   stores, B finds with a PROBE and loads byte-exact, for 1,000 chunks
 *   over all slots, one part or several, raw or compressed;
 * - a value changed behind the tier's back (SETRANGE into a payload or a
 *   header) is a miss and a counter, never bytes handed on; so is a load
 *   whose chunk another writer replaced since it was probed;
 * - a chunk never stored is a miss;
 * - a cluster that cannot be reached fails jobs fast, as misses.
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

#include "lib/errors.h"
#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/codec.h"
#include "tiers/remote.h"

#define MIB		(1ull << 20)
#define PART		(1u << 20)	/* small parts: several per large chunk */
#define N		1000
#define SALT		0x5a17ull

static char dir[256];
static char seeds[512];
static char *src, *dst;			/* host extents: the source, the copy */

/* The bytes of chunk i (size n): half runs of a byte, half random, so
 * compression has something to do and every chunk differs. */
static void fill(char *p, uint64_t i, size_t n)
{
	uint64_t s = i * 0x9e3779b97f4a7c15ull + 1;

	for (size_t b = 0; b < n; b++)
		p[b] = (char)(b % 512 < 256 ? (b / 64 + i) : kvt_splitmix(&s));
}

static size_t size_of(uint64_t i)
{
	uint64_t s = i + 77;

	if (i % 50 == 0)		/* 20 chunks of 2 or 3 parts */
		return 2 * MIB + kvt_splitmix(&s) % MIB;
	return 1 + kvt_splitmix(&s) % (128 * 1024);
}

static struct kv_key key_of(uint64_t i)
{
	return (struct kv_key){ i * 0x2545f4914f6cdd1dull, i + 1 };
}

static int cluster_up(void **state)
{
	char cmd[512];
	FILE *f;

	if (kvt_tmpdir(dir, sizeof(dir), NULL, "kvt-remote-"))
		return -1;
	snprintf(cmd, sizeof(cmd), "tests/lib/rcluster.sh start %s", dir);
	f = popen(cmd, "r");
	if (!f || !fgets(seeds, sizeof(seeds), f)) {
		fprintf(stderr, "test_remote: no cluster (redis-server and redis-tools: scripts/deps.sh test)\n");
		if (f)
			pclose(f);
		return -1;
	}
	seeds[strcspn(seeds, "\n")] = 0;
	if (pclose(f))
		return -1;
	src = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return src == MAP_FAILED || dst == MAP_FAILED ? -1 : 0;
}

static int cluster_down(void **state)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "tests/lib/rcluster.sh stop %s", dir);
	if (system(cmd))
		fprintf(stderr, "test_remote: stopping the cluster failed\n");
	munmap(src, 4 * MIB);
	munmap(dst, 4 * MIB);
	return 0;
}

static struct kv_remote *open_tier(const char *where, unsigned timeout_ms)
{
	struct kv_remote_conf c = {
		.seeds = where, .timeout_ms = timeout_ms, .conns = 2, .part_bytes = PART,
		.level = KV_CODEC_LEVEL_DEFAULT,
	};
	struct kv_remote *r;

	assert_int_equal(kv_remote_open(&r, &c), 0);
	return r;
}

/* Submit j and wait for it to come back. */
static void run(struct kv_remote *r, struct kv_remote_job *j)
{
	struct pollfd p = { .fd = kv_remote_event_fd(r), .events = POLLIN };
	struct kv_remote_job *got;

	kv_remote_submit(r, j);
	for (int i = 0; i < 600; i++) {
		got = kv_remote_reap(r);
		if (got) {
			assert_ptr_equal(got, j);
			assert_null(got->next);
			return;
		}
		assert_true(poll(&p, 1, 100) >= 0);
	}
	fail_msg("a job did not come back in 60 s");
}

static int store(struct kv_remote *r, uint64_t i, uint8_t codec, char *from, size_t n)
{
	struct kv_remote_job *j = kv_remote_new();
	int ret;

	j->m.op = KV_MOVE_STORE;
	j->m.host = from;
	j->m.host_len = n;
	j->m.bytes = n;
	j->m.key = key_of(i);
	j->m.rec = (struct kv_move_rec){ .salt = SALT, .codec = codec, .tokens = 16,
					 .position = (uint32_t)i * 16 };
	run(r, j);
	ret = j->m.result;
	kv_remote_free(j);
	return ret;
}

static int probe(struct kv_remote *r, uint64_t i, struct kv_remote_hdr *h)
{
	struct kv_remote_probe p = { .salt = SALT, .key = key_of(i) };
	struct kv_remote_job *j = kv_remote_new();

	j->m.op = KV_MOVE_OWN;
	j->own = KV_REMOTE_PROBE;
	j->probes = &p;
	j->n_probes = 1;
	run(r, j);
	kv_remote_free(j);
	if (!p.result)
		*h = p.hdr;
	return p.result;
}

static int load(struct kv_remote *r, const struct kv_remote_hdr *want, char *to)
{
	struct kv_remote_job *j = kv_remote_new();
	int ret;

	j->m.op = KV_MOVE_LOAD;
	j->m.host = to;
	j->m.host_len = 4 * MIB;
	j->m.bytes = want->bytes;
	j->m.key = want->key;
	j->want = *want;
	run(r, j);
	ret = j->m.result;
	kv_remote_free(j);
	return ret;
}

static void test_two_nodes_share(void **state)
{
	struct kv_remote *a = open_tier(seeds, 5000), *b = open_tier(seeds, 5000);
	struct kv_remote_probe *ps = kv_xcalloc(N, sizeof(*ps));
	struct kv_remote_job *j = kv_remote_new();
	struct kv_remote_stats st;
	unsigned found = 0;

	for (uint64_t i = 0; i < N; i++) {
		size_t n = size_of(i);

		fill(src, i, n);
		assert_int_equal(store(a, i, i % 2 ? KV_CODEC_ZSTD : KV_CODEC_NONE, src, n), 0);
	}
	/* B asks for all of them in one PROBE: one pipelined batch. */
	for (uint64_t i = 0; i < N; i++)
		ps[i] = (struct kv_remote_probe){ .salt = SALT, .key = key_of(i) };
	j->m.op = KV_MOVE_OWN;
	j->own = KV_REMOTE_PROBE;
	j->probes = ps;
	j->n_probes = N;
	run(b, j);
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(ps[i].result, 0);
		assert_int_equal(ps[i].hdr.bytes, size_of(i));
		assert_int_equal(ps[i].hdr.position, i * 16);
		memset(dst, 0x5a, ps[i].hdr.bytes);
		assert_int_equal(load(b, &ps[i].hdr, dst), 0);
		fill(src, i, size_of(i));
		assert_memory_equal(dst, src, size_of(i));
		found++;
	}
	assert_int_equal(found, N);
	kv_remote_stats(b, &st);
	assert_true(st.up);
	assert_int_equal(st.probe_hits, N);
	assert_int_equal(st.corrupt, 0);
	assert_int_equal(st.masters, 3);
	kv_remote_free(j);
	free(ps);
	kv_remote_close(a);
	kv_remote_close(b);
}

/* SETRANGE on the value of (chunk i, part), through the cluster's redirects. */
static void overwrite(uint64_t i, uint32_t part, size_t at)
{
	char name[KV_REMOTE_NAME_MAX], cmd[1024], port[16];
	struct kv_key k = key_of(i);

	kv_remote_name(name, SALT, &k, part);
	snprintf(port, sizeof(port), "%s", strchr(seeds, ':') + 1);
	port[strcspn(port, ",")] = 0;
	snprintf(cmd, sizeof(cmd), "redis-cli -c -p %s SETRANGE '%s' %zu XXXX >/dev/null",
		 port, name, at);
	assert_int_equal(system(cmd), 0);
}

static void test_corruption_is_a_miss(void **state)
{
	struct kv_remote *r = open_tier(seeds, 5000);
	struct kv_remote_stats before, after;
	struct kv_remote_hdr h;

	kv_remote_stats(r, &before);
	/* A payload byte of a one-part chunk, then of a later part. */
	assert_int_equal(probe(r, 1, &h), 0);
	overwrite(1, 0, KV_REMOTE_HDR + 10);
	assert_int_equal(load(r, &h, dst), -KV_ECORRUPT);
	assert_int_equal(probe(r, 50, &h), 0);
	assert_true(h.parts > 1);
	overwrite(50, h.parts - 1, KV_REMOTE_HDR + 1);
	assert_int_equal(load(r, &h, dst), -KV_ECORRUPT);
	/* A header: the probe itself refuses it. */
	overwrite(3, 0, 20);
	assert_int_equal(probe(r, 3, &h), -KV_ECORRUPT);
	kv_remote_stats(r, &after);
	assert_int_equal(after.corrupt - before.corrupt, 3);
	kv_remote_close(r);
}

/* Another writer replaces a chunk between its probe and its load: the
 * load sees parts of another write and misses. */
static void test_replaced_since_probe(void **state)
{
	struct kv_remote *a = open_tier(seeds, 5000), *b = open_tier(seeds, 5000);
	struct kv_remote_hdr h, h2;

	fill(src, 100, 3 * MIB);
	assert_int_equal(store(a, 100, KV_CODEC_NONE, src, 3 * MIB), 0);
	assert_int_equal(probe(b, 100, &h), 0);
	assert_int_equal(h.parts, 3);
	assert_int_equal(store(a, 100, KV_CODEC_ZSTD, src, 3 * MIB), 0);
	assert_int_equal(load(b, &h, dst), -KV_ECORRUPT);
	/* Probed again, it loads. */
	assert_int_equal(probe(b, 100, &h2), 0);
	assert_int_equal(load(b, &h2, dst), 0);
	assert_memory_equal(dst, src, 3 * MIB);
	kv_remote_close(a);
	kv_remote_close(b);
}

static void test_absent_is_a_miss(void **state)
{
	struct kv_remote *r = open_tier(seeds, 5000);
	struct kv_remote_hdr h;

	assert_int_equal(probe(r, N + 5, &h), -ENOENT);
	kv_remote_close(r);
}

static void test_cluster_unreachable(void **state)
{
	struct kv_remote *r = open_tier("127.0.0.1:1", 300);
	struct kv_remote_stats st;
	struct kv_remote_hdr h;
	uint64_t t0 = kv_now_ns();

	fill(src, 1, 1000);
	assert_int_not_equal(store(r, 1, KV_CODEC_NONE, src, 1000), 0);
	assert_int_not_equal(probe(r, 1, &h), 0);
	/* The second failed at once: the first's back-off. */
	assert_true(kv_now_ns() - t0 < 2000000000ull);
	kv_remote_stats(r, &st);
	assert_false(st.up);
	kv_remote_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_nodes_share),
		cmocka_unit_test(test_corruption_is_a_miss),
		cmocka_unit_test(test_replaced_since_probe),
		cmocka_unit_test(test_absent_is_a_miss),
		cmocka_unit_test(test_cluster_unreachable),
	};

	return cmocka_run_group_tests(tests, cluster_up, cluster_down);
}
