#!/usr/bin/env bash
# Tier "guest": the tests that need a full kernel, in ONE nested guest booted for this tier
# (tests/guest/vm.py: Debian's kernel under virtme-ng and QEMU TCG; tools/backends/README.md,
# "The full-kernel guest"): `pytest -m guest --guest` runs every test marked guest - inside the
# guest (device-mapper, thin pools, 802.1q, the OVS kernel datapath, the iSCSI initiator, the
# kernel NFS client) or driving it from the host (os-brick attaching the host's tgtd and
# nfs-ganesha exports in the guest; the e2e server wiring's lvm case: a server on the host's
# libvirt/OVS with an LV of an lvm volume service running in the guest, opened over iSCSI through
# a host forward to the guest's tgtd) - and the lvm volume conformance suite inside the guest,
# whose result joins the support matrix (printed again here, lvm included).
# Never run next to a CPU hog (the unit tier's stops with it): the guest's boot and its
# emulated CPUs need both cores.  Prints the guest's boot time and the in-guest pytest time.
# Alone: bash tools/tiers/guest.sh [PYTEST ARGS]   (needs .venv with the drivers and the
# backends including the guest's packages: tools/backends/up.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier guest

step "tests in the full-kernel guest" .venv/bin/pytest -rfEs -p no:cacheprovider --durations=30 -m guest \
  --guest --guest-results .stackcore-conformance tests "$@"
if [ -f .stackcore-conformance/volume-lvm.log ]; then  # where the lvm suite's time went
  echo "== [guest] the lvm suite's slowest tests"
  sed -n '/slowest .*durations/,/^$/p' .stackcore-conformance/volume-lvm.log
fi
step "support matrix (lvm from the guest)" .venv/bin/stackcore matrix \
  --results .stackcore-conformance
