#!/usr/bin/env bash
# Create .venv (if missing) and install aios-core, the first-party plugins and the test tools.
# Needs only Python 3.11+ and pip; every install goes through constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "AIOS needs Python 3.11 or newer (found $("$PYTHON" --version 2>&1)); set PYTHON=python3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PLUGINS=(plugins/aios-data plugins/aios-torch plugins/aios-onnx-quant plugins/aios-serve plugins/aios-tf plugins/aios-ray-train)
args=(-e .)
for plugin in "${PLUGINS[@]}"; do args+=(-e "$plugin"); done
echo "setup: installing aios-core, ${PLUGINS[*]##*/} and test tools into .venv (first time: a few minutes)" >&2
# This machine's pip configuration names local mirrors that may be absent; drop pip's warnings about them.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt "${args[@]}" -r requirements-dev.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
