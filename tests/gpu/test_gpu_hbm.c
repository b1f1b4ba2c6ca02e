/*
 * test_gpu_hbm.c - the daemon's HBM tier through libkvc, on a GPU.
 *
 *  4. the HBM tier shared through the arena's fd (CUDA VMM): another
 *     process puts, this one gets (from HBM, then from DRAM once HBM has
 *     overflowed);
 *  6. promotion into HBM (--hbm-promote always and second);
 *  8. the HBM arena is reached only through the fd HELLO hands over: what
 *     came with it is sizes, a PCI id and the fd; closed, made-up and
 *     unrelated fds import nothing; a mapping of our own from the fd holds
 *     exactly what the daemon's GPU copies wrote; and a process of another
 *     uid gets no connection, no fd and no /proc path into the daemon.
 *
 * The fixture and the checks are in gpu_fx.c.
 *
 * Without a GPU it exits 77 before cmocka starts. This process initialises
 * CUDA first thing, and CUDA does not survive fork(), so every child
 * process is fork() + exec() of this binary with a --child-* argument
 * (gpu_child.c; the daemons too are exec'd, by the harness).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/lib/clock.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "tests/integration/harness.h"
#include "tests/gpu/gpu_fx.h"

/* ---- 4. HBM shared through the arena's fd, two processes ------------------ */

