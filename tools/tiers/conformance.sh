#!/usr/bin/env bash
# Tier "conformance": every installed driver against its family suite and its real backend
# (tests/conformance/configs), then the support matrix from those results.
# Alone: bash tools/tiers/conformance.sh   (needs .venv with the drivers,
# tools/setup-venv.sh --drivers, and the backends, tools/backends/up.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier conformance

step "conformance" .venv/bin/stackcore conformance --config-dir tests/conformance/configs \
  --results .stackcore-conformance
step "support matrix" .venv/bin/stackcore matrix --results .stackcore-conformance
