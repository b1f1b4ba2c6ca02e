/*
 * gpu_child.c - the child processes of the GPU client tests: a process
 * that puts into HBM (--child-hbm-put), one that dies with copies, pins
 * and puts queued (--child-die), one of another uid that must get nothing
 * (--child-outsider), and a second tenant that scans its own HBM arena
 * (--child-tenant).
 *
 * A test initialises CUDA first thing, and CUDA does not survive fork(),
 * so every child is fork() + exec() of the test's own binary with a
 * --child-* argument, which main() hands to child_main().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "kernels/kv_gpu.h"
#include "tests/gpu/gpu_fx.h"

/* ---- child processes ---------------------------------------------------- */

/* Fork and exec this binary as a child: argv[1] is mode. The forked process
 * does nothing CUDA (nor anything else) before exec. */
pid_t spawn_child(const char *const *args)
{
	const char *argv[16];
	int n = 0;
	pid_t pid;

	argv[n++] = "test_gpu_client";
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a failed test */
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

void wait_child(pid_t pid, const char *what)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("%s: child killed by signal %d", what, WTERMSIG(st));
	if (WEXITSTATUS(st))
		fail_msg("%s: child exited with %d (its messages are above)", what,
			 WEXITSTATUS(st));
}

static int child_err(const char *what, int ret)
{
	fprintf(stderr, "child %d: %s: %d (%s); seed %#" PRIx64 "\n", (int)getpid(), what,
		ret, err_name(ret), seed);
	return 1;
}

/* --child-hbm-put SOCK SEED N: put chunks 0..N-1 (small vLLM shape) from
 * device memory with KVC_PUT_HBM, flush, and exit. */
static int child_hbm_put(const char *sock, unsigned n)
{
	struct shape sh = small_shape(KVC_LAYOUT_VLLM);
	size_t cb = shape_chunk_bytes(&sh);
	struct kvc_put_desc d[64];
	struct kv_gpu_stream *s;
	struct kvc_key keys[64];
	uint8_t *dev, *host;
	struct kvc *c;
	uint32_t ns;
	int ret;

	if (n > 64)
		return child_err("too many chunks", -EINVAL);
	if ((ret = kv_gpu_set_device(0)) || (ret = kv_gpu_stream_create(&s)))
		return child_err("cuda", ret);
	if ((ret = kvc_connect(sock, &c)) || (ret = kvc_ns_register(c, "shared", &ns)))
		return child_err("connect", ret);
	if ((ret = kvc_gpu_open(c, 0, 0)))
		return child_err("kvc_gpu_open", ret);
	if ((ret = kv_gpu_malloc(n * cb, (void **)&dev)))
		return child_err("kv_gpu_malloc", ret);
	host = malloc(cb);
	if (!host)
		return child_err("malloc", -ENOMEM);
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < n; i++) {
		fill(host, cb, i);
		if ((ret = kv_gpu_memcpy(dev + i * cb, host, cb, s)) ||
		    (ret = kv_gpu_stream_sync(s)))
			return child_err("upload", ret);
		keys[i] = key_of(i);
		d[i].key = keys[i];
		d[i].parent = i ? keys[i - 1] : keys[0];
		d[i].has_parent = i > 0;
		d[i].tokens = sh.chunk_tokens;
		d[i].position = i * sh.chunk_tokens;
		d[i].data = dev + i * cb;
		d[i].bytes = cb;
		d[i].status = 1;
	}
	ret = kvc_put_gpu(c, ns, d, n, KVC_PUT_HBM, s, NULL);
	if (ret != (int)n)
		return child_err("kvc_put_gpu KVC_PUT_HBM", ret);
	for (unsigned i = 0; i < n; i++)
		if (d[i].status)
			return child_err("kvc_put_gpu: a chunk's status", d[i].status);
	if ((ret = kvc_gpu_flush(c)))
		return child_err("kvc_gpu_flush", ret);
	kvc_close(c);
	kv_gpu_free(dev);
	kv_gpu_stream_destroy(s);
	free(host);
	return 0;
}

/*
 * --child-die SOCK SEED K P FLAGS HOW FD: queue a kvc_get_gpu and a
 * kvc_get_paged of chunks 0..K-1 (1 MiB each) and a kvc_put_gpu of P new
 * chunks (ITEM_PUT + j, put flags FLAGS), then, without flushing, _exit(0)
 * (HOW "exit") or tell the parent on FD and wait to be killed (HOW "kill").
 */
