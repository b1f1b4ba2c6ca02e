/*
 * test_ssd_meta_disk.c - the SSD tier's LMDB index (tiers/ssd_meta.c)
 * against what it finds on disk and did not write: format records of
 * another version, magic or size, or none; invalid records (short, long,
 * flipped, wrong magic or codec, keys of the wrong size), dropped and
 * counted; and a stale reader left in the lock file by a killed process.
 *
 * The records are written with LMDB directly (ssd_meta_fx.c), only while
 * the module has the environment closed. The stale reader's children are
 * forked while this process holds no environment open, and open their own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "lib/errors.h"
#include "tiers/ssd_meta.h"
#include "tests/unit/ssd_meta_fx.h"

static void encode_key(unsigned char *k, uint32_t ns, uint64_t lo, uint64_t hi)
{
	for (int i = 0; i < 4; i++)
		k[i] = (unsigned char)(ns >> (24 - 8 * i));
	for (int i = 0; i < 8; i++) {
		k[4 + i] = (unsigned char)(lo >> (56 - 8 * i));
		k[12 + i] = (unsigned char)(hi >> (56 - 8 * i));
	}
}

static void expect_eformat(const char *dir, const char *what)
{
	struct kv_ssd_meta *sentinel = (struct kv_ssd_meta *)&not_a_handle;
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };
	struct kv_ssd_geom g = { .bytes = 77 };
	struct kv_ssd_meta *m = sentinel;
	char path[PATH_MAX];
	uint64_t h;

	print_message("ssd_meta format check: %s\n", what);
	index_path(path, sizeof(path), dir, "data.mdb");
	h = file_hash(path);
	assert_int_equal(kv_ssd_meta_open(&m, &conf, &g), -KV_EFORMAT);
	assert_ptr_equal(m, sentinel);
	assert_int_equal(g.bytes, 77);
	assert_int_equal(file_hash(path), h);	/* not a byte written */
}

static void test_format(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	struct fmt f = { 0 };
	struct fmt good;
	size_t chunks;
	char dir[64];
	char plain[64];

	rng_state = 8;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 50, 50, nss, 1);
	kv_ssd_meta_close(m);

	/* what a new directory holds, pinned */
	assert_int_equal(direct_format(dir, &good, &chunks), sizeof(good));
	assert_int_equal(good.magic, FMT_MAGIC);
	assert_int_equal(good.version, KV_SSD_FORMAT);
	assert_memory_equal(&good.geom, &geom0, sizeof(geom0));
	assert_int_equal(chunks, 50);

	f = good;
	f.version = KV_SSD_FORMAT + 1;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "a newer version");
	assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
	assert_int_equal(f.version, KV_SSD_FORMAT + 1);
	assert_int_equal(chunks, 50);

	/* format 1 (before records carried the namespace salt) is refused */
	f = good;
	f.version = 1;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "format 1");

	f = good;
	f.magic = 0x12345678;
	direct_write(dir, "meta", "format", 6, &f, sizeof(f));
	expect_eformat(dir, "another magic");

	direct_write(dir, "meta", "format", 6, &good, sizeof(good) - 8);
	expect_eformat(dir, "a short format record");

	direct_write(dir, "meta", "format", 6, NULL, 0);
	expect_eformat(dir, "records but no format");
	assert_int_equal(direct_format(dir, &f, &chunks), 0);
	assert_int_equal(chunks, 50);

	/* put back: all there, untouched */
	direct_write(dir, "meta", "format", 6, &good, sizeof(good));
	m = open_dir(dir);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	/* an empty index without a format is a new one: it gets one */
	assert_int_equal(kv_ssd_meta_clear(m), 0);
	kv_ssd_meta_close(m);
	direct_write(dir, "meta", "format", 6, NULL, 0);
	m = open_dir(dir);
	kv_ssd_meta_close(m);
	assert_int_equal(direct_format(dir, &f, &chunks), sizeof(f));
	assert_memory_equal(&f, &good, sizeof(f));
	rmtree(dir);

	/* an environment whose main database has a plain key "chunks" */
	tmpdir(plain, sizeof(plain));
	{
		char path[PATH_MAX];

		index_path(path, sizeof(path), plain, NULL);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	direct_write(plain, NULL, "chunks", 6, "not a database", 14);
	expect_eformat(plain, "another layout");
	rmtree(plain);

	free(want.v);
	free(got.v);
}

