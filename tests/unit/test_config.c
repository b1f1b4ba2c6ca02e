/*
 * test_config.c - defaults, keys as flags, INI files, and every bad value
 * refused with a message that names it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvstore/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/codec.h"

static char err[512];

static int args(struct kv_config *cfg, const char *a0, ...)
{
	char *argv[32] = { "kvstored" };
	int argc = 1;
	va_list ap;
	const char *a;

	va_start(ap, a0);
	for (a = a0; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	err[0] = '\0';
	return kv_config_args(cfg, argc, argv, err, sizeof(err));
}

static const char *write_file(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	strcpy(path, "/tmp/kvcfg.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_defaults(void **state)
{
	struct kv_config cfg;

	kv_config_defaults(&cfg);
	assert_string_equal(cfg.socket, "./var/kvstore.sock");
	assert_int_equal(cfg.dram_bytes, 1ull << 30);
	assert_string_equal(cfg.policy_dram, "lru");
	assert_int_equal(cfg.n_allow_uids, 0);
	assert_int_equal(cfg.max_batch, 1024);
}

static void test_sizes(void **state)
{
	uint64_t v;

	assert_int_equal(kv_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(kv_parse_size("64M", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(kv_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(kv_parse_size("1t", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(kv_parse_size("", &v), -EINVAL);
	assert_int_equal(kv_parse_size("-1G", &v), -EINVAL);
	assert_int_equal(kv_parse_size("1X", &v), -EINVAL);
	assert_int_equal(kv_parse_size("1 G", &v), -EINVAL);
	assert_int_equal(kv_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(kv_parse_size("20000000000T", &v), -ERANGE);
}

static void test_flags(void **state)
{
	struct kv_config cfg;

	kv_config_defaults(&cfg);
	assert_int_equal(args(&cfg, "--socket", "/tmp/a.sock", "--dram-bytes=256M",
			      "--policy", "dram=lru", "--max-conns", "7",
			      "--log", "debug:net,tier", "--allow-uids", "0,1000", NULL), 0);
	assert_string_equal(cfg.socket, "/tmp/a.sock");
	assert_int_equal(cfg.dram_bytes, 256ull << 20);
	assert_int_equal(cfg.max_conns, 7);
	assert_int_equal(cfg.n_allow_uids, 2);
	assert_int_equal(cfg.allow_uids[1], 1000);
	assert_int_equal(kv_log_level, KV_DEBUG);
	assert_int_equal(kv_log_mask, KV_LOG_NET | KV_LOG_TIER);
	kv_log_parse("warn");

	/* The SSD tier's keys. */
	assert_int_equal(args(&cfg, "--ssd-dir", "/var/ssd", "--ssd-bytes", "2G",
			      "--policy", "dram=gdsf,ssd=h2o", "--ssd-codec", "shuffle+zstd",
			      "--ssd-codec-ns", "llama=zstd,qwen=none", "--ssd-io", "sync",
			      "--ssd-sync", "0", NULL), 0);
	assert_string_equal(cfg.ssd_dir, "/var/ssd");
	assert_int_equal(cfg.ssd_bytes, 2ull << 30);
	assert_string_equal(cfg.policy_dram, "gdsf");
	assert_string_equal(cfg.policy_ssd, "h2o");
	assert_string_equal(cfg.ssd_codec, "shuffle+zstd");
	assert_string_equal(cfg.ssd_io, "sync");
	assert_int_equal(cfg.ssd_sync, 0);
	assert_int_equal(kv_codec_for(cfg.ssd_codec_ns, "llama-8b", 8), KV_CODEC_ZSTD);
	assert_int_equal(kv_codec_for(cfg.ssd_codec_ns, "qwen", 4), KV_CODEC_NONE);
	assert_int_equal(kv_codec_for(cfg.ssd_codec_ns, "mistral", 7), -ENOENT);
	assert_int_equal(kv_codec_for(cfg.ssd_codec_ns, "lla", 3), -ENOENT);

	/* The HBM tier's keys: defaults, then set. */
	kv_config_defaults(&cfg);
	assert_int_equal(cfg.hbm_bytes, 1ull << 30);
	assert_int_equal(cfg.gpu, 0);
	assert_string_equal(cfg.hbm_promote, "second");
	assert_string_equal(cfg.policy_hbm, "lru");
	assert_int_equal(args(&cfg, "--hbm-bytes", "0", "--gpu", "3", "--hbm-promote", "always",
			      "--policy", "hbm=gdsf,dram=h2o", NULL), 0);
	assert_int_equal(cfg.hbm_bytes, 0);
	assert_int_equal(cfg.gpu, 3);
	assert_string_equal(cfg.hbm_promote, "always");
	assert_string_equal(cfg.policy_hbm, "gdsf");
	assert_string_equal(cfg.policy_dram, "h2o");
}

