/*
 * rcluster.c - the Redis Cluster client's routing (see rcluster.h): key
 * slots, the node table and the slot map, runs of commands in rounds, and
 * what each reply means. The wire (connections, RESP) is rcluster_wire.c.
 *
 * Invariants:
 *  - nodes are never freed before kv_rc_close(), so the map, an -ASK
 *    target and a connection may point at one for as long as they like;
 *  - during a run, a command's result is RC_PENDING (to be queued next
 *    round), RC_REDIRECT (answered -MOVED/-ASK this round; made
 *    RC_PENDING or failed when the round ends) or final (<= 0);
 *  - a map is installed only whole, after every entry of CLUSTER SLOTS
 *    was checked.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "tiers/rcluster_int.h"

#define BACKOFF_MIN_MS	100u
#define BACKOFF_MAX_MS	2000u
#define REFRESH_GAP_NS	(200ull * 1000000)	/* between refreshes after errors */

/* CRC16-CCITT (XMODEM): poly 0x1021, init 0, as the cluster spec gives. */
static uint16_t crc16(const unsigned char *p, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned kv_rc_slot(const void *key, size_t len)
{
	const unsigned char *k = key;
	const unsigned char *open = len ? memchr(k, '{', len) : NULL;

	if (open) {
		size_t from = (size_t)(open - k) + 1;
		const unsigned char *close = memchr(k + from, '}', len - from);

		/* Only a non-empty tag counts: "{}" hashes the whole key. */
		if (close && close > k + from)
			return crc16(k + from, (size_t)(close - k) - from) & (KV_RC_SLOTS - 1);
	}
	return crc16(k, len) & (KV_RC_SLOTS - 1);
}

/* "host:port" or "[v6]:port" into host and port. 0 or -EINVAL. */
static int split_addr(const char *s, size_t len, char *host, unsigned *port)
{
	const char *colon = NULL;
	size_t hlen;
	long long p = 0;

	for (size_t i = len; i > 0; i--) {
		if (s[i - 1] == ':') {
			colon = s + i - 1;
			break;
		}
	}
	if (!colon || colon == s || (size_t)(s + len - colon - 1) == 0 ||
	    (size_t)(s + len - colon - 1) > 5)
		return -EINVAL;
	for (const char *q = colon + 1; q < s + len; q++) {
		if (*q < '0' || *q > '9')
			return -EINVAL;
		p = p * 10 + (*q - '0');
	}
	if (p < 1 || p > 65535)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 3 || s[hlen - 1] != ']')
			return -EINVAL;
		s++;
		hlen -= 2;
	}
	if (hlen > RC_HOST_MAX || memchr(s, '\0', hlen))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port = (unsigned)p;
	return 0;
}

/* The node at host:port, made (and its name resolved) if new; NULL when
 * the table is full or memory is short. */
static struct rc_node *node_get(struct kv_rc *rc, const char *host, unsigned port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	struct rc_node *node;
	char addr[RC_ADDR_MAX + 1];
	char serv[8];

	snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	for (unsigned i = 0; i < rc->n_nodes; i++)
		if (!strcmp(rc->nodes[i]->addr, addr))
			return rc->nodes[i];
	if (rc->n_nodes == RC_NODES_MAX) {
		kv_log_once(KV_WARN, KV_LOG_TIER, "cluster names more than %u nodes: ignoring '%s'",
			    RC_NODES_MAX, addr);
		return NULL;
	}
	node = calloc(1, sizeof(*node));
	if (!node)
		return NULL;
	node->conns = calloc(rc->n_conns, sizeof(*node->conns));
	if (!node->conns) {
		free(node);
		return NULL;
	}
	for (unsigned i = 0; i < rc->n_conns; i++) {
		node->conns[i].fd = -1;
		node->conns[i].node = node;
	}
	strcpy(node->addr, addr);
	strcpy(node->host, host);
	snprintf(serv, sizeof(serv), "%u", port);
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, serv, &hints, &ai) == 0 && ai &&
	    ai->ai_addrlen <= sizeof(node->sa)) {
		memcpy(&node->sa, ai->ai_addr, ai->ai_addrlen);
		node->sa_len = ai->ai_addrlen;
	} else {
		kv_log(KV_WARN, KV_LOG_TIER, "cannot resolve '%s'", host);
	}
	if (ai)
		freeaddrinfo(ai);
	rc->nodes[rc->n_nodes++] = node;
	return node;
}

