/*
 * issue_11_tenants.c - issue 11: tenants isolated in memory, and their
 * quotas.
 *
 * Before: every client mapped the whole DRAM arena read-write. A second
 * uid on the allow-list read the first uid's chunk bytes straight from the
 * mapping, overwrote them, and punched holes in the memfd it received, so
 * every chunk read back as zeros; one user's puts evicted another's chunks
 * and one user could fill the namespace table. Now each tenant has arenas
 * of its own and quotas of its own:
 * - a second tenant maps and scans everything the daemon handed it, writes
 *   into it, punches holes in it and tries to truncate it: none of the
 *   first tenant's bytes are found, and every first-tenant chunk is exact;
 * - a tenant's puts evict only its own chunks (DRAM and SSD);
 * - namespaces, uncommitted bytes and chunk records have per-tenant
 *   limits with clear error codes.
 * The cases that need a second uid run as root (as CI does) and skip
 * otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/proto.h"
#include "tests/integration/harness.h"
#include "tests/lib/tmpdir.h"

#define NOBODY		65534
#define CHUNK		(256u << 10)
#define N_ROOT		16

/* The first tenant's bytes: a marker no other chunk holds, then noise. */
static const char marker[] = "issue-11: the first tenant's secret bytes";

static void fill_chunk(unsigned char *p, unsigned i)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1);

	for (size_t o = 0; o < CHUNK; o++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[o] = (unsigned char)x;
	}
	/* Several copies of the marker, so a partial leak is found too. */
	for (size_t o = 0; o + sizeof(marker) < CHUNK; o += 4096)
		memcpy(p + o, marker, sizeof(marker) - 1);
}

static int as_nobody(int (*fn)(const char *), const char *sock)
{
	return kvt_as_user(NOBODY, fn, sock);
}

/* kvc_get, returning the size got, or 0 on any error. */
static size_t get(struct kvc *c, uint32_t ns, const struct kvc_key *k, void *buf,
		  size_t cap)
{
	size_t bytes = 0;

	return kvc_get(c, ns, k, buf, cap, &bytes) == 0 ? bytes : 0;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root to act as a second uid\n");
		skip();
	}
}

/* Let nobody reach the daemon's socket: the daemon's checks must hold
 * alone. */
static void open_up(const struct kvt_daemon *d)
{
	chmod(d->dir, 0755);
	chmod(d->sock, 0666);
}

static bool has_marker(const unsigned char *p, size_t n)
{
	return memmem(p, n, marker, sizeof(marker) - 1) != NULL;
}

/*
 * HELLO by hand, as a client that keeps every descriptor the daemon sends
 * (libkvc closes its memfd once mapped). Returns the connection, or -1.
 */
static int raw_hello(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello b;
	} req;
	char rep[sizeof(struct kv_wire_hdr) + sizeof(struct kv_wire_hello_reply)];
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { rep, sizeof(rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0 || strlen(sock) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	memset(&req, 0, sizeof(req));
	req.h.len = sizeof(req.b);
	req.h.op = KV_OP_HELLO;
	req.h.req_id = 1;
	req.b.version = KV_PROTO_VERSION;
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req) || recvmsg(fd, &mh, 0) <= 0)
		return -1;
	return fd;	/* the descriptors stay open, for the scan below */
}

/*
 * The hostile second tenant: map every descriptor it holds (those the
 * daemon passed included) as large as it is, look for the first tenant's
 * marker, then write over all of it, punch holes in it and try to shrink
 * it. 0: nothing of the first tenant's was found; 10 + n: the marker was
 * in fd n's bytes; other values: a setup failure.
 */
static int hostile(const char *sock)
{
	struct kvc *c;
	size_t bytes;
	unsigned char *base;
	DIR *dir;
	struct dirent *de;
	int found = 0, mapped = 0;

	if (kvc_connect(sock, &c) || raw_hello(sock) < 0)
		return 2;
	base = kvc_dram_base(c, &bytes);
	if (!base || !bytes)
		return 3;
	if (has_marker(base, bytes))
		return 4;
	memset(base, 0xee, bytes);
	dir = opendir("/proc/self/fd");
	if (!dir)
		return 5;
	while ((de = readdir(dir))) {
		int fd = atoi(de->d_name);
		struct stat st;
		void *p;

		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(dir) ||
		    fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0)
			continue;
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			continue;
		mapped++;
		if (has_marker(p, (size_t)st.st_size))
			found = 10 + fd;
		if (mprotect(p, (size_t)st.st_size, PROT_READ | PROT_WRITE) == 0)
			memset(p, 0, (size_t)st.st_size);
		munmap(p, (size_t)st.st_size);
		/* Everything a writable descriptor allows. */
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, st.st_size);
		if (ftruncate(fd, 0) == 0)
			found = found ? found : 6;	/* the seal must forbid it */
	}
	closedir(dir);
	if (mapped == 0)
		return 7;
	kvc_close(c);
	return found;
}