static int child_die(const char *sock, unsigned k, unsigned p, unsigned flags,
		     const char *how, int fd)
{
	struct shape sh = big_shape(2 * k);
	size_t cb = shape_chunk_bytes(&sh);
	struct kvc_paged_desc *pd = calloc(k, sizeof(*pd));
	struct kvc_gpu_desc *gd = calloc(k, sizeof(*gd));
	struct kvc_put_desc *ud = calloc(p, sizeof(*ud));
	int32_t *pages = calloc(2 * k, sizeof(*pages));
	uint8_t *get_dev, *cache_dev, *put_dev, *host;
	struct kv_gpu_stream *s;
	struct cache ca;
	struct kvc *c;
	uint32_t ns;
	int ret;

	host = malloc(p * cb);
	if (!pd || !gd || !ud || !pages || !host)
		return child_err("calloc", -ENOMEM);
	if ((ret = kv_gpu_set_device(0)) || (ret = kv_gpu_stream_create(&s)))
		return child_err("cuda", ret);
	if ((ret = kv_gpu_malloc(k * cb, (void **)&get_dev)) ||
	    (ret = kv_gpu_malloc(k * cb, (void **)&cache_dev)) ||
	    (ret = kv_gpu_malloc(p * cb, (void **)&put_dev)))
		return child_err("kv_gpu_malloc", ret);
	cache_layout(&ca, &sh, cache_dev);
	if ((ret = kvc_connect(sock, &c)) || (ret = kvc_ns_register(c, "death", &ns)))
		return child_err("connect", ret);
	if ((ret = kvc_gpu_open(c, 0, 0)))
		return child_err("kvc_gpu_open", ret);
	for (unsigned i = 0; i < k; i++) {
		gd[i].key = key_of(i);
		gd[i].dev = get_dev + i * cb;
		gd[i].cap = cb;
		pd[i].key = key_of(i);
		pd[i].pages = pages + i * ca.ppc;
	}
	for (unsigned i = 0; i < 2 * k; i++)
		pages[i] = (int32_t)i;
	for (unsigned j = 0; j < p; j++) {
		fill(host + j * cb, cb, ITEM_PUT + j);
		ud[j].key = key_of(ITEM_PUT + j);
		ud[j].tokens = sh.chunk_tokens;
		ud[j].data = put_dev + j * cb;
		ud[j].bytes = cb;
	}
	ret = kvc_get_gpu(c, ns, gd, k, s, NULL);
	if (ret != (int)k)
		return child_err("kvc_get_gpu", ret);
	ret = kvc_get_paged(c, ns, &ca.l, pd, k, s, NULL);
	if (ret != (int)k)
		return child_err("kvc_get_paged", ret);
	if ((ret = kv_gpu_memcpy(put_dev, host, p * cb, s)))
		return child_err("upload", ret);
	ret = kvc_put_gpu(c, ns, ud, p, flags, s, NULL);
	if (ret != (int)p)
		return child_err("kvc_put_gpu", ret);
	if (!strcmp(how, "kill")) {
		if (write(fd, "x", 1) != 1)
			return child_err("write", -errno);
		for (;;)
			pause();	/* SIGKILLed here, everything queued */
	}
	_exit(0);
}

/* A child becomes uid and gid 65534. 0, or -1 (said why) when it cannot:
 * the caller skips (77). */
