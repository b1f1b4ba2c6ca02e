/*
 * tier.c - the registry of tiers: one line per tier (its file defines the
 * table). A new tier is its file plus a line here (docs/design.md, "Adding
 * a tier").
 */
#include <errno.h>
#include <string.h>

#include "lib/util.h"
#include "tiers/tier.h"

static const struct kv_tier_ops *const tiers[] = {
	&kv_tier_hbm,
	&kv_tier_dram,
	&kv_tier_ssd,
	&kv_tier_remote,
};

const struct kv_tier_ops *kv_tier_find(const char *name)
{
	for (size_t i = 0; i < KV_ARRAY_SIZE(tiers); i++)
		if (!strcmp(tiers[i]->name, name))
			return tiers[i];
	return NULL;
}

const struct kv_tier_ops *kv_tier_by_id(unsigned id)
{
	for (size_t i = 0; i < KV_ARRAY_SIZE(tiers); i++)
		if (tiers[i]->id == id)
			return tiers[i];
	return NULL;
}

int kv_tier_open(struct kv_tier *t, const char *name,
		 const struct kv_tier_conf *conf)
{
	const struct kv_tier_ops *ops = kv_tier_find(name);
	void *priv;
	int ret;

	if (!ops || !ops->open)
		return -ENOENT;
	ret = ops->open(&priv, conf);
	if (ret)
		return ret;
	t->ops = ops;
	t->priv = priv;
	return 0;
}

void kv_tier_close(struct kv_tier *t)
{
	if (!t->ops)
		return;
	t->ops->close(t->priv);
	t->ops = NULL;
	t->priv = NULL;
}
