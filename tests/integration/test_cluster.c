/*
 * test_cluster.c - the remote tier end to end: kvstored daemons sharing
 * chunks through a real Redis Cluster (3 masters, 3 replicas on loopback,
 * tests/lib/rcluster_fx.h), and what a daemon does when the cluster lies,
 * loses values, or is not there (docs/cluster.md).
 *
 * Every case checks bytes: a chunk that comes back is byte-exact, and one
 * that cannot is a miss, never an error that stops the daemon.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/cluster_fx.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/rcluster_fx.h"
#include "tests/lib/rng.h"

#define NSHARE		1000

/* B gets what A put: NSHARE chunks of every size up to 64 KiB, keys over
 * all slots, looked up (one round to the cluster per batch) and read. */
static void test_share(void **state)
{
	share(NULL, NSHARE);
}

/* A GET right after its LOOKUP goes straight to the load: the lookup's
 * answer (part 0's header) spares it a second question. An old answer is
 * not used. */
static void test_hint(void **state)
{
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, NULL), *cb = start(&b, NULL);
	uint64_t salt = kvt_now_ns() ^ 0x41, t0;
	struct kvc_key keys[10];
	struct kvc_stats st;
	uint8_t tiers[10];
	uint32_t na, nb;

	shared_ns(ca, cb, "hint", salt, &na, &nb);
	put_chunks(ca, na, salt, 0, 10);
	wait_written(ca, 10);
	for (unsigned k = 0; k < 10; k++)
		keys[k] = key_of(k, salt);
	t0 = kvt_now_ns();
	assert_int_equal(kvc_lookup(cb, nb, keys, 10, tiers), 10);
	assert_int_equal(remote_stats(cb, &st)->hits, 10);
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(get_chunk(cb, nb, salt, i), 1);
	/* Asked once, unless a machine stalled this past the hints' second. */
	if (kvt_now_ns() - t0 < 900000000ull)
		assert_int_equal(remote_stats(cb, &st)->hits, 10);
	else
		print_message("test_hint: the gets took over 0.9 s; not counted\n");
	assert_int_equal(remote_stats(cb, &st)->promotions, 10);
	/* Dropped, looked up, and read again after the answers are old. */
	assert_int_equal(kvc_evict(cb, nb, keys, 10, NULL), 10);
	assert_int_equal(kvc_lookup(cb, nb, keys, 10, tiers), 10);
	kvt_sleep_ms(1100);
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(get_chunk(cb, nb, salt, i), 1);
	assert_true(remote_stats(cb, &st)->hits >= 30);	/* asked again */
	stop(&a, ca);
	stop(&b, cb);
}

/* Run a shell command; its first output line into out (may be NULL). */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *f;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (out && (!fgets(out, (int)cap, f)))
		out[0] = '\0';
	if (out)
		out[strcspn(out, "\n")] = '\0';
	ret = pclose(f);
	return ret;
}

/* The name of chunk key's part 0 in the cluster, found by a scan of every
 * master (names end in the key's hex, tiers/remote_fmt.h). */
static void value_name(const struct kvc_key *k, char *out, size_t cap)
{
	for (int m = 0; m < 3; m++) {
		sh(out, cap, "redis-cli -p %u --scan --pattern 'kv:{*.%016llx%016llx:0}'",
		   cl.ports[m], (unsigned long long)k->hi, (unsigned long long)k->lo);
		if (out[0])
			return;
	}
	fail_msg("no value for the key in the cluster");
}

/* Bytes changed in the cluster: a payload fails its checksum (a miss and
 * a counter on GET), a header fails its check (a miss on LOOKUP). */
