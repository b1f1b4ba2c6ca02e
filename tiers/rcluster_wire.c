/*
 * rcluster_wire.c - the Redis Cluster client's connections: non-blocking
 * connect, RESP requests written with sendmsg() from iovecs (a SET's value
 * straight from the caller's), replies read and checked, a GET's payload
 * read with readv() straight into the caller's buffer.
 *
 * TLS (conf.tls): after the connect, SSL_do_handshake() driven by the same
 * poll loop (WANT_READ / WANT_WRITE pick the events); requests go out with
 * SSL_write() (small segments gathered into one record, large ones written
 * from where they are), replies come in with SSL_read(), a GET's payload
 * still straight into the caller's buffer. Every SSL call on a connection
 * is repeated until it would block, so no decrypted byte waits in OpenSSL
 * while we wait in poll(); SSL_has_pending() is checked anyway. A failed
 * handshake or a bad certificate is a failed connection (-ECONNABORTED),
 * its reason logged once per outage of the node.
 *
 * Replies other than a GET's bulk are first checked by resp_scan(), which
 * knows where a reply ends and enforces the bounds of rcluster.h (line
 * length, bulk length, array size and depth) before anything is
 * allocated; only a complete, checked reply is handed to hiredis's reader
 * to build a redisReply, so hiredis never sees a length a peer chose
 * beyond those bounds.
 *
 * Invariants: reqs[head] is the request whose reply comes next; rd says
 * where in that reply we are. A connection with head == n_reqs has nothing
 * outstanding. rc_pump() leaves every connection it drove with no requests
 * (answered, failed, or timed out and closed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "tiers/rcluster_int.h"

#define NUM_MAX		32		/* "$<20 digits>\r\n", or a whole number as a
					 * bulk ("$20\r\n<20 digits>\r\n"), and its NUL */
#define NUM_PER_REQ	3		/* such numbers in one request at most */
#define IOV_PER_REQ	8		/* iovecs, besides a SET's value's */
#define GET_LINE_MAX	32		/* "$<len>\r\n" of a GET */

static const char crlf[] = "\r\n";

