/*
 * issue_11_hbmfd.c - issue 11: the HBM arena reaches only the processes it
 * is handed to, as a file descriptor in the HELLO reply (protocol 3).
 *
 * No GPU needed. A fake daemon (a forked child on a socket of our own)
 * answers libkvc's HELLO with chosen flags and chosen descriptors:
 *  - exactly the descriptors its flags announce (DRAM memfd; plus the HBM
 *    arena's fd with KV_HELLO_HBM) connect; the HBM fd is kept, close-on-
 *    exec, until kvc_close(), and nothing else stays open;
 *  - too few, too many (one more, or more than any reply may carry), or
 *    HBM sizes that make no sense are KVC_EPROTO, and not one descriptor
 *    that came with the reply stays open in this process;
 *  - an error reply that carries descriptors leaks none of them.
 * And the reply itself holds nothing that opens the arena: no handle
 * bytes, only sizes and a PCI id (the layout is checked), and the VMM
 * import of a made-up, closed or unrelated fd fails (-KVC_ENOGPU here
 * without a GPU; tests/gpu/test_gpu_hbm.c checks it on one).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "lib/proto.h"

#define DRAM_BYTES	(1u << 20)
#define MAX_SEND	16

/* What the fake daemon answers. */
struct fake {
	int32_t status;		/* header status; nonzero: an error reply */
	uint32_t flags;		/* enum kv_hello_flags */
	int nfds;		/* descriptors attached */
	uint64_t hbm_bytes;
	uint64_t hbm_map_bytes;
};

static char dir[] = "/tmp/kvhbmfd.XXXXXX";
static char sock_path[sizeof(dir) + 16];

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;		/* the directory's own */
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The fake daemon: one connection, one reply, then wait for the client
 * to hang up. Runs in a child; never returns. */
