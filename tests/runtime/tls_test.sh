#!/usr/bin/env bash
# TLS and the bearer token end to end: a self-signed certificate made here, `serve` with
# tls_cert/tls_key/token_file, a node that trusts the certificate and has the token succeeds;
# a node without TLS, or without the token, fails with the specific error.
# Usage: tls_test.sh path/to/splitinfer SOURCE_DIR. Exit 77 (skipped) without openssl.
set -u
BIN=$1
SRC=$2
command -v openssl >/dev/null || { echo "skipped: needs openssl (scripts/install-deps.sh)"; exit 77; }
TMP=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill -TERM $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$TMP/server.key" -out "$TMP/server.pem" 2>"$TMP/openssl.log" || { cat "$TMP/openssl.log"; exit 1; }
echo "s3cret-token" > "$TMP/token"
cat > "$TMP/server.yaml" <<YAML
pipelines: [$SRC/models/fmnist_best.yaml]
listen: 127.0.0.1:0
threads: 1
tls_cert: server.pem
tls_key: server.key
token_file: token
YAML
"$BIN" serve --config "$TMP/server.yaml" --port-file "$TMP/port" > "$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { echo "server did not start"; cat "$TMP/server.log"; exit 1; }
ADDR="127.0.0.1:$(cat "$TMP/port")"
pass=0 fail=0
expect() {  # name, expected rc (0 or 1), expected substring of stdout+stderr, command...
  local name=$1 want_rc=$2 want=$3; shift 3
  "$@" > "$TMP/out" 2>&1
  local rc=$?
  if { [ "$want_rc" -eq 0 ] && [ $rc -eq 0 ]; } || { [ "$want_rc" -ne 0 ] && [ $rc -ne 0 ] && [ $rc -lt 128 ]; } && grep -qF -- "$want" "$TMP/out"; then
    pass=$((pass + 1)); echo "ok   $name"
  else
    fail=$((fail + 1)); echo "FAIL $name (rc=$rc, want '$want'):"; cat "$TMP/out"
  fi
}
NODE=("$BIN" node --server "$ADDR" --pipeline "$SRC/models/fmnist_best.yaml" --limit 10 --quiet --retries 0 --deadline 5)
expect "TLS + token" 0 '"images":10' "${NODE[@]}" --tls-ca "$TMP/server.pem" --token-file "$TMP/token" --json
expect "TLS, no token" 1 "UNAUTHENTICATED" "${NODE[@]}" --tls-ca "$TMP/server.pem"
expect "plain text to a TLS server" 1 "UNAVAILABLE" "${NODE[@]}" --token-file "$TMP/token"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
