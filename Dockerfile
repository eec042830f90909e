# auth_service: gunicorn serving wsgi:app, behind nginx (docker-compose.yml).
#
#   docker build -t auth_service .
#   docker run --env-file prod.env -p 127.0.0.1:8000:8000 auth_service
#
# No secret is baked in: SECRET_KEY, JWT_SECRET_KEY and DATABASE_URL come from the
# environment at run time, and the production config refuses to start without them.

# --- build: dependencies into a virtualenv (binary wheels, or pure-Python sdists), every
# file checked against its hash in the lock (requirements.txt, compiled by `make lock`)
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt

# --- runtime: the virtualenv, the code, an unprivileged user
FROM python:3.11.13-slim-bookworm AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=wsgi:app \
    APP_ENV=production \
    GUNICORN_BIND=0.0.0.0:8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY auth_service ./auth_service
COPY migrations ./migrations
COPY config.py wsgi.py gunicorn.conf.py ./
COPY deploy/docker-entrypoint.sh ./deploy/docker-entrypoint.sh
# The code stays root-owned (read-only to the app); only instance/ is writable.
RUN mkdir -p /app/instance && chown app:app /app/instance \
    && chmod 0755 /app/deploy/docker-entrypoint.sh

USER app
EXPOSE 8000

# Liveness only (no database): a database outage answers 503 from /readyz and must not
# get healthy containers restarted.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ['GUNICORN_BIND'].split(',')[0].rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]

ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
