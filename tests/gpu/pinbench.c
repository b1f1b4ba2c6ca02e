/*
 * pinbench.c - what page-locking the DRAM arena costs, and who waits for it.
 *
 * Three views of one arena size (--bytes, default 8G), in one run so that
 * they compare:
 *
 * bare    A memfd of that size, mapped. First touch from T threads, T the
 *         CPUs this process may use, at most 16 (MADV_POPULATE_WRITE, each
 *         thread its own contiguous range), then kv_gpu_host_register() of
 *         the whole mapping, then of a second mapping of the same memfd:
 *         what a client pays (the pages exist, its page tables do not).
 *         Then the first mapping again in 256 MiB slabs, as libkvc does,
 *         for the one-call-or-many question. A probe thread times an mmap,
 *         touch and munmap of 1 MiB every millisecond meanwhile: its worst
 *         time is how long this process's address-space changes (malloc of
 *         large buffers, thread stacks) were held up.
 * daemon  kvstored --dram-bytes SIZE --hbm-bytes 64M --gpu N (the daemon
 *         page-locks its arena only when it has an HBM tier, so a small
 *         one): the time from the start until a client connects (serving),
 *         the latency of pings while the arena fills in the background,
 *         and the populate and register times of its log line
 *         "dram arena ready: ...".
 * client  kvc_connect() once the daemon serves (it maps the arena and
 *         registers nothing), then kvc_gpu_open(c, -1, KVC_GPU_REGISTER_ALL)
 *         and the time until kvc_gpu_registered() covers the mapping.
 *
 * Output: "figure:" lines and a closing table. Exit status 0, 77 without a
 * GPU (with a reason line), 1 when something failed: the daemon did not
 * start, serve, register or stop cleanly, or the client did not register
 * the whole mapping. Slow figures never fail it.
 *
 * Usage: pinbench [--bytes SIZE] [--daemon PATH] [--gpu N]
 * (--daemon defaults to $KVSTORED, else build/kvstored).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/size.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

#define MAX_THREADS	16
#define CLIENT_SLAB	(256ull << 20)	/* libkvc's registration unit */
#define WAIT_MS		300000		/* for the daemon's fill, the client's
					 * registration */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned cpu_threads(void)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* ---- the probe: how long this process's address-space writers wait ---- */

static _Atomic bool probe_on;
static _Atomic uint64_t probe_worst_us;

static void *probe(void *arg)
{
	(void)arg;
	while (atomic_load(&probe_on)) {
		double t0 = now_ms();
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t us;
		uint64_t old;

		if (p != MAP_FAILED) {
			p[0] = 1;
			munmap(p, 1 << 20);
		}
		us = (uint64_t)((now_ms() - t0) * 1e3);
		old = atomic_load(&probe_worst_us);
		while (us > old && !atomic_compare_exchange_weak(&probe_worst_us, &old, us))
			;
		kvt_sleep_ms(1);
	}
	return NULL;
}

/* The worst probe time since the last call, in ms. */
static double probe_take(void)
{
	return atomic_exchange(&probe_worst_us, 0) / 1e3;
}

/* ---- bare: the kernel and CUDA alone -------------------------------------- */

struct touch {
	char *base;
	uint64_t len;
	int err;
};

static void *touch_range(void *arg)
{
	struct touch *t = arg;

	if (t->len && madvise(t->base, t->len, MADV_POPULATE_WRITE) < 0)
		t->err = errno;
	return NULL;
}

/* First touch of [base, base + bytes) from threads threads, each its own
 * contiguous range. Returns 0 or an errno. */
