# shellcheck shell=bash
# Shared by the tiers tools/tiers/*.sh (sourced, never run): the repository root as working
# directory, the backends' variables, and the bookkeeping of steps and of the tier's time.
#
#   tier NAME          first: names the tier and starts its clock; when the script ends it
#                      prints "== tier NAME: N s" (plus the failed steps) and exits 1 if a
#                      step failed
#   step NAME CMD...   run CMD; a failure is remembered and the next step still runs

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

# The variables of the backends that tools/backends/up.sh started: tools/test.sh has already
# sourced them, a tier run on its own needs them too.
TIER_BACKENDS_ENV="${STACKCORE_BACKENDS_STATE:-/var/lib/stackcore-backends}/env.sh"
if [ -f "$TIER_BACKENDS_ENV" ]; then
  # shellcheck disable=SC1090
  . "$TIER_BACKENDS_ENV"
fi

TIER_NAME=""
TIER_FAILED=()

tier() {
  TIER_NAME=$1
  SECONDS=0
  trap tier_end EXIT
}

tier_end() {
  local rc=$?
  if [ ${#TIER_FAILED[@]} -gt 0 ]; then
    local steps
    steps=$(printf '%s, ' "${TIER_FAILED[@]}")
    echo "== tier ${TIER_NAME}: ${SECONDS} s, FAILED (${steps%, })"
    exit 1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "== tier ${TIER_NAME}: ${SECONDS} s, FAILED (exit status ${rc})"
    exit "$rc"
  fi
  echo "== tier ${TIER_NAME}: ${SECONDS} s"
}

step() {
  local name=$1
  shift
  echo "== [${TIER_NAME} +${SECONDS}s] ${name}"
  "$@" || { echo "!! step failed: ${name}"; TIER_FAILED+=("$name"); }
}
