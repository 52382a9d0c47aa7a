#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1 for the store tests and prints the
# DSN; `scripts/scratch-postgres.sh stop DIR` stops it. PostgreSQL refuses to
# run as root, so the server runs as the postgres user.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  runuser -u postgres -- pg_ctl -D "$2/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$2"
  exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "no PostgreSQL server installed" >&2; exit 1; }
port=${PGPORT_TEST:-55432}
dir=$(mktemp -d /tmp/tidewatch-pg.XXXXXX)
chown postgres "$dir"
runuser -u postgres -- "$bindir/initdb" -D "$dir/data" -A trust -U tidewatch >/dev/null
runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$bindir/psql" -h 127.0.0.1 -p "$port" -U tidewatch -d postgres -qc 'CREATE DATABASE tidewatch' >/dev/null
echo "$dir"
echo "host=127.0.0.1 port=$port user=tidewatch dbname=tidewatch sslmode=disable"
