"""Assertions of the conformance kit whose messages carry the expected and the actual value.

A driver author reads these messages, often outside pytest (``stackcore conformance`` output,
another runner, a CI log), so they never rely on pytest's assertion rewriting: every failure
says *what* was checked, what was **expected** and what was **got**::

    power state after power_off(): expected SHUTDOWN, got RUNNING

The suites use these helpers for every check (a bare ``assert`` is only for the kit's own
invariants). :class:`KitError` is an ``AssertionError``, so pytest reports it as a test failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class KitError(AssertionError):
    """A conformance check failed; the message names the check, expected and got."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + f"... ({len(text)} characters)"


def fail(what: str, expected: str, got: str) -> KitError:
    """The error for check ``what``: ``expected`` and ``got`` are already in words."""
    return KitError(f"{what}: expected {expected}, got {got}")


def equal(actual: Any, expected: Any, what: str) -> None:
    """``actual == expected``, else ``what: expected <expected>, got <actual>``."""
    if actual != expected:
        raise fail(what, _show(expected), _show(actual))


def that(condition: bool, what: str, expected: str, got: Any) -> None:
    """``condition`` holds, else ``what: expected <expected (words)>, got <got>``; ``got`` is
    shown with ``repr`` unless it is already words (a non-blank string)."""
    if not condition:
        raise fail(what, expected, got if isinstance(got, str) and got.strip() else _show(got))


def instance(value: Any, types: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, types):
        names = (types,) if isinstance(types, type) else types
        raise fail(what, "a " + " or ".join(t.__name__ for t in names),
                   f"{type(value).__name__} {_show(value)}")


def empty(items: Iterable[Any], what: str) -> None:
    """Nothing in ``items``, else ``what: expected nothing, got [...]``."""
    found = list(items)
    if found:
        raise fail(what, "nothing", _show(found))


def raises(types: type[BaseException] | tuple[type[BaseException], ...],
           call: Callable[[], Any], what: str) -> BaseException:
    """Run ``call``; it must raise one of ``types`` (returned). Anything else fails, naming
    what was raised or returned instead."""
    names = " or ".join(t.__name__ for t in ((types,) if isinstance(types, type) else types))
    try:
        result = call()
    except types as err:
        return err
    except Exception as err:
        raise fail(what, names, f"{type(err).__name__}: {err}") from err
    raise fail(what, names, f"no error (it returned {_show(result)})")


def step(what: str, call: Callable[[], T]) -> T:
    """Run one driver call the check depends on; an exception fails the check saying which
    step raised it (so a failure is blamed on the call that made it, not on a later one)."""
    try:
        return call()
    except AssertionError:
        raise
    except Exception as err:
        raise KitError(f"{what} raised {type(err).__name__}: {err}") from err
