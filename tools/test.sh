#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts every real backend the tests
# use (tools/backends/up.sh), builds the virtualenv, then runs, in order:
#   1. lint + types (ruff, mypy --strict on stackcore/), the Sphinx docs with -W,
#   2. conformance: every installed driver against its family suite (tests/conformance/configs),
#      and the third-party template (examples/) installed out of tree in its own tox env,
#   3. unit + functional tests (one pytest run; its summary is the last line printed).
# Skips are reported with -rs: only "this kernel lacks X" skips are acceptable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }

stamp "backends"
tools/backends/up.sh
# shellcheck disable=SC1091
. /var/lib/stackcore-backends/env.sh

stamp "virtualenv"
tools/setup-venv.sh --drivers

stamp "lint and types"
.venv/bin/ruff check stackcore drivers tests benchmarks doc/source/_ext
.venv/bin/mypy stackcore
.venv/bin/mypy --strict drivers/stackcore_drivers

stamp "docs (warnings are errors)"
.venv/bin/sphinx-build -W --keep-going -q -b html doc/source doc/build/html

stamp "conformance"
.venv/bin/stackcore conformance --config-dir tests/conformance/configs \
  --results .stackcore-conformance
.venv/bin/stackcore matrix --results .stackcore-conformance

stamp "third-party driver template, installed out of tree, against the kit"
template=$(mktemp -d)
cp -r examples/stackcore-example-driver/. "$template"
STACKCORE_SRC="$PWD" .venv/bin/tox -q -c "$template/tox.ini" -e conformance
rm -rf "$template"

stamp "unit and functional tests"
.venv/bin/pytest -rs -p no:cacheprovider tests "$@"
