/*
 * config.c - settings from defaults, an INI file and flags, one table.
 *
 * The table below is the single list of keys: the INI parser, the flag
 * parser, --help and kv_config_print() all walk it, so a new key is one
 * line here (and one in docs/configuration.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evict/policy.h"
#include "kvstore/config.h"
#include "lib/log.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tiers/codec.h"

enum ktype { K_STR, K_SIZE, K_U64, K_POLICY, K_LOG, K_UIDS, K_FRACTION,
	     K_MODEL, K_COSTMODE, K_CODEC, K_IOMODE, K_CODECNS, K_PROMOTE,
	     K_TENANT, K_REMOTE, K_RWRITE };

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	size_t len;		/* K_STR: buffer size */
	uint64_t min, max;	/* K_SIZE, K_U64 */
	const char *help;
};

#define F(field) offsetof(struct kv_config, field)
#define S(field) sizeof(((struct kv_config *)0)->field)

static const struct key keys[] = {
	{ "socket", K_STR, F(socket), S(socket), 0, 0,
	  "control socket path" },
	{ "socket_group", K_STR, F(socket_group), S(socket_group), 0, 0,
	  "group that may connect too (socket mode 0660); empty: 0600" },
	{ "dram_bytes", K_SIZE, F(dram_bytes), 0, 1 << 20, 1ull << 46,
	  "DRAM tier capacity (K/M/G/T suffixes)" },
	{ "alloc_granule", K_SIZE, F(alloc_granule), 0, 64, 1 << 24,
	  "allocation granule in the arenas (a power of two)" },
	{ "policy", K_POLICY, F(policy_dram), S(policy_dram), 0, 0,
	  "eviction policy per tier: TIER=NAME[,TIER=NAME] (tiers: hbm, dram, ssd)" },
	{ "max_conns", K_U64, F(max_conns), 0, 1, 1 << 20,
	  "most client connections at once" },
	{ "max_pins", K_U64, F(max_pins), 0, 1, 1u << 31,
	  "most pins one connection may hold" },
	{ "max_uncommitted", K_SIZE, F(max_uncommitted), 0, 0, 1ull << 46,
	  "most uncommitted bytes per connection; 0: half the DRAM tier" },
	{ "max_msg", K_SIZE, F(max_msg), 0, 4096, KV_PROTO_MAX_MSG,
	  "largest message body accepted, in bytes" },
	{ "max_batch", K_U64, F(max_batch), 0, 1, KV_PROTO_MAX_BATCH,
	  "most keys in one message" },
	{ "max_namespaces", K_U64, F(max_namespaces), 0, 1, 1 << 20,
	  "most namespaces the daemon keeps (split among tenants)" },
	{ "max_chunks", K_U64, F(max_chunks), 0, 0, 1ull << 32,
	  "most chunk records (metadata) the daemon keeps; 0: one per 64 KiB of the tiers" },
	{ "max_client_memory", K_SIZE, F(max_client_memory), 0, 1 << 20, 1ull << 40,
	  "most bytes all connections together may hold in buffers (beyond 32 KiB each)" },
	{ "hello_timeout_ms", K_U64, F(hello_timeout_ms), 0, 0, 3600000,
	  "close a connection that has not sent HELLO this long after connecting; 0: never" },
	{ "frame_timeout_ms", K_U64, F(frame_timeout_ms), 0, 0, 3600000,
	  "close a connection whose started message is not complete this long after; 0: never" },
	{ "alloc_lease_ms", K_U64, F(alloc_lease_ms), 0, 0, 86400000,
	  "abort an allocation not committed this long after ALLOC; 0: never" },
	{ "log", K_LOG, F(log), S(log), 0, 0,
	  "log level and subsystems: LEVEL[:SUBSYS,...]" },
	{ "log_file", K_STR, F(log_file), S(log_file), 0, 0,
	  "append log lines to this file (reopened on SIGHUP); empty: stderr" },
	{ "allow_uids", K_UIDS, 0, 0, 0, 0,
	  "users that may connect, comma-separated uids; empty: the daemon's own" },
	{ "cost_mode", K_COSTMODE, F(cost_mode), S(cost_mode), 0, 0,
	  "what a chunk's cost is for gdsf: compute (prefill work) or reload" },
	{ "cost_model", K_MODEL, 0, 0, 0, 0,
	  "default model shape for compute costs, HIDDEN:A:B (see docs/eviction.md)" },
	{ "reload_bandwidth", K_SIZE, F(reload_bandwidth), 0, 1 << 20, 1ull << 40,
	  "bytes/s of the tier below, for cost_mode reload" },
	{ "reload_latency_us", K_U64, F(reload_latency_us), 0, 0, 10000000,
	  "latency of a reload from the tier below, for cost_mode reload" },
	{ "h2o_recent_fraction", K_FRACTION, F(h2o_recent_fraction), 0, 0, 0,
	  "share of a tier h2o keeps as its recent (LRU) segment, (0, 1]" },
	{ "h2o_half_life", K_U64, F(h2o_half_life), 0, 0, 1ull << 40,
	  "h2o score half-life in cache operations; 0: the policy's default" },
	{ "ssd_dir", K_STR, F(ssd_dir), S(ssd_dir), 0, 0,
	  "directory of the SSD tier; empty: no SSD tier" },
	{ "ssd_bytes", K_SIZE, F(ssd_bytes), 0, 1 << 20, 1ull << 50,
	  "SSD tier capacity" },
	{ "ssd_codec", K_CODEC, F(ssd_codec), S(ssd_codec), 0, 0,
	  "how chunks are stored on SSD: none, zstd or shuffle+zstd" },
	{ "ssd_codec_ns", K_CODECNS, F(ssd_codec_ns), S(ssd_codec_ns), 0, 0,
	  "codec per namespace: PREFIX=CODEC[,PREFIX=CODEC] (first match wins)" },
	{ "ssd_level", K_U64, F(ssd_level), 0, 1, 19,
	  "zstd level of the SSD codecs" },
	{ "ssd_queue_depth", K_U64, F(ssd_queue_depth), 0, 1, 4096,
	  "SSD I/O requests in flight" },
	{ "ssd_writes", K_U64, F(ssd_writes), 0, 1, 4096,
	  "chunks being written back to SSD at once" },
	{ "ssd_sync", K_U64, F(ssd_sync), 0, 0, 1,
	  "1: fdatasync the data before each index commit (survives power loss)" },
	{ "ssd_io", K_IOMODE, F(ssd_io), S(ssd_io), 0, 0,
	  "uring, or sync (pread/pwrite; also the fallback when io_uring is refused)" },
	{ "shutdown_flush_ms", K_U64, F(shutdown_flush_ms), 0, 0, 3600000,
	  "on SIGTERM, how long to spend writing DRAM back to SSD" },
	{ "hbm_bytes", K_SIZE, F(hbm_bytes), 0, 0, 1ull << 44,
	  "HBM tier capacity on the GPU; 0: no HBM tier (absent anyway without a GPU)" },
	{ "gpu", K_U64, F(gpu), 0, 0, 1023,
	  "CUDA device of the HBM tier (and of the daemon's copies)" },
	{ "hbm_promote", K_PROMOTE, F(hbm_promote), S(hbm_promote), 0, 0,
	  "copy DRAM chunks GPU clients pin up into HBM: off, second (hit) or always" },
	{ "remote", K_REMOTE, F(remote), S(remote), 0, 0,
	  "the cluster tier: redis-cluster://HOST:PORT[,HOST:PORT] (seeds), rediss-cluster:// for TLS;"
	  " empty: none" },
	{ "remote_user", K_STR, F(remote_user), S(remote_user), 0, 0,
	  "user the cluster tier authenticates as (ACL); empty: the default user" },
	{ "remote_password_file", K_STR, F(remote_password_file), S(remote_password_file), 0, 0,
	  "file whose first line is the cluster's password (never on the command line)" },
	{ "remote_tls_ca_file", K_STR, F(remote_tls_ca_file), S(remote_tls_ca_file), 0, 0,
	  "PEM file of the CA that signed the cluster's certificates (rediss-cluster:// needs it)" },
	{ "remote_tls_cert_file", K_STR, F(remote_tls_cert_file), S(remote_tls_cert_file), 0, 0,
	  "PEM client certificate the tier shows the cluster (tls-auth-clients); empty: none" },
	{ "remote_tls_key_file", K_STR, F(remote_tls_key_file), S(remote_tls_key_file), 0, 0,
	  "PEM private key of remote_tls_cert_file" },
	{ "remote_timeout_ms", K_U64, F(remote_timeout_ms), 0, 1, 600000,
	  "deadline of one batch of cluster commands (up to 64 chunks); past it: misses" },
	{ "remote_ns", K_STR, F(remote_ns), S(remote_ns), 0, 0,
	  "namespace-name prefixes that use the cluster, PREFIX[,PREFIX]; empty: all" },
	{ "remote_write", K_RWRITE, F(remote_write), S(remote_write), 0, 0,
	  "write committed chunks to the cluster: through (asynchronously) or off" },
	{ "tenant", K_TENANT, 0, 0, 0, 0,
	  "declare a tenant: 'NAME uids=U[,U] [dram_bytes=S] [hbm_bytes=S] [ssd_bytes=S]"
	  " [namespaces=N] [uncommitted_bytes=S]' (or a [tenant NAME] section)" },
};

