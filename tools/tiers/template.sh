#!/usr/bin/env bash
# Tier "template": every third-party template of examples/ (one per family: hypervisor, volume,
# ML2 type, ML2 mechanism, scheduler filter/weigher, L2 agent), copied out of the tree, runs the
# conformance kit in its own tox "conformance" env (pytest); a template with a
# "conformance-stestr" env (the same kit as testtools cases under stestr) also runs `stestr run`
# in the conformance env's virtualenv (`tox exec`: a second virtualenv would cost ~30 s), which
# must write the JSON result too.
#
# stackcore-framework and every dependency are built/fetched ONCE into a local wheelhouse; the
# templates' tox envs install from it only (PIP_FIND_LINKS + PIP_NO_INDEX, which tox passes to
# pip), so the six runs neither rebuild stackcore nor reach an index, and run three at a time.
# Alone: bash tools/tiers/template.sh   (needs .venv with tox: tools/setup-venv.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier template

WORK=$(mktemp -d -t stackcore-templates-XXXXXX)
trap 'rm -rf "$WORK"; tier_end' EXIT
WHEELHOUSE="$WORK/wheelhouse"

build_wheelhouse() {
  .venv/bin/python -m pip wheel -q --wheel-dir "$WHEELHOUSE" . pytest stestr "setuptools>=69" wheel
}

# One template: copied out of the tree, its tox env from the wheelhouse only; then the env
# must hold stackcore-framework and no distribution named "stackcore" (on the public index
# that name is an unrelated project).
run_template() {
  local name=$1 dir="$WORK/$1" log="$WORK/$1.log" rc
  cp -r "examples/$name/." "$dir"
  rm -rf "$dir/.tox" "$dir/.stackcore-conformance"
  {
    PIP_FIND_LINKS="$WHEELHOUSE" PIP_NO_INDEX=1 .venv/bin/tox -q -c "$dir/tox.ini" \
      -e conformance
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^\[testenv:conformance-stestr\]' "$dir/tox.ini"; then
      rm -rf "$dir/.stackcore-conformance"
      # from the template's directory: tox exec rewrites an argument naming a path that
      # exists where it is called ("run" in /)
      (cd "$dir" && PIP_FIND_LINKS="$WHEELHOUSE" PIP_NO_INDEX=1 "$OLDPWD/.venv/bin/tox" -q \
        -c "$dir/tox.ini" exec -e conformance -- stestr run)
      rc=$?
      if [ "$rc" -eq 0 ] && ! ls "$dir"/.stackcore-conformance/*.json >/dev/null 2>&1; then
        echo "!! $name: stestr wrote no JSON result in .stackcore-conformance/"; rc=1
      fi
    fi
    if [ "$rc" -eq 0 ]; then
      "$dir/.tox/conformance/bin/python" -m pip show -q stackcore-framework >/dev/null ||
        { echo "!! stackcore-framework is not installed in $name's env"; rc=1; }
      if "$dir/.tox/conformance/bin/python" -m pip show -q stackcore >/dev/null 2>&1; then
        echo "!! a distribution named 'stackcore' is installed in $name's env"; rc=1
      fi
    fi
    return "$rc"
  } >"$log" 2>&1
}

run_templates() {
  local names=() pids=() failed=() i
  for dir in examples/*/; do names+=("$(basename "$dir")"); done
  export -f run_template
  export WORK WHEELHOUSE
  # three at a time; each one's output printed in one piece when it ends
  printf '%s\n' "${names[@]}" | xargs -P 3 -I{} bash -c 'run_template "$1"; echo $? > "$WORK/$1.rc"' _ {}
  for i in "${names[@]}"; do
    echo "== template $i: exit $(cat "$WORK/$i.rc")"
    tail -n 15 "$WORK/$i.log"
    [ "$(cat "$WORK/$i.rc")" = 0 ] || failed+=("$i")
  done
  [ ${#failed[@]} -eq 0 ] || { echo "!! templates failed: ${failed[*]}"; return 1; }
}

step "wheelhouse (stackcore-framework + dependencies, once)" build_wheelhouse
step "every template, out of tree, against the kit (from the wheelhouse)" run_templates
