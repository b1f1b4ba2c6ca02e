/*
 * kvctl.c - the admin CLI of kvstore: one command per run, through libkvc.
 *
 *   kvctl [--socket PATH] COMMAND [OPTIONS] [ARGS]
 *
 * Each command is a row of cmds[]: its name, the options it takes (a mask
 * over optdefs[], the one option table), the options it requires, how
 * many operands, and the function that runs it. main() parses the
 * global options, finds the command, parses its options into struct args,
 * validates them, connects (unless the command connects itself) and runs
 * it.
 *
 * Output: human readable by default, one JSON document with --json (built
 * with jansson, never by hand). Results go to stdout, diagnostics to
 * stderr as "kvctl: <what failed>: <why>".
 *
 * Exit status: 0 success (get: hit), 1 not cached (get, inspect, evict;
 * also when their namespace does not exist), 2 usage, connection or any
 * other error (flush: also when the tier below refused chunks).
 *
 * Only put registers (and so may create) a namespace; every other command
 * that takes --ns looks the name up and never creates it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/kvc.h"

enum {
	RC_OK	= 0,
	RC_MISS	= 1,	/* not cached */
	RC_ERR	= 2,	/* usage, connection or other failure */
};

/*
 * Options: bits of a mask, and also the values getopt_long() returns for
 * them; they start at 1 << 8 so that none is a character.
 */
enum opt_bits {
	OPT_SOCKET	= 1 << 8,
	OPT_JSON	= 1 << 9,
	OPT_NS		= 1 << 10,
	OPT_KEY		= 1 << 11,
	OPT_PARENT	= 1 << 12,
	OPT_TOKENS	= 1 << 13,
	OPT_POSITION	= 1 << 14,
	OPT_OUT		= 1 << 15,
	OPT_TIER	= 1 << 16,
	OPT_DROP	= 1 << 17,
	OPT_HELP	= 1 << 18,
};

/* Every option of every command; a command's mask picks its own. */
static const struct optdef {
	struct option o;		/* .val is the OPT_* bit */
	const char *arg;		/* as --help shows it */
	const char *help;
} optdefs[] = {
	{ { "socket", required_argument, NULL, OPT_SOCKET }, "--socket PATH",
	  "the daemon's socket" },
	{ { "ns", required_argument, NULL, OPT_NS }, "--ns NAME",
	  "namespace (put registers it: its first user owns it; the other "
	  "commands only look it up)" },
	{ { "key", required_argument, NULL, OPT_KEY }, "--key HEX32",
	  "the chunk's key: 32 hex digits" },
	{ { "parent", required_argument, NULL, OPT_PARENT }, "--parent HEX32",
	  "key of the chunk before it in the prompt" },
	{ { "tokens", required_argument, NULL, OPT_TOKENS }, "--tokens N",
	  "tokens in the chunk (default 0)" },
	{ { "position", required_argument, NULL, OPT_POSITION }, "--position P",
	  "index of its first token in the prompt (default 0)" },
	{ { "output", required_argument, NULL, OPT_OUT }, "-o, --output FILE",
	  "write to FILE instead of stdout" },
	{ { "tier", required_argument, NULL, OPT_TIER }, "--tier T",
	  "only tier T: dram, ssd or hbm (default: every tier)" },
	{ { "drop", no_argument, NULL, OPT_DROP }, "--drop",
	  "drop unpinned chunks instead of writing them back" },
	{ { "json", no_argument, NULL, OPT_JSON }, "--json",
	  "one JSON object instead of text" },
	{ { "help", no_argument, NULL, OPT_HELP }, "-h, --help",
	  "show this help" },
};
#define N_OPTS (sizeof(optdefs) / sizeof(optdefs[0]))

/* Everything a command line can say, parsed and validated. */
struct args {
	const char *socket;		/* NULL: libkvc's default */
	const char *ns_name;
	const char *out;		/* get -o */
	const char *file;		/* put's operand */
	char **ops;			/* the operands (policy) */
	int n_ops;
	struct kvc_key key;
	struct kvc_key parent;
	uint32_t tokens;
	uint32_t position;
	uint8_t tier;			/* KVC_TIER_NONE unless --tier */
	unsigned given;			/* OPT_* seen */
};

struct cmd {
	const char *name;
	const char *usage;		/* after "kvctl [--socket PATH] NAME" */
	const char *help;		/* one line */
	const char *note;		/* more for COMMAND --help, or NULL */
	unsigned opts;			/* besides --socket and --help */
	unsigned required;
	int operands;			/* exactly this many; -1: 1 to 3 */
	bool self_connect;		/* run() gets c == NULL */
	int (*run)(struct kvc *c, const struct args *a);
};

/* ---- helpers ------------------------------------------------------------- */

static const char *socket_shown(const char *socket)
{
	const char *env = getenv("KVSTORE_SOCKET");

	if (socket)
		return socket;
	return env && *env ? env : KVC_DEFAULT_SOCKET;
}

static const char *tier_name(uint8_t tier)
{
	switch (tier) {
	case KVC_TIER_HBM:
		return "hbm";
	case KVC_TIER_DRAM:
		return "dram";
	case KVC_TIER_SSD:
		return "ssd";
	case KVC_TIER_NONE:
		return "none";
	default:
		return "?";
	}
}

static int tier_parse(const char *s, uint8_t *out)
{
	static const uint8_t tiers[] = { KVC_TIER_HBM, KVC_TIER_DRAM, KVC_TIER_SSD };

	for (size_t i = 0; i < sizeof(tiers); i++) {
		if (!strcmp(s, tier_name(tiers[i]))) {
			*out = tiers[i];
			return 0;
		}
	}
	return -EINVAL;
}

static int u32_parse(const char *s, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* "3.0 MiB (3145728)", or "512 B" below 1 KiB. */
static const char *fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char *const units[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	double d = (double)v / 1024;
	unsigned u = 0;

	if (v < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", v);
		return buf;
	}
	while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s (%" PRIu64 ")", d, units[u], v);
	return buf;
}

/* "850ms", "12.3s", "5m03s", "2h05m", "3d04h". */
static const char *fmt_age(char *buf, size_t len, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	else if (s < 60)
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s",
			 s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m",
			 s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h",
			 s / 86400, s / 3600 % 24);
	return buf;
}

static void fail(const char *what, int err)
{
	fprintf(stderr, "kvctl: %s: %s\n", what, kvc_strerror(err));
}

/* jansson's integers are signed 64-bit: a counter past 2^63 - 1 (only
 * the ones clients feed can get there, saturated) shows as 2^63 - 1. */