#define REMOTE_SCHEME	"redis-cluster://"
#define REMOTE_SCHEME_TLS "rediss-cluster://"

/* The length of v's scheme, or 0 when it has none of ours. */
static size_t remote_scheme(const char *v)
{
	if (!strncmp(v, REMOTE_SCHEME, strlen(REMOTE_SCHEME)))
		return strlen(REMOTE_SCHEME);
	if (!strncmp(v, REMOTE_SCHEME_TLS, strlen(REMOTE_SCHEME_TLS)))
		return strlen(REMOTE_SCHEME_TLS);
	return 0;
}

/* "redis-cluster://" or "rediss-cluster://" and one or more HOST:PORT,
 * comma-separated: a host of printable characters without spaces or
 * commas, a port 1-65535. */
static bool remote_ok(const char *v)
{
	size_t sl = remote_scheme(v);

	if (!sl)
		return false;
	v += sl;
	do {
		size_t len = strcspn(v, ",");
		const char *colon = memrchr(v, ':', len);
		uint64_t port;
		char num[8];

		if (!colon || colon == v || (size_t)(v + len - colon - 1) >= sizeof(num) ||
		    v + len == colon + 1)
			return false;
		for (const char *p = v; p < colon; p++)
			if (*p <= ' ' || *p > '~')
				return false;
		memcpy(num, colon + 1, (size_t)(v + len - colon - 1));
		num[v + len - colon - 1] = '\0';
		if (kv_parse_u64(num, 1, 65535, &port))
			return false;
		v += len;
	} while (*v++ == ',');
	return true;
}

