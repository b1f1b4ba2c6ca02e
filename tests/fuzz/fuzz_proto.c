/*
 * fuzz_proto.c - libFuzzer harness for the request decoder (lib/proto.c).
 *
 * Each input is one would-be frame. It is copied into a malloc'd buffer of
 * exactly its size (malloc aligns to 16; the decoder needs 8), so ASan
 * reports any read past the frame. The header goes through
 * kv_proto_check_hdr(), the whole input through kv_proto_parse() with the
 * hard-cap batch limit, a small one and one above the cap; on success every
 * pointer the decoder handed out is walked for as many items as it claims,
 * and the invariants of a decoded request are checked. A violated invariant
 * traps, which libFuzzer reports as a crash.
 *
 * Built with -DKV_FUZZ_SEEDS (and without -fsanitize=fuzzer) this file is
 * also the seed generator: a main() that writes one valid frame of every op,
 * and a few batched ones, into the directory given as argv[1]
 * (tests/fuzz/run.sh builds and runs it).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/proto.h"

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define SMALL_BATCH	7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the walks from being optimized away. */
static volatile uint64_t sink;

static void check(bool ok)
{
	if (!ok)
		__builtin_trap();
}

/* Read every byte of [p, p + n), which must lie inside the body. */
static uint64_t touch(const char *buf, size_t size, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t sum = 0;

	check((const char *)p >= buf + HDR_LEN);
	check((const char *)p + n <= buf + size);
	check(((uintptr_t)p & 7) == 0);
	for (size_t i = 0; i < n; i++)
		sum += b[i];
	return sum;
}

static bool ret_known(int ret)
{
	return ret == 0 || ret == -KV_EPROTO || ret == -KV_EBATCH ||
	       ret == -KV_EMSGSIZE;
}