uint64_t rc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Strict decimal: optional '-', 1..18 digits, nothing else. */
static int parse_ll(const char *p, size_t n, long long *out)
{
	long long v = 0;
	bool neg = false;

	if (n && *p == '-') {
		neg = true;
		p++;
		n--;
	}
	if (n == 0 || n > 18)
		return -EPROTO;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EPROTO;
		v = v * 10 + (p[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

/* The line at p[0..n): its length up to CR LF in *eol. 1: found; 0: not
 * yet; -EPROTO: a bare LF or longer than max. */
static int find_line(const char *p, size_t n, size_t max, size_t *eol)
{
	const char *lf = memchr(p, '\n', n < max ? n : max);

	if (!lf)
		return n >= max ? -EPROTO : 0;
	if (lf == p || lf[-1] != '\r')
		return -EPROTO;
	*eol = (size_t)(lf - p) - 1;
	return 1;
}

/*
 * Where the RESP2 reply at p[0..n) ends: its length, 0 when incomplete,
 * -EPROTO when it breaks RESP or a bound.
 */
static long resp_scan(const char *p, size_t n)
{
	long long todo[RC_DEPTH_MAX + 1];
	int depth = 0;
	size_t pos = 0;

	todo[0] = 1;
	for (;;) {
		size_t eol;
		long long v = 0;
		char type;
		int ret;

		if (pos >= n)
			return 0;
		ret = find_line(p + pos, n - pos, RC_LINE_MAX, &eol);
		if (ret <= 0)
			return ret;
		type = p[pos];
		switch (type) {
		case '+':
		case '-':
			break;
		case ':':
			if (parse_ll(p + pos + 1, eol - 1, &v))
				return -EPROTO;
			break;
		case '$':
			if (parse_ll(p + pos + 1, eol - 1, &v) || v < -1 || v > RC_REPLY_MAX)
				return -EPROTO;
			break;
		case '*':
			if (parse_ll(p + pos + 1, eol - 1, &v) || v < -1 || v > RC_ARRAY_MAX)
				return -EPROTO;
			break;
		default:
			return -EPROTO;
		}
		pos += eol + 2;
		if (type == '$' && v >= 0) {
			if (n - pos < (size_t)v + 2)
				return 0;
			if (p[pos + v] != '\r' || p[pos + v + 1] != '\n')
				return -EPROTO;
			pos += (size_t)v + 2;
		}
		if (pos > RC_REPLY_MAX)
			return -EPROTO;
		/* An array header opens a level of v elements. */
		if (type == '*' && v > 0) {
			if (depth == RC_DEPTH_MAX)
				return -EPROTO;
			todo[++depth] = v;
			continue;
		}
		todo[depth]--;
		while (depth > 0 && todo[depth] == 0)
			todo[--depth]--;
		if (depth == 0 && todo[0] == 0)
			return (long)pos;
	}
}

static int conn_fail_all(struct kv_rc *rc, struct rc_conn *c, int err)
{
	for (size_t i = c->head; i < c->n_reqs; i++)
		rc_req_fail(rc, &c->reqs[i], err);
	c->head = c->n_reqs;
	return err;
}

void rc_conn_close(struct rc_conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);	/* no close_notify: the socket just goes */
	c->ssl = NULL;
	c->handshaking = false;
	c->want_write = false;
	c->toff = c->tlen = 0;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connecting = false;
	c->rpos = c->rend = 0;
	c->rd = RD_REPLY;
}

/* c failed with err: fail what it still owes, close it, tell its node. */
static void conn_fail(struct kv_rc *rc, struct rc_conn *c, int err)
{
	conn_fail_all(rc, c, err);
	if (err == -EPROTO)
		rc->st.proto_errors++;
	else
		rc->st.conn_errors++;
	rc_conn_close(c);
	rc_node_failed(rc, c->node, err);
}

int rc_tls_ctx(SSL_CTX **out, const struct kv_rc_conf *conf)
{
	const char *what = "CA file";
	const char *file = conf->tls_ca_file;
	char why[256];
	SSL_CTX *ctx;

	if (!file || !*file) {
		kv_log(KV_ERR, KV_LOG_TIER, "TLS to the cluster needs a CA file to check its certificates");
		return -EINVAL;
	}
	if (!conf->tls_cert_file != !conf->tls_key_file) {
		kv_log(KV_ERR, KV_LOG_TIER, "a TLS client certificate needs its key, and a key its certificate");
		return -EINVAL;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1)
		goto out_bad;
	if (conf->tls_cert_file) {
		what = "certificate file";
		file = conf->tls_cert_file;
		if (SSL_CTX_use_certificate_chain_file(ctx, file) != 1)
			goto out_bad;
		what = "key file";
		file = conf->tls_key_file;
		if (SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			goto out_bad;
	}
	*out = ctx;
	return 0;

out_bad:
	ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
	kv_log(KV_ERR, KV_LOG_TIER, "cannot load the TLS %s '%s': %s", what, file, why);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* A TLS session on fd that checks the node's certificate names its host
 * (an IP literal against the certificate's IP addresses). 0 or -ENOMEM. */
static int tls_new(struct kv_rc *rc, struct rc_conn *c, int fd)
{
	const char *host = c->node->host;
	unsigned char ip[sizeof(struct in6_addr)];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(rc->ssl_ctx);
	if (!ssl)
		return -ENOMEM;
	if (!SSL_set_fd(ssl, fd) ||
	    (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) :
		     !SSL_set1_host(ssl, host) || !SSL_set_tlsext_host_name(ssl, host))) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_connect_state(ssl);
	c->ssl = ssl;
	c->handshaking = true;
	c->want_write = true;		/* the ClientHello goes first */
	return 0;
}

/* An SSL call on c returned r (errno as it left it in err): 0 when it
 * would block (want_write says on what), else the error that ends the
 * connection; the reason is logged when it starts an outage of the node. */
static int tls_err(struct rc_conn *c, int r, int err, const char *what)
{
	char why[256];
	long vr;

	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->want_write = false;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error())
			return err && err != EAGAIN ? -err : -ECONNRESET;
		break;
	}
	vr = SSL_get_verify_result(c->ssl);
	if (vr != X509_V_OK)
		snprintf(why, sizeof(why), "certificate: %s", X509_verify_cert_error_string(vr));
	else
		ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
	ERR_clear_error();
	if (!c->node->backoff_ms)
		kv_log(KV_WARN, KV_LOG_TIER, "TLS %s with '%s' failed: %s", what, c->node->addr,
		       why);
	return -ECONNABORTED;
}

static int conn_handshake(struct rc_conn *c)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		c->want_write = false;
		return 0;
	}
	return tls_err(c, r, errno, "handshake");
}

