/*
 * util.c - allocation, parsing, clocks and fault injection.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"

static void oom(size_t n)
{
	kv_log(KV_ERR, KV_LOG_MAIN, "out of memory allocating %zu bytes", n);
	abort();
}

void *kv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *kv_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *kv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *kv_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom(strlen(s) + 1);
	return p;
}

int kv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int kv_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 }, { "b", 0 },
		{ "k", 10 }, { "kb", 10 }, { "kib", 10 },
		{ "m", 20 }, { "mb", 20 }, { "mib", 20 },
		{ "g", 30 }, { "gb", 30 }, { "gib", 30 },
		{ "t", 40 }, { "tb", 40 }, { "tib", 40 },
	};
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < KV_ARRAY_SIZE(units); i++) {
		if (strcasecmp(end, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*out = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

uint64_t kv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const fault_names[KV_FAULT_MAX] = {
	"arena", "io", "meta", "gpu", "uring", "short", "crash",
};
static _Atomic unsigned fault_countdown[KV_FAULT_MAX];
static _Atomic bool fault_env_read;

void kv_fault_arm(enum kv_fault f, unsigned nth)
{
	fault_env_read = true;	/* an explicit arm overrides the environment */
	fault_countdown[f] = nth;
}

static void fault_read_env(void)
{
	const char *env = getenv("KV_FAULT");
	char name[16];
	unsigned n;
	int used;

	fault_env_read = true;
	while (env && sscanf(env, "%15[a-z]:%u%n", name, &n, &used) == 2) {
		for (int i = 0; i < KV_FAULT_MAX; i++)
			if (!strcmp(name, fault_names[i]))
				fault_countdown[i] = n;
		env += used;
		if (*env != ',')
			break;
		env++;
	}
}

bool kv_fault_hit(enum kv_fault f)
{
	if (!fault_env_read)
		fault_read_env();
	unsigned n = atomic_load(&fault_countdown[f]);

	/* Exactly one caller takes the count from 1 to 0. */
	while (n) {
		if (atomic_compare_exchange_weak(&fault_countdown[f], &n, n - 1))
			return n == 1;
	}
	return false;
}
