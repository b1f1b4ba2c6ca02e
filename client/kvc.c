/*
 * kvc.c - libkvc's data calls: registering namespaces, lookup, pin and
 * release, get, put, and the alloc/commit/abort steps of a put, over the
 * connection of conn.c.
 *
 * Batches larger than the daemon's per-message limits are split here, so
 * callers may pass any n. Chunk bytes move by memcpy between the caller's
 * memory and the DRAM arena, which this process maps once at connect; every
 * offset the daemon hands out is checked against the mapping before a byte
 * is copied. A get's RELEASE is sent without waiting for its reply, which
 * the next exchange reads (conn.c).
 *
 * Also here: kvc_strerror(), and the checks that kvc.h mirrors lib/.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "client/kvc.h"
#include "client/kvc_int.h"
#include "lib/errors.h"
#include "lib/proto.h"

_Static_assert((int)KVC_EPROTO == (int)KV_EPROTO &&
	       (int)KVC_ECORRUPT == (int)KV_ECORRUPT &&
	       (int)KVC_ENOTIER == (int)KV_ENOTIER &&
	       (int)KVC_ENOPARENT == (int)KV_ENOPARENT &&
	       (int)KVC_EFORMAT == (int)KV_EFORMAT &&
	       (int)KVC_ETIMEDOUT == (int)KV_ETIMEDOUT &&
	       (int)KVC_EQUOTA == (int)KV_EQUOTA &&
	       (int)KVC_EREFUSED == (int)KV_EREFUSED && KV_EMAX == KV_EREFUSED + 1,
	       "kvc.h mirrors lib/errors.h");
_Static_assert((int)KVC_PLAN_LOADED == (int)KV_PLAN_LOADED &&
	       (int)KVC_PLAN_COMPUTED == (int)KV_PLAN_COMPUTED &&
	       (int)KVC_PLAN_BOTH == (int)KV_PLAN_BOTH, "kvc.h mirrors lib/proto.h");
_Static_assert(KVC_TIER_DRAM == KV_TIER_DRAM && KVC_TIER_NONE == KV_TIER_NONE &&
	       KVC_NS_ALL == KV_NS_ALL && KVC_MAX_BATCH == KV_PROTO_MAX_BATCH &&
	       (int)KVC_FLUSH_DROP == (int)KV_FLUSH_DROP, "kvc.h mirrors lib/proto.h");
_Static_assert(sizeof(((struct kvc_tenant *)0)->name) > KV_TENANT_NAME_BYTES &&
	       sizeof(((struct kvc_tenant *)0)->uids) / sizeof(uint32_t) ==
	       KV_TENANT_UIDS_SHOWN && KV_TIER_MAX == 3, "kvc_tenant mirrors kv_wire_tenant");
_Static_assert(sizeof(struct kvc_key) == sizeof(struct kv_wire_key),
	       "keys go on the wire as they are");
_Static_assert(KVC_NS_PAGE == KV_PROTO_NS_PAGE &&
	       sizeof(((struct kvc_ns_info *)0)->name) == KV_PROTO_NS_MAX + 1,
	       "kvc.h mirrors lib/proto.h");
_Static_assert(sizeof(((struct kvc_tier_stats *)0)->name) >
	       sizeof(((struct kv_wire_tier_stats *)0)->name) &&
	       sizeof(((struct kvc_tier_stats *)0)->policy) >
	       sizeof(((struct kv_wire_tier_stats *)0)->policy),
	       "room for the wire's NUL-padded names and a NUL");

const char *kvc_strerror(int err)
{
	return kv_strerror(err);
}

/* ---- namespaces -------------------------------------------------------------- */

/*
 * A request that carries a namespace name (NS_REGISTER, NS_LOOKUP,
 * NS_DROP), with NS_REGISTER's optional model; under the lock. Returns 0
 * with the reply in c->rep (checked to be len bytes), or an error.
 */
int kvci_ns_name_rpc(struct kvc *c, unsigned op, const char *name,
		     const struct kv_wire_ns_model *model, size_t len)
{
	size_t n = strlen(name);
	size_t blen = kv_proto_pad8(n) + (model ? sizeof(*model) : 0);
	struct kv_wire_hdr h;
	char *body;
	int ret;

	body = kvci_req_body(c, blen);
	if (!body)
		return -ENOMEM;
	memcpy(body, name, n);
	if (model)
		memcpy(body + kv_proto_pad8(n), model, sizeof(*model));
	ret = kvci_rpc(c, op, (uint32_t)n, blen, &h);
	if (!ret && h.len != len) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	return ret;
}

