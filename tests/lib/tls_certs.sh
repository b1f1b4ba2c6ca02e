#!/bin/sh
# tls_certs.sh - throwaway TLS certificates for the tests, made with the
# openssl CLI (scripts/deps.sh test) into DIR:
#   ca.crt, ca.key             a CA, valid for a day
#   server.crt, server.key     signed by it, subjectAltName IP:127.0.0.1,
#                              DNS:localhost (the nodes'; also their client
#                              certificate on the cluster bus)
#   client.crt, client.key     signed by it (a client's, for tls-auth-clients)
#   other-ca.crt, other-ca.key another CA, which signed none of them
#
# Usage: tests/lib/tls_certs.sh DIR   (DIR is made if missing)
# Exits 1 with openssl's messages on failure.
set -eu

dir=${1:?usage: tls_certs.sh DIR}
command -v openssl >/dev/null 2>&1 ||
	{ echo "tls_certs.sh: openssl not found: run scripts/deps.sh test" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
log=openssl.log
: >"$log"

ca()
{
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$1" \
		-keyout "$1.key" -out "$1.crt" >>"$log" 2>&1
}

# cert NAME CN [EXTENSIONS]: a key and a certificate signed by ca.
cert()
{
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" \
		-keyout "$1.key" -out "$1.csr" >>"$log" 2>&1
	printf '%s\n' "${3:-basicConstraints=CA:FALSE}" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
		-days 1 -extfile "$1.ext" -out "$1.crt" >>"$log" 2>&1
	rm -f "$1.csr" "$1.ext"
}

if ! { ca ca && ca other-ca &&
	cert server kvstore-test-node "subjectAltName=IP:127.0.0.1,DNS:localhost" &&
	cert client kvstore-test-client; }; then
	cat "$log" >&2
	exit 1
fi
chmod 600 ./*.key
