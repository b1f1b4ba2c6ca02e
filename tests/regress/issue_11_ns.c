/*
 * issue_11_ns.c - issue 11, "namespace ids that can never change owner":
 *
 *   - a name whose record cannot be written (its filesystem full) is
 *     refused with KVC_ENSREC and its id is never used, so no chunk can be
 *     written under it; once there is room the name registers normally,
 *     and after a restart no other name finds its chunks (root: a 64 MiB
 *     loop filesystem);
 *   - an SSD record whose namespace id has come to name another namespace
 *     is forgotten at start (its salt does not match): the new name never
 *     gets the old one's bytes;
 *   - NS_LIST and NS_DROP (`kvctl ns ls|rm`): counts, EBUSY while pinned,
 *     a dropped namespace's chunks and records gone for good, its id burned;
 *   - NS_LOOKUP: `kvctl ls|inspect|evict|get --ns` never create a name;
 *   - another user can neither see, look up nor drop a namespace.
 *
 * Cases that need root (or a loop device) skip with the reason otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <endian.h>
#include <inttypes.h>
#include <lmdb.h>

#include "tests/lib/tmpdir.h"
#include "tests/regress/issue_11.h"

static struct kvt_daemon dm;
static struct i11_loopfs fs;
static char ssd_dir[300];

static int setup(void **state)
{
	memset(&dm, 0, sizeof(dm));
	memset(&fs, 0, sizeof(fs));
	return kvt_tmpdir(ssd_dir, sizeof(ssd_dir), NULL, "kvt-i11ns-");
}

static int teardown(void **state)
{
	kvt_kill(&dm);
	kvt_cleanup(&dm);
	i11_loopfs_drop(&fs);
	return kvt_rmtree(ssd_dir) == 0 ? 0 : -1;
}

static void start(const char *dir, const char *extra1, const char *extra2)
{
	const char *args[] = { "--dram-bytes", "16M", "--ssd-dir", dir,
			       "--ssd-bytes", "16M", "--log", "info", extra1, extra2, NULL };

	assert_int_equal(kvt_start(&dm, args), 0);
}

static void restart_kill9(const char *dir)
{
	kvt_kill(&dm);
	kvt_cleanup(&dm);
	start(dir, NULL, NULL);
}

static int run_kvctl(const char *args, char *out, size_t len)
{
	return i11_kvctl(&dm, args, out, len);
}

static uint64_t n_namespaces(struct kvc *c)
{
	struct kvc_stats st;

	assert_int_equal(kvc_stats(c, &st), 0);
	return st.namespaces;
}

static unsigned present(struct kvc *c, uint32_t ns, uint64_t from, uint64_t to)
{
	unsigned n = 0;

	for (uint64_t i = from; i < to; i++) {
		struct kvc_key k = i11_key(i);

		n += kvc_lookup(c, ns, &k, 1, NULL) == 1;
	}
	return n;
}

/*
 * The namespace record cannot be written: its filesystem is full. Before:
 * the id stayed in use, chunks were written under it once there was room,
 * and after a restart the next name registered got that id and the old
 * namespace's chunks. Now the registration is refused (KVC_ENSREC) and the
 * id is never handed out.
 */
