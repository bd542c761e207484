"""The driver under test: found by entry point, verified, configured.

Kept free of pytest so that tools (``stackcore conformance``) can build one too.

Configuration is strict: every section and option of the files given to the kit must be one
stackcore or the driver registers (a misspelt section or option would otherwise be ignored and
the suite would run on defaults without anyone noticing); the error names each unknown one,
with the nearest known name when there is one.
"""

from __future__ import annotations

import dataclasses
import difflib
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception, families
from stackcore.plugins import loader


@dataclasses.dataclass
class DriverUnderTest:
    family: str
    name: str
    plugin: loader.Plugin
    conf: cfg.ConfigOpts
    declared: dict[str, bool]
    config_files: tuple[str, ...] = ()
    #: a temporary ``state_path`` the harness made (removed by :meth:`close`)
    scratch: str | None = None

    @classmethod
    def from_spec(
        cls, spec: str, config_files: Sequence[str] = (), settings: Sequence[str] = ()
    ) -> DriverUnderTest:
        """Build from ``"family:name"``, oslo.config files and ``group.option=value`` strings."""
        family_name, sep, name = spec.partition(":")
        if not sep or not name:
            raise exception.ConfigError(
                f"--stackcore-driver {spec!r} must be FAMILY:NAME, e.g. compute:fake"
            )
        family = families.get(family_name)
        contract = family.contract()
        plugin = loader.load_one(family.namespace, name, contract)
        conf = sc_conf.load(list(config_files))
        list_opts = getattr(plugin.cls, "list_opts", None)
        if list_opts is not None:
            sc_conf.register(conf, list_opts())
        check_known(conf, config_files, spec)
        for setting in settings:
            key, eq, value = setting.partition("=")
            group, _dot, option = key.rpartition(".")
            if not eq or not option:
                raise exception.ConfigError(
                    f"--stackcore-set {setting!r} must be GROUP.OPTION=VALUE"
                )
            sc_conf.set_override(conf, group or "DEFAULT", option, value)
        scratch = None
        if not conf.state_path:
            scratch = tempfile.mkdtemp(prefix="stackcore-conformance-")
            sc_conf.set_override(conf, "DEFAULT", "state_path", scratch)
        try:
            sc_conf.validate_all(conf)
        except exception.StackcoreError:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls(family_name, name, plugin, conf, contract.declared(plugin.cls),
                   tuple(config_files), scratch)

    def new(self, *args: Any) -> Any:
        """An instance of the driver class built with the family's constructor arguments."""
        return self.plugin.cls(self.conf, *args)

    def close(self) -> None:
        """Remove the temporary state directory the harness made, if any."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _parse(path: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    try:
        cfg.ConfigParser(path, sections).parse()
    except (OSError, cfg.ParseError) as err:
        raise exception.ConfigError(f"cannot read configuration file {path}: {err}") from err
    return sections


def _registered(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {"DEFAULT": set()}
    for opt in conf:  # top-level options and group names
        if isinstance(conf[opt], cfg.ConfigOpts.GroupAttr):
            known[opt] = set(conf[opt])
        else:
            known["DEFAULT"].add(opt)
    return known


def _nearest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_known(conf: cfg.ConfigOpts, config_files: Sequence[str], spec: str) -> None:
    """Every section and option in ``config_files`` must be registered on ``conf``; raise one
    ConfigError listing every unknown one, each with its file."""
    known = _registered(conf)
    unknown: list[str] = []
    for path in config_files:
        for section, options in _parse(path).items():
            if section not in known:
                unknown.append(f"section [{section}] in {path}"
                               + _nearest(section, sorted(known)))
                continue
            for option in options:
                if option not in known[section]:
                    unknown.append(f"option [{section}] {option} in {path}"
                                   + _nearest(option, sorted(known[section])))
    if unknown:
        raise exception.ConfigError(
            f"configuration for {spec} names what neither stackcore nor the driver knows: "
            + "; ".join(unknown)
        )
