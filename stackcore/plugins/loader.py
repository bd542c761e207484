"""Loading plugins from entry points, loudly.

Plugins are registered as setuptools entry points (``[stackcore.compute.drivers]`` ...), the
way stevedore finds them. stevedore itself is silent by default (a broken import, a typo in a
name is logged to a ``NullHandler`` and skipped) and costs every start-up its own import plus
``importlib.metadata``'s (tens of milliseconds, most of a plugin-loading start-up), so entry
points are read here directly: every ``*.dist-info`` / ``*.egg-info`` directory on
``sys.path`` with an ``entry_points.txt``, the first distribution of a name winning (as
``importlib.metadata.entry_points()`` does), read once per ``sys.path``. Every failure raises
a :class:`~stackcore.exception.PluginError` subclass naming the namespace, the entry point and
the distribution that registered it.

One function per loading strategy:

* :func:`load_one` - exactly one named plugin (a hypervisor driver, a volume driver).
* :func:`load_ordered` - several named plugins in the configured order (mechanism drivers,
  filters, weighers).
* :func:`discover` - every installed plugin of a namespace, recording failures instead of
  raising (for ``stackcore drivers``, ``stackcore matrix`` and the demo).

Every loaded class is verified against its family contract before it is returned (see
:mod:`stackcore.plugins.contract`), so a bad plugin is refused at start-up, not at first use.

Two kinds of refusal are kept apart, because they call for different fixes:

* **broken** - the plugin breaks its contract (or its own module does not import):
  :class:`~stackcore.exception.DriverContractError` / :class:`~stackcore.exception.PluginLoadError`,
  for the plugin's author to fix;
* **unavailable** - the plugin is fine but a backend library it needs is not installed here
  (declared in its ``REQUIRES``, or a third-party module its import needs):
  :class:`~stackcore.exception.PluginUnavailable` with the install hint, for the operator.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from stackcore import exception
from stackcore.plugins.contract import Contract


@dataclasses.dataclass(frozen=True)
class Plugin:
    """A loaded, verified plugin class and where it came from."""

    namespace: str
    name: str
    target: str  # "module:attr" as written in the entry point
    distribution: str
    version: str
    cls: Any


#: :attr:`Discovered.status` values.
OK, BROKEN, UNAVAILABLE = "ok", "broken", "unavailable"


@dataclasses.dataclass(frozen=True)
class Discovered:
    """One entry point found by :func:`discover`: either a plugin, or why it cannot be used.

    ``status`` is ``ok`` (``plugin`` set), ``broken`` (``error`` says what breaks the contract
    or the import) or ``unavailable`` (``error`` names the missing backend library, ``hint``
    how to install it)."""

    namespace: str
    name: str
    target: str
    distribution: str
    version: str
    plugin: Plugin | None
    error: str | None
    status: str = OK
    hint: str = ""


#: ``module[:attr.attr] [extras]`` (the entry-point value syntax importlib.metadata accepts)
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """One entry point: ``name = value`` in section ``group`` of a distribution's
    entry_points.txt (``info``: its .dist-info / .egg-info directory)."""

    name: str
    value: str
    group: str
    info: str

    def load(self) -> Any:
        """Import the module and return the attribute the value names."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        found: Any = importlib.import_module(match.group("module"))
        for attr in (match.group("attr") or "").split("."):
            if attr:
                found = getattr(found, attr)
        return found


@dataclasses.dataclass(frozen=True)
class _Extension:
    name: str
    entry_point: EntryPoint
    plugin: Any


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _parse(text: str, info: str) -> dict[str, list[EntryPoint]]:
    """entry_points.txt (INI: ``[group]`` then ``name = value`` lines) by group."""
    groups: dict[str, list[EntryPoint]] = {}
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
            groups.setdefault(group, [])
        elif group is not None and "=" in line:
            name, _, value = line.partition("=")
            groups[group].append(EntryPoint(name.strip(), value.strip(), group, info))
    return groups