/* A decoded request describes exactly the bytes it came from. */
static void check_req(const char *buf, size_t size, uint32_t max_batch,
		      const struct kv_req *r)
{
	const char *body = buf + HDR_LEN;
	size_t blen = size - HDR_LEN;
	uint32_t cap = max_batch < KV_PROTO_MAX_BATCH ? max_batch : KV_PROTO_MAX_BATCH;
	uint32_t n = r->hdr.count;
	uint64_t sum = 0;

	check(size >= HDR_LEN);
	check(memcmp(&r->hdr, buf, HDR_LEN) == 0);
	check(r->hdr.len == blen);
	check(r->hdr.len <= KV_PROTO_MAX_MSG);
	check(r->hdr.len % 8 == 0);
	check(r->hdr.flags == 0 && r->hdr.status == 0);
	check(r->hdr.op > KV_OP_ERROR && r->hdr.op < KV_OP_MAX);

	switch (r->hdr.op) {
	case KV_OP_HELLO:
		check(n == 0);
		check((const char *)r->u.hello == body);
		sum += touch(buf, size, r->u.hello, sizeof(*r->u.hello));
		sum += r->u.hello->version + r->u.hello->pid;
		break;
	case KV_OP_NS_REGISTER:
		check(n >= 1 && n <= KV_PROTO_NS_MAX);
		check(r->u.ns_name.name == body && r->u.ns_name.len == n);
		check(!memchr(r->u.ns_name.name, '\0', r->u.ns_name.len));
		sum += touch(buf, size, r->u.ns_name.name, r->u.ns_name.len);
		if (r->u.ns_name.model) {	/* an optional cost model follows */
			check(blen == kv_proto_pad8(n) + sizeof(*r->u.ns_name.model));
			check((const char *)r->u.ns_name.model == body + kv_proto_pad8(n));
			sum += touch(buf, size, r->u.ns_name.model,
				     sizeof(*r->u.ns_name.model));
		} else {
			check(blen == kv_proto_pad8(n));
		}
		break;
	case KV_OP_NS_LOOKUP:
	case KV_OP_NS_DROP:		/* a name, never a model */
		check(n >= 1 && n <= KV_PROTO_NS_MAX);
		check(r->u.ns_name.name == body && r->u.ns_name.len == n);
		check(!memchr(r->u.ns_name.name, '\0', r->u.ns_name.len));
		check(!r->u.ns_name.model && blen == kv_proto_pad8(n));
		sum += touch(buf, size, r->u.ns_name.name, r->u.ns_name.len);
		break;
	case KV_OP_NS_LIST:
		check(n == 0);
		check((const char *)r->u.ns_list == body && blen == sizeof(*r->u.ns_list));
		check(r->u.ns_list->limit >= 1 && r->u.ns_list->limit <= KV_PROTO_NS_PAGE);
		sum += touch(buf, size, r->u.ns_list, sizeof(*r->u.ns_list));
		break;
	case KV_OP_SCORE:
		check(n <= cap);
		check(blen == kv_proto_score_len(n));
		check((const char *)r->u.score.keys == body + sizeof(struct kv_wire_keys));
		check((const char *)r->u.score.scores == body + kv_proto_keys_len(n));
		sum += touch(buf, size, r->u.score.keys, (size_t)n * sizeof(*r->u.score.keys));
		sum += touch(buf, size, r->u.score.scores, (size_t)n * sizeof(float));
		break;
	case KV_OP_POLICY:
		check(n == 0);
		check((const char *)r->u.policy == body && blen == sizeof(*r->u.policy));
		check(r->u.policy->set <= 1);
		sum += touch(buf, size, r->u.policy, sizeof(*r->u.policy));
		break;
	case KV_OP_LOOKUP:
	case KV_OP_COMMIT:
	case KV_OP_ABORT:
	case KV_OP_PIN:
	case KV_OP_RELEASE:
	case KV_OP_EVICT:
	case KV_OP_PREFETCH:
	case KV_OP_INSPECT:
		check(n <= cap);
		check(r->hdr.op != KV_OP_INSPECT || n == 1);
		check(blen == kv_proto_keys_len(n));
		check((const char *)r->u.keys.keys == body + sizeof(struct kv_wire_keys));
		check(r->u.keys.ns == ((const struct kv_wire_keys *)body)->ns);
		check(r->u.keys.flags == ((const struct kv_wire_keys *)body)->flags);
		sum += touch(buf, size, r->u.keys.keys, (size_t)n * sizeof(*r->u.keys.keys));
		for (uint32_t i = 0; i < n; i++)
			sum += r->u.keys.keys[i].lo ^ r->u.keys.keys[i].hi;
		break;
	case KV_OP_ALLOC:
		check(n <= cap);
		check(blen == kv_proto_alloc_len(n));
		check((const char *)r->u.alloc.items == body + sizeof(struct kv_wire_keys));
		check(r->u.alloc.ns == ((const struct kv_wire_keys *)body)->ns);
		sum += touch(buf, size, r->u.alloc.items, (size_t)n * sizeof(*r->u.alloc.items));
		for (uint32_t i = 0; i < n; i++) {
			check(!(r->u.alloc.items[i].flags &
				~(uint32_t)(KV_ALLOC_PARENT | KV_ALLOC_HBM)));
			sum += r->u.alloc.items[i].bytes + r->u.alloc.items[i].key.lo;
		}
		break;
	case KV_OP_LS:
		check(n == 0);
		check((const char *)r->u.ls == body && blen == sizeof(*r->u.ls));
		check(r->u.ls->limit >= 1 && r->u.ls->limit <= cap);
		sum += touch(buf, size, r->u.ls, sizeof(*r->u.ls));
		break;
	case KV_OP_FLUSH:
		check(n == 0);
		check((const char *)r->u.flush == body && blen == sizeof(*r->u.flush));
		check(!(r->u.flush->flags & ~(uint32_t)KV_FLUSH_DROP));
		sum += touch(buf, size, r->u.flush, sizeof(*r->u.flush));
		break;
	case KV_OP_STATS:
	case KV_OP_PING:
	case KV_OP_TENANTS:
	case KV_OP_CLUSTER:
		check(n == 0 && blen == 0);
		break;
	case KV_OP_BW_REPORT:		/* any values: the handler judges them */
		check(n == 0);
		check((const char *)r->u.bw == body && blen == sizeof(*r->u.bw));
		sum += touch(buf, size, r->u.bw, sizeof(*r->u.bw));
		sum += r->u.bw->bytes ^ r->u.bw->ns;
		break;
	case KV_OP_PLAN_REPORT:
		check(n == 0);
		check((const char *)r->u.plan == body && blen == sizeof(*r->u.plan));
		sum += touch(buf, size, r->u.plan, sizeof(*r->u.plan));
		sum += r->u.plan->kind;
		break;
	default:
		check(false);
	}
	sink += sum;
}