static bool node_down(const struct rc_node *node, uint64_t now)
{
	return node->retry_ns > now;
}

void rc_node_ok(struct rc_node *node)
{
	node->backoff_ms = 0;
	node->err = 0;
	node->retry_ns = 0;
}

void rc_node_failed(struct kv_rc *rc, struct rc_node *node, int err)
{
	if (!node->backoff_ms) {
		node->backoff_ms = BACKOFF_MIN_MS;
		kv_log(KV_WARN, KV_LOG_TIER, "cluster node '%s' failed: %s", node->addr,
		       kv_strerror(err));
	} else if (node->backoff_ms < BACKOFF_MAX_MS) {
		node->backoff_ms *= 2;
	}
	node->err = err;
	node->retry_ns = rc_now_ns() + node->backoff_ms * 1000000ull;
	/* Other connections of the node are probably as dead. */
	for (unsigned i = 0; i < rc->n_conns; i++) {
		struct rc_conn *c = &node->conns[i];

		if (c->fd >= 0 && c->head == c->n_reqs)
			rc_conn_close(c);
	}
	rc->stale = true;
}

/* One CLUSTER SLOTS entry's node: [host, port, ...]. */
static struct rc_node *slots_node(struct kv_rc *rc, struct rc_conn *c, const redisReply *e)
{
	const char *host;

	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[1]->type != REDIS_REPLY_INTEGER ||
	    e->element[1]->integer < 1 || e->element[1]->integer > 65535 ||
	    e->element[0]->len > RC_HOST_MAX || memchr(e->element[0]->str, '\0',
							e->element[0]->len))
		return NULL;
	/* An empty or "?" host means: where you asked. */
	host = e->element[0]->str;
	if (!host[0] || !strcmp(host, "?"))
		host = c->node->host;
	return node_get(rc, host, (unsigned)e->element[1]->integer);
}

static int slots_load(struct kv_rc *rc, struct rc_conn *c, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		kv_log(KV_WARN, KV_LOG_TIER, "'%s' answers CLUSTER SLOTS with '%.100s'",
		       c->node->addr, r->str);
		return -EIO;
	}
	if (r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	memset(rc->next, 0, sizeof(rc->next));
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		struct rc_node *master;
		long long from;
		long long to;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			return -EPROTO;
		from = e->element[0]->integer;
		to = e->element[1]->integer;
		if (from < 0 || to < from || to >= KV_RC_SLOTS)
			return -EPROTO;
		master = slots_node(rc, c, e->element[2]);
		if (!master)
			return -EPROTO;
		for (long long s = from; s <= to; s++)
			rc->next[s] = master;
		/* Replicas: known, so a refresh can ask them when masters die. */
		for (size_t k = 3; k < e->elements; k++)
			slots_node(rc, c, e->element[k]);
	}
	memcpy(rc->slots, rc->next, sizeof(rc->slots));
	for (unsigned i = 0; i < rc->n_nodes; i++)
		rc->nodes[i]->slots = 0;
	for (unsigned s = 0; s < KV_RC_SLOTS; s++)
		if (rc->slots[s])
			rc->slots[s]->slots++;
	return 0;
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the slot's new node. */
static int redirect(struct kv_rc *rc, const struct rc_req *rq, const redisReply *r, bool ask)
{
	struct kv_rc_cmd *cmd = &rc->cmds[rq->cmd];
	struct rc_wait *w = &rc->wait[rq->cmd];
	const char *p = r->str + (ask ? 4 : 6);
	const char *sp = memchr(p, ' ', r->len - (size_t)(p - r->str));
	char host[RC_HOST_MAX + 1];
	struct rc_node *node;
	unsigned port;
	unsigned slot = 0;

	if (!sp || sp == p || sp - p > 5)
		return -EPROTO;
	for (const char *q = p; q < sp; q++) {
		if (*q < '0' || *q > '9')
			return -EPROTO;
		slot = slot * 10 + (unsigned)(*q - '0');
	}
	if (slot != kv_rc_slot(cmd->key, cmd->key_len))
		return -EPROTO;
	sp++;
	if (split_addr(sp, r->len - (size_t)(sp - r->str), host, &port))
		return -EPROTO;
	node = node_get(rc, host, port);
	if (!node) {
		cmd->result = -EIO;
		return 0;
	}
	if (++w->redirects > KV_RC_MAX_REDIRECTS) {
		kv_log_once(KV_WARN, KV_LOG_TIER, "more than %u redirects for one key",
			    KV_RC_MAX_REDIRECTS);
		cmd->result = -EIO;
		return 0;
	}
	if (ask) {
		w->ask = node;
		rc->st.asks++;
	} else {
		w->ask = NULL;
		rc->slots[slot] = node;
		rc->stale = true;
		rc->moved = true;
		rc->st.moved++;
	}
	cmd->result = RC_REDIRECT;
	return 0;
}

