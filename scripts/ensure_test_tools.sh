#!/usr/bin/env bash
# The tools that only the slow tiers use: Debian's Chromium (the dashboard's browser tests) and R (the R
# client's test). `make test` installs them when missing; `make test-fast` does not need them.
set -euo pipefail

source "$(dirname "$0")/apt.sh"

# Chromium for the dashboard's browser tests (Playwright drives Debian's build: it cannot download its own)
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium"
  apt_install chromium
fi

# R, for the R client's test (tests/service/test_client_r.py): Debian's R with httr and jsonlite.
if ! command -v Rscript >/dev/null 2>&1; then
  echo "installing R (r-base-core, r-cran-httr, r-cran-jsonlite)"
  apt_install r-base-core r-cran-httr r-cran-jsonlite
elif ! Rscript -e 'library(httr); library(jsonlite)' >/dev/null 2>&1; then
  echo "installing r-cran-httr and r-cran-jsonlite"
  apt_install r-cran-httr r-cran-jsonlite
fi
