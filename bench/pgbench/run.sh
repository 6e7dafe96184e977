#!/usr/bin/env bash
# bench/pgbench: `pgbench -S` (select-only) against one PostgreSQL upstream directly, through
# PgBouncer and through lalo (governance on, the demo policies, user admin), in one run, at 1 and
# 16 clients, in the simple and the prepared protocol. Prints TPS and the ratios lalo/PgBouncer
# and lalo/direct (target: lalo >= PgBouncer at 16 clients), as medians of ROUNDS rounds.
# With LALO_BASE_BIN set, a second lalo (the base, e.g. the previous release build) runs beside
# the first on ports 56644/56645 and is measured in every round right after it: the table gains
# the columns base (median TPS) and lalo/base (median of the per-round ratios).
#
#   bench/pgbench/run.sh                 # builds lalo in release mode unless LALO_BIN is set
#   SCALE=10 SECONDS_PER_RUN=20 ROUNDS=5 bench/pgbench/run.sh
#   LALO_BIN=target/release/lalo LALO_BASE_BIN=/tmp/lalo-prev bench/pgbench/run.sh
#
# Needs the Debian packages postgresql (server binaries), postgresql-client (pgbench) and
# pgbouncer; run as root it starts PostgreSQL and PgBouncer as the `postgres` system user.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
scale="${SCALE:-10}"
secs="${SECONDS_PER_RUN:-8}"
rounds="${ROUNDS:-3}"
clients_list="${CLIENTS:-1 16}"
base_bin="${LALO_BASE_BIN:-}"   # a second lalo binary measured beside LALO_BIN; empty: none

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL server binaries are missing: apt-get install postgresql" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }
command -v pgbouncer >/dev/null || { echo "pgbouncer is missing: apt-get install pgbouncer" >&2; exit 1; }

if [ -z "${LALO_BIN:-}" ]; then
  (cd "$repo" && cargo build --release --locked >&2)
  LALO_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/lalo"
fi
if [ -n "$base_bin" ] && [ ! -x "$base_bin" ]; then
  echo "LALO_BASE_BIN is not an executable file: $base_bin" >&2; exit 1
fi

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work="$(mktemp -d)"
chmod 777 "$work"
pg_port=56640; bouncer_port=56641; lalo_port=56642; lalo_http=56643; base_port=56644; base_http=56645
pids=()
cleanup() {
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting PostgreSQL (scale $scale) ..." >&2
as_pg "$pgbin/initdb" -A trust -U postgres -D "$work/pg" >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB -c fsync=off" start >/dev/null
psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE bench"
pgbench -q -i -s "$scale" -h 127.0.0.1 -p "$pg_port" -U postgres bench >/dev/null 2>&1

echo "starting PgBouncer ..." >&2
cat >"$work/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
echo '"postgres" ""' >"$work/userlist.txt"
chmod 644 "$work/pgbouncer.ini" "$work/userlist.txt"
as_pg pgbouncer -d "$work/pgbouncer.ini"
sleep 1
pids+=("$(cat "$work/pgbouncer.pid")")

mkdir -p "$work/catalog"
cat >"$work/catalog/sources.toml" <<TOML
[[upstream]]
name = "bench"
kind = "postgres"
url_env = "BENCH_UPSTREAM_URL"
schemas = ["public"]
TOML
start_lalo() {  # name binary port http_port data_dir audit_log (the last two under $work)
  echo "starting $1 ..." >&2
  (cd "$repo" && BENCH_UPSTREAM_URL="postgres://postgres@127.0.0.1:$pg_port/bench?sslmode=disable" \
    LALO_SERVER_LISTEN="127.0.0.1:$3" LALO_SERVER_HTTP_LISTEN="127.0.0.1:$4" \
    LALO_SERVER_MAX_CONNECTIONS=200 LALO_CATALOG_DIR="$work/catalog" LALO_CATALOG_DATA_DIR="$work/$5" \
    LALO_CATALOG_TPCH_SCALE=0 LALO_GOVERNANCE_AUDIT_LOG="$work/$6" LALO_LOG=warn \
    exec "$2" serve >"$work/$1.log" 2>&1) &
  pids+=($!)
}
wait_lalo() {  # name port
  for _ in $(seq 1 120); do
    PGPASSWORD=admin psql -X -q -h 127.0.0.1 -p "$2" -U admin -d bench -c "SELECT 1 FROM pgbench_branches LIMIT 1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  PGPASSWORD=admin psql -X -q -h 127.0.0.1 -p "$2" -U admin -d bench -c "SELECT 1 FROM pgbench_branches LIMIT 1" >/dev/null \
    || { echo "$1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1; }
}
start_lalo lalo "$LALO_BIN" "$lalo_port" "$lalo_http" data audit.log
wait_lalo lalo "$lalo_port"
if [ -n "$base_bin" ]; then
  start_lalo base "$base_bin" "$base_port" "$base_http" base-data base-audit.log
  wait_lalo base "$base_port"
