/*
 * tmpdir.c - scratch directories for tests (tmpdir.h).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "tests/lib/tmpdir.h"

int kvt_tmpdir(char *buf, size_t len, const char *parent, const char *prefix)
{
	int n;

	if (!parent)
		parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	n = snprintf(buf, len, "%s/%sXXXXXX", parent, prefix);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return mkdtemp(buf) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)type;
	(void)f;
	return remove(path);
}

int kvt_rmtree(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) && errno == ENOENT)
		return 0;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
