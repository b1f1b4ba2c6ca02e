/*
 * test_proto.c - table tests of the request decoder (lib/proto.c): what it
 * accepts.
 *
 * Every op's valid frame, checked for the pointers and counts it decodes
 * to, then each op's own field checks (the HELLO, namespace, INSPECT,
 * ALLOC, LS, FLUSH, STATS and PING and report fields: what passes and what
 * is refused). The classic attacks (TESTING.md plan 6) are in
 * test_proto_attacks.c; the frame builders both use are in proto_fx.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/errors.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tests/unit/proto_fx.h"

/* The ops that carry a kv_wire_keys header and keys (INSPECT: exactly one). */
static const unsigned key_ops[] = {
	KV_OP_LOOKUP, KV_OP_COMMIT, KV_OP_ABORT, KV_OP_PIN, KV_OP_RELEASE,
	KV_OP_EVICT,
};

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
	static const unsigned ops[] = { KV_OP_STATS, KV_OP_PING, KV_OP_TENANTS,
					KV_OP_CLUSTER };
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
	static const unsigned ops[] = { KV_OP_STATS, KV_OP_PING, KV_OP_TENANTS,
					KV_OP_CLUSTER };

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
		cmocka_unit_test(test_hello_fields),
		cmocka_unit_test(test_ns_register_fields),
		cmocka_unit_test(test_ns_ops_fields),
		cmocka_unit_test(test_inspect_count),
		cmocka_unit_test(test_alloc_flags),
		cmocka_unit_test(test_ls_fields),
		cmocka_unit_test(test_flush_fields),
		cmocka_unit_test(test_stats_ping_body),
		cmocka_unit_test(test_report_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