static int parse(const char *buf, size_t size, uint32_t max_batch,
		 struct kv_req *r)
{
	int ret = kv_proto_parse(buf, size, max_batch, r);

	check(ret_known(ret));
	if (size >= HDR_LEN)
		check(memcmp(&r->hdr, buf, HDR_LEN) == 0);	/* even on error */
	else
		check(ret == -KV_EPROTO);
	if (ret == 0)
		check_req(buf, size, max_batch, r);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_req big, small, over;
	struct kv_wire_hdr h;
	int hret = -1;
	int sret;
	int ret;
	char *buf;

	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);

	if (size >= HDR_LEN) {
		hret = kv_proto_check_hdr(buf, KV_PROTO_MAX_MSG, &h);
		check(hret == 0 || hret == -KV_EPROTO || hret == -KV_EMSGSIZE);
		check(memcmp(&h, buf, HDR_LEN) == 0);
		check(hret != 0 || (h.len <= KV_PROTO_MAX_MSG && h.len % 8 == 0 &&
				    h.flags == 0 && h.status == 0 &&
				    h.op > KV_OP_ERROR && h.op < KV_OP_MAX));
		check((hret == -KV_EMSGSIZE) == (h.len > KV_PROTO_MAX_MSG));
		/* a smaller configured limit refuses the lengths over it first */
		ret = kv_proto_check_hdr(buf, 4096, &h);
		check(h.len > 4096 ? ret == -KV_EMSGSIZE : ret == hret);
		/* a larger one is clamped to the hard cap */
		check(kv_proto_check_hdr(buf, UINT32_MAX, &h) == hret);
	}

	ret = parse(buf, size, KV_PROTO_MAX_BATCH, &big);
	/* the decoder checks the header the same way */
	if (size >= HDR_LEN && hret)
		check(ret == hret);
	if (ret == 0)
		check(hret == 0);

	/* a smaller batch limit only ever refuses more, and only by EBATCH */
	sret = parse(buf, size, SMALL_BATCH, &small);
	if (sret == 0)
		check(ret == 0 && memcmp(&small, &big, sizeof(big)) == 0);
	else if (ret == 0)
		check(sret == -KV_EBATCH);

	/* a batch limit above the hard cap is the hard cap */
	check(parse(buf, size, UINT32_MAX, &over) == ret);
	if (ret == 0)
		check(memcmp(&over, &big, sizeof(big)) == 0);

	free(buf);
	return 0;
}

#ifdef KV_FUZZ_SEEDS
#include <stdio.h>

static uint64_t seed_buf[(HDR_LEN + 8 + (KV_PROTO_MAX_BATCH + 1) *
			  sizeof(struct kv_wire_alloc)) / 8];
static unsigned n_seeds;

static char *seed_body(void)
{
	return (char *)seed_buf + HDR_LEN;
}

static void seed_start(unsigned op, uint32_t count, size_t blen)
{
	struct kv_wire_hdr *h = (struct kv_wire_hdr *)seed_buf;

	memset(seed_buf, 0, sizeof(seed_buf));
	h->len = (uint32_t)blen;
	h->op = (uint16_t)op;
	h->req_id = ++n_seeds;
	h->count = count;
}

/*
 * Write the frame built in seed_buf as DIR/NAME; it must decode to want
 * (0, or an error for the seeds just past a limit).
 */
