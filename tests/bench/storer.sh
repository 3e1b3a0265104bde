#!/usr/bin/env bash
# Storer throughput benchmark against the local stack: prints messages/s, MB/s, the ratio to a bare
# rdkafka consumer measured in the same run, CPU seconds per million messages and peak RSS.
# Usage: tests/bench/storer.sh [MESSAGES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/stack/up.sh >/dev/null
cargo build -q --release -p ingestion-storer -p bss-testkit --bins
target/release/bench-storer target/release/ingestion-storer "${1:-1000000}"
