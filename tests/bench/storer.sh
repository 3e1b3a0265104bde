#!/usr/bin/env bash
# Storer throughput benchmark against the local stack: prints messages/s, MB/s, the ratio to a bare
# rdkafka consumer and OSO kafka-backup measured in the same run, CPU seconds per million messages and
# peak RSS.
# Usage: tests/bench/storer.sh [MESSAGES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/stack/up.sh >/dev/null
cargo build -q --release -p ingestion-storer -p bss-testkit --bins
# The closest peer, OSO kafka-backup's engine, built once beside the project when its source is there.
PEER=../shared/peers/oso-runner
if [ -f "$PEER/Cargo.toml" ] && [ ! -x target/peers/release/oso-runner ]; then
  cargo build -q --release --manifest-path "$PEER/Cargo.toml" --target-dir target/peers
fi
target/release/bench-storer target/release/ingestion-storer "${1:-1000000}"
