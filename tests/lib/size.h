/*
 * size.h - sizes on benchmark command lines and in their tables.
 */
#ifndef KVT_SIZE_H
#define KVT_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a positive decimal size with an optional binary suffix (k, m, g, t,
 * either case: KiB, MiB, GiB, TiB; "iB" or "B" may follow it, as in 64MiB)
 * into *out. Returns 0, or -EINVAL for anything else (no digits, another
 * suffix, 0, overflow); *out is untouched then.
 */
int kvt_parse_size(const char *s, uint64_t *out);

/*
 * Name a size for a table: "N GiB" when a whole number of GiB, else
 * "N MiB" from 1 MiB up, else "N KiB" (rounded down). Writes into buf (len
 * bytes) and returns it.
 */
const char *kvt_size_name(uint64_t bytes, char *buf, size_t len);

#endif
