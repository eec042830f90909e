#!/bin/sh
# Container entrypoint (also usable on a VM): wait for the database, apply migrations,
# then run gunicorn -- or whatever command was given (`docker compose run app1 flask users list`).
#
#   DB_WAIT_TIMEOUT  seconds to wait for the database (60)
#   RUN_MIGRATIONS   "true" (default) runs `flask db upgrade` before gunicorn starts; set
#                    "false" on every instance but one, so replicas never migrate at once
set -eu

if [ "$#" -eq 0 ]; then
    set -- gunicorn --config gunicorn.conf.py
fi

# Connects with the app's own URL handling (config.database_uri). The error names the
# exception only: DATABASE_URL holds a password.
python - <<'PY'
import os
import sys
import time

import sqlalchemy as sa

from config import Config, database_uri

url = database_uri(os.environ.get("DATABASE_URL", Config.DATABASE_URL))
timeout = float(os.environ.get("DB_WAIT_TIMEOUT", "60"))
connect_args = {"connect_timeout": 3} if url.startswith("postgresql") else {}
engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
deadline = time.monotonic() + timeout
while True:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        break
    except sa.exc.OperationalError as error:
        if time.monotonic() >= deadline:
            print(f"entrypoint: database unreachable after {timeout:.0f}s "
                  f"({type(error.orig).__name__})", file=sys.stderr)
            sys.exit(1)
        time.sleep(1)
PY

if [ "$1" = gunicorn ] && [ "${RUN_MIGRATIONS:-true}" = true ]; then
    flask db upgrade
fi

exec "$@"
