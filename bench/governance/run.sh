#!/usr/bin/env bash
# bench/governance: one query mix through lalo with the demo policies and with governance off,
# in one run; prints TPS for both and the ratio on/off (target >= 0.95). As BENCH_USER=analyst
# (default) the mix meets a row filter on orders and a mask on customer.c_phone besides the access
# checks on every column; as BENCH_USER=admin only the checks apply.
# With LALO_BASE_BIN set, a second lalo binary (the base, e.g. the previous release build) runs
# governed beside them on 56534/56582 and is measured in every round after on and off: column
# base-on, and per mode the median of the per-round ratios on/base-on (target >= 0.97).
# Then the cost of the audit trail's durability: the governed instance runs the default
# audit_sync = "always" (each statement's line synced before its first row, group-committed);
# two more governed instances run "batch_ms:10" and "off", and per mode the median TPS ratio of
# each against "always" is printed (AUDIT_MODES=0 skips this part).
#
#   bench/governance/run.sh            # builds lalo in release mode unless LALO_BIN is set
#   CLIENTS=8 SECONDS_PER_RUN=20 bench/governance/run.sh
#   LALO_BIN=target/release/lalo LALO_BASE_BIN=/tmp/lalo-prev bench/governance/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
clients="${CLIENTS:-4}"
user="${BENCH_USER:-analyst}"   # admin: access checks only; analyst: checks + row filter + mask
secs="${SECONDS_PER_RUN:-8}"
base_bin="${LALO_BASE_BIN:-}"   # a second lalo binary measured governed beside LALO_BIN; empty: none
command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }

if [ -z "${LALO_BIN:-}" ]; then
  (cd "$repo" && cargo build --release --locked >&2)
  LALO_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/lalo"
fi
if [ -n "$base_bin" ] && [ ! -x "$base_bin" ]; then
  echo "LALO_BASE_BIN is not an executable file: $base_bin" >&2; exit 1
fi
work="$(mktemp -d)"
pids=()
cleanup() { for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() {  # name port http_port governance_enabled [binary [data_dir [audit_sync]]] (default $LALO_BIN, data, always)
  (cd "$repo" && LALO_SERVER_LISTEN="127.0.0.1:$2" LALO_SERVER_HTTP_LISTEN="127.0.0.1:$3" \
    LALO_CATALOG_DATA_DIR="$work/${6:-data}" LALO_GOVERNANCE_AUDIT_LOG="$work/$1-audit.log" \
    LALO_GOVERNANCE_AUDIT_SYNC="${7:-always}" \
    LALO_GOVERNANCE_ENABLED="$4" LALO_LOG=warn exec "${5:-$LALO_BIN}" serve >"$work/$1.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 120); do
    PGPASSWORD="$user" psql -X -q -h 127.0.0.1 -p "$2" -U "$user" -d lalo -c "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "lalo ($1) did not start:" >&2; cat "$work/$1.log" >&2; exit 1
}

tps() {  # port mode
  PGPASSWORD="$user" pgbench -n -h 127.0.0.1 -p "$1" -U "$user" -M "$2" -c "$clients" -j 2 -T "$secs" \
    -f "$here/mix.sql" lalo 2>/dev/null | awk '/^tps = / { print $3 }'
}

start governed 56532 56580 true
start open 56533 56581 false
ports="56532 56533"
if [ -n "$base_bin" ]; then
  # The base gets a data dir of its own (its own retrieval index, in its own format) holding a
  # copy of the demo tables the first two generated, so all three query the same rows.
  mkdir -p "$work/base-data"
  for d in "$work"/data/tpch-sf*; do
    if [ -d "$d" ]; then cp -R "$d" "$work/base-data/"; fi
  done
  start base-governed 56534 56582 true "$base_bin" base-data
  ports="$ports 56534"
fi
for port in $ports; do tps "$port" simple >/dev/null; done  # warm-up
# Other load on the machine drifts over a run, so on and off (and base-on) take turns for ROUNDS
# short runs and each ratio is the median of the per-round ratios.
rounds="${ROUNDS:-3}"
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
if [ -z "$base_bin" ]; then
  printf "%-10s %6s %12s %12s %8s\n" mode round on off on/off
else
  printf "%-10s %6s %12s %12s %8s %12s\n" mode round on off on/off base-on
fi
for mode in simple prepared; do
  ratios=""; base_ratios=""
  for r in $(seq 1 "$rounds"); do
    on="$(tps 56532 "$mode")"
    off="$(tps 56533 "$mode")"
    ratio="$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')"
    ratios="$ratios $ratio"
    if [ -z "$base_bin" ]; then
      printf "%-10s %6d %12.1f %12.1f %8s\n" "$mode" "$r" "$on" "$off" "$ratio"
    else
      base_on="$(tps 56534 "$mode")"
      base_ratios="$base_ratios $(awk -v a="$on" -v b="$base_on" 'BEGIN { printf "%.3f", a / b }')"
      printf "%-10s %6d %12.1f %12.1f %8s %12.1f\n" "$mode" "$r" "$on" "$off" "$ratio" "$base_on"
    fi
  done
  printf "%-10s median ratio on/off = %s (target >= 0.95)\n" "$mode" "$(echo $ratios | tr ' ' '\n' | median)"
  if [ -n "$base_bin" ]; then
    printf "%-10s median ratio on/base-on = %s (target >= 0.97)\n" "$mode" "$(echo $base_ratios | tr ' ' '\n' | median)"
  fi
done

if [ "${AUDIT_MODES:-1}" != 0 ]; then
  start sync-batch 56535 56583 true "$LALO_BIN" data batch_ms:10
  start sync-off 56536 56584 true "$LALO_BIN" data off
  for port in 56535 56536; do tps "$port" simple >/dev/null; done  # warm-up
  printf "\n%-10s %6s %12s %12s %12s\n" mode round always batch_ms:10 off
  for mode in simple prepared; do
    batch_ratios=""; off_ratios=""
    for r in $(seq 1 "$rounds"); do
      always="$(tps 56532 "$mode")"
      batch="$(tps 56535 "$mode")"
      off="$(tps 56536 "$mode")"
      batch_ratios="$batch_ratios $(awk -v a="$always" -v b="$batch" 'BEGIN { printf "%.3f", a / b }')"
      off_ratios="$off_ratios $(awk -v a="$always" -v b="$off" 'BEGIN { printf "%.3f", a / b }')"
      printf "%-10s %6d %12.1f %12.1f %12.1f\n" "$mode" "$r" "$always" "$batch" "$off"
    done
    printf "%-10s median ratio always/batch_ms:10 = %s, always/off = %s (the cost of syncing before delivery)\n" "$mode" \
      "$(echo $batch_ratios | tr ' ' '\n' | median)" "$(echo $off_ratios | tr ' ' '\n' | median)"
  done
fi
