#!/usr/bin/env bash
# Stops every running job (with a savepoint) and then the daemon `make run` started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/tidewatch
DATA=${TIDEWATCH_DATA_DIR:-var}
SERVER="http://${TIDEWATCH_LISTEN:-127.0.0.1:8080}"

if curl -fsS "$SERVER/healthz" >/dev/null 2>&1; then
  ids=$("$BIN" job list --server "$SERVER" -o json | python3 -c '
import json, sys
for j in json.load(sys.stdin)["jobs"]:
    if j["state"] not in ("STOPPED", "CANCELED", "FINISHED", "FAILED"):
        print(j["id"])')
  for id in $ids; do
    "$BIN" job stop "$id" --server "$SERVER" >/dev/null && echo "stopping job $id"
  done
  for id in $ids; do
    for _ in $(seq 1 300); do
      state=$("$BIN" job status "$id" --server "$SERVER" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
      case "$state" in STOPPED|CANCELED|FINISHED|FAILED) echo "job $id $state"; break;; esac
      sleep 0.1
    done
  done
fi
if [ -f "$DATA/daemon.pid" ] && kill "$(cat "$DATA/daemon.pid")" 2>/dev/null; then
  echo "daemon stopped"
  rm -f "$DATA/daemon.pid"
fi
