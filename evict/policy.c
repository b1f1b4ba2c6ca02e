/*
 * policy.c - the registry of eviction policies.
 *
 * Every policy the daemon knows is listed once in policies[]; the config
 * finds one by name with kv_evict_find() and kvctl lists them with
 * kv_evict_list(). Adding a policy is one line here plus its extern
 * declaration in policy.h.
 *
 * Invariants: names in policies[] are unique and non-NULL.
 * Locking: none; the table is const and may be read from any thread.
 */
#include <string.h>

#include "evict/policy.h"
#include "lib/util.h"

static const struct kv_evict_ops *const policies[] = {
	&kv_evict_lru,
	&kv_evict_gdsf,
	&kv_evict_h2o,
};

const struct kv_evict_ops *kv_evict_find(const char *name)
{
	if (!name)
		return NULL;

	for (size_t i = 0; i < KV_ARRAY_SIZE(policies); i++) {
		if (!strcmp(policies[i]->name, name))
			return policies[i];
	}
	return NULL;
}

size_t kv_evict_list(const struct kv_evict_ops *const **out)
{
	*out = policies;
	return KV_ARRAY_SIZE(policies);
}