static void test_corrupt(void **state)
{
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, NULL), *cb = start(&b, NULL);
	uint64_t salt = kvt_now_ns() ^ 0xc0;
	struct kvc_key k0 = key_of(0, salt), k1 = key_of(1, salt);
	struct kvc_stats st;
	uint8_t tier;
	char vname[128];
	uint32_t na, nb;

	shared_ns(ca, cb, "corrupt", salt, &na, &nb);
	put_chunks(ca, na, salt, 0, 2);
	wait_written(ca, 2);
	/* Chunk 0: a byte of its payload (past the 112-byte header). */
	value_name(&k0, vname, sizeof(vname));
	assert_int_equal(sh(NULL, 0, "redis-cli -c -p %u SETRANGE '%s' 150 XYZ >/dev/null",
			    cl.ports[0], vname), 0);
	assert_int_equal(kvc_lookup(cb, nb, &k0, 1, &tier), 1);
	assert_int_equal(tier, KVC_TIER_REMOTE);	/* the header is intact */
	assert_int_equal(get_chunk(cb, nb, salt, 0), 0);
	assert_int_equal(remote_stats(cb, &st)->promotions, 0);
	assert_int_equal(st.checksum_failures, 1);
	/* Chunk 1: its header. */
	value_name(&k1, vname, sizeof(vname));
	assert_int_equal(sh(NULL, 0, "redis-cli -c -p %u SETRANGE '%s' 20 XYZ >/dev/null",
			    cl.ports[0], vname), 0);
	assert_int_equal(kvc_lookup(cb, nb, &k1, 1, &tier), 0);
	assert_int_equal(tier, KVC_TIER_NONE);
	assert_int_equal(get_chunk(cb, nb, salt, 1), 0);
	/* A still has both, byte-exact, from DRAM. */
	assert_int_equal(get_chunk(ca, na, salt, 0), 1);
	assert_int_equal(get_chunk(ca, na, salt, 1), 1);
	stop(&a, ca);
	stop(&b, cb);
}

/* remote_ns picks the namespaces; remote_write off reads without writing. */
static void test_ns_and_write(void **state)
{
	static const char *const only[] = { "--remote-ns", "only/,also/", NULL };
	static const char *const ro[] = { "--remote-write", "off", NULL };
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, only), *cb = start(&b, ro);
	uint64_t salt = kvt_now_ns() ^ 0x5a;
	struct kvc_key k = key_of(0, salt);
	struct kvc_stats st;
	uint32_t other, yes, yes_b, ro_ns;
	char name[64];
	uint8_t tier;

	snprintf(name, sizeof(name), "other/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(ca, name, &other), 0);
	snprintf(name, sizeof(name), "also/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(ca, name, &yes), 0);
	assert_int_equal(kvc_ns_register(cb, name, &yes_b), 0);
	put_chunks(ca, other, salt, 0, 1);
	put_chunks(ca, yes, salt, 0, 1);
	wait_written(ca, 1);
	kvt_sleep_ms(200);
	assert_int_equal(remote_stats(ca, &st)->demotions, 1);	/* not "other/" */
	/* B reads it, and writes nothing of its own. */
	assert_int_equal(get_chunk(cb, yes_b, salt, 0), 1);
	snprintf(name, sizeof(name), "ro/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(cb, name, &ro_ns), 0);
	put_chunks(cb, ro_ns, salt, 0, 1);
	kvt_sleep_ms(200);
	assert_int_equal(remote_stats(cb, &st)->demotions, 0);
	/* A namespace that does not use the cluster does not ask it. */
	assert_int_equal(kvc_lookup(ca, other, &k, 1, &tier), 1);
	k = key_of(1, salt);
	assert_int_equal(kvc_lookup(ca, other, &k, 1, &tier), 0);
	assert_int_equal(remote_stats(ca, &st)->misses, 0);
	stop(&a, ca);
	stop(&b, cb);
}

/* A server that answers every connection with junk: a status where a bulk
 * is due, then a bulk length far beyond any value, then silence. */
static void *junk_server(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		static const char junk[] = "+OK\r\n$99999999999\r\n:12\r\n*-5\r\n";

		if (fd < 0)
			return NULL;
		if (send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL) < 0) {
			/* the daemon hung up first: fine */
		}
		kvt_sleep_ms(50);
		close(fd);
	}
}

/* No cluster, and a node that lies: every remote answer is a miss, quick
 * (within the deadline), the outage is logged once, and local chunks are
 * served as ever. */
static void test_down_and_junk(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	char flag[64], url[128];
	const char *junk[] = { "--remote", url, "--remote-timeout-ms", "300", NULL };
	static const char *const dead[] = { "--remote", "redis-cluster://127.0.0.1:1",
					    "--remote-timeout-ms", "300", NULL };
	const char *const *which[2] = { dead, junk };
	pthread_t th;

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&th, NULL, junk_server, &lfd), 0);
	for (int w = 0; w < 2; w++) {
		struct kvt_daemon d;
		struct kvc *c = start(&d, which[w]);
		uint64_t salt = kvt_now_ns() ^ (uint64_t)w;
		struct kvc_key keys[64];
		uint8_t tiers[64];
		uint32_t ns;

		snprintf(flag, sizeof(flag), "down/%llx", (unsigned long long)salt);
		assert_int_equal(kvc_ns_register(c, flag, &ns), 0);
		put_chunks(c, ns, salt, 0, 8);
		for (int round = 0; round < 5; round++) {
			uint64_t t0 = kvt_now_ns();

			for (unsigned k = 0; k < 64; k++)
				keys[k] = key_of(k, salt);
			assert_int_equal(kvc_lookup(c, ns, keys, 64, tiers), 8);
			for (unsigned k = 8; k < 64; k++)
				assert_int_equal(tiers[k], KVC_TIER_NONE);
			assert_int_equal(get_chunk(c, ns, salt, 20), 0);
			/* Two deadlines at most: the lookup's and the get's. */
			assert_true(kvt_now_ns() - t0 < 2 * 300 * 1000000ull + 500 * 1000000ull);
			for (uint64_t i = 0; i < 8; i++)
				assert_int_equal(get_chunk(c, ns, salt, i), 1);
		}
		assert_true(kvt_log_has(&d, "cannot be reached"));
		stop(&d, c);
	}
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
}

