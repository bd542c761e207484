"""Loading plugins through stevedore, loudly.

stevedore is silent by default: a broken import, a typo in a name or an exception inside
``map_method`` is logged to a ``NullHandler`` and skipped. A driver framework cannot afford that,
so every loader here passes callbacks that raise :class:`~stackcore.exception.PluginError`
subclasses naming the namespace, the entry point and the distribution that registered it.

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
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Any

from stevedore import driver, extension, named
from stevedore import exception as sv_exc

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


@functools.cache
def _entry_point_texts(
    path: tuple[str, ...],
) -> tuple[tuple[importlib.metadata.Distribution, str], ...]:
    """Every distribution on ``path`` (``sys.path``) that has entry points, with its
    entry_points.txt.

    Read once per ``sys.path`` and shared by every namespace (reading them is the costly part of
    :func:`_entry_point_owners`, which runs once per family).
    """
    found = []
    for dist in importlib.metadata.distributions(path=list(path)):
        text = dist.read_text("entry_points.txt")
        if text:
            found.append((dist, text))
    return tuple(found)


@functools.cache
def _entry_point_owners(namespace: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Map (name, value) of ``namespace``'s entry points -> (distribution, version).

    stevedore's entry-point cache drops the distribution, so it is recovered here, lazily and
    cheaply: a distribution's metadata is parsed only if its entry_points.txt mentions the
    namespace (parsing every METADATA file would dominate start-up).
    """
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    marker = f"[{namespace}]"
    for dist, text in _entry_point_texts(tuple(sys.path)):
        if marker not in text:
            continue
        owner = _distribution_owner(dist)
        for ep in _parsed_entry_points(dist).select(group=namespace):
            owners.setdefault((ep.name, ep.value), owner)
    return owners


@functools.cache
def _parsed_entry_points(dist: importlib.metadata.Distribution) -> importlib.metadata.EntryPoints:
    """``dist``'s entry points, parsed once: ``dist.entry_points`` re-reads and re-parses the
    whole entry_points.txt on every access, and one distribution (stackcore's own) serves
    most families' namespaces."""
    return dist.entry_points


@functools.cache
def _distribution_owner(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    """(name, version) of ``dist``, from the ``Name:`` and ``Version:`` lines at the head of
    its METADATA (or PKG-INFO). Why not ``dist.metadata``: that parses the whole file with the
    email package - the long description included - and was about a tenth of loading every
    plugin (benchmarks/import_time.py); both fields are required to come first, in the
    header block. A file without them falls back to the full parse."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line:  # the end of the header block
            break
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            found.setdefault(key, value.strip())
            if len(found) == 2:
                return found["Name"], found["Version"]
    metadata = dist.metadata
    return (metadata["Name"] or "?", metadata["Version"] or "?")


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


def _raise_on_load_failure(manager: Any, ep: Any, err: BaseException) -> None:
    raise _load_error(manager.namespace, ep, err) from err


def _raise_on_conflict(namespace: str, name: str, extensions: list[Any]) -> Any:
    owners = sorted({_owner(namespace, ext.entry_point)[0] for ext in extensions})
    raise exception.PluginLoadError(
        f"plugin name {name!r} of namespace {namespace!r} is registered more than once "
        f"(by {', '.join(owners)}); uninstall one of them",
        namespace=namespace,
        entry_point=name,
    )


def _available(namespace: str) -> list[str]:
    eps = importlib.metadata.entry_points(group=namespace)
    return sorted({ep.name for ep in eps})


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


def load_one(namespace: str, name: str, contract: Contract | None = None) -> Plugin:
    """Load and verify exactly one plugin; raise a :class:`PluginError` naming the culprit."""
    if not name:
        raise exception.ConfigError(f"no plugin name given for namespace {namespace!r}")

    def missing(names: Any) -> None:
        raise _not_found(namespace, list(names))

    try:
        mgr = driver.DriverManager(
            namespace,
            name,
            on_load_failure_callback=_raise_on_load_failure,
            on_missing_entrypoints_callback=missing,
            conflict_resolver=_raise_on_conflict,
        )
    except sv_exc.NoMatches as err:
        raise _not_found(namespace, [name]) from err
    return _to_plugin(namespace, mgr.extensions[0], contract)


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

    def missing(absent: Any) -> None:
        raise _not_found(namespace, sorted(absent))

    mgr = named.NamedExtensionManager(
        namespace,
        list(names),
        name_order=True,
        propagate_map_exceptions=True,
        on_load_failure_callback=_raise_on_load_failure,
        on_missing_entrypoints_callback=missing,
        conflict_resolver=_raise_on_conflict,
    )
    return [_to_plugin(namespace, ext, contract) for ext in mgr.extensions]


def discover(namespace: str, contract: Contract | None = None) -> list[Discovered]:
    """Every entry point of ``namespace``, loaded and verified, failures recorded not raised."""
    failures: dict[str, BaseException] = {}

    def record(manager: Any, ep: Any, err: BaseException) -> None:
        failures[ep.name] = err

    mgr = extension.ExtensionManager(namespace, on_load_failure_callback=record)
    found: list[Discovered] = []
    for ext in mgr.extensions:
        dist, version = _owner(namespace, ext.entry_point)
        try:
            plugin = _to_plugin(namespace, ext, contract)
            found.append(Discovered(namespace, ext.name, ext.entry_point.value, dist, version,
                                    plugin, None))
        except exception.PluginError as err:
            found.append(_failed(namespace, ext.entry_point, dist, version, err))
    # Scanning every distribution's entry points is costly: only when something failed to load.
    for ep in importlib.metadata.entry_points(group=namespace) if failures else ():
        if ep.name in failures:
            dist, version = _owner(namespace, ep)
            found.append(_failed(namespace, ep, dist, version,
                                 _load_error(namespace, ep, failures[ep.name])))
    return sorted(found, key=lambda d: d.name)


def _failed(namespace: str, ep: Any, dist: str, version: str,
            err: exception.PluginError) -> Discovered:
    if isinstance(err, exception.PluginUnavailable):
        needs = ", ".join(sorted(err.missing))
        hint = "; ".join(dict.fromkeys(err.missing.values()))
        return Discovered(namespace, ep.name, ep.value, dist, version, None,
                          f"needs {needs} (not installed)", UNAVAILABLE, hint)
    return Discovered(namespace, ep.name, ep.value, dist, version, None, str(err), BROKEN)
