/*
 * ssd_io_fx.c - the fixture of the SSD I/O engine's tests (test_ssd_io.c,
 * test_ssd_io_faults.c): three 8 MiB data files, opened O_DIRECT and
 * fallocated in a temporary directory under /var/tmp (ext4, not tmpfs:
 * O_DIRECT must be real), made once per program by group_setup(); a
 * shadow copy of what they hold; the engine opened for a variant (io_uring
 * or pread/pwrite, queue depth, registered buffers); and batches of random
 * writes of random aligned sizes (some across file boundaries, some longer
 * than a segment), then everything read back and compared.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/lib/tmpdir.h"
#include "tiers/ssd_io.h"
#include "tests/unit/ssd_io_fx.h"

char tmpdir[64];
int data_fds[N_FILES];
char *mem;			/* 2 * SPACE: write arena, read arena */
unsigned char *shadow;		/* SPACE: what the files hold */
bool uring_works;
uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

void fill_random(void *p, uint64_t len)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = rnd();
}

char *rbuf(void)
{
	return mem + SPACE;
}

static void file_path(char *out, size_t n, unsigned i)
{
	snprintf(out, n, "%s/data.%u", tmpdir, i);
}

int group_setup(void **state)
{
	struct io_uring ring;
	char path[128];

	/* ignore a KV_FAULT in the environment: the tests arm points themselves */
	kv_fault_arm(KV_FAULT_IO, 0);
	kv_fault_arm(KV_FAULT_SHORT, 0);
	kv_fault_arm(KV_FAULT_URING, 0);

	if (kvt_tmpdir(tmpdir, sizeof(tmpdir), "/var/tmp", "test_ssd_io."))
		return -1;
	for (unsigned i = 0; i < N_FILES; i++) {
		file_path(path, sizeof(path), i);
		data_fds[i] = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC,
				   0600);
		if (data_fds[i] < 0 || fallocate(data_fds[i], 0, 0, FILE_BYTES))
			return -1;
	}
	if (posix_memalign((void **)&mem, 4096, 2 * SPACE))
		return -1;
	shadow = calloc(1, SPACE);	/* fallocated space reads as zeros */
	if (!shadow)
		return -1;

	/* the io_uring cases must use io_uring wherever it works */
	uring_works = io_uring_queue_init(4, &ring, 0) == 0;
	if (uring_works)
		io_uring_queue_exit(&ring);
	else
		print_message("io_uring is refused here: io_uring cases run on pread/pwrite\n");
	return 0;
}

int group_teardown(void **state)
{
	char path[128];

	for (unsigned i = 0; i < N_FILES; i++) {
		if (data_fds[i] > 0)
			close(data_fds[i]);
		file_path(path, sizeof(path), i);
		unlink(path);
	}
	rmdir(tmpdir);
	free(mem);
	free(shadow);
	return 0;
}

struct kv_io_conf make_conf(const struct variant *v)
{
	return (struct kv_io_conf){
		.fds = data_fds,
		.n_files = N_FILES,
		.file_bytes = FILE_BYTES,
		.block = BLOCK,
		.mem_align = 4096,
		.queue_depth = v->qd,
		.seg_bytes = SEG,
		.reg_base = v->reg ? mem : NULL,
		.reg_len = v->reg ? 2 * SPACE : 0,
		.sync = v->sync,
	};
}

struct kv_io *open_conf(const struct kv_io_conf *conf)
{
	struct kv_io *io = NULL;

	assert_int_equal(kv_io_open(&io, conf), 0);
	assert_non_null(io);
	if (conf->sync || !uring_works)
		assert_false(kv_io_uring(io));
	else
		assert_true(kv_io_uring(io));
	assert_int_equal(kv_io_pending(io), 0);
	return io;
}

struct kv_io *open_variant(const struct variant *v)
{
	struct kv_io_conf conf = make_conf(v);

	rng_state = v->seed;
	return open_conf(&conf);
}

void on_done(void *arg, void *tag, int res)
{
	struct ctx *c = arg;
	struct rec *r = tag;

	r->calls++;
	r->res = res;
	c->calls++;
}

/*
 * Run until nothing is pending. With cut, arm KV_FAULT_SHORT before every
 * run and count the runs in which the engine took it (the probe afterwards
 * finds it still armed otherwise, and disarms it).
 */
