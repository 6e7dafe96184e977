#!/usr/bin/env bash
# bench/tpch — the 22 TPC-H queries on lalo (over the wire), DataFusion in-process, DuckDB and
# PostgreSQL 15, on the same data, in the same run. Checks every engine returns the same rows, prints
# per-query median times and the total ratios lalo/DataFusion, lalo/PostgreSQL, lalo/DuckDB, and
# writes bench/results/tpch-sf<SCALE>.md, .json and .png.
#
# Usage: bench/tpch/run.sh [SCALE]          (default 1)
# Environment (all optional):
#   LALO_BIN=path        lalo binary to measure; default: build it (release) into $CARGO_TARGET_DIR
#   DF_RUNNER=path       bench/tpch/datafusion-runner binary; default: build it into $CARGO_TARGET_DIR
#   CARGO_TARGET_DIR     where both are built (default ./target)
#   LALO_CONFIG=path     lalo config (default ./lalo.toml; the bench overrides listen addresses,
#                        data dir, audit log and TPC-H scale through LALO_* variables)
#   TPCH_DATA_DIR=dir    where lalo generates (and the bench keeps) the Parquet files
#                        (default bench/tpch/data; <dir>/tpch-sf<SCALE>/<table>.parquet)
#   RUNS=3 WARMUP=1      timed runs per query and engine (median reported), after untimed warm-ups
#   ENGINES=lalo,lalo-ballista,datafusion,duckdb,postgresql     a subset to run (lalo-ballista:
#                        a second lalo with [engine] distributed = "standalone", two executors)
#   QUERIES=q01,q06      a subset of bench/tpch/queries
#   DECIMALS=2           numbers are rounded to this many decimals before the row check
#   PG_TIMEOUT=600       statement_timeout (s) for each PostgreSQL query
#   PG_SETTINGS="..."    extra postgres -c options (defaults below)
#   PG_PORT=55632 LALO_PORT=56632 LALO_HTTP_PORT=56680 LALO_BALLISTA_PORT=56633 LALO_BALLISTA_HTTP_PORT=56681
#   MEMORY_CACHE_MB=4096 [catalog] memory_cache_mb of the lalo engine: the tables held in memory,
#                        as DuckDB holds its native tables (0: lalo reads the Parquet files)
#   RESULTS_DIR=bench/results
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
HERE="$ROOT/bench/tpch"

SCALE="${1:-1}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
ENGINES="${ENGINES:-lalo,lalo-ballista,datafusion,duckdb,postgresql}"
QUERIES="${QUERIES:-}"
DECIMALS="${DECIMALS:-2}"
PG_TIMEOUT="${PG_TIMEOUT:-600}"
PG_PORT="${PG_PORT:-55632}"
LALO_PORT="${LALO_PORT:-56632}"
LALO_HTTP_PORT="${LALO_HTTP_PORT:-56680}"
LALO_BALLISTA_PORT="${LALO_BALLISTA_PORT:-56633}"
LALO_BALLISTA_HTTP_PORT="${LALO_BALLISTA_HTTP_PORT:-56681}"
LALO_CONFIG="${LALO_CONFIG:-$ROOT/lalo.toml}"
TPCH_DATA_DIR="${TPCH_DATA_DIR:-$HERE/data}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results}"
MEMORY_CACHE_MB="${MEMORY_CACHE_MB:-4096}"
# PostgreSQL tuned the way one would for an analytic database on this machine: memory for sorts
# and hashes, a larger buffer cache, no fsync (the data is a throwaway copy; reads are unaffected).
# Parallel query stays at its default (2 workers per gather), matching 2 DataFusion partitions on
# a 2-core machine.
PG_SETTINGS="${PG_SETTINGS:--c shared_buffers=1GB -c work_mem=256MB -c maintenance_work_mem=1GB -c effective_cache_size=8GB -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off}"

say() { echo "bench/tpch: $*" >&2; }
die() { say "$*"; exit 1; }

case "$SCALE" in ''|*[!0-9.]*) die "SCALE must be a number, got '$SCALE'" ;; esac
# lalo names the directory after the scale as Rust prints an f64 (1 -> "1", 0.1 -> "0.1").
SCALE_NAME="$(python3 -c "import sys; s = float(sys.argv[1]); print(int(s) if s.is_integer() else repr(s))" "$SCALE")"

