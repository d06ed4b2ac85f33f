#!/usr/bin/env bash
# The plugin stage of README command 2 alone: set up .venv, then test each first-party plugin from its wheel in
# fresh venvs (scripts/plugin_suites.py). Arguments go to that script: --only aios-torch, --jobs 1, -- -x ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/plugin_suites.py "$@"