static int conn_open(struct kv_rc *rc, struct rc_conn *c)
{
	struct rc_node *node = c->node;
	int one = 1;
	int fd;

	if (!node->sa_len)
		return -EHOSTUNREACH;
	fd = socket(node->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&node->sa, node->sa_len) < 0) {
		if (errno != EINPROGRESS) {
			int ret = -errno;

			close(fd);
			return ret;
		}
		c->connecting = true;
	}
	if (rc->ssl_ctx) {
		int ret = tls_new(rc, c, fd);

		if (ret) {
			close(fd);
			c->connecting = false;
			return ret;
		}
	}
	c->fd = fd;
	c->rpos = c->rend = 0;
	c->rd = RD_REPLY;
	rc->st.connects++;
	return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int push_req(struct kv_rc *rc, struct rc_conn *c, uint8_t kind, uint32_t cmd)
{
	int ret;

	ret = grow((void **)&c->reqs, &c->reqs_cap, c->n_reqs + 1, sizeof(*c->reqs));
	if (ret)
		return ret;
	if (!c->active) {
		ret = grow((void **)&rc->active, &rc->active_cap, rc->n_active + 1,
			   sizeof(*rc->active));
		if (ret)
			return ret;
		rc->active[rc->n_active++] = c;
		c->active = true;
	}
	c->reqs[c->n_reqs].kind = kind;
	c->reqs[c->n_reqs].cmd = cmd;
	c->n_reqs++;
	return 0;
}

int rc_conn_push(struct kv_rc *rc, struct rc_conn *c, uint8_t kind, uint32_t cmd)
{
	int ret;

	if (c->fd < 0) {
		ret = conn_open(rc, c);
		if (ret) {
			rc->st.conn_errors++;
			rc_node_failed(rc, c->node, ret);
			return ret;
		}
		if (rc->password) {
			ret = push_req(rc, c, RQ_AUTH, 0);
			if (ret)
				return ret;
		}
	}
	return push_req(rc, c, kind, cmd);
}

static void add_iov(struct rc_conn *c, const void *p, size_t len)
{
	if (len == 0)
		return;
	c->iov[c->n_iov].iov_base = (void *)p;
	c->iov[c->n_iov].iov_len = len;
	c->n_iov++;
}

static void add_lit(struct rc_conn *c, const char *lit)
{
	add_iov(c, lit, strlen(lit));
}

/* "<type><n>\r\n" into c->hdr at *off, and its iovec. */
static void add_num(struct rc_conn *c, size_t *off, char type, size_t n)
{
	int len = snprintf(c->hdr + *off, NUM_MAX, "%c%zu\r\n", type, n);

	add_iov(c, c->hdr + *off, (size_t)len);
	*off += (size_t)len;
}

/* A bulk string: "$<len>\r\n<p>\r\n", p borrowed. */
static void add_bulk(struct rc_conn *c, size_t *off, const void *p, size_t len)
{
	add_num(c, off, '$', len);
	add_iov(c, p, len);
	add_iov(c, crlf, 2);
}

/* A number as a bulk string, "$<k>\r\n<digits>\r\n", in one piece. */
static void add_int_bulk(struct rc_conn *c, size_t *off, uint64_t v)
{
	char digits[24];
	int k = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
	int len = snprintf(c->hdr + *off, NUM_MAX, "$%d\r\n%s\r\n", k, digits);

	add_iov(c, c->hdr + *off, (size_t)len);
	*off += (size_t)len;
}

static void encode_key_cmd(struct rc_conn *c, size_t *off, const char *head,
			   const struct kv_rc_cmd *cmd)
{
	add_lit(c, head);
	add_bulk(c, off, cmd->key, cmd->key_len);
}