fi

tps() {  # port user password mode clients
  PGPASSWORD="$3" pgbench -n -S -s "$scale" -h 127.0.0.1 -p "$1" -U "$2" -M "$4" -c "$5" -j "$(( $5 < 2 ? 1 : 2 ))" \
    -T "$secs" bench 2>/dev/null | awk '/^tps = / { print $3 }'
}

tps "$pg_port" postgres "" simple 4 >/dev/null           # warm the upstream's cache
tps "$lalo_port" admin admin simple 4 >/dev/null         # and lalo's
if [ -n "$base_bin" ]; then tps "$base_port" admin admin simple 4 >/dev/null; fi  # and the base's
# Load elsewhere on the machine drifts over minutes: the targets take turns for `ROUNDS` short
# runs and the table shows medians (TPS and the per-round ratios lalo/PgBouncer and lalo/base).
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
if [ -z "$base_bin" ]; then
  printf "%-9s %7s %12s %12s %12s %14s %12s\n" mode clients direct pgbouncer lalo lalo/pgbouncer lalo/direct
else
  printf "%-9s %7s %12s %12s %12s %14s %12s %12s %10s\n" mode clients direct pgbouncer lalo lalo/pgbouncer lalo/direct \
    base lalo/base
fi
for mode in simple prepared; do
  for c in $clients_list; do
    ds=(); bs=(); lt=(); rs=(); xs=(); xr=()
    for r in $(seq 1 "$rounds"); do
      d="$(tps "$pg_port" postgres "" "$mode" "$c")"
      b="$(tps "$bouncer_port" postgres "" "$mode" "$c")"
      l="$(tps "$lalo_port" admin admin "$mode" "$c")"
      if [ -z "$base_bin" ]; then
        echo "  round $r: $mode $c clients: direct $d, pgbouncer $b, lalo $l" >&2
      else
        x="$(tps "$base_port" admin admin "$mode" "$c")"
        echo "  round $r: $mode $c clients: direct $d, pgbouncer $b, lalo $l, base $x" >&2
        xs+=("$x")
        xr+=("$(awk -v l="$l" -v x="$x" 'BEGIN { printf "%.4f", l / x }')")
      fi
      ds+=("$d"); bs+=("$b"); lt+=("$l")
      rs+=("$(awk -v l="$l" -v b="$b" 'BEGIN { printf "%.4f", l / b }')")
    done
    d="$(printf "%s\n" "${ds[@]}" | median)"; b="$(printf "%s\n" "${bs[@]}" | median)"
    l="$(printf "%s\n" "${lt[@]}" | median)"; ratio="$(printf "%s\n" "${rs[@]}" | median)"
    if [ -z "$base_bin" ]; then
      awk -v m="$mode" -v c="$c" -v d="$d" -v b="$b" -v l="$l" -v r="$ratio" \
        'BEGIN { printf "%-9s %7d %12.0f %12.0f %12.0f %14.2f %12.2f\n", m, c, d, b, l, r, l / d }'
    else
      x="$(printf "%s\n" "${xs[@]}" | median)"; xratio="$(printf "%s\n" "${xr[@]}" | median)"
      awk -v m="$mode" -v c="$c" -v d="$d" -v b="$b" -v l="$l" -v r="$ratio" -v x="$x" -v xr="$xratio" \
        'BEGIN { printf "%-9s %7d %12.0f %12.0f %12.0f %14.2f %12.2f %12.0f %10.2f\n", m, c, d, b, l, r, l / d, x, xr }'
    fi
  done
done
echo "audit records written by lalo: $(wc -l <"$work/audit.log")" >&2
if [ -n "$base_bin" ]; then echo "audit records written by the base: $(wc -l <"$work/base-audit.log")" >&2; fi
