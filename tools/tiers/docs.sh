#!/usr/bin/env bash
# Tier "docs": the Sphinx HTML docs, warnings are errors. The published support matrix is built
# from the conformance results of this run (.stackcore-conformance/, written by the conformance
# tier, which tools/test.sh runs first) and names that run; when $STACKCORE_CONFORMANCE_RUN is
# set (tools/test.sh sets it), results of any other run are an error.
# The docs are built twice: from .venv (the core and the drivers: the full reference) and from a
# core-only virtualenv (build/venv-docs-core: stackcore-framework and doc/requirements.txt, no
# drivers), which must build too. That venv is kept between runs and rebuilt only when
# setup.cfg or doc/requirements.txt change (~40 s, pip's wheel cache helps); otherwise the
# core-only build costs one more sphinx-build (~8 s of CPU; both builds use -E, see below).
# Alone: bash tools/tiers/docs.sh   (needs .venv: tools/setup-venv.sh; without results the
# matrix shows declarations only and says so)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier docs

export STACKCORE_CONFORMANCE_RESULTS="$PWD/.stackcore-conformance"

same_run() {
  local found
  if [ -z "${STACKCORE_CONFORMANCE_RUN:-}" ]; then
    echo "   (no run id given: the matrix shows whatever results are there)"
    return 0
  fi
  found=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"])' \
    "$STACKCORE_CONFORMANCE_RESULTS/run.json" 2>/dev/null) ||
    { echo "!! no conformance results of run $STACKCORE_CONFORMANCE_RUN"; return 1; }
  [ "$found" = "$STACKCORE_CONFORMANCE_RUN" ] ||
    { echo "!! results are of run $found, not $STACKCORE_CONFORMANCE_RUN"; return 1; }
  echo "   support matrix from conformance run $found"
}

step "support matrix from this run's conformance results" same_run
step "release notes (reno lint)" .venv/bin/reno -q lint
# -E: the pages are generated from what is installed and from this run's results, which Sphinx
# cannot see change; a kept environment would publish the previous run's tables.
step "docs (warnings are errors)" \
  .venv/bin/sphinx-build -E -W --keep-going -q -b html doc/source doc/build/html

CORE_VENV=build/venv-docs-core

core_only_venv() {
  local want
  want=$(cat setup.cfg doc/requirements.txt | sha256sum | cut -d' ' -f1)
  if [ -x "$CORE_VENV/bin/sphinx-build" ] && [ "$(cat "$CORE_VENV/.inputs" 2>/dev/null)" = "$want" ]; then
    echo "   reusing $CORE_VENV"
  else
    rm -rf "$CORE_VENV"
    "${PYTHON:-python3}" -m venv "$CORE_VENV" &&
      # (pip's notes about the configured find-links folders that do not exist are dropped)
      "$CORE_VENV/bin/python" -m pip install -q -e . -r doc/requirements.txt \
        2> >(grep -v "^WARNING: Location .* is ignored" >&2) || return 1
    echo "$want" >"$CORE_VENV/.inputs"
  fi
  # The point of this build: no driver distribution may be installed in it.
  "$CORE_VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sys
try:
    md.distribution("stackcore-drivers")
except md.PackageNotFoundError:
    sys.exit(0)
sys.exit("!! stackcore-drivers is installed in the core-only docs venv")
PY
}

step "core-only docs venv" core_only_venv
step "docs from a core-only install (warnings are errors)" \
  "$CORE_VENV/bin/sphinx-build" -E -W --keep-going -q -b html -d build/docs-core/.doctrees \
  doc/source build/docs-core