static void test_hbm_shared(void **state)
{
	const char *args[] = { "--dram-bytes", "512M", "--hbm-bytes", "256M", "--gpu", "0",
			       "--hbm-promote", "off", "--policy", "dram=lru,hbm=lru",
			       "--log", "info", NULL };
	enum { N = 8, BIG_N = 80, BATCH = 8 };
	const size_t big = 4 * MIB;
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	struct kvc_key keys[N], bkeys[BATCH];
	uint8_t *want[N], *bwant[BATCH], tiers[N + BIG_N], tiers2[N + BIG_N];
	uint8_t *dev = fx_dev(BATCH * (big + SPARE)), *src = fx_dev(BATCH * big);
	uint8_t *buf = fx_host(big + SPARE);
	const struct kvc_tier_stats *hbm;
	struct kvc_put_desc pd[BATCH];
	unsigned in_dram = 0, in_hbm = 0;
	struct kvt_daemon *d;
	struct kvc_stats st;
	struct kvc *c, *c2;
	struct cache ca;
	char sd[32], nb[8];
	uint32_t ns, ns2;
	int ret;

	d = fx_start(args);
	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(nb, sizeof(nb), "%d", N);
	{
		const char *cargs[] = { "--child-hbm-put", d->sock, sd, nb, NULL };

		wait_child(spawn_child(cargs), "put into HBM from another process");
	}
	c = fx_connect(d->sock, "shared", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	expect_ret(kvc_lookup(c, ns, keys, N, tiers), N, "kvc_lookup of the child's chunks");
	for (int i = 0; i < N; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_HBM), "kvc_lookup after KVC_PUT_HBM",
			   (size_t)i);
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	hbm = find_tier(&st, "hbm");
	if (!hbm)
		fail_msg("kvc_stats lists no \"hbm\" tier (%u tiers)", st.n_tiers);
	if (hbm->capacity_bytes != 256 * MIB || hbm->chunks != N || hbm->used_bytes < N * cb)
		fail_msg("hbm tier: capacity %" PRIu64 ", %" PRIu64 " chunks, %" PRIu64
			 " bytes used; want 256 MiB, %d chunks, >= %zu bytes",
			 hbm->capacity_bytes, hbm->chunks, hbm->used_bytes, N, N * cb);

	/* Got device to device out of the arena imported from its fd, whole
	 * and paged. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu of a chunk in HBM");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, N, TIER_BIT(KVC_TIER_HBM),
			"kvc_get_paged of chunks in HBM");
	for (int i = 0; i < N; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get of a chunk in HBM",
			       (size_t)i);
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* Inclusive: the DRAM copy exists and is exact (KVC_GPU_NO_HBM uses it). */
	wait_dram_chunks(c, N, "after KVC_PUT_HBM");
	c2 = fx_connect(d->sock, "shared", &ns2);
	expect_ret(kvc_gpu_open(c2, 0, KVC_GPU_NO_HBM), 0, "kvc_gpu_open KVC_GPU_NO_HBM");
	check_get_gpu(c2, ns2, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu with KVC_GPU_NO_HBM");
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush");
	fx_close(c2);

	/* Past HBM's capacity: 320 MiB of 4 MiB chunks into 256 MiB. */
	for (int i = 0; i < BATCH; i++)
		bwant[i] = fx_host(big);
	for (int b = 0; b < BIG_N / BATCH; b++) {
		memset(pd, 0, sizeof(pd));
		for (int i = 0; i < BATCH; i++) {
			uint64_t item = ITEM_BIG + (uint64_t)(b * BATCH + i);

			fill(bwant[i], big, item);
			upload(src + i * big, bwant[i], big);
			pd[i].key = key_of(item);
			pd[i].tokens = 256;
			pd[i].data = src + i * big;
			pd[i].bytes = big;
			pd[i].status = 1;
		}
		ret = kvc_put_gpu(c, ns, pd, BATCH, KVC_PUT_HBM, fx.s, fx.ev[0]);
		expect_ret(ret, BATCH, "kvc_put_gpu KVC_PUT_HBM past HBM's capacity");
		for (int i = 0; i < BATCH; i++)
			expect_ret(pd[i].status, 0, "kvc_put_gpu KVC_PUT_HBM: status");
		sync_event(0, "kvc_put_gpu: done event");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	}

	/* Everything still found and exact; the oldest (the child's, least
	 * recently used: hbm=lru) were evicted from HBM and come from DRAM. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM), tiers, dev, buf,
		      "kvc_get_gpu of the oldest chunks after HBM overflowed (want them in DRAM)");
	for (int b = 0; b < BIG_N / BATCH; b++) {
		for (int i = 0; i < BATCH; i++) {
			bkeys[i] = key_of(ITEM_BIG + (uint64_t)(b * BATCH + i));
			fill(bwant[i], big, ITEM_BIG + (uint64_t)(b * BATCH + i));
		}
		check_get_gpu(c, ns, bkeys, bwant, BATCH, big,
			      TIER_BIT(KVC_TIER_HBM) | TIER_BIT(KVC_TIER_DRAM),
			      tiers + N + b * BATCH, dev, buf, "kvc_get_gpu after HBM overflowed");
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < N + BIG_N; i++) {
		in_dram += tiers[i] == KVC_TIER_DRAM;
		in_hbm += tiers[i] == KVC_TIER_HBM;
	}
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	hbm = find_tier(&st, "hbm");
	assert_non_null(hbm);
	print_message("figure: hbm overflow: %u chunks from HBM, %u from DRAM, all exact; "
		      "hbm %" PRIu64 " of %" PRIu64 " bytes, %" PRIu64 " evictions\n",
		      in_hbm, in_dram, hbm->used_bytes, hbm->capacity_bytes, hbm->evictions);
	if (in_dram == 0)
		fail_msg("%zu MiB put into a 256 MiB HBM tier, yet every chunk came from HBM",
			 (N * cb + BIG_N * big) / MIB);
	if (hbm->used_bytes > hbm->capacity_bytes)
		fail_msg("hbm tier: %" PRIu64 " bytes used of %" PRIu64, hbm->used_bytes,
			 hbm->capacity_bytes);
	check_get_paged(c, ns, &ca, keys, want, N,
			TIER_BIT(KVC_TIER_HBM) | TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged of old chunks after HBM overflowed");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* --hbm-promote off: hits leave DRAM chunks in DRAM. */
	kvt_sleep_ms(200);
	expect_ret(kvc_lookup(c, ns, keys, N, tiers2), N, "kvc_lookup");
	for (int i = 0; i < N; i++)
		if (tiers[i] == KVC_TIER_DRAM && tiers2[i] != KVC_TIER_DRAM)
			fail_msg("chunk %d moved from DRAM to tier %u with --hbm-promote off", i,
				 tiers2[i]);
	fx_close(c);
	fx_stop(d);
}

/* ---- 6. promotion into HBM ---------------------------------------------- */

static void promote(const char *when)
{
	const char *args[] = { "--dram-bytes", "64M", "--hbm-bytes", "64M", "--gpu", "0",
			       "--hbm-promote", when, "--log", "warn", NULL };
	enum { N = 4 };
	bool second = !strcmp(when, "second");
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	const unsigned any = TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	uint8_t *want[N], tiers[N];
	struct kvc_entry e;
	struct kvt_daemon *d;
	struct cache ca;
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	int in_hbm = 0;

	d = fx_start(args);
	c = fx_connect(d->sock, "promote", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	expect_ret(kvc_lookup(c, ns, keys, N, tiers), N, "kvc_lookup");
	for (int i = 0; i < N; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup after kvc_put",
			   (size_t)i);

	check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf, "first kvc_get_gpu");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	if (second) {
		kvt_sleep_ms(300);
		for (int i = 0; i < N; i++) {
			expect_ret(kvc_inspect(c, ns, &keys[i], &e), 0, "kvc_inspect");
			if (e.tier != KVC_TIER_DRAM)
				fail_msg("chunk %d in tier %u after one GPU hit with "
					 "--hbm-promote second", i, e.tier);
		}
		check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf,
			      "second kvc_get_gpu");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	}

	/* Promoted within 3 s; with "always", keep reading it meanwhile: a
	 * half-copied HBM chunk must never be handed out. */
	t0 = now_ms();
	do {
		in_hbm = count_in_hbm(c, ns, keys, N);
		if (in_hbm == N)
			break;
		if (!second) {
			check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf,
				      "kvc_get_gpu while being promoted");
			expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
		}
		kvt_sleep_ms(20);
	} while (now_ms() - t0 < 3000);
	if (in_hbm != N)
		fail_msg("--hbm-promote %s: %d of %d chunks in HBM 3 s after %s GPU hit", when,
			 in_hbm, N, second ? "their second" : "a");
	print_message("figure: --hbm-promote %s: %d chunks in HBM %" PRIu64 " ms later\n",
		      when, N, now_ms() - t0);

	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu of a promoted chunk");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, N, TIER_BIT(KVC_TIER_HBM),
			"kvc_get_paged of promoted chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < N; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get of a promoted chunk",
			       (size_t)i);
	fx_close(c);
	fx_stop(d);
}

