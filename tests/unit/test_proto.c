/*
 * test_proto.c - table tests of the request decoder (lib/proto.c).
 *
 * First every op's valid frame, checked for the pointers and counts it
 * decodes to; then the classic attacks (TESTING.md plan 6): lengths over
 * the limit or not a multiple of 8, lengths that disagree with the count,
 * counts whose byte size wraps in 32 bits, counts over the batch limit and
 * over the hard cap, every prefix of a valid frame, garbage after one, the
 * reply flag or a status on a request, unknown ops, and each op's own field
 * checks. A deterministic mutation run closes the file.
 *
 * Frames that must fail are decoded from an exactly-sized heap copy, so a
 * decoder that reads past the end of a frame shows up under ASan; frames
 * that must succeed are decoded in place, so the returned pointers can be
 * compared with the frame's own addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tests/lib/rng.h"

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define REQ_ID		0x0123456789abcdefull
#define NS_ID		7u
#define MAX_ITEMS	1100	/* room for a hard-cap-plus-one ALLOC */
#define FRAME_BYTES	(2 * (HDR_LEN + sizeof(struct kv_wire_keys) + \
			      MAX_ITEMS * sizeof(struct kv_wire_alloc)))

/* The frame under test; 8-byte aligned as the decoder requires. */
static uint64_t frame_words[FRAME_BYTES / 8];
static char *const frame = (char *)frame_words;

/* The ops that carry a kv_wire_keys header and keys (INSPECT: exactly one). */
static const unsigned key_ops[] = {
	KV_OP_LOOKUP, KV_OP_COMMIT, KV_OP_ABORT, KV_OP_PIN, KV_OP_RELEASE,
	KV_OP_EVICT,
};

/* Every batched op: the key ops, INSPECT and ALLOC. */
static const unsigned batch_ops[] = {
	KV_OP_LOOKUP, KV_OP_COMMIT, KV_OP_ABORT, KV_OP_PIN, KV_OP_RELEASE,
	KV_OP_EVICT, KV_OP_INSPECT, KV_OP_ALLOC,
};

static uint64_t rng_state;

/* splitmix64 (tests/lib/rng.h) */
static uint64_t rnd(void)
{
	return kvt_splitmix(&rng_state);
}

static struct kv_wire_hdr *hdr(void)
{
	return (struct kv_wire_hdr *)frame_words;
}

static char *body(void)
{
	return frame + HDR_LEN;
}

/* ---- frame builders: each returns the frame's length ------------------- */

static size_t mk(unsigned op, uint32_t count, size_t blen)
{
	size_t clear = HDR_LEN + blen + 64;

	assert_true(HDR_LEN + blen <= sizeof(frame_words));
	memset(frame_words, 0, clear < sizeof(frame_words) ? clear : sizeof(frame_words));
	hdr()->len = (uint32_t)blen;
	hdr()->op = (uint16_t)op;
	hdr()->req_id = REQ_ID;
	hdr()->count = count;
	return HDR_LEN + blen;
}

static size_t mk_hello(void)
{
	size_t len = mk(KV_OP_HELLO, 0, sizeof(struct kv_wire_hello));
	struct kv_wire_hello *h = (struct kv_wire_hello *)body();

	h->version = KV_PROTO_VERSION;
	h->pid = 42;
	memcpy(h->name, "test_proto", 10);
	return len;
}

static size_t mk_ns(const char *name, size_t n)
{
	size_t len = mk(KV_OP_NS_REGISTER, (uint32_t)n, kv_proto_pad8(n));

	memcpy(body(), name, n);
	return len;
}

static size_t mk_keys(unsigned op, uint32_t count)
{
	size_t len = mk(op, count, kv_proto_keys_len(count));
	struct kv_wire_keys *k = (struct kv_wire_keys *)body();
	struct kv_wire_key *keys = (struct kv_wire_key *)(k + 1);

	k->ns = NS_ID;
	for (uint32_t i = 0; i < count; i++) {
		keys[i].lo = i + 1;
		keys[i].hi = ~(uint64_t)i;
	}
	return len;
}

static size_t mk_alloc(uint32_t count, uint32_t flags)
{
	size_t len = mk(KV_OP_ALLOC, count, kv_proto_alloc_len(count));
	struct kv_wire_keys *k = (struct kv_wire_keys *)body();
	struct kv_wire_alloc *it = (struct kv_wire_alloc *)(k + 1);

	k->ns = NS_ID;
	for (uint32_t i = 0; i < count; i++) {
		it[i].key.lo = i + 1;
		it[i].parent.lo = i;
		it[i].bytes = 4096 + i;
		it[i].tokens = 16;
		it[i].position = 16 * i;
		it[i].flags = flags;
	}
	return len;
}

/* A batched op with count items: keys, or ALLOC items. */
static size_t mk_batch(unsigned op, uint32_t count)
{
	return op == KV_OP_ALLOC ? mk_alloc(count, 0) : mk_keys(op, count);
}

static size_t item_size(unsigned op)
{
	return op == KV_OP_ALLOC ? sizeof(struct kv_wire_alloc) :
				   sizeof(struct kv_wire_key);
}

static size_t mk_ls(uint32_t limit)
{
	size_t len = mk(KV_OP_LS, 0, sizeof(struct kv_wire_ls));
	struct kv_wire_ls *ls = (struct kv_wire_ls *)body();

	ls->ns = KV_NS_ALL;
	ls->tier = KV_TIER_NONE;
	ls->limit = limit;
	return len;
}

static size_t mk_flush(uint32_t flags)
{
	size_t len = mk(KV_OP_FLUSH, 0, sizeof(struct kv_wire_flush));
	struct kv_wire_flush *f = (struct kv_wire_flush *)body();

	f->tier = KV_TIER_NONE;
	f->flags = flags;
	return len;
}

