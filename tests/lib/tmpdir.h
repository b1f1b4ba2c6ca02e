/*
 * tmpdir.h - scratch directories for tests that need a disk.
 */
#ifndef KVT_TMPDIR_H
#define KVT_TMPDIR_H

#include <stddef.h>

/*
 * Make a new directory "<parent>/<prefix>XXXXXX" (mkdtemp) and write its
 * path into buf (len bytes). parent NULL means $TMPDIR, or /var/tmp
 * without it. Returns 0, or -1 (too long for buf, or mkdtemp failed:
 * errno says why).
 */
int kvt_tmpdir(char *buf, size_t len, const char *parent, const char *prefix);

/* Remove dir and everything under it, not following links. Returns 0 (a
 * dir that does not exist is fine) or -1. */
int kvt_rmtree(const char *dir);

#endif
