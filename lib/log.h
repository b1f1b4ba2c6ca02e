/*
 * log.h - one line per event, with a level and a subsystem.
 *
 * kv_log() tests the level and the subsystem mask before it evaluates any
 * argument, so a disabled debug line costs one branch. kv_trace() vanishes
 * unless built with DEBUG=1. Lines go to stderr (descriptor 2, which
 * kv_log_open() may point at a file):
 *   2026-11-22T23:10:00.123Z INFO  net: accepted connection from uid 1000
 * Thread-safe (each line is one write(2)).
 */
#ifndef KV_LOG_H
#define KV_LOG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum kv_log_level {
	KV_ERR,
	KV_WARN,
	KV_INFO,
	KV_DEBUG,
};

enum kv_log_subsys {
	KV_LOG_MAIN	= 1 << 0,
	KV_LOG_INDEX	= 1 << 1,
	KV_LOG_TIER	= 1 << 2,
	KV_LOG_EVICT	= 1 << 3,
	KV_LOG_GPU	= 1 << 4,
	KV_LOG_NET	= 1 << 5,
	KV_LOG_SHM	= 1 << 6,
	KV_LOG_ALL	= (1 << 7) - 1,
};

extern int kv_log_level;
extern unsigned kv_log_mask;

/*
 * Parse a --log value: "LEVEL" or "LEVEL:SUBSYS[,SUBSYS...]", LEVEL one of
 * err|warn|info|debug, SUBSYS one of main|index|tier|evict|gpu|net|shm|all.
 * Returns 0 and sets the level and mask, or -EINVAL and changes nothing.
 */
int kv_log_parse(const char *spec);

/*
 * Send log lines to the file at path from now on, appending (created with
 * mode 0640 when missing). The file takes the place of descriptor 2, so
 * whatever else the process writes to stderr lands there too. Calling it
 * again with the same path opens the path anew: after logrotate moved the
 * file away, lines go to a new file at path. Thread-safe: a line written
 * meanwhile goes whole to the old file or the new. Returns 0, or -errno
 * with the log left where it was.
 */
int kv_log_open(const char *path);

void kv_log_write(int level, unsigned subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define kv_log_enabled(level, subsys) \
	((level) <= kv_log_level && ((subsys) & kv_log_mask))

#define kv_log(level, subsys, ...)					\
	do {								\
		if (kv_log_enabled(level, subsys))			\
			kv_log_write(level, subsys, __VA_ARGS__);	\
	} while (0)

/* Log at most once per call site for the life of the process. */
#define kv_log_once(level, subsys, ...)					\
	do {								\
		static bool kv_logged_;					\
		if (!kv_logged_ && kv_log_enabled(level, subsys)) {	\
			kv_logged_ = true;				\
			kv_log_write(level, subsys, __VA_ARGS__);	\
		}							\
	} while (0)

#ifdef KV_TRACE
#define kv_trace(subsys, ...) kv_log(KV_DEBUG, subsys, __VA_ARGS__)
#else
#define kv_trace(subsys, ...) do { } while (0)
#endif

#ifdef __cplusplus
}
#endif
#endif
