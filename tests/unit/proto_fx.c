/*
 * proto_fx.c - what the request decoder's tests share (test_proto.c,
 * test_proto_attacks.c): the frame under test, builders that write one
 * valid frame of each op into it, and decoding it in place or from an
 * exactly-sized heap copy.
 *
 * Frames that must fail are decoded from the copy, so a decoder that reads
 * past the end of a frame shows up under ASan; frames that must succeed
 * are decoded in place, so the returned pointers can be compared with the
 * frame's own addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/proto.h"
#include "tests/unit/proto_fx.h"

/* The frame under test; 8-byte aligned as the decoder requires. */
uint64_t frame_words[FRAME_BYTES / 8];
char *const frame = (char *)frame_words;

struct kv_wire_hdr *hdr(void)
{
	return (struct kv_wire_hdr *)frame_words;
}

char *body(void)
{
	return frame + HDR_LEN;
}

/* ---- frame builders: each returns the frame's length ------------------- */

size_t mk(unsigned op, uint32_t count, size_t blen)
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

size_t mk_hello(void)
{
	size_t len = mk(KV_OP_HELLO, 0, sizeof(struct kv_wire_hello));
	struct kv_wire_hello *h = (struct kv_wire_hello *)body();

	h->version = KV_PROTO_VERSION;
	h->pid = 42;
	memcpy(h->name, "test_proto", 10);
	return len;
}

size_t mk_ns(const char *name, size_t n)
{
	size_t len = mk(KV_OP_NS_REGISTER, (uint32_t)n, kv_proto_pad8(n));

	memcpy(body(), name, n);
	return len;
}

size_t mk_keys(unsigned op, uint32_t count)
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

size_t mk_alloc(uint32_t count, uint32_t flags)
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

size_t mk_ls(uint32_t limit)
{
	size_t len = mk(KV_OP_LS, 0, sizeof(struct kv_wire_ls));
	struct kv_wire_ls *ls = (struct kv_wire_ls *)body();

	ls->ns = KV_NS_ALL;
	ls->tier = KV_TIER_NONE;
	ls->limit = limit;
	return len;
}

size_t mk_flush(uint32_t flags)
{
	size_t len = mk(KV_OP_FLUSH, 0, sizeof(struct kv_wire_flush));
	struct kv_wire_flush *f = (struct kv_wire_flush *)body();

	f->tier = KV_TIER_NONE;
	f->flags = flags;
	return len;
}

size_t mk_bw(uint8_t tier, uint64_t bytes, uint64_t ns)
{
	size_t len = mk(KV_OP_BW_REPORT, 0, sizeof(struct kv_wire_bw_report));
	struct kv_wire_bw_report *b = (struct kv_wire_bw_report *)body();

	b->tier = tier;
	b->bytes = bytes;
	b->ns = ns;
	return len;
}

size_t mk_plan(uint32_t kind, uint64_t loaded, uint64_t computed)
{
	size_t len = mk(KV_OP_PLAN_REPORT, 0, sizeof(struct kv_wire_plan_report));
	struct kv_wire_plan_report *p = (struct kv_wire_plan_report *)body();

	p->kind = kind;
	p->tokens_loaded = loaded;
	p->tokens_computed = computed;
	return len;
}

/* One valid frame of each op (and a few batched ones), by index. */
size_t mk_valid(unsigned i)
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

/* ---- decoding ---------------------------------------------------------- */

/* Decode the frame in place (the pointers in *r point into it). */
int parse(size_t len, uint32_t max_batch, struct kv_req *r)
{
	return kv_proto_parse(frame, len, max_batch, r);
}

/*
 * Decode an exactly-sized heap copy of the frame's first len bytes (malloc
 * aligns to 16). On error the decoder must still have copied the header
 * out when len covered one.
 */
int parse_copy(size_t len, uint32_t max_batch)
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

int check_hdr(uint32_t max_msg)
{
	struct kv_wire_hdr h;
	int ret = kv_proto_check_hdr(frame, max_msg, &h);

	assert_memory_equal(&h, frame, HDR_LEN);
	return ret;
}