static json_t *ju64(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Print one JSON document and free it. Returns RC_OK or RC_ERR. */
static int json_print(json_t *doc)
{
	int ret;

	if (!doc) {
		fail("cannot build the JSON output", -ENOMEM);
		return RC_ERR;
	}
	ret = json_dumpf(doc, stdout, JSON_INDENT(2));
	json_decref(doc);
	if (ret || fputc('\n', stdout) == EOF) {
		fail("cannot write the JSON output", -EIO);
		return RC_ERR;
	}
	return RC_OK;
}

static int ns_register(struct kvc *c, const char *name, uint32_t *ns)
{
	int ret = kvc_ns_register(c, name, ns);

	if (ret)
		fprintf(stderr, "kvctl: cannot register namespace '%s': %s\n",
			name, kvc_strerror(ret));
	return ret;
}

/*
 * Find an existing namespace without creating it. Returns 0, or the
 * command's exit status (reported): RC_MISS when there is no such
 * namespace (nothing of it can be cached), RC_ERR otherwise.
 */
static int ns_lookup(struct kvc *c, const char *name, uint32_t *ns)
{
	int ret = kvc_ns_lookup(c, name, ns);

	if (ret == -ENOENT) {
		fprintf(stderr, "kvctl: no namespace '%s'\n", name);
		return RC_MISS;
	}
	if (ret) {
		fprintf(stderr, "kvctl: cannot look up namespace '%s': %s\n",
			name, kvc_strerror(ret));
		return RC_ERR;
	}
	return 0;
}

/*
 * Read a whole file ("-": stdin) into a malloc'd buffer the caller owns.
 * Returns 0 or a -errno, with *out and *len untouched on failure.
 */
static int read_all(const char *path, char **out, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	struct stat sb;
	char *buf, *p;
	int fd, ret = 0;

	fd = STDIN_FILENO;
	if (strcmp(path, "-"))
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* One more byte than the file has: EOF shows without growing. */
	if (!fstat(fd, &sb) && S_ISREG(sb.st_mode) && sb.st_size > 0)
		cap = (size_t)sb.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			p = realloc(buf, cap);
			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			buf = p;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r ? -errno : 0;
			break;
		}
		n += (size_t)r;
	}
out:
	if (fd != STDIN_FILENO)
		close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int write_all(FILE *f, const void *buf, size_t len)
{
	errno = 0;
	if (fwrite(buf, 1, len, f) != len || fflush(f))
		return errno ? -errno : -EIO;
	return 0;
}

/* ---- commands ------------------------------------------------------------ */

static json_t *tier_json(const struct kvc_tier_stats *t)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:o, s:o, s:o, s:o}",
			 "name", t->name,
			 "policy", t->policy,
			 "capacity_bytes", ju64(t->capacity_bytes),
			 "used_bytes", ju64(t->used_bytes),
			 "chunks", ju64(t->chunks),
			 "hits", ju64(t->hits),
			 "misses", ju64(t->misses),
			 "evictions", ju64(t->evictions),
			 "promotions", ju64(t->promotions),
			 "demotions", ju64(t->demotions),
			 "alloc_failures", ju64(t->alloc_failures),
			 "read_bw", ju64(t->read_bw),
			 "read_samples", ju64(t->read_samples),
			 "read_bytes", ju64(t->read_bytes));
}

/* The remote tier's figures (kvc_cluster()), without its nodes. */
static json_t *cluster_json(const struct kvc_cluster *cl)
{
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{ "masters", cl->masters }, { "masters_down", cl->masters_down },
		{ "nodes_known", cl->nodes_known }, { "age_ms", cl->age_ms },
		{ "write_queue", cl->write_queue }, { "write_inflight", cl->write_inflight },
		{ "stores", cl->stores }, { "store_bytes", cl->store_bytes },
		{ "store_failures", cl->store_failures }, { "loads", cl->loads },
		{ "load_bytes", cl->load_bytes }, { "load_failures", cl->load_failures },
		{ "probes", cl->probes }, { "probe_hits", cl->probe_hits },
		{ "corrupt", cl->corrupt }, { "timeouts", cl->timeouts },
		{ "errors", cl->errors }, { "moved", cl->moved }, { "asks", cl->asks },
		{ "refreshes", cl->refreshes }, { "conn_errors", cl->conn_errors },
	};
	json_t *o = json_pack("{s:b, s:b, s:b}", "remote", cl->remote, "up", cl->up,
			      "seen", cl->seen);

	for (size_t i = 0; o && i < sizeof(f) / sizeof(f[0]); i++) {
		if (json_object_set_new(o, f[i].name, ju64(f[i].v))) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

static int stats_json(const struct kvc_stats *st, const struct kvc_cluster *cl)
{
	json_t *tiers = json_array(), *doc;

	for (unsigned i = 0; tiers && i < st->n_tiers; i++) {
		if (json_array_append_new(tiers, tier_json(&st->tiers[i]))) {
			json_decref(tiers);
			tiers = NULL;
		}
	}
	if (!tiers)
		return json_print(NULL);
	doc = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			" s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			"tiers", tiers,
			"connections", ju64(st->connections),
			"pinned_chunks", ju64(st->pinned_chunks),
			"pending_chunks", ju64(st->pending_chunks),
			"checksum_failures", ju64(st->checksum_failures),
			"namespaces", ju64(st->namespaces),
			"uptime_ms", ju64(st->uptime_ms),
			"writeback_failures", ju64(st->writeback_failures),
			"writeback_lost", ju64(st->writeback_lost),
			"ssd_records_missing", ju64(st->ssd_records_missing),
			"ssd_records_wrong_ns", ju64(st->ssd_records_wrong_ns),
			"records", ju64(st->records),
			"max_records", ju64(st->max_records),
			"meta_bytes", ju64(st->meta_bytes),
			"plans_loaded", ju64(st->plans_loaded),
			"plans_computed", ju64(st->plans_computed),
			"plans_both", ju64(st->plans_both),
			"plan_tokens_loaded", ju64(st->plan_tokens_loaded),
			"plan_tokens_computed", ju64(st->plan_tokens_computed));
	if (doc && cl->remote && json_object_set_new(doc, "remote", cluster_json(cl))) {
		json_decref(doc);
		doc = NULL;
	}
	return json_print(doc);
}

/* What the remote tier's line in STATS does not say. */
static void stats_remote(const struct kvc_cluster *cl)
{
	char b1[64];

	printf("  %-16s %" PRIu64 " chunks, %s (%" PRIu64 " failed)\n", "written",
	       cl->stores - cl->store_failures, fmt_size(b1, sizeof(b1), cl->store_bytes),
	       cl->store_failures);
	printf("  %-16s %" PRIu64 " chunks, %s (%" PRIu64 " failed)\n", "fetched",
	       cl->loads - cl->load_failures, fmt_size(b1, sizeof(b1), cl->load_bytes),
	       cl->load_failures);
	printf("  %-16s %u waiting, %u under way\n", "write-through", cl->write_queue,
	       cl->write_inflight);
	printf("  %-16s %" PRIu64 "\n", "timeouts", cl->timeouts);
	printf("  %-16s %" PRIu64 "\n", "errors", cl->errors);
	printf("  %-16s %" PRIu64 "\n", "checksum fails", cl->corrupt);
	if (cl->seen)
		printf("  %-16s %u of %u%s\n", "masters up", cl->masters - cl->masters_down,
		       cl->masters, cl->up ? "" : " (the last batch got no answer)");
	else
		printf("  %-16s - (not connected yet)\n", "masters up");
}