static int cmd_reply(struct kv_rc *rc, const struct rc_req *rq, const redisReply *r)
{
	struct kv_rc_cmd *cmd = &rc->cmds[rq->cmd];

	switch (r->type) {
	case REDIS_REPLY_ERROR:
		if (r->len > 6 && !strncmp(r->str, "MOVED ", 6))
			return redirect(rc, rq, r, false);
		if (r->len > 4 && !strncmp(r->str, "ASK ", 4))
			return redirect(rc, rq, r, true);
		kv_log(KV_DEBUG, KV_LOG_TIER, "error reply '%.100s'", r->str);
		cmd->result = -EIO;
		return 0;
	case REDIS_REPLY_NIL:
		if (cmd->op != KV_RC_GET)
			break;
		cmd->result = -ENOENT;
		return 0;
	case REDIS_REPLY_STATUS:
		if (cmd->op != KV_RC_SET || strcmp(r->str, "OK"))
			break;
		cmd->result = 0;
		return 0;
	case REDIS_REPLY_INTEGER:
		if (cmd->op != KV_RC_EXISTS && cmd->op != KV_RC_DEL)
			break;
		cmd->result = r->integer > 0 ? 0 : -ENOENT;
		return 0;
	}
	cmd->result = -EPROTO;
	return -EPROTO;
}

int rc_reply(struct kv_rc *rc, struct rc_conn *c, const struct rc_req *rq,
	     const redisReply *r)
{
	int ret = 0;

	switch (rq->kind) {
	case RQ_AUTH:
		if (r->type == REDIS_REPLY_STATUS)
			break;
		kv_log_once(KV_ERR, KV_LOG_TIER, "cluster node '%s' refuses AUTH: %.100s",
			    c->node->addr, r->type == REDIS_REPLY_ERROR ? r->str : "");
		return -EACCES;
	case RQ_ASKING:
		break;		/* an error shows in the command's own reply */
	case RQ_SLOTS:
		rc->slots_res = slots_load(rc, c, r);
		ret = rc->slots_res == -EPROTO ? -EPROTO : 0;
		break;
	case RQ_CMD:
		ret = cmd_reply(rc, rq, r);
		break;
	}
	if (!ret)
		rc_node_ok(c->node);
	return ret;
}

void rc_req_fail(struct kv_rc *rc, const struct rc_req *rq, int err)
{
	if (rq->kind == RQ_SLOTS)
		rc->slots_res = err;
	else if (rq->kind == RQ_CMD && rc->cmds[rq->cmd].result > 0)
		rc->cmds[rq->cmd].result = err;
}

/* Load the map from the first node that answers. 0 or the last error. */
static int map_refresh(struct kv_rc *rc, uint64_t deadline)
{
	int ret = -EHOSTUNREACH;

	for (unsigned k = 0; k < rc->n_nodes && rc_now_ns() < deadline; k++) {
		unsigned i = (rc->refresh_rr + k) % rc->n_nodes;
		struct rc_node *node = rc->nodes[i];

		if (node_down(node, rc_now_ns()))
			continue;
		ret = rc_conn_push(rc, &node->conns[0], RQ_SLOTS, 0);
		if (ret)
			continue;
		rc->slots_res = -ETIMEDOUT;
		rc_pump(rc, deadline);
		ret = rc->slots_res;
		if (!ret) {
			rc->refresh_rr = i;
			rc->stale = false;
			rc->st.refreshes++;
			return 0;
		}
	}
	rc->st.refresh_failures++;
	return ret;
}