static void test_bad_flags_named(void **state)
{
	struct kv_config cfg;

	kv_config_defaults(&cfg);
	assert_int_not_equal(args(&cfg, "--dram-bytes", "lots", NULL), 0);
	assert_non_null(strstr(err, "dram_bytes"));
	assert_non_null(strstr(err, "lots"));
	assert_int_not_equal(args(&cfg, "--dram-bytes", "1K", NULL), 0);	/* under 1 MiB */
	assert_non_null(strstr(err, "dram_bytes"));
	assert_int_not_equal(args(&cfg, "--no-such-key", "1", NULL), 0);
	assert_non_null(strstr(err, "no-such-key"));
	assert_int_not_equal(args(&cfg, "--policy", "dram=fifo", NULL), 0);
	assert_non_null(strstr(err, "fifo"));
	assert_int_not_equal(args(&cfg, "--policy", "tape=lru", NULL), 0);
	assert_non_null(strstr(err, "tape"));
	assert_int_not_equal(args(&cfg, "--ssd-codec", "lz4", NULL), 0);
	assert_non_null(strstr(err, "lz4"));
	assert_int_not_equal(args(&cfg, "--ssd-codec-ns", "llama", NULL), 0);
	assert_non_null(strstr(err, "ssd_codec_ns"));
	assert_int_not_equal(args(&cfg, "--ssd-codec-ns", "a=zstd,=none", NULL), 0);
	assert_int_not_equal(args(&cfg, "--ssd-codec-ns", "a=brotli", NULL), 0);
	assert_int_not_equal(args(&cfg, "--ssd-io", "aio", NULL), 0);
	assert_non_null(strstr(err, "aio"));
	assert_int_not_equal(args(&cfg, "--ssd-sync", "2", NULL), 0);
	assert_int_not_equal(args(&cfg, "--hbm-promote", "third", NULL), 0);
	assert_non_null(strstr(err, "hbm_promote"));
	assert_int_not_equal(args(&cfg, "--gpu", "-1", NULL), 0);
	assert_non_null(strstr(err, "gpu"));
	assert_int_not_equal(args(&cfg, "--policy", "hbm=fifo", NULL), 0);
	assert_int_not_equal(args(&cfg, "--hbm-bytes", "lots", NULL), 0);
	assert_non_null(strstr(err, "hbm_bytes"));
	assert_int_not_equal(args(&cfg, "--ssd-bytes", "1K", NULL), 0);
	assert_int_not_equal(args(&cfg, "--max-conns", "0", NULL), 0);
	assert_non_null(strstr(err, "max_conns"));
	assert_int_not_equal(args(&cfg, "--max-batch", "1025", NULL), 0);
	assert_int_not_equal(args(&cfg, "--log", "loud", NULL), 0);
	assert_non_null(strstr(err, "loud"));
	/* Too long, though every part is valid: refused with a message. */
	assert_int_not_equal(args(&cfg, "--log", "info:net,net,net,net,net,net,net,net,net,net,net,net,net,net,net,net,net,net",
				  NULL), 0);
	assert_non_null(strstr(err, "log"));
	/* Only --config and --config=FILE read a file. */
	assert_int_not_equal(args(&cfg, "--config-file=/x", NULL), 0);
	assert_non_null(strstr(err, "config-file"));
	assert_int_not_equal(args(&cfg, "--allow-uids", "root", NULL), 0);
	assert_non_null(strstr(err, "root"));
	assert_int_not_equal(args(&cfg, "--socket", NULL), 0);
	assert_non_null(strstr(err, "socket"));
	assert_int_not_equal(args(&cfg, "stray", NULL), 0);
	assert_non_null(strstr(err, "stray"));
	/* Nothing half-applied: the defaults still stand. */
	assert_int_equal(cfg.dram_bytes, 1ull << 30);
	assert_string_equal(cfg.policy_dram, "lru");
}

