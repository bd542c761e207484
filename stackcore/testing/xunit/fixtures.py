"""A fixture resolver for the suites' pytest fixtures, without pytest running.

It handles exactly what the suites use (a unit test walks every suite module to prove it):
fixtures defined by ``@pytest.fixture`` in the suite module or on the suite class, with
``function`` or ``session`` scope, plain or generator functions, depending on other fixtures;
the kit's own fixtures (``stackcore_target``, ``stackcore_settle``); and pytest's ``request``
(only ``request.node.stash``, which :func:`stackcore.testing.plugin.verify_after` and the
suites use), ``tmp_path`` and ``tmp_path_factory``. Anything else (fixture ``params``, another
scope, an unknown fixture name) is refused with an error naming it, when the cases are built.

pytest's fixture objects are read through two attributes: ``_fixture_function_marker`` plus
``_get_wrapped_function()`` (pytest >= 8.4) or ``_pytestfixturefunction`` plus
``__pytest_wrapped__`` (pytest 8.0-8.3); see :func:`definition`.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

#: pytest's fixtures the resolver provides itself
BUILTIN = frozenset({"request", "tmp_path", "tmp_path_factory"})


@dataclasses.dataclass(frozen=True)
class Fixture:
    name: str
    function: Callable[..., Any]
    scope: str
    #: the fixture is a method of the suite class (bound to the test's instance)
    method: bool = False

    def argnames(self) -> list[str]:
        params = list(inspect.signature(self.function).parameters)
        return params[1:] if self.method else params


def definition(obj: Any, method: bool = False) -> Fixture | None:
    """The fixture behind a ``@pytest.fixture`` object, or None if ``obj`` is not one."""
    marker = getattr(obj, "_fixture_function_marker", None)  # pytest >= 8.4
    if marker is not None:
        function = obj._get_wrapped_function()  # noqa: SLF001 - see the module doc
    else:
        marker = getattr(obj, "_pytestfixturefunction", None)  # pytest 8.0-8.3
        if marker is None:
            return None
        function = obj.__pytest_wrapped__.obj
    name = marker.name or function.__name__
    if marker.params is not None:
        raise NotImplementedError(f"fixture {name!r}: fixture params are not supported by "
                                  "the unittest runner of the kit")
    if marker.scope not in ("function", "session"):
        raise NotImplementedError(f"fixture {name!r}: scope {marker.scope!r} is not supported "
                                  "by the unittest runner of the kit (function, session)")
    return Fixture(name, function, marker.scope, method)


def collect(namespace: Mapping[str, Any], method: bool = False) -> dict[str, Fixture]:
    found = {}
    for value in namespace.values():
        fixture = definition(value, method)
        if fixture is not None:
            found[fixture.name] = fixture
    return found


class TmpPathFactory:
    """``tmp_path_factory``: numbered directories under one base removed by :meth:`close`."""

    def __init__(self) -> None:
        self._base: pathlib.Path | None = None
        self._numbers = itertools.count()

    def getbasetemp(self) -> pathlib.Path:
        if self._base is None:
            self._base = pathlib.Path(tempfile.mkdtemp(prefix="stackcore-kit-"))
        return self._base

    def mktemp(self, basename: str, numbered: bool = True) -> pathlib.Path:
        name = re.sub(r"[\W]", "_", basename)[:30]
        path = self.getbasetemp() / (f"{name}{next(self._numbers)}" if numbered else name)
        path.mkdir()
        return path

    def close(self) -> None:
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None


@dataclasses.dataclass
class Node:
    """What the suites read of pytest's ``request.node``."""

    name: str
    stash: pytest.Stash = dataclasses.field(default_factory=pytest.Stash)


@dataclasses.dataclass
class Request:
    """What the suites read of pytest's ``request``."""

    node: Node


class Scope:
    """Values of one scope (a test or the session) and their teardowns, last made first."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._teardowns: list[tuple[str, Iterator[Any]]] = []

    def make(self, fixture: Fixture, function: Callable[..., Any], kwargs: dict[str, Any]
             ) -> Any:
        if inspect.isgeneratorfunction(fixture.function):
            generator = function(**kwargs)
            value = next(generator)
            self._teardowns.append((fixture.name, generator))
        else:
            value = function(**kwargs)
        self.values[fixture.name] = value
        return value

    def close(self) -> list[BaseException]:
        """Run every teardown (last made first); return the errors they raised."""
        errors: list[BaseException] = []
        while self._teardowns:
            name, generator = self._teardowns.pop()
            try:
                next(generator)
            except StopIteration:
                continue
            except Exception as err:  # noqa: BLE001 - every teardown runs; all reported
                errors.append(err)
                continue
            errors.append(ValueError(f"fixture {name!r} yielded twice"))
        self.values.clear()
        return errors


class Resolver:
    """Builds the fixture values one test asks for (``argnames``) and remembers teardowns."""

    def __init__(self, fixtures: Mapping[str, Fixture],
                 provided: Mapping[str, Callable[[], Any]], session: Scope,
                 tmp: TmpPathFactory) -> None:
        self.fixtures = fixtures
        self.provided = provided  # the kit's own: stackcore_target, stackcore_settle
        self.session = session
        self.tmp = tmp

    def resolve(self, argnames: list[str], instance: object, test: Scope, request: Request
                ) -> dict[str, Any]:
        return {name: self._value(name, instance, test, request, ()) for name in argnames}

    def _value(self, name: str, instance: object, test: Scope, request: Request,
               chain: tuple[str, ...]) -> Any:
        if name in chain:
            raise RuntimeError(f"fixture {name!r} depends on itself: {' -> '.join(chain)}")
        if name == "request":
            return request
        if name == "tmp_path_factory":
            return self.tmp
        if name == "tmp_path":
            if name not in test.values:
                test.values[name] = self.tmp.mktemp(request.node.name)
            return test.values[name]
        if name in self.provided:
            return self.provided[name]()
        fixture = self.fixtures[name]
        scope = self.session if fixture.scope == "session" else test
        if name in scope.values:
            return scope.values[name]
        kwargs = {arg: self._value(arg, instance, test, request, (*chain, name))
                  for arg in fixture.argnames()}
        function = fixture.function.__get__(instance) if fixture.method else fixture.function
        return scope.make(fixture, function, kwargs)


#: the kit's own fixtures (the pytest plugin's), provided by the session
PROVIDED = frozenset({"stackcore_target", "stackcore_settle"})


def check_names(known: Mapping[str, Fixture], argnames: list[str], where: str) -> None:
    """Refuse (naming it) a fixture the resolver cannot provide, before anything runs."""
    pending, seen = list(argnames), set()
    while pending:
        name = pending.pop()
        if name in seen or name in BUILTIN or name in PROVIDED:
            continue
        seen.add(name)
        if name not in known:
            raise NotImplementedError(
                f"{where}: fixture {name!r} is not provided by the unittest runner of the kit")
        pending.extend(known[name].argnames())
