"""testtools TestCase classes built from a suite module's pytest classes.

For every ``Test*`` class of the suite with a ``family`` mark, a ``testtools.TestCase``
subclass of the same name, one test method per pytest test (a ``parametrize``-d test gives one
method per parameter set, named ``test_x__<id>``). Each method runs the suite's own method
through :func:`stackcore.testing.xunit.execute.run`; nothing of the suite is copied.

Every test keeps pytest's node id (``<test file>::<Class>::<test>[<id>]``, the file relative
to the working directory), under which the JSON result lists it, so both runners write the
same result. The classes carry ``__test__ = False``: pytest, which runs the suites natively
through the plugin, does not collect them a second time.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import testtools

from stackcore.testing.xunit import execute, fixtures
from stackcore.testing.xunit.session import Session


def _marks(obj: object) -> list[Any]:
    marks = getattr(obj, "pytestmark", [])
    return list(marks) if isinstance(marks, list) else [marks]


def _closest(name: str, *levels: list[Any]) -> Any | None:
    """The mark nearest the test (method, then class, then module), as pytest finds it."""
    for marks in levels:
        for mark in marks:
            if mark.name == name:
                return mark
    return None


def _idval(value: object, argname: str, index: int) -> str:
    """pytest's id of one parameter value (its ``_idval_from_value`` rules)."""
    if isinstance(value, str):
        return value.encode("unicode_escape").decode("ascii")
    if value is None or isinstance(value, (float, int, bool, complex)):
        return str(value)
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    if isinstance(value, enum.Enum):
        return str(value)
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else f"{argname}{index}"


def _parameter_sets(method: Callable[..., Any], where: str
                    ) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(id, parameter values) per pytest parameter set of ``method``; (None, {}) if none."""
    marks = [m for m in _marks(method) if m.name == "parametrize"]
    if not marks:
        yield None, {}
        return
    if len(marks) > 1 or marks[0].kwargs.keys() - {"ids"}:
        raise NotImplementedError(f"{where}: only one parametrize mark (argnames, argvalues, "
                                  "ids) is supported by the unittest runner of the kit")
    argnames, argvalues = marks[0].args
    names = ([n.strip() for n in argnames.split(",")] if isinstance(argnames, str)
             else list(argnames))
    ids = marks[0].kwargs.get("ids")
    seen = set()
    for index, values in enumerate(argvalues):
        values = values if len(names) > 1 else (values,)
        if len(values) != len(names) or type(values).__name__ == "ParameterSet":
            raise NotImplementedError(f"{where}: parameter set {index} is not a plain tuple "
                                      f"of {len(names)} value(s)")
        ident = str(ids[index]) if ids else "-".join(
            _idval(v, n, index) for n, v in zip(names, values, strict=True))
        if ident in seen:
            raise NotImplementedError(f"{where}: duplicate parameter id {ident!r}")
        seen.add(ident)
        yield ident, dict(zip(names, values, strict=True))


def _method_name(name: str, ident: str | None) -> str:
    return name if ident is None else name + "__" + re.sub(r"\W+", "_", ident).strip("_")


def _test(spec: execute.Spec, session: Callable[[], Session], doc: str | None
          ) -> Callable[[testtools.TestCase], None]:
    def test(self: testtools.TestCase) -> None:
        execute.run(self, spec, session())
    test.__doc__ = doc
    return test


def build(suite: Any, namespace: Mapping[str, Any], session: Callable[[], Session],
          family: str | None) -> dict[str, type[testtools.TestCase]]:
    """TestCase classes for ``suite`` (a module), to live in the test module ``namespace``.

    ``family``: keep only that family's classes (None: all, e.g. when no driver is selected).
    """
    module_name = str(namespace.get("__name__", "__main__"))
    path = os.path.relpath(str(namespace.get("__file__", module_name))) \
        .replace(os.sep, "/")
    module_marks = _marks(suite)
    module_fixtures = fixtures.collect(vars(suite))
    built: dict[str, type[testtools.TestCase]] = {}
    for class_name, suite_class in vars(suite).items():
        if not (inspect.isclass(suite_class) and class_name.startswith("Test")):
            continue
        class_marks = _marks(suite_class)
        family_mark = _closest("family", class_marks, module_marks)
        if family_mark is None or (family is not None and family_mark.args[0] != family):
            continue
        known = {**module_fixtures, **fixtures.collect(vars(suite_class), method=True)}
        methods: dict[str, Any] = {"__module__": module_name, "__qualname__": class_name,
                                   "__test__": False, "__doc__": suite_class.__doc__}
        for name in dir(suite_class):
            function = getattr(suite_class, name)
            if not name.startswith("test") or not callable(function):
                continue
            marks = _marks(function)
            feature = _closest("feature", marks, class_marks, module_marks) or _closest(
                "capability", marks, class_marks, module_marks)
            capability = _closest("capability", marks, class_marks, module_marks)
            argnames = list(inspect.signature(function).parameters)[1:]
            where = f"{suite.__name__}.{class_name}.{name}"
            for ident, params in _parameter_sets(function, where):
                fixtures.check_names(known, [a for a in argnames if a not in params], where)
                nodeid = f"{path}::{class_name}::{name}" + (f"[{ident}]" if ident else "")
                spec = execute.Spec(
                    nodeid, suite_class, name,
                    str(feature.args[0]) if feature is not None else "other",
                    str(capability.args[0]) if capability is not None else None,
                    params, argnames, known)
                methods[_method_name(name, ident)] = _test(spec, session, function.__doc__)
        built[class_name] = type(class_name, (testtools.TestCase,), methods)
    return built
