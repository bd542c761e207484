"""Family contracts and their verification at load time.

A :class:`Contract` states what a plugin class of one family must offer:

* ``required`` methods - present, real functions (not left abstract), with a signature any
  caller of the base class can call unchanged;
* ``capabilities`` - the optional features a plugin may declare in its ``capabilities``
  mapping, each naming the methods it needs; a capability declared ``True`` must have those
  methods implemented (overridden from the base class, whose versions raise);
* the class subclasses the family's base class (its constructor, options and defaults come
  from it: a look-alike class fails later in confusing ways, so it is refused here);
* ``VERSION`` - a non-empty string (the plugin's own version);
* ``CONTRACT_VERSION`` (optional) - the contract version the plugin was written against,
  ``MAJOR.MINOR``: refused if its major differs from the contract's (a breaking change lies
  between them) or it is newer than the contract (it may call what this stackcore lacks).

Each contract carries its version (:attr:`Contract.version`): the minor grows with additive
changes (a new optional capability or method whose base default raises ``NotSupported``), the
major with breaking ones, which follow the deprecation policy (``doc/source/deprecation.rst``).

Cinder's equivalent check compares method *names* only, which every subclass of the base class
passes trivially. Here the signature of each implementation is compared with the base
class's, parameter by parameter, and every defect is listed at once (each defect once).

Backend libraries a plugin declares in ``REQUIRES`` are *not* contract problems: a plugin whose
library is missing meets its contract but is **unavailable** on this machine
(:meth:`Contract.missing_requirements`; the loader raises
:class:`~stackcore.exception.PluginUnavailable` with the install hint).

What these checks cannot see is behaviour: a capability mapped to methods every plugin must
implement anyway (all of the volume family's) passes here whatever it does. The conformance
kit (:mod:`stackcore.testing`) tests each capability by behaviour, declared or not.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from typing import Any

_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a plugin class of one family must offer.

    ``base`` is the family's abstract base class; its method signatures are the reference.
    ``capabilities`` maps each optional capability name to the methods that implement it.
    ``extra_checks`` are further callables ``(cls) -> list[str]`` for family-specific rules.
    """

    family: str
    base: type
    required: tuple[str, ...]
    capabilities: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    needs_version: bool = True
    extra_checks: tuple[Callable[[type], list[str]], ...] = ()
    version: str = "1.0"  # MAJOR.MINOR of this contract

    def problems(self, cls: Any) -> list[str]:
        """Every way ``cls`` breaks this contract; an empty list means it complies."""
        if not inspect.isclass(cls):
            return [f"is a {type(cls).__name__}, not a class"]
        found: list[str] = []
        subclass = issubclass(cls, self.base)
        if not subclass:
            found.append(f"does not subclass {self.base.__module__}.{self.base.__qualname__} "
                         f"(every {self.family} plugin must: its constructor, options and "
                         "defaults come from it)")
        for name in self.required:
            found.extend(_method_problems(cls, self.base, name))
        if self.needs_version:
            version = getattr(cls, "VERSION", None)
            if not isinstance(version, str) or not version.strip():
                found.append("VERSION is missing or not a non-empty string")
        found.extend(self._version_problems(cls))
        found.extend(self._capability_problems(cls))
        found.extend(_requires_shape_problems(cls))
        if subclass:  # family rules assume the base class's attributes
            for check in self.extra_checks:
                found.extend(check(cls))
        return list(dict.fromkeys(found))  # a method checked as required and as capability

    def missing_requirements(self, cls: Any) -> dict[str, str]:
        """``{module: install hint}`` of the backend libraries ``cls`` declares in ``REQUIRES``
        that are not installed: the plugin meets its contract but cannot run here."""
        return _missing_requirements(cls)

    def _version_problems(self, cls: type) -> list[str]:
        declared = getattr(cls, "CONTRACT_VERSION", None)
        if declared is None:
            return []
        wanted = _major_minor(declared)
        if wanted is None:
            return [f"CONTRACT_VERSION must be 'MAJOR.MINOR', not {declared!r}"]
        have = _major_minor(self.version)
        assert have is not None, self.version
        if wanted[0] != have[0]:
            return [f"was written for {self.family} contract {declared}; this stackcore "
                    f"implements {self.version} (a different major version: see the "
                    "deprecation policy)"]
        if wanted > have:
            return [f"needs {self.family} contract {declared}, newer than this stackcore's "
                    f"{self.version}"]
        return []

    def _capability_problems(self, cls: type) -> list[str]:
        declared = getattr(cls, "capabilities", None)
        if declared is None:
            return [] if not self.capabilities else ["capabilities mapping is missing"]
        if not isinstance(declared, Mapping):
            return [f"capabilities must be a mapping, not {type(declared).__name__}"]
        found = []
        for key, value in declared.items():
            if key not in self.capabilities:
                known = ", ".join(sorted(self.capabilities)) or "none"
                found.append(f"capability {key!r} is unknown to the {self.family} family "
                             f"(known: {known})")
            elif not isinstance(value, bool):
                found.append(f"capability {key!r} must be True or False, not {value!r}")
            elif value:
                for method in self.capabilities[key]:
                    if _is_base_default(cls, self.base, method):
                        found.append(
                            f"capability {key!r} is declared but {method}() is not implemented"
                        )
                    else:
                        found.extend(_method_problems(cls, self.base, method))
        return found

    def declared(self, cls: type) -> dict[str, bool]:
        """The capability table of ``cls`` with every known capability present."""
        declared = getattr(cls, "capabilities", {}) or {}
        return {key: bool(declared.get(key, False)) for key in sorted(self.capabilities)}