static size_t mk_bw(uint8_t tier, uint64_t bytes, uint64_t ns)
{
	size_t len = mk(KV_OP_BW_REPORT, 0, sizeof(struct kv_wire_bw_report));
	struct kv_wire_bw_report *b = (struct kv_wire_bw_report *)body();

	b->tier = tier;
	b->bytes = bytes;
	b->ns = ns;
	return len;
}

static size_t mk_plan(uint32_t kind, uint64_t loaded, uint64_t computed)
{
	size_t len = mk(KV_OP_PLAN_REPORT, 0, sizeof(struct kv_wire_plan_report));
	struct kv_wire_plan_report *p = (struct kv_wire_plan_report *)body();

	p->kind = kind;
	p->tokens_loaded = loaded;
	p->tokens_computed = computed;
	return len;
}

/* One valid frame of each op (and a few batched ones), by index. */
static size_t mk_valid(unsigned i)
{
	char name255[KV_PROTO_NS_MAX];

	for (size_t c = 0; c < sizeof(name255); c++)
		name255[c] = (char)('a' + c % 26);
	switch (i) {
	case 0: return mk_hello();
	case 1: return mk_ns("a", 1);
	case 2: return mk_ns("llama3-8b/bf16", 14);
	case 3: return mk_ns(name255, KV_PROTO_NS_MAX);
	case 4: return mk_keys(KV_OP_LOOKUP, 3);
	case 5: return mk_keys(KV_OP_COMMIT, 1);
	case 6: return mk_keys(KV_OP_ABORT, 2);
	case 7: return mk_keys(KV_OP_PIN, 5);
	case 8: return mk_keys(KV_OP_RELEASE, 1);
	case 9: return mk_keys(KV_OP_EVICT, 4);
	case 10: return mk_keys(KV_OP_INSPECT, 1);
	case 11: return mk_alloc(2, KV_ALLOC_PARENT);
	case 12: return mk_ls(16);
	case 13: return mk_flush(KV_FLUSH_DROP);
	case 14: return mk(KV_OP_STATS, 0, 0);
	case 15: return mk(KV_OP_PING, 0, 0);
	case 16: return mk_keys(KV_OP_LOOKUP, KV_PROTO_MAX_BATCH);
	case 17: return mk_alloc(64, 0);
	case 18: return mk_bw(KV_TIER_DRAM, 32u << 20, 600000);
	case 19: return mk_plan(KV_PLAN_BOTH, 512, 256);
	default: return 0;
	}
}
#define N_VALID 20
#define N_SMALL 18	/* the valid frames but the two large ones (16, 17) */

static size_t mk_small(unsigned i)
{
	return mk_valid(i < 16 ? i : i + 2);
}

/* ---- decoding ---------------------------------------------------------- */

/* Decode the frame in place (the pointers in *r point into it). */
static int parse(size_t len, uint32_t max_batch, struct kv_req *r)
{
	return kv_proto_parse(frame, len, max_batch, r);
}

/*
 * Decode an exactly-sized heap copy of the frame's first len bytes (malloc
 * aligns to 16). On error the decoder must still have copied the header
 * out when len covered one.
 */
static int parse_copy(size_t len, uint32_t max_batch)
{
	struct kv_req r;
	void *p = malloc(len ? len : 1);
	int ret;

	assert_non_null(p);
	memcpy(p, frame, len);
	ret = kv_proto_parse(p, len, max_batch, &r);
	if (len >= HDR_LEN)
		assert_memory_equal(&r.hdr, p, HDR_LEN);
	free(p);
	return ret;
}

static int check_hdr(uint32_t max_msg)
{
	struct kv_wire_hdr h;
	int ret = kv_proto_check_hdr(frame, max_msg, &h);

	assert_memory_equal(&h, frame, HDR_LEN);
	return ret;
}

/* ---- valid frames ------------------------------------------------------ */

static void check_common(const struct kv_req *r, unsigned op, uint32_t count,
			 size_t blen)
{
	assert_int_equal(r->hdr.op, op);
	assert_int_equal(r->hdr.req_id, REQ_ID);
	assert_int_equal(r->hdr.count, count);
	assert_int_equal(r->hdr.len, blen);
	assert_int_equal(r->hdr.flags, 0);
	assert_int_equal(r->hdr.status, 0);
}

static void test_valid_hello(void **state)
{
	struct kv_req r;
	size_t len = mk_hello();

	assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), 0);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	check_common(&r, KV_OP_HELLO, 0, sizeof(struct kv_wire_hello));
	assert_ptr_equal(r.u.hello, body());
	assert_int_equal(r.u.hello->version, KV_PROTO_VERSION);
	assert_int_equal(parse_copy(len, 1), 0);
}

static void test_valid_ns_register(void **state)
{
	static const size_t lens[] = { 1, 7, 8, 9, 16, 254, KV_PROTO_NS_MAX };
	char name[KV_PROTO_NS_MAX];
	struct kv_req r;

	/* every byte but NUL is allowed in a name */
	for (size_t i = 0; i < sizeof(name); i++)
		name[i] = (char)(i + 1);
	for (size_t i = 0; i < KV_ARRAY_SIZE(lens); i++) {
		size_t len = mk_ns(name, lens[i]);

		assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
		check_common(&r, KV_OP_NS_REGISTER, lens[i], kv_proto_pad8(lens[i]));
		assert_ptr_equal(r.u.ns_name.name, body());
		assert_int_equal(r.u.ns_name.len, lens[i]);
		assert_memory_equal(r.u.ns_name.name, name, lens[i]);
		assert_int_equal(parse_copy(len, 1), 0);
	}
}

