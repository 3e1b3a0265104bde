#!/usr/bin/env bash
# Starts the local test stack (installing it on first use) and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/stack/up.sh
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi
# Deployment checks: the Helm chart rendered by a real Helm binary and validated against Kubernetes'
# schemas and checkov, docker-compose.yml against the compose specification and the configuration
# reference (with the binaries built above for --check-config), and the shipped images: the stripped
# release binaries, built here, run inside an image built offline.
cargo build --release --locked -p ingestion-storer -p ingestion-reloader -p bss-cli || status=$?
target/stack/venv/bin/python -m unittest discover -s tests/deploy -v || status=$?
exit $status
