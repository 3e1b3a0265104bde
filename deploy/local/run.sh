#!/usr/bin/env bash
# The whole job, locally, on embedded defaults: a local Kafka-protocol broker (tansu) and a local
# folder as the bucket (target/demo-bucket).
#   1. produce 1,000 sample messages to demo.orders.ingestion,
#   2. archive them with the storer (Mia-Platform's readable .txt files) and show the files,
#   3. start the reloader on the same bucket and replay a time window, then one key, into
#      reingestion topics, showing what arrived.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUCKET=target/demo-bucket
STORER_PORT=3000
RELOADER_PORT=3001
step() { printf '\n== %s\n' "$*"; }

step "1/6 starting a local Kafka-protocol broker (tansu, 127.0.0.1:39092)"
BSS_STACK_KAFKA_ONLY=1 bash tests/stack/up.sh

step "2/6 building the storer, the reloader and the demo tools"
cargo build -q -p ingestion-storer -p ingestion-reloader -p bss-testkit --bins

step "3/6 producing 1,000 sample messages (keys {\"id\":n}, one per millisecond)"
# Topics and consumer group of this run only, so a re-run (the broker keeps its topics) starts clean.
run=$(date +%s)
INGESTION=demo.orders.ingestion.$run
sed -e "s/demo\.orders\.ingestion/$INGESTION/" -e "s/demo-ingestion-storer/demo-ingestion-storer-$run/" \
  deploy/local/application.yaml > target/demo-application.yaml
WINDOW_TARGET=demo.orders.reingestion.window-$run
KEY_TARGET=demo.orders.reingestion.key-$run
target/debug/create-topic demo.bss-events 1
target/debug/create-topic demo.orders.post-ingestion 3
target/debug/create-topic "$WINDOW_TARGET" 3
target/debug/create-topic "$KEY_TARGET" 3
base=$(( $(date +%s%3N) ))
target/debug/produce-samples "$INGESTION" 1000 3 "$base"

step "4/6 archiving them with the storer into $BUCKET"
rm -rf "$BUCKET"
target/debug/ingestion-storer --config target/demo-application.yaml > target/demo-storer.log 2>&1 &
storer=$!
reloader=
trap 'kill $storer $reloader 2>/dev/null || true' EXIT
archived=0
for _ in $(seq 1 120); do
  archived=$({ cat "$BUCKET"/orders/*.txt 2>/dev/null || true; } | wc -l)
  printf '\r   %4d of 1000 records archived (the storer joins its group, then writes every 2 s)' "$archived"
  [ "$archived" -ge 1000 ] && break
  sleep 0.5
done
echo
kill -TERM $storer; wait $storer || true
[ "$archived" -ge 1000 ] || { echo "the storer did not archive every record; see target/demo-storer.log" >&2; exit 1; }
echo "   data files (one per partition and flush; sidecar indexes and the catalog live under .bss-*):"
find "$BUCKET" -type f -not -path '*/.bss-*' | sort | sed 's/^/     /'
first=$(find "$BUCKET" -type f -not -path '*/.bss-*' -name '*.txt' | sort | head -n 1)
echo "   the first 3 lines of $(basename "$first") (Mia-Platform's fields first; key and payload as JSON strings):"
head -n 3 "$first" | cut -c1-220 | sed 's/^/     /'

step "5/6 starting the reloader on the same bucket (http://127.0.0.1:$RELOADER_PORT, no authentication: local use only)"
KAFKA_BROKERS=127.0.0.1:39092 BUCKET_TYPE=local BUCKET_NAME=$BUCKET RELOADER_AUTH=none \
  HTTP_PORT=$RELOADER_PORT target/debug/ingestion-reloader > target/demo-reloader.log 2>&1 &
reloader=$!
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$RELOADER_PORT/-/health/ready" && break
  sleep 0.2
done
iso() { date -u -d "@$(( $1 / 1000 )).$(printf %03d $(( $1 % 1000 )))" +%Y-%m-%dT%H:%M:%S.%3NZ; }
replay() { # route body: starts a job, waits for its end, prints its summary
  local answer id state job
  answer=$(curl -sf -X POST "http://127.0.0.1:$RELOADER_PORT$1" -H 'content-type: application/json' -d "$2")
  id=$(sed -E 's/.*"requestId":"([0-9a-f]+)".*/\1/' <<<"$answer")
  for _ in $(seq 1 150); do
    job=$(curl -sf "http://127.0.0.1:$RELOADER_PORT/reingestion/jobs/$id")
    state=$(sed -E 's/.*"state":"([a-z]+)".*/\1/' <<<"$job")
    [ "$state" != running ] && break
    sleep 0.2
  done
  echo "   job $id: $state, $(sed -E 's/.*"messagesPublished":([0-9]+).*/\1/' <<<"$job") messages published"
  [ "$state" = completed ] || { echo "$job" >&2; exit 1; }
}
from=$(iso $(( base + 100 ))); to=$(iso $(( base + 199 )))
echo "   replaying the window [$from, $to] (records 100 to 199) into $WINDOW_TARGET"
replay /reingestion/topic "{\"topic\":\"orders\",\"reIngestionTopic\":\"$WINDOW_TARGET\",\"startDate\":\"$from\",\"stopDate\":\"$to\"}"
echo '   replaying the key {"id":42} into '"$KEY_TARGET"
replay /reingestion/key "{\"topic\":\"orders\",\"key\":\"{\\\"id\\\":42}\",\"reIngestionTopic\":\"$KEY_TARGET\"}"

step "6/6 what arrived"
target/debug/read-topic "$WINDOW_TARGET" 100 3
target/debug/read-topic "$KEY_TARGET" 1 1
echo
echo "done: archive in $BUCKET, logs in target/demo-storer.log and target/demo-reloader.log"