static void test_record_fails(void **state)
{
	char why[128], dir[400], name[256];
	struct kvc_flush_result fr;
	uint32_t ns = 0, ns2;
	unsigned wrong, tries, refused = 0;
	struct kvc *c;
	int ret = 0;

	if (i11_loopfs_make(&fs, 64, why, sizeof(why))) {
		print_message("skipped: %s\n", why);
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/ssd", fs.mnt);
	start(dir, NULL, NULL);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	i11_fill_fs(fs.mnt);
	/* Long names, until the index must grow and cannot. */
	for (tries = 0; tries < 2000; tries++) {
		snprintf(name, sizeof(name), "%0200u", tries);
		ret = kvc_ns_register(c, name, &ns);
		if (ret)
			break;
	}
	printf("figure: full filesystem: registration %u answered %d (%s)\n", tries, ret,
	       kvc_strerror(ret));
	if (ret == 0) {
		kvc_close(c);
		fail_msg("no registration refused on a full filesystem (the log %s a failed record)",
			 kvt_log_has(&dm, "cannot record namespace") ? "shows" : "does not show");
	}
	assert_int_equal(ret, -KVC_ENSREC);
	assert_true(kvt_log_has(&dm, "its record could not be written"));
	/* The name is not registered, nor usable under any id. */
	assert_int_equal(kvc_ns_lookup(c, name, &ns2), -ENOENT);
	assert_int_equal(kvc_ns_register(c, name, &ns2), -KVC_ENSREC);	/* still full */
	refused = 2;

	/* Room again: the name registers (a new id) and takes chunks. */
	i11_unfill_fs(fs.mnt);
	assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	assert_int_equal(i11_put(c, ns, 21, 0, 4, 256 << 10), 4);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	kvc_close(c);

	/* After a restart a new name finds nothing of it; the name does. */
	restart_kill9(dir);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "newcomer", &ns2), 0);
	assert_int_not_equal(ns2, ns);
	assert_int_equal(present(c, ns2, 0, 4), 0);
	assert_int_equal(kvc_ns_register(c, name, &ns2), 0);
	assert_int_equal(ns2, ns);
	assert_int_equal(i11_check(c, ns, 21, 0, 4, 256 << 10, &wrong), 4);
	assert_int_equal(wrong, 0);
	printf("figure: %u registrations refused with KVC_ENSREC on a full filesystem; "
	       "0 chunks written under their ids; after a restart 0 wrong bytes\n", refused);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

/* Rewrite namespace id's record in dir's index behind the daemon's back
 * (LMDB directly; the layout is docs/ssd.md's). */
static void rename_ns_record(const char *dir, uint32_t id, const char *name)
{
	unsigned char key[6] = { 'n', 's' };
	unsigned char val[8 + 256];
	uint32_t be = htobe32(id), uid = 0, len = (uint32_t)strlen(name);
	char path[400];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { sizeof(key), key }, v = { 8 + len, val };

	memcpy(key + 2, &be, 4);
	memcpy(val, &uid, 4);
	memcpy(val + 4, &len, 4);
	memcpy(val + 8, name, len);
	snprintf(path, sizeof(path), "%s/index", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/*
 * A namespace id that comes to name another namespace (the issue's
 * restart, by hand): its chunk records carry the old name's salt, so they
 * are forgotten at start. Before: the new name got the old one's bytes,
 * the checksum passing since it was seeded with the id.
 */
static void test_salt_mismatch(void **state)
{
	struct kvc_flush_result fr;
	struct kvc_stats st;
	uint32_t alpha, beta, gamma;
	unsigned wrong;
	struct kvc *c;

	start(ssd_dir, NULL, NULL);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	alpha = i11_ns_with(c, "alpha", 31, 8, 256 << 10);
	beta = i11_ns_with(c, "beta", 32, 8, 256 << 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);

	rename_ns_record(ssd_dir, alpha, "gamma");
	start(ssd_dir, NULL, NULL);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "gamma", &gamma), 0);
	assert_int_equal(gamma, alpha);		/* the id now names gamma */
	i11_check(c, gamma, 31, 0, 8, 256 << 10, NULL);
	if (present(c, gamma, 0, 8)) {
		kvc_close(c);
		fail_msg("namespace 'gamma' was handed alpha's chunks");
	}
	assert_true(kvt_log_has(&dm, "names no namespace now, or another one"));
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.ssd_records_wrong_ns, 8);
	assert_int_equal(st.checksum_failures, 0);
	/* beta is untouched; alpha, registered again, is a new, empty name */
	assert_int_equal(kvc_ns_register(c, "beta", &beta), 0);
	assert_int_equal(i11_check(c, beta, 32, 0, 8, 256 << 10, &wrong), 8);
	assert_int_equal(wrong, 0);
	assert_int_equal(kvc_ns_register(c, "alpha", &alpha), 0);
	assert_int_equal(present(c, alpha, 0, 8), 0);
	printf("figure: an id renamed under its records: %" PRIu64 " records forgotten at "
	       "start, 0 served to the new name\n", st.ssd_records_wrong_ns);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

