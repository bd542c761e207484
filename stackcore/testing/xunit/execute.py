"""One generated test, run as pytest and the kit's plugin would run it.

The phases and their outcomes mirror pytest plus :mod:`stackcore.testing.plugin` exactly, so
the JSON result is the same: *setup* (fixtures; a failure is ``fail``, a ``pytest.skip`` is
``skip``), *call* (the body, then the :func:`~stackcore.testing.plugin.verify_after` checks as
part of the test), *teardown* (function-scope fixtures, last made first; a failure is ``fail``).
A test of a capability the driver declares unsupported is expected to fail: its failure is
``unsupported`` (reported to unittest as an expected failure), its success
``unexpected-success`` (reported as an unexpected success, which fails the run under unittest,
testtools and stestr), and a leak found by the checks fails it in any case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import testtools

from stackcore.testing import plugin
from stackcore.testing.xunit import fixtures
from stackcore.testing.xunit.session import Session

_SKIP = pytest.skip.Exception


@dataclasses.dataclass(frozen=True)
class Spec:
    """One test of a suite: where it comes from and what it needs."""

    nodeid: str
    suite_class: type
    method: str
    feature: str
    capability: str | None
    params: dict[str, Any]
    argnames: list[str]
    known: Mapping[str, fixtures.Fixture]


def _skip_reason(err: BaseException) -> str:
    return str(getattr(err, "msg", err))


def _setup(spec: Spec, session: Session, test: fixtures.Scope, request: fixtures.Request,
           instance: object) -> dict[str, Any]:
    resolver = fixtures.Resolver(spec.known, session.provided(), session.scope, session.tmp)
    wanted = [n for n in spec.argnames if n not in spec.params]
    kwargs = resolver.resolve(wanted, instance, test, request)
    kwargs.update(spec.params)
    return kwargs


def run(case: testtools.TestCase, spec: Spec, session: Session) -> None:
    """Run ``spec`` for ``case``: record its outcome, then report it to the unittest result."""
    record = session.record(spec.nodeid, spec.feature)
    request = fixtures.Request(fixtures.Node(spec.nodeid.rpartition("::")[2]))
    test = fixtures.Scope()
    gated_reason: str | None = None
    error: BaseException | None = None
    try:
        target = session.target()
        if spec.capability is not None and not target.declared.get(spec.capability, False):
            gated_reason = plugin.unsupported_reason(target, spec.capability)
        instance = spec.suite_class()
        try:
            kwargs = _setup(spec, session, test, request, instance)
        except _SKIP as err:
            record.update(outcome="skip", message=_skip_reason(err), phase="setup")
        except Exception as err:  # noqa: BLE001 - a fixture's failure is the test's
            error = err
            record.update(outcome="unsupported" if gated_reason else "fail",
                          message=plugin.exconly(err), phase="setup")
        else:
            error = _call(spec, instance, kwargs, request, record, gated_reason)
    finally:
        for problem in test.close():
            if gated_reason:  # pytest's xfail swallows a teardown error too
                continue
            text = f"teardown: {plugin.exconly(problem)}"
            record.update(outcome="fail", phase="teardown",
                          message=f"{record['message']}; {text}" if record["message"] else text)
            error = error or problem
    _report(case, record, error, gated_reason)


def _call(spec: Spec, instance: object, kwargs: dict[str, Any], request: fixtures.Request,
          record: dict[str, Any], gated_reason: str | None) -> BaseException | None:
    """The body and the checks after it (as ``pytest_pyfunc_call`` in the plugin)."""
    error: BaseException | None = None
    try:
        getattr(instance, spec.method)(**kwargs)
    except _SKIP as err:
        plugin.run_checks(request.node.stash)
        record.update(outcome="skip", message=_skip_reason(err), phase="call")
        return None
    except Exception as err:  # noqa: BLE001 - recorded and reported below
        error = err
    leaks = plugin.run_checks(request.node.stash)
    if leaks and error is not None:
        error.add_note("and after the test: " + "; ".join(leaks))
    elif leaks:
        error = AssertionError("after the test: " + "; ".join(leaks))
    if gated_reason and leaks:
        record.update(outcome="fail", phase="call", message=(
            "after the test (capability declared unsupported): " + "; ".join(leaks)))
    elif gated_reason and error is None:
        record.update(outcome="unexpected-success", phase="call",
                      message=f"[XPASS(strict)] {gated_reason}")
    elif gated_reason and error is not None:
        record.update(outcome="unsupported", phase="call", message=plugin.exconly(error))
    elif error is not None:
        record.update(outcome="fail", phase="call", message=plugin.exconly(error))
    else:
        record.update(outcome="pass", phase="call", message="")
    return error


def _raise(err: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise err
    return fail


def _report(case: testtools.TestCase, record: dict[str, Any], error: BaseException | None,
            gated_reason: str | None) -> None:
    outcome = record["outcome"]
    if outcome == "skip":
        case.skipTest(record["message"])
    if outcome == "unsupported":
        assert gated_reason is not None
        case.expectFailure(gated_reason, _raise(case.failureException(record["message"])))
    if outcome == "unexpected-success":
        assert gated_reason is not None
        case.expectFailure(gated_reason, lambda: None)  # raises testtools' unexpected success
    if outcome == "fail":
        raise case.failureException(record["message"]) from error