@functools.cache
def _entry_point_texts(path: tuple[str, ...]) -> tuple[tuple[str, dict[str, list[EntryPoint]]],
                                                         ...]:
    """Every distribution on ``path`` (``sys.path``) that has entry points: its info
    directory and its entry points by group. Read once per ``sys.path`` and shared by every
    namespace; a distribution found twice counts once, where it is found first."""
    found = []
    seen: set[str] = set()
    for entry in path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # not a directory (a zip, a missing entry)
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            key = _normalized(stem.partition("-")[0])
            if key in seen:
                continue
            info = os.path.join(entry or ".", name)
            try:
                with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                if os.path.isdir(info):
                    seen.add(key)  # the distribution, without entry points
                continue
            seen.add(key)
            found.append((info, _parse(text, info)))
    return tuple(found)


def _entry_points(namespace: str) -> list[EntryPoint]:
    return [ep for _info, groups in _entry_point_texts(tuple(sys.path))
            for ep in groups.get(namespace, ())]


@functools.cache
def _entry_point_owners(namespace: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Map (name, value) of ``namespace``'s entry points -> (distribution, version), read from
    the METADATA (PKG-INFO) of the distributions that have such entry points only."""
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for ep in _entry_points(namespace):
        owners.setdefault((ep.name, ep.value), _distribution_owner(ep.info))
    return owners


@functools.cache
def _distribution_owner(info: str) -> tuple[str, str]:
    """(Name, Version) from the headers of the distribution's METADATA or PKG-INFO."""
    fields: dict[str, str] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info, filename), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # end of the headers
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        fields.setdefault(key, value.strip())
            break
        except OSError:
            continue
    return (fields.get("Name") or "?", fields.get("Version") or "?")


def _owner(namespace: str, ep: Any) -> tuple[str, str]:
    return _entry_point_owners(namespace).get((ep.name, ep.value), ("<unknown>", "?"))


def _describe(namespace: str, ep: Any) -> str:
    dist, version = _owner(namespace, ep)
    return f"entry point {ep.name!r} ({ep.value}) of namespace {namespace!r} from {dist} {version}"


def _missing_library(ep: Any, err: BaseException) -> str | None:
    """The backend library whose absence made ``ep`` fail to import, or None when the import
    failed for another reason (a module of the plugin's own package missing is a bug)."""
    if not isinstance(err, ModuleNotFoundError) or not err.name:
        return None
    own = str(ep.value).partition(":")[0].split(".")[0]
    missing = err.name.split(".")[0]
    return None if missing == own else err.name


def _load_error(namespace: str, ep: Any, err: BaseException) -> exception.PluginError:
    missing = _missing_library(ep, err)
    if missing is not None:
        hint = f"install the Python module {missing!r}"
        return exception.PluginUnavailable(
            f"{_describe(namespace, ep)} is unavailable: it needs the Python module "
            f"{missing!r}, which is not installed ({hint})",
            missing={missing: hint},
        )
    return exception.PluginLoadError(
        f"cannot load {_describe(namespace, ep)}: {type(err).__name__}: {err}",
        namespace=namespace,
        entry_point=ep.name,
    )


def _load(namespace: str, ep: EntryPoint) -> _Extension:
    """Import ``ep``; a failure raises the PluginError naming it."""
    try:
        return _Extension(ep.name, ep, ep.load())
    except (KeyboardInterrupt, AssertionError):
        raise
    except Exception as err:
        raise _load_error(namespace, ep, err) from err


def _raise_on_conflict(namespace: str, name: str, entry_points: list[EntryPoint]) -> Any:
    owners = sorted({_owner(namespace, ep)[0] for ep in entry_points})
    raise exception.PluginLoadError(
        f"plugin name {name!r} of namespace {namespace!r} is registered more than once "
        f"(by {', '.join(owners)}); uninstall one of them",
        namespace=namespace,
        entry_point=name,
    )


