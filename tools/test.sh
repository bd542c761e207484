#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts every real backend the tests
# use (tools/backends/up.sh), builds the virtualenv, then runs, in order:
#   1. lint + types (ruff, mypy --strict on stackcore/ and the drivers), the Sphinx docs with -W,
#   2. conformance: every installed driver against its family suite (tests/conformance/configs),
#      and the third-party template (examples/) installed out of tree in its own tox env,
#   3. unit + functional tests (one pytest run; its summary is the last line printed).
# Every step runs even if an earlier one failed, so one run reports everything; the exit status
# is non-zero if any step failed. Skips are listed (-rs): only "this kernel lacks X" is allowed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
failed=()
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }
step() {  # step NAME COMMAND...: run, remember a failure, carry on
  local name=$1
  shift
  stamp "$name"
  "$@" || { echo "!! step failed: $name"; failed+=("$name"); }
}

# Without the backends and the virtualenv nothing else can run: these two stop the run.
stamp "backends"
tools/backends/up.sh || exit 1
# shellcheck disable=SC1091
. /var/lib/stackcore-backends/env.sh
stamp "virtualenv"
tools/setup-venv.sh --drivers || exit 1

step "ruff" .venv/bin/ruff check stackcore drivers tests benchmarks examples doc/source/_ext
step "mypy core" .venv/bin/mypy stackcore
step "mypy drivers" .venv/bin/mypy --strict drivers/stackcore_drivers
step "docs (warnings are errors)" \
  .venv/bin/sphinx-build -W --keep-going -q -b html doc/source doc/build/html
step "conformance" .venv/bin/stackcore conformance --config-dir tests/conformance/configs \
  --results .stackcore-conformance
step "support matrix" .venv/bin/stackcore matrix --results .stackcore-conformance

template_conformance() {
  local dir rc
  dir=$(mktemp -d)
  cp -r examples/stackcore-example-driver/. "$dir"
  STACKCORE_SRC="$PWD" .venv/bin/tox -q -c "$dir/tox.ini" -e conformance
  rc=$?
  rm -rf "$dir"
  return $rc
}
step "third-party driver template, out of tree, against the kit" template_conformance

step "unit and functional tests" .venv/bin/pytest -rfEs -p no:cacheprovider tests "$@"

stamp "done"
if [ ${#failed[@]} -gt 0 ]; then
  printf '!! failed steps: %s\n' "${failed[*]}"
  exit 1
fi