static void rc_free(struct kv_rc *rc)
{
	for (unsigned i = 0; i < rc->n_nodes; i++) {
		struct rc_node *node = rc->nodes[i];

		for (unsigned k = 0; k < rc->n_conns; k++) {
			rc_conn_close(&node->conns[k]);
			free(node->conns[k].reqs);
			free(node->conns[k].iov);
			free(node->conns[k].hdr);
			free(node->conns[k].rbuf);
			free(node->conns[k].tbuf);
		}
		free(node->conns);
		free(node);
	}
	if (rc->reader)
		redisReaderFree(rc->reader);
	SSL_CTX_free(rc->ssl_ctx);
	free(rc->active);
	free(rc->pfd);
	free(rc->wait);
	free(rc->seeds);
	free(rc->user);
	if (rc->password) {
		explicit_bzero(rc->password, strlen(rc->password));
		free(rc->password);
	}
	free(rc);
}

static char *dup_opt(const char *s, bool *nomem)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*nomem = true;
	return d;
}

int kv_rc_open(struct kv_rc **out, const struct kv_rc_conf *conf)
{
	struct kv_rc_cmd none = { 0 };
	bool nomem = false;
	struct kv_rc *rc;
	const char *s;
	int ret;

	if (!out || !conf || !conf->seeds || !conf->timeout_ms || !conf->conns ||
	    conf->conns > KV_RC_CONNS_MAX || (conf->user && !conf->password))
		return -EINVAL;
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->timeout_ms = conf->timeout_ms;
	rc->n_conns = conf->conns;
	rc->seeds = dup_opt(conf->seeds, &nomem);
	rc->user = dup_opt(conf->user, &nomem);
	rc->password = dup_opt(conf->password, &nomem);
	rc->reader = redisReaderCreate();
	if (nomem || !rc->reader) {
		ret = -ENOMEM;
		goto out_free;
	}
	if (conf->tls) {
		ret = rc_tls_ctx(&rc->ssl_ctx, conf);
		if (ret)
			goto out_free;
	}
	/* Commands are looked at by index even in a refresh. */
	rc->cmds = &none;
	ret = -EINVAL;
	for (s = rc->seeds; *s;) {
		size_t len = strcspn(s, ",");
		char host[RC_HOST_MAX + 1];
		unsigned port;

		if (split_addr(s, len, host, &port)) {
			kv_log(KV_ERR, KV_LOG_TIER, "bad cluster seed '%.*s'", (int)len, s);
			ret = -EINVAL;
			goto out_free;
		}
		if (!node_get(rc, host, port)) {
			ret = -ENOMEM;
			goto out_free;
		}
		s += len + (s[len] == ',');
	}
	if (!rc->n_nodes)
		goto out_free;
	ret = map_refresh(rc, rc_now_ns() + rc->timeout_ms * 1000000ull);
	if (ret) {
		kv_log(KV_ERR, KV_LOG_TIER, "cannot load the slot map from '%s': %s", rc->seeds,
		       kv_strerror(ret));
		goto out_free;
	}
	rc->cmds = NULL;
	*out = rc;
	return 0;

out_free:
	rc_free(rc);
	return ret;
}

int kv_rc_tls_check(const struct kv_rc_conf *conf)
{
	SSL_CTX *ctx = NULL;
	int ret;

	if (!conf->tls)
		return 0;
	ret = rc_tls_ctx(&ctx, conf);
	SSL_CTX_free(ctx);
	return ret;
}

void kv_rc_close(struct kv_rc *rc)
{
	if (rc)
		rc_free(rc);
}

static int check_cmds(const struct kv_rc_cmd *cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct kv_rc_cmd *c = &cmds[i];
		uint64_t vlen = 0;

		if (c->op > KV_RC_GETRANGE || c->key_len > KV_RC_KEY_MAX ||
		    (!c->key && c->key_len))
			return -EINVAL;
		if ((c->op == KV_RC_GET || c->op == KV_RC_GETRANGE) && !c->buf && c->cap)
			return -EINVAL;
		if (c->op == KV_RC_GETRANGE && (c->start > c->end || c->end > INT64_MAX))
			return -EINVAL;
		if (c->op != KV_RC_SET)
			continue;
		if (c->iovcnt && !c->iov)
			return -EINVAL;
		for (unsigned k = 0; k < c->iovcnt; k++) {
			if (!c->iov[k].iov_base && c->iov[k].iov_len)
				return -EINVAL;
			vlen += c->iov[k].iov_len;
			if (vlen > KV_RC_VALUE_MAX)
				return -EINVAL;
		}
	}
	return 0;
}