static void test_invalid_records(void **state)
{
	static const uint32_t nss[] = { 4 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	struct kv_ssd_rec r;
	unsigned char k[21] = { 0 };
	uint64_t bad;
	char dir[64];

	rng_state = 10;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 10, 10, nss, 1);
	kv_ssd_meta_close(m);

	/* value one byte short */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 1);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r) - 1);
	/* value one byte long */
	encode_key(k, 4, 100, 2);
	{
		unsigned char longer[sizeof(r) + 1] = { 0 };

		memcpy(longer, &r, sizeof(r));
		direct_write(dir, "chunks", k, 20, longer, sizeof(longer));
	}
	/* one flipped byte */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	((unsigned char *)&r)[40] ^= 0x10;
	encode_key(k, 4, 100, 3);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* wrong magic, sealed */
	r = make_rec();
	r.magic = 0x5253564c;
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 4);
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* a codec out of range, sealed */
	r = make_rec();
	r.codec = 3;
	kv_ssd_rec_seal(&r);
	encode_key(k, 0, 100, 5);	/* sorts before everything */
	direct_write(dir, "chunks", k, 20, &r, sizeof(r));
	/* a valid record under keys of the wrong size */
	r = make_rec();
	kv_ssd_rec_seal(&r);
	encode_key(k, 4, 100, 6);
	direct_write(dir, "chunks", k, 19, &r, sizeof(r));
	direct_write(dir, "chunks", k, 21, &r, sizeof(r));

	m = open_dir(dir);
	assert_int_equal(kv_ssd_meta_count(m), 17);
	bad = load_all(m, &got);
	assert_int_equal(bad, 7);
	check_same(&want, &got);
	assert_int_equal(kv_ssd_meta_count(m), 10);
	assert_int_equal(load_all(m, &got), 0);	/* gone for good */
	check_same(&want, &got);
	/* bad may be NULL */
	got.n = 0;
	assert_int_equal(kv_ssd_meta_load(m, collect, &got, NULL), 0);
	assert_int_equal(got.n, 10);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

/* ---- a stale reader ---------------------------------------------------- */

struct count_ctx {
	int pid;
	int n;
};

static int count_reader(const char *msg, void *arg)
{
	struct count_ctx *c = arg;
	int pid;

	if (sscanf(msg, "%d", &pid) == 1 && pid == c->pid)
		c->n++;
	return 0;
}

/*
 * The holder keeps the environment open, so the parent's open is not the
 * only one and LMDB does not reset the reader table (it does when a
 * process gets the lock file to itself): only mdb_reader_check() can clear
 * the dead reader's slot then. On 'l' + a pid it answers how many slots
 * that pid holds; on 'q' it exits.
 */
static void holder_main(const char *dir, int cmd, int resp)
{
	char path[PATH_MAX];
	MDB_env *env;
	char c = 'r';

	snprintf(path, sizeof(path), "%s/index", dir);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
	    mdb_env_open(env, path, MDB_NOTLS, 0600))
		_exit(2);
	if (write(resp, &c, 1) != 1)
		_exit(3);
	while (read(cmd, &c, 1) == 1 && c == 'l') {
		struct count_ctx cc = { 0 };

		if (read(cmd, &cc.pid, sizeof(cc.pid)) != sizeof(cc.pid))
			_exit(4);
		mdb_reader_list(env, count_reader, &cc);
		if (write(resp, &cc.n, sizeof(cc.n)) != sizeof(cc.n))
			_exit(5);
	}
	mdb_env_close(env);
	_exit(c == 'q' ? 0 : 6);
}

static void reader_main(const char *dir, int resp)
{
	char path[PATH_MAX];
	MDB_env *env;
	MDB_txn *txn;
	char c = 'r';

	snprintf(path, sizeof(path), "%s/index", dir);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
	    mdb_env_open(env, path, MDB_NOTLS, 0600) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		_exit(2);
	if (write(resp, &c, 1) != 1)
		_exit(3);
	for (;;)
		pause();	/* killed with its read transaction open */
}

static int ask_slots(int cmd, int resp, int pid)
{
	char c = 'l';
	int n = -1;

	assert_int_equal(write(cmd, &c, 1), 1);
	assert_int_equal(write(cmd, &pid, sizeof(pid)), sizeof(pid));
	assert_int_equal(read(resp, &n, sizeof(n)), sizeof(n));
	return n;
}

static void test_stale_reader(void **state)
{
	static const uint32_t nss[] = { 1 };
	struct items want = { 0 };
	struct items got = { 0 };
	struct kv_ssd_meta *m;
	int cmd[2];
	int resp[2];
	int ready[2];
	pid_t holder;
	pid_t reader;
	int status;
	char dir[64];
	char c;

	rng_state = 13;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, 10, 10, nss, 1);
	kv_ssd_meta_close(m);	/* nothing open across fork() */

	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(resp), 0);
	assert_int_equal(pipe(ready), 0);
	holder = fork();
	assert_true(holder >= 0);
	if (holder == 0)
		holder_main(dir, cmd[0], resp[1]);
	assert_int_equal(read(resp[0], &c, 1), 1);
	reader = fork();
	assert_true(reader >= 0);
	if (reader == 0)
		reader_main(dir, ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);

	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 1);
	assert_int_equal(kill(reader, SIGKILL), 0);
	assert_int_equal(waitpid(reader, &status, 0), reader);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 1);	/* stale */

	m = open_dir(dir);	/* clears it */
	assert_int_equal(ask_slots(cmd[1], resp[0], reader), 0);
	put_random(m, &want, 10, 10, nss, 1);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);

	c = 'q';
	assert_int_equal(write(cmd[1], &c, 1), 1);
	assert_int_equal(waitpid(holder, &status, 0), holder);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(cmd[0]);
	close(cmd[1]);
	close(resp[0]);
	close(resp[1]);
	close(ready[0]);
	close(ready[1]);

	/* and reopened alone: still all there */
	m = open_dir(dir);
	assert_int_equal(load_all(m, &got), 0);
	check_same(&want, &got);
	kv_ssd_meta_close(m);
	free(want.v);
	free(got.v);
	rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_invalid_records),
		cmocka_unit_test(test_stale_reader),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
