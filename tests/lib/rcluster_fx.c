/*
 * rcluster_fx.c - a throwaway Redis Cluster for a test program
 * (rcluster_fx.h).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/rcluster_fx.h"
#include "tests/lib/tmpdir.h"

#define SCRIPT	"tests/lib/rcluster.sh"

static char running[256];	/* the started cluster's dir, "" when none */

void kvt_cluster_stop(void)
{
	char cmd[512];

	if (!running[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s stop '%s'", SCRIPT, running);
	running[0] = '\0';
	if (system(cmd) != 0)
		fprintf(stderr, "rcluster_fx: '%s' failed\n", cmd);
}

static void on_signal(int sig)
{
	kvt_cluster_stop();
	signal(sig, SIG_DFL);
	raise(sig);
}

unsigned kvt_cluster_pid(const struct kvt_cluster *c, unsigned port)
{
	char path[320];
	unsigned pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%u.pid", c->dir, port);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%u", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

static int cluster_start(struct kvt_cluster *c, bool tls)
{
	char cmd[1024];
	FILE *f;

	if (system("command -v redis-server >/dev/null && command -v redis-cli >/dev/null")) {
		fprintf(stderr, "rcluster_fx: redis-server or redis-cli missing: "
			"run scripts/deps.sh test (as root) first\n");
		return -1;
	}
	if (kvt_tmpdir(c->dir, sizeof(c->dir), NULL, "kvrc.") < 0)
		return -1;
	c->tls[0] = '\0';
	if (tls) {
		snprintf(c->tls, sizeof(c->tls), "%s/tls", c->dir);
		snprintf(cmd, sizeof(cmd), "tests/lib/tls_certs.sh '%s'", c->tls);
		if (system(cmd)) {
			fprintf(stderr, "rcluster_fx: '%s' failed\n", cmd);
			return -1;
		}
	}
	/* With our pid, the script stops the cluster when we are gone, even
	 * if a sanitizer ends us with _exit(). */
	if (tls)
		snprintf(cmd, sizeof(cmd), "RC_TLS_DIR='%s' %s start '%s' %d", c->tls, SCRIPT,
			 c->dir, (int)getpid());
	else
		snprintf(cmd, sizeof(cmd), "%s start '%s' %d", SCRIPT, c->dir, (int)getpid());
	f = popen(cmd, "r");
	if (!f || !fgets(c->seeds, sizeof(c->seeds), f)) {
		if (f)
			pclose(f);
		fprintf(stderr, "rcluster_fx: '%s' gave no seeds\n", cmd);
		return -1;
	}
	snprintf(running, sizeof(running), "%s", c->dir);
	atexit(kvt_cluster_stop);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);
	if (pclose(f) != 0)
		return -1;
	c->seeds[strcspn(c->seeds, "\n")] = '\0';
	snprintf(cmd, sizeof(cmd), "%s/ports", c->dir);
	f = fopen(cmd, "r");
	if (!f)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (fscanf(f, "%u", &c->ports[i]) != 1) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

int kvt_cluster_start(struct kvt_cluster *c)
{
	return cluster_start(c, false);
}

int kvt_cluster_start_tls(struct kvt_cluster *c)
{
	return cluster_start(c, true);
}
