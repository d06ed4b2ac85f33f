#!/usr/bin/env bash
# README command 2: set up .venv, then the whole test suite, in two stages that run side by side
# (docs/testing.md has the measurements):
#   kernel   tests/ (kernel, CLI, end-to-end runs, plugin template, registry, docs) in .venv;
#            arguments go to its pytest: bash scripts/test.sh -k lock -x
#   plugins  each first-party plugin from its wheel in fresh venvs: its contract tests with only
#            aios-kernel beside it, then its whole suite with its test extra (scripts/plugin_suites.py;
#            its output follows the kernel suite's). scripts/test-plugins.sh --only NAME runs it alone.
# AIOS_TEST_STAGES=kernel (or plugins) runs one stage; AIOS_TEST_PLUGIN_JOBS=N tests N plugins at a time.
# The time of each part is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=",${AIOS_TEST_STAGES:-kernel,plugins},"
SECONDS=0
bash scripts/setup.sh
if [[ $stages == *,kernel,* ]] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  # The registry catalog test drives a real headless Chromium (Debian's package).
  echo "test: installing Debian's chromium for the catalog page test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "test: could not install chromium; the catalog page test will be skipped" >&2
fi
setup_s=$SECONDS

plugins=skipped plugins_s=0
if [[ $stages == *,plugins,* ]]; then
  log=$(mktemp "${TMPDIR:-/tmp}/aios-plugin-stage.XXXXXX")
  # In its own session where setsid exists, so that stopping this script stops the stage's processes too.
  session=(); command -v setsid >/dev/null 2>&1 && session=(setsid --wait)
  # Two plugins at a time even beside the kernel suite: the Ray suite alone takes as long as the
  # five others in turn, and with one at a time the stage ended about 100 s after the kernel suite.
  "${session[@]}" .venv/bin/python scripts/plugin_suites.py --jobs "${AIOS_TEST_PLUGIN_JOBS:-2}" >"$log" 2>&1 &
  stage=$!
  trap 'kill -TERM -- -"$stage" 2>/dev/null || kill -TERM "$stage" 2>/dev/null || true' EXIT
  echo "test: plugin stage started beside the kernel suite (follow it: tail -f $log)"
fi

kernel=skipped kernel_s=0
if [[ $stages == *,kernel,* ]]; then
  .venv/bin/python -m pytest tests --durations=20 "$@" && kernel=passed || kernel="FAILED (exit $?)"
  kernel_s=$((SECONDS - setup_s))
fi

if [[ $stages == *,plugins,* ]]; then
  wait "$stage" && plugins=passed || plugins="FAILED (exit $?)"
  trap - EXIT
  # the stage's own duration (it may have ended before the kernel suite)
  plugins_s=$(sed -n 's/^plugin_suites: \([0-9]*\) s in all$/\1/p' "$log")
  echo
  echo "---------------- plugin stage (scripts/plugin_suites.py; log $log)"
  cat "$log"
  rm -f "$log"
fi
echo "test: set-up ${setup_s} s; kernel suite ${kernel} in ${kernel_s} s; plugin stage ${plugins} in ${plugins_s:-?} s" \
  "(both started after the set-up); ${SECONDS} s in all"
[[ $kernel != FAILED* && $plugins != FAILED* ]]
