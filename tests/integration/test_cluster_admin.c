/*
 * test_cluster_admin.c - CLUSTER (kvc_cluster(), `kvctl cluster`): the
 * remote tier as a daemon sees a real Redis Cluster (3 masters, 3
 * replicas on loopback, tests/lib/rcluster_fx.h), and what the client
 * makes of replies that break the protocol.
 *
 * What it proves: the masters' slot ranges cover 0..16383 exactly once
 * and agree with their slot counts; the writes, bytes and keys asked are
 * counted as the store counts them; a master killed shows as down (its
 * node's error, masters_down) after the next request that fails on it, and
 * the map after the failover is whole again; a daemon without a remote
 * tier says so; a bad reply is -KVC_EPROTO and closes the handle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/kvc.h"
#include "lib/proto.h"
#include "tests/integration/cluster_fx.h"
#include "tests/integration/harness.h"
#include "tests/lib/clock.h"
#include "tests/lib/rcluster_fx.h"

#define NPUT		200

static struct kvc_cluster view;		/* 10 KiB: not on the stack */
static char fake_dir[] = "/tmp/kvclusteradm.XXXXXX";	/* the fake daemon's */
static char fake_sock[sizeof(fake_dir) + 16];

static int setup(void **state)
{
	if (!mkdtemp(fake_dir))
		return -1;
	snprintf(fake_sock, sizeof(fake_sock), "%s/sock", fake_dir);
	signal(SIGPIPE, SIG_IGN);	/* the fake daemon's client hangs up */
	return cluster_setup(state);
}

static int teardown(void **state)
{
	unlink(fake_sock);
	rmdir(fake_dir);
	return cluster_teardown(state);
}

/* Look up n keys no daemon wrote: the store asks the cluster of each. */
static void ask_absent(struct kvc *c, uint32_t ns, uint64_t salt, unsigned n)
{
	struct kvc_key keys[100];
	uint8_t tiers[100];

	assert_true(n <= 100);
	for (unsigned i = 0; i < n; i++)
		keys[i] = key_of(1000000 + i, salt);
	assert_int_equal(kvc_lookup(c, ns, keys, n, tiers), 0);
}

/*
 * The masters' ranges cover every slot exactly once, each master's add up
 * to its slot count, and nodes without slots have no ranges. Returns the
 * masters seen.
 */
static unsigned check_map(const struct kvc_cluster *v)
{
	static unsigned char owner[KV_CLUSTER_SLOTS];
	unsigned masters = 0;

	memset(owner, 0, sizeof(owner));
	for (unsigned i = 0; i < v->n_nodes; i++) {
		const struct kvc_cluster_node *n = &v->nodes[i];
		unsigned slots = 0;

		assert_int_equal(n->ranges_total, n->n_ranges);	/* 3 masters: 1 each */
		if (!n->slots) {
			assert_int_equal(n->n_ranges, 0);
			continue;
		}
		masters++;
		for (unsigned r = 0; r < n->n_ranges; r++) {
			const struct kvc_slot_range *sr = &n->ranges[r];

			assert_true(sr->first <= sr->last && sr->last < KV_CLUSTER_SLOTS);
			for (unsigned s = sr->first; s <= sr->last; s++) {
				if (owner[s]++)
					fail_msg("slot %u in two ranges", s);
			}
			slots += sr->last - sr->first + 1u;
		}
		assert_int_equal(slots, n->slots);
	}
	for (unsigned s = 0; s < KV_CLUSTER_SLOTS; s++)
		if (owner[s] != 1)
			fail_msg("slot %u in no master's ranges", s);
	assert_int_equal(masters, v->masters);
	return masters;
}

static const struct kvc_cluster_node *node_at(const struct kvc_cluster *v, unsigned port)
{
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	for (unsigned i = 0; i < v->n_nodes; i++)
		if (!strcmp(v->nodes[i].addr, addr))
			return &v->nodes[i];
	return NULL;
}

