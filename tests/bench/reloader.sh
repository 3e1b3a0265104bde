#!/usr/bin/env bash
# Reloader benchmark against the local stack: topic replay throughput against a bare rdkafka producer
# measured in the same run, and the bytes-read fraction of a key reingestion.
# Usage: tests/bench/reloader.sh [MESSAGES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/stack/up.sh >/dev/null
cargo build -q --release -p ingestion-reloader -p bss-testkit --bins
target/release/bench-reloader target/release/ingestion-reloader "${1:-1000000}"
