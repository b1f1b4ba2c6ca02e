/*
 * errors.h - kvstore's error codes and their names.
 *
 * Every fallible function returns 0 or a negative code: -errno for what the
 * OS already names (ENOENT: no such chunk, EEXIST: already stored, EINVAL,
 * ENOMEM, EACCES, EBUSY: pinned or being written), or -KV_E* below for what
 * it does not. On the wire a status is the same number, positive. The values are part of the
 * protocol (docs/protocol.md) and of client/kvc.h, which mirrors them as
 * KVC_E*: never renumber one.
 */
#ifndef KV_ERRORS_H
#define KV_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum kv_error {
	KV_EBASE	= 20000,
	KV_EPROTO	= 20001,	/* malformed message */
	KV_EVERSION	= 20002,	/* protocol version not supported */
	KV_EMSGSIZE	= 20003,	/* message larger than the limit */
	KV_EBATCH	= 20004,	/* more keys in one message than allowed */
	KV_ECONNS	= 20005,	/* connection limit reached */
	KV_EPINS	= 20006,	/* pin limit of this connection reached */
	KV_EUNCOMMITTED	= 20007,	/* uncommitted-bytes limit reached */
	KV_EFULL	= 20008,	/* tier full of pinned or unwritten chunks */
	KV_ENOGPU	= 20009,	/* no usable GPU */
	KV_EGPU		= 20010,	/* a CUDA call failed */
	KV_ENONS	= 20011,	/* namespace not registered on this connection */
	KV_ETOOBIG	= 20012,	/* chunk larger than the tier can ever hold */
	KV_EPEER	= 20013,	/* peer not on the allow-list */
	KV_ECLOSED	= 20014,	/* the daemon closed the connection */
	KV_ENSLIMIT	= 20015,	/* namespace table full */
	KV_ENOTIER	= 20016,	/* no such tier in this daemon */
	KV_ECORRUPT	= 20017,	/* stored bytes failed their checksum */
	KV_ENOPARENT	= 20018,	/* the chunk's parent is not cached */
	KV_EFORMAT	= 20019,	/* data directory of another on-disk format */
	KV_ETIMEDOUT	= 20020,	/* a deadline passed (HELLO, a frame, a call) */
	KV_ELOCKED	= 20021,	/* held by another kvstored (socket, ssd_dir) */
	KV_ENSREC	= 20022,	/* the namespace could not be recorded durably */
	KV_EQUOTA	= 20023,	/* the tenant's quota is reached */
	KV_EMETA	= 20024,	/* the chunk metadata limit is reached */
	KV_EEXPIRED	= 20025,	/* the allocation's lease expired */
	KV_EMEMORY	= 20026,	/* the daemon's memory bound for clients */
	KV_EREFUSED	= 20027,	/* the tier below refused some chunks */
	KV_EMAX
};

/*
 * Name an error code, negative or positive, kvstore's or errno's. Returns a
 * static string; never NULL.
 */
const char *kv_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
