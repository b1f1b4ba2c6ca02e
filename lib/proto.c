/*
 * proto.c - checks and decodes request frames (the daemon's parser, also
 * driven directly by tests/fuzz/fuzz_proto.c).
 *
 * Every length is compared against what the op's layout implies for the
 * count in the header, computed in size_t from a count already capped, so
 * no arithmetic here can overflow. The body pointers handed out are into
 * the caller's 8-byte-aligned buffer; every wire struct's size is a multiple
 * of 8, so they are aligned too.
 */
#include <errno.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/proto.h"

static const char *const op_names[KV_OP_MAX] = {
	[KV_OP_ERROR]		= "error",
	[KV_OP_HELLO]		= "hello",
	[KV_OP_NS_REGISTER]	= "ns_register",
	[KV_OP_LOOKUP]		= "lookup",
	[KV_OP_ALLOC]		= "alloc",
	[KV_OP_COMMIT]		= "commit",
	[KV_OP_ABORT]		= "abort",
	[KV_OP_PIN]		= "pin",
	[KV_OP_RELEASE]		= "release",
	[KV_OP_STATS]		= "stats",
	[KV_OP_LS]		= "ls",
	[KV_OP_INSPECT]		= "inspect",
	[KV_OP_EVICT]		= "evict",
	[KV_OP_FLUSH]		= "flush",
	[KV_OP_PING]		= "ping",
	[KV_OP_SCORE]		= "score",
	[KV_OP_POLICY]		= "policy",
	[KV_OP_PREFETCH]	= "prefetch",
	[KV_OP_NS_LOOKUP]	= "ns_lookup",
	[KV_OP_NS_LIST]		= "ns_list",
	[KV_OP_NS_DROP]		= "ns_drop",
	[KV_OP_TENANTS]		= "tenants",
	[KV_OP_BW_REPORT]	= "bw_report",
	[KV_OP_PLAN_REPORT]	= "plan_report",
	[KV_OP_CLUSTER]		= "cluster",
};

const char *kv_proto_op_name(unsigned op)
{
	return op < KV_OP_MAX ? op_names[op] : "unknown";
}

int kv_proto_check_hdr(const void *buf, uint32_t max_msg, struct kv_wire_hdr *out)
{
	struct kv_wire_hdr h;

	memcpy(&h, buf, sizeof(h));
	*out = h;
	if (max_msg > KV_PROTO_MAX_MSG)
		max_msg = KV_PROTO_MAX_MSG;
	if (h.len > max_msg)
		return -KV_EMSGSIZE;
	if (h.flags != 0 || h.status != 0)
		return -KV_EPROTO;	/* a request, not a reply */
	if (h.op == KV_OP_ERROR || h.op >= KV_OP_MAX)
		return -KV_EPROTO;
	if (h.len % 8)
		return -KV_EPROTO;	/* bodies are arrays of 8-byte multiples */
	return 0;
}

/* Key-list ops: a kv_wire_keys header and count keys. */
static int parse_keys(const char *body, size_t len, uint32_t count,
		      uint32_t max_batch, struct kv_req *out)
{
	struct kv_wire_keys k;

	if (count > max_batch)
		return -KV_EBATCH;
	if (len != kv_proto_keys_len(count))
		return -KV_EPROTO;
	memcpy(&k, body, sizeof(k));
	out->u.keys.ns = k.ns;
	out->u.keys.flags = k.flags;
	out->u.keys.keys = (const struct kv_wire_key *)(body + sizeof(k));
	return 0;
}

static int parse_alloc(const char *body, size_t len, uint32_t count,
		       uint32_t max_batch, struct kv_req *out)
{
	const struct kv_wire_alloc *items;
	struct kv_wire_keys k;

	if (count > max_batch)
		return -KV_EBATCH;
	if (len != kv_proto_alloc_len(count))
		return -KV_EPROTO;
	memcpy(&k, body, sizeof(k));
	items = (const struct kv_wire_alloc *)(body + sizeof(k));
	for (uint32_t i = 0; i < count; i++)
		if (items[i].flags & ~(uint32_t)(KV_ALLOC_PARENT | KV_ALLOC_HBM))
			return -KV_EPROTO;
	out->u.alloc.ns = k.ns;
	out->u.alloc.items = items;
	return 0;
}