static void stats_human(const struct kvc_stats *st, const struct kvc_cluster *cl)
{
	char b1[64], b2[64];

	printf("%-18s %s (%" PRIu64 " ms)\n", "uptime",
	       fmt_age(b1, sizeof(b1), st->uptime_ms), st->uptime_ms);
	printf("%-18s %u\n", "connections", st->connections);
	printf("%-18s %" PRIu64 "\n", "namespaces", st->namespaces);
	printf("%-18s %" PRIu64 "\n", "pinned chunks", st->pinned_chunks);
	printf("%-18s %" PRIu64 "\n", "pending chunks", st->pending_chunks);
	printf("%-18s %" PRIu64 "\n", "checksum failures", st->checksum_failures);
	printf("%-18s %" PRIu64 " of %" PRIu64 " (%s of metadata)\n", "chunk records",
	       st->records, st->max_records, fmt_size(b1, sizeof(b1), st->meta_bytes));
	printf("%-18s %" PRIu64 " (lost from DRAM after it: %" PRIu64 ")\n",
	       "write-back fails", st->writeback_failures, st->writeback_lost);
	if (st->ssd_records_missing || st->ssd_records_wrong_ns)
		printf("%-18s %" PRIu64 " (data file missing or short), %" PRIu64
		       " (namespace id names another name)\n", "ssd records lost",
		       st->ssd_records_missing, st->ssd_records_wrong_ns);
	printf("%-18s loaded %" PRIu64 ", computed %" PRIu64 ", both %" PRIu64
	       " (tokens loaded %" PRIu64 ", computed %" PRIu64 ")\n", "plans",
	       st->plans_loaded, st->plans_computed, st->plans_both,
	       st->plan_tokens_loaded, st->plan_tokens_computed);
	for (unsigned i = 0; i < st->n_tiers; i++) {
		const struct kvc_tier_stats *t = &st->tiers[i];
		uint64_t lookups = t->hits + t->misses;

		printf("\ntier %s (policy %s)\n", t->name, t->policy);
		printf("  %-16s %s\n", "capacity",
		       fmt_size(b1, sizeof(b1), t->capacity_bytes));
		printf("  %-16s %s", "used",
		       fmt_size(b2, sizeof(b2), t->used_bytes));
		if (t->capacity_bytes)
			printf(", %.1f%%", 100.0 * (double)t->used_bytes /
			       (double)t->capacity_bytes);
		printf("\n  %-16s %" PRIu64 "\n", "chunks", t->chunks);
		printf("  %-16s %" PRIu64 "\n", "hits", t->hits);
		printf("  %-16s %" PRIu64 "\n", "misses", t->misses);
		if (lookups)
			printf("  %-16s %.1f%%\n", "hit ratio",
			       100.0 * (double)t->hits / (double)lookups);
		else
			printf("  %-16s -\n", "hit ratio");
		printf("  %-16s %" PRIu64 "\n", "evictions", t->evictions);
		printf("  %-16s %" PRIu64 "\n", "promotions", t->promotions);
		printf("  %-16s %" PRIu64 "\n", "demotions", t->demotions);
		printf("  %-16s %" PRIu64 "\n", "alloc failures", t->alloc_failures);
		if (t->read_samples)
			printf("  %-16s %.3f GB/s (%" PRIu64 " samples, %s)\n", "read bw",
			       (double)t->read_bw / 1e9, t->read_samples,
			       fmt_size(b1, sizeof(b1), t->read_bytes));
		else
			printf("  %-16s - (no sample yet)\n", "read bw");
		if (!strcmp(t->name, "remote") && cl->remote)
			stats_remote(cl);
	}
}

static int cmd_stats(struct kvc *c, const struct args *a)
{
	static struct kvc_cluster cl;	/* 10 KiB */
	struct kvc_stats st;
	int ret;

	ret = kvc_stats(c, &st);
	if (ret) {
		fail("stats", ret);
		return RC_ERR;
	}
	/* The remote tier's figures beyond its tier line. */
	for (unsigned i = 0; i < st.n_tiers; i++) {
		if (strcmp(st.tiers[i].name, "remote"))
			continue;
		ret = kvc_cluster(c, &cl);
		if (ret) {
			fail("the remote tier's figures", ret);
			return RC_ERR;
		}
	}
	if (a->given & OPT_JSON)
		return stats_json(&st, &cl);
	stats_human(&st, &cl);
	return RC_OK;
}

/* "0-5460,10923-16383", and ",..." when ranges were left out. */
static const char *fmt_ranges(char *buf, size_t len, const struct kvc_cluster_node *n)
{
	size_t at = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n->n_ranges && at < len; i++) {
		const struct kvc_slot_range *r = &n->ranges[i];

		if (r->first == r->last)
			at += (size_t)snprintf(buf + at, len - at, "%s%u", i ? "," : "",
					       (unsigned)r->first);
		else
			at += (size_t)snprintf(buf + at, len - at, "%s%u-%u", i ? "," : "",
					       (unsigned)r->first, (unsigned)r->last);
	}
	if (n->ranges_total > n->n_ranges && at < len)
		snprintf(buf + at, len - at, ",... (%u ranges)", n->ranges_total);
	if (!n->n_ranges)
		snprintf(buf, len, "-");
	return buf;
}

static json_t *cluster_node_json(const struct kvc_cluster_node *n)
{
	json_t *ranges = json_array();

	for (unsigned i = 0; ranges && i < n->n_ranges; i++)
		json_array_append_new(ranges, json_pack("[i, i]", (int)n->ranges[i].first,
							(int)n->ranges[i].last));
	return json_pack("{s:s, s:b, s:o, s:o, s:b, s:i, s:s?, s:o, s:o}",
			 "addr", n->addr, "master", n->slots > 0, "slots", ju64(n->slots),
			 "conns_open", ju64(n->conns_open), "up", n->state == 0,
			 "state", -n->state, "error", n->state ? kvc_strerror(n->state) : NULL,
			 "ranges", ranges, "ranges_total", ju64(n->ranges_total));
}

static int cluster_print_json(const struct kvc_cluster *cl)
{
	json_t *doc = cluster_json(cl), *nodes = json_array();

	for (unsigned i = 0; nodes && i < cl->n_nodes; i++) {
		if (json_array_append_new(nodes, cluster_node_json(&cl->nodes[i]))) {
			json_decref(nodes);
			nodes = NULL;
		}
	}
	if (doc && (!nodes || json_object_set_new(doc, "nodes", nodes))) {
		json_decref(doc);
		doc = NULL;
	}
	return json_print(doc);
}

