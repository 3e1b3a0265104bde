#!/usr/bin/env bash
# Parquet organizer benchmark on a local-folder bucket: conversion against a plain read of the archive
# measured in the same run, the copy's size, and DuckDB's key-history query on both copies.
# Usage: tests/bench/analytics.sh [RECORDS] [KEYS] [STEP_MS]   (defaults 1000000 100000 1000; STEP_MS 1
# puts every record in one hour, so files reach their size limit); needs GNU time and the
# test stack's venv (DuckDB), installed by tests/stack/up.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p bss-cli -p bss-testkit --bins
target/release/bench-analytics target/release/bss target/stack/venv/bin/python "${1:-1000000}" "${2:-100000}" "${3:-1000}"
