/*
 * test_clients.c - a real daemon and real client processes.
 *
 * - consistency: several client processes put, get, evict and look up
 *   random chunks; every byte of every get is checked against a record of
 *   what was put under that key (the content is a function of the key and
 *   its version, so any process can check it). A cache may forget, never lie.
 * - a client killed while holding pins and uncommitted allocations: all
 *   released within 1 s, usage back to the baseline.
 * - many handles in one process, and a handle shared by threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"

static struct kvt_daemon daemon_;

static int setup(void **state)
{
	const char *args[] = { "--dram-bytes", "64M", "--log", "warn", NULL };

	return kvt_start(&daemon_, args);
}

static int teardown(void **state)
{
	return kvt_stop(&daemon_) == 0 ? 0 : -1;
}

static struct kvc *connect_ns(const char *ns_name, uint32_t *ns)
{
	struct kvc *c = NULL;

	assert_int_equal(kvc_connect(daemon_.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, ns_name, ns), 0);
	return c;
}

/* The bytes stored under (key i, version v): a function of both. */
static void fill(unsigned char *buf, size_t n, uint64_t i, uint32_t v)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)v << 32);

	for (size_t j = 0; j < n; j += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + j, &x, n - j < 8 ? n - j : 8);
	}
}

static size_t size_of(uint64_t i)
{
	/* Mostly 1..129 KiB, every 16th key up to ~2 MiB; not page multiples,
	 * so tails are checked too. */
	if (i % 16 == 0)
		return 4096 + (i * 7919) % (2u << 20) + (i % 13);
	return 1024 + (i * 7919) % (128u << 10) + (i % 13);
}

/* TESTING.md plan 1: >= 1 M operations over 8 clients. KVT_OPS overrides
 * the per-client count (the sanitizer run uses fewer). */
#define KEYS 2000
#define CLIENTS 8
static int ops_per_client = 125000;

/*
 * One client process. Versions: a key's content only ever changes by
 * evict + put; all clients put version 0 and only evict (not rewrite), so
 * every present chunk must hold version 0's bytes. Exit status = number of
 * wrong chunks seen (capped), or 100 + error for a failed call.
 */
static int client_proc(unsigned seed)
{
	unsigned char *buf = malloc(4u << 20), *want = malloc(4u << 20);
	struct kvc *c = NULL;
	uint32_t ns;
	int wrong = 0;

	if (kvc_connect(daemon_.sock, &c) || kvc_ns_register(c, "consistency", &ns))
		return 100;
	srand(seed);
	for (int op = 0; op < ops_per_client; op++) {
		uint64_t i = (uint64_t)rand() % KEYS;
		struct kvc_key k = { .lo = i * 0x9e3779b97f4a7c15ull, .hi = i + 1 };
		size_t n = size_of(i), got = 0;
		int r = rand() % 10, ret;

		if (r < 4) {
			fill(buf, n, i, 0);
			ret = kvc_put(c, ns, &k, NULL, 256, 0, buf, n);
			if (ret && ret != -EEXIST && ret != -KVC_EFULL)
				return 101;
		} else if (r < 8) {
			ret = kvc_get(c, ns, &k, buf, 4u << 20, &got);
			if (ret == 0) {
				fill(want, n, i, 0);
				if (got != n || memcmp(buf, want, n))
					wrong++;
			} else if (ret != -ENOENT) {
				return 102;
			}
		} else if (r < 9) {
			ret = kvc_evict(c, ns, &k, 1, NULL);
			if (ret < 0)
				return 103;
		} else {
			uint8_t tier;

			ret = kvc_lookup(c, ns, &k, 1, &tier);
			if (ret < 0 || (ret == 1) != (tier == KVC_TIER_DRAM))
				return 104;
		}
	}
	kvc_close(c);
	free(buf);
	free(want);
	return wrong > 99 ? 99 : wrong;
}