static void test_second_tenant_gets_nothing(void **state)
{
	const char *args[] = { "--dram-bytes", "32M", "--allow-uids", "0,65534", NULL };
	static unsigned char want[N_ROOT][CHUNK], got[CHUNK];
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;
	int ret;

	need_root();
	assert_int_equal(kvt_start(&d, args), 0);
	open_up(&d);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "tenant-a/model", &ns), 0);
	for (unsigned i = 0; i < N_ROOT; i++) {
		struct kvc_key k = { i + 1, 11 };

		fill_chunk(want[i], i);
		assert_int_equal(kvc_put(c, ns, &k, NULL, 1, 0, want[i], CHUNK), 0);
	}
	ret = as_nobody(hostile, d.sock);
	print_message("figure: second tenant: exit %d (0: none of the first tenant's bytes seen)\n",
		      ret);
	assert_int_equal(ret, 0);
	/* Every first-tenant chunk still exact, through a fresh mapping too. */
	for (unsigned i = 0; i < N_ROOT; i++) {
		struct kvc_key k = { i + 1, 11 };

		assert_int_equal(get(c, ns, &k, got, CHUNK), CHUNK);
		assert_memory_equal(got, want[i], CHUNK);
	}
	kvc_close(c);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "tenant-a/model", &ns), 0);
	for (unsigned i = 0; i < N_ROOT; i++) {
		struct kvc_key k = { i + 1, 11 };

		assert_int_equal(get(c, ns, &k, got, CHUNK), CHUNK);
		assert_memory_equal(got, want[i], CHUNK);
	}
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/* nobody: its namespace limit (3 declared), its uncommitted bytes (2 MiB),
 * and the first tenant's namespace name refused. */
static int nobody_limits(const char *sock)
{
	struct kvc_put_desc pd[3];
	struct kvc *c;
	void *ptrs[3];
	uint32_t ns;
	char name[32];

	if (kvc_connect(sock, &c))
		return 2;
	if (kvc_ns_register(c, "tenant-a/model", &ns) != -EACCES)
		return 3;
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "b/%d", i);
		if (kvc_ns_register(c, name, &ns))
			return 4;
	}
	if (kvc_ns_register(c, "b/3", &ns) != -KVC_EQUOTA)
		return 5;
	/* A dropped name's id stays burned for the run and keeps counting:
	 * register-and-drop cannot fill the daemon's table for others. */
	if (kvc_ns_drop(c, "b/1", NULL, NULL) || kvc_ns_register(c, "b/4", &ns) != -KVC_EQUOTA)
		return 9;
	if (kvc_ns_register(c, "b/0", &ns))	/* its own: still fine */
		return 6;
	memset(pd, 0, sizeof(pd));
	for (int i = 0; i < 3; i++) {
		pd[i].key = (struct kvc_key){ 500 + (uint64_t)i, 1 };
		pd[i].bytes = 1u << 20;
	}
	if (kvc_alloc(c, ns, pd, 3, ptrs) != 2 || pd[2].status != -KVC_EQUOTA)
		return 7;
	/* It sees its own tenant only, with its figures. */
	{
		struct kvc_tenant t[4];

		if (kvc_tenants(c, t, 4) != 1 || strcmp(t[0].name, "b") ||
		    t[0].namespaces != 3 || t[0].max_namespaces != 3 ||
		    t[0].uncommitted != 2u << 20 || t[0].max_uncommitted != 2u << 20 ||
		    t[0].capacity[KVC_TIER_DRAM] != 8u << 20 || t[0].connections != 1)
			return 8;
	}
	kvc_close(c);
	return 0;
}

static void test_namespace_and_uncommitted_quotas(void **state)
{
	const char *args[] = { "--dram-bytes", "16M", "--allow-uids", "0",
			       "--tenant", "b uids=65534 namespaces=3 uncommitted_bytes=2M dram_bytes=8M",
			       NULL };
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;

	need_root();
	assert_int_equal(kvt_start(&d, args), 0);
	open_up(&d);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "tenant-a/model", &ns), 0);
	assert_int_equal(as_nobody(nobody_limits, d.sock), 0);
	/* The first tenant's own namespaces are not touched by b's limit. */
	for (int i = 0; i < 8; i++) {
		char name[32];

		snprintf(name, sizeof(name), "a/%d", i);
		assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	}
	/* Root sees both tenants: b as it left it, itself with 9 names. */
	{
		struct kvc_tenant t[4];

		assert_int_equal(kvc_tenants(c, t, 4), 2);
		assert_string_equal(t[0].name, "b");
		assert_int_equal(t[0].namespaces, 3);
		assert_int_equal(t[0].uncommitted, 0);	/* its connection left */
		assert_string_equal(t[1].name, "uid:0");
		assert_int_equal(t[1].namespaces, 9);
		assert_int_equal(t[1].capacity[KVC_TIER_DRAM], 8u << 20);
	}
	kvc_close(c);
	assert_true(kvt_log_has(&d, "tenant 'b'"));
	assert_int_equal(kvt_stop(&d), 0);
}

/* nobody puts 48 MiB of 1 MiB chunks: far more than its 2 MiB of DRAM and
 * its 4 MiB of SSD. */
