#!/usr/bin/env bash
# Reloader benchmark against the local stack: topic replay throughput against a bare rdkafka producer
# and OSO kafka-backup's restore measured in the same run, and the bytes-read fraction of a key reingestion.
# Usage: tests/bench/reloader.sh [MESSAGES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/stack/up.sh >/dev/null
cargo build -q --release -p ingestion-reloader -p bss-testkit --bins
# The closest peer, OSO kafka-backup's engine, built once beside the project when its source is there.
PEER=../shared/peers/oso-runner
if [ -f "$PEER/Cargo.toml" ] && [ ! -x target/peers/release/oso-runner ]; then
  cargo build -q --release --manifest-path "$PEER/Cargo.toml" --target-dir target/peers
fi
target/release/bench-reloader target/release/ingestion-reloader "${1:-1000000}"
