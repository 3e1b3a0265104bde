#!/usr/bin/env bash
# Catalog benchmark against the local stack's S3 protocol server (SeaweedFS by default; moto keeps
# every object in memory): key lookups, one-hour windows and catalog size over an archive of many
# small objects. Usage: tests/bench/catalog.sh [OBJECTS]   (default 100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/stack/up.sh >/dev/null
cargo build -q --release -p bss-testkit --bin bench-catalog
BSS_TEST_S3_ENDPOINT="${BSS_TEST_S3_ENDPOINT:-http://127.0.0.1:39333}" \
  target/release/bench-catalog "${1:-100000}"