static void test_valid_key_ops(void **state)
{
	static const uint32_t counts[] = { 1, 3, 7, 64, KV_PROTO_MAX_BATCH };
	struct kv_req r;

	for (size_t o = 0; o < KV_ARRAY_SIZE(key_ops); o++) {
		for (size_t i = 0; i < KV_ARRAY_SIZE(counts); i++) {
			uint32_t n = counts[i];
			size_t len = mk_keys(key_ops[o], n);

			assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), 0);
			assert_int_equal(parse(len, n, &r), 0);
			check_common(&r, key_ops[o], n, kv_proto_keys_len(n));
			assert_int_equal(r.u.keys.ns, NS_ID);
			assert_ptr_equal(r.u.keys.keys,
					 body() + sizeof(struct kv_wire_keys));
			assert_int_equal(r.u.keys.keys[0].lo, 1);
			assert_int_equal(r.u.keys.keys[n - 1].lo, n);
			assert_int_equal(r.u.keys.keys[n - 1].hi, ~(uint64_t)(n - 1));
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);
		}
	}
}

static void test_valid_inspect(void **state)
{
	struct kv_req r;
	size_t len = mk_keys(KV_OP_INSPECT, 1);

	assert_int_equal(parse(len, 1, &r), 0);
	check_common(&r, KV_OP_INSPECT, 1, kv_proto_keys_len(1));
	assert_int_equal(r.u.keys.ns, NS_ID);
	assert_ptr_equal(r.u.keys.keys, body() + sizeof(struct kv_wire_keys));
	assert_int_equal(r.u.keys.keys[0].lo, 1);
}

static void test_valid_alloc(void **state)
{
	static const uint32_t counts[] = { 1, 2, 64, KV_PROTO_MAX_BATCH };
	struct kv_req r;

	for (size_t i = 0; i < KV_ARRAY_SIZE(counts); i++) {
		for (uint32_t flags = 0; flags <= KV_ALLOC_PARENT; flags++) {
			uint32_t n = counts[i];
			size_t len = mk_alloc(n, flags);

			assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
			check_common(&r, KV_OP_ALLOC, n, kv_proto_alloc_len(n));
			assert_int_equal(r.u.alloc.ns, NS_ID);
			assert_ptr_equal(r.u.alloc.items,
					 body() + sizeof(struct kv_wire_keys));
			assert_int_equal(r.u.alloc.items[n - 1].key.lo, n);
			assert_int_equal(r.u.alloc.items[n - 1].bytes, 4096 + n - 1);
			assert_int_equal(r.u.alloc.items[n - 1].flags, flags);
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);
		}
	}
}

static void test_valid_ls(void **state)
{
	struct kv_req r;
	size_t len = mk_ls(16);

	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	check_common(&r, KV_OP_LS, 0, sizeof(struct kv_wire_ls));
	assert_ptr_equal(r.u.ls, body());
	assert_int_equal(r.u.ls->limit, 16);
	assert_int_equal(r.u.ls->ns, KV_NS_ALL);
	/* the limit may equal the batch limit */
	len = mk_ls(1);
	assert_int_equal(parse(len, 1, &r), 0);
	len = mk_ls(KV_PROTO_MAX_BATCH);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
}

static void test_valid_flush(void **state)
{
	struct kv_req r;

	for (uint32_t flags = 0; flags <= KV_FLUSH_DROP; flags++) {
		size_t len = mk_flush(flags);

		assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
		check_common(&r, KV_OP_FLUSH, 0, sizeof(struct kv_wire_flush));
		assert_ptr_equal(r.u.flush, body());
		assert_int_equal(r.u.flush->flags, flags);
		assert_int_equal(r.u.flush->tier, KV_TIER_NONE);
	}
}

static void test_valid_stats_ping(void **state)
{
	static const unsigned ops[] = { KV_OP_STATS, KV_OP_PING, KV_OP_TENANTS };
	struct kv_req r;

	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++) {
		size_t len = mk(ops[i], 0, 0);

		assert_int_equal(len, HDR_LEN);
		assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
		check_common(&r, ops[i], 0, 0);
		assert_int_equal(parse_copy(len, 1), 0);
	}
}

/*
 * BW_REPORT and PLAN_REPORT: fixed bodies. Their values are the handler's
 * to judge (a status, the connection stays), so any value decodes.
 */
static void test_valid_reports(void **state)
{
	static const uint64_t odd[] = { 0, 1, UINT64_MAX };
	struct kv_req r;
	size_t len;

	len = mk_bw(KV_TIER_DRAM, 4096, 1000);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	check_common(&r, KV_OP_BW_REPORT, 0, sizeof(struct kv_wire_bw_report));
	assert_ptr_equal(r.u.bw, body());
	assert_int_equal(r.u.bw->tier, KV_TIER_DRAM);
	assert_int_equal(r.u.bw->bytes, 4096);
	assert_int_equal(r.u.bw->ns, 1000);
	for (size_t i = 0; i < KV_ARRAY_SIZE(odd); i++) {
		len = mk_bw((uint8_t)odd[i], odd[i], odd[i]);
		assert_int_equal(parse_copy(len, 1), 0);
	}

	len = mk_plan(KV_PLAN_LOADED, 768, 0);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	check_common(&r, KV_OP_PLAN_REPORT, 0, sizeof(struct kv_wire_plan_report));
	assert_ptr_equal(r.u.plan, body());
	assert_int_equal(r.u.plan->kind, KV_PLAN_LOADED);
	assert_int_equal(r.u.plan->tokens_loaded, 768);
	assert_int_equal(r.u.plan->tokens_computed, 0);
	for (size_t i = 0; i < KV_ARRAY_SIZE(odd); i++) {
		len = mk_plan((uint32_t)odd[i], odd[i], odd[i]);
		assert_int_equal(parse_copy(len, 1), 0);
	}
}

/* Any other count or length is malformed. */
static void test_report_body(void **state)
{
	static const unsigned ops[] = { KV_OP_BW_REPORT, KV_OP_PLAN_REPORT };
	static const size_t lens[] = { 0, 8, 16, 32, 48 };

	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++) {
		for (size_t l = 0; l < KV_ARRAY_SIZE(lens); l++)
			assert_int_equal(parse_copy(mk(ops[i], 0, lens[l]),
						    KV_PROTO_MAX_BATCH), -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], 1, 24), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], UINT32_MAX, 24), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
	}
}

