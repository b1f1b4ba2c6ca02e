/*
 * remotebench.c - kvremotebench: the cluster tier's mover (tiers/remote.h)
 * against redis-benchmark on the same cluster, in one run.
 *
 *   put    STOREs of distinct chunks, all submitted at once (the mover runs
 *          them 64 to a pipelined batch), GB/s of chunk bytes; ceiling:
 *          redis-benchmark SET of values of the part size, same cluster,
 *          as many clients as the mover has connections.
 *   get    one PROBE of every chunk, then their LOADs, all submitted at
 *          once, GB/s; ceiling: redis-benchmark GET, the same way,
 *          counting only the share of its random keys that exist (a GET
 *          of a missing key moves no value).
 *   lookup a PROBE of 64 chunks (part 0 headers, checked), p50 and p99 of
 *          many; ceiling: 64 EXISTS pipelined by the same client
 *          (tiers/rcluster.h), which moves no header and checks nothing.
 *
 * The cluster is the tests' (tests/lib/rcluster.sh: 3 masters, 3 replicas
 * on loopback), started and stopped here unless --seeds names one.
 * Chunks are raw (codec none): this measures the network path, not zstd.
 * --quick: small counts, checks that everything works (make test).
 * --batch N: at most N jobs a batch (the mover's conf.batch; its 4 MiB
 * bound on a batch's values holds as well).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/util.h"
#include "tests/lib/clock.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/codec.h"
#include "tiers/rcluster.h"
#include "tiers/remote.h"

#define CONNS		2	/* the mover's connections per node */
#define SALT		0xbe4cull

static char seeds[512];
static char dir[256];
static bool quick;

static struct kv_key key_of(uint64_t i)
{
	return (struct kv_key){ i * 0x9e3779b97f4a7c15ull + 1, i };
}

/* Wait until n submitted jobs came back and free them; return how many
 * failed. */
static unsigned wait_all(struct kv_remote *r, unsigned n)
{
	struct pollfd p = { .fd = kv_remote_event_fd(r), .events = POLLIN };
	unsigned got = 0, failed = 0;

	while (got < n) {
		struct kv_remote_job *j = kv_remote_reap(r), *next;

		for (; j; j = next) {
			next = j->next;
			failed += j->m.result != 0;
			got++;
			kv_remote_free(j);
		}
		if (got < n && poll(&p, 1, 1000) < 0)
			break;
	}
	return failed;
}

/* redis-benchmark's requests per second for one test, or -1: n requests
 * over as many keys (-r n), as the mover's chunks are distinct, so the
 * servers grow their memory as much as for the mover's puts. */
static double redis_rps(const char *test, size_t bytes, unsigned clients, unsigned n)
{
	char cmd[512], line[512];
	unsigned port;
	double rps = -1;
	FILE *f;

	if (sscanf(strchr(seeds, ':') + 1, "%u", &port) != 1)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "redis-benchmark --cluster -h 127.0.0.1 -p %u -t %s -d %zu -n %u -c %u -r %u -q 2>/dev/null",
		 port, test, bytes, n, clients, n);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *at = strrchr(line, '\r');	/* -q redraws a line with \r */

		at = at ? at + 1 : line;
		if (!strncasecmp(at, test, strlen(test)) && at[strlen(test)] == ':')
			rps = strtod(at + strlen(test) + 1, NULL);
	}
	pclose(f);
	return rps;
}

/* Of redis-benchmark's keyspace of n keys ("key:*", -r n), the share that
 * exists: its GET of a missing key moves no value, so GB/s counts only
 * these. The masters are the first three seeds (tests/lib/rcluster.sh). */