/* Queue command i on its node, or give it its result now. */
static void route(struct kv_rc *rc, size_t i, uint64_t now)
{
	struct kv_rc_cmd *cmd = &rc->cmds[i];
	struct rc_wait *w = &rc->wait[i];
	struct rc_node *node = w->ask;
	struct rc_conn *c;
	int ret;

	if (!node)
		node = rc->slots[kv_rc_slot(cmd->key, cmd->key_len)];
	if (!node) {
		cmd->result = -EHOSTUNREACH;
		rc->stale = true;
		return;
	}
	if (node_down(node, now)) {
		cmd->result = node->err;
		rc->stale = true;
		return;
	}
	c = &node->conns[node->rr++ % rc->n_conns];
	if (w->ask) {
		ret = rc_conn_push(rc, c, RQ_ASKING, 0);
		if (ret) {
			cmd->result = ret;
			return;
		}
		w->ask = NULL;
	}
	ret = rc_conn_push(rc, c, RQ_CMD, (uint32_t)i);
	if (ret)
		cmd->result = ret;
}

int kv_rc_run(struct kv_rc *rc, struct kv_rc_cmd *cmds, size_t n)
{
	uint64_t deadline;
	uint64_t now;
	bool again;

	if (!rc || (!cmds && n) || n > UINT32_MAX || check_cmds(cmds, n))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (n > rc->wait_cap) {
		struct rc_wait *w = realloc(rc->wait, n * sizeof(*w));

		if (!w)
			return -ENOMEM;
		rc->wait = w;
		rc->wait_cap = n;
	}
	now = rc_now_ns();
	deadline = now + rc->timeout_ms * 1000000ull;
	memset(rc->wait, 0, n * sizeof(*rc->wait));
	for (size_t i = 0; i < n; i++) {
		cmds[i].result = RC_PENDING;
		cmds[i].len = 0;
	}
	rc->cmds = cmds;
	rc->n_cmds = n;
	rc->moved = false;
	do {
		for (size_t i = 0; i < n; i++)
			if (cmds[i].result == RC_PENDING)
				route(rc, i, now);
		rc_pump(rc, deadline);
		now = rc_now_ns();
		again = false;
		for (size_t i = 0; i < n; i++) {
			if (cmds[i].result != RC_REDIRECT)
				continue;
			if (now >= deadline) {
				cmds[i].result = -ETIMEDOUT;
				continue;
			}
			cmds[i].result = RC_PENDING;
			again = true;
		}
	} while (again);
	for (size_t i = 0; i < n; i++) {
		if (cmds[i].result > 0)		/* cannot happen; never report it */
			cmds[i].result = -EIO;
		if (cmds[i].result == -ETIMEDOUT)
			rc->st.timeouts++;
	}
	rc->st.commands += n;
	if (rc->stale && now < deadline && (rc->moved || now >= rc->next_refresh_ns)) {
		rc->next_refresh_ns = now + REFRESH_GAP_NS;
		map_refresh(rc, deadline);
	}
	rc->cmds = NULL;
	rc->n_cmds = 0;
	return 0;
}

void kv_rc_stats(const struct kv_rc *rc, struct kv_rc_stats *out)
{
	uint64_t now = rc_now_ns();

	*out = rc->st;
	out->nodes = rc->n_nodes;
	out->masters = 0;
	out->masters_down = 0;
	for (unsigned i = 0; i < rc->n_nodes; i++) {
		if (!rc->nodes[i]->slots)
			continue;
		out->masters++;
		if (node_down(rc->nodes[i], now))
			out->masters_down++;
	}
}

void kv_rc_nodes(const struct kv_rc *rc,
		 void (*fn)(void *arg, const struct kv_rc_node_info *ni), void *arg)
{
	uint64_t now = rc_now_ns();

	for (unsigned i = 0; i < rc->n_nodes; i++) {
		const struct rc_node *node = rc->nodes[i];
		struct kv_rc_node_info ni = {
			.addr = node->addr,
			.slots = node->slots,
			.state = node_down(node, now) ? node->err : 0,
		};

		for (unsigned k = 0; k < rc->n_conns; k++)
			ni.conns_open += node->conns[k].fd >= 0;
		fn(arg, &ni);
	}
}

const char *kv_rc_slot_owner(const struct kv_rc *rc, unsigned slot)
{
	if (slot >= KV_RC_SLOTS || !rc->slots[slot])
		return NULL;
	return rc->slots[slot]->addr;
}
