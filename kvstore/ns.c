/*
 * ns.c - the namespace table. Registration is rare (once per connection),
 * so a name is found by a linear scan; an id is an array index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore/errors.h"
#include "kvstore/ns.h"
#include "kvstore/util.h"

struct ns {
	char *name;
	size_t len;
	uid_t owner;
};

struct kv_ns_table {
	struct ns *v;
	uint32_t n;
	uint32_t max;
};

int kv_ns_open(struct kv_ns_table **out, uint32_t max)
{
	struct kv_ns_table *t;

	if (max == 0)
		return -EINVAL;
	t = kv_xcalloc(1, sizeof(*t));
	t->v = kv_xcalloc(max, sizeof(*t->v));
	t->max = max;
	*out = t;
	return 0;
}

void kv_ns_close(struct kv_ns_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	free(t);
}

int kv_ns_find(const struct kv_ns_table *t, const char *name, size_t len,
	       uint32_t *id)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].len != len || memcmp(t->v[i].name, name, len))
			continue;
		*id = i;
		return 0;
	}
	return -ENOENT;
}

int kv_ns_register(struct kv_ns_table *t, const char *name, size_t len,
		   uid_t uid, uint32_t *id)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].len != len || memcmp(t->v[i].name, name, len))
			continue;
		if (t->v[i].owner != uid)
			return -EACCES;
		*id = i;
		return 0;
	}
	if (t->n == t->max)
		return -KV_ENSLIMIT;
	t->v[t->n].name = kv_xmalloc(len + 1);
	memcpy(t->v[t->n].name, name, len);
	t->v[t->n].name[len] = '\0';
	t->v[t->n].len = len;
	t->v[t->n].owner = uid;
	*id = t->n++;
	return 0;
}

int kv_ns_restore(struct kv_ns_table *t, uint32_t id, uid_t uid, const char *name)
{
	size_t len = strlen(name);

	if (id < t->n || len == 0 || len > 255)
		return -EINVAL;
	if (id >= t->max)
		return -KV_ENSLIMIT;
	while (t->n < id) {	/* lost: a name no one can register (len 0) */
		t->v[t->n].name = kv_xstrdup("");
		t->v[t->n].len = 0;
		t->v[t->n].owner = (uid_t)-1;
		t->n++;
	}
	t->v[t->n].name = kv_xstrdup(name);
	t->v[t->n].len = len;
	t->v[t->n].owner = uid;
	t->n++;
	return 0;
}

int kv_ns_owner(const struct kv_ns_table *t, uint32_t id, uid_t *uid)
{
	if (id >= t->n)
		return -ENOENT;
	*uid = t->v[id].owner;
	return 0;
}

const char *kv_ns_name(const struct kv_ns_table *t, uint32_t id)
{
	return id < t->n ? t->v[id].name : NULL;
}

uint32_t kv_ns_count(const struct kv_ns_table *t)
{
	return t->n;
}
