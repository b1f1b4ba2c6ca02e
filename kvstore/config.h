/*
 * config.h - kvstored's settings: embedded defaults, an INI file (inih),
 * then command-line flags, each later source overriding the earlier.
 *
 * Every key is also a flag: key dram_bytes is --dram-bytes. Keys may sit
 * at the top of the file or in a [kvstored] section. An unknown key, an
 * unknown section or a bad value is refused with a message that names it.
 * docs/configuration.md lists every key.
 */
#ifndef KV_CONFIG_H
#define KV_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "kvstore/tenant.h"

#define KV_CONF_MAX_UIDS 32

struct kv_config {
	char socket[108];		/* sun_path holds 108 bytes */
	char socket_group[64];		/* "": mode 0600, else 0660 and this group */
	uint64_t dram_bytes;
	uint64_t alloc_granule;
	char policy_dram[16];
	uint64_t max_conns;
	uint64_t max_pins;		/* per connection */
	uint64_t max_uncommitted;	/* bytes per connection; 0: half of DRAM */
	uint64_t max_msg;		/* body bytes per message */
	uint64_t max_batch;		/* keys per message */
	uint64_t max_namespaces;
	uint64_t max_chunks;		/* chunk records; 0: by the tiers' capacity */
	uint64_t max_client_memory;	/* bytes all connections may buffer */
	uint64_t hello_timeout_ms;	/* connect to HELLO; 0: none */
	uint64_t frame_timeout_ms;	/* a frame's first byte to its last; 0: none */
	uint64_t alloc_lease_ms;	/* ALLOC to COMMIT; 0: none */
	char log[64];
	char log_file[256];		/* "": stderr */
	char cost_mode[16];		/* "compute" or "reload" */
	uint32_t cost_hidden;		/* default cost model: d, a, b */
	double cost_a;
	double cost_b;
	uint64_t reload_bandwidth;	/* bytes/s, for cost_mode reload */
	uint64_t reload_latency_us;
	double h2o_recent_fraction;
	uint64_t h2o_half_life;		/* operations; 0: the policy's default */
	char ssd_dir[256];		/* "": no SSD tier */
	uint64_t ssd_bytes;
	char policy_ssd[16];
	char ssd_codec[16];		/* none, zstd, shuffle+zstd */
	char ssd_codec_ns[256];		/* PREFIX=CODEC,...: per namespace */
	uint64_t ssd_level;		/* zstd level */
	uint64_t ssd_queue_depth;
	uint64_t ssd_writes;		/* write-backs in flight */
	uint64_t ssd_sync;		/* 0 or 1 */
	char ssd_io[16];		/* uring or sync */
	uint64_t shutdown_flush_ms;	/* SIGTERM: time to write DRAM back */
	uint64_t hbm_bytes;		/* 0: no HBM tier */
	uint64_t gpu;			/* CUDA device */
	char policy_hbm[16];
	char hbm_promote[16];		/* off, second, always */
	char remote[512];		/* redis-cluster://host:port,... (rediss-
					 * cluster:// for TLS); "": none */
	char remote_user[128];		/* "": no AUTH user (default user) */
	char remote_password_file[256];	/* "": no password */
	char remote_tls_ca_file[256];	/* "": none (TLS needs one) */
	char remote_tls_cert_file[256];	/* "": no client certificate */
	char remote_tls_key_file[256];	/* "": no client key */
	uint64_t remote_timeout_ms;	/* a batch's deadline */
	char remote_ns[256];		/* namespace-name prefixes; "": all */
	char remote_write[16];		/* through or off */
	uid_t allow_uids[KV_CONF_MAX_UIDS];
	unsigned n_allow_uids;		/* 0: the daemon's own uid only */
	struct kv_tenant_conf tenants[KV_TENANT_DECLARED];
	unsigned n_tenants;
};

/* Fill in the embedded defaults. */
void kv_config_defaults(struct kv_config *cfg);

/*
 * Set one key (underscores or dashes) from its text value. Returns 0, or
 * -ENOENT (unknown key) / -EINVAL / -ERANGE after writing a message naming
 * the key and the value to err (a buffer of errlen bytes).
 */
int kv_config_set(struct kv_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen);

/*
 * Declare a tenant from a spec "NAME KEY=VALUE ..." (the --tenant flag;
 * keys as in a [tenant NAME] section: uids, dram_bytes, hbm_bytes,
 * ssd_bytes, namespaces, uncommitted_bytes). A name declared again adds
 * to it. Returns 0 or -EINVAL / -ERANGE with a message in err.
 */
int kv_config_tenant(struct kv_config *cfg, const char *spec, char *err,
		     size_t errlen);

/*
 * Read an INI file (a regular file of at most 1 MiB, no NUL bytes).
 * Returns 0 or a negative error, with a message in err that names the
 * file, the line and the key; names and values quoted in it are escaped
 * (\xNN) where they hold anything but printable ASCII.
 */
int kv_config_load(struct kv_config *cfg, const char *path, char *err,
		   size_t errlen);

/*
 * Apply argv: --config FILE first (wherever it stands), then every
 * --key VALUE or --key=VALUE in order. Returns 0, 1 when --help or
 * --version was answered (printed to stdout), or a negative error with a
 * message in err.
 */
int kv_config_args(struct kv_config *cfg, int argc, char **argv, char *err,
		   size_t errlen);

/* The seeds of a remote setting ("host:port,..." after the scheme), or
 * NULL when it names no cluster. */
const char *kv_config_remote_seeds(const struct kv_config *cfg);

/* Whether the remote setting asks for TLS (rediss-cluster://). */
bool kv_config_remote_tls(const struct kv_config *cfg);

/* A remote setting's TLS keys that do not go together (rediss-cluster://
 * without remote_tls_ca_file, a certificate without its key or the other
 * way round): -EINVAL with a message in err; else 0. */
int kv_config_remote_check(const struct kv_config *cfg, char *err, size_t errlen);

/* Print every key with its current value, as an INI file would hold it. */
void kv_config_print(const struct kv_config *cfg, FILE *f);

#endif
