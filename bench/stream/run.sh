#!/usr/bin/env bash
# bench/stream — result streaming throughput: lalo vs PostgreSQL 15, same rows, same client, same run.
#
# Prints rows/s for a 10-million-row one-integer result ("narrow") and a 1-million-row six-column
# result ("wide"), through lalo and from a throwaway PostgreSQL 15 cluster serving the same rows, and
# the ratio lalo/PostgreSQL (rows/s of lalo divided by rows/s of PostgreSQL). Target: >= 1.0.
#
# Usage: bench/stream/run.sh
# Environment (all optional):
#   LALO_BIN=path        lalo binary to measure; default: build it with
#                        `nice -n 19 cargo build --release` into $CARGO_TARGET_DIR (default ./target)
#   RUNS=5               timed runs per measurement (the median is reported), after WARMUP untimed runs
#   WARMUP=1
#   NARROW_ROWS=10000000 WIDE_ROWS=1000000
#   PG_PORT=55432 LALO_PORT=56432 LALO_HTTP_PORT=56480
#   PG_TABLE=1           also time PostgreSQL reading the narrow rows from a heap table (context only)
#   COPY=1               also time COPY (query) TO STDOUT on both engines
#   FLIGHT=1             also time lalo over Arrow Flight SQL (ADBC's Flight SQL driver reading
#                        Arrow; needs python3 with pyarrow and adbc_driver_flightsql), as a ratio
#                        against PostgreSQL's wire for the same rows
#   LALO_FLIGHT_PORT=56434
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

RUNS="${RUNS:-5}"
WARMUP="${WARMUP:-1}"
NARROW_ROWS="${NARROW_ROWS:-10000000}"
WIDE_ROWS="${WIDE_ROWS:-1000000}"
PG_PORT="${PG_PORT:-55432}"
LALO_PORT="${LALO_PORT:-56432}"
LALO_HTTP_PORT="${LALO_HTTP_PORT:-56480}"
PG_TABLE="${PG_TABLE:-1}"
COPY="${COPY:-1}"
FLIGHT="${FLIGHT:-1}"
LALO_FLIGHT_PORT="${LALO_FLIGHT_PORT:-56434}"
if [ "$FLIGHT" = 1 ] && ! python3 -c "import pyarrow, adbc_driver_flightsql" >/dev/null 2>&1; then
  echo "bench/stream: FLIGHT=1 needs python3 with pyarrow and adbc_driver_flightsql (pip install -r tests/clients/requirements.txt); skipping the Flight rows" >&2
  FLIGHT=0
fi

say() { echo "bench/stream: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need=()
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
ls /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1 || need+=(postgresql-15)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PGBIN=/usr/lib/postgresql/15/bin
for tool in psql pg_isready awk sort md5sum "$PGBIN/initdb" "$PGBIN/pg_ctl"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

# --- lalo binary ---------------------------------------------------------------------------------
if [ -z "${LALO_BIN:-}" ]; then
  say "building lalo (release) into ${CARGO_TARGET_DIR:-./target}"
  nice -n 19 env CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" cargo build --release >&2
  LALO_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/lalo"
fi
[ -x "$LALO_BIN" ] || die "LALO_BIN=$LALO_BIN is not an executable"

# --- scratch space, cleanup ----------------------------------------------------------------------
TMP="$(mktemp -d /tmp/lalo-bench-stream.XXXXXX)"
chmod 711 "$TMP"
LALO_PID=""
PG_STARTED=""
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
cleanup() {
  set +e
  if [ -n "$LALO_PID" ]; then kill "$LALO_PID" 2>/dev/null; wait "$LALO_PID" 2>/dev/null; fi
  if [ -n "$PG_STARTED" ]; then "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate -w stop >/dev/null 2>&1; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL 15 -------------------------------------------------------------------------------
mkdir -p "$TMP/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$TMP/pg"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -A trust -U postgres --no-sync >"$TMP/initdb.log" 2>&1 \
  || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
PG_STARTED=1
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t 60 \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $TMP/pg" start >/dev/null \
  || { cat "$TMP/pg/server.log" >&2; die "PostgreSQL did not start"; }

# --- lalo ----------------------------------------------------------------------------------------
mkdir -p "$TMP/lalo"
LALO_SERVER_LISTEN="127.0.0.1:$LALO_PORT" LALO_SERVER_HTTP_LISTEN="127.0.0.1:$LALO_HTTP_PORT" \
LALO_SERVER_FLIGHT_LISTEN="$([ "$FLIGHT" = 1 ] && echo "127.0.0.1:$LALO_FLIGHT_PORT")" \
LALO_CATALOG_DATA_DIR="$TMP/lalo" LALO_GOVERNANCE_AUDIT_LOG="$TMP/lalo/audit.log" \
LALO_CATALOG_TPCH_SCALE=0 "$LALO_BIN" serve >"$TMP/lalo.log" 2>&1 &
LALO_PID=$!
for _ in $(seq 1 300); do
  pg_isready -q -h 127.0.0.1 -p "$LALO_PORT" && break
  kill -0 "$LALO_PID" 2>/dev/null || { cat "$TMP/lalo.log" >&2; die "lalo exited"; }
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$LALO_PORT" || { cat "$TMP/lalo.log" >&2; die "lalo did not start"; }

unset PGSERVICE PGOPTIONS PGSSLMODE PGHOST PGPORT PGUSER PGDATABASE
LALO_CONN="host=127.0.0.1 port=$LALO_PORT user=admin password=admin dbname=lalo sslmode=disable"
PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres sslmode=disable"
conn_of() { case "$1" in lalo) echo "$LALO_CONN" ;; *) echo "$PG_CONN" ;; esac; }