/* Every master's own setting (replicas ignore maxmemory). */
static void masters_config(const char *what)
{
	for (int m = 0; m < 3; m++)
		assert_int_equal(sh(NULL, 0, "redis-cli -p %u CONFIG SET %s >/dev/null",
				    cl.ports[m], what), 0);
}

/* The servers evict (a small maxmemory, LRU, more data than fits): what
 * B reads is byte-exact or a miss, never an error; some of each. */
static void test_server_eviction(void **state)
{
	struct kvt_daemon a, b;
	struct kvc *ca, *cb;
	uint64_t salt = kvt_now_ns() ^ 0xe7;
	unsigned exact = 0, n = 600;
	uint32_t na, nb;

	masters_config("maxmemory-policy allkeys-lru");
	masters_config("maxmemory 6mb");
	ca = start(&a, NULL);
	cb = start(&b, NULL);
	shared_ns(ca, cb, "evict", salt, &na, &nb);
	put_chunks(ca, na, salt, 0, n);		/* about 20 MB */
	wait_written(ca, n);
	for (uint64_t i = 0; i < n; i++)
		exact += get_chunk(cb, nb, salt, i);
	print_message("figure: server eviction: %u of %u chunks came back, byte-exact; "
		      "the rest were misses\n", exact, n);
	assert_true(exact > 0 && exact < n);
	masters_config("maxmemory 0");
	stop(&a, ca);
	stop(&b, cb);
}

/*
 * redis-cli --cluster reshard moves slots under load: B reads chunks A
 * wrote before (dropping its copy each time, so every read asks the
 * cluster), while A writes more. Every read is exact (MOVED and ASK are
 * followed): none misses, and everything written is there at the end.
 */
static void test_reshard(void **state)
{
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, NULL), *cb = start(&b, NULL);
	uint64_t salt = kvt_now_ns() ^ 0x3e, t0;
	unsigned n = 200, reads = 0, exact = 0, more = 0;
	char from[64], to[64], done[320];
	struct kvc_stats st;
	uint32_t na, nb;

	shared_ns(ca, cb, "reshard", salt, &na, &nb);
	put_chunks(ca, na, salt, 0, n);
	wait_written(ca, n);
	sh(from, sizeof(from), "redis-cli -p %u CLUSTER MYID", cl.ports[0]);
	sh(to, sizeof(to), "redis-cli -p %u CLUSTER MYID", cl.ports[1]);
	assert_true(from[0] && to[0]);
	snprintf(done, sizeof(done), "%s/reshard.done", cl.dir);
	unlink(done);
	assert_int_equal(sh(NULL, 0, "(redis-cli --cluster reshard 127.0.0.1:%u --cluster-from %s "
			    "--cluster-to %s --cluster-slots 3000 --cluster-yes >/dev/null 2>&1; "
			    "echo $? > '%s') &", cl.ports[0], from, to, done), 0);
	t0 = kvt_now_ns();
	while (access(done, F_OK) != 0) {
		uint64_t i = reads % n;
		struct kvc_key k = key_of(i, salt);

		if (kvt_now_ns() - t0 > 120000000000ull)
			fail_msg("reshard did not end in 120 s");
		if (get_chunk(cb, nb, salt, i)) {
			exact++;
			assert_int_equal(kvc_evict(cb, nb, &k, 1, NULL), 1);
		}
		reads++;
		if (more < 200) {
			put_chunks(ca, na, salt, n + more, n + more + 1);
			more++;
		}
	}
	kvt_sleep_ms(100);
	assert_int_equal(sh(done, sizeof(done), "cat '%s'", done), 0);
	assert_string_equal(done, "0");		/* redis-cli's own status */
	print_message("figure: reshard of 3000 slots under load: %u reads during it, all "
		      "exact, %u chunks written meanwhile\n", reads, more);
	assert_int_equal(exact, reads);
	wait_written(ca, n + more);
	assert_int_equal(remote_stats(ca, &st)->alloc_failures, 0);
	for (uint64_t i = 0; i < n + more; i++)
		assert_int_equal(get_chunk(cb, nb, salt, i), 1);
	stop(&a, ca);
	stop(&b, cb);
}

