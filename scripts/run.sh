#!/usr/bin/env bash
# Starts the daemon on the embedded default (SQLite, local processes, local
# checkpoints) in ./var, submits the example job and says where to look.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=bin/tidewatch
DATA=${TIDEWATCH_DATA_DIR:-var}
LISTEN=${TIDEWATCH_LISTEN:-127.0.0.1:8080}
SERVER="http://$LISTEN"
JOB=configs/jobs/clicks.yaml
mkdir -p "$DATA"

if curl -fsS "$SERVER/healthz" >/dev/null 2>&1; then
  echo "A daemon already answers at $SERVER; using it."
else
  echo "Starting the daemon: $BIN daemon --listen $LISTEN --data-dir $DATA (log: $DATA/daemon.log)"
  # The monitor runs the seed's rule catalogue over every job (docs/RULES.md).
  TIDEWATCH_MONITOR_RULES="${TIDEWATCH_MONITOR_RULES:-$PWD/configs/rules}" \
    nohup "$BIN" daemon --listen "$LISTEN" --data-dir "$DATA" >>"$DATA/daemon.log" 2>&1 &
  echo $! >"$DATA/daemon.pid"
  for _ in $(seq 1 100); do
    curl -fsS "$SERVER/readyz" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$DATA/daemon.pid")" 2>/dev/null; then
      echo "The daemon exited; its log:" >&2; tail -20 "$DATA/daemon.log" >&2; exit 1
    fi
    sleep 0.1
  done
fi

name=$(sed -n 's/^name: *//p' "$JOB")
id=$("$BIN" job list --server "$SERVER" -o json | python3 -c '
import json, sys
name = sys.argv[1]
for j in json.load(sys.stdin)["jobs"]:
    if j["name"] == name and j["state"] not in ("STOPPED", "CANCELED", "FINISHED", "FAILED"):
        print(j["id"]); break' "$name" 2>/dev/null || true)
if [ -n "$id" ]; then
  echo "Job $name is already there as $id."
else
  echo "Submitting $JOB:"
  "$BIN" job submit "$JOB" --server "$SERVER" --wait -o json >"$DATA/last-submit.json"
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$DATA/last-submit.json")
fi

"$BIN" job status "$id" --server "$SERVER"
endpoint=$("$BIN" job status "$id" --server "$SERVER" -o json | python3 -c 'import json,sys; print((json.load(sys.stdin).get("deployment") or {}).get("endpoint",""))')
cat <<MSG

Tidewatch is running.
  Daemon API        $SERVER/api/v1/jobs      (metrics: $SERVER/metrics)
  Job master        $endpoint/jobs/overview   (Flink-style REST, metrics at $endpoint/metrics)
  Job output        $DATA/jobs/$id/output/counts/   (committed part files; in-progress ones start with a dot)
  Checkpoints       $DATA/checkpoints/$id/
  Daemon log        $DATA/daemon.log

Try:
  $BIN job list
  $BIN job logs $id
  $BIN events
  kill -9 \$($BIN job status $id -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deployment"]["pid"])')   # and watch it come back
  make stop          # stop the jobs and the daemon
MSG