def _major_minor(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    major, dot, minor = value.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


def _requires_shape_problems(cls: type) -> list[str]:
    declared = getattr(cls, "REQUIRES", {})
    if not isinstance(declared, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in declared.items()
    ):
        return ["REQUIRES must be a mapping of module name to install hint (strings), not "
                f"{declared!r}"]
    return []


def _missing_requirements(cls: type) -> dict[str, str]:
    """Backend libraries a plugin declares in ``REQUIRES`` (``{module: how to get it}``) that
    cannot be imported. Plugins import them on first use, to keep loading cheap, so without
    this check a missing library would only surface at the first call; ``find_spec`` locates a
    module without importing it."""
    declared = getattr(cls, "REQUIRES", {})
    if _requires_shape_problems(cls):
        return {}
    missing = {}
    for module, hint in declared.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            missing[module] = hint
    return missing


def _is_base_default(cls: type, base: type, name: str) -> bool:
    impl = inspect.getattr_static(cls, name, None)
    return impl is not None and impl is inspect.getattr_static(base, name, None)


def _method_problems(cls: type, base: type, name: str) -> list[str]:
    impl = inspect.getattr_static(cls, name, None)
    if impl is None:
        return [f"{name}() is missing"]
    if isinstance(impl, (staticmethod, classmethod)):
        impl = impl.__func__
    if not inspect.isfunction(impl):
        return [f"{name} is a {type(impl).__name__}, not a method"]
    if getattr(impl, "__isabstractmethod__", False):
        return [f"{name}() is still abstract (not implemented)"]
    if inspect.iscoroutinefunction(impl):
        return [f"{name}() is a coroutine function; the contract calls it synchronously"]
    ref = inspect.getattr_static(base, name, None)
    if ref is None or not inspect.isfunction(ref) or impl is ref:
        return []  # (the base class's own function trivially has the base class's signature)
    return [f"{name}(): {p}" for p in signature_problems(ref, impl)]


def signature_problems(reference: Callable[..., Any], impl: Callable[..., Any]) -> list[str]:
    """How ``impl`` cannot be called every way ``reference`` can.

    The rule: every call that binds to ``reference`` must bind to ``impl`` with each argument
    reaching the parameter of the same name. ``impl`` may add parameters only with defaults.
    """
    if _same_shape(reference, impl):
        return []
    ref_sig, impl_sig = inspect.signature(reference), inspect.signature(impl)
    ref_params = list(ref_sig.parameters.values())
    impl_params = list(impl_sig.parameters.values())
    impl_by_name = {p.name: p for p in impl_params}
    has_var_pos = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in impl_params)
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in impl_params)
    impl_positional = [p for p in impl_params if p.kind in _POSITIONAL]

    found: list[str] = []
    renamed: set[str] = set()  # reported once, as renamed, not again as an extra parameter
    for index, ref in enumerate(ref_params):
        if ref.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            wanted = has_var_pos if ref.kind is inspect.Parameter.VAR_POSITIONAL else has_var_kw
            if not wanted:
                found.append(f"must accept {ref}")
            continue
        if ref.kind in _POSITIONAL:
            if index < len(impl_positional):
                if impl_positional[index].name != ref.name and index > 0:
                    renamed.add(impl_positional[index].name)
                    found.append(
                        f"positional parameter {index} is {impl_positional[index].name!r}, "
                        f"the contract calls it {ref.name!r}"
                    )
                    continue
            elif not has_var_pos:
                found.append(f"missing parameter {ref.name!r}")
                continue
        match = impl_by_name.get(ref.name)
        if match is None:
            if not has_var_kw and ref.kind is not inspect.Parameter.POSITIONAL_ONLY:
                found.append(f"missing parameter {ref.name!r}")
            continue
        if ref.default is not _EMPTY and match.default is _EMPTY:
            found.append(f"parameter {ref.name!r} needs a default (callers may omit it)")
    ref_names = {p.name for p in ref_params}
    for extra in impl_params:
        if extra.name in ref_names or extra.name in renamed or extra.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        if extra.default is _EMPTY:
            found.append(f"extra parameter {extra.name!r} has no default (callers never pass it)")
    return found


_VARARGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


def _same_shape(reference: Callable[..., Any], impl: Callable[..., Any]) -> bool:
    """True when ``impl`` certainly meets :func:`signature_problems`' rule, read from the two
    code objects without building signatures: the same parameter names of the same kinds in
    the same order, and a default wherever ``reference`` has one. Most plugin methods repeat
    their base class's signature, and ``inspect.signature`` for each one was a good part of
    verifying every plugin (every start-up does). False - undecided, the full comparison
    runs - for anything else: other callables, and functions whose signature is not their
    code's (``__wrapped__``, ``__signature__``)."""
    if not (inspect.isfunction(reference) and inspect.isfunction(impl)):
        return False
    for fn in (reference, impl):
        if "__wrapped__" in fn.__dict__ or "__signature__" in fn.__dict__:
            return False
    ref, imp = reference.__code__, impl.__code__
    if (ref.co_argcount, ref.co_posonlyargcount, ref.co_kwonlyargcount,
            ref.co_flags & _VARARGS) != (imp.co_argcount, imp.co_posonlyargcount,
                                         imp.co_kwonlyargcount, imp.co_flags & _VARARGS):
        return False
    count = ref.co_argcount + ref.co_kwonlyargcount + bin(ref.co_flags & _VARARGS).count("1")
    if ref.co_varnames[:count] != imp.co_varnames[:count]:
        return False
    ref_kw, impl_kw = reference.__kwdefaults__ or {}, impl.__kwdefaults__ or {}
    return (len(impl.__defaults__ or ()) >= len(reference.__defaults__ or ())
            and impl_kw.keys() >= ref_kw.keys())
