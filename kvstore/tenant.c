/*
 * tenant.c - the tenant table: declared tenants, one per other allowed
 * uid, and the split of each quota (tenant.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kvstore/tenant.h"

static const char *const quota_names[KV_TQ_MAX] = {
	[KV_TQ_DRAM]		= "dram_bytes",
	[KV_TQ_HBM]		= "hbm_bytes",
	[KV_TQ_SSD]		= "ssd_bytes",
	[KV_TQ_NAMESPACES]	= "namespaces",
	[KV_TQ_UNCOMMITTED]	= "uncommitted_bytes",
};

const char *kv_tenant_quota_name(enum kv_tenant_quota q)
{
	return q < KV_TQ_MAX ? quota_names[q] : "?";
}

int kv_tenant_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= KV_TENANT_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

int kv_tenant_of(const struct kv_tenant_conf *t, unsigned n, uid_t uid)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned u = 0; u < t[i].n_uids; u++)
			if (t[i].uids[u] == uid)
				return (int)i;
	return -ENOENT;
}

/* Arenas are quotas that must be cut in whole granules. */
static bool is_arena(unsigned q)
{
	return q == KV_TQ_DRAM || q == KV_TQ_HBM;
}

/* Split what the declared quotas of kind q leave among the others. */
static int split(struct kv_tenant_conf *t, unsigned n, unsigned q,
		 uint64_t total, uint64_t align, char *err, size_t errlen)
{
	uint64_t declared = 0, share;
	unsigned rest = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!(t[i].set & (1u << q))) {
			rest++;
			continue;
		}
		if (total == 0)
			t[i].quota[q] = 0;	/* the daemon lacks the tier */
		if (t[i].quota[q] > total - declared) {
			snprintf(err, errlen, "tenant quotas of %s add up to more than the daemon's %" PRIu64,
				 quota_names[q], total);
			return -EINVAL;
		}
		declared += t[i].quota[q];
	}
	if (rest == 0)
		return 0;
	share = (total - declared) / rest;
	if (is_arena(q) && align)
		share -= share % align;
	if (total && share == 0 && (q == KV_TQ_DRAM || q == KV_TQ_NAMESPACES)) {
		snprintf(err, errlen, "%s: %" PRIu64 " left by the declared tenants is too little for the %u other tenant%s",
			 quota_names[q], total - declared, rest, rest > 1 ? "s" : "");
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++)
		if (!(t[i].set & (1u << q)))
			t[i].quota[q] = share;
	return 0;
}

int kv_tenants_resolve(const struct kv_tenant_conf *decl, unsigned n_decl,
		       const uid_t *allow, unsigned n_allow, uid_t self,
		       const uint64_t total[KV_TQ_MAX], uint64_t align,
		       struct kv_tenant_conf *out, unsigned max,
		       char *err, size_t errlen)
{
	unsigned n = 0;
	int ret;

	if (n_allow == 0) {
		allow = &self;
		n_allow = 1;
	}
	for (unsigned i = 0; i < n_decl; i++) {
		if (!kv_tenant_name_ok(decl[i].name) || decl[i].n_uids == 0 ||
		    decl[i].n_uids > KV_TENANT_UIDS) {
			snprintf(err, errlen, "tenant %u: a name (letters, digits, '_', '-', '.') and at least one uid are needed",
				 i + 1);
			return -EINVAL;
		}
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(decl[i].name, decl[j].name)) {
				snprintf(err, errlen, "tenant '%s' declared twice", decl[i].name);
				return -EINVAL;
			}
		for (unsigned u = 0; u < decl[i].n_uids; u++) {
			int other = kv_tenant_of(decl, i, decl[i].uids[u]);

			for (unsigned v = 0; v < u && other < 0; v++)
				if (decl[i].uids[v] == decl[i].uids[u])
					other = (int)i;
			if (other >= 0) {
				snprintf(err, errlen, "uid %u is in tenant '%s' and tenant '%s'",
					 (unsigned)decl[i].uids[u], decl[other].name, decl[i].name);
				return -EINVAL;
			}
		}
		if (n == max)
			goto too_many;
		out[n++] = decl[i];
	}
	for (unsigned i = 0; i < n_allow; i++) {
		struct kv_tenant_conf *t;

		if (kv_tenant_of(out, n, allow[i]) >= 0)
			continue;	/* declared, or listed twice */
		if (n == max)
			goto too_many;
		t = &out[n++];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "uid:%u", (unsigned)allow[i]);
		t->uids[0] = allow[i];
		t->n_uids = 1;
	}
	for (unsigned q = 0; q < KV_TQ_MAX; q++) {
		if (q == KV_TQ_UNCOMMITTED)
			continue;
		ret = split(out, n, q, total[q], align, err, errlen);
		if (ret)
			return ret;
	}
	/* Uncommitted bytes live in the tenant's own arenas: by default it
	 * may fill them. */
	for (unsigned i = 0; i < n; i++)
		if (!(out[i].set & (1u << KV_TQ_UNCOMMITTED)))
			out[i].quota[KV_TQ_UNCOMMITTED] = out[i].quota[KV_TQ_DRAM] +
							  out[i].quota[KV_TQ_HBM];
	return (int)n;

too_many:
	snprintf(err, errlen, "more than %u tenants", max);
	return -EINVAL;
}