static int par_touch(char *base, uint64_t bytes, unsigned threads)
{
	uint64_t per = (bytes / threads + (2u << 20) - 1) & ~((2ull << 20) - 1);
	struct touch t[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	int err = 0;

	for (unsigned i = 0; i < threads; i++) {
		uint64_t off = i * per < bytes ? i * per : bytes;

		t[i] = (struct touch){ base + off, bytes - off < per ? bytes - off : per, 0 };
		pthread_create(&th[i], NULL, touch_range, &t[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		if (t[i].err && !err)
			err = t[i].err;
	}
	return err;
}

struct bare {
	double setup_ms;	/* memfd_create, ftruncate, mmap */
	double touch_ms;
	double touch_stall;
	double reg_ms;
	double reg_stall;
	double reg2_ms;		/* the second mapping */
	double reg2_stall;
	double map3_touch_ms;	/* a third mapping: parallel touch, then */
	double map3_reg_ms;	/* register */
	double unreg_ms;
	double slabs_ms;	/* 256 MiB slabs */
	double slabs_stall;
};

static int bare_run(uint64_t bytes, unsigned threads, struct bare *b)
{
	char *base, *base2;
	pthread_t pt;
	double t0;
	int fd, err, ret = -1;

	memset(b, 0, sizeof(*b));
	t0 = now_ms();
	fd = memfd_create("pinbench", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0) {
		perror("pinbench: memfd");
		return -1;
	}
	base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		perror("pinbench: mmap");
		close(fd);
		return -1;
	}
	b->setup_ms = now_ms() - t0;

	atomic_store(&probe_on, true);
	pthread_create(&pt, NULL, probe, NULL);

	probe_take();
	t0 = now_ms();
	err = par_touch(base, bytes, threads);
	b->touch_ms = now_ms() - t0;
	b->touch_stall = probe_take();
	if (err) {
		fprintf(stderr, "pinbench: MADV_POPULATE_WRITE: %s\n", strerror(err));
		goto out;
	}

	t0 = now_ms();
	if (kv_gpu_host_register(base, bytes)) {
		fprintf(stderr, "pinbench: register: %s\n", kv_gpu_last_error());
		goto out;
	}
	b->reg_ms = now_ms() - t0;
	b->reg_stall = probe_take();

	base2 = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base2 == MAP_FAILED) {
		perror("pinbench: second mmap");
		goto out_unreg;
	}
	t0 = now_ms();
	if (kv_gpu_host_register(base2, bytes)) {
		fprintf(stderr, "pinbench: register (second mapping): %s\n",
			kv_gpu_last_error());
		munmap(base2, bytes);
		goto out_unreg;
	}
	b->reg2_ms = now_ms() - t0;
	b->reg2_stall = probe_take();
	kv_gpu_host_unregister(base2);
	munmap(base2, bytes);

	/* The same, with the second mapping's page tables filled in parallel
	 * first (what a client could do before it registers). */
	base2 = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base2 == MAP_FAILED) {
		perror("pinbench: third mmap");
		goto out_unreg;
	}
	t0 = now_ms();
	if (par_touch(base2, bytes, threads) == 0) {
		b->map3_touch_ms = now_ms() - t0;
		t0 = now_ms();
		if (kv_gpu_host_register(base2, bytes) == 0) {
			b->map3_reg_ms = now_ms() - t0;
			kv_gpu_host_unregister(base2);
		}
	}
	munmap(base2, bytes);

	t0 = now_ms();
	kv_gpu_host_unregister(base);
	b->unreg_ms = now_ms() - t0;

	probe_take();
	t0 = now_ms();
	for (uint64_t off = 0; off < bytes; off += CLIENT_SLAB) {
		uint64_t len = bytes - off < CLIENT_SLAB ? bytes - off : CLIENT_SLAB;

		if (kv_gpu_host_register(base + off, len)) {
			fprintf(stderr, "pinbench: register slab at %" PRIu64 ": %s\n",
				off, kv_gpu_last_error());
			for (uint64_t o = 0; o < off; o += CLIENT_SLAB)
				kv_gpu_host_unregister(base + o);
			goto out;
		}
	}
	b->slabs_ms = now_ms() - t0;
	b->slabs_stall = probe_take();
	for (uint64_t off = 0; off < bytes; off += CLIENT_SLAB)
		kv_gpu_host_unregister(base + off);
	ret = 0;
	goto out;

out_unreg:
	kv_gpu_host_unregister(base);
out:
	atomic_store(&probe_on, false);
	pthread_join(pt, NULL);
	munmap(base, bytes);
	close(fd);
	return ret;
}

