"""Instance events: what another family tells the compute service about a server's resources.

Nova has one door for this, ``os-server-external-events``: Cinder posts ``volume-extended``
there after growing an attached volume, Neutron ``network-vif-plugged``; the compute host of
the server then acts on it. This module is that door here, as an RPC cast to the compute
service of the server's host (topic ``compute``, API 1.3, method
``external_instance_event``). It lives in the RPC layer, not in the compute family, because
the families below compute (volume, network) may not import compute (import-linter's
``families-layered`` contract): both sides import the event names and the sender from here.

Delivery is best effort, as Nova's: the event carries no state (the compute service reads
the volume's size itself), a lost one only means the guest sees the change at its next
power cycle, and sending never fails the operation that caused it (it is logged).
"""

from __future__ import annotations

import logging

from stackcore.rpc.base import Target, Transport

LOG = logging.getLogger(__name__)

#: the compute service's RPC topic (its manager listens on ``compute`` with server = host)
COMPUTE_TOPIC = "compute"
#: the compute API version that has ``external_instance_event``
VERSION = "1.3"

#: an attached volume grew: the hypervisor should show the guest its new size
#: (``tag``: the volume id)
VOLUME_EXTENDED = "volume-extended"

#: every event name the compute service handles
EVENT_NAMES = (VOLUME_EXTENDED,)


def send(transport: Transport, host: str, instance_uuid: str, name: str, tag: str) -> None:
    """Cast event ``name`` (one of :data:`EVENT_NAMES`) about ``tag`` to the compute service
    of ``host`` for server ``instance_uuid``. Never raises: a failure is logged."""
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown instance event {name!r} (known: {', '.join(EVENT_NAMES)})")
    target = Target(COMPUTE_TOPIC, server=host, version=VERSION)
    try:
        transport.client(target).cast("external_instance_event", instance_uuid=instance_uuid,
                                      name=name, tag=tag)
    except Exception as err:  # noqa: BLE001 - an event never fails its cause
        LOG.warning("could not send %s (%s) to server %s on %s: %s", name, tag,
                    instance_uuid, host, err)