const char *kv_config_remote_seeds(const struct kv_config *cfg)
{
	return cfg->remote[0] ? cfg->remote + remote_scheme(cfg->remote) : NULL;
}

bool kv_config_remote_tls(const struct kv_config *cfg)
{
	return !strncmp(cfg->remote, REMOTE_SCHEME_TLS, strlen(REMOTE_SCHEME_TLS));
}

int kv_config_remote_check(const struct kv_config *cfg, char *err, size_t errlen)
{
	if (kv_config_remote_tls(cfg) && !cfg->remote_tls_ca_file[0]) {
		snprintf(err, errlen, "remote: rediss-cluster:// needs remote_tls_ca_file, the CA that signed the cluster's certificates (no unverified TLS)");
		return -EINVAL;
	}
	if (!cfg->remote_tls_cert_file[0] != !cfg->remote_tls_key_file[0]) {
		snprintf(err, errlen, "remote_tls_cert_file and remote_tls_key_file go together: set both or neither");
		return -EINVAL;
	}
	return 0;
}

/* Largest configuration file read (it is a few hundred bytes in practice). */
#define CONFIG_FILE_MAX	(1u << 20)

void kv_config_defaults(struct kv_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->socket, "./var/kvstore.sock");
	cfg->dram_bytes = 1ull << 30;
	cfg->alloc_granule = 4096;
	strcpy(cfg->policy_dram, "lru");
	cfg->max_conns = 1024;
	cfg->max_pins = 65536;
	cfg->max_uncommitted = 0;
	cfg->max_msg = KV_PROTO_MAX_MSG;
	cfg->max_batch = KV_PROTO_MAX_BATCH;
	cfg->max_namespaces = 4096;
	cfg->max_client_memory = 256ull << 20;
	cfg->hello_timeout_ms = 5000;
	cfg->frame_timeout_ms = 10000;
	cfg->alloc_lease_ms = 30000;
	strcpy(cfg->log, "info");
	strcpy(cfg->cost_mode, "compute");
	cfg->cost_hidden = 4096;	/* KV_COST_MODEL_DEFAULT */
	cfg->cost_a = 2;
	cfg->cost_b = 26;
	cfg->reload_bandwidth = 1ull << 30;
	cfg->reload_latency_us = 100;
	cfg->h2o_recent_fraction = 0.5;
	cfg->h2o_half_life = 0;
	cfg->ssd_bytes = 8ull << 30;
	strcpy(cfg->policy_ssd, "lru");
	strcpy(cfg->ssd_codec, "none");
	cfg->ssd_level = 1;
	cfg->ssd_queue_depth = 32;
	cfg->ssd_writes = 8;
	cfg->ssd_sync = 1;
	strcpy(cfg->ssd_io, "uring");
	cfg->shutdown_flush_ms = 30000;
	cfg->hbm_bytes = 1ull << 30;
	cfg->gpu = 0;
	strcpy(cfg->policy_hbm, "lru");
	strcpy(cfg->hbm_promote, "second");
	cfg->remote_timeout_ms = 1000;
	strcpy(cfg->remote_write, "through");
}