static void test_promote_always(void **state)
{
	promote("always");
}

static void test_promote_second(void **state)
{
	promote("second");
}

/* ---- 8. the HBM arena reached through its fd only -------------------------- */

/* An import that must fail, and leave nothing mapped. */
static void expect_no_import(int fd, size_t bytes, const char *what)
{
	struct kv_gpu_vmm *m = NULL;
	int ret = kv_gpu_vmm_import(fd, bytes, 0, &m);

	if (ret == 0) {
		kv_gpu_vmm_close(m);
		fail_msg("kv_gpu_vmm_import of %s (fd %d, %zu bytes) succeeded", what, fd, bytes);
	}
	if (m)
		fail_msg("kv_gpu_vmm_import of %s failed (%s) but returned a mapping", what,
			 err_name(ret));
	print_message("import of %s: %s (%s)\n", what, err_name(ret), kv_gpu_last_error());
}

static void test_hbm_fd_only(void **state)
{
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "64M", "--gpu", "0",
			       "--hbm-promote", "always", "--log", "info", NULL };
	enum { N = 4 };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	const unsigned any = TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	struct kvc_loc locs[N];
	uint8_t *want[N];
	struct kv_gpu_vmm *m = NULL;
	struct kvci_hbm info;
	struct kvt_daemon *d;
	char pci[KV_GPU_PCI_ID], sz[32], pid[16];
	size_t gran = 0;
	int closed, memfd, null_fd, in_hbm, st;
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	pid_t child;

	d = fx_start(args);
	c = fx_connect(d->sock, "fdonly", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");

	/* What HELLO handed over: sizes, the GPU's PCI id and an fd. */
	kvci_hbm_info(c, &info);
	if (info.fd < 0)
		fail_msg("HELLO handed over no HBM fd");
	if (!(fcntl(info.fd, F_GETFD) & FD_CLOEXEC))
		fail_msg("the HBM fd is not close-on-exec");
	expect_ret(kv_gpu_vmm_granularity(0, &gran), 0, "kv_gpu_vmm_granularity");
	expect_ret(kv_gpu_pci_id(0, pci), 0, "kv_gpu_pci_id");
	if (info.bytes != 64 * MIB || info.map_bytes < info.bytes || info.map_bytes % gran ||
	    strcasecmp(info.pci, pci))
		fail_msg("HELLO's HBM arena: %" PRIu64 " bytes, %" PRIu64 " mapped, GPU %s; want "
			 "64 MiB, whole %zu-byte granules, GPU %s", info.bytes, info.map_bytes,
			 info.pci, gran, pci);
	print_message("figure: HBM arena handed over as fd %d: %" PRIu64 " bytes, %" PRIu64
		      " mapped (%zu-byte granules), GPU %s\n", info.fd, info.bytes,
		      info.map_bytes, gran, info.pci);

	/* Any other fd opens nothing. */
	closed = dup(info.fd);
	assert_true(closed >= 0);
	close(closed);
	expect_no_import(closed, info.map_bytes, "a closed fd");
	expect_no_import(4000, info.map_bytes, "a made-up fd number");
	memfd = memfd_create("not-an-arena", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, (off_t)info.map_bytes), 0);
	expect_no_import(memfd, info.map_bytes, "a memfd");
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(null_fd >= 0);
	expect_no_import(null_fd, info.map_bytes, "/dev/null");
	expect_ret(kv_gpu_vmm_import(info.fd, info.map_bytes - 1, 0, &m), -EINVAL,
		   "kv_gpu_vmm_import of no whole number of granules");
	close(memfd);
	close(null_fd);

	/* Chunks the daemon copied up into HBM (its GPU thread, DRAM -> HBM),
	 * read through a mapping of our own made from the fd. */
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	check_get_gpu(c, ns, keys, want, N, cb, any, NULL, dev, buf, "kvc_get_gpu (promotes)");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	t0 = now_ms();
	while ((in_hbm = count_in_hbm(c, ns, keys, N)) < N && now_ms() - t0 < 3000)
		kvt_sleep_ms(20);
	if (in_hbm != N)
		fail_msg("%d of %d chunks promoted into HBM in 3 s", in_hbm, N);
	expect_ret(kv_gpu_vmm_import(info.fd, info.map_bytes, 0, &m), 0,
		   "kv_gpu_vmm_import of the arena's fd");
	expect_ret(kvci_pin(c, ns, keys, N, locs, KV_PIN_GPU), 0, "kvci_pin KV_PIN_GPU");
	for (int i = 0; i < N; i++) {
		expect_ret(locs[i].status, 0, "kvci_pin: status");
		check_tier(locs[i].tier, TIER_BIT(KVC_TIER_HBM), "pinned promoted chunk",
			   (size_t)i);
		if (locs[i].offset > info.bytes || info.bytes - locs[i].offset < cb)
			fail_msg("chunk %d at HBM offset %" PRIu64 ", past the arena", i,
				 locs[i].offset);
		memset(buf, POISON, cb);
		download(buf, (char *)kv_gpu_vmm_ptr(m) + locs[i].offset, cb);
		same_bytes(buf, want[i], cb, "the daemon's HBM copy through our own mapping",
			   (size_t)i);
	}
	expect_ret(kvc_release(c, ns, keys, N, NULL), 0, "kvc_release");
	kv_gpu_vmm_close(m);

	/* A process of another uid: no connection, no fd, no way in. */
	snprintf(pid, sizeof(pid), "%d", (int)d->pid);
	snprintf(sz, sizeof(sz), "%" PRIu64, info.map_bytes);
	{
		const char *cargs[] = { "--child-outsider", d->sock, pid, sz, NULL };

		child = spawn_child(cargs);
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		print_message("the other-uid part was skipped (its line is above)\n");
	else if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("a process of another uid reached the daemon or its arena (status %#x)",
			 st);
	fx_close(c);
	fx_stop(d);
}

