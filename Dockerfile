# fitexplain: one image for every role (api, worker, migrate, serve). See docker-compose.yml.
#   docker build -t fitexplain .
#   docker run --rm -p 8000:8000 fitexplain fitexplain serve --host 0.0.0.0   # all-in-one, embedded SQLite
FROM python:3.11-slim

# The environment is /opt/venv, installed by uv at the versions in uv.lock (as `make run` installs .venv).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/opt/venv/bin:$PATH \
    FITEXPLAIN_HOME=/var/lib/fitexplain

# LightGBM's wheel links the system OpenMP runtime (libgomp.so.1), which slim images lack.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid, so `runAsNonRoot` and volume ownership work the same everywhere.
# The home directory is writable: numba (under shap) caches compiled code there. The blobs directory
# exists in the image, so a volume mounted on it starts owned by the service's user.
RUN groupadd --system --gid 10001 fitexplain \
    && useradd --system --uid 10001 --gid fitexplain --create-home --home-dir /home/fitexplain fitexplain \
    && mkdir -p /var/lib/fitexplain/blobs \
    && chown -R fitexplain:fitexplain /var/lib/fitexplain

WORKDIR /app

# The installer, from PyPI.
RUN pip install 'uv>=0.5'

# Dependencies first, in their own layer: editing the code does not reinstall the ML stack. The runtime
# only (no test or lint group), plus the s3 extra (s3fs): FITEXPLAIN_STORAGE_URL may name an S3 bucket.
# --locked: the build fails on a lock that does not match pyproject.toml rather than resolve anew.
# (README.m[d]: copied when present, as pyproject.toml names it as the long description.)
COPY pyproject.toml uv.lock README.m[d] ./
COPY clients/python/pyproject.toml ./clients/python/
RUN uv sync --locked --extra s3 --no-install-workspace

COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY api ./api
COPY worker ./worker
COPY cli ./cli
COPY clients/python ./clients/python

# Then the two packages themselves, from the same lock: the client package owns the `fitexplain` command,
# the server adds its subcommands (serve, api, worker, ...) through the `fitexplain.commands` entry-point
# group. Editable (uv's way with a workspace's packages) on purpose: `fitexplain migrate` finds alembic.ini
# and migrations/ next to shared/ (shared/store/migrate.py REPO_ROOT), which a copy into site-packages
# would lose. The sources stay owned by root: the service cannot rewrite its own code.
RUN uv sync --locked --extra s3 \
    && python -m compileall -q api worker shared cli migrations clients/python/fitexplain_client

USER 10001:10001

EXPOSE 8000

# Liveness only (no database or broker check: /readyz does that). Slim has no curl; the probe ignores
# HTTP(S)_PROXY, which would otherwise route 127.0.0.1 through a proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('FITEXPLAIN_PORT', '8000'), timeout=4)"]

CMD ["fitexplain", "api", "--host", "0.0.0.0"]
