#!/usr/bin/env bash
# Tier "lint": ruff, mypy on the core, mypy --strict on the drivers, the import-linter layer
# contracts of setup.cfg (each runs even if an earlier one failed).  Alone: bash tools/tiers/lint.sh   (needs .venv: tools/setup-venv.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier lint

step "ruff" .venv/bin/ruff check stackcore drivers tests benchmarks examples doc/source/_ext
step "mypy core" .venv/bin/mypy stackcore
step "mypy drivers" .venv/bin/mypy --strict drivers/stackcore_drivers
step "layer contracts (lint-imports)" .venv/bin/lint-imports
