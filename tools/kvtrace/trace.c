/*
 * trace.c - kvtrace's input: a JSON-lines trace read line by line, checked
 * (the file is untrusted: sizes are capped by MAX_* in kvtrace_int.h, a bad
 * line stops the run with its line number), and flattened into struct
 * trace, with each id's dense number, first-seen parent and next use; and
 * the prefill cost of every depth (cost_sum), which the hit counters weigh
 * blocks by.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "tools/kvtrace/kvtrace_int.h"

/* Open addressing, id -> dense id; ids are < 2^63, so ~0 marks empty. */
struct idmap {
	uint64_t *keys;
	uint32_t *vals;
	size_t cap;			/* a power of two */
	size_t n;
};

/* Room in the trace's arrays while it loads (they grow by doubling). */
struct trace_caps {
	size_t refs;			/* ids[], dense[] */
	size_t reqs;			/* off[] */
	size_t ids;			/* parent[] */
};

double *cost_sum;
double total_cost;

static void idmap_grow(struct idmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	uint64_t *keys = kv_xmalloc(cap * sizeof(*keys));
	uint32_t *vals = kv_xmalloc(cap * sizeof(*vals));

	memset(keys, 0xff, cap * sizeof(*keys));
	for (size_t i = 0; i < m->cap; i++) {
		size_t h;

		if (m->keys[i] == UINT64_MAX)
			continue;
		h = (m->keys[i] * 0x9e3779b97f4a7c15ull) >> 20 & (cap - 1);
		while (keys[h] != UINT64_MAX)
			h = (h + 1) & (cap - 1);
		keys[h] = m->keys[i];
		vals[h] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
}

/* The dense id of id, a new one (n) if it was not there. */
static uint32_t idmap_get(struct idmap *m, uint64_t id, bool *added)
{
	size_t h;

	if (2 * (m->n + 1) > m->cap)
		idmap_grow(m);
	h = (id * 0x9e3779b97f4a7c15ull) >> 20 & (m->cap - 1);
	while (m->keys[h] != UINT64_MAX) {
		if (m->keys[h] == id) {
			*added = false;
			return m->vals[h];
		}
		h = (h + 1) & (m->cap - 1);
	}
	m->keys[h] = id;
	m->vals[h] = (uint32_t)m->n;
	*added = true;
	return (uint32_t)m->n++;
}

/*
 * Read one line of at most MAX_LINE bytes into *buf (without the newline).
 * Returns 1, 0 at end of file, or -EFBIG / -EIO.
 */
static int read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
	size_t n = 0;
	int ch;

	while ((ch = getc_unlocked(f)) != EOF && ch != '\n') {
		if (n == MAX_LINE)
			return -EFBIG;
		if (n + 1 >= *cap) {
			*cap = *cap ? *cap * 2 : 4096;
			*buf = kv_xrealloc(*buf, *cap);
		}
		(*buf)[n++] = (char)ch;
	}
	if (ferror(f))
		return -EIO;
	if (ch == EOF && n == 0)
		return 0;
	if (!*buf) {
		*cap = 1;
		*buf = kv_xmalloc(1);
	}
	(*buf)[n] = '\0';
	*len = n;
	return 1;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Check one parsed line and append its ids. 0, or -EINVAL after a message. */
static int add_request(struct trace *t, struct idmap *m, struct trace_caps *tc,
		       json_t *doc, const char *where, uint32_t block_tokens)
{
	json_t *ids = json_is_object(doc) ? json_object_get(doc, "hash_ids") : NULL;
	size_t n, i;
	json_t *v;

	if (!json_is_object(doc)) {
		fail("%s: not a JSON object", where);
		return -EINVAL;
	}
	if (!json_is_array(ids)) {
		fail("%s: %s", where, ids ? "\"hash_ids\" is not an array" :
		     "no \"hash_ids\" array");
		return -EINVAL;
	}
	n = json_array_size(ids);
	if (n > MAX_REQ_IDS) {
		fail("%s: %zu hash_ids, more than the %u a request may have", where, n,
		     MAX_REQ_IDS);
		return -EINVAL;
	}
	if ((uint64_t)n * block_tokens > UINT32_MAX) {
		fail("%s: %zu blocks of %u tokens pass 2^32 token positions", where, n,
		     block_tokens);
		return -EINVAL;
	}
	if (t->n_refs + n > MAX_REFS) {
		fail("%s: the trace passes %llu ids in all", where, (unsigned long long)MAX_REFS);
		return -EINVAL;
	}
	if (t->n_req == MAX_REQS) {
		fail("%s: more than %u requests", where, MAX_REQS);
		return -EINVAL;
	}
	if (t->n_refs + n > tc->refs) {
		while (t->n_refs + n > tc->refs)
			tc->refs = tc->refs ? tc->refs * 2 : 1 << 16;
		t->ids = kv_xrealloc(t->ids, tc->refs * sizeof(*t->ids));
		t->dense = kv_xrealloc(t->dense, tc->refs * sizeof(*t->dense));
	}
	json_array_foreach(ids, i, v) {
		json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;

		if (id < 0) {
			fail("%s: hash_ids[%zu] is not an id (a non-negative integer below 2^63)",
			     where, i);
			return -EINVAL;
		}
		t->ids[t->n_refs + i] = (uint64_t)id;
	}
	for (i = 0; i < n; i++) {
		size_t r = t->n_refs + i;
		uint32_t p = i ? t->dense[r - 1] : NONE;
		bool added;
		uint32_t d = idmap_get(m, t->ids[r], &added);

		if (added) {
			if (d == NONE) {
				fail("%s: more than %u distinct ids", where, NONE - 1);
				return -EINVAL;
			}
			if (d == tc->ids) {
				tc->ids = tc->ids ? 2 * tc->ids : 1024;
				t->parent = kv_xrealloc(t->parent, tc->ids * sizeof(*t->parent));
			}
			t->parent[d] = p;
		} else if (t->parent[d] != p) {
			t->inconsistent++;
		}
		t->dense[r] = d;
	}
	t->n_refs += n;
	if (n > t->max_len)
		t->max_len = n;
	if (t->n_req + 2 > tc->reqs) {
		tc->reqs = 2 * (t->n_req + 2);
		t->off = kv_xrealloc(t->off, tc->reqs * sizeof(*t->off));
	}
	t->off[++t->n_req] = t->n_refs;
	return 0;
}

void trace_free(struct trace *t)
{
	free(t->off);
	free(t->ids);
	free(t->dense);
	free(t->next_use);
	free(t->parent);
}

/* Load and check the trace; fills next_use. 0 or RC_USAGE after a message. */
int trace_load(struct trace *t, const struct opts *o)
{
	struct idmap m = { 0 };
	struct trace_caps tc = { .reqs = 1 };
	size_t cap = 0, len = 0, line = 0;
	uint32_t *last;
	char *buf = NULL;
	char where[4200];
	int ret = 0;
	FILE *f;

	memset(t, 0, sizeof(*t));
	t->path = o->trace;
	t->off = kv_xcalloc(1, sizeof(*t->off));
	f = fopen(o->trace, "r");
	if (!f) {
		fail("cannot open '%s': %s", o->trace, strerror(errno));
		return RC_USAGE;
	}
	while (!o->max_requests || t->n_req < o->max_requests) {
		json_error_t err;
		json_t *doc;

		ret = read_line(f, &buf, &cap, &len);
		if (ret <= 0)
			break;
		line++;
		ret = 0;
		snprintf(where, sizeof(where), "%s:%zu", o->trace, line);
		if (blank(buf, len))
			continue;
		doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
		if (!doc) {
			fail("%s:%zu: not valid JSON: %s (column %d)", o->trace, line,
			     err.text, err.column);
			ret = -EINVAL;
			break;
		}
		ret = add_request(t, &m, &tc, doc, where, o->block_tokens);
		json_decref(doc);
		if (ret)
			break;
	}
	if (ret == -EFBIG)
		fail("%s:%zu: line longer than %u bytes", o->trace, line + 1, MAX_LINE);
	else if (ret == -EIO)
		fail("cannot read '%s'", o->trace);
	fclose(f);
	free(buf);
	free(m.keys);
	free(m.vals);
	if (ret)
		return RC_USAGE;
	if (t->n_req == 0) {
		fail("%s: no requests", o->trace);
		return RC_USAGE;
	}
	t->n_distinct = (uint32_t)m.n;

	/* Next use: walk backwards, remembering where each id was last seen;
	 * a request's own repeats of an id do not count as its next use. */
	t->next_use = kv_xmalloc((t->n_refs ? t->n_refs : 1) * sizeof(*t->next_use));
	last = kv_xmalloc((t->n_distinct ? t->n_distinct : 1) * sizeof(*last));
	memset(last, 0xff, (t->n_distinct ? t->n_distinct : 1) * sizeof(*last));
	for (size_t r = t->n_req; r-- > 0;) {
		for (size_t i = t->off[r]; i < t->off[r + 1]; i++)
			t->next_use[i] = last[t->dense[i]];
		for (size_t i = t->off[r]; i < t->off[r + 1]; i++)
			last[t->dense[i]] = (uint32_t)r;
	}
	free(last);
	if (t->inconsistent)
		fprintf(stderr, "kvtrace: warning: %s is not prefix-chained: %zu references "
			"put an id after another parent than the first time; min is then no "
			"longer prefix-closed and --check skips it\n", o->trace, t->inconsistent);
	return 0;
}

void costs_init(const struct trace *t, const struct kv_cost_model *m,
		uint32_t block_tokens)
{
	free(cost_sum);
	cost_sum = kv_xmalloc((t->max_len + 1) * sizeof(*cost_sum));
	cost_sum[0] = 0;
	for (size_t i = 0; i < t->max_len; i++)
		cost_sum[i + 1] = cost_sum[i] +
			kv_cost_compute(m, block_tokens, (uint32_t)(i * block_tokens));
	total_cost = 0;
	for (size_t r = 0; r < t->n_req; r++)
		total_cost += cost_sum[t->off[r + 1] - t->off[r]];
}
