"""Building and validating the ConfigOpts a Cloud owns.

The Cloud never uses oslo.config's global ``CONF``: two clouds in one process (tests, tools) must
not share options. :func:`load` registers the core options, parses the files, applies
overrides, then reads every registered option once so that a bad value fails at start-up with
its section, option and value named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oslo_config import cfg

from stackcore import exception, families
from stackcore.conf import opts


def register(conf: cfg.ConfigOpts, groups: Iterable[tuple[str, Sequence[cfg.Opt]]]) -> None:
    """Register ``[(group, opts)]`` on ``conf``; registering the same options again is a no-op."""
    for group, options in groups:
        conf.register_opts(list(options), group=None if group == "DEFAULT" else group)


def load(
    config_files: Sequence[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> cfg.ConfigOpts:
    """A new ConfigOpts with the core's and every family's options, ``config_files`` parsed and
    ``overrides`` set.

    ``overrides`` is ``{group: {option: value}}`` (group ``"DEFAULT"`` for top-level options).
    """
    conf = cfg.ConfigOpts()
    register(conf, opts.GROUPS)
    for family in families.all_families():
        register(conf, family.option_groups())
    try:
        conf(args=[], project="stackcore", default_config_files=list(config_files))
    except cfg.Error as err:
        raise exception.ConfigError(f"cannot read configuration: {err}") from err
    for group, values in (overrides or {}).items():
        for name, value in values.items():
            set_override(conf, group, name, value)
    return conf


def set_override(conf: cfg.ConfigOpts, group: str, name: str, value: Any) -> None:
    """Set one option, turning oslo.config's errors into a ConfigError naming it."""
    try:
        conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError) as err:
        raise exception.ConfigError(f"unknown option [{group}] {name}") from err
    except ValueError as err:
        raise exception.ConfigError(f"[{group}] {name} = {value!r} is invalid: {err}") from err


def validate_all(conf: cfg.ConfigOpts) -> None:
    """Read every registered option so type/range errors surface now, with section/option."""
    for group_name, options in _registered(conf):
        group = conf if group_name == "DEFAULT" else conf[group_name]
        for opt_name in options:
            try:
                getattr(group, opt_name)
            except (ValueError, cfg.ConfigFileValueError) as err:
                raw, reason = _raw_value(conf, group_name, opt_name), str(err)
                if _is_secret(conf, group_name, opt_name):
                    raw, reason = "****", "(value hidden: secret option)"
                raise exception.ConfigError(
                    f"[{group_name}] {opt_name} = {raw!r} is invalid: {reason}",
                    section=group_name,
                    option=opt_name,
                ) from None


def _registered(conf: cfg.ConfigOpts) -> list[tuple[str, list[str]]]:
    # Walk the registrations, not the values: reading a value here would raise too early.
    groups = conf._groups  # noqa: SLF001 - oslo.config offers no public registry walk
    result = [("DEFAULT", sorted(conf._opts))]  # noqa: SLF001
    result += [(name, sorted(group._opts)) for name, group in sorted(groups.items())]  # noqa: SLF001
    return result


def _is_secret(conf: cfg.ConfigOpts, group: str, name: str) -> bool:
    info = conf._get_opt_info(name, None if group == "DEFAULT" else group)  # noqa: SLF001
    return bool(info["opt"].secret)


def _raw_value(conf: cfg.ConfigOpts, group: str, name: str) -> str:
    try:
        # oslo.config has no public "raw value" reader; only used to decorate the message.
        namespace: Any = conf._namespace  # noqa: SLF001
        value, _ = namespace._get_file_value([(group, name)])  # noqa: SLF001
        return str(value[-1] if isinstance(value, list) else value)
    except Exception:  # noqa: BLE001 - only used to decorate the message
        return "<unreadable>"