void drive(struct kv_io *io, struct ctx *c, bool cut)
{
	unsigned runs = 0;

	while (kv_io_pending(io)) {
		int n;

		if (cut)
			kv_fault_arm(KV_FAULT_SHORT, 1);
		n = kv_io_run(io, true, on_done, c);
		assert_true(n >= 0);
		if (cut && !kv_fault_hit(KV_FAULT_SHORT))
			c->cuts++;
		assert_true(++runs < 1000000);
	}
	if (cut)
		kv_fault_arm(KV_FAULT_SHORT, 0);
}

void rec_init(struct rec *r, uint64_t addr, uint64_t len, char *buf)
{
	r->addr = addr;
	r->len = len;
	r->buf = buf;
	r->calls = 0;
	r->res = 1;	/* neither 0 nor an error */
}

/* A random aligned range of the space; some cross a file boundary, some
 * are longer than a segment. */
void pick_range(uint64_t *addr, uint64_t *len)
{
	uint64_t blocks;

	switch (rnd() % 8) {
	case 0:
		blocks = 1;
		break;
	case 1:
		blocks = rnd_range(2, 512);
		*len = blocks * BLOCK;
		*addr = rnd_range(1, N_FILES - 1) * FILE_BYTES -
			rnd_range(1, blocks - 1) * BLOCK;
		return;
	case 2:
		blocks = rnd_range(SEG / BLOCK + 1, 512);
		break;
	default:
		blocks = rnd_range(1, 256);
		break;
	}
	*len = blocks * BLOCK;
	*addr = rnd_range(0, (SPACE - *len) / BLOCK) * BLOCK;
}

static bool crosses_file(uint64_t addr, uint64_t len)
{
	return addr / FILE_BYTES != (addr + len - 1) / FILE_BYTES;
}

static bool overlaps(const struct rec *r, unsigned n, uint64_t addr,
		     uint64_t len)
{
	for (unsigned i = 0; i < n; i++)
		if (addr < r[i].addr + r[i].len && r[i].addr < addr + len)
			return true;
	return false;
}

/*
 * nops random writes in batches of disjoint ranges, each batch queued at
 * once and run to the end; every write reported once with 0, then recorded
 * in the shadow. Returns how many crossed a file boundary.
 */
unsigned random_writes(struct kv_io *io, unsigned nops, bool cut,
		       unsigned *cuts)
{
	static struct rec recs[MAX_BATCH];
	unsigned crossing = 0;
	unsigned left = nops;

	while (left) {
		struct ctx c = { 0 };
		uint64_t used = 0;
		unsigned n = 0;

		while (n < MAX_BATCH && n < left) {
			uint64_t addr;
			uint64_t len;

			pick_range(&addr, &len);
			if (overlaps(recs, n, addr, len))
				break;
			rec_init(&recs[n], addr, len, mem + used);
			used += len;
			fill_random(recs[n].buf, len);
			assert_int_equal(kv_io_queue(io, true, addr, recs[n].buf,
						     len, &recs[n]), 0);
			crossing += crosses_file(addr, len);
			n++;
		}
		assert_int_equal(kv_io_pending(io), n);
		drive(io, &c, cut);
		assert_int_equal(c.calls, n);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(recs[i].calls, 1);
			assert_int_equal(recs[i].res, 0);
			memcpy(shadow + recs[i].addr, recs[i].buf, recs[i].len);
		}
		if (cuts)
			*cuts += c.cuts;
		left -= n;
	}
	return crossing;
}

/* Read the whole space back in random pieces, all queued at once. */
void read_verify(struct kv_io *io, bool cut)
{
	struct rec *recs = calloc(SPACE / BLOCK, sizeof(*recs));
	struct ctx c = { 0 };
	uint64_t addr = 0;
	unsigned n = 0;

	assert_non_null(recs);
	memset(rbuf(), 0xa5, SPACE);
	while (addr < SPACE) {
		uint64_t len = rnd_range(1, 768) * BLOCK;

		if (len > SPACE - addr)
			len = SPACE - addr;
		rec_init(&recs[n], addr, len, rbuf() + addr);
		assert_int_equal(kv_io_queue(io, false, addr, recs[n].buf, len,
					     &recs[n]), 0);
		addr += len;
		n++;
	}
	drive(io, &c, cut);
	assert_int_equal(c.calls, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(recs[i].calls, 1);
		assert_int_equal(recs[i].res, 0);
	}
	assert_memory_equal(rbuf(), shadow, SPACE);
	free(recs);
}

/* The variants both programs run some cases with. */
const struct variant uring_qd8 = { .qd = 8, .seed = 61 };
const struct variant sync_qd8 = { .qd = 8, .sync = true, .seed = 62 };
