#!/usr/bin/env bash
# Client compatibility suite: Python drivers/tools, node-postgres and PgJDBC against a running lalo.
#
#   tests/clients/run_all.sh PORT [HOST]        # against a lalo already listening
#   tests/clients/run_all.sh --serve [PORT]     # start target/debug/lalo (or $LALO_BIN) on PORT, stop it after
#
# User, password and database come from PGUSER, PGPASSWORD, PGDATABASE (default admin, admin, lalo).
# Prints every check line of every client, then a tally per client and a closing
# `N passed, N failed` line; exits non-zero if any check (or any client run) failed.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
serve=0
if [ "${1:-}" = "--serve" ]; then
  serve=1
  shift
  port="${1:-16432}"
  host=127.0.0.1
else
  port="${1:?usage: run_all.sh PORT [HOST] | run_all.sh --serve [PORT]}"
  host="${2:-127.0.0.1}"
fi
user="${PGUSER:-admin}"
password="${PGPASSWORD:-admin}"
db="${PGDATABASE:-lalo}"
jar="${PGJDBC_JAR:-/usr/share/java/postgresql.jar}"

work="$(mktemp -d)"
lalo_pid=""
cleanup() {
  if [ -n "$lalo_pid" ]; then kill "$lalo_pid" 2>/dev/null; wait "$lalo_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "FAIL run_all: $*"; echo "0 passed, 1 failed"; exit 1; }

wait_port() {  # host port seconds
  python3 - "$1" "$2" "$3" <<'EOF'
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
}

if [ "$serve" = 1 ]; then
  bin="${LALO_BIN:-$repo/target/debug/lalo}"
  [ -x "$bin" ] || die "no lalo binary at $bin (build it or set LALO_BIN)"
  http_port=$((port + 1))
  (cd "$repo" && LALO_SERVER_LISTEN="127.0.0.1:$port" LALO_SERVER_HTTP_LISTEN="127.0.0.1:$http_port" \
    LALO_GOVERNANCE_AUDIT_LOG="$work/audit.log" exec "$bin" serve) >"$work/lalo.log" 2>&1 &
  lalo_pid=$!
  wait_port "$host" "$port" 60 || { tail -20 "$work/lalo.log"; die "lalo did not listen on $host:$port"; }
fi

# --- prerequisites: install what is missing, or fail saying what is missing -------------------
if ! python3 -c "import psycopg, psycopg2, asyncpg, sqlalchemy, pandas" 2>/dev/null; then
  echo "# installing Python client libraries from tests/clients/requirements.txt"
  python3 -m pip install -q -r "$here/requirements.txt" \
    || python3 -m pip install -q --break-system-packages -r "$here/requirements.txt" \
    || die "Python client libraries missing (pip install -r tests/clients/requirements.txt)"
fi
if [ ! -d "$here/node/node_modules/pg" ]; then
  command -v npm >/dev/null || die "npm missing (apt-get install -y nodejs npm)"
  (cd "$here/node" && npm install --no-audit --no-fund >/dev/null 2>&1) || die "npm install in tests/clients/node failed"
fi
if [ ! -f "$jar" ] || ! command -v javac >/dev/null; then
  echo "# installing libpostgresql-jdbc-java default-jdk-headless"
  apt-get install -y libpostgresql-jdbc-java default-jdk-headless >/dev/null 2>&1 \
    || die "PgJDBC or a JDK missing (apt-get install -y libpostgresql-jdbc-java default-jdk-headless)"
fi

# --- the clients -------------------------------------------------------------------------------
out="$work/out.txt"
status=0

python3 "$here/python_clients.py" --host "$host" --port "$port" --user "$user" --password "$password" \
  --database "$db" 2>&1 | tee -a "$out"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

(cd "$here/node" && timeout 600 node node_pg.js "$host" "$port" "$user" "$password" "$db") 2>&1 | tee -a "$out"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

if javac -encoding UTF-8 -cp "$jar" -d "$work/jdbc" "$here/jdbc/JdbcClient.java" >"$work/javac.log" 2>&1; then
  timeout 600 java -cp "$jar:$work/jdbc" JdbcClient "$host" "$port" "$user" "$password" "$db" 2>&1 | tee -a "$out"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
else
  cat "$work/javac.log"
  echo "FAIL jdbc: compile JdbcClient.java: javac failed" | tee -a "$out"
  status=1
fi

# --- tally -------------------------------------------------------------------------------------
echo "# tally per client"
awk '
  /^ok /   { split($2, a, ":"); ok[a[1]]++; seen[a[1]] = 1; total_ok++ }
  /^FAIL / { split($2, a, ":"); bad[a[1]]++; seen[a[1]] = 1; total_bad++ }
  END {
    for (c in seen) printf "#   %-11s %3d ok, %3d failed\n", c, ok[c], bad[c]
    printf "%d passed, %d failed\n", total_ok, total_bad
  }' "$out"
if grep -q '^FAIL ' "$out"; then status=1; fi
exit "$status"
