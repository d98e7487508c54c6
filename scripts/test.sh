#!/usr/bin/env bash
# The test command: set up what is missing, start PostgreSQL if no DATABASE_URL is given,
# and run the whole suite against it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system
if [[ -z ${DATABASE_URL:-} ]]; then
  DATABASE_URL=$(scripts/pg.sh start)
  export DATABASE_URL
fi
# Said without its user and password: only the scheme and where the database is.
if [[ $DATABASE_URL == *@* ]]; then
  echo "==> tests against ${DATABASE_URL%%://*}://…@${DATABASE_URL##*@}"
else
  echo "==> tests against $DATABASE_URL"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Live-server threads would otherwise keep connections to the test database open.
export DATABASE_CONN_MAX_AGE=0
exec .venv/bin/python -m pytest "$@"