/* Without a remote tier: a reply that says so, not an error. */
static void test_no_remote(void **state)
{
	static const char *const args[] = { "--dram-bytes", "64M", NULL };
	struct kvt_daemon d;
	struct kvc_stats st;
	struct kvc *c;

	assert_int_equal(kvt_start(&d, args), 0);
	assert_int_equal(kvc_connect(d.sock, &c), 0);

	memset(&view, 0xee, sizeof(view));
	assert_int_equal(kvc_cluster(c, &view), 0);
	assert_false(view.remote || view.up || view.seen);
	assert_int_equal(view.n_nodes, 0);
	assert_int_equal(view.masters + view.nodes_known + view.stores + view.probes, 0);
	assert_int_equal(kvc_stats(c, &st), 0);
	for (unsigned i = 0; i < st.n_tiers; i++)
		assert_string_not_equal(st.tiers[i].name, "remote");
	assert_int_equal(kvc_cluster(c, NULL), -EINVAL);
	assert_int_equal(kvc_ping(c, NULL), 0);	/* the handle still serves */
	stop(&d, c);
}

/* The slot map, the nodes and the counters, against what the test did. */
static void test_view(void **state)
{
	struct kvt_daemon d;
	struct kvc *c = start(&d, NULL);
	uint64_t salt = kvt_now_ns() ^ 0xad, bytes = 0;
	struct kvc_stats st;
	char name[64];
	uint32_t ns;

	/* Before any work the tier has not connected. */
	assert_int_equal(kvc_cluster(c, &view), 0);
	assert_true(view.remote);
	assert_false(view.seen);
	assert_int_equal(view.n_nodes, 0);

	snprintf(name, sizeof(name), "admin/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	put_chunks(c, ns, salt, 0, NPUT);
	for (unsigned i = 0; i < NPUT; i++)
		bytes += len_of(i);
	wait_written(c, NPUT);
	ask_absent(c, ns, salt, 100);

	assert_int_equal(kvc_cluster(c, &view), 0);
	assert_true(view.remote && view.up && view.seen);
	assert_int_equal(view.masters, 3);
	assert_int_equal(view.masters_down, 0);
	assert_true(view.n_nodes >= 3 && view.nodes_known >= view.n_nodes);
	assert_int_equal(check_map(&view), 3);
	for (unsigned m = 0; m < 3; m++) {
		const struct kvc_cluster_node *n = node_at(&view, cl.ports[m]);

		assert_non_null(n);
		assert_true(n->slots > 0);
		assert_int_equal(n->state, 0);
		assert_true(n->conns_open >= 1);	/* 200 keys reach every master */
	}
	/* As the store counts them: every write, its bytes, every key asked. */
	assert_int_equal(view.stores, NPUT);
	assert_int_equal(view.store_failures, 0);
	assert_int_equal(view.store_bytes, bytes);
	assert_int_equal(remote_stats(c, &st)->demotions, view.stores);
	assert_int_equal(view.probes, 100);
	assert_int_equal(view.probe_hits, 0);
	assert_int_equal(remote_stats(c, &st)->misses, 100);
	assert_int_equal(view.loads + view.corrupt + view.timeouts + view.errors, 0);
	assert_int_equal(view.write_queue + view.write_inflight, 0);
	assert_true(view.refreshes >= 1);
	assert_true(view.age_ms < WAIT_MS);
	print_message("figure: view: %u nodes known, 3 masters' ranges cover the 16384 slots "
		      "once; %llu writes (%llu bytes) and %llu keys asked, as counted; "
		      "taken %llu ms before\n", view.nodes_known,
		      (unsigned long long)view.stores, (unsigned long long)view.store_bytes,
		      (unsigned long long)view.probes, (unsigned long long)view.age_ms);
	stop(&d, c);
}

/* ---- replies that break the protocol: a fake daemon ------------------------ */

struct fake_reply {
	const char *what;
	uint32_t count;			/* the header's */
	size_t len;			/* body bytes sent */
	uint32_t flags, n_nodes, nodes_known, masters, masters_down;
	int node;			/* which node field to spoil, below */
};

enum {
	NODE_OK, NODE_NO_NUL, NODE_STATE, NODE_SLOTS, NODE_N_RANGES, NODE_TOTAL,
	NODE_ORDER, NODE_LAST, NODE_BACKWARDS, NODE_CUT_SHORT,
};

/* A node entry of two ranges, then spoiled as how says (NODE_*). */
static void fake_node(struct kv_wire_cluster_node *n, int how)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->addr, sizeof(n->addr), "10.0.0.1:7000");
	n->slots = 200;
	n->conns_open = 1;
	n->state = ECONNREFUSED;
	n->n_ranges = 2;
	n->ranges_total = 2;
	n->ranges[0] = (struct kv_wire_slot_range){ 0, 99 };
	n->ranges[1] = (struct kv_wire_slot_range){ 200, 299 };
	switch (how) {
	case NODE_NO_NUL:
		memset(n->addr, 'a', sizeof(n->addr));
		break;
	case NODE_STATE:
		n->state = -1;
		break;
	case NODE_SLOTS:
		n->slots = KV_CLUSTER_SLOTS + 1;
		break;
	case NODE_N_RANGES:
		n->n_ranges = KV_CLUSTER_RANGES_MAX + 1;
		n->ranges_total = n->n_ranges;
		break;
	case NODE_TOTAL:
		n->ranges_total = 1;
		break;
	case NODE_ORDER:
		n->ranges[1] = (struct kv_wire_slot_range){ 50, 60 };
		break;
	case NODE_LAST:
		n->ranges[1] = (struct kv_wire_slot_range){ 200, KV_CLUSTER_SLOTS };
		break;
	case NODE_BACKWARDS:
		n->ranges[1] = (struct kv_wire_slot_range){ 299, 200 };
		break;
	case NODE_CUT_SHORT:
		n->ranges_total = 3;	/* left out while ranges[] has room */
		break;
	}
}

