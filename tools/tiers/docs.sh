#!/usr/bin/env bash
# Tier "docs": the Sphinx HTML docs, warnings are errors. The published support matrix is built
# from the conformance results of this run (.stackcore-conformance/, written by the conformance
# tier, which tools/test.sh runs first) and names that run; when $STACKCORE_CONFORMANCE_RUN is
# set (tools/test.sh sets it), results of any other run are an error.
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
step "docs (warnings are errors)" \
  .venv/bin/sphinx-build -W --keep-going -q -b html doc/source doc/build/html
