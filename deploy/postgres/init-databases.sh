#!/bin/sh
# Run by the postgres image once, when it initialises an empty data directory (mounted into
# /docker-entrypoint-initdb.d by docker-compose.yml), after it has made POSTGRES_USER (`temporal`,
# the superuser) and POSTGRES_DB (`temporal`, Temporal's own database):
#
#   temporal_visibility     Temporal's visibility store
#   orderops (role)         the warehouse store's login, password ORDEROPS_DB_PASSWORD
#   orderops (database)     the warehouse store (ORDEROPS_STORE_URL), owned by that role; the first
#                           worker creates its tables (activities/migrations)
#
# Later starts skip this file: on a data directory made before it, run these statements by hand.
# The image sources it rather than running it when it is not executable: it sets no shell options
# and does not exit, and fails (stopping the initialisation) when ORDEROPS_DB_PASSWORD is unset.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set orderops_password="${ORDEROPS_DB_PASSWORD:?the orderops role needs ORDEROPS_DB_PASSWORD}" <<'SQL'
CREATE DATABASE temporal_visibility;
CREATE ROLE orderops LOGIN PASSWORD :'orderops_password';
CREATE DATABASE orderops OWNER orderops;
-- Only their owner (temporal) connects to Temporal's databases; the orderops role to its own.
REVOKE CONNECT ON DATABASE temporal FROM PUBLIC;
REVOKE CONNECT ON DATABASE temporal_visibility FROM PUBLIC;
REVOKE CONNECT ON DATABASE orderops FROM PUBLIC;
SQL