static void test_consistency(void **state)
{
	pid_t pids[CLIENTS];
	struct kvc_stats st;
	struct kvc *c;
	uint32_t ns;
	long total = 0;

	for (int i = 0; i < CLIENTS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			_exit(client_proc(1000 + i));
	}
	for (int i = 0; i < CLIENTS; i++) {
		int st_;

		assert_int_equal(waitpid(pids[i], &st_, 0), pids[i]);
		assert_true(WIFEXITED(st_));
		if (WEXITSTATUS(st_) >= 100)
			fail_msg("client %d failed a call (code %d)", i, WEXITSTATUS(st_));
		total += WEXITSTATUS(st_);
	}
	print_message("figure: consistency %d clients x %d ops: %ld wrong chunks\n",
		      CLIENTS, ops_per_client, total);
	assert_int_equal(total, 0);
	c = connect_ns("consistency", &ns);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.pinned_chunks, 0);
	assert_int_equal(st.pending_chunks, 0);
	assert_true(st.tiers[0].evictions > 0);	/* ~190 MiB of keys over 64 MiB */
	kvc_close(c);
}

static uint64_t used_bytes(struct kvc *c, struct kvc_stats *st)
{
	assert_int_equal(kvc_stats(c, st), 0);
	return st->tiers[0].used_bytes;
}