static double present_share(unsigned n)
{
	unsigned long total = 0;
	const char *p = seeds;

	for (int m = 0; m < 3 && p; m++) {
		char cmd[256], line[64];
		unsigned port;
		FILE *f;

		if (sscanf(strchr(p, ':') + 1, "%u", &port) != 1)
			return -1;
		snprintf(cmd, sizeof(cmd),
			 "redis-cli -p %u --scan --pattern 'key:*' 2>/dev/null | wc -l", port);
		f = popen(cmd, "r");
		if (f && fgets(line, sizeof(line), f))
			total += strtoul(line, NULL, 10);
		if (f)
			pclose(f);
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return total >= n ? 1.0 : (double)total / n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void bench_size(struct kv_remote *r, size_t size, uint32_t part, char *host)
{
	unsigned n = quick ? 8 : (unsigned)((512ull << 20) / size);
	unsigned fails, clients = 3 * CONNS;
	struct kv_remote_probe *ps = kv_xcalloc(n, sizeof(*ps));
	struct kv_remote_job *pj = kv_remote_new();
	double t, put_gbs, get_gbs, set_rps, get_rps, share;
	unsigned bench_n = quick ? 64 : (unsigned)((512ull << 20) / part);

	for (size_t b = 0; b < size; b++)
		host[b] = (char)(b * 31 + 7);
	t = kvt_now_s();
	for (unsigned i = 0; i < n; i++) {
		struct kv_remote_job *j = kv_remote_new();

		j->m.op = KV_MOVE_STORE;
		j->m.host = host;
		j->m.host_len = j->m.bytes = size;
		j->m.key = key_of(i);
		j->m.rec = (struct kv_move_rec){ .salt = SALT, .codec = KV_CODEC_NONE };
		kv_remote_submit(r, j);
	}
	fails = wait_all(r, n);
	put_gbs = (double)n * size / (kvt_now_s() - t) / 1e9;
	if (fails)
		printf("put: %u of %u failed\n", fails, n);
	t = kvt_now_s();
	for (unsigned i = 0; i < n; i++)
		ps[i] = (struct kv_remote_probe){ .salt = SALT, .key = key_of(i) };
	pj->m.op = KV_MOVE_OWN;
	pj->own = KV_REMOTE_PROBE;
	pj->probes = ps;
	pj->n_probes = n;
	kv_remote_submit(r, pj);
	wait_all(r, 1);
	for (unsigned i = 0; i < n; i++) {
		struct kv_remote_job *j = kv_remote_new();

		if (ps[i].result) {
			fails++;
			kv_remote_free(j);
			continue;
		}
		j->m.op = KV_MOVE_LOAD;
		j->m.host = host + size;	/* one destination: the figure, not the data */
		j->m.host_len = j->m.bytes = size;
		j->m.key = key_of(i);
		j->want = ps[i].hdr;
		kv_remote_submit(r, j);
	}
	fails += wait_all(r, n);
	get_gbs = (double)n * size / (kvt_now_s() - t) / 1e9;
	if (memcmp(host, host + size, size)) {
		printf("get: wrong bytes\n");
		fails++;
	}
	set_rps = redis_rps("SET", part, clients, bench_n);
	share = present_share(bench_n);
	get_rps = redis_rps("GET", part, clients, bench_n) * share;
	printf("chunk %5zu KiB (%zu values of %u KiB): put %.2f GB/s, redis SET %.2f GB/s: %.2f of it; get %.2f GB/s, redis GET %.2f GB/s (%.0f%% of its keys there): %.2f of it%s\n",
	       size >> 10, (size + part - 1) / part, part >> 10,
	       put_gbs, set_rps * part / 1e9, put_gbs / (set_rps * part / 1e9),
	       get_gbs, get_rps * part / 1e9, share * 100, get_gbs / (get_rps * part / 1e9),
	       fails ? " (failures above)" : "");
	printf("figure: remote put %zu KiB chunks %.2f of redis-benchmark SET, get %.2f of GET (targets 0.8)\n",
	       size >> 10, put_gbs / (set_rps * part / 1e9), get_gbs / (get_rps * part / 1e9));
	free(ps);
	if (fails)
		exit(1);
}

/* A 64-key PROBE against 64 pipelined EXISTS of the same names. */
static void bench_lookup(struct kv_remote *r)
{
	unsigned reps = quick ? 20 : 500;
	uint64_t *probe_ns = kv_xcalloc(reps, sizeof(uint64_t));
	uint64_t *exists_ns = kv_xcalloc(reps, sizeof(uint64_t));
	struct kv_rc_conf rcc = { .seeds = seeds, .timeout_ms = 2000, .conns = CONNS };
	struct kv_remote_probe ps[64];
	char names[64][KV_REMOTE_NAME_MAX];
	struct kv_rc_cmd cmds[64];
	struct kv_rc *rc;

	if (kv_rc_open(&rc, &rcc)) {
		printf("lookup: no client\n");
		exit(1);
	}
	for (unsigned k = 0; k < reps; k++) {
		struct kv_remote_job *j = kv_remote_new();
		uint64_t t = kvt_now_ns();

		for (unsigned i = 0; i < 64; i++) {
			struct kv_key key = key_of(i);

			ps[i] = (struct kv_remote_probe){ .salt = SALT, .key = key };
			cmds[i] = (struct kv_rc_cmd){ .op = KV_RC_EXISTS, .key = names[i],
				.key_len = kv_remote_name(names[i], SALT, &key, 0) };
		}
		j->m.op = KV_MOVE_OWN;
		j->own = KV_REMOTE_PROBE;
		j->probes = ps;
		j->n_probes = 64;
		kv_remote_submit(r, j);
		wait_all(r, 1);
		probe_ns[k] = kvt_now_ns() - t;
		t = kvt_now_ns();
		kv_rc_run(rc, cmds, 64);
		exists_ns[k] = kvt_now_ns() - t;
	}
	qsort(probe_ns, reps, sizeof(uint64_t), cmp_u64);
	qsort(exists_ns, reps, sizeof(uint64_t), cmp_u64);
	printf("lookup64 probe p50 %.1f us p99 %.1f us; 64 pipelined EXISTS p50 %.1f us p99 %.1f us\n",
	       probe_ns[reps / 2] / 1e3, probe_ns[reps * 99 / 100] / 1e3,
	       exists_ns[reps / 2] / 1e3, exists_ns[reps * 99 / 100] / 1e3);
	printf("figure: remote lookup64 p99 %.2f x pipelined EXISTS (target <= 2)\n",
	       (double)probe_ns[reps * 99 / 100] / (double)exists_ns[reps * 99 / 100]);
	kv_rc_close(rc);
	free(probe_ns);
	free(exists_ns);
}

int main(int argc, char **argv)
{
	struct kv_remote_conf c = { .timeout_ms = 10000, .conns = CONNS, .level = 1 };
	bool own = true;
	struct kv_remote *r;
	char cmd[512];
	char *host;
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
			c.batch = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			snprintf(seeds, sizeof(seeds), "%s", argv[++i]);
			own = false;
		} else {
			fprintf(stderr, "usage: kvremotebench [--quick] [--batch JOBS] [--seeds host:port,...]\n");
			return 2;
		}
	}
	if (own) {
		if (kvt_tmpdir(dir, sizeof(dir), NULL, "kvremotebench-"))
			return 1;
		/* With our pid: the script stops the cluster if we die first. */
		snprintf(cmd, sizeof(cmd), "tests/lib/rcluster.sh start %s %d", dir, (int)getpid());
		f = popen(cmd, "r");
		if (!f || !fgets(seeds, sizeof(seeds), f)) {
			fprintf(stderr, "kvremotebench: no cluster (scripts/deps.sh test installs redis)\n");
			return 1;
		}
		pclose(f);
		seeds[strcspn(seeds, "\n")] = 0;
	}
	c.seeds = seeds;
	host = mmap(NULL, 8u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (host == MAP_FAILED || kv_remote_open(&r, &c))
		return 1;
	printf("kvremotebench: the cluster tier's mover against redis-benchmark, cluster %s (3 masters + 3 replicas, loopback), %u connections per node, raw chunks\n",
	       seeds, CONNS);
	bench_size(r, quick ? 64u << 10 : 1u << 20, KV_REMOTE_PART_DEFAULT, host);
	if (!quick)
		bench_size(r, 4u << 20, KV_REMOTE_PART_DEFAULT, host);
	bench_lookup(r);
	kv_remote_close(r);
	if (own) {
		snprintf(cmd, sizeof(cmd), "tests/lib/rcluster.sh stop %s", dir);
		if (system(cmd))
			fprintf(stderr, "kvremotebench: stopping the cluster failed\n");
	}
	return 0;
}
