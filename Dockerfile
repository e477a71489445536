# fitexplain: one image for every role (api, worker, migrate, serve). See docker-compose.yml.
#   docker build -t fitexplain .
#   docker run --rm -p 8000:8000 fitexplain fitexplain serve --host 0.0.0.0   # all-in-one, embedded SQLite
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
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

# Dependencies first, in their own layer: editing the code does not reinstall the ML stack.
# (README.m[d]: copied when present, as pyproject.toml names it as the long description.)
COPY pyproject.toml README.m[d] ./
COPY clients/python/pyproject.toml ./clients/python/
# The s3 extra (s3fs) too: FITEXPLAIN_STORAGE_URL may name an S3 bucket.
RUN python -c "import tomllib; p = [tomllib.load(open(f, 'rb'))['project'] for f in ('pyproject.toml', 'clients/python/pyproject.toml')]; print('\n'.join([*p[0]['dependencies'], *p[0]['optional-dependencies']['s3'], *p[1]['dependencies']]))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alembic.ini ./
COPY migrations ./migrations
COPY shared ./shared
COPY api ./api
COPY worker ./worker
COPY cli ./cli
COPY clients/python ./clients/python

# One pip command for both: the client package owns the `fitexplain` command, the server adds its
# subcommands (serve, api, worker, ...) through the `fitexplain.commands` entry-point group.
# Editable on purpose: `fitexplain migrate` finds alembic.ini and migrations/ next to shared/
# (shared/store/migrate.py REPO_ROOT), which a plain `pip install .` into site-packages would lose.
# The sources stay owned by root: the service cannot rewrite its own code.
RUN pip install --no-deps -e ./clients/python -e . \
    && python -m compileall -q api worker shared cli migrations clients/python/fitexplain_client

USER 10001:10001

EXPOSE 8000

# Liveness only (no database or broker check: /readyz does that). Slim has no curl; the probe ignores
# HTTP(S)_PROXY, which would otherwise route 127.0.0.1 through a proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('FITEXPLAIN_PORT', '8000'), timeout=4)"]

CMD ["fitexplain", "api", "--host", "0.0.0.0"]