/* Lay out every queued request of c as iovecs. */
static int conn_encode(struct kv_rc *rc, struct rc_conn *c)
{
	size_t n_iov = 0;
	size_t off = 0;
	int ret;

	for (size_t i = 0; i < c->n_reqs; i++) {
		n_iov += IOV_PER_REQ;
		if (c->reqs[i].kind == RQ_CMD && rc->cmds[c->reqs[i].cmd].op == KV_RC_SET)
			n_iov += rc->cmds[c->reqs[i].cmd].iovcnt;
	}
	ret = grow((void **)&c->iov, &c->iov_cap, n_iov + IOV_PER_REQ, sizeof(*c->iov));
	if (!ret)
		ret = grow((void **)&c->hdr, &c->hdr_cap,
			   (c->n_reqs + 1) * NUM_PER_REQ * NUM_MAX, 1);
	if (ret)
		return ret;
	c->n_iov = c->iov_pos = 0;
	for (size_t i = 0; i < c->n_reqs; i++) {
		const struct rc_req *rq = &c->reqs[i];
		const struct kv_rc_cmd *cmd = &rc->cmds[rq->cmd];
		size_t vlen = 0;

		switch (rq->kind) {
		case RQ_AUTH:
			if (rc->user) {
				add_lit(c, "*3\r\n$4\r\nAUTH\r\n");
				add_bulk(c, &off, rc->user, strlen(rc->user));
			} else {
				add_lit(c, "*2\r\n$4\r\nAUTH\r\n");
			}
			add_bulk(c, &off, rc->password, strlen(rc->password));
			continue;
		case RQ_ASKING:
			add_lit(c, "*1\r\n$6\r\nASKING\r\n");
			continue;
		case RQ_SLOTS:
			add_lit(c, "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n");
			continue;
		}
		switch (cmd->op) {
		case KV_RC_GET:
			encode_key_cmd(c, &off, "*2\r\n$3\r\nGET\r\n", cmd);
			break;
		case KV_RC_EXISTS:
			encode_key_cmd(c, &off, "*2\r\n$6\r\nEXISTS\r\n", cmd);
			break;
		case KV_RC_GETRANGE:
			encode_key_cmd(c, &off, "*4\r\n$8\r\nGETRANGE\r\n", cmd);
			add_int_bulk(c, &off, cmd->start);
			add_int_bulk(c, &off, cmd->end);
			break;
		case KV_RC_DEL:
			encode_key_cmd(c, &off, "*2\r\n$3\r\nDEL\r\n", cmd);
			break;
		case KV_RC_SET:
			for (unsigned k = 0; k < cmd->iovcnt; k++)
				vlen += cmd->iov[k].iov_len;
			encode_key_cmd(c, &off, "*3\r\n$3\r\nSET\r\n", cmd);
			add_num(c, &off, '$', vlen);
			for (unsigned k = 0; k < cmd->iovcnt; k++)
				add_iov(c, cmd->iov[k].iov_base, cmd->iov[k].iov_len);
			add_iov(c, crlf, 2);
			break;
		}
	}
	return 0;
}

static bool conn_has_output(const struct rc_conn *c)
{
	return c->iov_pos < c->n_iov || c->toff < c->tlen;
}

