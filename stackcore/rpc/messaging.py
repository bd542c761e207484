"""oslo.messaging transport (``rabbit://`` and friends) for services split across processes.

oslo.messaging is imported only here, and only when a non-in-process ``transport_url`` is
configured: it is heavy and the embedded default never needs it.

Every stackcore endpoint is exposed through one generic oslo endpoint whose only method carries
(method, API version, serialized kwargs) and returns the serialized envelope of
:func:`stackcore.rpc.base.dispatch`. That keeps errors, versions and the payload format exactly
as in-process, rather than relying on oslo's remote-exception reconstruction (which needs
``allowed_remote_exmods`` and positional-argument compatible exception classes).

Calls are published *mandatory* (oslo.messaging ``TransportOptions(at_least_once=True)``).
Why: services declare their queues non-durable, so right after a broker restart there is a
moment when a service has reconnected but not yet declared its queue again; a call published
then was silently dropped by the broker and its caller waited the whole ``rpc_call_timeout``
for a reply that could never come (RabbitMQ recovery measured 15-17 s). Mandatory, the broker
returns a call no queue takes at once (``MessageUndeliverable``) and the client sends it again,
with back-off, until a queue takes it or the call's own timeout is spent; a call nothing ever
takes fails saying that no service consumes its queue. Casts stay fire-and-forget: many go to
agents that may be gone for good, and a lost cast is repaired by its receiver's orphan pass.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import tenacity
from oslo_config import cfg

from stackcore import exception
from stackcore.rpc import base

LOG = logging.getLogger(__name__)
_ENVELOPE_VERSION = "1.0"


def _redact(url: str) -> str:
    """The transport URL with its passwords hidden (``rabbit://user:****@host:port/``)."""
    return re.sub(r"(//|,)([^:/@,]*):[^@/]*@", r"\1\2:****@", url)


class _GenericEndpoint:
    def __init__(self, endpoint: Any) -> None:
        import oslo_messaging

        self.target = oslo_messaging.Target(version=_ENVELOPE_VERSION)
        self._endpoint = endpoint

    def stackcore_dispatch(
        self, ctxt: dict[str, Any], rpc_method: str, version: str, payload: str
    ) -> str:
        method = rpc_method
        reply = base.dispatch(self._endpoint, method, version, payload)
        if '"error"' in reply[:10]:
            LOG.debug("rpc %s.%s returned an error", self._endpoint.target.topic, method)
        return reply


class MessagingTransport(base.Transport):
    def __init__(self, conf: cfg.ConfigOpts, url: str) -> None:
        import oslo_messaging

        # oslo.messaging registers its own options (transport_url among them) on whatever
        # ConfigOpts it is given; a private one keeps them off the Cloud's, which already owns
        # ``transport_url`` with stackcore's meaning and help.
        self._conf = cfg.ConfigOpts()
        self._conf(args=[], project="stackcore-messaging", default_config_files=[])
        # oslo.messaging 18 registers some groups (tracing, metrics) on the global CONF only,
        # yet reads them from the ConfigOpts it was given: register every one of its options.
        from oslo_messaging import opts as messaging_opts
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing

        groups = [
            *messaging_opts.list_opts(),
            ("oslo_messaging_tracing", tracing.oslo_messaging_tracing),
            ("oslo_messaging_metrics", metrics.oslo_messaging_metrics),
        ]
        for group, options in groups:
            self._conf.register_opts(list(options), group=group)
        try:
            self._transport = oslo_messaging.get_rpc_transport(self._conf, url=url)
        except Exception as err:
            scheme = url.split(":", 1)[0]
            raise exception.ConfigError(
                f"[DEFAULT] transport_url ({scheme}://****) cannot be used: {err}"
            ) from err
        self._timeout = conf.rpc_call_timeout
        #: the broker, for error messages (password hidden)
        self.where = _redact(url)

    def client(self, target: base.Target) -> base.Client:
        return _Client(self, target)

    def serve(self, target: base.Target, endpoint: Any) -> base.Server:
        import oslo_messaging

        server = oslo_messaging.get_rpc_server(
            self._transport,
            oslo_messaging.Target(topic=target.topic, server=target.server or "default"),
            [_GenericEndpoint(endpoint)],
        )
        server.start()
        return _Server(server)

    def close(self) -> None:
        self._transport.cleanup()


class _Client(base.Client):
    def __init__(self, transport: MessagingTransport, target: base.Target) -> None:
        import oslo_messaging

        super().__init__(target)
        self._transport = transport
        self._rpc = oslo_messaging.get_rpc_client(
            transport._transport,  # noqa: SLF001
            oslo_messaging.Target(
                topic=target.topic, server=target.server, version=_ENVELOPE_VERSION
            ),
            timeout=transport._timeout,  # noqa: SLF001
        )
        # calls only: a cast stays fire-and-forget (module doc)
        self._mandatory = oslo_messaging.TransportOptions(at_least_once=True)

    def prepare(self, server: str | None = None, version: str | None = None) -> base.Client:
        target = base.Target(
            self.target.topic, server or self.target.server, version or self.target.version
        )
        return _Client(self._transport, target)

    def call(self, method: str, **kwargs: Any) -> Any:
        import oslo_messaging

        payload = base.encode(kwargs)
        timeout = self._transport._timeout  # noqa: SLF001
        deadline = time.monotonic() + timeout
        where = f"{self.target.topic}.{self.target.server or '*'}"

        def send() -> str:
            # each attempt waits for its reply only as long as the call has left
            left = max(0.1, deadline - time.monotonic())
            reply: str = self._rpc.prepare(timeout=left, transport_options=self._mandatory).call(
                {}, "stackcore_dispatch", rpc_method=method, version=self.target.version,
                payload=payload,
            )
            return reply

        def not_taken(state: tenacity.RetryCallState) -> None:
            log = LOG.info if state.attempt_number == 1 else LOG.debug
            log("rpc %s to %s: no queue took it (its service is not consuming yet); sending "
                "it again", method, where)

        resend = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(oslo_messaging.MessageUndeliverable),
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_exponential(multiplier=0.02, max=1.0),
            before_sleep=not_taken, reraise=True)
        try:
            reply = resend(send)
        except oslo_messaging.MessageUndeliverable as err:
            raise exception.RPCError(
                f"RPC {method} to {where} over {self._transport.where}: no service consumes "
                f"its queue (not taken for {timeout}s)"
            ) from err
        except oslo_messaging.MessagingTimeout as err:
            raise exception.RPCError(
                f"no reply from {self.target.topic}.{self.target.server or '*'} for {method} "
                f"within {self._transport._timeout}s over "  # noqa: SLF001
                f"{self._transport.where}"
            ) from err
        except oslo_messaging.MessagingException as err:
            raise exception.RPCError(f"RPC {method} to {self.target.topic} over "
                                     f"{self._transport.where} failed: {err}") from err
        return base.unwrap(reply)

    def cast(self, method: str, **kwargs: Any) -> None:
        payload = base.encode(kwargs)
        self._rpc.cast(
            {}, "stackcore_dispatch", rpc_method=method, version=self.target.version,
            payload=payload,
        )


class _Server(base.Server):
    def __init__(self, server: Any) -> None:
        self._server = server

    def stop(self) -> None:
        self._server.stop()
        self._server.wait()