static void cluster_human(const struct kvc_cluster *cl)
{
	char b1[64], b2[64], ranges[256];

	if (!cl->seen)
		printf("%-10s not connected yet: the daemon connects at its first write or lookup\n",
		       "cluster");
	else
		printf("%-10s %s, %u of %u masters up, %u nodes (as seen %s ago)\n", "cluster",
		       cl->up ? "up" : "not answering", cl->masters - cl->masters_down,
		       cl->masters, cl->nodes_known, fmt_age(b1, sizeof(b1), cl->age_ms));
	printf("%-10s %" PRIu64 " chunks, %s; %" PRIu64 " failed; %u waiting, %u under way\n",
	       "written", cl->stores - cl->store_failures,
	       fmt_size(b1, sizeof(b1), cl->store_bytes), cl->store_failures,
	       cl->write_queue, cl->write_inflight);
	printf("%-10s %" PRIu64 " chunks, %s; %" PRIu64 " failed\n", "fetched",
	       cl->loads - cl->load_failures, fmt_size(b2, sizeof(b2), cl->load_bytes),
	       cl->load_failures);
	printf("%-10s %" PRIu64 " keys asked, %" PRIu64 " found\n", "probes", cl->probes,
	       cl->probe_hits);
	printf("%-10s %" PRIu64 " timeouts, %" PRIu64 " errors, %" PRIu64
	       " checksum failures, %" PRIu64 " connections failed\n", "failures",
	       cl->timeouts, cl->errors, cl->corrupt, cl->conn_errors);
	printf("%-10s %" PRIu64 " loads, %" PRIu64 " MOVED, %" PRIu64 " ASK followed\n",
	       "slot map", cl->refreshes, cl->moved, cl->asks);
	if (!cl->n_nodes)
		return;
	printf("\n%-24s %-7s %6s %5s  %-20s %s\n", "NODE", "ROLE", "SLOTS", "CONNS", "RANGES",
	       "STATE");
	for (unsigned i = 0; i < cl->n_nodes; i++) {
		const struct kvc_cluster_node *n = &cl->nodes[i];

		printf("%-24s %-7s %6u %5u  %-20s %s%s\n", n->addr,
		       n->slots ? "master" : "other", n->slots, n->conns_open,
		       fmt_ranges(ranges, sizeof(ranges), n), n->state ? "down: " : "up",
		       n->state ? kvc_strerror(n->state) : "");
	}
	if (cl->nodes_known > cl->n_nodes)
		printf("(%u more nodes not shown)\n", cl->nodes_known - cl->n_nodes);
}

static int cmd_cluster(struct kvc *c, const struct args *a)
{
	static struct kvc_cluster cl;	/* 10 KiB */
	int ret = kvc_cluster(c, &cl);

	if (ret) {
		fail("cluster", ret);
		return RC_ERR;
	}
	if (!cl.remote) {
		fprintf(stderr, "kvctl: cluster: the daemon has no remote tier\n");
		return RC_ERR;
	}
	if (a->given & OPT_JSON)
		return cluster_print_json(&cl);
	cluster_human(&cl);
	return RC_OK;
}

static int cmd_put(struct kvc *c, const struct args *a)
{
	const char *name = strcmp(a->file, "-") ? a->file : "<stdin>";
	char hex[33], sz[64];
	char *buf = NULL;
	size_t len = 0;
	uint32_t ns;
	int ret;

	ret = read_all(a->file, &buf, &len);
	if (ret) {
		fprintf(stderr, "kvctl: cannot read '%s': %s\n", name,
			kvc_strerror(ret));
		return RC_ERR;
	}
	if (len == 0) {
		fprintf(stderr, "kvctl: '%s' is empty: a chunk needs at least one byte\n",
			name);
		ret = -EINVAL;
		goto out;
	}
	ret = ns_register(c, a->ns_name, &ns);
	if (ret)
		goto out;
	ret = kvc_put(c, ns, &a->key, a->given & OPT_PARENT ? &a->parent : NULL,
		      a->tokens, a->position, buf, len);
	kvc_key_to_hex(&a->key, hex);
	if (ret == -EEXIST) {
		printf("%s: already cached\n", hex);
		ret = 0;
	} else if (ret) {
		fprintf(stderr, "kvctl: cannot put %s of %s: %s\n", hex,
			fmt_size(sz, sizeof(sz), len), kvc_strerror(ret));
	} else {
		printf("%s: stored %s\n", hex, fmt_size(sz, sizeof(sz), len));
	}
out:
	free(buf);
	return ret ? RC_ERR : RC_OK;
}

/*
 * Copy a chunk into a malloc'd buffer the caller owns. INSPECT gives the
 * size without counting a hit; should a larger chunk replace it before
 * the GET, grow and retry. Returns 0, -ENOENT or another error.
 */
static int get_chunk(struct kvc *c, uint32_t ns, const struct kvc_key *key,
		     char **out, size_t *len)
{
	struct kvc_entry e;
	char *buf = NULL, *p;
	size_t need;
	int ret;

	ret = kvc_inspect(c, ns, key, &e);
	if (ret)
		return ret;
	need = e.bytes;
	for (int tries = 0; tries < 4; tries++) {
		p = realloc(buf, need ? need : 1);
		if (!p) {
			ret = -ENOMEM;
			break;
		}
		buf = p;
		ret = kvc_get(c, ns, key, buf, need, &need);
		if (ret != -ENOBUFS)
			break;
	}
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = need;
	return 0;
}

static int cmd_get(struct kvc *c, const struct args *a)
{
	const char *name = a->out ? a->out : "<stdout>";
	char *buf = NULL;
	size_t len = 0;
	char hex[33];
	uint32_t ns;
	FILE *f;
	int ret;

	ret = ns_lookup(c, a->ns_name, &ns);
	if (ret)
		return ret;
	kvc_key_to_hex(&a->key, hex);
	ret = get_chunk(c, ns, &a->key, &buf, &len);
	if (ret == -ENOENT) {
		fprintf(stderr, "%s: miss\n", hex);
		return RC_MISS;
	}
	if (ret) {
		fprintf(stderr, "kvctl: cannot get %s: %s\n", hex,
			kvc_strerror(ret));
		return RC_ERR;
	}

	f = a->out ? fopen(a->out, "wb") : stdout;
	if (!f) {
		ret = -errno;
		goto out;
	}
	ret = write_all(f, buf, len);
	if (a->out && fclose(f) && !ret)
		ret = -errno;
out:
	if (ret)
		fprintf(stderr, "kvctl: cannot write '%s': %s\n", name,
			kvc_strerror(ret));
	free(buf);
	return ret ? RC_ERR : RC_OK;
}

static json_t *entry_json(const struct kvc_entry *e)
{
	char key[33], parent[33];

	kvc_key_to_hex(&e->key, key);
	kvc_key_to_hex(&e->parent, parent);
	return json_pack("{s:s, s:s?, s:b, s:I, s:s, s:o, s:o, s:I, s:I, s:I,"
			 " s:I, s:o, s:o}",
			 "key", key,
			 "parent", e->has_parent ? parent : NULL,
			 "has_parent", e->has_parent,
			 "ns", (json_int_t)e->ns,
			 "tier", tier_name(e->tier),
			 "bytes", ju64(e->bytes),
			 "offset", ju64(e->offset),
			 "tokens", (json_int_t)e->tokens,
			 "position", (json_int_t)e->position,
			 "pins", (json_int_t)e->pins,
			 "children", (json_int_t)e->children,
			 "hits", ju64(e->hits),
			 "age_ms", ju64(e->age_ms));
}

