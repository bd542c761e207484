#!/usr/bin/env bash
# Tier "template": the third-party driver template (examples/stackcore-example-driver), copied
# out of the tree, runs the conformance kit in its own tox env.
# Alone: bash tools/tiers/template.sh   (needs .venv with tox: tools/setup-venv.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier template

template_conformance() {
  local dir rc
  dir=$(mktemp -d)
  cp -r examples/stackcore-example-driver/. "$dir"
  STACKCORE_SRC="$PWD" .venv/bin/tox -q -c "$dir/tox.ini" -e conformance
  rc=$?
  # The distribution is ours: "stackcore" on the public index is an unrelated project, so the
  # template's env must hold stackcore-framework and no "stackcore" distribution at all.
  if [ "$rc" -eq 0 ]; then
    "$dir/.tox/conformance/bin/python" -m pip show -q stackcore-framework >/dev/null ||
      { echo "!! stackcore-framework is not installed in the template's env"; rc=1; }
    if "$dir/.tox/conformance/bin/python" -m pip show -q stackcore >/dev/null 2>&1; then
      echo "!! a distribution named 'stackcore' is installed in the template's env"; rc=1
    fi
  fi
  rm -rf "$dir"
  return $rc
}
step "third-party driver template, out of tree, against the kit" template_conformance