# --- the rows ------------------------------------------------------------------------------------
# One spelling works on both engines. generate_series yields int4 in PostgreSQL and Int64 in
# DataFusion; the text psql prints is identical. The double is g + 0.5 so both engines print it the
# same way (they format integral doubles differently: PostgreSQL "1", lalo "1.0").
NARROW_SQL="SELECT g FROM generate_series(1, $NARROW_ROWS) AS t(g)"
WIDE_SQL="SELECT CAST(g AS INTEGER) AS i, CAST(g AS BIGINT) * 1000 AS b, CAST(g AS DOUBLE PRECISION) + 0.5 AS d, 'row-' || CAST(g AS TEXT) AS t, make_date(2000 + CAST(g % 20 AS INTEGER), 1 + CAST(g % 12 AS INTEGER), 1 + CAST(g % 28 AS INTEGER)) AS dt, g % 2 = 0 AS flag FROM generate_series(1, $WIDE_ROWS) AS t(g)"

# run ENGINE SQL: psql, unaligned tuples only, output to stdout
run() { psql -X -At -v ON_ERROR_STOP=1 -d "$(conn_of "$1")" -c "$2"; }

# Same rows from both: row count and md5 of the sorted output (lalo may return rows in another
# order: DataFusion runs the projection on several partitions, and SQL without ORDER BY has none).
declare -A ERR
verify() { # verify CASE SQL ROWS
  local c="$1" sql="$2" rows="$3" e out n sum
  for e in lalo postgresql; do
    out="$TMP/verify.$e"
    if ! run "$e" "$sql" 2>"$TMP/err" >"$out"; then
      ERR["$c/$e"]="$(tr '\n' ' ' <"$TMP/err")"; say "$c on $e failed: ${ERR["$c/$e"]}"; continue
    fi
    n=$(wc -l <"$out"); sum=$(LC_ALL=C sort -S 25% "$out" | md5sum | cut -d' ' -f1)
    say "$c on $e: $n rows, md5(sorted)=$sum"
    [ "$n" = "$rows" ] || die "$c on $e returned $n rows, expected $rows"
    echo "$sum" >"$TMP/sum.$c.$e"
    rm -f "$out"
  done
  if [ -f "$TMP/sum.$c.lalo" ] && [ -f "$TMP/sum.$c.postgresql" ]; then
    cmp -s "$TMP/sum.$c.lalo" "$TMP/sum.$c.postgresql" || die "$c: lalo and PostgreSQL returned different rows"
  fi
}

