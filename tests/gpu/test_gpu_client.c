/*
 * test_gpu_client.c - libkvc's GPU API against a live daemon, on a GPU.
 *
 *  1. kvc_get_gpu / kvc_put_gpu between the store and device memory, with
 *     -EEXIST, -ENOBUFS and -ENOENT per chunk;
 *  5. a client that dies with copies, pins and puts queued;
 *  7. a daemon whose --gpu does not exist serves from DRAM;
 *  and chunks that live only on SSD reach the GPU, by kvc_get_gpu and
 *  kvc_get_paged.
 *
 * The paged layouts (2, 3) are in test_gpu_paged.c, the HBM tier (4, 6,
 * 8) in test_gpu_hbm.c, read-your-writes in test_gpu_ryw.c; what they all
 * share is in gpu_fx.c (gpu_fx.c says how every byte is checked).
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
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/tmpdir.h"
#include "tests/gpu/gpu_fx.h"

/* ---- 1. chunks to and from device memory -------------------------------- */

static void test_get_put_gpu(void **state)
{
	static const size_t sizes[4] = { MIB, 65536 + 13, 3 * 4096 + 1, 256 };
	const size_t slot = MIB + SPARE;
	uint8_t *dev = fx_dev(6 * slot), *src = fx_dev(4 * slot);
	uint8_t *buf = fx_host(slot), *ref = fx_host(slot), *want[4];
	struct kvc_key keys[4], pkeys[4];
	struct kvc_gpu_desc gd[6];
	struct kvc_put_desc pd[4], again;
	uint64_t done = 0, total = 0;
	uint8_t tiers[4];
	size_t dram = 0;
	struct kvc *c, *c2;
	uint32_t ns, ns2;
	int ret;

	c = fx_connect(shared_d.sock, "gpu-basic", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open again, same device");

	/* Host puts, GPU gets; a miss and a too small buffer in the batch. */
	for (int i = 0; i < 4; i++) {
		want[i] = fx_host(sizes[i]);
		fill(want[i], sizes[i], (uint64_t)i);
		keys[i] = key_of((uint64_t)i);
		expect_ret(kvc_put(c, ns, &keys[i], NULL, 32, 0, want[i], sizes[i]), 0, "kvc_put");
	}
	poison_dev(dev, 6 * slot);
	memset(gd, 0, sizeof(gd));
	for (int i = 0; i < 6; i++) {
		gd[i].key = i < 4 ? keys[i] : i == 4 ? key_of(100) : keys[0];
		gd[i].dev = dev + i * slot;
		gd[i].cap = i == 5 ? sizes[0] - 1 : slot;
		gd[i].status = 1;
		gd[i].tier = 0xee;
	}
	ret = kvc_get_gpu(c, ns, gd, 6, fx.s, fx.ev[0]);
	expect_ret(ret, 4, "kvc_get_gpu of 4 chunks, a miss and a small buffer");
	sync_event(0, "kvc_get_gpu: done event");
	for (int i = 0; i < 4; i++) {
		expect_ret(gd[i].status, 0, "kvc_get_gpu: status");
		assert_int_equal(gd[i].bytes, sizes[i]);
		check_tier(gd[i].tier, TIER_BIT(KVC_TIER_DRAM), "kvc_get_gpu", (size_t)i);
	}
	expect_ret(gd[4].status, -ENOENT, "kvc_get_gpu: status of a missing key");
	expect_ret(gd[5].status, -ENOBUFS, "kvc_get_gpu: status with cap one short");
	if (gd[5].bytes != sizes[0])
		fail_msg("kvc_get_gpu -ENOBUFS: bytes %zu, want the chunk's %zu", gd[5].bytes,
			 sizes[0]);
	for (int i = 0; i < 6; i++) {
		memset(ref, POISON, slot);
		if (i < 4)
			memcpy(ref, want[i], sizes[i]);
		download(buf, dev + i * slot, slot);
		same_bytes(buf, ref, slot,
			   i < 4 ? "kvc_get_gpu: chunk and the poison after it" :
			   "kvc_get_gpu: a miss or -ENOBUFS wrote its buffer", (size_t)i);
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");

	/* The legacy default stream and no event: kvc_gpu_flush() waits. */
	poison_dev(dev, slot);
	memset(gd, 0, sizeof(gd));
	gd[0].key = keys[2];
	gd[0].dev = dev;
	gd[0].cap = slot;
	expect_ret(kvc_get_gpu(c, ns, gd, 1, NULL, NULL), 1, "kvc_get_gpu, NULL stream");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	download(buf, dev, sizes[2]);
	same_bytes(buf, want[2], sizes[2], "kvc_get_gpu on the NULL stream, after flush", 2);

	kvc_gpu_registered(c, &done, &total);
	assert_non_null(kvc_dram_base(c, &dram));
	if (total != dram || done == 0 || done > total)
		fail_msg("kvc_gpu_registered: %" PRIu64 " of %" PRIu64 " bytes, mapping %zu",
			 done, total, dram);

	/* GPU puts; the same key again while it is being written: -EEXIST. */
	memset(pd, 0, sizeof(pd));
	for (int i = 0; i < 4; i++) {
		want[i] = fx_host(sizes[i]);
		fill(want[i], sizes[i], 10 + (uint64_t)i);
		upload(src + i * slot, want[i], sizes[i]);
		pkeys[i] = key_of(10 + (uint64_t)i);
		pd[i].key = pkeys[i];
		pd[i].tokens = 32;
		pd[i].data = src + i * slot;
		pd[i].bytes = sizes[i];
		pd[i].status = 1;
	}
	ret = kvc_put_gpu(c, ns, pd, 4, 0, fx.s, fx.ev[0]);
	expect_ret(ret, 4, "kvc_put_gpu");
	for (int i = 0; i < 4; i++)
		expect_ret(pd[i].status, 0, "kvc_put_gpu: status");
	again = pd[0];
	again.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &again, 1, 0, fx.s, NULL), 0,
		   "kvc_put_gpu of a key being written");
	expect_ret(again.status, -EEXIST, "kvc_put_gpu of a key being written: status");
	sync_event(0, "kvc_put_gpu: done event");

	/* The done event fired: committed (read-your-writes, kvc.h). */
	check_get_gpu(c, ns, &pkeys[0], &want[0], 1, sizes[0], TIER_BIT(KVC_TIER_DRAM), NULL,
		      dev, buf, "kvc_get_gpu of a GPU put, first call after its copy");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int i = 0; i < 4; i++) {
		check_get_host(c, ns, &pkeys[i], want[i], sizes[i], buf, "kvc_get of a GPU put",
			       (size_t)i);
		check_get_gpu(c, ns, &pkeys[i], &want[i], 1, sizes[i], TIER_BIT(KVC_TIER_DRAM),
			      NULL, dev, buf, "kvc_get_gpu of a GPU put");
	}
	c2 = fx_connect(shared_d.sock, "gpu-basic", &ns2);
	for (int i = 0; i < 4; i++)
		check_get_host(c2, ns2, &pkeys[i], want[i], sizes[i], buf,
			       "kvc_get of a GPU put, another connection", (size_t)i);
	expect_ret(kvc_lookup(c2, ns2, pkeys, 4, tiers), 4, "kvc_lookup");
	for (int i = 0; i < 4; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup", (size_t)i);

	/* Cached now: -EEXIST from either kind of put, nothing overwritten. */
	expect_ret(kvc_put(c, ns, &pkeys[1], NULL, 32, 0, want[0], sizes[1]), -EEXIST,
		   "kvc_put of a cached key");
	again = pd[1];
	again.data = src;	/* other bytes: must not be copied */
	again.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &again, 1, 0, fx.s, fx.ev[0]), 0,
		   "kvc_put_gpu of a cached key");
	expect_ret(again.status, -EEXIST, "kvc_put_gpu of a cached key: status");
	sync_event(0, "kvc_put_gpu: done event");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_host(c2, ns2, &pkeys[1], want[1], sizes[1], buf,
		       "kvc_get after an -EEXIST put", 1);

	/* KVC_GPU_REGISTER_ALL page-locks the whole mapping in the background. */
	fx_close(c2);
	c2 = fx_connect(shared_d.sock, "gpu-basic", &ns2);
	expect_ret(kvc_gpu_open(c2, 0, KVC_GPU_REGISTER_ALL), 0,
		   "kvc_gpu_open KVC_GPU_REGISTER_ALL");
	for (int i = 0; i < 500; i++) {
		kvc_gpu_registered(c2, &done, &total);
		if (total && done == total)
			break;
		kvt_sleep_ms(20);
	}
	if (!total || done != total)
		fail_msg("KVC_GPU_REGISTER_ALL: %" PRIu64 " of %" PRIu64 " bytes after 10 s",
			 done, total);
	check_get_gpu(c2, ns2, pkeys, want, 1, sizes[0], TIER_BIT(KVC_TIER_DRAM), NULL,
		      dev, buf, "kvc_get_gpu, whole mapping registered");
	expect_ret(kvc_gpu_flush(c2), 0, "kvc_gpu_flush");
	fx_close(c2);
	fx_close(c);
}

