#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts every real backend the tests
# use (tools/backends/up.sh), builds the virtualenv, then runs the tiers, one script each in
# tools/tiers/ (each also runs on its own: bash tools/tiers/NAME.sh), in this order:
#   lint         ruff, mypy on stackcore/, mypy --strict on the drivers
#   conformance  every installed driver against its family suite (tests/conformance/configs),
#                then the support matrix; the results carry this run's id
#   template     every third-party template (examples/, one per family) out of tree in its own
#                tox env, all installing from one local wheelhouse built once
#   unit         unit + functional tests as two pytest runs at the same time (in-process and
#                backend tests; this script's arguments, a subset, go to a single run), with
#                the conformance kit's meta-test against the zoo of broken drivers
#   guest        the tests needing a full kernel, in one nested guest (Debian's kernel under
#                QEMU TCG), and the lvm conformance suite there (alongside the others); after
#                unit, whose load must not run at the same time
#   docs         the Sphinx docs with -W; last, because the published support matrix is built
#                from the conformance results of this very run (lvm's from the guest included)
# Backends and virtualenv stop the run if they fail.  Every tier runs even if an earlier one
# failed (as does every step inside a tier), so one run reports everything; each tier prints
# its time, the run ends with a summary of the tiers' times and failures, and the exit status
# is non-zero if any tier failed.  Skips are listed (-rs): only "this kernel lacks X" is allowed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

TIERS=(lint conformance template unit guest docs)   # tools/tiers/NAME.sh

started=$(date +%s)
# One id for this run: the conformance results carry it, the docs publish the matrix of it.
export STACKCORE_CONFORMANCE_RUN="${STACKCORE_CONFORMANCE_RUN:-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ)}"
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }

# Without the backends and the virtualenv nothing else can run: these two stop the run.
stamp "backends"
tools/backends/up.sh || exit 1
# shellcheck disable=SC1091
. /var/lib/stackcore-backends/env.sh
stamp "virtualenv"
tools/setup-venv.sh --drivers || exit 1

names=("backends + virtualenv") times=("$(( $(date +%s) - started ))") results=("")
failed=()
for tier in "${TIERS[@]}"; do
  stamp "tier ${tier}"
  args=()
  if [ "$tier" = unit ]; then args=("$@"); fi
  t0=$(date +%s)
  if bash "tools/tiers/${tier}.sh" "${args[@]}"; then
    results+=("")
  else
    results+=("FAILED")
    failed+=("$tier")
  fi
  names+=("$tier")
  times+=("$(( $(date +%s) - t0 ))")
done

stamp "done"
echo "== summary"
for i in "${!names[@]}"; do
  printf '   %-22s %5d s%s\n' "${names[i]}" "${times[i]}" "${results[i]:+  ${results[i]}}"
done
printf '   %-22s %5d s\n' "total" "$(( $(date +%s) - started ))"
if [ ${#failed[@]} -gt 0 ]; then
  printf '!! failed tiers: %s\n' "${failed[*]}"
  exit 1
fi
