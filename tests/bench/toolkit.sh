#!/usr/bin/env bash
# bss benchmark on a local-folder bucket: dump against a plain read of the archive measured in the same
# run, peak memory with a small and a large budget, and the organizer's effect on later dumps.
# Usage: tests/bench/toolkit.sh [RECORDS] [KEYS]   (defaults 1000000 100000); needs GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p bss-cli -p bss-testkit --bins
target/release/bench-toolkit target/release/bss "${1:-1000000}" "${2:-100000}"