/* The table every attack below starts from really is valid. */
static void test_valid_table(void **state)
{
	for (unsigned i = 0; i < N_VALID; i++) {
		size_t len = mk_valid(i);

		assert_true(len >= HDR_LEN);
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);
	}
	assert_int_equal(mk_valid(N_VALID), 0);
}

/* ---- lengths ----------------------------------------------------------- */

static void test_len_over_max_msg(void **state)
{
	static const uint32_t lens[] = {
		KV_PROTO_MAX_MSG + 1, KV_PROTO_MAX_MSG + 8, 2 * KV_PROTO_MAX_MSG,
		0x7ffffff8u, 0x80000000u, 0xfffffff8u, 0xffffffffu,
	};
	char *big;

	for (size_t i = 0; i < KV_ARRAY_SIZE(lens); i++) {
		mk(KV_OP_PING, 0, 0);
		hdr()->len = lens[i];
		assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EMSGSIZE);
		/* a max_msg above the hard cap is clamped to it */
		assert_int_equal(check_hdr(UINT32_MAX), -KV_EMSGSIZE);
		/* the decoder refuses the size before the missing body */
		assert_int_equal(parse_copy(HDR_LEN, KV_PROTO_MAX_BATCH),
				 -KV_EMSGSIZE);
		mk_keys(KV_OP_LOOKUP, 1);
		hdr()->len = lens[i];
		assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EMSGSIZE);
	}

	/* a configured max_msg: at it passes, one word past it does not */
	mk(KV_OP_PING, 0, 0);
	hdr()->len = 4096;
	assert_int_equal(check_hdr(4096), 0);
	hdr()->len = 4104;
	assert_int_equal(check_hdr(4096), -KV_EMSGSIZE);
	hdr()->len = KV_PROTO_MAX_MSG;
	assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), 0);
	assert_int_equal(check_hdr(UINT32_MAX), 0);

	/* a body of exactly the hard cap is framed, then refused as a PING */
	big = calloc(1, HDR_LEN + KV_PROTO_MAX_MSG);
	assert_non_null(big);
	memcpy(big, frame, HDR_LEN);
	assert_int_equal(kv_proto_parse(big, HDR_LEN + KV_PROTO_MAX_MSG,
					KV_PROTO_MAX_BATCH, &(struct kv_req){ 0 }),
			 -KV_EPROTO);
	free(big);
}

static void test_len_not_multiple_of_8(void **state)
{
	for (unsigned i = 0; i < N_VALID; i++) {
		size_t len = mk_valid(i);
		uint32_t blen = hdr()->len;

		for (uint32_t r = 1; r < 8; r++) {
			/* longer and shorter, the buffer agreeing with the header */
			hdr()->len = blen + r;
			assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EPROTO);
			assert_int_equal(parse_copy(len + r, KV_PROTO_MAX_BATCH),
					 -KV_EPROTO);
			if (blen >= r) {
				hdr()->len = blen - r;
				assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EPROTO);
				assert_int_equal(parse_copy(len - r, KV_PROTO_MAX_BATCH),
						 -KV_EPROTO);
			}
		}
	}
}

