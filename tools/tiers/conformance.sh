#!/usr/bin/env bash
# Tier "conformance": every installed driver against its family suite and its real backend
# (tests/conformance/configs), then the support matrix from those results.
#
# The results (.stackcore-conformance/, emptied first: only this run's) carry the run id
# $STACKCORE_CONFORMANCE_RUN (tools/test.sh sets it; the docs tier then publishes the matrix of
# exactly this run). Suites run three at a time, the real-backend ones first.
# Alone: bash tools/tiers/conformance.sh   (needs .venv with the drivers,
# tools/setup-venv.sh --drivers, and the backends, tools/backends/up.sh)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tier conformance

RESULTS=.stackcore-conformance
export STACKCORE_CONFORMANCE_RUN="${STACKCORE_CONFORMANCE_RUN:-local-$(date -u +%Y%m%dT%H%M%SZ)}"

# The L2 agent suites wire real backends of their own, never the host's: the Open vSwitch agent
# an ovsdb-server + ovs-vswitchd instance of its own (in its own network namespace), the Linux
# bridge agent a network namespace with a veth "NIC" for physnet1 (this kernel has no dummy
# or 802.1q devices; the suite uses flat networks).
agent_backends() {
  local sock ns=sc-conformance-lb
  sock=$(bash tools/backends/ovs-instance.sh sc-conformance | tail -n 1) || return 1
  export STACKCORE_CONFORMANCE_OVSDB="$sock"
  ip netns list | grep -qx "$ns\( .*\)\?" || ip netns add "$ns" || return 1
  if ! ip -n "$ns" link show eth-phys0 >/dev/null 2>&1; then
    ip -n "$ns" link add eth-phys0 type veth peer name eth-phys0p || return 1
  fi
  ip -n "$ns" link set eth-phys0 up && ip -n "$ns" link set eth-phys0p up || return 1
  export STACKCORE_CONFORMANCE_LB_NETNS="$ns"
}

rm -rf "$RESULTS"
step "agent backends (OVS instance, Linux bridge namespace)" agent_backends
# volume:lvm needs device-mapper, which this kernel lacks: the guest tier runs it in the
# full-kernel guest (tests/conformance/configs/guest) and adds its result to the matrix.
step "conformance (run ${STACKCORE_CONFORMANCE_RUN})" .venv/bin/stackcore conformance \
  --config-dir tests/conformance/configs --exclude volume:lvm --results "$RESULTS" \
  --run "$STACKCORE_CONFORMANCE_RUN" --jobs 3
step "support matrix" .venv/bin/stackcore matrix --results "$RESULTS"