/*
 * Two tenants (root, uid 65534), an HBM arena each: the second maps,
 * reads and overwrites all of its own arena and finds none of the first
 * tenant's chunks, which stay exact in the first tenant's HBM.
 */
static void test_hbm_tenants(void **state)
{
	const char *args[] = { "--dram-bytes", "128M", "--hbm-bytes", "128M", "--gpu", "0",
			       "--hbm-promote", "always", "--allow-uids", "0,65534",
			       "--log", "info", NULL };
	enum { N = 4 };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(N * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	struct kvc_key keys[N];
	uint8_t *want[N];
	struct kvci_hbm info;
	struct kvt_daemon *d;
	char sd[32], n[16], sz[32];
	struct kvc *c;
	uint64_t t0;
	uint32_t ns;
	int in_hbm, st;
	pid_t child;

	d = fx_start(args);
	chmod(d->dir, 0755);
	chmod(d->sock, 0666);	/* the daemon's own checks must hold alone */
	c = fx_connect(d->sock, "tenant-a", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	kvci_hbm_info(c, &info);
	if (info.fd < 0 || info.bytes != 64 * MIB)
		fail_msg("the first tenant's HBM arena: fd %d, %" PRIu64 " bytes; want 64 MiB, "
			 "half of the daemon's", info.fd, info.bytes);
	for (int i = 0; i < N; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM),
		      NULL, dev, buf, "kvc_get_gpu (promotes)");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	t0 = now_ms();
	while ((in_hbm = count_in_hbm(c, ns, keys, N)) < N && now_ms() - t0 < 3000)
		kvt_sleep_ms(20);
	if (in_hbm != N)
		fail_msg("%d of %d chunks promoted into HBM in 3 s", in_hbm, N);
	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(n, sizeof(n), "%d", N);
	snprintf(sz, sizeof(sz), "%zu", cb);
	{
		const char *cargs[] = { "--child-tenant", d->sock, sd, n, sz, NULL };

		child = spawn_child(cargs);
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		print_message("the second tenant was skipped (its line is above)\n");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fail_msg("the second tenant saw the first tenant's HBM chunks (status %#x)", st);
	}
	/* Still in HBM, still exact. */
	check_get_gpu(c, ns, keys, want, N, cb, TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu after the second tenant");
	fx_close(c);
	fx_stop(d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest own_daemon_tests[] = {
		cmocka_unit_test_setup_teardown(test_hbm_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hbm_fd_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hbm_tenants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_always, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_second, setup, teardown),
	};
	int ret;

	if (argc > 1 && !strncmp(argv[1], "--child-", 8))
		return child_main(argc, argv);
	ret = gpu_start();
	if (ret)
		return ret;
	ret = cmocka_run_group_tests_name("gpu hbm, a daemon each", own_daemon_tests, NULL, NULL);
	return ret ? 1 : 0;
}
