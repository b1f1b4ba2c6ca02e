/*
 * rcluster_fx.h - a throwaway Redis Cluster for a test program: 3 masters
 * and 3 replicas on loopback, started by tests/lib/rcluster.sh and stopped
 * when the program ends (also when a case fails or a sanitizer aborts it).
 *
 * One cluster per program. Needs redis-server and redis-cli (scripts/deps.sh
 * test); kvt_cluster_start() says so and fails without them. A TLS cluster
 * (kvt_cluster_start_tls()) also needs the openssl CLI, for its
 * certificates (tests/lib/tls_certs.sh).
 */
#ifndef KVT_RCLUSTER_FX_H
#define KVT_RCLUSTER_FX_H

struct kvt_cluster {
	char dir[256];			/* the nodes' files */
	char seeds[512];		/* "127.0.0.1:P1,...,127.0.0.1:P6" */
	unsigned ports[6];		/* masters first, as created */
	char tls[300];			/* TLS: the certificates' directory
					 * (tls_certs.sh's files); "": plain */
};

/* Start it. 0, or -1 with a message on stderr. */
int kvt_cluster_start(struct kvt_cluster *c);

/* Start it with TLS only (rcluster.sh's RC_TLS_DIR), certificates made
 * in c->tls (inside c->dir, gone with the cluster). 0, or -1. */
int kvt_cluster_start_tls(struct kvt_cluster *c);

/* The pid of the node on port (from the script's DIR/PORT.pid). */
unsigned kvt_cluster_pid(const struct kvt_cluster *c, unsigned port);

/* Stop it now (it stops at exit anyway). Accepts one never started. */
void kvt_cluster_stop(void);

#endif
