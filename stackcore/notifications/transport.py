"""Building the oslo.messaging Notifier a Cloud sends through (:func:`oslo_notifier`).

oslo.messaging is imported only here, and only for the ``messaging`` driver (``log`` is
:mod:`stackcore.notifications.logdriver`, ``noop`` sends nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore.notifications.logdriver import LogNotifier

if TYPE_CHECKING:
    # oslo.config is imported where a private ConfigOpts is built (the messaging driver
    # only): plugin modules import this package, and listing them must not pay for it.
    from oslo_config import cfg

#: connection retries of one notification: a broker outage costs an operation a bounded
#: delay and a lost notification, never an operation hung until the broker is back (oslo's
#: default, None, retries forever)
SEND_RETRIES = 2


def _private_conf() -> cfg.ConfigOpts:
    """A ConfigOpts of oslo.messaging's own: see :class:`stackcore.rpc.messaging.
    MessagingTransport` for why not the Cloud's (it owns ``transport_url`` with stackcore's
    meaning) and why the tracing and metrics groups are registered by hand."""
    from oslo_config import cfg
    from oslo_messaging import opts as messaging_opts
    from oslo_messaging._metrics import client as metrics
    from oslo_messaging._tracing import client as tracing

    conf = cfg.ConfigOpts()
    conf(args=[], project="stackcore-notifications", default_config_files=[])
    groups = [
        *messaging_opts.list_opts(),
        ("oslo_messaging_tracing", tracing.oslo_messaging_tracing),
        ("oslo_messaging_metrics", metrics.oslo_messaging_metrics),
    ]
    for group, options in groups:
        conf.register_opts(list(options), group=group)
    return conf


def oslo_notifier(conf: cfg.ConfigOpts) -> tuple[Any, Any] | None:
    """``(notifier, transport or None)`` for ``[notifications]``, None for the noop driver.
    The notifier has oslo.messaging Notifier's ``prepare``/``info``/``error``/``sample``."""
    group = conf.notifications
    if group.driver == "noop":
        return None
    if group.driver == "log":
        return LogNotifier(group.publisher_id), None
    url = group.transport_url or conf.transport_url
    if url.startswith("inprocess:"):
        raise exception.ConfigError(
            "[notifications] driver = messaging needs a broker: set [notifications] "
            "transport_url (or [DEFAULT] transport_url) to an oslo.messaging URL such as "
            "rabbit://user:pass@host:5672/, or choose driver = log",
            section="notifications", option="driver")
    import oslo_messaging

    try:
        transport = oslo_messaging.get_notification_transport(_private_conf(), url=url)
    except Exception as err:
        scheme = url.split(":", 1)[0]
        raise exception.ConfigError(
            f"[notifications] transport_url ({scheme}://****) cannot be used: {err}",
            section="notifications", option="transport_url") from err
    notifier = oslo_messaging.Notifier(transport, publisher_id=group.publisher_id,
                                       driver="messagingv2", topics=list(group.topics),
                                       retry=SEND_RETRIES)
    return notifier, transport