static const struct kvc_ns_info *find_ns(const struct kvc_ns_info *v, int n,
					 const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* NS_LIST and NS_DROP, through libkvc and kvctl. */
static void test_ls_rm(void **state)
{
	struct kvc_ns_info v[KVC_NS_PAGE];
	struct kvc_flush_result fr;
	struct kvc_stats st;
	struct kvc_key k0 = i11_key(0);
	struct kvc_loc loc;
	uint32_t a, b, a2, cursor = 0;
	uint64_t chunks, bytes;
	char out[8192];
	struct kvc *c;
	int n;

	start(ssd_dir, NULL, NULL);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	a = i11_ns_with(c, "ns-a", 41, 3, 64 << 10);
	b = i11_ns_with(c, "ns-b", 42, 2, 64 << 10);
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, &fr), 0);

	n = kvc_ns_list(c, &cursor, v, KVC_NS_PAGE);
	assert_int_equal(n, 2);
	assert_int_equal(cursor, 0);
	assert_non_null(find_ns(v, n, "ns-a"));
	assert_int_equal(find_ns(v, n, "ns-a")->ns, a);
	assert_int_equal(find_ns(v, n, "ns-a")->chunks, 3);
	assert_int_equal(find_ns(v, n, "ns-a")->bytes, 3 * (64 << 10));
	assert_int_equal(find_ns(v, n, "ns-a")->salt, kvc_ns_salt("ns-a"));
	assert_int_equal(find_ns(v, n, "ns-b")->chunks, 2);
	assert_int_equal(find_ns(v, n, "ns-b")->uid, getuid());
	/* one page at a time */
	cursor = 0;
	assert_int_equal(kvc_ns_list(c, &cursor, v, 1), 1);
	assert_int_not_equal(cursor, 0);
	assert_int_equal(kvc_ns_list(c, &cursor, v, 1), 1);

	/* A pinned chunk keeps the whole namespace. */
	assert_int_equal(kvc_pin(c, a, &k0, 1, &loc), 0);
	assert_int_equal(loc.status, 0);
	assert_int_equal(kvc_ns_drop(c, "ns-a", &chunks, &bytes), -EBUSY);
	assert_int_equal(present(c, a, 0, 3), 3);
	assert_int_equal(kvc_release(c, a, &k0, 1, NULL), 0);
	assert_int_equal(kvc_ns_drop(c, "ns-a", &chunks, &bytes), 0);
	assert_int_equal(chunks, 3);
	assert_int_equal(bytes, 3 * (64 << 10));
	assert_int_equal(kvc_ns_drop(c, "ns-a", NULL, NULL), -ENOENT);
	/* The id is gone from this connection too, and never comes back. */
	assert_int_equal(kvc_lookup(c, a, &k0, 1, NULL), -KVC_ENONS);
	assert_int_equal(kvc_ns_lookup(c, "ns-a", &a2), -ENOENT);
	assert_int_equal(kvc_ns_register(c, "ns-a", &a2), 0);
	assert_int_not_equal(a2, a);
	assert_int_equal(present(c, a2, 0, 3), 0);
	cursor = 0;
	n = kvc_ns_list(c, &cursor, v, KVC_NS_PAGE);
	assert_int_equal(n, 2);
	assert_int_equal(find_ns(v, n, "ns-a")->ns, a2);
	assert_int_equal(find_ns(v, n, "ns-a")->chunks, 0);

	/* kvctl, human and JSON */
	assert_int_equal(run_kvctl("ns ls", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ns-b"));
	assert_int_equal(run_kvctl("ns ls --json", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "\"name\": \"ns-b\""));
	assert_non_null(strstr(out, "\"chunks\": 2"));
	assert_int_equal(run_kvctl("ns rm nope", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "no such namespace"));
	kvc_close(c);

	/* Durable: after kill -9, ns-a's records are gone, ns-b's are there. */
	restart_kill9(ssd_dir);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.tiers[st.n_tiers - 1].chunks, 2);
	assert_int_equal(st.ssd_records_wrong_ns, 0);
	assert_int_equal(kvc_ns_register(c, "ns-b", &b), 0);
	assert_int_equal(i11_check(c, b, 42, 0, 2, 64 << 10, NULL), 2);
	assert_int_equal(run_kvctl("ns rm ns-b --json", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "\"chunks\": 2"));
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.tiers[0].chunks + st.tiers[st.n_tiers - 1].chunks, 0);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

