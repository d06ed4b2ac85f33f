#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (kernel, plugins, template, registry, docs build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The registry catalog test drives a real headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's chromium for the catalog page test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "test: could not install chromium; the catalog page test will be skipped" >&2
fi
exec .venv/bin/python -m pytest tests plugins/*/tests "$@"