static void ls_row(const struct kvc_entry *e)
{
	char hex[33], age[32];

	kvc_key_to_hex(&e->key, hex);
	printf("%-32s %6" PRIu32 " %-4s %12" PRIu64 " %7" PRIu32 " %8" PRIu32
	       " %5" PRIu32 " %8" PRIu64 " %8s\n", hex, e->ns, tier_name(e->tier),
	       e->bytes, e->tokens, e->position, e->pins, e->hits,
	       fmt_age(age, sizeof(age), e->age_ms));
}

static int cmd_ls(struct kvc *c, const struct args *a)
{
	bool json = a->given & OPT_JSON;
	uint32_t ns = KVC_NS_ALL;
	uint64_t cursor = 0, total = 0, bytes = 0;
	struct kvc_entry *page;
	json_t *list = NULL;
	char sz[64];
	int n, rc = RC_ERR;

	if (a->ns_name && ns_lookup(c, a->ns_name, &ns))
		return RC_ERR;
	page = calloc(KVC_MAX_BATCH, sizeof(*page));
	if (!page || (json && !(list = json_array()))) {
		fail("ls", -ENOMEM);
		goto out;
	}
	if (!json)
		printf("%-32s %6s %-4s %12s %7s %8s %5s %8s %8s\n", "KEY", "NS",
		       "TIER", "BYTES", "TOKENS", "POSITION", "PINS", "HITS", "AGE");
	do {
		n = kvc_ls(c, ns, a->tier, &cursor, page, KVC_MAX_BATCH);
		if (n < 0) {
			fail("ls", n);
			goto out;
		}
		for (int i = 0; i < n; i++) {
			total++;
			bytes += page[i].bytes;
			if (!json) {
				ls_row(&page[i]);
				continue;
			}
			if (json_array_append_new(list, entry_json(&page[i]))) {
				fail("ls", -ENOMEM);
				goto out;
			}
		}
	} while (cursor);

	if (json) {
		rc = json_print(json_pack("{s:O}", "chunks", list));
	} else {
		printf("%" PRIu64 " chunk%s, %s\n", total, total == 1 ? "" : "s",
		       fmt_size(sz, sizeof(sz), bytes));
		rc = RC_OK;
	}
out:
	json_decref(list);
	free(page);
	return rc;
}

static void inspect_human(const struct kvc_entry *e)
{
	char hex[33], buf[64];

	kvc_key_to_hex(&e->key, hex);
	printf("%-10s %s\n", "key", hex);
	kvc_key_to_hex(&e->parent, hex);
	printf("%-10s %s\n", "parent", e->has_parent ? hex : "none (first chunk)");
	printf("%-10s %" PRIu32 "\n", "namespace", e->ns);
	printf("%-10s %s\n", "tier", tier_name(e->tier));
	printf("%-10s %s\n", "bytes", fmt_size(buf, sizeof(buf), e->bytes));
	printf("%-10s %" PRIu64 "\n", "offset", e->offset);
	printf("%-10s %" PRIu32 "\n", "tokens", e->tokens);
	printf("%-10s %" PRIu32 "\n", "position", e->position);
	printf("%-10s %" PRIu32 "\n", "pins", e->pins);
	printf("%-10s %" PRIu32 "\n", "children", e->children);
	printf("%-10s %" PRIu64 "\n", "hits", e->hits);
	printf("%-10s %s (%" PRIu64 " ms since last use)\n", "age",
	       fmt_age(buf, sizeof(buf), e->age_ms), e->age_ms);
}

static int cmd_inspect(struct kvc *c, const struct args *a)
{
	struct kvc_entry e;
	char hex[33];
	uint32_t ns;
	int ret;

	ret = ns_lookup(c, a->ns_name, &ns);
	if (ret)
		return ret;
	kvc_key_to_hex(&a->key, hex);
	ret = kvc_inspect(c, ns, &a->key, &e);
	if (ret == -ENOENT) {
		fprintf(stderr, "%s: not cached\n", hex);
		return RC_MISS;
	}
	if (ret) {
		fprintf(stderr, "kvctl: cannot inspect %s: %s\n", hex,
			kvc_strerror(ret));
		return RC_ERR;
	}
	if (a->given & OPT_JSON)
		return json_print(entry_json(&e));
	inspect_human(&e);
	return RC_OK;
}

static int cmd_evict(struct kvc *c, const struct args *a)
{
	char hex[33];
	uint32_t ns;
	int ret, st;

	ret = ns_lookup(c, a->ns_name, &ns);
	if (ret)
		return ret;
	kvc_key_to_hex(&a->key, hex);
	ret = kvc_evict(c, ns, &a->key, 1, &st);
	if (ret >= 0)
		ret = st;
	switch (ret) {
	case 0:
		printf("%s: evicted\n", hex);
		return RC_OK;
	case -ENOENT:
		fprintf(stderr, "%s: not cached\n", hex);
		return RC_MISS;
	case -EBUSY:
		fprintf(stderr, "kvctl: cannot evict %s: pinned or being written\n",
			hex);
		return RC_ERR;
	default:
		fprintf(stderr, "kvctl: cannot evict %s: %s\n", hex,
			kvc_strerror(ret));
		return RC_ERR;
	}
}

static int cmd_flush(struct kvc *c, const struct args *a)
{
	bool drop = a->given & OPT_DROP;
	struct kvc_flush_result res;
	char sz[64];
	int ret;

	/* Writing a large DRAM tier back takes as long as the disk needs:
	 * no deadline unless KVSTORE_TIMEOUT_MS asks for one. */
	if (!getenv("KVSTORE_TIMEOUT_MS"))
		kvc_set_timeout(c, 0);
	ret = kvc_flush(c, a->tier, drop ? KVC_FLUSH_DROP : 0, &res);
	if (ret && ret != -KVC_EREFUSED) {
		if (a->tier == KVC_TIER_NONE)
			fail("flush", ret);
		else
			fprintf(stderr, "kvctl: cannot flush tier '%s': %s\n",
				tier_name(a->tier), kvc_strerror(ret));
		return RC_ERR;
	}
	/* Refused chunks are an error: they are not durable. */
	if (ret)
		fprintf(stderr, "kvctl: flush: the tier below refused %" PRIu64 " chunk%s (%s): they are not durable\n",
			res.skipped, res.skipped == 1 ? "" : "s", kvc_strerror(res.why));
	if (a->given & OPT_JSON) {
		json_print(json_pack("{s:s, s:s, s:o, s:o, s:o, s:s?}",
				     "action", drop ? "drop" : "write-back",
				     "tier", tier_name(a->tier),
				     "chunks", ju64(res.chunks), "bytes", ju64(res.bytes),
				     drop ? "skipped" : "refused", ju64(res.skipped),
				     "refused_why", ret ? kvc_strerror(res.why) : NULL));
		return ret ? RC_ERR : RC_OK;
	}
	printf("%s %" PRIu64 " chunk%s, %s; %s %" PRIu64 "\n",
	       drop ? "dropped" : "wrote back (durable)", res.chunks,
	       res.chunks == 1 ? "" : "s", fmt_size(sz, sizeof(sz), res.bytes),
	       drop ? "skipped, pinned or uncommitted:" : "refused by the tier below:",
	       res.skipped);
	return ret ? RC_ERR : RC_OK;
}