static void fake_serve(int lfd, const struct fake *f)
{
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello_reply b;
	} msg;
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello b;
	} req;
	union {
		char buf[CMSG_SPACE(MAX_SEND * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { &msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int fds[MAX_SEND], cfd;
	char c;

	cfd = accept(lfd, NULL, NULL);
	if (cfd < 0 || read_full(cfd, &req, sizeof(req)))
		_exit(2);
	memset(&msg, 0, sizeof(msg));
	msg.h.op = KV_OP_HELLO;
	msg.h.flags = KV_WIRE_REPLY;
	msg.h.req_id = req.h.req_id;
	msg.h.status = f->status;
	msg.h.len = f->status ? 0 : sizeof(msg.b);
	if (f->status)
		iov.iov_len = sizeof(msg.h);
	msg.b.version = KV_PROTO_VERSION;
	msg.b.flags = f->flags;
	msg.b.dram_bytes = DRAM_BYTES;
	msg.b.max_batch = 64;
	msg.b.max_msg = 1u << 20;
	msg.b.max_pins = 64;
	msg.b.max_uncommitted = 1u << 20;
	msg.b.hbm_bytes = f->hbm_bytes;
	msg.b.hbm_map_bytes = f->hbm_map_bytes;
	memcpy(msg.b.hbm_pci, "0000:3b:00.0", 13);
	for (int i = 0; i < f->nfds; i++) {
		fds[i] = memfd_create("fake-arena", MFD_CLOEXEC);
		if (fds[i] < 0 || ftruncate(fds[i], DRAM_BYTES))
			_exit(2);
	}
	if (f->nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(f->nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(f->nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, f->nfds * sizeof(int));
	}
	if (sendmsg(cfd, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
		_exit(2);
	while (read(cfd, &c, 1) > 0)
		;
	_exit(0);
}

/* Connect libkvc to a fake daemon answering f; returns kvc_connect()'s
 * result, the handle in *out when it is 0. */
static int fake_connect(const struct fake *f, struct kvc **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, ret, st;
	pid_t pid;

	unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	strcpy(sa.sun_path, sock_path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_serve(lfd, f);
	close(lfd);
	ret = kvc_connect(sock_path, out);
	if (ret == 0) {
		/* The child waits for the hang-up at kvc_close(): the caller's. */
		return ret;
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return ret;
}

static void expect_refused(const struct fake *f, int want, const char *what)
{
	int before = count_fds();
	struct kvc *c = NULL;
	int ret = fake_connect(f, &c);

	if (ret != want)
		fail_msg("%s: kvc_connect %d (%s), want %d", what, ret, kvc_strerror(ret), want);
	if (count_fds() != before)
		fail_msg("%s: %d descriptors open after the refused HELLO, %d before", what,
			 count_fds(), before);
}

static void test_announced_fds_connect(void **state)
{
	const struct fake dram_only = { .flags = KV_HELLO_FD, .nfds = 1 };
	const struct fake with_hbm = { .flags = KV_HELLO_FD | KV_HELLO_HBM, .nfds = 2,
				       .hbm_bytes = 3u << 20, .hbm_map_bytes = 4u << 20 };
	int before = count_fds();
	struct kvci_hbm info;
	struct kvc *c;

	(void)state;
	assert_int_equal(fake_connect(&dram_only, &c), 0);
	kvci_hbm_info(c, &info);
	assert_int_equal(info.bytes, 0);
	assert_int_equal(info.fd, -1);
	assert_int_equal(count_fds(), before + 1);	/* the socket */
	kvc_close(c);
	while (wait(NULL) > 0)
		;
	assert_int_equal(count_fds(), before);

	assert_int_equal(fake_connect(&with_hbm, &c), 0);
	kvci_hbm_info(c, &info);
	assert_int_equal(info.bytes, 3u << 20);
	assert_int_equal(info.map_bytes, 4u << 20);
	assert_string_equal(info.pci, "0000:3b:00.0");
	assert_true(info.fd >= 0);
	assert_true(fcntl(info.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(count_fds(), before + 2);	/* the socket, the HBM fd */
	kvc_close(c);
	while (wait(NULL) > 0)
		;
	assert_int_equal(count_fds(), before);
}

static void test_wrong_fd_counts_refused(void **state)
{
	const uint32_t both = KV_HELLO_FD | KV_HELLO_HBM;
	const struct {
		struct fake f;
		const char *what;
	} cases[] = {
		{ { .flags = KV_HELLO_FD, .nfds = 0 }, "no memfd" },
		{ { .flags = KV_HELLO_FD, .nfds = 2 }, "an HBM fd not announced" },
		{ { .flags = KV_HELLO_FD, .nfds = 3 }, "two fds too many" },
		{ { .flags = both, .nfds = 1, .hbm_bytes = 2u << 20, .hbm_map_bytes = 2u << 20 },
		  "KV_HELLO_HBM without its fd" },
		{ { .flags = both, .nfds = 3, .hbm_bytes = 2u << 20, .hbm_map_bytes = 2u << 20 },
		  "one fd more than announced" },
		{ { .flags = both, .nfds = MAX_SEND, .hbm_bytes = 2u << 20,
		    .hbm_map_bytes = 2u << 20 }, "more fds than any reply carries" },
		{ { .flags = KV_HELLO_HBM, .nfds = 1, .hbm_bytes = 2u << 20,
		    .hbm_map_bytes = 2u << 20 }, "KV_HELLO_HBM without KV_HELLO_FD" },
		{ { .flags = both, .nfds = 2, .hbm_bytes = 4u << 20, .hbm_map_bytes = 2u << 20 },
		  "HBM mapped size below its arena" },
		{ { .flags = both, .nfds = 2, .hbm_bytes = 0, .hbm_map_bytes = 2u << 20 },
		  "an HBM arena of 0 bytes" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(&cases[i].f, -KVC_EPROTO, cases[i].what);
}

static void test_error_reply_leaks_nothing(void **state)
{
	const struct fake f = { .status = KVC_EREFUSED, .nfds = 2 };

	(void)state;
	expect_refused(&f, -KVC_EREFUSED, "an error reply with fds attached");
}

/* Nothing in the reply opens the arena: sizes and a PCI id only. */
static void test_reply_holds_no_handle(void **state)
{
	(void)state;
	assert_true(KV_PROTO_VERSION >= 3);	/* fds since 3 */
	assert_int_equal(sizeof(struct kv_wire_hello_reply), 72);
	assert_int_equal(offsetof(struct kv_wire_hello_reply, hbm_pci) + KV_HBM_PCI_BYTES,
			 sizeof(struct kv_wire_hello_reply));
	assert_int_equal(KV_HELLO_MAX_FDS, 2);
}

/* Without a GPU (CI, or a CUDA build on a host without a driver), the VMM
 * calls answer KVC_ENOGPU and import nothing, whatever fd they are given. */
static void test_vmm_without_gpu(void **state)
{
	struct kv_gpu_vmm *m = NULL;
	size_t gran = 0;
	int memfd, bad;

	(void)state;
	if (kv_gpu_available(NULL, NULL, 0)) {
		print_message("a GPU is here: tests/gpu/test_gpu_hbm.c checks the imports\n");
		skip();
	}
	memfd = memfd_create("not-an-arena", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, 2u << 20), 0);
	bad = dup(memfd);
	close(bad);		/* a closed fd */
	assert_int_equal(kv_gpu_vmm_granularity(0, &gran), -KVC_ENOGPU);
	assert_int_equal(kv_gpu_vmm_create(0, 2u << 20, &m), -KVC_ENOGPU);
	assert_int_equal(kv_gpu_vmm_import(memfd, 2u << 20, 0, &m), -KVC_ENOGPU);
	assert_int_equal(kv_gpu_vmm_import(bad, 2u << 20, 0, &m), -KVC_ENOGPU);
	assert_int_equal(kv_gpu_vmm_import(1000, 2u << 20, 0, &m), -KVC_ENOGPU);
	assert_null(m);
	assert_true(kv_gpu_last_error()[0] != '\0');
	close(memfd);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announced_fds_connect),
		cmocka_unit_test(test_wrong_fd_counts_refused),
		cmocka_unit_test(test_error_reply_leaks_nothing),
		cmocka_unit_test(test_reply_holds_no_handle),
		cmocka_unit_test(test_vmm_without_gpu),
	};

	return cmocka_run_group_tests_name("issue 11: the HBM arena as a HELLO fd", tests,
					   group_setup, group_teardown);
}