/* One connection: HELLO with a memfd, then the CLUSTER reply f; waits
 * for the hang-up. Runs in a child; never returns. */
static void fake_serve(int lfd, const struct fake_reply *f)
{
	static union {
		uint64_t align;
		char b[sizeof(struct kv_wire_hdr) + sizeof(struct kv_wire_cluster) +
		       (KV_CLUSTER_NODES_MAX + 1) * sizeof(struct kv_wire_cluster_node)];
	} out;
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello_reply b;
	} hr = { 0 };
	struct {
		struct kv_wire_hdr h;
		struct kv_wire_hello b;
	} hello;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf = { 0 };
	struct iovec iov = { &hr, sizeof(hr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	struct kv_wire_hdr *h = (struct kv_wire_hdr *)out.b, rq;
	struct kv_wire_cluster *w = (struct kv_wire_cluster *)(h + 1);
	struct kv_wire_cluster_node *n = (struct kv_wire_cluster_node *)(w + 1);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int cfd = accept(lfd, NULL, NULL), memfd;
	char c;

	memfd = memfd_create("fake-arena", MFD_CLOEXEC);
	if (cfd < 0 || memfd < 0 || ftruncate(memfd, 1 << 20) ||
	    recv(cfd, &hello, sizeof(hello), MSG_WAITALL) != sizeof(hello))
		_exit(2);
	hr.h = (struct kv_wire_hdr){ .len = sizeof(hr.b), .op = KV_OP_HELLO,
				     .flags = KV_WIRE_REPLY, .req_id = hello.h.req_id };
	hr.b = (struct kv_wire_hello_reply){ .version = KV_PROTO_VERSION, .flags = KV_HELLO_FD,
		.dram_bytes = 1 << 20, .max_batch = 64, .max_msg = 1 << 20, .max_pins = 64,
		.max_uncommitted = 1 << 20 };
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
	if (sendmsg(cfd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(hr) ||
	    recv(cfd, &rq, sizeof(rq), MSG_WAITALL) != sizeof(rq) ||
	    rq.op != KV_OP_CLUSTER || rq.len)
		_exit(2);
	*h = (struct kv_wire_hdr){ .len = (uint32_t)f->len, .op = KV_OP_CLUSTER,
				   .flags = KV_WIRE_REPLY, .req_id = rq.req_id,
				   .count = f->count };
	*w = (struct kv_wire_cluster){ .flags = f->flags, .n_nodes = f->n_nodes,
		.nodes_known = f->nodes_known, .masters = f->masters,
		.masters_down = f->masters_down, .stores = 7, .store_bytes = 7000 };
	for (unsigned i = 0; i <= KV_CLUSTER_NODES_MAX; i++)
		fake_node(&n[i], i ? NODE_OK : f->node);
	if (write(cfd, out.b, sizeof(*h) + f->len) != (ssize_t)(sizeof(*h) + f->len))
		_exit(2);
	while (read(cfd, &c, 1) > 0)
		;
	_exit(0);
}

/* kvc_cluster() against a fake daemon answering f; the handle is closed. */
static int fake_cluster(const struct fake_reply *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kvc *c;
	int lfd, ret, st;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fake_sock);
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_serve(lfd, f);
	close(lfd);
	assert_int_equal(kvc_connect(sa.sun_path, &c), 0);
	memset(&view, 0, sizeof(view));
	ret = kvc_cluster(c, &view);
	if (ret == -KVC_EPROTO)		/* the connection went with the reply */
		assert_int_equal(kvc_ping(c, NULL), -KVC_ECLOSED);
	kvc_close(c);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return ret;
}

static void test_bad_replies(void **state)
{
	const uint32_t on = KV_CLUSTER_REMOTE | KV_CLUSTER_UP | KV_CLUSTER_SEEN;
	const size_t one = kv_proto_cluster_len(1);
	const struct fake_reply bad[] = {
		{ "a body shorter than the figures", 0, 152, 0 },
		{ "no body", 0, 0, 0 },
		{ "a node more than the count", 0, one, on, 1, 1, 1 },
		{ "a count over the bound", KV_CLUSTER_NODES_MAX + 1,
		  kv_proto_cluster_len(KV_CLUSTER_NODES_MAX + 1), on,
		  KV_CLUSTER_NODES_MAX + 1, KV_CLUSTER_NODES_MAX + 1, 1 },
		{ "n_nodes unlike count", 1, one, on, 2, 2, 1 },
		{ "fewer nodes known than sent", 1, one, on, 1, 0, 1 },
		{ "more masters down than masters", 1, one, on, 1, 1, 1, 2 },
		{ "an unknown flag", 1, one, on | 8, 1, 1, 1 },
		{ "nodes without a remote tier", 1, one, 0, 1, 1, 1 },
		{ "figures without a remote tier", 0, kv_proto_cluster_len(0), 0, 0, 0, 1 },
		{ "nodes before it connected", 1, one, KV_CLUSTER_REMOTE, 1, 1, 1 },
		{ "a name without its NUL", 1, one, on, 1, 1, 1, 0, NODE_NO_NUL },
		{ "a negative error", 1, one, on, 1, 1, 1, 0, NODE_STATE },
		{ "more slots than there are", 1, one, on, 1, 1, 1, 0, NODE_SLOTS },
		{ "more ranges than an entry holds", 1, one, on, 1, 1, 1, 0, NODE_N_RANGES },
		{ "fewer ranges in all than sent", 1, one, on, 1, 1, 1, 0, NODE_TOTAL },
		{ "ranges out of order", 1, one, on, 1, 1, 1, 0, NODE_ORDER },
		{ "a slot past 16383", 1, one, on, 1, 1, 1, 0, NODE_LAST },
		{ "a range backwards", 1, one, on, 1, 1, 1, 0, NODE_BACKWARDS },
		{ "ranges left out with room for them", 1, one, on, 1, 1, 1, 0, NODE_CUT_SHORT },
	};
	const struct fake_reply good = { "good", 1, one, on, 1, 5, 1, 1, NODE_OK };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = fake_cluster(&bad[i]);

		if (ret != -KVC_EPROTO)
			fail_msg("%s: kvc_cluster %d (%s), want KVC_EPROTO", bad[i].what, ret,
				 kvc_strerror(ret));
	}
	/* The same reply, well formed, comes through field for field. */
	assert_int_equal(fake_cluster(&good), 0);
	assert_true(view.remote && view.up && view.seen);
	assert_int_equal(view.n_nodes, 1);
	assert_int_equal(view.nodes_known, 5);
	assert_int_equal(view.masters_down, 1);
	assert_int_equal(view.stores, 7);
	assert_int_equal(view.store_bytes, 7000);
	assert_string_equal(view.nodes[0].addr, "10.0.0.1:7000");
	assert_int_equal(view.nodes[0].state, -ECONNREFUSED);
	assert_int_equal(view.nodes[0].n_ranges, 2);
	assert_int_equal(view.nodes[0].ranges[1].first, 200);
	assert_int_equal(view.nodes[0].ranges[1].last, 299);
}