static int nobody_floods(const char *sock)
{
	static char mib[1u << 20];
	struct kvc *c;
	uint32_t ns;
	int ok = 0;

	if (kvc_connect(sock, &c) || kvc_ns_register(c, "flood", &ns))
		return 2;
	memset(mib, 0x42, sizeof(mib));
	for (uint64_t i = 0; i < 48; i++) {
		struct kvc_key k = { 1000 + i, 3 };

		ok += kvc_put(c, ns, &k, NULL, 1, 0, mib, sizeof(mib)) == 0;
	}
	kvc_flush(c, KVC_TIER_DRAM, 0, NULL);
	kvc_close(c);
	return ok > 0 ? 0 : 3;
}

static void test_eviction_stays_in_tenant(void **state)
{
	char dir[512];
	const char *args[] = { "--dram-bytes", "10M", "--allow-uids", "0",
			       "--tenant", "b uids=65534 dram_bytes=2M ssd_bytes=4M",
			       "--ssd-dir", dir, "--ssd-bytes", "24M", NULL };
	static unsigned char buf[1u << 20], want[1u << 20];
	struct kvc_key keys[12];
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;

	need_root();
	snprintf(dir, sizeof(dir), "%s/kvt-issue11-ssd.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	assert_int_equal(kvt_start(&d, args), 0);
	open_up(&d);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "a", &ns), 0);
	/* 12 MiB: more than root's 8 MiB of DRAM, so some live on SSD only. */
	for (uint64_t i = 0; i < 12; i++) {
		keys[i] = (struct kvc_key){ i + 1, 7 };
		memset(want, (int)(i + 1), sizeof(want));
		assert_int_equal(kvc_put(c, ns, &keys[i], NULL, 1, 0, want, sizeof(want)), 0);
	}
	assert_int_equal(kvc_flush(c, KVC_TIER_DRAM, 0, NULL), 0);
	assert_int_equal(as_nobody(nobody_floods, d.sock), 0);
	/* Not one of root's chunks went: b evicted only its own. */
	assert_int_equal(kvc_lookup(c, ns, keys, 12, NULL), 12);
	for (uint64_t i = 0; i < 12; i++) {
		memset(want, (int)(i + 1), sizeof(want));
		assert_int_equal(get(c, ns, &keys[i], buf, sizeof(buf)), sizeof(buf));
		assert_memory_equal(buf, want, sizeof(buf));
	}
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
	assert_int_equal(kvt_rmtree(dir), 0);
}

/* Chunk records are bounded (max_chunks), and STATS shows them. */
static void test_chunk_records_bounded(void **state)
{
	const char *args[] = { "--dram-bytes", "16M", "--max-chunks", "100", NULL };
	struct kvc_stats st;
	struct kvt_daemon d;
	struct kvc *c;
	uint32_t ns;
	char small[64] = { 1 };
	int ok = 0, meta = 0;

	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);
	assert_int_equal(kvc_ns_register(c, "tiny", &ns), 0);
	for (uint64_t i = 0; i < 150; i++) {
		struct kvc_key k = { i, 1 };
		int ret = kvc_put(c, ns, &k, NULL, 1, 0, small, sizeof(small));

		ok += ret == 0;
		meta += ret == -KVC_EMETA;
	}
	assert_int_equal(ok, 100);
	assert_int_equal(meta, 50);
	assert_int_equal(kvc_stats(c, &st), 0);
	assert_int_equal(st.records, 100);
	assert_int_equal(st.max_records, 100);
	assert_true(st.meta_bytes >= 100 * 64 && st.meta_bytes < 100 * 4096);
	print_message("figure: chunk records: %llu of %llu, %llu bytes of metadata (%llu a record)\n",
		      (unsigned long long)st.records, (unsigned long long)st.max_records,
		      (unsigned long long)st.meta_bytes,
		      (unsigned long long)(st.meta_bytes / st.records));
	kvc_close(c);
	assert_int_equal(kvt_stop(&d), 0);
}

/* Declared quotas that do not fit are refused at start, with the reason. */
static void test_bad_tenants_refused(void **state)
{
	const char *over[] = { "--dram-bytes", "8M", "--tenant", "x uids=1 dram_bytes=6M",
			       "--tenant", "y uids=2 dram_bytes=6M", NULL };
	const char *twice[] = { "--tenant", "x uids=1,2", "--tenant", "y uids=2", NULL };
	struct kvt_daemon d;

	assert_int_not_equal(kvt_start(&d, over), 0);
	assert_true(kvt_log_has(&d, "add up to more than"));
	kvt_cleanup(&d);
	assert_int_not_equal(kvt_start(&d, twice), 0);
	assert_true(kvt_log_has(&d, "uid 2 is in tenant"));
	kvt_cleanup(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_tenant_gets_nothing),
		cmocka_unit_test(test_namespace_and_uncommitted_quotas),
		cmocka_unit_test(test_eviction_stays_in_tenant),
		cmocka_unit_test(test_chunk_records_bounded),
		cmocka_unit_test(test_bad_tenants_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