/* When the cluster itself has moved a dead master's slots: polls a live
 * node's CLUSTER SLOTS until the dead port is no longer in it. */
struct promoted {
	unsigned dead, ask;		/* ports */
	uint64_t t0, at_ns;		/* the kill; when (0: not yet) */
};

static void *watch_promotion(void *arg)
{
	struct promoted *p = arg;

	while (kvt_now_ns() - p->t0 < 30000000000ull) {
		char line[64];

		line[0] = '\0';
		sh(line, sizeof(line), "redis-cli -p %u CLUSTER SLOTS 2>/dev/null | grep -cx %u",
		   p->ask, p->dead);
		if (line[0] == '0') {
			p->at_ns = kvt_now_ns() - p->t0;
			break;
		}
		kvt_sleep_ms(20);
	}
	return NULL;
}

/*
 * Last (it kills a master): while B reads, a master dies. Local hits go
 * on without a stall over 100 ms, remote reads of its slots miss (fast),
 * and once a replica has taken over, every chunk comes back byte-exact.
 */
static void test_failover(void **state)
{
	struct kvt_daemon a, b;
	struct kvc *ca = start(&a, NULL), *cb = start(&b, NULL);
	uint64_t salt = kvt_now_ns() ^ 0xf0, t0, worst = 0, last_miss = 0;
	unsigned n = 300, missed = 0, rounds = 0, pid;
	struct promoted pr = { .dead = cl.ports[0], .ask = cl.ports[1] };
	pthread_t th;
	bool all_back = false;
	char name[64];
	uint32_t na, nb, local;

	shared_ns(ca, cb, "failover", salt, &na, &nb);
	snprintf(name, sizeof(name), "local/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(cb, name, &local), 0);
	put_chunks(ca, na, salt, 0, n);
	put_chunks(cb, local, salt, 0, 16);
	wait_written(ca, n);
	pid = kvt_cluster_pid(&cl, cl.ports[0]);
	assert_true(pid > 1);	/* never kill(0) */
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	t0 = pr.t0 = kvt_now_ns();
	assert_int_equal(pthread_create(&th, NULL, watch_promotion, &pr), 0);
	while (!all_back) {
		unsigned got = 0;

		if (kvt_now_ns() - t0 > 30000000000ull)
			fail_msg("chunks not all back 30 s after a master died (%u missed)", missed);
		for (uint64_t i = 0; i < n; i++) {
			struct kvc_key k = key_of(i, salt);
			uint64_t t1 = kvt_now_ns(), took;

			assert_int_equal(get_chunk(cb, local, salt, i % 16), 1);
			took = kvt_now_ns() - t1;
			worst = took > worst ? took : worst;
			if (get_chunk(cb, nb, salt, i)) {
				got++;
				/* B keeps no copy: the next round asks again. */
				assert_int_equal(kvc_evict(cb, nb, &k, 1, NULL), 1);
			} else {
				missed++;
				last_miss = kvt_now_ns() - t0;
			}
		}
		rounds++;
		all_back = got == n;
	}
	pthread_join(th, NULL);
	/* A figure, not a timed assertion: the cluster's own failover is most
	 * of it, and its time is the servers'. */
	print_message("figure: failover: last remote miss %.2f s after the kill, the cluster "
		      "moved the dead master's slots after %.2f s (the daemon's share %.2f s; "
		      "%u rounds, %u misses); worst local hit %.1f ms\n",
		      (double)last_miss / 1e9, (double)pr.at_ns / 1e9,
		      pr.at_ns ? ((double)last_miss - (double)pr.at_ns) / 1e9 : -1.0, rounds,
		      missed, (double)worst / 1e6);
	assert_true(worst < 100000000ull);
	stop(&a, ca);
	stop(&b, cb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share),
		cmocka_unit_test(test_hint),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_ns_and_write),
		cmocka_unit_test(test_down_and_junk),
		cmocka_unit_test(test_server_eviction),
		cmocka_unit_test(test_reshard),
		cmocka_unit_test(test_failover),
	};

	return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
