/*
 * tier.c - the registry of tiers.
 */
#include <errno.h>
#include <string.h>

#include "lib/util.h"
#include "tiers/tier.h"

static const struct kv_tier_ops *const tiers[] = {
	&kv_tier_dram,
};

const struct kv_tier_ops *kv_tier_find(const char *name)
{
	for (size_t i = 0; i < KV_ARRAY_SIZE(tiers); i++)
		if (!strcmp(tiers[i]->name, name))
			return tiers[i];
	return NULL;
}

int kv_tier_open(struct kv_tier *t, const char *name,
		 const struct kv_tier_conf *conf)
{
	const struct kv_tier_ops *ops = kv_tier_find(name);
	void *priv;
	int ret;

	if (!ops)
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
