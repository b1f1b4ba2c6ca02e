/*
 * store_ns.c - namespaces in the store: which tenant each is bound to,
 * their records on the SSD (which must be durable before any chunk of
 * them is), their drops, and the SSD's sync points.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "kvstore/store_int.h"
#include "tiers/ssd.h"

/* Which tenant namespace id belongs to: -1 when unbound. */
int ns_tenant(const struct kv_store *s, uint32_t ns)
{
	return ns < s->n_ns_tenant && s->ns_tenant[ns] ? s->ns_tenant[ns] - 1 : -1;
}

/*
 * A namespace dropped, or refused its record: no longer its tenant's. Its
 * id is burned (never handed out again in this run), and it still counts
 * against the tenant's namespaces quota: the quotas add up to at most
 * max_namespaces, so no tenant can fill the table for the others by
 * registering and dropping names.
 */
static void ns_unbind(struct kv_store *s, uint32_t ns)
{
	if (ns_tenant(s, ns) >= 0)
		s->ns_tenant[ns] = 0;
}

void ns_bind(struct kv_store *s, uint32_t ns, unsigned tenant)
{
	if (ns >= s->n_ns_tenant) {
		uint32_t n = ns + 1 > 2 * s->n_ns_tenant ? ns + 1 : 2 * s->n_ns_tenant;

		s->ns_tenant = kv_xrealloc(s->ns_tenant, n * sizeof(*s->ns_tenant));
		memset(s->ns_tenant + s->n_ns_tenant, 0,
		       (n - s->n_ns_tenant) * sizeof(*s->ns_tenant));
		s->n_ns_tenant = n;
	}
	if (s->ns_tenant[ns])
		return;
	s->ns_tenant[ns] = (uint16_t)(tenant + 1);
	s->tenants[tenant].namespaces++;
}

/* A namespace recorded on the SSD: bound to its owner's tenant, if any. */
int ssd_ns_bind(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct kv_store *s = arg;
	int t = kv_store_tenant_of(s, uid);

	if (t < 0) {
		kv_log(KV_WARN, KV_LOG_MAIN, "namespace '%s' of uid %u: no tenant has that uid now; its chunks are dropped",
		       name, (unsigned)uid);
		return 0;
	}
	ns_bind(s, id, (unsigned)t);
	return 0;
}

int kv_store_namespaces(struct kv_store *s,
			int (*fn)(void *arg, uint32_t id, uid_t uid, const char *name),
			void *arg)
{
	return s->ssd ? kv_ssd_namespaces(s->ssd, fn, arg) : 0;
}

/* ---- namespaces on the SSD ----------------------------------------------------- */

#define NS_SSD_MAX	(1u << 24)	/* ids beyond are not kept here */

static struct ns_ssd *ns_slot(struct kv_store *s, uint32_t ns)
{
	if (ns >= NS_SSD_MAX)
		return NULL;
	if (ns >= s->n_nss) {
		uint32_t n = ns + 1 > 2 * s->n_nss ? ns + 1 : 2 * s->n_nss;

		s->nss = kv_xrealloc(s->nss, n * sizeof(*s->nss));
		memset(s->nss + s->n_nss, 0, (n - s->n_nss) * sizeof(*s->nss));
		s->n_nss = n;
	}
	return &s->nss[ns];
}

/* A namespace recorded before the restart: durable, its salt known. */
int ssd_ns_found(void *arg, uint32_t id, uid_t uid, const char *name)
{
	struct ns_ssd *n = ns_slot(arg, id);

	if (n)
		*n = (struct ns_ssd){ .salt = kv_ssd_salt(name), .rec = 0,
				      .remote = cluster_ns(arg, name) };
	return 0;
}

static void ns_done(struct kv_store *s, const struct kv_ssd_job *j)
{
	struct ns_ssd *n = ns_slot(s, j->ns);

	if (n)
		n->rec = j->result;
	/* Refused, or dropped: no longer its tenant's. */
	if (j->result || j->op == KV_SSD_NS_DROP)
		ns_unbind(s, j->ns);
}

