/*
 * test_proto_attacks.c - the request decoder (lib/proto.c) against the
 * classic attacks (TESTING.md plan 6): lengths over the limit or not a
 * multiple of 8, lengths that disagree with the count, counts whose byte
 * size wraps in 32 bits, counts over the batch limit and over the hard
 * cap, every prefix of a valid frame, garbage after one, the reply flag or
 * a status on a request, unknown ops; then a deterministic mutation run.
 *
 * Frames that must fail are decoded from an exactly-sized heap copy
 * (proto_fx.c), so a decoder that reads past the end of a frame shows up
 * under ASan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tests/lib/rng.h"
#include "tests/unit/proto_fx.h"

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

#define N_SMALL 18	/* the valid frames but the two large ones (16, 17) */

static size_t mk_small(unsigned i)
{
	return mk_valid(i < 16 ? i : i + 2);
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
	assert_string_equal(kv_proto_op_name(KV_OP_CLUSTER), "cluster");
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
		case KV_OP_CLUSTER:
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
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