/* ---- ns ls | rm ------------------------------------------------------------ */

static json_t *ns_json(const struct kvc_ns_info *n)
{
	char salt[17];

	snprintf(salt, sizeof(salt), "%016" PRIx64, n->salt);
	return json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:b}",
			 "name", n->name, "ns", (json_int_t)n->ns,
			 "uid", (json_int_t)n->uid, "salt", salt,
			 "chunks", ju64(n->chunks), "bytes", ju64(n->bytes),
			 "pending", n->pending);
}

static int ns_ls(struct kvc *c, const struct args *a)
{
	bool json = a->given & OPT_JSON;
	struct kvc_ns_info *page;
	json_t *list = NULL;
	uint32_t cursor = 0;
	uint64_t total = 0;
	int n, rc = RC_ERR;

	page = calloc(KVC_NS_PAGE, sizeof(*page));
	if (!page || (json && !(list = json_array()))) {
		fail("ns ls", -ENOMEM);
		goto out;
	}
	if (!json)
		printf("%6s %10s %10s %14s  %s\n", "NS", "UID", "CHUNKS", "BYTES", "NAME");
	do {
		n = kvc_ns_list(c, &cursor, page, KVC_NS_PAGE);
		if (n < 0) {
			fail("ns ls", n);
			goto out;
		}
		for (int i = 0; i < n; i++) {
			total++;
			if (json) {
				if (json_array_append_new(list, ns_json(&page[i]))) {
					fail("ns ls", -ENOMEM);
					goto out;
				}
				continue;
			}
			printf("%6" PRIu32 " %10" PRIu32 " %10" PRIu64 " %14" PRIu64 "  %s%s\n",
			       page[i].ns, page[i].uid, page[i].chunks, page[i].bytes,
			       page[i].name, page[i].pending ? " (pending)" : "");
		}
	} while (cursor);
	if (json) {
		rc = json_print(json_pack("{s:O}", "namespaces", list));
	} else {
		printf("%" PRIu64 " namespace%s\n", total, total == 1 ? "" : "s");
		rc = RC_OK;
	}
out:
	json_decref(list);
	free(page);
	return rc;
}

static int ns_rm(struct kvc *c, const struct args *a, const char *name)
{
	uint64_t chunks = 0, bytes = 0;
	char sz[64];
	int ret;

	ret = kvc_ns_drop(c, name, &chunks, &bytes);
	if (ret) {
		fprintf(stderr, "kvctl: cannot remove namespace '%s': %s\n", name,
			ret == -EBUSY ? "a chunk of it is pinned or being written" :
			ret == -ENOENT ? "no such namespace" : kvc_strerror(ret));
		return RC_ERR;
	}
	if (a->given & OPT_JSON)
		return json_print(json_pack("{s:s, s:o, s:o}", "removed", name,
					    "chunks", ju64(chunks), "bytes", ju64(bytes)));
	printf("removed namespace '%s': %" PRIu64 " chunk%s, %s\n", name, chunks,
	       chunks == 1 ? "" : "s", fmt_size(sz, sizeof(sz), bytes));
	return RC_OK;
}

static int cmd_ns(struct kvc *c, const struct args *a)
{
	if (a->n_ops == 1 && !strcmp(a->ops[0], "ls"))
		return ns_ls(c, a);
	if (a->n_ops == 2 && !strcmp(a->ops[0], "rm"))
		return ns_rm(c, a, a->ops[1]);
	fprintf(stderr, "kvctl: ns: want 'ls' or 'rm NAME'\n");
	return RC_ERR;
}

static int cmd_health(struct kvc *unused, const struct args *a)
{
	const char *path = socket_shown(a->socket);
	bool json = a->given & OPT_JSON;
	struct kvc_stats st;
	struct kvc *c;
	const char *what;
	char age[32];
	uint64_t up;
	int ret;

	what = "cannot reach kvstored";
	ret = kvc_connect(a->socket, &c);
	if (!ret) {
		what = "kvstored does not answer";
		ret = kvc_ping(c, &up);
		if (!ret)
			ret = kvc_stats(c, &st);
		kvc_close(c);
	}
	if (ret) {
		fprintf(stderr, "kvctl: %s at '%s': %s\n", what, path,
			kvc_strerror(ret));
		if (json)
			json_print(json_pack("{s:s, s:s, s:s}", "status", "down",
					     "socket", path,
					     "error", kvc_strerror(ret)));
		return RC_ERR;
	}
	if (json)
		return json_print(json_pack("{s:s, s:s, s:o, s:o, s:I}",
					    "status", "ok", "socket", path,
					    "uptime_ms", ju64(st.uptime_ms),
					    "connections", ju64(st.connections),
					    "tiers", (json_int_t)st.n_tiers));
	printf("ok: kvstored at '%s', up %s, %u connection%s, %u tier%s\n",
	       path, fmt_age(age, sizeof(age), st.uptime_ms),
	       st.connections, st.connections == 1 ? "" : "s",
	       st.n_tiers, st.n_tiers == 1 ? "" : "s");
	return RC_OK;
}

static int tier_of(const char *name, uint8_t *tier)
{
	static const char *const names[] = { "hbm", "dram", "ssd" };

	for (uint8_t i = 0; i < 3; i++)
		if (!strcmp(name, names[i])) {
			*tier = i;
			return 0;
		}
	fprintf(stderr, "kvctl: unknown tier '%s' (dram, ssd or hbm)\n", name);
	return -EINVAL;
}

static int cmd_policy(struct kvc *c, const struct args *a)
{
	bool set = a->n_ops == 3 && !strcmp(a->ops[0], "set");
	char name[16];
	uint8_t tier;
	int ret;

	if (!(set || (a->n_ops == 2 && !strcmp(a->ops[0], "get")))) {
		fprintf(stderr, "kvctl: policy: want 'get TIER' or 'set TIER NAME'\n");
		return RC_ERR;
	}
	if (tier_of(a->ops[1], &tier))
		return RC_ERR;
	ret = kvc_policy(c, tier, set ? a->ops[2] : NULL, name);
	if (ret) {
		fprintf(stderr, "kvctl: cannot %s the policy of tier '%s'%s%s: %s\n",
			set ? "set" : "get", a->ops[1], set ? " to " : "",
			set ? a->ops[2] : "",
			ret == -ENOENT ? "no such policy" : kvc_strerror(ret));
		return RC_ERR;
	}
	if (a->given & OPT_JSON)
		return json_print(json_pack("{s:s, s:s}", "tier", a->ops[1], "policy", name));
	printf("%s: %s\n", a->ops[1], name);
	return RC_OK;
}

