#!/usr/bin/env bash
# Create .venv (if missing) and install (again only when a requirement changed) the kernel (aios-kernel), the first-party plugins and the test tools,
# all from this checkout (none of them is published on PyPI yet).
# Needs only Python 3.11+ and pip; every install goes through constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "AIOS needs Python 3.11 or newer (found $("$PYTHON" --version 2>&1)); set PYTHON=python3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PLUGINS=(plugins/aios-data plugins/aios-torch plugins/aios-onnx-quant plugins/aios-serve plugins/aios-tf plugins/aios-ray-train plugins/aios-kubeflow plugins/aios-mlflow plugins/aios-optuna)
args=(-e .)
for plugin in "${PLUGINS[@]}"; do args+=(-e "$plugin"); done
# pip takes over a minute even when everything is installed; the installs are editable, so only what pip
# reads can make another install necessary: this script, the constraints, the requirements and the
# pyproject.toml files. Their digest is stamped into .venv after an install that succeeded.
stamp=.venv/.aios-setup-digest
digest=$(cat scripts/setup.sh constraints.txt requirements-dev.txt pyproject.toml "${PLUGINS[@]/%//pyproject.toml}" \
  | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -z "${AIOS_SETUP_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  echo "setup: .venv is up to date with this checkout's requirements (AIOS_SETUP_FORCE=1 reinstalls)" >&2
  exit 0
fi
rm -f "$stamp"
# The kernel's distribution was called aios-core until it was renamed (on PyPI that name is another
# project); a .venv made before then still holds that copy, which would register the kernel's monitors twice.
if .venv/bin/python -m pip show --quiet aios-core >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall --quiet --yes aios-core
fi
echo "setup: installing aios-kernel, ${PLUGINS[*]##*/} and test tools into .venv (first time: a few minutes)" >&2
# This machine's pip configuration names local mirrors that may be absent; drop pip's warnings about them.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt "${args[@]}" -r requirements-dev.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "$digest" > "$stamp"
