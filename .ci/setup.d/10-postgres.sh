#!/usr/bin/env bash
# Start Debian's PostgreSQL cluster and create the test database used by tests marked `postgres`.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q online; then
  pg_lsclusters -h | grep -q . || pg_createcluster "$ver" main >/dev/null
  pg_ctlcluster "$ver" main start
fi
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='stockade'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE stockade LOGIN PASSWORD 'stockade'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='stockade_test'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE DATABASE stockade_test OWNER stockade\""