# --- tools -------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need=()
command -v pg_isready >/dev/null 2>&1 || need+=(postgresql-client)
ls /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1 || need+=(postgresql-15)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing Debian packages ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PGBIN=/usr/lib/postgresql/15/bin
for tool in python3 pg_isready "$PGBIN/initdb" "$PGBIN/pg_ctl"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
if ! python3 -c "import psycopg, duckdb, matplotlib" 2>/dev/null; then
  say "installing Python packages from bench/tpch/requirements.txt (psycopg, duckdb, matplotlib)"
  python3 -m pip install -q -r "$HERE/requirements.txt" >&2 || die "pip install -r bench/tpch/requirements.txt failed"
fi

# --- binaries --------------------------------------------------------------------------------------
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${LALO_BIN:-}" ]; then
  say "building lalo (release) into $TARGET"
  nice -n 19 env CARGO_TARGET_DIR="$TARGET" cargo build --release --locked >&2
  LALO_BIN="$TARGET/release/lalo"
fi
[ -x "$LALO_BIN" ] || die "LALO_BIN=$LALO_BIN is not an executable"
if [ -z "${DF_RUNNER:-}" ] && [[ ",$ENGINES," == *,datafusion,* ]]; then
  say "building bench/tpch/datafusion-runner (release) into $TARGET"
  nice -n 19 env CARGO_TARGET_DIR="$TARGET" cargo build --release --locked \
    --manifest-path "$HERE/datafusion-runner/Cargo.toml" >&2
  DF_RUNNER="$TARGET/release/tpch-datafusion-runner"
fi
[[ ",$ENGINES," != *,datafusion,* ]] || [ -x "$DF_RUNNER" ] || die "DF_RUNNER=$DF_RUNNER is not an executable"

