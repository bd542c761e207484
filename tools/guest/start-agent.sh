#!/bin/sh
# Runs INSIDE the test guest as its first command (vng --exec): makes the host's repository and
# Python visible through a cached 9p mount, then becomes the command agent.
#
#   start-agent.sh HOST:PORT TOKEN_FILE
#
# virtme-ng mounts the host's root read-only over 9p without any cache: every stat and open
# is a round trip through QEMU's emulation and importing pytest takes ~20 s. tests/guest/vm.py
# exports the host's root a second time (mount tag "scfast"); mounted here with cache=loose
# and bound over the repository, the Python installation and /usr, the same import takes ~4 s
# and an lvm command ~0.3 s instead of ~3 s.
# Safe because the guest never writes there (read-only) and the host does not change those
# files during a test session.
set -eux   # every step on the console (tests/guest/vm.py stamps it with the host's time)
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON_HOME="$(dirname "$(dirname "$(readlink -f "${REPO}/.venv/bin/python")")")"
mkdir -p /run/scfast
if mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=524288,ro scfast /run/scfast
then
  mount --bind "/run/scfast${REPO}" "$REPO"
  mount --bind "/run/scfast${PYTHON_HOME}" "$PYTHON_HOME"
  # binaries and libraries (lvm, qemu-img, iscsiadm... each exec re-read them uncached)
  mount --bind /run/scfast/usr /usr
else
  echo "start-agent: no cached view of the host root (mount tag scfast); going on uncached" >&2
fi
# QEMU's user network, configured statically (vng --no-dhcp): the guest is 10.0.2.15, the host
# 10.0.2.2. udev may rename the NIC (eth0 -> enp0sN, despite net.ifnames=0) at any moment until
# the NIC is up - the kernel refuses to rename a device that is up - so the NIC is found by
# its driver (virtio_net), not by name, and brought up first; a rename between finding and
# raising it makes `ip link set` fail and the search start again. (A DHCP client, or an address
# set on a name udev then changed, left the guest without a network: the agent never called.)
nic=""
tries=0
while :; do
  nic=""
  for dev in /sys/class/net/*; do
    if [ "$(basename "$(readlink -f "${dev}/device/driver")")" = virtio_net ]; then
      nic="${dev##*/}"
    fi
  done
  if [ -n "$nic" ] && ip link set "$nic" up; then break; fi
  tries=$((tries + 1))
  if [ "$tries" -ge 600 ]; then
    echo "start-agent: no virtio_net NIC could be brought up in 60 s" >&2
    ip link >&2
    exit 1
  fi
  sleep 0.1
done
ip -4 addr replace 10.0.2.15/24 dev "$nic"
ip route replace default via 10.0.2.2 dev "$nic"
cd "$REPO"
exec "${REPO}/.venv/bin/python" "${REPO}/tools/guest/agent.py" --connect "$1" --token-file "$2"