/* ---- 5. a client dying with copies queued ------------------------------- */

static void client_death(bool hbm)
{
	const char *dram_args[] = { "--dram-bytes", "256M", "--hbm-bytes", "0", "--log", "warn",
				    NULL };
	const char *hbm_args[] = { "--dram-bytes", "256M", "--hbm-bytes", "128M", "--gpu", "0",
				   "--hbm-promote", "off", "--log", "warn", NULL };
	enum { K = 48, P = 16, H = 16 };
	struct shape sh = big_shape(2 * K);
	const size_t cb = shape_chunk_bytes(&sh);
	struct kvc_key keys[K], pkeys[P + 1];
	uint8_t *want[K], *pw = fx_host(cb), tiers[K], ptiers[P];
	uint8_t *dev = fx_dev(H * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	uint64_t base_dram, base_hbm = 0, t0, ms;
	struct kvc_put_desc pd[H];
	const struct kvc_tier_stats *t;
	struct kvt_daemon *d;
	struct kvc_stats st;
	unsigned committed = 0;
	char sd[32], kb[8], pb[8], fl[16], fdb[8];
	int st_, pfd[2], evst[K];
	struct kvc *c;
	uint32_t ns;
	pid_t pid;
	char ch;

	d = fx_start(hbm ? hbm_args : dram_args);
	c = fx_connect(d->sock, "death", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open");
	for (int i = 0; i < K; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	/* With HBM: the first H chunks put into it from device memory. */
	if (hbm) {
		memset(pd, 0, sizeof(pd));
		for (int i = 0; i < H; i++) {
			upload(dev + i * cb, want[i], cb);
			pd[i].key = keys[i];
			pd[i].tokens = sh.chunk_tokens;
			pd[i].data = dev + i * cb;
			pd[i].bytes = cb;
		}
		expect_ret(kvc_put_gpu(c, ns, pd, H, KVC_PUT_HBM, fx.s, fx.ev[0]), H,
			   "kvc_put_gpu KVC_PUT_HBM");
		sync_event(0, "kvc_put_gpu: done event");
		expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
		wait_dram_chunks(c, H, "after KVC_PUT_HBM");
	}
	for (int i = hbm ? H : 0; i < K; i++)
		expect_ret(kvc_put(c, ns, &keys[i], NULL, sh.chunk_tokens, 0, want[i], cb), 0,
			   "kvc_put");
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	base_dram = find_tier(&st, "dram")->used_bytes;
	if (hbm) {
		t = find_tier(&st, "hbm");
		assert_non_null(t);
		base_hbm = t->used_bytes;
	}

	snprintf(sd, sizeof(sd), "%#" PRIx64, seed);
	snprintf(kb, sizeof(kb), "%d", K);
	snprintf(pb, sizeof(pb), "%d", P);
	snprintf(fl, sizeof(fl), "%u", hbm ? (unsigned)KVC_PUT_HBM : 0u);
	assert_int_equal(pipe(pfd), 0);
	snprintf(fdb, sizeof(fdb), "%d", pfd[1]);
	{
		const char *cargs[] = { "--child-die", d->sock, sd, kb, pb, fl,
					hbm ? "kill" : "exit", fdb, NULL };

		pid = spawn_child(cargs);
	}
	close(pfd[1]);
	if (hbm) {
		/* Killed holding pins, HBM copies and uncommitted HBM puts. */
		if (read(pfd[0], &ch, 1) != 1)
			wait_child(pid, "the child to be killed");	/* died early: why */
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &st_, 0), pid);
		if (!WIFSIGNALED(st_))
			fail_msg("the child was not killed (status %#x)", st_);
	} else {
		wait_child(pid, "the child that _exits with copies queued");
	}
	close(pfd[0]);

	/* TESTING.md plan 5: all released within 1 s of the socket closing. */
	t0 = now_ms();
	do {
		expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
		if (st.pinned_chunks == 0 && st.pending_chunks == 0)
			break;
		kvt_sleep_ms(10);
	} while (now_ms() - t0 < 1000);
	ms = now_ms() - t0;
	if (st.pinned_chunks || st.pending_chunks)
		fail_msg("1 s after the client died: %" PRIu64 " chunks pinned, %" PRIu64
			 " allocations pending", st.pinned_chunks, st.pending_chunks);
	print_message("figure: client %s with copies queued%s: released within %" PRIu64
		      " ms\n", hbm ? "SIGKILLed" : "_exit()ed", hbm ? " (HBM)" : "", ms);

	/* Every chunk exact; the puts absent, or exact if they were committed. */
	for (int i = 0; i < K; i++)
		check_get_host(c, ns, &keys[i], want[i], cb, buf, "kvc_get after the client died",
			       (size_t)i);
	for (int i = 0; i < K; i += H) {
		unsigned mask = TIER_BIT(KVC_TIER_DRAM) |
				(hbm && i < H ? TIER_BIT(KVC_TIER_HBM) : 0);

		check_get_gpu(c, ns, &keys[i], &want[i], H, cb, mask, tiers + i, dev, buf,
			      "kvc_get_gpu after the client died");
	}
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	for (int j = 0; j < P; j++)
		pkeys[j] = key_of(ITEM_PUT + (uint64_t)j);
	for (int j = 0; j < P; j++) {
		int ret = kvc_lookup(c, ns, &pkeys[j], 1, &ptiers[j]);

		if (ret < 0)
			expect_ret(ret, 1, "kvc_lookup of a put made by the dead client");
		if (ret == 0)
			continue;
		committed++;
		fill(pw, cb, ITEM_PUT + (uint64_t)j);
		check_get_host(c, ns, &pkeys[j], pw, cb, buf,
			       "a put committed by the dead client", (size_t)j);
	}
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	if (!hbm && find_tier(&st, "dram")->used_bytes != base_dram + committed * cb)
		fail_msg("dram used %" PRIu64 " bytes, want %" PRIu64 " + %u committed puts",
			 find_tier(&st, "dram")->used_bytes, base_dram, committed);
	if (hbm && committed == 0 && (find_tier(&st, "dram")->used_bytes != base_dram ||
				      find_tier(&st, "hbm")->used_bytes != base_hbm))
		fail_msg("usage after the client died: dram %" PRIu64 " (was %" PRIu64
			 "), hbm %" PRIu64 " (was %" PRIu64 ")",
			 find_tier(&st, "dram")->used_bytes, base_dram,
			 find_tier(&st, "hbm")->used_bytes, base_hbm);
	print_message("figure: client death: %u of %d queued puts were committed\n",
		      committed, P);

	/* Unpinned: every chunk the child got can be evicted. */
	expect_ret(kvc_evict(c, ns, keys, K, evst), K, "kvc_evict of the chunks the child got");
	for (int i = 0; i < K; i++)
		expect_ret(evst[i], 0, "kvc_evict: status");

	/* And the daemon still serves a GPU round trip. */
	pkeys[P] = key_of(ITEM_PUT + 500);
	memset(pd, 0, sizeof(pd));
	fill(pw, cb, ITEM_PUT + 500);
	upload(dev, pw, cb);
	pd[0].key = pkeys[P];
	pd[0].tokens = sh.chunk_tokens;
	pd[0].data = dev;
	pd[0].bytes = cb;
	expect_ret(kvc_put_gpu(c, ns, pd, 1, hbm ? KVC_PUT_HBM : 0, fx.s, fx.ev[0]), 1,
		   "kvc_put_gpu after the client died");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_gpu(c, ns, &pkeys[P], &pw, 1, cb,
		      TIER_BIT(KVC_TIER_DRAM) | TIER_BIT(KVC_TIER_HBM), NULL, dev, buf,
		      "kvc_get_gpu after the client died");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	assert_true(kvt_alive(d));
	fx_close(c);
	fx_stop(d);
}

static void test_client_exits_mid_copy(void **state)
{
	client_death(false);
}

static void test_client_killed_mid_copy_hbm(void **state)
{
	client_death(true);
}

/* ---- 7. a GPU the daemon cannot have ------------------------------------ */

static void test_no_such_gpu(void **state)
{
	const char *args[] = { "--hbm-bytes", "64M", "--gpu", "99", "--log", "info", NULL };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(2 * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	const struct kvc_tier_stats *t;
	struct kvc_put_desc pd;
	struct kvc_key keys[2];
	uint8_t *want[2], tiers[2];
	struct kvt_daemon *d;
	struct kvc_stats st;
	struct cache ca;
	struct kvc *c;
	uint32_t ns;

	d = fx_start(args);
	if (!kvt_log_has(d, "hbm") && !kvt_log_has(d, "HBM")) {
		kvt_dump_log(d);
		fail_msg("--gpu 99: no log line says why there is no HBM tier");
	}
	c = fx_connect(d->sock, "nogpu", &ns);
	expect_ret(kvc_gpu_open(c, 0, 0), 0, "kvc_gpu_open (this process has a GPU)");
	for (int i = 0; i < 2; i++) {
		keys[i] = key_of((uint64_t)i);
		want[i] = fx_host(cb);
		fill(want[i], cb, (uint64_t)i);
	}
	expect_ret(kvc_put(c, ns, &keys[0], NULL, sh.chunk_tokens, 0, want[0], cb), 0, "kvc_put");

	/* KVC_PUT_HBM with no HBM tier: stored in DRAM. */
	upload(dev, want[1], cb);
	memset(&pd, 0, sizeof(pd));
	pd.key = keys[1];
	pd.parent = keys[0];
	pd.has_parent = 1;
	pd.tokens = sh.chunk_tokens;
	pd.position = sh.chunk_tokens;
	pd.data = dev;
	pd.bytes = cb;
	pd.status = 1;
	expect_ret(kvc_put_gpu(c, ns, &pd, 1, KVC_PUT_HBM, fx.s, fx.ev[0]), 1,
		   "kvc_put_gpu KVC_PUT_HBM, no HBM tier");
	expect_ret(pd.status, 0, "kvc_put_gpu KVC_PUT_HBM, no HBM tier: status");
	sync_event(0, "kvc_put_gpu: done event");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	expect_ret(kvc_lookup(c, ns, keys, 2, tiers), 2, "kvc_lookup");
	for (int i = 0; i < 2; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_DRAM), "kvc_lookup, no HBM tier",
			   (size_t)i);
	check_get_gpu(c, ns, keys, want, 2, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu, no HBM tier");
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, 2, TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged, no HBM tier");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	check_get_host(c, ns, &keys[1], want[1], cb, buf, "kvc_get, no HBM tier", 1);
	expect_ret(kvc_stats(c, &st), 0, "kvc_stats");
	t = find_tier(&st, "hbm");
	if (t && (t->chunks || t->used_bytes))
		fail_msg("--gpu 99: an hbm tier holding %" PRIu64 " chunks", t->chunks);
	fx_close(c);
	fx_stop(d);
}

/*
 * SSD-resident chunks reach the GPU: a prefix chain four times the DRAM
 * tier, so its first chunks live only on SSD; GPU and paged gets of them
 * promote them first (the PIN waits) and copy exact bytes.
 */
static void test_ssd_to_gpu(void **state)
{
	enum { N = 512, K = 8 };
	char dir[] = "/var/tmp/kvgpu-ssd.XXXXXX";
	const char *args[] = { "--dram-bytes", "8M", "--ssd-dir", dir, "--ssd-bytes", "256M",
			       "--log", "warn", NULL };
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	const size_t cb = shape_chunk_bytes(&sh);
	uint8_t *dev = fx_dev(K * (cb + SPARE)), *buf = fx_host(cb + SPARE);
	uint8_t *all = fx_host(N * cb);
	struct kvc_key keys[N];
	uint8_t *want[N], tiers[K];
	struct kvt_daemon *d;
	struct cache ca;
	struct kvc *c;
	uint32_t ns;

	assert_int_equal(kvt_tmpdir(dir, sizeof(dir), "/var/tmp", "kvgpu-ssd."), 0);
	d = fx_start(args);
	c = fx_connect(d->sock, "ssd", &ns);
	for (size_t i = 0; i < N; i++) {
		keys[i] = key_of(i);
		want[i] = all + i * cb;
		fill(want[i], cb, i);
	}
	put_host_chain(c, ns, keys, want, N, cb, sh.chunk_tokens);
	expect_ret(kvc_flush(c, KVC_TIER_DRAM, 0, NULL), 0, "kvc_flush dram");
	expect_ret(kvc_lookup(c, ns, keys, K, tiers), K, "kvc_lookup");
	for (size_t i = 0; i < K; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_SSD), "oldest chunks on SSD", i);
	check_get_gpu(c, ns, keys, want, K, cb, TIER_BIT(KVC_TIER_DRAM), NULL, dev, buf,
		      "kvc_get_gpu of SSD chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	/* Demote them again, then the paged path. */
	for (size_t i = 0; i < K; i++)
		expect_ret(kvc_evict(c, ns, &keys[i], 1, NULL), 1, "kvc_evict (demote)");
	expect_ret(kvc_lookup(c, ns, keys, K, tiers), K, "kvc_lookup");
	for (size_t i = 0; i < K; i++)
		check_tier(tiers[i], TIER_BIT(KVC_TIER_SSD), "demoted chunks on SSD", i);
	cache_open(&ca, &sh);
	check_get_paged(c, ns, &ca, keys, want, K, TIER_BIT(KVC_TIER_DRAM),
			"kvc_get_paged of SSD chunks");
	expect_ret(kvc_gpu_flush(c), 0, "kvc_gpu_flush");
	fx_close(c);
	fx_stop(d);
	if (kvt_rmtree(dir))
		fail_msg("cannot remove %s", dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest shared_tests[] = {
		cmocka_unit_test_setup_teardown(test_get_put_gpu, setup, teardown),
	};
	const struct CMUnitTest own_daemon_tests[] = {
		cmocka_unit_test_setup_teardown(test_client_exits_mid_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_killed_mid_copy_hbm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_such_gpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssd_to_gpu, setup, teardown),
	};
	int ret;

	if (argc > 1 && !strncmp(argv[1], "--child-", 8))
		return child_main(argc, argv);
	ret = gpu_start();
	if (ret)
		return ret;
	ret = cmocka_run_group_tests_name("gpu client, one daemon", shared_tests, group_setup,
					  group_teardown);
	ret |= cmocka_run_group_tests_name("gpu client, a daemon each", own_daemon_tests, NULL,
					   NULL);
	return ret ? 1 : 0;
}
