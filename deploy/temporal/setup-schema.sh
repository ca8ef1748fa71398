#!/bin/sh
# Temporal's schema in PostgreSQL, run by the `temporal-schema` job (temporalio/admin-tools) before the
# server starts, on every `docker compose up`: safe to run again. The databases themselves
# (`temporal`, `temporal_visibility`) are made by the postgres image at its first start
# (POSTGRES_DB, deploy/postgres/init-databases.sh), so nothing here creates one.
#
# setup-schema -v 0.0 only stamps an empty database (it skips one already past 0.0), and
# update-schema applies the versions after the database's own from the admin-tools image's
# schema directory: after an upgrade of the images (docs/deployment.md), this is the schema upgrade.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER names the PostgreSQL user}"
: "${SQL_PASSWORD:?SQL_PASSWORD is the PostgreSQL password (temporal-sql-tool reads it)}"
port="${DB_PORT:-5432}"
schema=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for database in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
    name="${database%%:*}"
    versions="$schema/${database##*:}/versioned"
    echo "Temporal schema in database $name, from $versions"
    sql_tool --db "$name" setup-schema -v 0.0
    sql_tool --db "$name" update-schema -d "$versions"
done
echo "Temporal schema up to date"