static void test_len_count_mismatch(void **state)
{
	for (size_t o = 0; o < KV_ARRAY_SIZE(batch_ops); o++) {
		unsigned op = batch_ops[o];
		uint32_t n = op == KV_OP_INSPECT ? 1 : 3;
		size_t isz = item_size(op);
		size_t len = mk_batch(op, n);
		uint32_t blen = hdr()->len;

		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);

		/* the count one off, the body unchanged */
		hdr()->count = n + 1;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->count = n - 1;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->count = n;

		/* the body a word or an item off, header and buffer agreeing */
		hdr()->len = blen + 8;
		assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen - 8;
		assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen + isz;
		assert_int_equal(parse_copy(len + isz, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen - isz;
		assert_int_equal(parse_copy(len - isz, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		/* one byte short or long */
		hdr()->len = blen - 1;
		assert_int_equal(parse_copy(len - 1, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen + 1;
		assert_int_equal(parse_copy(len + 1, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		/* no kv_wire_keys header: just the items */
		hdr()->len = blen - sizeof(struct kv_wire_keys);
		assert_int_equal(parse_copy(len - sizeof(struct kv_wire_keys),
					    KV_PROTO_MAX_BATCH), -KV_EPROTO);
		/* the other item layout (keys for ALLOC, alloc items for keys) */
		hdr()->len = sizeof(struct kv_wire_keys) +
			     n * (op == KV_OP_ALLOC ? sizeof(struct kv_wire_key) :
						      sizeof(struct kv_wire_alloc));
		assert_int_equal(parse_copy(HDR_LEN + hdr()->len, KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		/* empty body */
		hdr()->len = 0;
		assert_int_equal(parse_copy(HDR_LEN, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		/* the bytes given agree with the count, the header's len not */
		hdr()->len = blen + isz;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen - isz;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		hdr()->len = blen;
	}
}

/*
 * Counts whose body size wraps to a small number in 32-bit arithmetic
 * (16 * 2^28 and 56 * 2^29 are multiples of 2^32): the body that the
 * wrapped size describes must not be accepted, whatever max_batch says.
 */
static void test_count_overflow(void **state)
{
	static const uint32_t mbs[] = { 1, KV_PROTO_MAX_BATCH, UINT32_MAX };

	for (size_t o = 0; o < KV_ARRAY_SIZE(batch_ops); o++) {
		unsigned op = batch_ops[o];
		uint32_t wrap = op == KV_OP_ALLOC ? 1u << 29 : 1u << 28;

		for (size_t m = 0; m < KV_ARRAY_SIZE(mbs); m++) {
			for (uint32_t extra = 0; extra < 3; extra++) {
				size_t len = mk_batch(op, extra);
				int ret;

				assert_int_equal((uint32_t)(wrap * item_size(op)), 0);
				hdr()->count = wrap + extra;
				ret = parse_copy(len, mbs[m]);
				assert_int_not_equal(ret, 0);
				if (op != KV_OP_INSPECT)
					assert_int_equal(ret, -KV_EBATCH);
			}
			mk_batch(op, 1);
			hdr()->count = UINT32_MAX;
			assert_int_not_equal(parse_copy(HDR_LEN + hdr()->len, mbs[m]), 0);
		}
	}
}

/* ---- batch limits ------------------------------------------------------ */

static void test_count_over_max_batch(void **state)
{
	static const uint32_t mbs[] = { 1, 2, 7, 64, 1023, KV_PROTO_MAX_BATCH };
	struct kv_req r;

	for (size_t o = 0; o < KV_ARRAY_SIZE(batch_ops); o++) {
		unsigned op = batch_ops[o];

		if (op == KV_OP_INSPECT)
			continue;	/* exactly one key: its own test */
		for (size_t m = 0; m < KV_ARRAY_SIZE(mbs); m++) {
			uint32_t mb = mbs[m];
			size_t len = mk_batch(op, mb);

			assert_int_equal(parse(len, mb, &r), 0);
			assert_int_equal(r.hdr.count, mb);
			len = mk_batch(op, mb + 1);
			assert_int_equal(parse_copy(len, mb), -KV_EBATCH);
			/* the header still comes back, to answer the right id */
			assert_int_equal(parse(len, mb, &r), -KV_EBATCH);
			assert_int_equal(r.hdr.req_id, REQ_ID);
			assert_int_equal(r.hdr.op, op);
			/* and a batch the limit allows still passes */
			if (mb < KV_PROTO_MAX_BATCH)
				assert_int_equal(parse_copy(len, mb + 1), 0);
		}
	}
	/* INSPECT with a batch limit of 1 */
	assert_int_equal(parse_copy(mk_keys(KV_OP_INSPECT, 1), 1), 0);
}

static void test_count_over_hard_cap(void **state)
{
	static const uint32_t mbs[] = {
		KV_PROTO_MAX_BATCH, KV_PROTO_MAX_BATCH + 1, 4096, UINT32_MAX,
	};

	for (size_t o = 0; o < KV_ARRAY_SIZE(batch_ops); o++) {
		unsigned op = batch_ops[o];

		if (op == KV_OP_INSPECT)
			continue;
		for (size_t m = 0; m < KV_ARRAY_SIZE(mbs); m++) {
			assert_int_equal(parse_copy(mk_batch(op, KV_PROTO_MAX_BATCH),
						    mbs[m]), 0);
			assert_int_equal(parse_copy(mk_batch(op, KV_PROTO_MAX_BATCH + 1),
						    mbs[m]), -KV_EBATCH);
			assert_int_equal(parse_copy(mk_batch(op, MAX_ITEMS), mbs[m]),
					 -KV_EBATCH);
		}
	}
	for (size_t m = 0; m < KV_ARRAY_SIZE(mbs); m++) {
		assert_int_equal(parse_copy(mk_ls(KV_PROTO_MAX_BATCH), mbs[m]), 0);
		assert_int_equal(parse_copy(mk_ls(KV_PROTO_MAX_BATCH + 1), mbs[m]),
				 -KV_EBATCH);
		assert_int_equal(parse_copy(mk_ls(UINT32_MAX), mbs[m]), -KV_EBATCH);
	}
}

/* ---- framing ----------------------------------------------------------- */

/* Every proper prefix of every valid frame fails, and fails cleanly. */
static void test_truncated(void **state)
{
	for (unsigned i = 0; i < N_VALID; i++) {
		size_t len = mk_valid(i);

		for (size_t p = 0; p < len; p++)
			assert_int_equal(parse_copy(p, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	}
}

static void test_garbage_after_frame(void **state)
{
	static const size_t extra[] = { 1, 7, 8, 16, HDR_LEN, 4096 };

	for (unsigned i = 0; i < N_VALID; i++) {
		for (size_t e = 0; e < KV_ARRAY_SIZE(extra); e++) {
			size_t len = mk_valid(i);

			if (len + extra[e] > sizeof(frame_words))
				continue;
			memset(frame + len, 0xa5, extra[e]);
			assert_int_equal(parse_copy(len + extra[e], KV_PROTO_MAX_BATCH),
					 -KV_EPROTO);
			memset(frame + len, 0, extra[e]);
			assert_int_equal(parse_copy(len + extra[e], KV_PROTO_MAX_BATCH),
					 -KV_EPROTO);
		}
		/* two whole frames back to back are not one frame */
		{
			size_t len = mk_valid(i);

			if (2 * len <= sizeof(frame_words)) {
				memcpy(frame + len, frame, len);
				assert_int_equal(parse_copy(2 * len, KV_PROTO_MAX_BATCH),
						 -KV_EPROTO);
			}
		}
	}
}

static void test_reply_flag(void **state)
{
	static const uint16_t flags[] = { KV_WIRE_REPLY, 1 << 1, 1 << 15, 0xffff };

	for (unsigned i = 0; i < N_VALID; i++) {
		for (size_t f = 0; f < KV_ARRAY_SIZE(flags); f++) {
			size_t len = mk_valid(i);

			hdr()->flags = flags[f];
			assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EPROTO);
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		}
	}
}

static void test_nonzero_status(void **state)
{
	static const int32_t status[] = { 1, -1, KV_EPROTO, -KV_EPROTO, INT32_MIN,
					  INT32_MAX };

	for (unsigned i = 0; i < N_VALID; i++) {
		for (size_t s = 0; s < KV_ARRAY_SIZE(status); s++) {
			size_t len = mk_valid(i);

			hdr()->status = status[s];
			assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EPROTO);
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		}
	}
}

static void test_bad_op(void **state)
{
	static const uint16_t ops[] = { KV_OP_ERROR, KV_OP_MAX, KV_OP_MAX + 1,
					0x100, 0x7fff, 0xffff };

	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++) {
		/* each valid body under the bad op */
		for (unsigned v = 0; v < N_VALID; v++) {
			size_t len = mk_valid(v);

			hdr()->op = ops[i];
			assert_int_equal(check_hdr(KV_PROTO_MAX_MSG), -KV_EPROTO);
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		}
	}
	assert_string_equal(kv_proto_op_name(KV_OP_ERROR), "error");
	assert_string_equal(kv_proto_op_name(KV_OP_PING), "ping");
	assert_string_equal(kv_proto_op_name(KV_OP_TENANTS), "tenants");
	for (unsigned op = 0; op < KV_OP_MAX; op++)
		assert_string_not_equal(kv_proto_op_name(op), "unknown");
	assert_string_equal(kv_proto_op_name(KV_OP_MAX), "unknown");
	assert_string_equal(kv_proto_op_name(0xffff), "unknown");
	assert_string_equal(kv_proto_op_name(UINT32_MAX), "unknown");
}

/* On any error the header comes back, so the daemon answers the right id. */
static void test_error_keeps_header(void **state)
{
	struct kv_req r;
	size_t len;

	len = mk_keys(KV_OP_LOOKUP, 3);
	hdr()->count = 4;
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), -KV_EPROTO);
	assert_int_equal(r.hdr.req_id, REQ_ID);
	assert_int_equal(r.hdr.op, KV_OP_LOOKUP);
	assert_int_equal(r.hdr.count, 4);

	mk(KV_OP_PING, 0, 0);
	hdr()->len = 0xffffffff;
	assert_int_equal(parse(HDR_LEN, KV_PROTO_MAX_BATCH, &r), -KV_EMSGSIZE);
	assert_int_equal(r.hdr.req_id, REQ_ID);
	assert_int_equal(r.hdr.len, 0xffffffff);

	mk(0x1234, 0, 0);
	assert_int_equal(parse(HDR_LEN, KV_PROTO_MAX_BATCH, &r), -KV_EPROTO);
	assert_int_equal(r.hdr.req_id, REQ_ID);
	assert_int_equal(r.hdr.op, 0x1234);

	len = mk_ns("a\0b", 3);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), -KV_EPROTO);
	assert_int_equal(r.hdr.req_id, REQ_ID);
	assert_int_equal(r.hdr.op, KV_OP_NS_REGISTER);
}

/* ---- each op's own checks ---------------------------------------------- */

static void test_hello_fields(void **state)
{
	size_t len = mk_hello();

	hdr()->count = 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->count = sizeof(struct kv_wire_hello);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_hello();
	hdr()->len -= 8;
	assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len += 16;
	assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len = 0;
	assert_int_equal(parse_copy(HDR_LEN, KV_PROTO_MAX_BATCH), -KV_EPROTO);
}

/* NS_LOOKUP and NS_DROP take a name as NS_REGISTER does, never a model;
 * NS_LIST a cursor and a page limit. */
static void test_ns_ops_fields(void **state)
{
	static const unsigned ops[] = { KV_OP_NS_LOOKUP, KV_OP_NS_DROP };
	struct kv_wire_ns_list *q;
	struct kv_req r;
	size_t len;

	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++) {
		len = mk_ns("llama3-8b", 9);
		hdr()->op = (uint16_t)ops[i];
		assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
		assert_int_equal(r.u.ns_name.len, 9);
		assert_memory_equal(r.u.ns_name.name, "llama3-8b", 9);
		assert_null(r.u.ns_name.model);
		len = mk(ops[i], 5, 8 + sizeof(struct kv_wire_ns_model));
		memcpy(body(), "model", 5);
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		len = mk(ops[i], 0, 8);
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		len = mk_ns("a\0b", 3);
		hdr()->op = (uint16_t)ops[i];
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	}
	assert_string_equal(kv_proto_op_name(KV_OP_NS_LOOKUP), "ns_lookup");
	assert_string_equal(kv_proto_op_name(KV_OP_NS_LIST), "ns_list");
	assert_string_equal(kv_proto_op_name(KV_OP_NS_DROP), "ns_drop");

	len = mk(KV_OP_NS_LIST, 0, sizeof(*q));
	q = (struct kv_wire_ns_list *)body();
	q->cursor = 12;
	q->limit = KV_PROTO_NS_PAGE;
	assert_int_equal(parse(len, 1, &r), 0);	/* not bound by max_batch */
	assert_int_equal(r.u.ns_list->cursor, 12);
	q->limit = KV_PROTO_NS_PAGE + 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EBATCH);
	q->limit = 0;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EBATCH);
	q->limit = 1;
	hdr()->count = 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk(KV_OP_NS_LIST, 0, 16);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
}

static void test_ns_register_fields(void **state)
{
	char name[KV_PROTO_NS_MAX + 9];
	size_t len;

	memset(name, 'n', sizeof(name));

	/* count 0, with and without a body */
	len = mk(KV_OP_NS_REGISTER, 0, 0);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk(KV_OP_NS_REGISTER, 0, 8);
	memcpy(body(), name, 8);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);

	/* over the name limit: 256 (its padded length is also 256) and more */
	len = mk_ns(name, KV_PROTO_NS_MAX + 1);
	assert_int_equal(hdr()->len, 256);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, KV_PROTO_NS_MAX + 9);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, 8);
	hdr()->count = UINT32_MAX;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->count = 1u << 31;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);

	/* a NUL anywhere inside the name, but not in its padding */
	for (size_t n = 1; n <= 17; n++) {
		for (size_t at = 0; at < n; at++) {
			len = mk_ns(name, n);
			body()[at] = '\0';
			assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		}
	}
	len = mk_ns(name, KV_PROTO_NS_MAX);
	body()[KV_PROTO_NS_MAX - 1] = '\0';
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);

	/* padding that does not match the count */
	len = mk_ns(name, 5);				/* pads to 8 */
	hdr()->len = 16;
	assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, 9);				/* pads to 16 */
	hdr()->len = 8;
	assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, 8);				/* exact: no padding */
	hdr()->len = 16;
	assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, 16);
	hdr()->count = 8;				/* 8 bytes too many */
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ns(name, 255);
	hdr()->count = 247;				/* pads to 248, not 256 */
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->count = 248;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->count = 249;				/* 249..255 pad to 256 */
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);
}

