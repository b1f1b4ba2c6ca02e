/*
 * log.c - the log line writer behind kv_log().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

int kv_log_level = KV_INFO;
unsigned kv_log_mask = KV_LOG_ALL;

static const char *const level_names[] = { "err", "warn", "info", "debug" };
static const char *const subsys_names[] = {
	"main", "index", "tier", "evict", "gpu", "net", "shm",
};

int kv_log_parse(const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t llen = colon ? (size_t)(colon - spec) : strlen(spec);
	unsigned mask = 0;
	int level = -1;

	for (int i = 0; i < 4; i++)
		if (strlen(level_names[i]) == llen &&
		    !strncasecmp(spec, level_names[i], llen))
			level = i;
	if (level < 0)
		return -EINVAL;
	if (!colon) {
		mask = KV_LOG_ALL;
	} else {
		const char *p = colon + 1;

		while (*p) {
			size_t n = strcspn(p, ",");
			bool found = false;

			if (n == 3 && !strncasecmp(p, "all", 3)) {
				mask |= KV_LOG_ALL;
				found = true;
			}
			for (unsigned i = 0; !found && i < 7; i++)
				if (strlen(subsys_names[i]) == n &&
				    !strncasecmp(p, subsys_names[i], n)) {
					mask |= 1u << i;
					found = true;
				}
			if (!found)
				return -EINVAL;
			p += n;
			if (*p == ',')
				p++;
		}
		if (!mask)
			return -EINVAL;
	}
	kv_log_level = level;
	kv_log_mask = mask;
	return 0;
}

/* dup2() swaps descriptor 2 in one step, so no line is lost or split. */
int kv_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fd == STDERR_FILENO)	/* stderr was closed */
		return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0;
	if (dup2(fd, STDERR_FILENO) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

void kv_log_write(int level, unsigned subsys, const char *fmt, ...)
{
	static const char *const tags[] = { "ERR  ", "WARN ", "INFO ", "DEBUG" };
	char line[1024];
	struct timeval tv;
	struct tm tm;
	int saved = errno;
	int n, m;
	unsigned s = 0;
	va_list ap;

	while (s < 6 && !(subsys & (1u << s)))
		s++;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
		     tags[level & 3], subsys_names[s]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
