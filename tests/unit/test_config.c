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
#include "kvstore/log.h"
#include "kvstore/util.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_bad_flags_named),
		cmocka_unit_test(test_ini_file),
		cmocka_unit_test(test_ini_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
