#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL: initdb in a temp dir, a free port, removed on exit.
set -euo pipefail
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"   # PostgreSQL refuses to run as root
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
"${as_pg[@]}" initdb -D "$dir/data" -A trust -U trueup >/dev/null
"${as_pg[@]}" pg_ctl -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
echo "PostgreSQL $(pg_ctl --version | awk '{print $3}') on 127.0.0.1:$port"
export DATABASE_URL="postgres://trueup@127.0.0.1:$port/postgres"
"$@"