static void test_client_killed(void **state)
{
	struct kvc *admin;
	struct kvc_stats st;
	uint64_t base;
	uint32_t ns;
	int pfd[2], st_;
	pid_t pid;
	char ch;

	admin = connect_ns("death", &ns);
	/* Start from an empty tier, so allocations grow usage, not evict. */
	assert_int_equal(kvc_flush(admin, KVC_TIER_NONE, KVC_FLUSH_DROP, NULL), 0);
	{
		unsigned char buf[65536];

		for (int i = 0; i < 8; i++) {
			struct kvc_key k = { .lo = (uint64_t)i, .hi = 77 };

			fill(buf, sizeof(buf), i, 0);
			assert_int_equal(kvc_put(admin, ns, &k, NULL, 16, 0, buf, sizeof(buf)), 0);
		}
	}
	base = used_bytes(admin, &st);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kvc_put_desc d[4];
		struct kvc_loc locs[8];
		struct kvc_key keys[8];
		void *ptrs[4];
		struct kvc *c;
		uint32_t cns;

		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a failed test */
		if (kvc_connect(daemon_.sock, &c) || kvc_ns_register(c, "death", &cns))
			_exit(1);
		for (int i = 0; i < 8; i++)
			keys[i] = (struct kvc_key){ .lo = (uint64_t)i, .hi = 77 };
		if (kvc_pin(c, cns, keys, 8, locs) || kvc_pin(c, cns, keys, 8, locs))
			_exit(2);
		memset(d, 0, sizeof(d));
		for (int i = 0; i < 4; i++) {
			d[i].key = (struct kvc_key){ .lo = (uint64_t)i, .hi = 78 };
			d[i].bytes = 3u << 20;
		}
		if (kvc_alloc(c, cns, d, 4, ptrs) != 4)
			_exit(3);
		if (write(pfd[1], "x", 1) != 1)
			_exit(4);
		pause();	/* killed here, holding everything */
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &ch, 1), 1);
	close(pfd[0]);
	assert_true(used_bytes(admin, &st) >= base + (12u << 20));
	assert_int_equal(st.pinned_chunks, 8);
	assert_int_equal(st.pending_chunks, 4);
	/* Pinned by the child: not evictable. */
	{
		struct kvc_key k0 = { .lo = 0, .hi = 77 };
		int est;

		assert_int_equal(kvc_evict(admin, ns, &k0, 1, &est), 0);
		assert_int_equal(est, -EBUSY);
	}
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st_, 0), pid);
	/* Released within 1 s of the socket closing. */
	for (int i = 0; i < 100; i++) {
		if (used_bytes(admin, &st) == base && st.pinned_chunks == 0 &&
		    st.pending_chunks == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(st.pinned_chunks, 0);
	assert_int_equal(st.pending_chunks, 0);
	assert_int_equal(st.tiers[0].used_bytes, base);
	kvc_close(admin);
}

struct shared {
	struct kvc *c;
	uint32_t ns;
	int id;
	int errors;
};

static void *thread_main(void *arg)
{
	struct shared *sh = arg;
	unsigned char buf[8192], back[8192];

	for (int i = 0; i < 300; i++) {
		struct kvc_key k = { .lo = (uint64_t)i, .hi = 1000 + (uint64_t)sh->id };
		size_t got;

		fill(buf, sizeof(buf), i + 1000u * sh->id, 0);
		if (kvc_put(sh->c, sh->ns, &k, NULL, 1, 0, buf, sizeof(buf)))
			sh->errors++;
		if (kvc_get(sh->c, sh->ns, &k, back, sizeof(back), &got) ||
		    got != sizeof(buf) || memcmp(buf, back, sizeof(buf)))
			sh->errors++;
	}
	return NULL;
}

static void test_shared_handle_threads(void **state)
{
	struct shared sh[4];
	pthread_t t[4];
	uint32_t ns;
	struct kvc *c = connect_ns("threads", &ns);

	for (int i = 0; i < 4; i++) {
		sh[i] = (struct shared){ .c = c, .ns = ns, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, &sh[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(sh[i].errors, 0);
	}
	kvc_close(c);
}

static void test_batches_past_message_limit(void **state)
{
	enum { N = 2500 };	/* more than one message of keys */
	struct kvc_put_desc *d = calloc(N, sizeof(*d));
	struct kvc_get_desc *g = calloc(N, sizeof(*g));
	struct kvc_key *keys = calloc(N, sizeof(*keys));
	uint8_t *tiers = calloc(N, 1);
	uint64_t *vals = calloc(N, sizeof(*vals)), *out = calloc(N, 64);
	uint32_t ns;
	struct kvc *c = connect_ns("batches", &ns);

	for (int i = 0; i < N; i++) {
		keys[i] = (struct kvc_key){ .lo = (uint64_t)i * 31 + 7, .hi = 5 };
		vals[i] = (uint64_t)i * 0x1234567ull;
		d[i].key = keys[i];
		d[i].data = &vals[i];
		d[i].bytes = sizeof(vals[i]);
		d[i].tokens = 1;
		d[i].position = (uint32_t)i;
		if (i) {
			d[i].parent = keys[i - 1];
			d[i].has_parent = 1;
		}
		g[i].key = keys[i];
		g[i].buf = &out[i * 8];
		g[i].cap = 64;
	}
	assert_int_equal(kvc_put_batch(c, ns, d, N), N);
	assert_int_equal(kvc_put_batch(c, ns, d, N), 0);	/* all EEXIST */
	assert_int_equal(d[N - 1].status, -EEXIST);
	assert_int_equal(kvc_lookup(c, ns, keys, N, tiers), N);
	assert_int_equal(tiers[N - 1], KVC_TIER_DRAM);
	assert_int_equal(kvc_get_batch(c, ns, g, N), N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].status, 0);
		assert_int_equal(g[i].bytes, 8);
		assert_int_equal(out[i * 8], vals[i]);
	}
	/* A gap stops the leading run but not the per-key answer. */
	assert_int_equal(kvc_evict(c, ns, &keys[N - 1], 1, NULL), 1);
	assert_int_equal(kvc_evict(c, ns, &keys[1500], 1, NULL), 1);
	assert_int_equal(kvc_lookup(c, ns, keys, N, tiers), 1500);
	assert_int_equal(tiers[1501], KVC_TIER_DRAM);
	kvc_close(c);
	free(d);
	free(g);
	free(keys);
	free(tiers);
	free(vals);
	free(out);
}

int main(void)
{
	const char *ops = getenv("KVT_OPS");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consistency),
		cmocka_unit_test(test_client_killed),
		cmocka_unit_test(test_shared_handle_threads),
		cmocka_unit_test(test_batches_past_message_limit),
	};

	if (ops && atoi(ops) > 0)
		ops_per_client = atoi(ops);
	return cmocka_run_group_tests(tests, setup, teardown);
}
