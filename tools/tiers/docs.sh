#!/usr/bin/env bash
# Tier "docs": the Sphinx HTML docs, warnings are errors.
# Alone: bash tools/tiers/docs.sh   (needs .venv: tools/setup-venv.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier docs

step "docs (warnings are errors)" \
  .venv/bin/sphinx-build -W --keep-going -q -b html doc/source doc/build/html