static json_t *tenant_json(const struct kvc_tenant *t)
{
	json_t *tiers = json_object(), *uids = json_array();

	for (unsigned i = 0; i < t->n_uids && i < 8; i++)
		json_array_append_new(uids, ju64(t->uids[i]));
	for (uint8_t k = 0; k < 3; k++)
		json_object_set_new(tiers, tier_name(k),
				    json_pack("{s:o, s:o, s:o}", "capacity_bytes",
					      ju64(t->capacity[k]), "used_bytes",
					      ju64(t->used[k]), "chunks", ju64(t->chunks[k])));
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			 "name", t->name, "uids", uids, "n_uids", ju64(t->n_uids),
			 "connections", ju64(t->connections), "tiers", tiers,
			 "namespaces", ju64(t->namespaces),
			 "max_namespaces", ju64(t->max_namespaces),
			 "uncommitted_bytes", ju64(t->uncommitted),
			 "max_uncommitted_bytes", ju64(t->max_uncommitted),
			 "records", ju64(t->records), "max_records", ju64(t->max_records));
}

static int cmd_tenants(struct kvc *c, const struct args *a)
{
	struct kvc_tenant t[64];
	int n = kvc_tenants(c, t, 64);
	char b1[32], b2[32];

	if (n < 0) {
		fprintf(stderr, "kvctl: cannot list the tenants: %s\n", kvc_strerror(n));
		return RC_ERR;
	}
	if (n > 64)
		n = 64;
	if (a->given & OPT_JSON) {
		json_t *arr = json_array();

		for (int i = 0; i < n; i++)
			json_array_append_new(arr, tenant_json(&t[i]));
		return json_print(json_pack("{s:o}", "tenants", arr));
	}
	for (int i = 0; i < n; i++) {
		printf("%stenant %s: uid%s", i ? "\n" : "", t[i].name, t[i].n_uids > 1 ? "s " : " ");
		for (unsigned u = 0; u < t[i].n_uids && u < 8; u++)
			printf("%s%u", u ? "," : "", (unsigned)t[i].uids[u]);
		printf("%s, %u connection%s\n", t[i].n_uids > 8 ? ",..." : "",
		       t[i].connections, t[i].connections == 1 ? "" : "s");
		for (uint8_t k = 0; k < 3; k++) {
			if (!t[i].capacity[k] && !t[i].used[k])
				continue;
			printf("  %-12s %s of %s, %" PRIu64 " chunks\n", tier_name(k),
			       fmt_size(b1, sizeof(b1), t[i].used[k]),
			       fmt_size(b2, sizeof(b2), t[i].capacity[k]), t[i].chunks[k]);
		}
		printf("  %-12s %" PRIu64 " of %" PRIu64 "\n", "namespaces", t[i].namespaces,
		       t[i].max_namespaces);
		printf("  %-12s %s of %s\n", "uncommitted",
		       fmt_size(b1, sizeof(b1), t[i].uncommitted),
		       fmt_size(b2, sizeof(b2), t[i].max_uncommitted));
		printf("  %-12s %" PRIu64 " of %" PRIu64 "\n", "records", t[i].records,
		       t[i].max_records);
	}
	return RC_OK;
}

static const struct cmd cmds[] = {
	{
		.name = "stats", .usage = "[--json]",
		.help = "show the daemon's counters and each tier's",
		.opts = OPT_JSON, .run = cmd_stats,
	}, {
		.name = "put", .usage = "--ns NAME --key HEX32 [--parent HEX32] "
					"[--tokens N] [--position P] FILE",
		.help = "store FILE (- for stdin) as one chunk",
		.note = "A key already cached is not an error: exit status 0.",
		.opts = OPT_NS | OPT_KEY | OPT_PARENT | OPT_TOKENS | OPT_POSITION,
		.required = OPT_NS | OPT_KEY, .operands = 1, .run = cmd_put,
	}, {
		.name = "get", .usage = "--ns NAME --key HEX32 [-o FILE]",
		.help = "copy a chunk to FILE or stdout; exit 1 when not cached",
		.opts = OPT_NS | OPT_KEY | OPT_OUT,
		.required = OPT_NS | OPT_KEY, .run = cmd_get,
	}, {
		.name = "ls", .usage = "[--ns NAME] [--tier dram|ssd|hbm] [--json]",
		.help = "list the cached chunks (of every namespace you may see)",
		.opts = OPT_NS | OPT_TIER | OPT_JSON, .run = cmd_ls,
	}, {
		.name = "inspect", .usage = "--ns NAME --key HEX32 [--json]",
		.help = "show a chunk's metadata; exit 1 when not cached",
		.opts = OPT_NS | OPT_KEY | OPT_JSON,
		.required = OPT_NS | OPT_KEY, .run = cmd_inspect,
	}, {
		.name = "evict", .usage = "--ns NAME --key HEX32",
		.help = "drop a chunk; exit 1 when not cached",
		.note = "A chunk pinned or being written stays: exit status 2.",
		.opts = OPT_NS | OPT_KEY,
		.required = OPT_NS | OPT_KEY, .run = cmd_evict,
	}, {
		.name = "flush", .usage = "[--tier dram|ssd|hbm] [--drop] [--json]",
		.help = "write tiers back to the tier below, or drop their chunks",
		.note = "--drop --tier T drops tier T's copies only: chunks with\n"
			"copies in other tiers keep them (dropping DRAM copies also\n"
			"drops the HBM copies of those chunks). Exit status 2 when\n"
			"the tier below refused chunks: they are not durable.",
		.opts = OPT_TIER | OPT_DROP | OPT_JSON, .run = cmd_flush,
	}, {
		.name = "ns", .usage = "ls | rm NAME  [--json]",
		.help = "list the namespaces you may see, or remove one",
		.note = "rm drops every chunk of the namespace from every tier and\n"
			"its records on disk; only its owner, root and the daemon's\n"
			"user may. A namespace with a pinned chunk stays: exit 2.",
		.opts = OPT_JSON, .operands = -1, .run = cmd_ns,
	}, {
		.name = "tenants", .usage = "[--json]",
		.help = "show each tenant's quotas and what it holds (yours; all for root)",
		.opts = OPT_JSON, .run = cmd_tenants,
	}, {
		.name = "cluster", .usage = "[--json]",
		.help = "show the remote tier: the cluster's nodes, slot map and figures",
		.note = "As the daemon's cluster thread saw them after its last batch.\n"
			"A node is down while the daemon leaves it alone after a\n"
			"failure. Exit status 2 when the daemon has no remote tier.",
		.opts = OPT_JSON, .run = cmd_cluster,
	}, {
		.name = "policy", .usage = "get TIER | set TIER NAME  [--json]",
		.help = "show or switch a tier's eviction policy (lru, gdsf, h2o)",
		.note = "A switch keeps the cached chunks and their history.",
		.opts = OPT_JSON, .operands = -1, .run = cmd_policy,
	}, {
		.name = "health", .usage = "[--json]",
		.help = "check that the daemon answers; exit 2 when it does not",
		.opts = OPT_JSON, .self_connect = true, .run = cmd_health,
	},
};
static const size_t n_cmds = sizeof(cmds) / sizeof(cmds[0]);

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: kvctl [--socket PATH] COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < n_cmds; i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n--socket defaults to $KVSTORE_SOCKET, else %s.\n"
		"'kvctl COMMAND --help' shows a command's options.\n"
		"Exit status: 0 ok, 1 not cached, 2 error.\n", KVC_DEFAULT_SOCKET);
}