static int seed_write_ret(const char *dir, const char *name, int want)
{
	const struct kv_wire_hdr *h = (const struct kv_wire_hdr *)seed_buf;
	size_t len = HDR_LEN + h->len;
	struct kv_req r;
	char path[4096];
	FILE *f;

	if (kv_proto_parse(seed_buf, len, KV_PROTO_MAX_BATCH, &r) != want) {
		fprintf(stderr, "mkseeds: seed '%s' does not decode as meant\n", name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(seed_buf, 1, len, f) != len || fclose(f)) {
		perror(path);
		return -1;
	}
	return 0;
}

static int seed_write(const char *dir, const char *name)
{
	return seed_write_ret(dir, name, 0);
}

static void seed_keys(unsigned op, uint32_t n)
{
	struct kv_wire_keys *k = (struct kv_wire_keys *)seed_body();
	struct kv_wire_key *keys = (struct kv_wire_key *)(k + 1);

	seed_start(op, n, kv_proto_keys_len(n));
	k->ns = 1;
	for (uint32_t i = 0; i < n; i++) {
		keys[i].lo = 0x1000 + i;
		keys[i].hi = 0xfeedface00000000ull | i;
	}
}

static void seed_alloc(uint32_t n)
{
	struct kv_wire_keys *k = (struct kv_wire_keys *)seed_body();
	struct kv_wire_alloc *it = (struct kv_wire_alloc *)(k + 1);

	seed_start(KV_OP_ALLOC, n, kv_proto_alloc_len(n));
	k->ns = 1;
	for (uint32_t i = 0; i < n; i++) {
		it[i].key.lo = 0x1000 + i;
		it[i].parent.lo = 0x1000 + i - 1;
		it[i].bytes = 64 << 10;
		it[i].tokens = 256;
		it[i].position = 256 * i;
		it[i].flags = i ? KV_ALLOC_PARENT : 0;
	}
}

static void seed_ns(const char *name)
{
	size_t n = strlen(name);

	seed_start(KV_OP_NS_REGISTER, (uint32_t)n, kv_proto_pad8(n));
	memcpy(seed_body(), name, n);
}

int main(int argc, char **argv)
{
	static const unsigned key_ops[] = {
		KV_OP_LOOKUP, KV_OP_COMMIT, KV_OP_ABORT, KV_OP_PIN,
		KV_OP_RELEASE, KV_OP_EVICT, KV_OP_PREFETCH,
	};
	/* around the fuzzer's small batch limit, and a bigger batch */
	static const uint32_t counts[] = { 1, SMALL_BATCH, SMALL_BATCH + 1, 64 };
	const char *dir = argc > 1 ? argv[1] : NULL;
	struct kv_wire_hello *hello;
	struct kv_wire_ls *ls;
	struct kv_wire_flush *fl;
	char name[64];
	char ns255[KV_PROTO_NS_MAX + 1];
	int err = 0;

	if (!dir) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}

	seed_start(KV_OP_HELLO, 0, sizeof(*hello));
	hello = (struct kv_wire_hello *)seed_body();
	hello->version = KV_PROTO_VERSION;
	hello->pid = 4242;
	memcpy(hello->name, "vllm-worker-0", 13);
	err |= seed_write(dir, "hello");

	seed_ns("llama3-8b/bf16/tp0of1/c256");
	err |= seed_write(dir, "ns_register");
	seed_ns("x");
	err |= seed_write(dir, "ns_register-1");
	memset(ns255, 'q', KV_PROTO_NS_MAX);
	ns255[KV_PROTO_NS_MAX] = '\0';
	seed_ns(ns255);
	err |= seed_write(dir, "ns_register-255");
	seed_start(KV_OP_NS_REGISTER, KV_PROTO_NS_MAX + 1, KV_PROTO_NS_MAX + 1);
	memset(seed_body(), 'q', KV_PROTO_NS_MAX + 1);
	err |= seed_write_ret(dir, "ns_register-256", -KV_EPROTO);
	seed_start(KV_OP_NS_LOOKUP, 9, 16);
	memcpy(seed_body(), "llama3-8b", 9);
	err |= seed_write(dir, "ns_lookup");
	seed_start(KV_OP_NS_DROP, 9, 16);
	memcpy(seed_body(), "llama3-8b", 9);
	err |= seed_write(dir, "ns_drop");
	seed_start(KV_OP_NS_LOOKUP, 5, 8 + sizeof(struct kv_wire_ns_model));
	memcpy(seed_body(), "model", 5);
	err |= seed_write_ret(dir, "ns_lookup-model", -KV_EPROTO);
	seed_start(KV_OP_NS_LIST, 0, sizeof(struct kv_wire_ns_list));
	((struct kv_wire_ns_list *)seed_body())->limit = KV_PROTO_NS_PAGE;
	err |= seed_write(dir, "ns_list");
	((struct kv_wire_ns_list *)seed_body())->cursor = 7;
	((struct kv_wire_ns_list *)seed_body())->limit = KV_PROTO_NS_PAGE + 1;
	err |= seed_write_ret(dir, "ns_list-257", -KV_EBATCH);

	for (size_t o = 0; o < sizeof(key_ops) / sizeof(key_ops[0]); o++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			seed_keys(key_ops[o], counts[c]);
			snprintf(name, sizeof(name), "%s-%u",
				 kv_proto_op_name(key_ops[o]), (unsigned)counts[c]);
			err |= seed_write(dir, name);
		}
	}
	seed_keys(KV_OP_LOOKUP, KV_PROTO_MAX_BATCH);
	err |= seed_write(dir, "lookup-1024");
	seed_keys(KV_OP_PIN, KV_PROTO_MAX_BATCH + 1);
	err |= seed_write_ret(dir, "pin-1025", -KV_EBATCH);
	seed_keys(KV_OP_INSPECT, 1);
	err |= seed_write(dir, "inspect");

	seed_alloc(1);
	err |= seed_write(dir, "alloc-1");
	seed_alloc(8);
	err |= seed_write(dir, "alloc-8");
	seed_alloc(KV_PROTO_MAX_BATCH);
	err |= seed_write(dir, "alloc-1024");
	seed_alloc(KV_PROTO_MAX_BATCH + 1);
	err |= seed_write_ret(dir, "alloc-1025", -KV_EBATCH);

	seed_start(KV_OP_LS, 0, sizeof(*ls));
	ls = (struct kv_wire_ls *)seed_body();
	ls->ns = KV_NS_ALL;
	ls->tier = KV_TIER_NONE;
	ls->limit = 100;
	err |= seed_write(dir, "ls");
	ls->ns = 1;
	ls->tier = KV_TIER_DRAM;
	ls->cursor = 12345;
	ls->limit = 1;
	err |= seed_write(dir, "ls-ns");

	seed_start(KV_OP_FLUSH, 0, sizeof(*fl));
	fl = (struct kv_wire_flush *)seed_body();
	fl->tier = KV_TIER_NONE;
	err |= seed_write(dir, "flush");
	fl->tier = KV_TIER_DRAM;
	fl->flags = KV_FLUSH_DROP;
	err |= seed_write(dir, "flush-drop");

	seed_start(KV_OP_SCORE, 3, kv_proto_score_len(3));
	((struct kv_wire_keys *)seed_body())->ns = 1;
	((float *)(seed_body() + kv_proto_keys_len(3)))[1] = 0.5f;
	err |= seed_write(dir, "score");

	seed_start(KV_OP_POLICY, 0, sizeof(struct kv_wire_policy));
	((struct kv_wire_policy *)seed_body())->tier = KV_TIER_DRAM;
	((struct kv_wire_policy *)seed_body())->set = 1;
	memcpy(((struct kv_wire_policy *)seed_body())->name, "gdsf", 4);
	err |= seed_write(dir, "policy");

	seed_start(KV_OP_NS_REGISTER, 5, 8 + sizeof(struct kv_wire_ns_model));
	memcpy(seed_body(), "model", 5);
	((struct kv_wire_ns_model *)(seed_body() + 8))->hidden = 4096;
	err |= seed_write(dir, "ns-model");

	seed_start(KV_OP_STATS, 0, 0);
	err |= seed_write(dir, "stats");
	seed_start(KV_OP_PING, 0, 0);
	err |= seed_write(dir, "ping");
	seed_start(KV_OP_TENANTS, 0, 0);
	err |= seed_write(dir, "tenants");
	seed_start(KV_OP_CLUSTER, 0, 0);
	err |= seed_write(dir, "cluster");

	seed_start(KV_OP_BW_REPORT, 0, sizeof(struct kv_wire_bw_report));
	((struct kv_wire_bw_report *)seed_body())->tier = KV_TIER_DRAM;
	((struct kv_wire_bw_report *)seed_body())->bytes = 32u << 20;
	((struct kv_wire_bw_report *)seed_body())->ns = 600000;
	err |= seed_write(dir, "bw_report");
	seed_start(KV_OP_BW_REPORT, 0, 16);
	err |= seed_write_ret(dir, "bw_report-short", -KV_EPROTO);
	seed_start(KV_OP_PLAN_REPORT, 0, sizeof(struct kv_wire_plan_report));
	((struct kv_wire_plan_report *)seed_body())->kind = KV_PLAN_BOTH;
	((struct kv_wire_plan_report *)seed_body())->tokens_loaded = 512;
	((struct kv_wire_plan_report *)seed_body())->tokens_computed = 256;
	err |= seed_write(dir, "plan_report");
	seed_start(KV_OP_PLAN_REPORT, 1, sizeof(struct kv_wire_plan_report));
	err |= seed_write_ret(dir, "plan_report-count", -KV_EPROTO);

	if (err)
		return 1;
	printf("mkseeds: %u seeds in %s\n", n_seeds, dir);
	return 0;
}
#endif