/* SCORE, POLICY and NS_REGISTER's optional cost model (issue 3). */
static void test_score_policy_model(void **state)
{
	struct kv_wire_ns_model *m;
	struct kv_wire_policy *pol;
	struct kv_req r;
	float *sc;
	size_t len;

	/* SCORE: keys, then float32 scores padded to 8 */
	len = mk(KV_OP_SCORE, 3, kv_proto_score_len(3));
	((struct kv_wire_keys *)body())->ns = NS_ID;
	sc = (float *)(body() + kv_proto_keys_len(3));
	sc[0] = 0.5f;
	sc[2] = 1.0f;
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	assert_int_equal(r.u.score.ns, NS_ID);
	assert_ptr_equal(r.u.score.keys, body() + sizeof(struct kv_wire_keys));
	assert_ptr_equal(r.u.score.scores, sc);
	assert_true(r.u.score.scores[2] == 1.0f);
	assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len -= 8;	/* scores missing */
	assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk(KV_OP_SCORE, 8, kv_proto_score_len(8));
	assert_int_equal(parse_copy(len, 7), -KV_EBATCH);
	len = mk(KV_OP_SCORE, 2, kv_proto_keys_len(2) + 8);	/* exactly padded */
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);

	/* POLICY */
	len = mk(KV_OP_POLICY, 0, sizeof(*pol));
	pol = (struct kv_wire_policy *)body();
	pol->tier = KV_TIER_DRAM;
	pol->set = 1;
	memcpy(pol->name, "gdsf", 4);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	assert_ptr_equal(r.u.policy, pol);
	pol->set = 2;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	pol->set = 0;
	hdr()->count = 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk(KV_OP_POLICY, 0, sizeof(*pol) + 8);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);

	/* NS_REGISTER with a model after the padded name, or without */
	len = mk(KV_OP_NS_REGISTER, 5, 8 + sizeof(*m));
	memcpy(body(), "llama", 5);
	m = (struct kv_wire_ns_model *)(body() + 8);
	m->hidden = 2048;
	m->a = 2;
	m->b = 26;
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	assert_ptr_equal(r.u.ns_name.model, m);
	assert_int_equal(r.u.ns_name.len, 5);
	len = mk_ns("llama", 5);
	assert_int_equal(parse(len, KV_PROTO_MAX_BATCH, &r), 0);
	assert_null(r.u.ns_name.model);
	len = mk(KV_OP_NS_REGISTER, 5, 8 + 16);	/* a truncated model */
	memcpy(body(), "llama", 5);
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
}