/* n bytes of iov[iov_pos..] went out. */
static void iov_advance(struct rc_conn *c, size_t n)
{
	while (n > 0) {
		struct iovec *v = &c->iov[c->iov_pos];

		if (n >= v->iov_len) {
			n -= v->iov_len;
			c->iov_pos++;
		} else {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
}

/* One SSL_write(): 1 and *done, 0 would block, or -errno. */
static int tls_write(struct rc_conn *c, const void *p, size_t len, size_t *done)
{
	int n;

	ERR_clear_error();
	errno = 0;
	n = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0) {
		*done = (size_t)n;
		return 1;
	}
	return tls_err(c, n, errno, "write");
}

/*
 * conn_output() over TLS. A record per small segment (a header, a CRLF)
 * would cost a write and 22 bytes or more each: segments under RC_TBUF
 * are gathered into tbuf first. tbuf's bytes stay put until written, as
 * SSL_write() wants them again after it would block.
 */
static int conn_output_tls(struct rc_conn *c)
{
	for (;;) {
		size_t n = 0;
		int ret;

		if (c->toff == c->tlen) {
			const struct iovec *v = &c->iov[c->iov_pos];

			c->toff = c->tlen = 0;
			if (c->iov_pos == c->n_iov)
				return 0;
			if (v->iov_len >= RC_TBUF) {
				ret = tls_write(c, v->iov_base, v->iov_len, &n);
				if (ret <= 0)
					return ret;
				iov_advance(c, n);
				continue;
			}
			if (!c->tbuf && !(c->tbuf = malloc(RC_TBUF)))
				return -ENOMEM;
			for (; c->iov_pos < c->n_iov; c->iov_pos++) {
				v = &c->iov[c->iov_pos];
				if (c->tlen + v->iov_len > RC_TBUF)
					break;
				memcpy(c->tbuf + c->tlen, v->iov_base, v->iov_len);
				c->tlen += v->iov_len;
			}
		}
		ret = tls_write(c, c->tbuf + c->toff, c->tlen - c->toff, &n);
		if (ret <= 0)
			return ret;
		c->toff += n;
	}
}

/* Send what the socket takes. 0 (done or would block) or -errno. */
static int conn_output(struct rc_conn *c)
{
	if (c->ssl)
		return conn_output_tls(c);
	while (c->iov_pos < c->n_iov) {
		struct msghdr msg = {
			.msg_iov = c->iov + c->iov_pos,
			.msg_iovlen = c->n_iov - c->iov_pos,
		};
		ssize_t n;

		if (msg.msg_iovlen > IOV_MAX)
			msg.msg_iovlen = IOV_MAX;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		iov_advance(c, (size_t)n);
	}
	return 0;
}

/* A GET's "$<len>" line at the head: set up the payload. 1 when
 * consumed, 0 when the line is incomplete, -EPROTO. */
static int get_header(struct kv_rc *rc, struct rc_conn *c, struct kv_rc_cmd *cmd)
{
	size_t avail = c->rend - c->rpos;
	size_t eol;
	long long v;
	int ret;

	ret = find_line(c->rbuf + c->rpos, avail, GET_LINE_MAX, &eol);
	if (ret <= 0)
		return ret;
	if (parse_ll(c->rbuf + c->rpos + 1, eol - 1, &v) || v < -1 ||
	    (v >= 0 && (unsigned long long)v > KV_RC_VALUE_MAX)) {
		kv_log(KV_DEBUG, KV_LOG_TIER, "bad bulk length from '%s'", c->node->addr);
		return -EPROTO;
	}
	c->rpos += eol + 2;
	if (v == -1) {
		cmd->result = -ENOENT;
		c->head++;
		rc_node_ok(c->node);
		return 1;
	}
	cmd->len = (size_t)v;
	c->left = (uint64_t)v;
	c->got = 0;
	if (cmd->len > cmd->cap) {
		c->rd = RD_SKIP;
		c->rd_res = -EMSGSIZE;
	} else {
		c->rd = RD_PAYLOAD;
		c->rd_res = 0;
	}
	(void)rc;
	return 1;
}

/* A complete, checked reply of len bytes at the head, through hiredis. */
static int reply_one(struct kv_rc *rc, struct rc_conn *c, size_t len)
{
	const struct rc_req *rq = &c->reqs[c->head];
	void *reply = NULL;
	int ret;

	if (redisReaderFeed(rc->reader, c->rbuf + c->rpos, len) != REDIS_OK ||
	    redisReaderGetReply(rc->reader, &reply) != REDIS_OK || !reply) {
		/* The reader is spoilt after an error: start a new one. */
		redisReaderFree(rc->reader);
		rc->reader = redisReaderCreate();
		if (reply)
			freeReplyObject(reply);
		return rc->reader ? -EPROTO : -ENOMEM;
	}
	c->rpos += len;
	c->head++;
	ret = rc_reply(rc, c, rq, reply);
	freeReplyObject(reply);
	return ret;
}

/* Consume what rbuf holds. 0 when it needs more bytes, or -errno. */
static int conn_parse(struct kv_rc *rc, struct rc_conn *c)
{
	while (c->head < c->n_reqs) {
		const struct rc_req *rq = &c->reqs[c->head];
		struct kv_rc_cmd *cmd = &rc->cmds[rq->cmd];
		size_t avail = c->rend - c->rpos;
		size_t n;
		long len;
		int ret;

		switch (c->rd) {
		case RD_PAYLOAD:
		case RD_SKIP:
			n = avail < c->left ? avail : (size_t)c->left;
			if (c->rd == RD_PAYLOAD)
				memcpy((char *)cmd->buf + c->got, c->rbuf + c->rpos, n);
			c->rpos += n;
			c->got += n;
			c->left -= n;
			if (c->left)
				return 0;
			c->rd = RD_TRAILER;
			continue;
		case RD_TRAILER:
			if (avail < 2)
				return 0;
			if (c->rbuf[c->rpos] != '\r' || c->rbuf[c->rpos + 1] != '\n')
				return -EPROTO;
			c->rpos += 2;
			c->rd = RD_REPLY;
			cmd->result = c->rd_res;
			c->head++;
			rc_node_ok(c->node);
			continue;
		}
		if (avail == 0)
			return 0;
		if (rq->kind == RQ_CMD && (cmd->op == KV_RC_GET || cmd->op == KV_RC_GETRANGE) &&
		    c->rbuf[c->rpos] == '$') {
			ret = get_header(rc, c, cmd);
			if (ret <= 0)
				return ret;
			continue;
		}
		len = resp_scan(c->rbuf + c->rpos, avail);
		if (len < 0)
			return (int)len;
		if (len == 0)
			return 0;
		ret = reply_one(rc, c, (size_t)len);
		if (ret)
			return ret;
	}
	return 0;
}

/* One SSL_read(): >0, 0 would block, or -errno. */
static ssize_t tls_read(struct rc_conn *c, void *p, size_t len)
{
	int n;

	ERR_clear_error();
	errno = 0;
	n = SSL_read(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	return tls_err(c, n, errno, "read");
}

/* Read once: a payload straight into the caller's buffer (and what
 * follows into rbuf; over TLS, only the payload), else into rbuf. >0, 0
 * would block, or -errno. */
static ssize_t conn_recv(struct kv_rc *rc, struct rc_conn *c)
{
	struct iovec v[2];
	int cnt = 0;
	ssize_t n;

	if (c->rpos == c->rend) {
		c->rpos = c->rend = 0;
	} else if (c->rend == c->rcap && c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
		c->rend -= c->rpos;
		c->rpos = 0;
	}
	if (c->rend == c->rcap) {
		if (c->rcap >= RC_REPLY_MAX + RC_LINE_MAX)
			return -EPROTO;	/* a reply that never ends */
		if (grow((void **)&c->rbuf, &c->rcap, c->rcap ? c->rcap * 2 : RC_RBUF_MIN, 1))
			return -ENOMEM;
	}
	if (c->rd == RD_PAYLOAD && c->rpos == c->rend) {
		struct kv_rc_cmd *cmd = &rc->cmds[c->reqs[c->head].cmd];

		v[cnt].iov_base = (char *)cmd->buf + c->got;
		v[cnt].iov_len = c->left;
		cnt++;
	}
	if (c->ssl && cnt == 1) {
		n = tls_read(c, v[0].iov_base, v[0].iov_len);
		if (n > 0) {
			c->got += (size_t)n;
			c->left -= (size_t)n;
			if (!c->left)
				c->rd = RD_TRAILER;
		}
		return n;
	}
	if (c->ssl) {
		n = tls_read(c, c->rbuf + c->rend, c->rcap - c->rend);
		if (n > 0)
			c->rend += (size_t)n;
		return n;
	}
	v[cnt].iov_base = c->rbuf + c->rend;
	v[cnt].iov_len = c->rcap - c->rend;
	cnt++;
	do
		n = readv(c->fd, v, cnt);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	if (cnt == 2) {
		size_t direct = (size_t)n < c->left ? (size_t)n : (size_t)c->left;

		c->got += direct;
		c->left -= direct;
		c->rend += (size_t)n - direct;
		if (!c->left)
			c->rd = RD_TRAILER;
	} else {
		c->rend += (size_t)n;
	}
	return n;
}

/* c is readable: parse and read until it would block. 0 or -errno. */
static int conn_input(struct kv_rc *rc, struct rc_conn *c)
{
	for (;;) {
		ssize_t n;
		int ret;

		ret = conn_parse(rc, c);
		if (ret)
			return ret;
		if (c->head == c->n_reqs)
			return c->rend > c->rpos ? -EPROTO : 0;
		n = conn_recv(rc, c);
		if (n <= 0)
			return (int)n;
	}
}

static int conn_connected(struct rc_conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	c->connecting = false;
	return 0;
}

static void conn_event(struct kv_rc *rc, struct rc_conn *c, short ev)
{
	bool ready;
	int ret = 0;

	if (c->connecting) {
		if (!(ev & (POLLOUT | POLLERR | POLLHUP)))
			return;
		ret = conn_connected(c);
	}
	if (!ret && !c->connecting && c->handshaking)
		ret = conn_handshake(c);
	ready = !ret && !c->connecting && !c->handshaking;
	/* Over TLS, either way may need the other's event: try both. */
	if (ready && (c->ssl || (ev & (POLLOUT | POLLERR))) && conn_has_output(c))
		ret = conn_output(c);
	if (!ret && ready && (c->ssl || (ev & (POLLIN | POLLERR | POLLHUP))))
		ret = conn_input(rc, c);
	if (ret) {
		if (ret != -EPROTO)
			kv_log(KV_DEBUG, KV_LOG_TIER, "connection to '%s' failed: %s",
			       c->node->addr, kv_strerror(ret));
		else
			kv_log(KV_WARN, KV_LOG_TIER, "bad reply from '%s': %s", c->node->addr,
			       kv_strerror(ret));
		conn_fail(rc, c, ret);
	}
}

/* OpenSSL writes with write(), which raises SIGPIPE when the peer has
 * gone: it is held blocked while a TLS round runs, and one raised then is
 * taken back before the old mask returns. */
static void pipe_hold(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void pipe_release(const sigset_t *old)
{
	struct timespec zero = { 0 };
	sigset_t set;
	sigset_t pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!sigismember(old, SIGPIPE) && !sigpending(&pend) && sigismember(&pend, SIGPIPE))
		sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

void rc_pump(struct kv_rc *rc, uint64_t deadline)
{
	sigset_t old;
	size_t i;

	if (rc->ssl_ctx)
		pipe_hold(&old);

	for (i = 0; i < rc->n_active; i++) {
		struct rc_conn *c = rc->active[i];

		if (c->fd >= 0 && c->head < c->n_reqs) {
			int ret = conn_encode(rc, c);

			if (ret)
				conn_fail(rc, c, ret);
		}
	}
	if (grow((void **)&rc->pfd, &rc->pfd_cap, rc->n_active, sizeof(*rc->pfd))) {
		for (i = 0; i < rc->n_active; i++)
			conn_fail(rc, rc->active[i], -ENOMEM);
	}
	for (;;) {
		bool pending = false;
		uint64_t now;
		size_t k = 0;
		int ms;

		for (i = 0; i < rc->n_active; i++) {
			struct rc_conn *c = rc->active[i];

			if (c->fd < 0 || c->head == c->n_reqs)
				continue;
			rc->pfd[k].fd = c->fd;
			rc->pfd[k].events = POLLIN;
			if (c->connecting || c->want_write ||
			    (!c->handshaking && conn_has_output(c)))
				rc->pfd[k].events |= POLLOUT;
			/* Bytes OpenSSL holds: no waiting in poll() for them. */
			if (c->ssl && !c->handshaking && SSL_has_pending(c->ssl))
				pending = true;
			rc->pfd[k].revents = 0;
			k++;
		}
		if (k == 0)
			break;
		now = rc_now_ns();
		if (now >= deadline) {
			for (i = 0; i < rc->n_active; i++) {
				struct rc_conn *c = rc->active[i];

				if (c->fd < 0 || c->head == c->n_reqs)
					continue;
				conn_fail(rc, c, -ETIMEDOUT);
			}
			break;
		}
		ms = pending ? 0 : (int)((deadline - now + 999999) / 1000000);
		if (poll(rc->pfd, k, ms) < 0 && errno != EINTR) {
			int err = -errno;

			for (i = 0; i < rc->n_active; i++)
				conn_fail(rc, rc->active[i], err);
			break;
		}
		k = 0;
		for (i = 0; i < rc->n_active; i++) {
			struct rc_conn *c = rc->active[i];

			if (c->fd < 0 || c->head == c->n_reqs)
				continue;
			if (c->ssl && !c->handshaking && SSL_has_pending(c->ssl))
				rc->pfd[k].revents |= POLLIN;
			if (rc->pfd[k].revents)
				conn_event(rc, c, rc->pfd[k].revents);
			k++;
		}
	}
	for (i = 0; i < rc->n_active; i++) {
		struct rc_conn *c = rc->active[i];

		c->n_reqs = c->head = 0;
		c->n_iov = c->iov_pos = 0;
		c->toff = c->tlen = 0;
		c->active = false;
	}
	rc->n_active = 0;
	if (rc->ssl_ctx)
		pipe_release(&old);
}
