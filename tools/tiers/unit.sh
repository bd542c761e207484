#!/usr/bin/env bash
# Tier "unit": the unit and functional tests, one pytest run; arguments go to pytest.
# Skips are listed (-rs): only "this kernel lacks X" is allowed.
# Alone: bash tools/tiers/unit.sh [PYTEST ARGS]   (needs .venv with the drivers,
# tools/setup-venv.sh --drivers, and the backends, tools/backends/up.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier unit

step "unit and functional tests" .venv/bin/pytest -rfEs -p no:cacheprovider tests "$@"