/*
 * Copy s into buf (len bytes) with every byte outside printable ASCII, and
 * the backslash, written as \xNN: names and values go into messages a
 * terminal shows, and must not carry escape sequences there.
 */
static const char *esc(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 5 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch > 0x7e || ch == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	if (*s && o + 3 < len)
		o += (size_t)snprintf(buf + o, len - o, "...");
	buf[o] = '\0';
	return buf;
}

/* Control characters are never part of a valid value. */
static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int set_model(struct kv_config *cfg, const char *value, char *err,
		     size_t errlen)
{
	unsigned hidden;
	double a, b;
	char tail;

	if (sscanf(value, "%u:%lf:%lf%c", &hidden, &a, &b, &tail) != 3 ||
	    hidden == 0 || hidden > (1u << 20) || !(a >= 0 && a < 1e6) ||
	    !(b >= 0 && b < 1e6)) {
		char shown[160];

		snprintf(err, errlen, "cost_model: bad value '%s' (HIDDEN:A:B, e.g. 4096:2:26)",
			 esc(shown, sizeof(shown), value));
		return -EINVAL;
	}
	cfg->cost_hidden = hidden;
	cfg->cost_a = a;
	cfg->cost_b = b;
	return 0;
}

static const struct key *find_key(const char *name)
{
	char norm[64];
	size_t i;

	for (i = 0; name[i] && i < sizeof(norm) - 1; i++)
		norm[i] = name[i] == '-' ? '_' : name[i];
	norm[i] = '\0';
	if (name[i])
		return NULL;
	for (i = 0; i < KV_ARRAY_SIZE(keys); i++)
		if (!strcmp(keys[i].name, norm))
			return &keys[i];
	return NULL;
}

static int set_policy(struct kv_config *cfg, const char *value, char *err,
		      size_t errlen)
{
	char buf[256], shown[96];
	char *save, *item;

	if (strlen(value) >= sizeof(buf)) {
		snprintf(err, errlen, "policy: value too long");
		return -EINVAL;
	}
	strcpy(buf, value);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		char *dst;

		if (!eq) {
			snprintf(err, errlen, "policy: '%s' is not TIER=NAME",
				 esc(shown, sizeof(shown), item));
			return -EINVAL;
		}
		*eq = '\0';
		if (!kv_evict_find(eq + 1)) {
			snprintf(err, errlen, "policy: unknown eviction policy '%s'",
				 esc(shown, sizeof(shown), eq + 1));
			return -EINVAL;
		}
		if (!strcmp(item, "dram")) {
			dst = cfg->policy_dram;
		} else if (!strcmp(item, "ssd")) {
			dst = cfg->policy_ssd;
		} else if (!strcmp(item, "hbm")) {
			dst = cfg->policy_hbm;
		} else {
			snprintf(err, errlen, "policy: unknown tier '%s' (tiers: hbm, dram, ssd)",
				 esc(shown, sizeof(shown), item));
			return -EINVAL;
		}
		snprintf(dst, sizeof(cfg->policy_dram), "%s", eq + 1);
	}
	return 0;
}

