/*
 * errors.c - names for kvstore's error codes.
 */
#include <string.h>

#include "lib/errors.h"

static const char *const kv_errnames[] = {
	[KV_EPROTO - KV_EBASE]		= "malformed message",
	[KV_EVERSION - KV_EBASE]	= "protocol version not supported",
	[KV_EMSGSIZE - KV_EBASE]	= "message too large",
	[KV_EBATCH - KV_EBASE]		= "too many keys in one message",
	[KV_ECONNS - KV_EBASE]		= "too many connections",
	[KV_EPINS - KV_EBASE]		= "too many pins on this connection",
	[KV_EUNCOMMITTED - KV_EBASE]	= "too many uncommitted bytes on this connection",
	[KV_EFULL - KV_EBASE]		= "tier full: every chunk is pinned or being written",
	[KV_ENOGPU - KV_EBASE]		= "no usable GPU",
	[KV_EGPU - KV_EBASE]		= "GPU error",
	[KV_ENONS - KV_EBASE]		= "namespace not registered on this connection",
	[KV_ETOOBIG - KV_EBASE]		= "chunk larger than the tier",
	[KV_EPEER - KV_EBASE]		= "peer not allowed",
	[KV_ECLOSED - KV_EBASE]		= "connection closed by the daemon",
	[KV_ENSLIMIT - KV_EBASE]	= "too many namespaces",
	[KV_ENOTIER - KV_EBASE]		= "no such tier",
	[KV_ECORRUPT - KV_EBASE]	= "stored data failed its checksum",
	[KV_ENOPARENT - KV_EBASE]	= "parent chunk not cached",
	[KV_EFORMAT - KV_EBASE]		= "data directory has another on-disk format",
	[KV_ETIMEDOUT - KV_EBASE]	= "deadline passed",
	[KV_ELOCKED - KV_EBASE]		= "held by another kvstored",
	[KV_ENSREC - KV_EBASE]		= "namespace could not be recorded",
	[KV_EQUOTA - KV_EBASE]		= "tenant quota reached",
	[KV_EMETA - KV_EBASE]		= "chunk metadata limit reached",
	[KV_EEXPIRED - KV_EBASE]	= "allocation lease expired",
	[KV_EMEMORY - KV_EBASE]		= "daemon memory for clients exhausted",
	[KV_EREFUSED - KV_EBASE]	= "the tier below refused some chunks",
};

_Static_assert(sizeof(kv_errnames) / sizeof(kv_errnames[0]) == KV_EMAX - KV_EBASE,
	       "every kvstore error code needs a name");

const char *kv_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	if (err > KV_EBASE && err < KV_EMAX && kv_errnames[err - KV_EBASE])
		return kv_errnames[err - KV_EBASE];
	if (err < KV_EBASE)
		return strerror(err);	/* glibc: static strings for known errno */
	return "unknown error";
}