static void cmd_usage(FILE *f, const struct cmd *cmd)
{
	fprintf(f, "usage: kvctl [--socket PATH] %s %s\n", cmd->name, cmd->usage);
}

static void cmd_help(const struct cmd *cmd)
{
	cmd_usage(stdout, cmd);
	printf("%s\n\n", cmd->help);
	for (size_t i = 0; i < N_OPTS; i++)
		if ((cmd->opts | OPT_SOCKET | OPT_HELP) & (unsigned)optdefs[i].o.val)
			printf("  %-18s %s\n", optdefs[i].arg, optdefs[i].help);
	if (cmd->note)
		printf("\n%s\n", cmd->note);
}

static const char *opt_name(unsigned bit)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if ((unsigned)optdefs[i].o.val == bit)
			return optdefs[i].o.name;
	return "?";
}

/* Check and store one option's argument. Returns 0 or -EINVAL (reported). */
static int opt_store(struct args *a, unsigned bit, const char *arg)
{
	int ret = 0;

	switch (bit) {
	case OPT_SOCKET:
		a->socket = arg;
		break;
	case OPT_NS:
		a->ns_name = arg;
		break;
	case OPT_OUT:
		a->out = arg;
		break;
	case OPT_KEY:
	case OPT_PARENT:
		ret = kvc_key_from_hex(arg, bit == OPT_KEY ? &a->key : &a->parent);
		if (ret)
			fprintf(stderr, "kvctl: bad --%s '%s': want 32 hex digits\n",
				opt_name(bit), arg);
		break;
	case OPT_TOKENS:
	case OPT_POSITION:
		ret = u32_parse(arg, bit == OPT_TOKENS ? &a->tokens : &a->position);
		if (ret)
			fprintf(stderr, "kvctl: bad --%s '%s': want 0..%" PRIu32 "\n",
				opt_name(bit), arg, UINT32_MAX);
		break;
	case OPT_TIER:
		ret = tier_parse(arg, &a->tier);
		if (ret)
			fprintf(stderr, "kvctl: bad --tier '%s': want dram, ssd or hbm\n",
				arg);
		break;
	}
	a->given |= bit;
	return ret;
}

/*
 * Parse argv with the options in mask. Leaves optind at the first operand.
 * Returns 0, 1 for --help, or -EINVAL (reported). stop: at the first
 * operand (the global options before COMMAND) instead of permuting.
 */
static int parse_opts(int argc, char **argv, unsigned mask, bool stop,
		      struct args *a)
{
	struct option lo[N_OPTS + 1];
	char shorts[8];
	size_t n = 0;
	int ch;

	for (size_t i = 0; i < N_OPTS; i++)
		if (mask & (unsigned)optdefs[i].o.val)
			lo[n++] = optdefs[i].o;
	memset(&lo[n], 0, sizeof(lo[n]));
	snprintf(shorts, sizeof(shorts), "%s:h%s", stop ? "+" : "",
		 mask & OPT_OUT ? "o:" : "");

	optind = 0;	/* glibc: start over, forgetting the previous scan */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		switch (ch) {
		case 'h':
		case OPT_HELP:
			return 1;
		case 'o':
			ch = OPT_OUT;
			break;
		case ':':
			fprintf(stderr, "kvctl: option '%s' needs a value\n",
				argv[optind - 1]);
			return -EINVAL;
		case '?':
			if (optopt >= OPT_SOCKET)
				fprintf(stderr, "kvctl: option '--%s' takes no value\n",
					opt_name((unsigned)optopt));
			else if (optopt)
				fprintf(stderr, "kvctl: unknown option '-%c'\n",
					optopt);
			else
				fprintf(stderr, "kvctl: unknown option '%s'\n",
					argv[optind - 1]);
			return -EINVAL;
		}
		if (opt_store(a, (unsigned)ch, optarg))
			return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct args a = { .tier = KVC_TIER_NONE };
	const struct cmd *cmd = NULL;
	struct kvc *c = NULL;
	unsigned missing;
	int ret;

	ret = parse_opts(argc, argv, OPT_SOCKET | OPT_HELP, true, &a);
	if (ret) {
		usage(ret > 0 ? stdout : stderr);
		return ret > 0 ? RC_OK : RC_ERR;
	}
	if (optind >= argc) {
		fprintf(stderr, "kvctl: no command given\n");
		usage(stderr);
		return RC_ERR;
	}
	for (size_t i = 0; i < n_cmds; i++)
		if (!strcmp(argv[optind], cmds[i].name))
			cmd = &cmds[i];
	if (!cmd) {
		fprintf(stderr, "kvctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return RC_ERR;
	}

	/* The command's own options; --socket may come after it too. */
	argc -= optind;
	argv += optind;
	ret = parse_opts(argc, argv, cmd->opts | OPT_SOCKET | OPT_HELP, false, &a);
	if (ret > 0) {
		cmd_help(cmd);
		return RC_OK;
	}
	if (ret) {
		cmd_usage(stderr, cmd);
		return RC_ERR;
	}
	if (cmd->operands < 0 && argc - optind >= 1 && argc - optind <= 3) {
		a.ops = argv + optind;
		a.n_ops = argc - optind;
	} else if (argc - optind != cmd->operands) {
		if (cmd->operands >= 0 && argc - optind > cmd->operands)
			fprintf(stderr, "kvctl: %s: unexpected argument '%s'\n",
				cmd->name, argv[optind + cmd->operands]);
		else
			fprintf(stderr, "kvctl: %s: missing %s\n", cmd->name,
				cmd->operands < 0 ? "operands" : "FILE");
		cmd_usage(stderr, cmd);
		return RC_ERR;
	}
	if (cmd->operands > 0)
		a.file = argv[optind];
	missing = cmd->required & ~a.given;
	if (missing) {
		fprintf(stderr, "kvctl: %s: --%s is required\n", cmd->name,
			opt_name(missing & -missing));
		cmd_usage(stderr, cmd);
		return RC_ERR;
	}

	if (!cmd->self_connect) {
		ret = kvc_connect(a.socket, &c);
		if (ret) {
			fprintf(stderr, "kvctl: cannot connect to '%s': %s\n",
				socket_shown(a.socket), kvc_strerror(ret));
			return RC_ERR;
		}
	}
	ret = cmd->run(c, &a);
	kvc_close(c);
	errno = 0;
	if (fflush(stdout) || ferror(stdout)) {
		if (ret != RC_ERR)	/* else it was reported */
			fail("cannot write to stdout", errno ? -errno : -EIO);
		return RC_ERR;
	}
	return ret;
}