# --- scratch space, cleanup ----------------------------------------------------------------------
TMP="$(mktemp -d /tmp/lalo-bench-tpch.XXXXXX)"
chmod 711 "$TMP"
LALO_PID=""
LALO_BALLISTA_PID=""
PG_STARTED=""
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
cleanup() {
  set +e
  if [ -n "$LALO_PID" ]; then kill "$LALO_PID" 2>/dev/null; wait "$LALO_PID" 2>/dev/null; fi
  if [ -n "$LALO_BALLISTA_PID" ]; then kill "$LALO_BALLISTA_PID" 2>/dev/null; wait "$LALO_BALLISTA_PID" 2>/dev/null; fi
  if [ -n "$PG_STARTED" ]; then "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate -w stop >/dev/null 2>&1; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- lalo (generates the Parquet files on its first start at this scale) ------------------------
# start_lalo NAME PORT HTTP_PORT [VAR=value ...]: a lalo on the bench's data, its pid in LAST_PID.
start_lalo() {
  local name="$1" port="$2" http="$3"; shift 3
  mkdir -p "$TMP/$name"
  env LALO_SERVER_LISTEN="127.0.0.1:$port" LALO_SERVER_HTTP_LISTEN="127.0.0.1:$http" \
    LALO_CATALOG_DATA_DIR="$TPCH_DATA_DIR" LALO_GOVERNANCE_AUDIT_LOG="$TMP/$name/audit.log" \
    LALO_PLANNER_RETRIEVAL_DIR="$TMP/$name/retrieval" LALO_CATALOG_TPCH_SCALE="$SCALE" "$@" \
    "$LALO_BIN" serve --config "$LALO_CONFIG" >"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  for _ in $(seq 1 36000); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    kill -0 "$LAST_PID" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || { cat "$TMP/$name.log" >&2; die "$name did not start"; }
}
mkdir -p "$TPCH_DATA_DIR"
PARQUET_DIR="$TPCH_DATA_DIR/tpch-sf$SCALE_NAME"
[ -f "$PARQUET_DIR/lineitem.parquet" ] || say "lalo generates TPC-H SF$SCALE_NAME into $PARQUET_DIR (once; SF1 takes about a minute)"
start_lalo lalo "$LALO_PORT" "$LALO_HTTP_PORT" LALO_CATALOG_MEMORY_CACHE_MB="$MEMORY_CACHE_MB"
LALO_PID=$LAST_PID
[ -f "$PARQUET_DIR/lineitem.parquet" ] || die "lalo started but $PARQUET_DIR/lineitem.parquet is missing"
# The same lalo on a standalone Ballista cluster (a scheduler and two executors in its process).
if [[ ",$ENGINES," == *,lalo-ballista,* ]]; then
  start_lalo lalo-ballista "$LALO_BALLISTA_PORT" "$LALO_BALLISTA_HTTP_PORT" \
    LALO_ENGINE_DISTRIBUTED=standalone LALO_ENGINE_DISTRIBUTED_EXECUTORS=2
  LALO_BALLISTA_PID=$LAST_PID
fi

# --- PostgreSQL 15 -------------------------------------------------------------------------------
if [[ ",$ENGINES," == *,postgresql,* ]]; then
  mkdir -p "$TMP/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$TMP/pg"
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -A trust -U postgres --no-sync >"$TMP/initdb.log" 2>&1 \
    || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
  PG_STARTED=1
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $TMP/pg $PG_SETTINGS" start >/dev/null \
    || { cat "$TMP/pg/server.log" >&2; die "PostgreSQL did not start (port $PG_PORT taken? set PG_PORT)"; }
fi

unset PGSERVICE PGOPTIONS PGSSLMODE PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD
LALO_DSN="host=127.0.0.1 port=$LALO_PORT user=admin password=admin dbname=lalo sslmode=disable"
LALO_BALLISTA_DSN="host=127.0.0.1 port=$LALO_BALLISTA_PORT user=admin password=admin dbname=lalo sslmode=disable"
PG_DSN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres sslmode=disable"

LALO_REV="${LALO_REV:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}"
PG_VERSION="$("$PGBIN/postgres" --version | awk '{print $3}')"
DUCKDB_VERSION="$(python3 -c 'import duckdb; print(duckdb.__version__)')"
PSYCOPG_VERSION="$(python3 -c 'import psycopg; print(psycopg.__version__)')"
DF_VERSION="$(awk '/^name = "datafusion"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$HERE/datafusion-runner/Cargo.lock")"
GOV="${LALO_GOVERNANCE_ENABLED:-true}"
META="$(python3 - "$LALO_REV" "$DF_VERSION" "$DUCKDB_VERSION" "$PG_VERSION" "$PSYCOPG_VERSION" "$GOV" "$PG_SETTINGS" "$MEMORY_CACHE_MB" <<'EOF'
import json, sys
rev, df, duck, pg, psy, gov, pgs, cache = sys.argv[1:]
print(json.dumps({
    "lalo": f"{rev}, release build, user admin, governance enabled={gov}, audit log on, memory_cache_mb={cache}; client psycopg {psy} over TCP (127.0.0.1), text results, every row fetched",
    "lalo on Ballista": "the same lalo (tables on their files) with [engine] distributed = standalone: a Ballista 54 scheduler and two executors in its process over loopback gRPC, governed plans sent as physical plans",
    "DataFusion": f"{df} in-process (bench/tpch/datafusion-runner: lalo's session settings, same Parquet files, ctx.sql(..).collect())",
    "DuckDB": f"{duck} (Python, in-process), native tables loaded from the same Parquet files, default threads",
    "PostgreSQL": f"{pg}, psycopg {psy} over TCP, primary keys + foreign-key indexes, VACUUM ANALYZE; settings: {pgs}",
}))
EOF
)"

say "lalo: $LALO_BIN ($LALO_REV); data: $PARQUET_DIR"
python3 "$HERE/bench.py" --scale "$SCALE_NAME" --parquet-dir "$PARQUET_DIR" --queries-dir "$HERE/queries" \
  --scratch "$TMP" --results-dir "$RESULTS_DIR" --runner "${DF_RUNNER:-none}" \
  --lalo-dsn "$LALO_DSN" --lalo-ballista-dsn "$LALO_BALLISTA_DSN" --pg-dsn "$PG_DSN" --engines "$ENGINES" --queries "$QUERIES" \
  --runs "$RUNS" --warmup "$WARMUP" --decimals "$DECIMALS" --pg-timeout "$PG_TIMEOUT" --meta "$META"
