#!/usr/bin/env bash
# Starts a throwaway MariaDB (MySQL protocol) on 127.0.0.1 for the store tests
# and prints its directory and the DSN; `scripts/scratch-mysql.sh stop DIR` stops it.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  [ -f "$2/pid" ] && kill "$(cat "$2/pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -S "$2/sock" ] || break; sleep 0.1; done
  rm -rf "$2"
  exit 0
fi
command -v mariadbd >/dev/null || { echo "no MariaDB server installed" >&2; exit 1; }
port=${MYSQL_PORT_TEST:-53306}
dir=$(mktemp -d /tmp/tidewatch-mysql.XXXXXX)
chown mysql "$dir"
mariadb-install-db --user=mysql --datadir="$dir/data" --skip-test-db >/dev/null 2>&1
mariadbd --user=mysql --datadir="$dir/data" --socket="$dir/sock" --pid-file="$dir/pid" \
  --port="$port" --bind-address=127.0.0.1 --skip-grant-tables --innodb-flush-log-at-trx-commit=0 \
  >"$dir/log" 2>&1 &
for _ in $(seq 1 200); do
  mariadb --socket="$dir/sock" -e 'CREATE DATABASE IF NOT EXISTS tidewatch' 2>/dev/null && break
  sleep 0.1
done
mariadb --socket="$dir/sock" -e 'SELECT 1' >/dev/null
echo "$dir"
echo "root@tcp(127.0.0.1:$port)/tidewatch?parseTime=true"
