/*
 * test_policy.c - eviction policies through a live daemon: read and switch
 * a tier's policy (only root and the daemon's user may), chunks and their
 * pins survive a switch, attention scores, namespaces with a cost model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"

static struct kvt_daemon kvd;

static int setup(void **state)
{
	/* Root is a tenant with an 8 MiB DRAM arena; nobody another. */
	const char *args[] = { "--dram-bytes", "9M", "--allow-uids", "0",
			       "--tenant", "nobody uids=65534 dram_bytes=1M",
			       "--log", "warn", NULL };

	return kvt_start(&kvd, args);
}

static const char *d_sock(void)
{
	return kvd.sock;
}

static int teardown(void **state)
{
	return kvt_stop(&kvd) == 0 ? 0 : -1;
}

static void test_switch_keeps_chunks(void **state)
{
	static const char *const names[] = { "gdsf", "h2o", "lru" };
	struct kvc_key k[6];
	struct kvc_loc loc;
	char name[16];
	struct kvc *c;
	uint32_t ns;
	char buf[65536] = { 1 };

	assert_int_equal(kvc_connect(kvd.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "switch", &ns), 0);
	assert_int_equal(kvc_policy(c, KVC_TIER_DRAM, NULL, name), 0);
	assert_string_equal(name, "lru");
	for (int i = 0; i < 6; i++) {
		k[i] = (struct kvc_key){ (uint64_t)i, 3 };
		assert_int_equal(kvc_put(c, ns, &k[i], i ? &k[i - 1] : NULL, 256,
					 (uint32_t)i * 256, buf, sizeof(buf)), 0);
	}
	assert_int_equal(kvc_pin(c, ns, &k[5], 1, &loc), 0);
	for (size_t i = 0; i < 3; i++) {
		if (kvc_policy(c, KVC_TIER_DRAM, names[i], name) == -ENOENT)
			continue;	/* not registered in this build */
		assert_string_equal(name, names[i]);
		assert_int_equal(kvc_lookup(c, ns, k, 6, NULL), 6);
	}
	assert_int_equal(kvc_policy(c, KVC_TIER_DRAM, "nope", name), -ENOENT);
	assert_int_equal(kvc_policy(c, KVC_TIER_SSD, NULL, name), -KVC_ENOTIER);
	assert_int_equal(kvc_policy(c, KVC_TIER_DRAM, "", name), -EINVAL);
	assert_int_equal(kvc_policy(c, KVC_TIER_DRAM, "a-name-far-too-long", name), -EINVAL);
	kvc_close(c);
}

static int nobody_switch(const char *sock)
{
	struct kvc *c;
	char name[16];

	if (kvc_connect(sock, &c))
		return 1;
	if (kvc_policy(c, KVC_TIER_DRAM, NULL, name))
		return 2;	/* reading is fine */
	if (kvc_policy(c, KVC_TIER_DRAM, "lru", name) != -EACCES)
		return 3;
	kvc_close(c);
	return 0;
}

static void test_only_admin_switches(void **state)
{
	pid_t pid;
	int st;

	if (geteuid() != 0)
		skip();
	chmod(kvd.dir, 0755);
	chmod(kvd.sock, 0666);
	pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(99);
		_exit(nobody_switch(kvd.sock));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_scores_and_models(void **state)
{
	struct kvc_key k[3] = { { 1, 9 }, { 2, 9 }, { 3, 9 } };
	float sc[3] = { 0.5f, 1.5f, 0.25f };
	int status[3];
	struct kvc *c;
	uint32_t ns, ns2;
	uint64_t v = 1;

	assert_int_equal(kvc_connect(kvd.sock, &c), 0);
	assert_int_equal(kvc_ns_register_model(c, "model/2048", 2048, 2, 26, &ns), 0);
	/* The first registration decides; a second, other model is fine. */
	assert_int_equal(kvc_ns_register_model(c, "model/2048", 4096, 2, 26, &ns2), 0);
	assert_int_equal(ns, ns2);
	assert_int_equal(kvc_ns_register_model(c, "bad", 0, 2, 26, &ns2), -EINVAL);
	assert_int_equal(kvc_ns_register_model(c, "bad", 64, -1, 26, &ns2), -EINVAL);
	assert_int_equal(kvc_ns_register_model(c, "bad", 64, NAN, 26, &ns2), -EINVAL);
	assert_int_equal(kvc_put(c, ns, &k[0], NULL, 256, 0, &v, sizeof(v)), 0);
	assert_int_equal(kvc_put(c, ns, &k[1], &k[0], 256, 256, &v, sizeof(v)), 0);
	/* k[2] is not cached; scores[1] is out of range. */
	assert_int_equal(kvc_score(c, ns, k, sc, 3, status), 1);
	assert_int_equal(status[0], 0);
	assert_int_equal(status[1], -EINVAL);
	assert_int_equal(status[2], -ENOENT);
	kvc_close(c);
}

/*
 * A put commits its chunks deepest first, so each parent ends up more
 * recent than its child and than anything after it in the same put. Put
 * [A, B child of A, C] in one batch: under LRU the least recent leaf is
 * then C (committed first), not B.
 */
static void test_put_commits_deepest_first(void **state)
{
	static char mib[1u << 20];
	struct kvc_put_desc d[3];
	struct kvc_key abc[3];
	struct kvc_stats st;
	uint8_t tiers[3];
	char name[16];
	struct kvc *c;
	uint32_t ns;

	assert_int_equal(kvc_connect(d_sock(), &c), 0);
	assert_int_equal(kvc_policy(c, KVC_TIER_DRAM, "lru", name), 0);
	/* Earlier tests' connections may still hold pins for a moment. */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(kvc_stats(c, &st), 0);
		if (st.pinned_chunks == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(kvc_flush(c, KVC_TIER_NONE, KVC_FLUSH_DROP, NULL), 0);
	assert_int_equal(kvc_ns_register(c, "order", &ns), 0);
	memset(d, 0, sizeof(d));
	for (int i = 0; i < 3; i++) {
		abc[i] = d[i].key = (struct kvc_key){ (uint64_t)i + 1, 5 };
		d[i].data = mib;
		d[i].bytes = sizeof(mib);
	}
	d[1].parent = d[0].key;
	d[1].has_parent = 1;
	assert_int_equal(kvc_put_batch(c, ns, d, 3), 3);
	/* Five more 1 MiB chunks fill the 8 MiB tier; a sixth evicts one. */
	for (uint64_t i = 0; i < 6; i++) {
		struct kvc_key x = { 100 + i, 5 };

		assert_int_equal(kvc_put(c, ns, &x, NULL, 1, 0, mib, sizeof(mib)), 0);
	}
	assert_int_equal(kvc_lookup(c, ns, abc, 3, tiers), 2);
	assert_int_equal(tiers[2], KVC_TIER_NONE);	/* C went, not B */
	kvc_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_switch_keeps_chunks),
		cmocka_unit_test(test_only_admin_switches),
		cmocka_unit_test(test_scores_and_models),
		cmocka_unit_test(test_put_commits_deepest_first),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