/* ---- daemon and client ------------------------------------------------------ */

struct daemon_figs {
	double serve_ms;	/* start -> first successful kvc_connect */
	double ready_ms;	/* start -> the log line seen (20 ms polls) */
	uint64_t fill_ms;	/* from the log line */
	unsigned fill_threads;
	bool registered;
	uint64_t reg_ms;
	char why[256];		/* "not registered: ..." */
	unsigned pings;
	double ping_median_ms;
	double ping_worst_ms;
	double connect_ms;	/* a client's kvc_connect() once serving */
	double open_ms;		/* kvc_gpu_open() */
	double creg_ms;		/* until kvc_gpu_registered() covers it all */
	uint64_t creg_done;
	uint64_t creg_total;
	int open_err;
	int stop_status;
};

/* Find the "dram arena ready:" line in the daemon's log and read it. */
static bool read_ready_line(const struct kvt_daemon *d, struct daemon_figs *f)
{
	char line[2048];
	bool found = false;
	FILE *fp = fopen(d->log, "r");

	if (!fp)
		return false;
	while (!found && fgets(line, sizeof(line), fp)) {
		char *p = strstr(line, "dram arena ready:");
		char *q;

		if (!p)
			continue;
		found = true;
		q = strstr(p, " populated in ");
		if (q)
			sscanf(q, " populated in %" SCNu64 " ms (%u", &f->fill_ms,
			       &f->fill_threads);
		q = strstr(p, "not registered: ");
		if (q) {
			snprintf(f->why, sizeof(f->why), "%s", q + 16);
			f->why[strcspn(f->why, "\n")] = '\0';
		} else if ((q = strstr(p, "registered in "))) {
			f->registered = sscanf(q, "registered in %" SCNu64, &f->reg_ms) == 1;
		}
	}
	fclose(fp);
	return found;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int daemon_run(uint64_t bytes, int gpu, struct daemon_figs *f)
{
	char size[32], dev[16];
	const char *args[] = { "--dram-bytes", size, "--hbm-bytes", "64M",
			       "--gpu", dev, NULL };
	size_t cap = 1 << 16;
	double *pings = malloc(cap * sizeof(*pings));
	struct kvt_daemon d;
	struct kvc *c = NULL, *c2 = NULL;
	double t0, last_poll = 0;
	int ret, err = -1;

	memset(f, 0, sizeof(*f));
	snprintf(size, sizeof(size), "%" PRIu64, bytes);
	snprintf(dev, sizeof(dev), "%d", gpu);
	if (!pings)
		return -1;

	t0 = now_ms();
	if (kvt_spawn(&d, args)) {
		free(pings);
		return -1;
	}
	while ((ret = kvc_connect(d.sock, &c)) != 0 && now_ms() - t0 < 10000 &&
	       kvt_alive(&d))
		kvt_sleep_ms(1);
	if (ret) {
		fprintf(stderr, "pinbench: cannot connect to the daemon: %s\n",
			kvc_strerror(ret));
		goto out_stop;
	}
	f->serve_ms = now_ms() - t0;

	/* The loop thread must answer while the arena fills. */
	for (;;) {
		double p0 = now_ms();

		ret = kvc_ping(c, NULL);
		if (ret) {
			fprintf(stderr, "pinbench: ping: %s\n", kvc_strerror(ret));
			goto out_stop;
		}
		if (f->pings < cap)
			pings[f->pings++] = now_ms() - p0;
		if (now_ms() - last_poll >= 20) {
			last_poll = now_ms();
			if (read_ready_line(&d, f))
				break;
			if (last_poll - t0 > WAIT_MS) {
				fprintf(stderr, "pinbench: no 'dram arena ready' line after %d s\n",
					WAIT_MS / 1000);
				goto out_stop;
			}
		}
		kvt_sleep_ms(1);
	}
	f->ready_ms = now_ms() - t0;
	if (f->pings) {
		qsort(pings, f->pings, sizeof(*pings), cmp_double);
		f->ping_median_ms = pings[f->pings / 2];
		f->ping_worst_ms = pings[f->pings - 1];
	}

	/* A client: connecting maps the arena and registers nothing. */
	t0 = now_ms();
	ret = kvc_connect(d.sock, &c2);
	f->connect_ms = now_ms() - t0;
	if (ret) {
		fprintf(stderr, "pinbench: client connect: %s\n", kvc_strerror(ret));
		goto out_stop;
	}
	kv_gpu_set_device(gpu);
	t0 = now_ms();
	f->open_err = kvc_gpu_open(c2, -1, KVC_GPU_REGISTER_ALL);
	f->open_ms = now_ms() - t0;
	if (f->open_err) {
		fprintf(stderr, "pinbench: kvc_gpu_open: %s\n", kvc_strerror(f->open_err));
	} else {
		for (;;) {
			kvc_gpu_registered(c2, &f->creg_done, &f->creg_total);
			if (f->creg_total && f->creg_done >= f->creg_total)
				break;
			if (now_ms() - t0 > WAIT_MS)
				break;
			kvt_sleep_ms(1);
		}
		f->creg_ms = now_ms() - t0;
	}
	err = 0;

out_stop:
	if (err)
		kvt_dump_log(&d);
	kvc_close(c2);
	kvc_close(c);
	f->stop_status = kvt_stop(&d);
	free(pings);
	return err;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: pinbench [--bytes SIZE] [--daemon PATH] [--gpu N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t bytes = 8ull << 30;
	unsigned threads = cpu_threads();
	struct daemon_figs f;
	struct bare b;
	char why[256] = "";
	char name[128] = "?";
	double gib;
	int gpu = 0;
	int n = 0;
	bool fail = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bytes") && i + 1 < argc) {
			if (kvt_parse_size(argv[++i], &bytes))
				usage();
		} else if (!strcmp(argv[i], "--daemon") && i + 1 < argc) {
			setenv("KVSTORED", argv[++i], 1);
		} else if (!strcmp(argv[i], "--gpu") && i + 1 < argc) {
			gpu = atoi(argv[++i]);
		} else {
			usage();
		}
	}
	bytes = (bytes + 4095) & ~4095ull;
	gib = bytes / (double)(1ull << 30);
	if (!kv_gpu_available(&n, why, sizeof(why))) {
		printf("pinbench: skipped: no usable GPU (%s)\n", why);
		return 77;
	}
	if (gpu < 0 || gpu >= n) {
		printf("pinbench: skipped: no GPU %d (this host has %d)\n", gpu, n);
		return 77;
	}
	if (kv_gpu_set_device(gpu)) {
		fprintf(stderr, "pinbench: cannot use GPU %d: %s\n", gpu, kv_gpu_last_error());
		return 1;
	}
	kv_gpu_device_name(gpu, name, sizeof(name));
	printf("pinbench: %.2f GiB, %u threads, GPU %d (%s), daemon %s\n", gib, threads,
	       gpu, name, kvt_daemon_path());

	/* CUDA's context exists before anything is timed. */
	{
		void *p = NULL;

		if (kv_gpu_malloc(4096, &p) == 0)
			kv_gpu_free(p);
	}

	if (bare_run(bytes, threads, &b))
		return 1;
	printf("figure: pinbench bare %.2f GiB: memfd+ftruncate+mmap %.2f ms, first touch %.0f ms (%u threads, %.2f GB/s), register %.0f ms, register of a second mapping %.0f ms, unregister %.0f ms, register in %llu MiB slabs %.0f ms\n",
	       gib, b.setup_ms, b.touch_ms, threads, bytes / b.touch_ms / 1e6, b.reg_ms,
	       b.reg2_ms, b.unreg_ms, CLIENT_SLAB >> 20, b.slabs_ms);
	printf("figure: pinbench bare %.2f GiB: a second mapping touched by %u threads first: touch %.0f ms + register %.0f ms\n",
	       gib, threads, b.map3_touch_ms, b.map3_reg_ms);
	printf("figure: pinbench bare %.2f GiB: worst mmap+munmap of 1 MiB in this process while touching %.1f ms, registering %.1f ms, registering the second mapping %.1f ms, registering in slabs %.1f ms\n",
	       gib, b.touch_stall, b.reg_stall, b.reg2_stall, b.slabs_stall);

	if (daemon_run(bytes, gpu, &f))
		return 1;
	printf("figure: pinbench daemon %.2f GiB: serving %.0f ms after start; populated in %" PRIu64 " ms (%u threads), %s; ready line seen %.0f ms after start\n",
	       gib, f.serve_ms, f.fill_ms, f.fill_threads,
	       f.registered ? "registered" : "NOT registered", f.ready_ms);
	if (f.registered)
		printf("figure: pinbench daemon %.2f GiB: registered in %" PRIu64 " ms\n", gib,
		       f.reg_ms);
	else
		printf("figure: pinbench daemon %.2f GiB: not registered: %s\n", gib, f.why);
	printf("figure: pinbench daemon %.2f GiB: %u pings while it filled, median %.3f ms, worst %.1f ms\n",
	       gib, f.pings, f.ping_median_ms, f.ping_worst_ms);
	if (f.open_err)
		printf("figure: pinbench client %.2f GiB: kvc_connect %.2f ms; kvc_gpu_open failed: %s\n",
		       gib, f.connect_ms, kvc_strerror(f.open_err));
	else
		printf("figure: pinbench client %.2f GiB: kvc_connect %.2f ms; kvc_gpu_open %.1f ms; %s registered %.0f ms after kvc_gpu_open (%" PRIu64 " of %" PRIu64 " bytes)\n",
		       gib, f.connect_ms, f.open_ms,
		       f.creg_done >= f.creg_total ? "whole mapping" : "INCOMPLETE:",
		       f.creg_ms, f.creg_done, f.creg_total);

	printf("\npinbench: %.2f GiB, %u threads, GPU %d (%s)\n", gib, threads, gpu, name);
	printf("  %-22s %12s %12s %14s %14s\n", "", "populate", "register", "2nd mapping",
	       "serving after");
	printf("  %-22s %9.0f ms %9.0f ms %11.0f ms %14s\n", "bare", b.touch_ms, b.reg_ms,
	       b.reg2_ms, "-");
	if (f.registered)
		printf("  %-22s %9" PRIu64 " ms %9" PRIu64 " ms %14s %11.0f ms\n",
		       "daemon (background)", f.fill_ms, f.reg_ms, "-", f.serve_ms);
	else
		printf("  %-22s %9" PRIu64 " ms %12s %14s %11.0f ms\n",
		       "daemon (background)", f.fill_ms, "not done", "-", f.serve_ms);
	if (f.open_err)
		printf("  %-22s %12s %12s %14s %8.2f ms (connect)\n", "client", "-", "-",
		       "failed", f.connect_ms);
	else
		printf("  %-22s %12s %12s %11.0f ms %8.2f ms (connect)\n", "client", "-", "-",
		       f.creg_ms, f.connect_ms);

	if (!f.registered) {
		fprintf(stderr, "pinbench: the daemon did not register its arena: %s\n", f.why);
		fail = true;
	}
	if (f.open_err || f.creg_done < f.creg_total) {
		fprintf(stderr, "pinbench: the client did not register the whole mapping\n");
		fail = true;
	}
	if (f.stop_status != 0) {
		fprintf(stderr, "pinbench: the daemon did not stop cleanly (status %d)\n",
			f.stop_status);
		fail = true;
	}
	return fail ? 1 : 0;
}