static void test_ini_file(void **state)
{
	struct kv_config cfg;
	const char *path = write_file("; a comment\n"
				      "socket = /tmp/b.sock\n"
				      "[kvstored]\n"
				      "dram_bytes = 2G\n"
				      "max_pins = 99\n");

	kv_config_defaults(&cfg);
	/* The file is read first, flags override it wherever --config stands. */
	assert_int_equal(args(&cfg, "--max-pins", "5", "--config", path, NULL), 0);
	assert_string_equal(cfg.socket, "/tmp/b.sock");
	assert_int_equal(cfg.dram_bytes, 2ull << 30);
	assert_int_equal(cfg.max_pins, 5);
	unlink(path);
}

static void test_ini_errors(void **state)
{
	struct kv_config cfg;
	const char *path;

	kv_config_defaults(&cfg);
	path = write_file("socket = /tmp/c.sock\nbogus = 1\n");
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "bogus"));
	assert_non_null(strstr(err, "line 2"));
	unlink(path);
	path = write_file("[elsewhere]\nsocket = x\n");
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "elsewhere"));
	unlink(path);
	path = write_file("dram_bytes = 1Q\n");
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "1Q"));
	unlink(path);
	path = write_file("just some words\n");
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "line 1"));
	unlink(path);
	/* Two bad lines: the first one is reported, with its own line. */
	path = write_file("socket = /tmp/d.sock\nfirst_bad = 1\nsecond_bad = 2\n");
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "first_bad"));
	assert_null(strstr(err, "second_bad"));
	assert_non_null(strstr(err, "line 2"));
	unlink(path);
	assert_int_equal(kv_config_load(&cfg, "/nonexistent/kv.ini", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/kv.ini"));
}

/* A file of len bytes (it may hold NUL bytes). */
static const char *write_bytes(const char *text, size_t len)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/kvcfg.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/*
 * Issue 11: --config naming a directory was accepted, a NUL byte silently
 * cut a line short, and an unknown key's name was echoed raw, escape
 * codes included.
 */
static void test_issue_11_config_defects(void **state)
{
	static const char nul[] = "max_pins = 7\0 junk\ndram_bytes = 2G\n";
	static const char esc_key[] = "\x1b[31mred = 1\n";
	struct kv_config cfg;
	const char *path;

	kv_config_defaults(&cfg);
	assert_int_not_equal(args(&cfg, "--config", "/tmp", NULL), 0);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_not_equal(args(&cfg, "--config", "/dev/null", NULL), 0);

	path = write_bytes(nul, sizeof(nul) - 1);
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "NUL"));
	assert_non_null(strstr(err, "line 1"));
	assert_int_equal(cfg.max_pins, 65536);	/* nothing of it applied */
	unlink(path);

	path = write_file(esc_key);
	assert_int_not_equal(kv_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_null(strchr(err, 0x1b));
	assert_non_null(strstr(err, "\\x1b[31mred"));
	unlink(path);
	/* Values too: a control character is never part of one, and bytes
	 * outside ASCII are escaped where quoted. */
	assert_int_not_equal(args(&cfg, "--socket", "/tmp/a\nb", NULL), 0);
	assert_null(strchr(err, '\n'));
	assert_int_not_equal(args(&cfg, "--dram-bytes", "1\xc2\x9b" "2m", NULL), 0);
	assert_null(strstr(err, "\xc2\x9b"));
	assert_non_null(strstr(err, "\\xc2\\x9b"));
	assert_int_not_equal(args(&cfg, "--bogus\x1b]0;x\x07", "1", NULL), 0);
	assert_null(strchr(err, 0x1b));
}

