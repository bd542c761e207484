"""RPC between managers: one interface, two transports (in-process and oslo.messaging)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackcore import exception
from stackcore.rpc.base import Client, Server, Target, Transport

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["Client", "Server", "Target", "Transport", "get_transport"]


def get_transport(conf: cfg.ConfigOpts) -> Transport:
    """The transport ``[DEFAULT] transport_url`` names."""
    url = conf.transport_url or "inprocess://"
    scheme = url.split(":", 1)[0]
    if scheme == "inprocess":
        from stackcore.rpc.inprocess import InProcessTransport

        return InProcessTransport()
    if scheme in ("rabbit", "kafka", "amqp", "fake"):
        from stackcore.rpc.messaging import MessagingTransport

        return MessagingTransport(conf, url)
    raise exception.ConfigError(
        f"[DEFAULT] transport_url scheme {scheme!r} is not supported "
        "(inprocess://, rabbit://, amqp://, kafka://, fake://)"
    )