/*
 * Last (it kills a master): the node shows down, with its error, after
 * the next request that fails on it; once a replica has taken over, the
 * map is whole again with 3 masters up and the dead node serving none.
 */
static void test_master_killed(void **state)
{
	struct kvt_daemon d;
	struct kvc *c = start(&d, NULL);
	uint64_t salt = kvt_now_ns() ^ 0x4b, t0, down_ns = 0, whole_ns = 0;
	const struct kvc_cluster_node *n;
	char name[64];
	uint32_t ns;
	unsigned pid;
	int err = 0;

	snprintf(name, sizeof(name), "killed/%llx", (unsigned long long)salt);
	assert_int_equal(kvc_ns_register(c, name, &ns), 0);
	put_chunks(c, ns, salt, 0, 50);
	wait_written(c, 50);
	pid = kvt_cluster_pid(&cl, cl.ports[0]);
	assert_true(pid > 1);	/* never kill(0) */
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	t0 = kvt_now_ns();
	while (!down_ns) {
		if (kvt_now_ns() - t0 > 20000000000ull)
			fail_msg("the killed master not seen down in 20 s");
		ask_absent(c, ns, salt, 100);	/* every master's slots */
		assert_int_equal(kvc_cluster(c, &view), 0);
		n = node_at(&view, cl.ports[0]);
		assert_non_null(n);
		if (n->state && n->slots && view.masters_down >= 1) {
			err = n->state;
			down_ns = kvt_now_ns() - t0;
		}
		kvt_sleep_ms(20);
	}
	assert_true(err < 0);
	while (!whole_ns) {
		if (kvt_now_ns() - t0 > 30000000000ull)
			fail_msg("no whole map 30 s after a master died (%u masters, %u down)",
				 view.masters, view.masters_down);
		ask_absent(c, ns, salt, 100);
		assert_int_equal(kvc_cluster(c, &view), 0);
		n = node_at(&view, cl.ports[0]);
		if (view.masters == 3 && !view.masters_down && n && !n->slots)
			whole_ns = kvt_now_ns() - t0;
		else
			kvt_sleep_ms(50);
	}
	assert_int_equal(check_map(&view), 3);
	assert_true(view.up);
	print_message("figure: killed master seen down (%s) %.2f s after the kill; "
		      "map whole again, 3 masters up, after %.1f s\n", kvc_strerror(err),
		      (double)down_ns / 1e9, (double)whole_ns / 1e9);
	stop(&d, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_remote),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_view),
		cmocka_unit_test(test_master_killed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