static void test_inspect_count(void **state)
{
	static const uint32_t counts[] = { 0, 2, 3, KV_PROTO_MAX_BATCH };

	for (size_t i = 0; i < KV_ARRAY_SIZE(counts); i++) {
		size_t len = mk_keys(KV_OP_INSPECT, counts[i]);

		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	}
}

static void test_alloc_flags(void **state)
{
	/* KV_ALLOC_HBM (bit 1) is a known flag; every other unknown bit is refused. */
	size_t len0 = mk_alloc(5, KV_ALLOC_PARENT | KV_ALLOC_HBM);

	assert_int_equal(parse_copy(len0, KV_PROTO_MAX_BATCH), 0);
	for (unsigned bit = 2; bit < 32; bit++) {
		size_t len = mk_alloc(5, KV_ALLOC_PARENT);
		struct kv_wire_alloc *it =
			(struct kv_wire_alloc *)(body() + sizeof(struct kv_wire_keys));

		it[0].flags |= 1u << bit;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		it[0].flags = 0;
		it[4].flags = 1u << bit;		/* in the last item only */
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		it[4].flags = KV_ALLOC_PARENT;
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), 0);
	}
	assert_int_equal(parse_copy(mk_alloc(3, UINT32_MAX), KV_PROTO_MAX_BATCH),
			 -KV_EPROTO);
}

static void test_ls_fields(void **state)
{
	static const uint32_t mbs[] = { 1, 7, KV_PROTO_MAX_BATCH };
	size_t len;

	for (size_t m = 0; m < KV_ARRAY_SIZE(mbs); m++) {
		assert_int_equal(parse_copy(mk_ls(0), mbs[m]), -KV_EBATCH);
		assert_int_equal(parse_copy(mk_ls(mbs[m] + 1), mbs[m]), -KV_EBATCH);
		assert_int_equal(parse_copy(mk_ls(UINT32_MAX), mbs[m]), -KV_EBATCH);
		assert_int_equal(parse_copy(mk_ls(mbs[m]), mbs[m]), 0);
	}
	len = mk_ls(4);
	hdr()->count = 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_ls(4);
	hdr()->len -= 8;
	assert_int_equal(parse_copy(len - 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len += 16;
	assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len = 0;
	assert_int_equal(parse_copy(HDR_LEN, KV_PROTO_MAX_BATCH), -KV_EPROTO);
}

static void test_flush_fields(void **state)
{
	size_t len;

	for (unsigned bit = 1; bit < 32; bit++) {
		len = mk_flush(1u << bit);
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
		len = mk_flush(KV_FLUSH_DROP | 1u << bit);
		assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	}
	len = mk_flush(0);
	hdr()->count = 1;
	assert_int_equal(parse_copy(len, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	len = mk_flush(0);
	hdr()->len = 16;
	assert_int_equal(parse_copy(len + 8, KV_PROTO_MAX_BATCH), -KV_EPROTO);
	hdr()->len = 0;
	assert_int_equal(parse_copy(HDR_LEN, KV_PROTO_MAX_BATCH), -KV_EPROTO);
}

static void test_stats_ping_body(void **state)
{
	static const unsigned ops[] = { KV_OP_STATS, KV_OP_PING, KV_OP_TENANTS };

	for (size_t i = 0; i < KV_ARRAY_SIZE(ops); i++) {
		assert_int_equal(parse_copy(mk(ops[i], 0, 8), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], 1, 8), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], 0, 48), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], 1, 0), KV_PROTO_MAX_BATCH),
				 -KV_EPROTO);
		assert_int_equal(parse_copy(mk(ops[i], UINT32_MAX, 0),
					    KV_PROTO_MAX_BATCH), -KV_EPROTO);
	}
}

