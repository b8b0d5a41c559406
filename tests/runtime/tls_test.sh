#!/usr/bin/env bash
# TLS and the bearer token end to end: a self-signed certificate made here, `serve` with
# tls_cert/tls_key/token_file, a node that trusts the certificate and has the token succeeds;
# a node without TLS, or without the token, fails with the specific error.
# Usage: tls_test.sh path/to/splitinfer SOURCE_DIR. Exit 77 (skipped) without openssl.
set -u
BIN=$1
SRC=$2
command -v openssl >/dev/null || { echo "skipped: needs openssl (scripts/install-deps.sh)"; exit 77; }
. "$SRC/tests/runtime/serve_lib.sh"
TMP=$(mktemp -d)
SERVER=""
SERVER2=""
trap '[ -n "$SERVER" ] && kill -TERM $SERVER 2>/dev/null; [ -n "$SERVER2" ] && kill -TERM $SERVER2 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
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
wait_port "$TMP/port" $SERVER server || { cat "$TMP/server.log"; exit 1; }
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

# A token over plain text is refused unless the operator says the network is trusted.
printf 'pipelines: [%s]\nlisten: 127.0.0.1:0\ntoken_file: token\n' "$SRC/models/fmnist_best.yaml" > "$TMP/plain.yaml"
expect "serve refuses a token without TLS" 1 "insecure_token: true (serve --insecure-token)" "$BIN" serve \
  --config "$TMP/plain.yaml"

# Mutual TLS: the server requires a client certificate signed by tls_client_ca (here the client's
# own self-signed one); node and load present it, a node without one cannot connect.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=node -keyout "$TMP/client.key" -out "$TMP/client.pem" \
  2>"$TMP/openssl.log" || { cat "$TMP/openssl.log"; exit 1; }
cat > "$TMP/mtls.yaml" <<YAML
pipelines: [$SRC/models/fmnist_best.yaml]
listen: 127.0.0.1:0
threads: 1
tls_cert: server.pem
tls_key: server.key
tls_client_ca: client.pem
YAML
"$BIN" serve --config "$TMP/mtls.yaml" --port-file "$TMP/port2" > "$TMP/server2.log" 2>&1 &
SERVER2=$!
wait_port "$TMP/port2" $SERVER2 "mTLS server" || { cat "$TMP/server2.log"; exit 1; }
ADDR2="127.0.0.1:$(cat "$TMP/port2")"
MTLS=(--tls-ca "$TMP/server.pem" --tls-cert "$TMP/client.pem" --tls-key "$TMP/client.key")
NODE2=("$BIN" node --server "$ADDR2" --pipeline "$SRC/models/fmnist_best.yaml" --limit 10 --quiet --retries 0 --deadline 5)
expect "mutual TLS with the client certificate" 0 '"images":10' "${NODE2[@]}" "${MTLS[@]}" --json
expect "mutual TLS without a client certificate" 1 "UNAVAILABLE" "${NODE2[@]}" --tls-ca "$TMP/server.pem"
expect "load with the client certificate" 0 '"errors":{}' "$BIN" load --server "$ADDR2" \
  --pipeline "$SRC/models/fmnist_best.yaml" --concurrency 1 --duration 0.5 "${MTLS[@]}" --json
expect "client certificate without its key" 1 "give the client certificate and its key together" "${NODE2[@]}" \
  --tls-ca "$TMP/server.pem" --tls-cert "$TMP/client.pem"
if /usr/bin/python3 -c "import grpc, google.protobuf" 2>/dev/null && command -v grpc_python_plugin >/dev/null; then
  expect "python client with the client certificate" 0 "ModelReady" /usr/bin/python3 "$SRC/tools/python/oip_client.py" \
    --server "$ADDR2" "${MTLS[@]}" --images 32
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