bool kvci_ns_name_ok(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	return len > 0 && len <= KV_PROTO_NS_MAX;
}

static int ns_register(struct kvc *c, const char *name,
		       const struct kv_wire_ns_model *model, uint32_t *ns)
{
	int ret;

	if (!kvci_ns_name_ok(name) || !ns)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_ns_name_rpc(c, KV_OP_NS_REGISTER, name, model,
			       sizeof(struct kv_wire_ns_reply));
	if (!ret)
		*ns = ((const struct kv_wire_ns_reply *)c->rep)->ns;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ns_lookup(struct kvc *c, const char *name, uint32_t *ns)
{
	int ret;

	if (!kvci_ns_name_ok(name) || !ns)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_ns_name_rpc(c, KV_OP_NS_LOOKUP, name, NULL, sizeof(struct kv_wire_ns_reply));
	if (!ret)
		*ns = ((const struct kv_wire_ns_reply *)c->rep)->ns;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_ns_register(struct kvc *c, const char *name, uint32_t *ns)
{
	return ns_register(c, name, NULL, ns);
}

int kvc_ns_register_model(struct kvc *c, const char *name, uint32_t hidden,
			  double a, double b, uint32_t *ns)
{
	struct kv_wire_ns_model m = { .hidden = hidden, .a = a, .b = b };

	if (!hidden || !(a >= 0) || !(b >= 0))
		return -EINVAL;
	return ns_register(c, name, &m, ns);
}

/* ---- reading ------------------------------------------------------------------- */

int kvc_lookup(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, uint8_t *tiers)
{
	uint32_t step;
	int leading = 0, ret = 0;
	bool run = true;

	if (n > INT32_MAX || (n && !keys))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = kvci_batch_of(c, sizeof(struct kv_wire_key));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		const struct kv_wire_lookup_reply *r;
		struct kv_wire_hdr h;

		ret = kvci_keys_req(c, ns, keys + i, m);
		if (!ret)
			ret = kvci_rpc(c, KV_OP_LOOKUP, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != kv_proto_lookup_reply_len(m))) {
			kvci_conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			goto out;
		r = (const struct kv_wire_lookup_reply *)c->rep;
		if (r->leading > m) {
			kvci_conn_break(c);
			ret = -KVC_EPROTO;
			goto out;
		}
		if (tiers)
			memcpy(tiers + i, r + 1, m);
		if (run)
			leading += r->leading;
		run = run && r->leading == m;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : leading;
}

/* A reply's (tier, offset, bytes) as a pointer in this process, or NULL
 * for a tier it has not mapped; -KVC_EPROTO (connection broken) when the
 * daemon names bytes outside the arena. */
static int arena_ptr(struct kvc *c, uint8_t tier, uint64_t off, uint64_t bytes,
		     char **ptr)
{
	char *base = tier == KV_TIER_DRAM ? c->dram : tier == KV_TIER_HBM ? c->hbm : NULL;
	uint64_t size = tier == KV_TIER_DRAM ? c->dram_bytes : c->hbm_info.bytes;

	*ptr = NULL;
	if (!base)
		return 0;
	if (off > size || bytes > size - off) {
		kvci_conn_break(c);
		return -KVC_EPROTO;
	}
	*ptr = base + off;
	return 0;
}

/* PIN without taking the lock; the caller holds it. */
static int pin_locked(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		      size_t n, struct kvc_loc *locs, uint32_t flags)
{
	uint32_t step = kvci_batch_of(c, sizeof(struct kv_wire_key));

	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		const struct kv_wire_pin_reply *r;
		struct kv_wire_hdr h;
		char *p;
		int ret;

		ret = kvci_keys_req_flags(c, ns, keys + i, m, flags);
		if (!ret)
			ret = kvci_rpc(c, KV_OP_PIN, m, kv_proto_keys_len(m), &h);
		if (!ret && (h.count != m || h.len != m * sizeof(*r))) {
			kvci_conn_break(c);
			ret = -KVC_EPROTO;
		}
		if (ret)
			return ret;
		r = (const struct kv_wire_pin_reply *)c->rep;
		for (uint32_t j = 0; j < m; j++) {
			struct kvc_loc *l = &locs[i + j];

			memset(l, 0, sizeof(*l));
			l->status = -r[j].status;
			l->tier = r[j].tier;
			if (r[j].status)
				continue;
			l->offset = r[j].offset;
			l->bytes = r[j].bytes;
			ret = arena_ptr(c, r[j].tier, r[j].offset, r[j].bytes, &p);
			if (ret)
				return ret;
			l->ptr = p;
		}
	}
	return 0;
}

int kvc_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	    struct kvc_loc *locs)
{
	int ret;

	if (n && (!keys || !locs))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = pin_locked(c, ns, keys, n, locs, 0);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvci_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	     struct kvc_loc *locs, unsigned flags)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = pin_locked(c, ns, keys, n, locs, flags);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_release(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_status_op(c, KV_OP_RELEASE, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : 0;
}

int kvc_get_batch(struct kvc *c, uint32_t ns, struct kvc_get_desc *d, size_t n)
{
	uint32_t step;
	int copied = 0, ret = 0;

	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = kvci_batch_of(c, sizeof(struct kv_wire_pin_reply));
	for (size_t i = 0; i < n && !ret; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kvc_key *keys = c->keys, *held = c->held;
		struct kvc_loc *locs = c->locs;
		uint32_t nheld = 0;

		for (uint32_t j = 0; j < m; j++)
			keys[j] = d[i + j].key;
		ret = pin_locked(c, ns, keys, m, locs, 0);
		if (ret)
			break;
		for (uint32_t j = 0; j < m; j++) {
			struct kvc_get_desc *g = &d[i + j];

			g->status = locs[j].status;
			g->bytes = locs[j].bytes;
			if (g->status)
				continue;
			held[nheld++] = g->key;
			if (!locs[j].ptr)
				g->status = -KVC_ENOTIER;
			else if (g->cap < locs[j].bytes)
				g->status = -ENOBUFS;
			else {
				memcpy(g->buf, locs[j].ptr, locs[j].bytes);
				copied++;
			}
		}
		/* Release without waiting for the answer (it can only say the
		 * pins were dropped): the daemon acts on it at once, and the
		 * next exchange reads the reply. One round trip per get. */
		if (nheld) {
			uint64_t id;

			ret = kvci_keys_req(c, ns, held, nheld);
			if (!ret)
				ret = kvci_send_req(c, KV_OP_RELEASE, nheld,
						    kv_proto_keys_len(nheld), &id);
			if (!ret) {
				c->deferred = true;
				c->deferred_id = id;
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : copied;
}

int kvc_get(struct kvc *c, uint32_t ns, const struct kvc_key *key, void *buf,
	    size_t cap, size_t *bytes)
{
	struct kvc_get_desc d = { .buf = buf, .cap = cap };
	int ret;

	if (!key)
		return -EINVAL;
	d.key = *key;
	ret = kvc_get_batch(c, ns, &d, 1);

	if (ret < 0)
		return ret;
	if (bytes)
		*bytes = d.bytes;
	return d.status;
}

/* ---- writing ------------------------------------------------------------------- */

/* ALLOC for d[0..m), without the lock. Stores arena pointers in ptrs and,
 * when tiers is not NULL, each one's tier. */
static int alloc_locked(struct kvc *c, uint32_t ns, struct kvc_put_desc *d,
			uint32_t m, char **ptrs, uint8_t *tiers, uint32_t flags)
{
	struct kv_wire_keys *k = kvci_req_body(c, kv_proto_alloc_len(m));
	struct kv_wire_alloc *a;
	const struct kv_wire_alloc_reply *r;
	struct kv_wire_hdr h;
	int ret, ok = 0;

	if (!k)
		return -ENOMEM;
	k->ns = ns;
	a = (struct kv_wire_alloc *)(k + 1);
	for (uint32_t j = 0; j < m; j++) {
		memcpy(&a[j].key, &d[j].key, sizeof(a[j].key));
		if (d[j].has_parent) {
			memcpy(&a[j].parent, &d[j].parent, sizeof(a[j].parent));
			a[j].flags = KV_ALLOC_PARENT;
		}
		a[j].flags |= flags;
		a[j].bytes = d[j].bytes;
		a[j].tokens = d[j].tokens;
		a[j].position = d[j].position;
	}
	ret = kvci_rpc(c, KV_OP_ALLOC, m, kv_proto_alloc_len(m), &h);
	if (!ret && (h.count != m || h.len != m * sizeof(*r))) {
		kvci_conn_break(c);
		ret = -KVC_EPROTO;
	}
	if (ret)
		return ret;
	r = (const struct kv_wire_alloc_reply *)c->rep;
	for (uint32_t j = 0; j < m; j++) {
		d[j].status = -r[j].status;
		ptrs[j] = NULL;
		if (tiers)
			tiers[j] = r[j].tier;
		if (r[j].status)
			continue;
		/* Only a tier this process mapped: HBM only when asked for. */
		if (r[j].tier != KV_TIER_DRAM && !(flags & KV_ALLOC_HBM)) {
			kvci_conn_break(c);
			return -KVC_EPROTO;
		}
		ret = arena_ptr(c, r[j].tier, r[j].offset, d[j].bytes, &ptrs[j]);
		if (ret)
			return ret;
		if (!ptrs[j]) {
			kvci_conn_break(c);
			return -KVC_EPROTO;
		}
		ok++;
	}
	return ok;
}

static int check_puts(const struct kvc_put_desc *d, size_t n)
{
	if (n > INT32_MAX || (n && !d))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (d[i].bytes == 0)
			return -EINVAL;
	return 0;
}

int kvc_put_batch(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n)
{
	uint32_t step;
	int stored = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->lock);
	step = kvci_batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;
		struct kvc_key *keys = c->keys;
		char **ptrs = c->ptrs;
		int *st = c->status;
		uint32_t nk = 0;

		ret = alloc_locked(c, ns, d + i, m, ptrs, NULL, 0);
		if (ret < 0)
			goto out;
		for (uint32_t j = 0; j < m; j++) {
			if (!ptrs[j])
				continue;
			if (d[i + j].data)
				memcpy(ptrs[j], d[i + j].data, d[i + j].bytes);
			keys[nk++] = d[i + j].key;
		}
		ret = nk ? kvci_status_op(c, KV_OP_COMMIT, ns, keys, nk, st) : 0;
		if (ret < 0)
			goto out;
		nk = 0;
		for (uint32_t j = 0; j < m; j++) {
			if (!ptrs[j])
				continue;
			d[i + j].status = st[nk++];
			stored += d[i + j].status == 0;
		}
	}
	ret = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : stored;
}

int kvc_put(struct kvc *c, uint32_t ns, const struct kvc_key *key,
	    const struct kvc_key *parent, uint32_t tokens, uint32_t position,
	    const void *data, size_t bytes)
{
	struct kvc_put_desc d = {
		.has_parent = parent != NULL,
		.tokens = tokens,
		.position = position,
		.data = data,
		.bytes = bytes,
	};
	int ret;

	if (!key)
		return -EINVAL;
	d.key = *key;
	if (parent)
		d.parent = *parent;
	ret = kvc_put_batch(c, ns, &d, 1);
	return ret < 0 ? ret : d.status;
}

int kvc_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	      void **ptrs)
{
	uint32_t step;
	int ok = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	if (n && !ptrs)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	step = kvci_batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;

		ret = alloc_locked(c, ns, d + i, m, (char **)ptrs + i, NULL, 0);
		if (ret < 0)
			break;
		ok += ret;
	}
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : ok;
}

int kvci_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	       void **ptrs, uint8_t *tiers, unsigned flags)
{
	uint32_t step;
	int ok = 0, ret;

	ret = check_puts(d, n);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->lock);
	if (!c->hbm)
		flags &= ~(unsigned)KV_ALLOC_HBM;	/* not mapped here */
	step = kvci_batch_of(c, sizeof(struct kv_wire_alloc));
	for (size_t i = 0; i < n; i += step) {
		uint32_t m = n - i < step ? (uint32_t)(n - i) : step;

		ret = alloc_locked(c, ns, d + i, m, (char **)ptrs + i, tiers ? tiers + i : NULL,
				   flags);
		if (ret < 0)
			break;
		ok += ret;
	}
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : ok;
}

int kvc_commit(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	       size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_status_op(c, KV_OP_COMMIT, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int kvc_abort(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
	      size_t n, int *status)
{
	int ret;

	if (n && !keys)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = kvci_status_op(c, KV_OP_ABORT, ns, keys, n, status);
	pthread_mutex_unlock(&c->lock);
	return ret;
}