/* ---- mutations --------------------------------------------------------- */

/*
 * Random byte flips and header-field changes of the valid frames, decoded
 * from exact copies: whatever comes back is one of the documented errors,
 * and a success describes exactly the bytes it was given.
 */
static void test_mutations(void **state)
{
	unsigned ok = 0;

	rng_state = 6;
	for (unsigned iter = 0; iter < 100000; iter++) {
		size_t len = mk_small(iter % N_SMALL);
		uint32_t mb = rnd() % 2 ? KV_PROTO_MAX_BATCH : 1 + rnd() % 16;
		unsigned flips = 1 + rnd() % 4;
		struct kv_req r;
		int ret;

		for (unsigned f = 0; f < flips; f++) {
			/* half the flips in the header and the first body word */
			size_t span = rnd() % 2 && len > HDR_LEN + 8 ? HDR_LEN + 8 : len;
			size_t at = rnd() % span;

			frame[at] ^= (char)(1u << (rnd() % 8));
		}
		if (rnd() % 8 == 0)
			len -= rnd() % (len + 1);
		ret = parse_copy(len, mb);
		assert_true(ret == 0 || ret == -KV_EPROTO || ret == -KV_EBATCH ||
			    ret == -KV_EMSGSIZE);
		if (ret)
			continue;
		ok++;
		assert_int_equal(parse(len, mb, &r), 0);
		assert_int_equal(r.hdr.len, len - HDR_LEN);
		assert_int_equal(r.hdr.flags, 0);
		assert_int_equal(r.hdr.status, 0);
		assert_true(r.hdr.op > KV_OP_ERROR && r.hdr.op < KV_OP_MAX);
		switch (r.hdr.op) {
		case KV_OP_NS_REGISTER:
		case KV_OP_NS_LOOKUP:
		case KV_OP_NS_DROP:
			assert_true(r.u.ns_name.len >= 1 &&
				    r.u.ns_name.len <= KV_PROTO_NS_MAX);
			assert_null(memchr(r.u.ns_name.name, 0, r.u.ns_name.len));
			assert_true(r.hdr.op == KV_OP_NS_REGISTER || !r.u.ns_name.model);
			break;
		case KV_OP_NS_LIST:
			assert_int_equal(r.hdr.len, sizeof(struct kv_wire_ns_list));
			assert_true(r.u.ns_list->limit >= 1 &&
				    r.u.ns_list->limit <= KV_PROTO_NS_PAGE);
			break;
		case KV_OP_HELLO:
		case KV_OP_LS:
		case KV_OP_FLUSH:
		case KV_OP_STATS:
		case KV_OP_PING:
		case KV_OP_TENANTS:
			break;
		case KV_OP_BW_REPORT:
		case KV_OP_PLAN_REPORT:
			assert_int_equal(r.hdr.count, 0);
			assert_int_equal(r.hdr.len, 24);
			break;
		default:
			assert_true(r.hdr.count <= mb);
			assert_int_equal(r.hdr.len, r.hdr.op == KV_OP_ALLOC ?
					 kv_proto_alloc_len(r.hdr.count) :
					 kv_proto_keys_len(r.hdr.count));
			break;
		}
	}
	/* most flips land in key or name bytes the decoder does not judge */
	assert_true(ok > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_hello),
		cmocka_unit_test(test_score_policy_model),
		cmocka_unit_test(test_valid_ns_register),
		cmocka_unit_test(test_valid_key_ops),
		cmocka_unit_test(test_valid_inspect),
		cmocka_unit_test(test_valid_alloc),
		cmocka_unit_test(test_valid_ls),
		cmocka_unit_test(test_valid_flush),
		cmocka_unit_test(test_valid_stats_ping),
		cmocka_unit_test(test_valid_reports),
		cmocka_unit_test(test_valid_table),
		cmocka_unit_test(test_len_over_max_msg),
		cmocka_unit_test(test_len_not_multiple_of_8),
		cmocka_unit_test(test_len_count_mismatch),
		cmocka_unit_test(test_count_overflow),
		cmocka_unit_test(test_count_over_max_batch),
		cmocka_unit_test(test_count_over_hard_cap),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage_after_frame),
		cmocka_unit_test(test_reply_flag),
		cmocka_unit_test(test_nonzero_status),
		cmocka_unit_test(test_bad_op),
		cmocka_unit_test(test_error_keeps_header),
		cmocka_unit_test(test_hello_fields),
		cmocka_unit_test(test_ns_register_fields),
		cmocka_unit_test(test_ns_ops_fields),
		cmocka_unit_test(test_inspect_count),
		cmocka_unit_test(test_alloc_flags),
		cmocka_unit_test(test_ls_fields),
		cmocka_unit_test(test_flush_fields),
		cmocka_unit_test(test_stats_ping_body),
		cmocka_unit_test(test_report_body),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
