/*
 * test_lmdb_check.c - the LMDB page check (tiers/lmdb_check.c), through
 * the SSD tier's index that calls it on open (tiers/ssd_meta.c): a
 * data.mdb of random bytes or zeros is refused with -EIO and left as it
 * was; and random byte flips in a real data.mdb (its meta pages, page
 * headers, anywhere), each opened and loaded by a forked child, never
 * crash, never hand out a wrong record, and every refusal is logged.
 *
 * Children are forked while this process holds no environment open, and
 * open their own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "tiers/ssd_meta.h"
#include "tests/unit/ssd_meta_fx.h"

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_garbage(void **state)
{
	static const size_t sizes[] = { 64 * KIB, 100, 4096, 8192 };
	struct kv_ssd_meta *sentinel = (struct kv_ssd_meta *)&not_a_handle;
	struct kv_ssd_meta_conf conf = { .geom = geom0 };
	char path[PATH_MAX];
	char dir[64];

	rng_state = 9;
	for (size_t s = 0; s < KV_ARRAY_SIZE(sizes); s++) {
		for (int zero = 0; zero < 2; zero++) {
			struct kv_ssd_meta *m = sentinel;
			unsigned char *buf = calloc(1, sizes[s]);
			uint64_t h;

			assert_non_null(buf);
			for (size_t i = 0; !zero && i < sizes[s]; i++)
				buf[i] = (unsigned char)rnd();
			tmpdir(dir, sizeof(dir));
			conf.dir = dir;
			index_path(path, sizeof(path), dir, NULL);
			assert_int_equal(mkdir(path, 0700), 0);
			index_path(path, sizeof(path), dir, "data.mdb");
			write_file(path, buf, sizes[s]);
			h = file_hash(path);
			assert_int_equal(kv_ssd_meta_open(&m, &conf, NULL), -EIO);
			assert_ptr_equal(m, sentinel);
			assert_int_equal(file_hash(path), h);
			free(buf);
			rmtree(dir);
		}
	}
}

/* ---- corruption --------------------------------------------------------- */

/* longer soaks: build with -DCORRUPT_RUNS=N -DCORRUPT_SEED=S */
#ifndef CORRUPT_RUNS
#define CORRUPT_RUNS	300
#endif
#ifndef CORRUPT_SEED
#define CORRUPT_SEED	1000
#endif
#define CORRUPT_RECS	600

enum {
	CHILD_OK = 0,		/* opened, loaded; tallies in the result pipe */
	CHILD_OPEN_EIO = 10,
	CHILD_OPEN_EFORMAT = 11,
	CHILD_LOAD_EIO = 12,
	CHILD_WRONG = 20,	/* a record handed out that should not be */
	CHILD_ODD = 21,		/* an error code outside the contract */
};

struct corrupt_res {
	uint64_t good;		/* handed out, equal to what was stored */
	uint64_t unknown;	/* valid, under a key never stored (key bytes hit) */
	uint64_t bad;		/* counted invalid by the first load */
	uint64_t bad2;		/* by the second */
};

struct corrupt_ctx {
	const struct items *want;	/* sorted */
	struct corrupt_res res;
	bool wrong;
};

static int corrupt_check(void *arg, uint32_t ns, const struct kv_key *key,
			 const struct kv_ssd_rec *rec)
{
	struct corrupt_ctx *cc = arg;
	struct item k = { .ns = ns, .key = *key };
	const struct item *w;

	if (!kv_ssd_rec_valid(rec)) {
		cc->wrong = true;
		return 0;
	}
	w = bsearch(&k, cc->want->v, cc->want->n, sizeof(k), item_cmp);
	if (!w)
		cc->res.unknown++;
	else if (memcmp(&w->rec, rec, sizeof(*rec)))
		cc->wrong = true;
	else
		cc->res.good++;
	return 0;
}

static void corrupt_child(const char *dir, const struct items *want, int res_fd)
{
	struct kv_ssd_meta_conf conf = { .dir = dir, .geom = geom0 };
	struct corrupt_ctx cc = { .want = want };
	struct kv_ssd_meta *m = NULL;
	struct kv_ssd_op op;
	int ret;

	/* cmocka catches these to fail a test; here they must kill */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGSYS, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	ret = kv_ssd_meta_open(&m, &conf, NULL);
	if (ret == -EIO)
		exit(CHILD_OPEN_EIO);
	if (ret == -KV_EFORMAT)
		exit(CHILD_OPEN_EFORMAT);
	if (ret)
		exit(CHILD_ODD);
	ret = kv_ssd_meta_load(m, corrupt_check, &cc, &cc.res.bad);
	if (ret == 0 && !cc.wrong) {
		/* the survivors again: the bad ones are gone */
		cc.res.good = 0;
		cc.res.unknown = 0;
		ret = kv_ssd_meta_load(m, corrupt_check, &cc, &cc.res.bad2);
	}
	if (ret == 0 && !cc.wrong) {
		/* and it still takes writes */
		op = put_op(123, 456, 789);
		ret = kv_ssd_meta_apply(m, &op, 1);
		if (ret == -ENOSPC)
			ret = -EIO;
	}
	kv_ssd_meta_close(m);
	if (cc.wrong)
		exit(CHILD_WRONG);
	if (ret == -EIO)
		exit(CHILD_LOAD_EIO);
	if (ret)
		exit(CHILD_ODD);
	if (write(res_fd, &cc.res, sizeof(cc.res)) != sizeof(cc.res))
		exit(CHILD_ODD);
	exit(CHILD_OK);
}