/* A list of uids, separated by commas or spaces, into out (at most max). */
static int parse_uids(const char *what, const char *value, uid_t *out,
		      unsigned max, unsigned *n_out, char *err, size_t errlen)
{
	uid_t uids[KV_CONF_MAX_UIDS];
	unsigned n = 0;
	const char *p = value;
	char shown[96];

	while (*p) {
		char tok[32];
		size_t len = strcspn(p, ", ");
		uint64_t v;

		if (len == 0) {
			p++;
			continue;
		}
		if (len >= sizeof(tok) || n == max || n == KV_CONF_MAX_UIDS) {
			snprintf(err, errlen, "%s: too many or too long entries in '%s'",
				 what, esc(shown, sizeof(shown), value));
			return -EINVAL;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (kv_parse_u64(tok, 0, UINT32_MAX - 1, &v)) {
			snprintf(err, errlen, "%s: '%s' is not a uid", what,
				 esc(shown, sizeof(shown), tok));
			return -EINVAL;
		}
		uids[n++] = (uid_t)v;
		p += len;
	}
	memcpy(out, uids, n * sizeof(uids[0]));
	*n_out = n;
	return 0;
}

/* ---- tenants ---------------------------------------------------------- */

/* The declared tenant of that name, made when new. NULL: the name is not
 * valid, or the table is full (err says which). */
static struct kv_tenant_conf *tenant_get(struct kv_config *cfg, const char *name,
					 char *err, size_t errlen)
{
	char shown[96];
	struct kv_tenant_conf *t;

	for (unsigned i = 0; i < cfg->n_tenants; i++)
		if (!strcmp(cfg->tenants[i].name, name))
			return &cfg->tenants[i];
	if (!kv_tenant_name_ok(name)) {
		snprintf(err, errlen, "tenant: bad name '%s' (1 to %d letters, digits, '_', '-' or '.')",
			 esc(shown, sizeof(shown), name), KV_TENANT_NAME - 1);
		return NULL;
	}
	if (cfg->n_tenants == KV_TENANT_DECLARED) {
		snprintf(err, errlen, "tenant: more than %d tenants declared", KV_TENANT_DECLARED);
		return NULL;
	}
	t = &cfg->tenants[cfg->n_tenants++];
	memset(t, 0, sizeof(*t));
	strcpy(t->name, name);
	return t;
}

/* One key of a tenant: uids, or one of its quotas. */
static int tenant_set(struct kv_tenant_conf *t, const char *key, const char *value,
		      char *err, size_t errlen)
{
	char shown[160], what[KV_TENANT_NAME + 16];
	uint64_t v;
	int ret;

	snprintf(what, sizeof(what), "tenant %s", t->name);
	if (has_control(value)) {
		snprintf(err, errlen, "%s: bad value '%s' (control characters)", what,
			 esc(shown, sizeof(shown), value));
		return -EINVAL;
	}
	if (!strcmp(key, "uids"))
		return parse_uids(what, value, t->uids, KV_TENANT_UIDS, &t->n_uids,
				  err, errlen);
	for (unsigned q = 0; q < KV_TQ_MAX; q++) {
		if (strcmp(key, kv_tenant_quota_name(q)))
			continue;
		ret = q == KV_TQ_NAMESPACES ? kv_parse_u64(value, 1, 1 << 20, &v) :
					      kv_parse_size(value, &v);
		if (ret || (q == KV_TQ_DRAM && v < (1 << 20)) || v > (1ull << 50)) {
			snprintf(err, errlen, "%s: %s: bad value '%s' (%s)", what, key,
				 esc(shown, sizeof(shown), value),
				 q == KV_TQ_NAMESPACES ? "a number from 1 to 1048576" :
				 q == KV_TQ_DRAM ? "a size of at least 1M" : "a size");
			return -EINVAL;
		}
		t->quota[q] = v;
		t->set |= 1u << q;
		return 0;
	}
	snprintf(err, errlen, "%s: unknown key '%s' (uids, dram_bytes, hbm_bytes, ssd_bytes, namespaces, uncommitted_bytes)",
		 what, esc(shown, sizeof(shown), key));
	return -EINVAL;
}

int kv_config_tenant(struct kv_config *cfg, const char *spec, char *err,
		     size_t errlen)
{
	char buf[512], shown[96];
	char *save, *tok;
	struct kv_tenant_conf *t;
	int ret;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "tenant: spec longer than %zu bytes", sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, spec);
	tok = strtok_r(buf, " \t", &save);
	if (!tok) {
		snprintf(err, errlen, "tenant: empty (NAME uids=U[,U] [KEY=VALUE]...)");
		return -EINVAL;
	}
	t = tenant_get(cfg, tok, err, errlen);
	if (!t)
		return -EINVAL;
	while ((tok = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			snprintf(err, errlen, "tenant %s: '%s' is not KEY=VALUE", t->name,
				 esc(shown, sizeof(shown), tok));
			return -EINVAL;
		}
		*eq = '\0';
		ret = tenant_set(t, tok, eq + 1, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int kv_config_set(struct kv_config *cfg, const char *name, const char *value,
		  char *err, size_t errlen)
{
	const struct key *k = find_key(name);
	char ename[96], evalue[160];
	const char *shown;
	char *field;
	uint64_t v;
	int ret;

	if (!k) {
		snprintf(err, errlen, "unknown key '%s'", esc(ename, sizeof(ename), name));
		return -ENOENT;
	}
	if (has_control(value)) {
		snprintf(err, errlen, "%s: bad value '%s' (control characters)", k->name,
			 esc(evalue, sizeof(evalue), value));
		return -EINVAL;
	}
	shown = esc(evalue, sizeof(evalue), value);
	field = (char *)cfg + k->off;
	switch (k->type) {
	case K_STR:
		if (strlen(value) >= k->len) {
			snprintf(err, errlen, "%s: '%s' is longer than %zu bytes",
				 k->name, shown, k->len - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_SIZE:
	case K_U64:
		ret = k->type == K_SIZE ? kv_parse_size(value, &v) :
					  kv_parse_u64(value, 0, UINT64_MAX, &v);
		if (ret == 0 && (v < k->min || v > k->max))
			ret = -ERANGE;
		if (ret) {
			snprintf(err, errlen, "%s: bad value '%s' (%s from %llu to %llu)",
				 k->name, shown, k->type == K_SIZE ? "a size" : "a number",
				 (unsigned long long)k->min, (unsigned long long)k->max);
			return ret;
		}
		memcpy(field, &v, sizeof(v));
		return 0;
	case K_POLICY:
		return set_policy(cfg, value, err, errlen);
	case K_LOG:
		if (strlen(value) >= k->len || kv_log_parse(value)) {
			snprintf(err, errlen, "log: bad value '%s' (LEVEL[:SUBSYS,...], LEVEL err|warn|info|debug)",
				 shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_UIDS:
		return parse_uids("allow_uids", value, cfg->allow_uids, KV_CONF_MAX_UIDS,
				  &cfg->n_allow_uids, err, errlen);
	case K_TENANT:
		return kv_config_tenant(cfg, value, err, errlen);
	case K_FRACTION: {
		char *end;
		double d = strtod(value, &end);

		if (end == value || *end || !(d > 0 && d <= 1)) {
			snprintf(err, errlen, "%s: bad value '%s' (a fraction in (0, 1])",
				 k->name, shown);
			return -EINVAL;
		}
		memcpy(field, &d, sizeof(d));
		return 0;
	}
	case K_MODEL:
		return set_model(cfg, value, err, errlen);
	case K_CODEC:
		if (kv_codec_parse(value) < 0) {
			snprintf(err, errlen, "%s: bad value '%s' (none, zstd or shuffle+zstd)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_CODECNS:
		if (strlen(value) >= k->len || kv_codec_for(value, NULL, 0) == -EINVAL) {
			snprintf(err, errlen, "%s: bad value '%s' (PREFIX=CODEC[,...], CODEC none, zstd or shuffle+zstd)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_REMOTE:
		if (strlen(value) >= k->len || (*value && !remote_ok(value))) {
			snprintf(err, errlen, "%s: bad value '%s' (redis-cluster://HOST:PORT[,HOST:PORT], rediss-cluster://..., or empty)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_RWRITE:
		if (strcmp(value, "through") && strcmp(value, "off")) {
			snprintf(err, errlen, "%s: bad value '%s' (through or off)", k->name,
				 shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_PROMOTE:
		if (strcmp(value, "off") && strcmp(value, "second") && strcmp(value, "always")) {
			snprintf(err, errlen, "%s: bad value '%s' (off, second or always)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_IOMODE:
		if (strcmp(value, "uring") && strcmp(value, "sync")) {
			snprintf(err, errlen, "%s: bad value '%s' (uring or sync)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_COSTMODE:
		if (strcmp(value, "compute") && strcmp(value, "reload")) {
			snprintf(err, errlen, "%s: bad value '%s' (compute or reload)",
				 k->name, shown);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	}
	return -EINVAL;
}

struct ini_ctx {
	struct kv_config *cfg;
	const char *path;
	char *err;
	size_t errlen;
	int ret;
};

static int on_ini_line(void *user, const char *section, const char *name,
		       const char *value)
{
	struct ini_ctx *x = user;
	char msg[256];
	int ret;

	if (x->ret)
		return 0;	/* inih reads on; the first error is the one to report */

	if (!strncmp(section, "tenant ", 7)) {
		struct kv_tenant_conf *t = tenant_get(x->cfg, section + 7, msg, sizeof(msg));

		ret = t ? tenant_set(t, name, value, msg, sizeof(msg)) : -EINVAL;
	} else if (section[0] && strcmp(section, "kvstored")) {
		char shown[96];

		snprintf(x->err, x->errlen, "%s: unknown section [%s]", x->path,
			 esc(shown, sizeof(shown), section));
		x->ret = -EINVAL;
		return 0;
	} else {
		ret = kv_config_set(x->cfg, name, value, msg, sizeof(msg));
	}
	if (ret) {
		snprintf(x->err, x->errlen, "%s: %s", x->path, msg);
		x->ret = ret;
		return 0;
	}
	return 1;
}

/*
 * Read the whole file: a regular file of at most CONFIG_FILE_MAX bytes
 * with no NUL byte (inih would end the line there and silently drop the
 * rest of it). Returns the text (the caller frees it) or NULL with err and
 * *ret set.
 */
static char *read_config(const char *path, int *ret, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	*ret = -EINVAL;
	f = fopen(path, "re");
	if (!f || fstat(fileno(f), &st) < 0) {
		*ret = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file%s", path,
			 S_ISDIR(st.st_mode) ? " (a directory)" : "");
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, CONFIG_FILE_MAX);
		goto out;
	}
	text = kv_xmalloc((size_t)st.st_size + 1);
	len = fread(text, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out_free;
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		unsigned line = 1;

		for (const char *p = text; *p; p++)
			line += *p == '\n';
		snprintf(err, errlen, "%s: line %u: a NUL byte", path, line);
		goto out_free;
	}
	fclose(f);
	return text;

out_free:
	free(text);
	text = NULL;
out:
	if (f)
		fclose(f);
	return text;
}

int kv_config_load(struct kv_config *cfg, const char *path, char *err,
		   size_t errlen)
{
	struct ini_ctx x = { cfg, path, err, errlen, 0 };
	int line, ret;
	char *text = read_config(path, &ret, err, errlen);

	if (!text)
		return ret;
	line = ini_parse_string(text, on_ini_line, &x);
	free(text);
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	if (x.ret) {
		/* ini_parse() returns the line of the first error. */
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " (line %d)", line);
		return x.ret;
	}
	if (line > 0) {
		snprintf(err, errlen, "%s: line %d: not 'key = value'", path, line);
		return -EINVAL;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kvstored [--config FILE] [--KEY VALUE]...\n\n"
		"Every configuration key is also a flag (dram_bytes is --dram-bytes):\n");
	for (size_t i = 0; i < KV_ARRAY_SIZE(keys); i++) {
		char flag[64];
		size_t j;

		for (j = 0; keys[i].name[j]; j++)
			flag[j] = keys[i].name[j] == '_' ? '-' : keys[i].name[j];
		flag[j] = '\0';
		fprintf(f, "  --%-18s %s\n", flag, keys[i].help);
	}
	fprintf(f, "\n  --config FILE        read an INI file first\n"
		"  --print-config       print the resulting configuration and exit\n"
		"  --help, --version\n");
}

/* "--config FILE" or "--config=FILE" (and nothing else that starts so). */
static bool is_config_flag(const char *a)
{
	return !strcmp(a, "--config") || !strncmp(a, "--config=", 9);
}

int kv_config_args(struct kv_config *cfg, int argc, char **argv, char *err,
		   size_t errlen)
{
	int ret;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--version")) {
			printf("kvstored (kvstore) protocol %d\n", KV_PROTO_VERSION);
			return 1;
		}
		if (is_config_flag(a)) {
			const char *path = a[8] ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);

			if (!path) {
				snprintf(err, errlen, "--config needs a file");
				return -EINVAL;
			}
			ret = kv_config_load(cfg, path, err, errlen);
			if (ret)
				return ret;
		}
	}
	for (int i = 1; i < argc; i++) {
		char name[64], shown[96];
		const char *a = argv[i], *value, *eq;
		size_t len;

		if (is_config_flag(a)) {
			if (!a[8])
				i++;
			continue;
		}
		if (!strcmp(a, "--print-config"))
			continue;
		if (strncmp(a, "--", 2)) {
			snprintf(err, errlen, "unexpected argument '%s' (flags are --key value)",
				 esc(shown, sizeof(shown), a));
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		if (len >= sizeof(name)) {
			snprintf(err, errlen, "unknown flag '--%s'", esc(shown, sizeof(shown), a));
			return -ENOENT;
		}
		memcpy(name, a, len);
		name[len] = '\0';
		if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "--%s needs a value",
				 esc(shown, sizeof(shown), name));
			return -EINVAL;
		}
		ret = kv_config_set(cfg, name, value, err, errlen);
		if (ret == -ENOENT)
			snprintf(err, errlen, "unknown flag '--%s' (see --help)",
				 esc(shown, sizeof(shown), name));
		if (ret)
			return ret;
	}
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--print-config")) {
			kv_config_print(cfg, stdout);
			return 1;
		}
	return 0;
}

void kv_config_print(const struct kv_config *cfg, FILE *f)
{
	fprintf(f, "[kvstored]\n");
	for (size_t i = 0; i < KV_ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)cfg + k->off;
		uint64_t v;

		if (k->type == K_TENANT)
			continue;	/* [tenant NAME] sections, below */
		fprintf(f, "%s = ", k->name);
		switch (k->type) {
		case K_STR:
		case K_LOG:
		case K_COSTMODE:
		case K_CODEC:
		case K_CODECNS:
		case K_IOMODE:
		case K_PROMOTE:
		case K_REMOTE:
		case K_RWRITE:
			fprintf(f, "%s\n", field);
			break;
		case K_FRACTION:
			fprintf(f, "%g\n", *(const double *)(const void *)field);
			break;
		case K_MODEL:
			fprintf(f, "%u:%g:%g\n", cfg->cost_hidden, cfg->cost_a, cfg->cost_b);
			break;
		case K_POLICY:
			fprintf(f, "hbm=%s,dram=%s,ssd=%s\n", cfg->policy_hbm, cfg->policy_dram,
				cfg->policy_ssd);
			break;
		case K_SIZE:
		case K_U64:
			memcpy(&v, field, sizeof(v));
			fprintf(f, "%llu\n", (unsigned long long)v);
			break;
		case K_UIDS:
			for (unsigned u = 0; u < cfg->n_allow_uids; u++)
				fprintf(f, "%s%u", u ? "," : "", (unsigned)cfg->allow_uids[u]);
			fprintf(f, "\n");
			break;
		case K_TENANT:
			break;		/* never reached: sections below */
		}
	}
	for (unsigned i = 0; i < cfg->n_tenants; i++) {
		const struct kv_tenant_conf *t = &cfg->tenants[i];

		fprintf(f, "\n[tenant %s]\nuids = ", t->name);
		for (unsigned u = 0; u < t->n_uids; u++)
			fprintf(f, "%s%u", u ? "," : "", (unsigned)t->uids[u]);
		fprintf(f, "\n");
		for (unsigned q = 0; q < KV_TQ_MAX; q++)
			if (t->set & (1u << q))
				fprintf(f, "%s = %llu\n", kv_tenant_quota_name(q),
					(unsigned long long)t->quota[q]);
	}
}