int kv_proto_parse(const void *buf, size_t len, uint32_t max_batch,
		   struct kv_req *out)
{
	const char *body = (const char *)buf + sizeof(struct kv_wire_hdr);
	struct kv_wire_hdr *h = &out->hdr;
	size_t blen;
	int ret;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*h))
		return -KV_EPROTO;
	ret = kv_proto_check_hdr(buf, KV_PROTO_MAX_MSG, h);
	if (ret)
		return ret;
	blen = len - sizeof(*h);
	if (h->len != blen)
		return -KV_EPROTO;
	if (max_batch > KV_PROTO_MAX_BATCH)
		max_batch = KV_PROTO_MAX_BATCH;

	switch (h->op) {
	case KV_OP_HELLO:
		if (h->count != 0 || blen != sizeof(struct kv_wire_hello))
			return -KV_EPROTO;
		out->u.hello = (const struct kv_wire_hello *)body;
		return 0;
	case KV_OP_NS_LOOKUP:
	case KV_OP_NS_DROP:
	case KV_OP_NS_REGISTER:
		if (h->count == 0 || h->count > KV_PROTO_NS_MAX)
			return -KV_EPROTO;
		if (h->op == KV_OP_NS_REGISTER &&
		    blen == kv_proto_pad8(h->count) + sizeof(struct kv_wire_ns_model))
			out->u.ns_name.model = (const struct kv_wire_ns_model *)
				(body + kv_proto_pad8(h->count));
		else if (blen != kv_proto_pad8(h->count))
			return -KV_EPROTO;
		if (memchr(body, '\0', h->count))
			return -KV_EPROTO;
		out->u.ns_name.name = body;
		out->u.ns_name.len = h->count;
		return 0;
	case KV_OP_SCORE:
		if (h->count > max_batch)
			return -KV_EBATCH;
		if (blen != kv_proto_score_len(h->count))
			return -KV_EPROTO;
		ret = parse_keys(body, kv_proto_keys_len(h->count), h->count,
				 max_batch, out);
		if (ret)
			return ret;
		out->u.score.scores = (const float *)(body + kv_proto_keys_len(h->count));
		return 0;
	case KV_OP_POLICY:
		if (h->count != 0 || blen != sizeof(struct kv_wire_policy))
			return -KV_EPROTO;
		out->u.policy = (const struct kv_wire_policy *)body;
		if (out->u.policy->set > 1)
			return -KV_EPROTO;
		return 0;
	case KV_OP_INSPECT:
		if (h->count != 1)
			return -KV_EPROTO;
		return parse_keys(body, blen, h->count, max_batch, out);
	case KV_OP_LOOKUP:
	case KV_OP_COMMIT:
	case KV_OP_ABORT:
	case KV_OP_PIN:
	case KV_OP_RELEASE:
	case KV_OP_EVICT:
	case KV_OP_PREFETCH:
		return parse_keys(body, blen, h->count, max_batch, out);
	case KV_OP_ALLOC:
		return parse_alloc(body, blen, h->count, max_batch, out);
	case KV_OP_STATS:
	case KV_OP_PING:
	case KV_OP_TENANTS:
	case KV_OP_CLUSTER:
		if (h->count != 0 || blen != 0)
			return -KV_EPROTO;
		return 0;
	case KV_OP_LS:
		if (h->count != 0 || blen != sizeof(struct kv_wire_ls))
			return -KV_EPROTO;
		out->u.ls = (const struct kv_wire_ls *)body;
		if (out->u.ls->limit == 0 || out->u.ls->limit > max_batch)
			return -KV_EBATCH;
		return 0;
	case KV_OP_NS_LIST:
		if (h->count != 0 || blen != sizeof(struct kv_wire_ns_list))
			return -KV_EPROTO;
		out->u.ns_list = (const struct kv_wire_ns_list *)body;
		if (out->u.ns_list->limit == 0 || out->u.ns_list->limit > KV_PROTO_NS_PAGE)
			return -KV_EBATCH;
		return 0;
	case KV_OP_FLUSH:
		if (h->count != 0 || blen != sizeof(struct kv_wire_flush))
			return -KV_EPROTO;
		out->u.flush = (const struct kv_wire_flush *)body;
		if (out->u.flush->flags & ~(uint32_t)KV_FLUSH_DROP)
			return -KV_EPROTO;
		return 0;
	/* Their values are the handler's to judge: a wrong one is answered
	 * with a status, and the connection stays. */
	case KV_OP_BW_REPORT:
		if (h->count != 0 || blen != sizeof(struct kv_wire_bw_report))
			return -KV_EPROTO;
		out->u.bw = (const struct kv_wire_bw_report *)body;
		return 0;
	case KV_OP_PLAN_REPORT:
		if (h->count != 0 || blen != sizeof(struct kv_wire_plan_report))
			return -KV_EPROTO;
		out->u.plan = (const struct kv_wire_plan_report *)body;
		return 0;
	default:
		return -KV_EPROTO;
	}
}