/* Read fd to its end; keep the first len - 1 bytes, NUL-terminated. */
static void drain(int fd, char *buf, size_t len)
{
	size_t have = 0;
	char tmp[4096];
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		for (ssize_t i = 0; i < n && have + 1 < len; i++)
			buf[have++] = tmp[i];
	}
	buf[have] = '\0';
}

static void test_corruption(void **state)
{
	static const uint32_t nss[] = { 1, 2, 3, 70000 };
	static char log[16384];
	struct items want = { 0 };
	struct kv_ssd_meta *m;
	struct corrupt_res total = { 0 };
	unsigned tally[32] = { 0 };
	unsigned crashes = 0;
	unsigned failures = 0;
	unsigned silent = 0;
	char path[PATH_MAX];
	unsigned char *pristine;
	unsigned char *buf;
	size_t len;
	char dir[64];

	rng_state = 14;
	tmpdir(dir, sizeof(dir));
	m = open_dir(dir);
	put_random(m, &want, CORRUPT_RECS, 100, nss, KV_ARRAY_SIZE(nss));
	/* some deletes, so the free list has pages in it */
	{
		struct kv_ssd_op ops[100];

		for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++)
			ops[i] = del_op(want.v[i].ns, want.v[i].key.lo, want.v[i].key.hi);
		assert_int_equal(kv_ssd_meta_apply(m, ops, KV_ARRAY_SIZE(ops)), 0);
		memmove(want.v, want.v + 100, (want.n - 100) * sizeof(*want.v));
		want.n -= 100;
	}
	kv_ssd_meta_close(m);
	qsort(want.v, want.n, sizeof(*want.v), item_cmp);
	index_path(path, sizeof(path), dir, "data.mdb");
	pristine = read_file(path, &len);
	rmtree(dir);
	buf = malloc(len);
	assert_non_null(buf);

	for (unsigned run = 0; run < CORRUPT_RUNS; run++) {
		int res[2];
		int err[2];
		struct corrupt_res r = { 0 };
		unsigned flips;
		pid_t pid;
		int status;
		char where[256];
		size_t wl = 0;

		/* seed per run, so any run can be replayed alone */
		rng_state = CORRUPT_SEED + run;
		memcpy(buf, pristine, len);
		flips = 1 + (unsigned)(rnd() % 8);
		for (unsigned f = 0; f < flips; f++) {
			size_t off;

			switch (run % 4) {
			case 0:		/* the two meta pages */
				off = rnd() % (len < 8192 ? len : 8192);
				break;
			case 1:		/* page headers and the node offsets after them */
				off = (rnd() % (len / 4096)) * 4096 + rnd() % 64;
				break;
			default:	/* anywhere */
				off = rnd() % len;
				break;
			}
			buf[off] ^= (unsigned char)(1 + rnd() % 255);
			if (wl < sizeof(where) - 16)
				wl += (size_t)snprintf(where + wl, sizeof(where) - wl,
						       " %zu", off);
		}

		tmpdir(dir, sizeof(dir));
		index_path(path, sizeof(path), dir, NULL);
		assert_int_equal(mkdir(path, 0700), 0);
		index_path(path, sizeof(path), dir, "data.mdb");
		write_file(path, buf, len);

		assert_int_equal(pipe(res), 0);
		assert_int_equal(pipe(err), 0);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(res[0]);
			close(err[0]);
			dup2(err[1], STDERR_FILENO);
			close(err[1]);
			corrupt_child(dir, &want, res[1]);
		}
		close(res[1]);
		close(err[1]);
		drain(err[0], log, sizeof(log));
		if (read(res[0], &r, sizeof(r)) != sizeof(r))
			memset(&r, 0, sizeof(r));
		close(res[0]);
		close(err[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);

		if (WIFSIGNALED(status)) {
			crashes++;
			print_message("ssd_meta corruption run %u: killed by signal %d; flips at%s\n%s",
				      run, WTERMSIG(status), where, log);
		} else {
			int code = WEXITSTATUS(status);

			tally[code < 32 ? code : 31]++;
			if (code == CHILD_OK) {
				total.good += r.good;
				total.unknown += r.unknown;
				total.bad += r.bad;
				total.bad2 += r.bad2;
				if (r.bad2)
					failures++;	/* deleted, yet back */
			} else if (code == CHILD_OPEN_EIO || code == CHILD_OPEN_EFORMAT ||
				   code == CHILD_LOAD_EIO) {
				if (!strstr(log, "ERR"))
					silent++;	/* refused without a log line */
			} else {
				failures++;
				print_message("ssd_meta corruption run %u: exit %d; flips at%s\n%s",
					      run, code, where, log);
			}
		}
		rmtree(dir);
	}
	print_message("ssd_meta corruption: %u runs over a %zu-byte data.mdb: %u loaded "
		      "(%llu records good, %llu under a changed key, %llu invalid and dropped), "
		      "%u refused at open (%u -EIO, %u -KV_EFORMAT), %u -EIO later, "
		      "%u crashed, %u wrong, %u refused without a log line\n",
		      CORRUPT_RUNS, len, tally[CHILD_OK],
		      (unsigned long long)total.good, (unsigned long long)total.unknown,
		      (unsigned long long)total.bad,
		      tally[CHILD_OPEN_EIO] + tally[CHILD_OPEN_EFORMAT],
		      tally[CHILD_OPEN_EIO], tally[CHILD_OPEN_EFORMAT],
		      tally[CHILD_LOAD_EIO], crashes, failures, silent);
	assert_int_equal(crashes, 0);
	assert_int_equal(failures, 0);
	assert_int_equal(silent, 0);
	free(buf);
	free(pristine);
	free(want.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_corruption),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