/* remote: redis-cluster:// or rediss-cluster:// (TLS), which needs a CA
 * file; a client certificate and its key go together. */
static void test_remote_tls(void **state)
{
	struct kv_config cfg;

	kv_config_defaults(&cfg);
	assert_null(kv_config_remote_seeds(&cfg));
	assert_false(kv_config_remote_tls(&cfg));
	assert_int_equal(kv_config_remote_check(&cfg, err, sizeof(err)), 0);
	assert_int_equal(args(&cfg, "--remote", "redis-cluster://h:1,h:2", NULL), 0);
	assert_string_equal(kv_config_remote_seeds(&cfg), "h:1,h:2");
	assert_false(kv_config_remote_tls(&cfg));
	assert_int_equal(args(&cfg, "--remote", "rediss-cluster://10.0.0.1:6379", NULL), 0);
	assert_string_equal(kv_config_remote_seeds(&cfg), "10.0.0.1:6379");
	assert_true(kv_config_remote_tls(&cfg));
	assert_int_equal(kv_config_remote_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "remote_tls_ca_file"));
	assert_int_equal(args(&cfg, "--remote-tls-ca-file", "/ca.crt", "--remote-tls-cert-file",
			      "/c.crt", NULL), 0);
	assert_int_equal(kv_config_remote_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "go together"));
	assert_int_equal(args(&cfg, "--remote-tls-key-file", "/c.key", NULL), 0);
	assert_int_equal(kv_config_remote_check(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.remote_tls_ca_file, "/ca.crt");
	assert_string_equal(cfg.remote_tls_cert_file, "/c.crt");
	assert_string_equal(cfg.remote_tls_key_file, "/c.key");
	assert_int_equal(args(&cfg, "--remote", "rediss://h:1", NULL), -EINVAL);
	assert_int_equal(args(&cfg, "--remote", "rediss-cluster://", NULL), -EINVAL);
	assert_int_equal(args(&cfg, "--remote", "redis-clusters://h:1", NULL), -EINVAL);
}

static void test_tenants(void **state)
{
	struct kv_config cfg;
	const char *path = write_file("[tenant teamA]\n"
				      "uids = 1000, 1001\n"
				      "dram_bytes = 4G\n"
				      "namespaces = 64\n"
				      "[tenant teamB]\n"
				      "uids = 2000\n");

	kv_config_defaults(&cfg);
	assert_int_equal(args(&cfg, "--config", path, "--tenant",
			      "teamC uids=3000 ssd_bytes=1G uncommitted_bytes=64M", NULL), 0);
	unlink(path);
	assert_int_equal(cfg.n_tenants, 3);
	assert_string_equal(cfg.tenants[0].name, "teamA");
	assert_int_equal(cfg.tenants[0].n_uids, 2);
	assert_int_equal(cfg.tenants[0].uids[1], 1001);
	assert_int_equal(cfg.tenants[0].quota[KV_TQ_DRAM], 4ull << 30);
	assert_int_equal(cfg.tenants[0].set, (1u << KV_TQ_DRAM) | (1u << KV_TQ_NAMESPACES));
	assert_int_equal(cfg.tenants[1].set, 0);
	assert_int_equal(cfg.tenants[2].quota[KV_TQ_SSD], 1ull << 30);
	assert_int_equal(cfg.tenants[2].quota[KV_TQ_UNCOMMITTED], 64ull << 20);
	/* Bad names, keys and values are refused and named. */
	assert_int_not_equal(args(&cfg, "--tenant", "uid:5 uids=5", NULL), 0);
	assert_non_null(strstr(err, "bad name"));
	assert_int_not_equal(args(&cfg, "--tenant", "x uids=5 colour=red", NULL), 0);
	assert_non_null(strstr(err, "colour"));
	assert_int_not_equal(args(&cfg, "--tenant", "x dram_bytes=12", NULL), 0);
	assert_non_null(strstr(err, "dram_bytes"));
	assert_int_not_equal(args(&cfg, "--tenant", "x uids=abc", NULL), 0);
	assert_non_null(strstr(err, "abc"));
}

