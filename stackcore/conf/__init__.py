"""Building and validating the ConfigOpts a Cloud owns.

The Cloud never uses oslo.config's global ``CONF``: two clouds in one process (tests, tools) must
not share options. :func:`load` registers the core options, parses the files, applies
overrides, then reads every registered option once so that a bad value fails at start-up with
its section, option and value named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from oslo_config import cfg, types

from stackcore import exception, families
from stackcore.conf import opts
from stackcore.conf.optiontypes import SafeValueError


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
    validate_all(conf)  # the core's and families' options; plugins' when they load
    return conf


def set_override(conf: cfg.ConfigOpts, group: str, name: str, value: Any) -> None:
    """Set one option, turning oslo.config's errors into a ConfigError naming it."""
    try:
        conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError) as err:
        raise exception.ConfigError(f"unknown option [{group}] {name}") from err
    except ValueError as err:
        raise exception.ConfigError(f"[{group}] {name} = {value!r} is invalid: {err}") from err


#: oslo.config reads an option set to nothing (``max_attempts =``) as None; for these types
#: that is never meant, and would crash at first use far from the file.
_NUMERIC = (types.Integer, types.Float)
_INT64 = 2**63 - 1


def validate_all(conf: cfg.ConfigOpts) -> None:
    """Read every registered option now, so that a bad value fails start-up with its section,
    option and value named (a secret's value hidden) - not at first use.

    Beyond oslo.config's own type and range checks: an empty numeric option, a non-finite float
    (``nan``, ``inf``) and an integer beyond 64 bits are refused; a ``$`` that oslo.config
    takes for a reference to another option is refused with the hint to write ``$$``.
    """
    for group_name, options in _registered(conf):
        group = conf if group_name == "DEFAULT" else conf[group_name]
        for opt_name in options:
            opt = _opt(conf, group_name, opt_name)
            try:
                value = getattr(group, opt_name)
            except (ValueError, cfg.ConfigFileValueError) as err:
                # oslo.config words it "Value for option X from LocationInfo(...) is not valid:
                # <why>": the why is what the reader needs.
                reason = str(err).rpartition(" is not valid: ")[2]
                safe = isinstance(err.__cause__ or err.__context__ or err, SafeValueError)
                _refuse(conf, group_name, opt_name, reason,
                        secret_reason=reason if safe else "(value hidden: secret option)")
            except (cfg.TemplateSubstitutionError, cfg.NoSuchOptError, cfg.NoSuchGroupError) as err:
                hint = "a '$' starts a reference to another option; write '$$' for a literal '$'"
                _refuse(conf, group_name, opt_name, f"{err}: {hint}", secret_reason=hint)
            problem = _value_problem(opt, value)
            if problem:
                _refuse(conf, group_name, opt_name, problem)


def _value_problem(opt: cfg.Opt, value: Any) -> str | None:
    kind = opt.type.item_type if isinstance(opt.type, types.List) else opt.type
    values = value if isinstance(value, list) else [value]
    if isinstance(kind, _NUMERIC):
        if value is None and opt.default is not None:
            return f"is empty: give a number (the default is {opt.default}) or remove the line"
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                return f"{item} is not a finite number"
            if isinstance(item, int) and abs(item) > _INT64:
                return f"{item} is out of range (beyond a 64-bit integer)"
    return None


def _refuse(conf: cfg.ConfigOpts, group: str, name: str, reason: str,
            secret_reason: str = "(value hidden: secret option)") -> NoReturn:  # noqa: S107
    """Raise the ConfigError; for a secret option neither the value nor a reason that may quote
    it is shown, only ``secret_reason``."""
    raw = _raw_value(conf, group, name)
    if _is_secret(conf, group, name):
        raw, reason = "****", secret_reason
    raise exception.ConfigError(f"[{group}] {name} = {raw!r} is invalid: {reason}",
                                section=group, option=name) from None


def _opt(conf: cfg.ConfigOpts, group: str, name: str) -> cfg.Opt:
    info = conf._get_opt_info(name, None if group == "DEFAULT" else group)  # noqa: SLF001
    opt: cfg.Opt = info["opt"]
    return opt


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
