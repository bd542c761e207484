"""Logging for the ``stackcore`` commands, services and agents: oslo.log, configured from the
same files as the service, with the request's id and project on every line and no secret in
any line.

* **Options** are oslo.log's own (``debug``, ``log_file``, ``log_dir``, ``use_json``,
  ``log_date_format``, ``default_log_levels``, ...), read from the service's config files by a
  ConfigOpts of their own: the Cloud's ConfigOpts stays free of them, and a library user who
  configures logging their way is never overridden (only the commands call :func:`setup`).
* **Where**: ``log_file`` / ``log_dir`` when set, else standard error. Decision: oslo.log's
  fallback is standard output, but a command's standard output is its result (the services'
  ``stackcore NAME service running`` line that supervisors and tests wait for, the CLI's
  tables): logs never mix into it.
* **Request id and project** come from the context of the call being served (oslo.context's
  thread store, which :func:`stackcore.rpc.base.dispatch` sets for exactly the duration of
  each call): oslo.log's context format puts ``[request_id user project]`` on every line
  logged while serving it, a JSON line carries them as fields.
* **Secrets**: a filter on every handler masks what looks like one before it is formatted:
  passwords in URLs (``rabbit://user:****@``, ``postgresql://user:****@``) and the values of
  keys such as ``password``, ``auth_password`` (CHAP), ``secret``, ``key`` (cephx) and
  ``token`` (oslo.utils' ``mask_password``). Code must still never log a secret on purpose;
  the filter is the net under it, and tests grep whole runs' logs for the secrets they used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # oslo.config is imported by setup() (the commands only): mask() is used by every
    # notifier, which plugin modules import, and listing plugins must not pay for oslo.config.
    from oslo_config import cfg

#: libraries whose INFO is noise for an operator (oslo.log's defaults, plus ours)
_QUIET = ("stevedore=WARN", "alembic=WARN", "kombu=WARN", "amqp=WARN", "urllib3=WARN",
          "sqlalchemy=WARN", "oslo_policy=WARN", "oslo.privsep.daemon=INFO")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s,]*):[^@/\s]*@", re.I)
#: a cephx ``key`` (keyring syntax, a dict's repr, key=value): oslo.utils does not mask ``key``
_KEY = re.compile(r"""(?P<head>\bkey['"]?\s*[:=]\s*['"]?)[^'"\s,;}]+""", re.I)


def mask(text: str) -> str:
    """``text`` with passwords in URLs and the values of secret-looking keys masked."""
    from oslo_utils import strutils

    text = _KEY.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:****@", text))
    return str(strutils.mask_password(text))


class SecretFilter(logging.Filter):
    """Masks secrets (:func:`mask`) in a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format is logging's to report
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def options() -> list[cfg.Opt]:
    """oslo.log's options (for the sample config: the ``oslo.log`` namespace has them too)."""
    from oslo_log import _options

    return [*_options.common_cli_opts, *_options.logging_cli_opts,
            *_options.generic_log_opts, *_options.log_opts]


def setup(config_files: Sequence[str], program: str, *, debug: bool | None = None) -> Any:
    """Configure the root logger from ``config_files``' oslo.log options; returns that
    ConfigOpts. ``debug`` (a command-line flag) wins over the files."""
    from oslo_config import cfg
    from oslo_log import log

    conf = cfg.ConfigOpts()
    log.register_options(conf)
    log.set_defaults(default_log_levels=[*log.get_default_log_levels(), *_QUIET])
    conf.set_default("use_stderr", True)
    conf(args=[], project="stackcore", prog=program, default_config_files=list(config_files))
    if debug is not None:
        conf.set_override("debug", debug)
    if conf.log_dir and not conf.log_file:
        # oslo.log would name the file after sys.argv[0] ("stackcore.log" for every service of
        # a host): one file per program instead, as OpenStack's nova-compute.log, ...
        conf.set_override("log_file", f"{program}.log")
    if conf.log_file or conf.log_dir:
        # a file was asked for: only the file, as oslo.log's services do
        conf.set_override("use_stderr", False)
    log.setup(conf, program)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
    return conf