static void test_tenant_resolve(void **state)
{
	struct kv_tenant_conf decl[2], out[KV_TENANT_MAX];
	uint64_t total[KV_TQ_MAX] = { [KV_TQ_DRAM] = 100 << 20, [KV_TQ_HBM] = 0,
				      [KV_TQ_SSD] = 1000 << 20, [KV_TQ_NAMESPACES] = 4096 };
	uid_t allow[] = { 0, 1000, 2000, 2001 };
	int n;

	memset(decl, 0, sizeof(decl));
	strcpy(decl[0].name, "a");
	decl[0].uids[0] = 1000;
	decl[0].uids[1] = 1001;
	decl[0].n_uids = 2;
	decl[0].set = 1u << KV_TQ_DRAM;
	decl[0].quota[KV_TQ_DRAM] = 40 << 20;
	/* No list: the daemon's own uid alone, with everything. */
	n = kv_tenants_resolve(NULL, 0, NULL, 0, 42, total, 4096, out, KV_TENANT_MAX,
			       err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(out[0].name, "uid:42");
	assert_int_equal(out[0].quota[KV_TQ_DRAM], 100 << 20);
	assert_int_equal(out[0].quota[KV_TQ_SSD], 1000 << 20);
	assert_int_equal(out[0].quota[KV_TQ_UNCOMMITTED], 100 << 20);
	/* Declared 'a' keeps its 40 MiB; uids 0, 2000, 2001 (1000 is a's)
	 * share the other 60, in whole granules; SSD and namespaces are split
	 * four ways. */
	n = kv_tenants_resolve(decl, 1, allow, 4, 42, total, 4096, out, KV_TENANT_MAX,
			       err, sizeof(err));
	assert_int_equal(n, 4);
	assert_string_equal(out[0].name, "a");
	assert_int_equal(out[0].quota[KV_TQ_DRAM], 40 << 20);
	assert_string_equal(out[1].name, "uid:0");
	assert_string_equal(out[3].name, "uid:2001");
	assert_int_equal(out[1].quota[KV_TQ_DRAM], 20 << 20);
	assert_int_equal(out[2].quota[KV_TQ_DRAM] % 4096, 0);
	assert_int_equal(out[0].quota[KV_TQ_SSD], 250 << 20);
	assert_int_equal(out[3].quota[KV_TQ_NAMESPACES], 1024);
	assert_int_equal(out[2].quota[KV_TQ_HBM], 0);
	assert_int_equal(kv_tenant_of(out, 4, 1001), 0);
	assert_int_equal(kv_tenant_of(out, 4, 2001), 3);
	assert_int_equal(kv_tenant_of(out, 4, 7), -ENOENT);
	/* Over-declared, a uid twice, too little left, too many tenants. */
	decl[0].quota[KV_TQ_DRAM] = 101 << 20;
	assert_int_equal(kv_tenants_resolve(decl, 1, allow, 4, 42, total, 4096, out,
					    KV_TENANT_MAX, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "dram_bytes"));
	decl[0].quota[KV_TQ_DRAM] = 100 << 20;
	assert_int_equal(kv_tenants_resolve(decl, 1, allow, 4, 42, total, 4096, out,
					    KV_TENANT_MAX, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too little"));
	decl[1] = decl[0];
	strcpy(decl[1].name, "b");
	decl[1].uids[0] = 5;
	decl[0].quota[KV_TQ_DRAM] = 1 << 20;
	decl[1].quota[KV_TQ_DRAM] = 1 << 20;
	assert_int_equal(kv_tenants_resolve(decl, 2, allow, 4, 42, total, 4096, out,
					    KV_TENANT_MAX, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "uid 1001"));
	assert_int_equal(kv_tenants_resolve(NULL, 0, allow, 4, 42, total, 4096, out, 3,
					    err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_11_config_defects),
		cmocka_unit_test(test_remote_tls),
		cmocka_unit_test(test_tenants),
		cmocka_unit_test(test_tenant_resolve),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_bad_flags_named),
		cmocka_unit_test(test_ini_file),
		cmocka_unit_test(test_ini_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
