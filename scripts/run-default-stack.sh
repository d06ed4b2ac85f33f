#!/usr/bin/env bash
# README command 1: set up, then run the bundled default stack (digits -> CNN -> ONNX -> int8).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/aios run "$@"
