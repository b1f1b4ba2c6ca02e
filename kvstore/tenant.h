/*
 * tenant.h - who shares what: the daemon's tenants and their quotas.
 *
 * A tenant is the set of uids whose processes may share chunks (DESIGN.md
 * section 8). Its chunks live in arenas of its own, which only its
 * processes are handed; it has a quota of each tier's bytes, of
 * namespaces and of uncommitted bytes. The table is fixed at start:
 * - every [tenant NAME] section of the configuration (or --tenant) is one,
 *   with the uids it lists;
 * - every other allowed uid (allow_uids, or the daemon's own uid when that
 *   list is empty) is a tenant of its own, named "uid:N".
 * Quotas: a tenant's declared quota is its own; what the declared quotas
 * leave of the daemon's total is split evenly among the tenants that
 * declared none of that kind (the shared remainder); uncommitted bytes,
 * which live in the tenant's own arenas, default to their size. Arenas
 * cannot be shared between tenants without sharing bytes, so the split is
 * static (docs/design.md, "Tenants").
 *
 * Locking: none; built once at start, read-only afterwards.
 */
#ifndef KV_TENANT_H
#define KV_TENANT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KV_TENANT_NAME		32	/* bytes of a name, NUL included */
#define KV_TENANT_UIDS		32	/* uids of one declared tenant */
#define KV_TENANT_DECLARED	32	/* [tenant] sections */
#define KV_TENANT_MAX		64	/* declared plus one per allowed uid */

enum kv_tenant_quota {
	KV_TQ_DRAM,			/* bytes of its DRAM arena */
	KV_TQ_HBM,			/* bytes of its HBM arena */
	KV_TQ_SSD,			/* bytes it may hold on SSD */
	KV_TQ_NAMESPACES,		/* namespaces it may own */
	KV_TQ_UNCOMMITTED,		/* bytes allocated and not committed */
	KV_TQ_MAX
};

/* A tenant as declared, or as resolved (then every quota is set). */
struct kv_tenant_conf {
	char name[KV_TENANT_NAME];
	uid_t uids[KV_TENANT_UIDS];
	unsigned n_uids;
	unsigned set;			/* 1 << enum kv_tenant_quota: declared */
	uint64_t quota[KV_TQ_MAX];
};

/* The quota's configuration key ("dram_bytes", "namespaces", ...). */
const char *kv_tenant_quota_name(enum kv_tenant_quota q);

/*
 * Is name a valid tenant name: 1..31 bytes of letters, digits, '_', '-'
 * and '.' (so "uid:N", the default tenants' names, is never one).
 */
int kv_tenant_name_ok(const char *name);

/*
 * Build the table: the n_decl declared tenants, then one for each uid of
 * allow[] (n_allow of them; the single uid self when n_allow is 0) that no
 * declared tenant lists. total[q] is the daemon's whole of each kind (0
 * for a tier it lacks; then every tenant gets 0 of it); byte quotas of
 * arenas (DRAM, HBM) are rounded down to align. Stores up to max tenants
 * in out and returns how many, or -EINVAL with a message in err: a uid in
 * two tenants, declared quotas summing past the total, a share too small
 * (a DRAM arena under one align, no namespace), too many tenants.
 */
int kv_tenants_resolve(const struct kv_tenant_conf *decl, unsigned n_decl,
		       const uid_t *allow, unsigned n_allow, uid_t self,
		       const uint64_t total[KV_TQ_MAX], uint64_t align,
		       struct kv_tenant_conf *out, unsigned max,
		       char *err, size_t errlen);

/* Index in t[0..n) of the tenant uid belongs to, or -ENOENT. */
int kv_tenant_of(const struct kv_tenant_conf *t, unsigned n, uid_t uid);

#endif
