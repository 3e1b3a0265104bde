#!/usr/bin/env bash
# Starts the local test stack (installing it on first use) and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/stack/up.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
