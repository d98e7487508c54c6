#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and local runs (never the system's own).
#   scripts/pg.sh start   start it (creating it on first use) and print its DATABASE_URL
#   scripts/pg.sh stop    stop it
set -euo pipefail
dir=${INTERLAYER_PG_DIR:-/tmp/interlayer-pg}
port=${INTERLAYER_PG_PORT:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $bin ]] || { echo "PostgreSQL is not installed: run scripts/setup.sh --system" >&2; exit 1; }

# PostgreSQL refuses to run as root; as root we run it as the postgres user.
as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case ${1:-start} in
  start)
    if [[ ! -f $dir/PG_VERSION ]]; then
      mkdir -p "$dir"
      [[ $(id -u) == 0 ]] && chown postgres: "$dir"
      as_owner "$bin/initdb" -D "$dir" -U interlayer --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      # Durability settings off: this cluster holds test and demo data only.
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
    fi
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U interlayer interlayer 2>/dev/null || true
    echo "postgres://interlayer@127.0.0.1:$port/interlayer"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
