#!/usr/bin/env bash
# Runs the ingestion storer locally on embedded defaults: starts a local Kafka-protocol broker (tansu),
# produces sample messages, archives them into a local folder (target/demo-bucket) and shows the files.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/stack/up.sh
cargo build -q -p ingestion-storer -p bss-testkit --bins
target/debug/create-topic demo.bss-events 1
target/debug/create-topic demo.orders.post-ingestion 3
target/debug/produce-samples demo.orders.ingestion 1000 3

rm -rf target/demo-bucket
target/debug/ingestion-storer --config deploy/local/application.yaml > target/demo-storer.log 2>&1 &
storer=$!
trap 'kill $storer 2>/dev/null || true' EXIT
echo "storer running (pid $storer, log target/demo-storer.log, health http://127.0.0.1:3000/-/health/ready)"
for _ in $(seq 1 60); do
  [ "$(cat target/demo-bucket/orders/*.txt 2>/dev/null | wc -l)" -ge 1000 ] && break
  sleep 0.5
done
kill -TERM $storer; wait $storer || true
trap - EXIT

echo; echo "files written to target/demo-bucket:"
find target/demo-bucket -type f | sort
echo; echo "first line of the first file:"
head -n 1 "$(find target/demo-bucket -type f | sort | head -n 1)"
echo; echo "records archived: $(cat target/demo-bucket/orders/*.txt | wc -l)"