int kv_store_ns_added(struct kv_store *s, uint32_t id, uid_t uid, const char *name)
{
	struct ns_ssd *n;
	struct kv_ssd_job *j;
	int t = kv_store_tenant_of(s, uid);

	if (t >= 0)
		ns_bind(s, id, (unsigned)t);
	if (!s->ssd && !s->remote)
		return 0;
	n = ns_slot(s, id);
	if (!n) {
		ns_unbind(s, id);
		return -EINVAL;
	}
	n->salt = kv_ssd_salt(name);
	n->remote = cluster_ns(s, name);
	n->rec = 0;
	if (!s->ssd)
		return 0;
	n->rec = -EINPROGRESS;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_NS;
	j->ns = id;
	j->uid = uid;
	snprintf(j->name, sizeof(j->name), "%s", name);
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

int kv_store_ns_durable(const struct kv_store *s, uint32_t id)
{
	return s->ssd && id < s->n_nss ? s->nss[id].rec : 0;
}

int kv_store_ns_drop(struct kv_store *s, uint32_t id, uint64_t *chunks, uint64_t *bytes)
{
	struct kv_chunk **drop = NULL;
	size_t n = 0, cap = 0;
	uint64_t cursor = 0;
	struct kv_chunk *c;
	struct kv_ssd_job *j;
	bool io = false;
	struct ns_ssd *ns;

	*chunks = *bytes = 0;
	/* Collect first: the index walk must not see its chunks freed. */
	while ((c = chunk_next(s, &cursor))) {
		if (c->ie.ns != id)
			continue;
		if (c->state == KV_CHUNK_FETCHING) {	/* it ends soon, either way */
			io = true;
			continue;
		}
		if (c->state != KV_CHUNK_COMMITTED || c->pins) {
			free(drop);
			return -EBUSY;
		}
		io |= chunk_busy(c);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			drop = kv_xrealloc(drop, cap * sizeof(*drop));
		}
		drop[n++] = c;
	}
	if (io) {
		free(drop);
		return -EAGAIN;
	}
	for (size_t i = 0; i < n; i++) {
		(*chunks)++;
		*bytes += drop[i]->bytes;
		chunk_drop(s, drop[i]);
	}
	free(drop);
	ns = s->ssd ? ns_slot(s, id) : NULL;
	if (!ns) {
		ns_unbind(s, id);
		return 0;
	}
	ns->rec = -EINPROGRESS;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_NS_DROP;
	j->ns = id;
	kv_ssd_submit(s->ssd, j);
	return -EINPROGRESS;
}

static int id_cmp(const void *key, const void *elem)
{
	uint32_t a = *(const uint32_t *)key, b = *(const uint32_t *)elem;

	return (a > b) - (a < b);
}

void kv_store_ns_usage(const struct kv_store *s, const uint32_t *ids, uint32_t n,
		       uint64_t *chunks, uint64_t *bytes)
{
	uint64_t cursor = 0;
	struct kv_chunk *c;
	const uint32_t *at;

	memset(chunks, 0, n * sizeof(*chunks));
	memset(bytes, 0, n * sizeof(*bytes));
	while ((c = chunk_next(s, &cursor))) {
		if (c->state != KV_CHUNK_COMMITTED ||
		    !(at = bsearch(&c->ie.ns, ids, n, sizeof(*ids), id_cmp)))
			continue;
		chunks[at - ids]++;
		bytes[at - ids] += c->bytes;
	}
}

/* ---- SSD sync points ---------------------------------------------------------- */

static void sync_done(struct kv_store *s, const struct kv_ssd_job *j)
{
	s->sync_done++;		/* jobs come back in order */
	s->sync_res = j->result;
}

uint64_t kv_store_ssd_sync(struct kv_store *s)
{
	struct kv_ssd_job *j;

	if (!s->ssd)
		return 0;
	j = kv_xcalloc(1, sizeof(*j));
	j->op = KV_SSD_SYNC;
	kv_ssd_submit(s->ssd, j);
	return ++s->sync_sent;
}

int kv_store_ssd_synced(const struct kv_store *s, uint64_t seq)
{
	if (s->sync_done < seq)
		return -EINPROGRESS;
	return s->sync_done == seq ? s->sync_res : 0;
}


/* One of the SSD's own jobs came back (kv_store_pump()). */
void ssd_own_done(struct kv_store *s, struct kv_move *m)
{
	struct kv_ssd_job *j = kv_ssd_job_of(m);

	j->result = m->result;
	if (j->op == KV_SSD_NS || j->op == KV_SSD_NS_DROP)
		ns_done(s, j);
	else if (j->op == KV_SSD_SYNC)
		sync_done(s, j);
}
