#!/usr/bin/env bash
# Creates the read-only role lalo connects to the upstream with. The official postgres image runs
# this once, after 10-restaurants.sql, when its data volume is first initialised. The password
# comes from LALO_READER_PASSWORD (docker-compose.yml passes it; its default is for the demo only).
set -euo pipefail

: "${LALO_READER_PASSWORD:?LALO_READER_PASSWORD must be set}"
reader="${LALO_READER_USER:-lalo_reader}"

psql -v ON_ERROR_STOP=1 \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set reader="$reader" --set reader_password="$LALO_READER_PASSWORD" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
SQL
