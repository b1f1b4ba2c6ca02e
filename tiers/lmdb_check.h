/*
 * lmdb_check.h - check an LMDB environment's pages before LMDB reads them.
 *
 * LMDB 0.9 trusts its pages, so a corrupt file can make it read outside
 * the map. kv_lmdb_check() walks every page reachable from the meta page
 * LMDB picked, with pread (never the map), and says whether all of it is
 * in bounds and consistent (lmdb_check.c lists what it checks). The SSD
 * tier's index calls it after mdb_env_open() and before its first
 * transaction.
 *
 * Locking: call it while no transaction of this process is active on env.
 * Ownership: env and path are borrowed for the call.
 */
#ifndef KV_LMDB_CHECK_H
#define KV_LMDB_CHECK_H

struct MDB_env;

/*
 * Check the environment env, opened from path (named in the log). Returns
 * 0 when every page is sound, or -EIO (the first problem found and its
 * page are logged).
 */
int kv_lmdb_check(struct MDB_env *env, const char *path);

#endif