# time_it ENGINE SQL -> median seconds on stdout (or nothing if the query fails)
time_it() {
  local e="$1" sql="$2" i t0 t1 times=()
  for i in $(seq 1 "$WARMUP"); do run "$e" "$sql" >/dev/null 2>"$TMP/err" || return 1; done
  for i in $(seq 1 "$RUNS"); do
    t0=$(date +%s.%N)
    run "$e" "$sql" >/dev/null 2>"$TMP/err" || return 1
    t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  say "  $e: runs ${times[*]} s"
  printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

RESULTS=()   # "case|engine|seconds|rows/s|ratio"
declare -A PG_RPS
measure() { # measure CASE SQL ROWS
  local c="$1" sql="$2" rows="$3" e s rps lalo_rps="" pg_rps=""
  say "timing $c ($rows rows, median of $RUNS)"
  for e in lalo postgresql; do
    if [ -n "${ERR["$c/$e"]:-}" ] || ! s=$(time_it "$e" "$sql"); then
      [ -n "${ERR["$c/$e"]:-}" ] || ERR["$c/$e"]="$(tr '\n' ' ' <"$TMP/err")"
      RESULTS+=("$c|$e|error|-|-"); say "  $e: ${ERR["$c/$e"]}"; continue
    fi
    rps=$(awk -v r="$rows" -v s="$s" 'BEGIN { printf "%.0f", r / s }')
    [ "$e" = lalo ] && lalo_rps=$rps || { pg_rps=$rps; PG_RPS["$c"]=$rps; }
    RESULTS+=("$c|$e|$s|$rps|")
  done
  if [ -n "$lalo_rps" ] && [ -n "$pg_rps" ]; then
    RESULTS+=("$c|lalo/postgresql|||$(awk -v a="$lalo_rps" -v b="$pg_rps" 'BEGIN { printf "%.2f", a / b }')")
  else
    RESULTS+=("$c|lalo/postgresql|||n/a")
  fi
}

say "lalo: $LALO_BIN ($(run lalo 'SELECT version()' 2>/dev/null || echo '?'))"
say "postgresql: $(run postgresql 'SELECT version()')"
say "machine: $(nproc) cores; RUNS=$RUNS WARMUP=$WARMUP"

verify narrow "$NARROW_SQL" "$NARROW_ROWS"
verify wide "$WIDE_SQL" "$WIDE_ROWS"
measure narrow "$NARROW_SQL" "$NARROW_ROWS"
measure wide "$WIDE_SQL" "$WIDE_ROWS"
if [ "$COPY" = 1 ]; then
  measure narrow-copy "COPY ($NARROW_SQL) TO STDOUT" "$NARROW_ROWS"
  measure wide-copy "COPY ($WIDE_SQL) TO STDOUT" "$WIDE_ROWS"
fi
# flight_seconds SQL -> median seconds of execute + fetch of the whole Arrow result over Flight
# SQL (one connection, WARMUP untimed runs first), as rows/s comparable to psql's.
flight_seconds() {
  python3 - "$1" "$LALO_FLIGHT_PORT" "$RUNS" "$WARMUP" <<'PY'
import statistics, sys, time, warnings
import adbc_driver_flightsql.dbapi as flightsql
warnings.simplefilter("ignore")
sql, port, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
conn = flightsql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={"username": "admin", "password": "admin"})
cur = conn.cursor()
times = []
for i in range(warmup + runs):
    t0 = time.perf_counter()
    cur.execute(sql)
    n = cur.fetch_arrow_table().num_rows
    if i >= warmup:
        times.append(time.perf_counter() - t0)
print(f"{statistics.median(times):.4f}")
PY
}
measure_flight() { # measure_flight CASE SQL ROWS
  local c="$1" sql="$2" rows="$3" s rps
  say "timing $c over Flight SQL"
  if ! s=$(flight_seconds "$sql" 2>"$TMP/err"); then
    RESULTS+=("$c|lalo-flight|error|-|-"); ERR["$c/lalo-flight"]="$(tail -1 "$TMP/err")"; return
  fi
  rps=$(awk -v r="$rows" -v s="$s" 'BEGIN { printf "%.0f", r / s }')
  RESULTS+=("$c|lalo-flight|$s|$rps|")
  if [ -n "${PG_RPS[$c]:-}" ]; then
    RESULTS+=("$c|flight/postgresql|||$(awk -v a="$rps" -v b="${PG_RPS[$c]}" 'BEGIN { printf "%.2f", a / b }')")
  fi
}
if [ "$FLIGHT" = 1 ]; then
  measure_flight narrow "$NARROW_SQL" "$NARROW_ROWS"
  measure_flight wide "$WIDE_SQL" "$WIDE_ROWS"
fi
if [ "$PG_TABLE" = 1 ]; then
  say "loading $NARROW_ROWS rows into a PostgreSQL table (context: PostgreSQL reading a heap table)"
  run postgresql "CREATE UNLOGGED TABLE narrow AS $NARROW_SQL" >/dev/null
  run postgresql "VACUUM ANALYZE narrow" >/dev/null
  say "timing narrow-table"
  if s=$(time_it postgresql "SELECT g FROM narrow"); then
    RESULTS+=("narrow-table|postgresql|$s|$(awk -v r="$NARROW_ROWS" -v s="$s" 'BEGIN { printf "%.0f", r / s }')|")
  fi
fi

# --- report --------------------------------------------------------------------------------------
echo
echo "bench/stream: psql -X -At -c <query> > /dev/null, median of $RUNS runs after $WARMUP warm-up; $(nproc) cores"
printf '%-13s %-16s %10s %14s %8s\n' case engine seconds rows/s ratio
for r in "${RESULTS[@]}"; do
  IFS='|' read -r c e s rps ratio <<<"$r"
  printf '%-13s %-16s %10s %14s %8s\n' "$c" "$e" "$s" "$rps" "$ratio"
done
for k in $(printf '%s\n' "${!ERR[@]}" | sort); do echo "error: $k: ${ERR[$k]}"; done
echo "target: ratio >= 1.0 for narrow and wide"
