/*
 * ns.c - the namespace table. Registration is rare (once per connection),
 * so a name is found by a linear scan; an id is an array index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "kvstore/ns.h"
#include "lib/util.h"

struct ns {
	char *name;
	size_t len;			/* 0: burned, or skipped at restore */
	uid_t owner;
	bool pending;			/* its record is not durable yet */
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

static bool find(const struct kv_ns_table *t, const char *name, size_t len,
		 uint32_t *id)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].len == len && !memcmp(t->v[i].name, name, len)) {
			*id = i;
			return true;
		}
	}
	return false;
}

int kv_ns_find(const struct kv_ns_table *t, const char *name, size_t len,
	       uint32_t *id)
{
	return find(t, name, len, id) ? 0 : -ENOENT;
}

int kv_ns_register(struct kv_ns_table *t, const char *name, size_t len,
		   uid_t uid, uint32_t *id)
{
	uint32_t i;

	if (find(t, name, len, &i)) {
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

int kv_ns_lookup(const struct kv_ns_table *t, const char *name, size_t len,
		 uint32_t *id)
{
	uint32_t i;

	if (len == 0 || !find(t, name, len, &i) || t->v[i].pending)
		return -ENOENT;
	*id = i;
	return 0;
}

void kv_ns_set_pending(struct kv_ns_table *t, uint32_t id, bool pending)
{
	if (id < t->n)
		t->v[id].pending = pending;
}

bool kv_ns_pending(const struct kv_ns_table *t, uint32_t id)
{
	return id < t->n && t->v[id].pending;
}

void kv_ns_burn(struct kv_ns_table *t, uint32_t id)
{
	if (id >= t->n)
		return;
	free(t->v[id].name);
	t->v[id] = (struct ns){ .name = kv_xstrdup(""), .owner = (uid_t)-1 };
}