def _available(namespace: str) -> list[str]:
    return sorted({ep.name for ep in _entry_points(namespace)})


def _not_found(namespace: str, names: Sequence[str]) -> exception.PluginNotFound:
    available = ", ".join(_available(namespace)) or "none"
    return exception.PluginNotFound(
        f"no plugin named {', '.join(repr(n) for n in names)} in namespace {namespace!r} "
        f"(installed: {available})",
        namespace=namespace,
        entry_point=list(names),
    )


def _to_plugin(namespace: str, ext: Any, contract: Contract | None) -> Plugin:
    if contract is not None:
        problems = contract.problems(ext.plugin)
        if problems:
            raise exception.DriverContractError(
                f"{_describe(namespace, ext.entry_point)} does not meet the "
                f"{contract.family} contract",
                problems=problems,
            )
        missing = contract.missing_requirements(ext.plugin)
        if missing:
            needs = "; ".join(f"the Python module {m!r} ({hint})" for m, hint in missing.items())
            raise exception.PluginUnavailable(
                f"{_describe(namespace, ext.entry_point)} is unavailable: it needs {needs}, "
                "not installed here",
                missing=missing,
            )
    dist, version = _owner(namespace, ext.entry_point)
    return Plugin(namespace, ext.name, ext.entry_point.value, dist, version, ext.plugin)


def _named(namespace: str, names: Sequence[str]) -> list[EntryPoint]:
    """The entry point of each of ``names``, in that order; PluginNotFound naming the absent
    ones, PluginLoadError for a name registered by more than one distribution."""
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in _entry_points(namespace):
        if ep.name in names:
            by_name.setdefault(ep.name, []).append(ep)
    absent = [n for n in names if n not in by_name]
    if absent:
        raise _not_found(namespace, sorted(absent))
    for name, found in by_name.items():
        if len(found) > 1:
            _raise_on_conflict(namespace, name, found)
    return [by_name[n][0] for n in names]


def load_one(namespace: str, name: str, contract: Contract | None = None) -> Plugin:
    """Load and verify exactly one plugin; raise a :class:`PluginError` naming the culprit."""
    if not name:
        raise exception.ConfigError(f"no plugin name given for namespace {namespace!r}")
    (ep,) = _named(namespace, [name])
    return _to_plugin(namespace, _load(namespace, ep), contract)


def load_ordered(
    namespace: str, names: Sequence[str], contract: Contract | None = None
) -> list[Plugin]:
    """Load and verify several named plugins, returned in the order of ``names``."""
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if list(names).count(n) > 1})
        raise exception.ConfigError(
            f"plugin names listed twice for namespace {namespace!r}: {', '.join(dup)}"
        )
    if not names:
        return []
    return [_to_plugin(namespace, _load(namespace, ep), contract)
            for ep in _named(namespace, list(names))]


def discover(namespace: str, contract: Contract | None = None) -> list[Discovered]:
    """Every entry point of ``namespace``, loaded and verified, failures recorded not raised."""
    found: list[Discovered] = []
    for ep in _entry_points(namespace):
        dist, version = _owner(namespace, ep)
        try:
            plugin = _to_plugin(namespace, _load(namespace, ep), contract)
            found.append(Discovered(namespace, ep.name, ep.value, dist, version, plugin, None))
        except exception.PluginError as err:
            found.append(_failed(namespace, ep, dist, version, err))
    return sorted(found, key=lambda d: d.name)


def _failed(namespace: str, ep: Any, dist: str, version: str,
            err: exception.PluginError) -> Discovered:
    if isinstance(err, exception.PluginUnavailable):
        needs = ", ".join(sorted(err.missing))
        hint = "; ".join(dict.fromkeys(err.missing.values()))
        return Discovered(namespace, ep.name, ep.value, dist, version, None,
                          f"needs {needs} (not installed)", UNAVAILABLE, hint)
    return Discovered(namespace, ep.name, ep.value, dist, version, None, str(err), BROKEN)
