#!/usr/bin/env bash
# Install the virtual environment at the versions pinned in uv.lock, editable (the server and the client).
#   scripts/install.sh run    the runtime only: what the service needs, no test, browser or lint tools
#   scripts/install.sh test   the runtime and the `test` group (which includes `lint`)
#   scripts/install.sh lock   after an edit of the dependencies: pin them anew in uv.lock, and export the
#                             lock as the requirements files (requirements/*.txt) pip installs from
# With uv (from PATH, else installed from PyPI into .venv-uv/ by pip); with pip from the requirements files
# exported from the lock (requirements/) when uv cannot be had, or when FITEXPLAIN_INSTALLER=pip.
# Environment: VENV (default .venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:?usage: scripts/install.sh run|test}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
UV_HOME=.venv-uv

say() { printf '\n==> %s\n' "$*"; }

find_uv() {
  if [ "${FITEXPLAIN_INSTALLER:-uv}" = pip ]; then return 1; fi
  if command -v uv >/dev/null 2>&1; then command -v uv; return 0; fi
  if [ -x "$UV_HOME/bin/uv" ]; then echo "$UV_HOME/bin/uv"; return 0; fi
  say "installing uv from PyPI into $UV_HOME/ (the installer; once)" >&2
  if "$PYTHON" -m venv "$UV_HOME" >&2 && "$UV_HOME/bin/pip" install --disable-pip-version-check 'uv>=0.5' >&2
  then
    echo "$UV_HOME/bin/uv"
    return 0
  fi
  rm -rf "$UV_HOME"
  echo "uv could not be installed; installing with pip instead" >&2
  return 1
}

if [ "$what" = lock ]; then
  uv=$(find_uv) || { echo "locking needs uv" >&2; exit 1; }
  "$uv" lock
  "$uv" export --quiet --frozen --no-emit-workspace -o requirements/run.txt
  "$uv" export --quiet --frozen --no-emit-workspace --group test -o requirements/test.txt
elif uv=$(find_uv); then
  case $what in
    # --inexact: a development environment keeps the test tools `make test` put there.
    run) groups=(--inexact) ;;
    test) groups=(--group test) ;;
    *) echo "unknown: $what" >&2; exit 2 ;;
  esac
  say "installing the $what environment into $VENV with $("$uv" --version) (versions from uv.lock)"
  # --locked: refuse a lock that no longer matches pyproject.toml rather than resolve anew.
  UV_PROJECT_ENVIRONMENT=$VENV UV_PYTHON_DOWNLOADS=never \
    "$uv" sync --locked --python "$PYTHON" "${groups[@]}"
else
  say "installing the $what environment into $VENV with pip (versions from requirements/$what.txt)"
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "requirements/$what.txt"
  # The two packages themselves, editable: the client owns the `fitexplain` command, the server adds its
  # subcommands through the `fitexplain.commands` entry-point group.
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps -e ./clients/python -e .
fi