static int become_nobody(void)
{
	if (geteuid() != 0) {
		printf("child: not root, so it cannot become another uid\n");
		return -1;
	}
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
		printf("child: cannot become uid 65534: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * --child-outsider SOCK DAEMON_PID MAP_BYTES: become uid and gid 65534
 * (root only; else exit 77) and try every way into the HBM arena that
 * needs no fd from the daemon: connecting, the daemon's /proc fd links,
 * and importing fd numbers this process does not hold. Exit 0 when none
 * worked, 1 when one did.
 */
static int child_outsider(const char *sock, pid_t daemon, size_t map_bytes)
{
	struct kv_gpu_vmm *m = NULL;
	struct kvc *c = NULL;
	unsigned reached = 0, tried = 0;
	char path[64];
	DIR *dir;
	int ret;

	if (become_nobody())
		return 77;
	ret = kvc_connect(sock, &c);
	if (ret == 0) {
		fprintf(stderr, "child: uid 65534 connected to the daemon\n");
		kvc_close(c);
		reached++;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon);
	dir = opendir(path);
	if (dir) {
		fprintf(stderr, "child: uid 65534 lists %s\n", path);
		closedir(dir);
		reached++;
	}
	for (int n = 0; n < 1024; n++) {
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)daemon, n);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fprintf(stderr, "child: uid 65534 opened %s\n", path);
			close(fd);
			reached++;
		}
	}
	/* Descriptor numbers are per process: any number not ours is at
	 * best a guess, which the driver must refuse. */
	for (int n = 3; n < 64; n++) {
		if (fcntl(n, F_GETFD) >= 0)
			continue;	/* one of ours (the driver's own, once open) */
		tried++;
		if (kv_gpu_vmm_import(n, map_bytes, 0, &m) == 0) {
			fprintf(stderr, "child: uid 65534 imported fd number %d\n", n);
			kv_gpu_vmm_close(m);
			m = NULL;
			reached++;
		}
	}
	printf("child: uid 65534: connect %s, /proc/%d/fd closed to it, %u made-up fd "
	       "numbers imported nothing (last: %s)\n", kvc_strerror(ret), (int)daemon, tried,
	       kv_gpu_last_error());
	return reached ? 1 : 0;
}

/*
 * --child-tenant SOCK SEED N CB: as uid 65534, a second tenant: open the HBM
 * arena HELLO handed it, read all of it looking for the first tenant's
 * chunks 0..N-1 (CB bytes each, this SEED), then write over all of it.
 * Exit 0 when nothing of theirs was there, 1 when something was, 77 when
 * it cannot become another uid, 2 on a setup failure.
 */
static int child_tenant(const char *sock, unsigned n, size_t cb)
{
	struct kv_gpu_vmm *m = NULL;
	struct kvci_hbm info;
	struct kvc *c;
	uint8_t *all, *want;
	int found = 0, ret;

	if (become_nobody())
		return 77;
	ret = kvc_connect(sock, &c);
	if (ret)
		return child_err("kvc_connect as the second tenant", ret);
	kvci_hbm_info(c, &info);
	if (info.fd < 0 || !info.map_bytes)
		return child_err("no HBM arena handed to the second tenant", -ENOENT);
	ret = kv_gpu_vmm_import(info.fd, info.map_bytes, 0, &m);
	if (ret)
		return child_err("kv_gpu_vmm_import of its own arena", ret);
	all = malloc(info.map_bytes);
	want = malloc(cb);
	if (!all || !want)
		return 2;
	download(all, kv_gpu_vmm_ptr(m), info.map_bytes);
	for (unsigned i = 0; i < n; i++) {
		fill(want, cb, i);
		/* Any 256 bytes of a chunk would be a leak. */
		for (size_t o = 0; o + 256 <= cb; o += cb / 4)
			if (memmem(all, info.map_bytes, want + o, 256))
				found++;
	}
	memset(all, 0xee, info.map_bytes);
	upload(kv_gpu_vmm_ptr(m), all, info.map_bytes);
	kv_gpu_vmm_close(m);
	printf("child: second tenant: HBM arena of %" PRIu64 " bytes (%" PRIu64
	       " mapped), %d pieces of the first tenant's chunks in it; overwritten\n",
	       info.bytes, info.map_bytes, found);
	free(all);
	free(want);
	kvc_close(c);
	return found ? 1 : 0;
}

int child_main(int argc, char **argv)
{
	if (!strcmp(argv[1], "--child-tenant") && argc == 6) {
		seed = strtoull(argv[3], NULL, 0);
		return child_tenant(argv[2], (unsigned)atoi(argv[4]),
				    (size_t)strtoull(argv[5], NULL, 0));
	}
	if (!strcmp(argv[1], "--child-hbm-put") && argc == 5) {
		seed = strtoull(argv[3], NULL, 0);
		return child_hbm_put(argv[2], (unsigned)atoi(argv[4]));
	}
	if (!strcmp(argv[1], "--child-outsider") && argc == 5)
		return child_outsider(argv[2], (pid_t)atoi(argv[3]),
				      (size_t)strtoull(argv[4], NULL, 0));
	if (!strcmp(argv[1], "--child-die") && argc == 9) {
		seed = strtoull(argv[3], NULL, 0);
		return child_die(argv[2], (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
				 (unsigned)strtoul(argv[6], NULL, 0), argv[7], atoi(argv[8]));
	}
	fprintf(stderr, "%s: unknown child mode or arguments\n", argv[1]);
	return 2;
}