/* ls, inspect, evict and get with --ns never create a namespace. */
static void test_lookup_never_creates(void **state)
{
	static const char *const cmds[] = {
		"ls --ns nope",
		"inspect --ns nope --key 0123456789abcdef0123456789abcdef",
		"evict --ns nope --key 0123456789abcdef0123456789abcdef",
		"get --ns nope --key 0123456789abcdef0123456789abcdef -o /dev/null",
	};
	struct kvc *c, *c2;
	struct kvc_key k0 = i11_key(0);
	char out[4096];
	uint32_t ns, ns2;
	uint64_t before;

	start(ssd_dir, NULL, NULL);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "exists", &ns), 0);
	assert_int_equal(i11_put(c, ns, 51, 0, 2, 4096), 2);
	before = n_namespaces(c);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int rc = run_kvctl(cmds[i], out, sizeof(out));

		if (rc == 0 || n_namespaces(c) != before) {
			print_message("kvctl %s: exit %d, %s", cmds[i], rc, out);
			fail_msg("'kvctl %s' created a namespace", cmds[i]);
		}
	}
	assert_int_equal(kvc_ns_lookup(c, "nope", &ns2), -ENOENT);
	assert_int_equal(kvc_ns_lookup(c, "", &ns2), -EINVAL);
	assert_int_equal(n_namespaces(c), before);
	/* An existing name: found, and usable on the connection at once. */
	assert_int_equal(kvc_connect(dm.sock, &c2), 0);
	assert_int_equal(kvc_lookup(c2, ns, &k0, 1, NULL), -KVC_ENONS);
	assert_int_equal(kvc_ns_lookup(c2, "exists", &ns2), 0);
	assert_int_equal(ns2, ns);
	assert_int_equal(i11_check(c2, ns, 51, 0, 2, 4096, NULL), 2);
	assert_int_equal(run_kvctl("ls --ns exists", out, sizeof(out)), 0);
	assert_int_equal(run_kvctl("inspect --ns exists --key 0123456789abcdef0123456789abcdef",
				   out, sizeof(out)), 1);
	assert_int_equal(n_namespaces(c), before);
	kvc_close(c2);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

/* Another user, as nobody (65534): its own names only. Exit codes say
 * what went wrong. */
static int nobody(const char *sock)
{
	struct kvc_ns_info v[8];
	uint32_t ns, cursor = 0;
	struct kvc *c;
	int n;

	if (kvc_connect(sock, &c))
		return 1;
	if (kvc_ns_lookup(c, "root-ns", &ns) != -EACCES)
		return 2;
	if (kvc_ns_drop(c, "root-ns", NULL, NULL) != -EACCES)
		return 3;
	if (kvc_ns_register(c, "nobody-ns", &ns))
		return 4;
	n = kvc_ns_list(c, &cursor, v, 8);
	if (n != 1 || strcmp(v[0].name, "nobody-ns") || v[0].uid != 65534)
		return 5;
	kvc_close(c);
	return 0;
}

static void test_owners(void **state)
{
	const char *args[] = { "--dram-bytes", "8M", "--allow-uids", "0,65534",
			       "--log", "warn", NULL };
	struct kvc_ns_info v[8];
	uint32_t ns, cursor = 0;
	struct kvc *c;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		print_message("skipped: a second uid needs root\n");
		skip();
	}
	assert_int_equal(kvt_start(&dm, args), 0);
	assert_int_equal(kvc_connect(dm.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "root-ns", &ns), 0);
	chmod(dm.dir, 0755);
	chmod(dm.sock, 0666);
	pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(99);
		_exit(nobody(dm.sock));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* root sees both, and may drop another user's */
	assert_int_equal(kvc_ns_list(c, &cursor, v, 8), 2);
	assert_int_equal(kvc_ns_lookup(c, "nobody-ns", &ns), 0);
	assert_int_equal(kvc_ns_drop(c, "nobody-ns", NULL, NULL), 0);
	cursor = 0;
	assert_int_equal(kvc_ns_list(c, &cursor, v, 8), 1);
	kvc_close(c);
	assert_int_equal(kvt_stop(&dm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_salt_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ls_rm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_never_creates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owners, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
