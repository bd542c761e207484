"""Contract verification: every defect is found and listed, by signature, not by name."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from stackcore.compute.driver import CONTRACT
from stackcore.compute.fake import FakeHypervisorDriver
from stackcore.plugins.contract import signature_problems


def test_reference_driver_complies() -> None:
    assert CONTRACT.problems(FakeHypervisorDriver) == []


def test_not_a_class() -> None:
    assert CONTRACT.problems(lambda: None) == ["is a function, not a class"]


def test_every_problem_is_listed_at_once() -> None:
    class Broken(FakeHypervisorDriver):
        VERSION = ""
        capabilities: ClassVar[dict[str, Any]] = {"pause": "yes", "teleport": True}

        def spawn(self, instance):  # type: ignore[override]  # missing 3 parameters
            pass

        reboot = 42  # type: ignore[assignment]

        def power_off(self, instance, timeout):  # type: ignore[override]  # default dropped
            pass

        async def power_on(self, instance):  # type: ignore[override]
            pass

    problems = CONTRACT.problems(Broken)
    assert "spawn(): missing parameter 'image'" in problems
    assert "spawn(): missing parameter 'network_info'" in problems
    assert "reboot is a int, not a method" in problems
    assert "power_off(): parameter 'timeout' needs a default (callers may omit it)" in problems
    assert any("power_on() is a coroutine" in p for p in problems)
    assert "VERSION is missing or not a non-empty string" in problems
    assert any("capability 'teleport' is unknown" in p for p in problems)
    assert "capability 'pause' must be True or False, not 'yes'" in problems


def test_declared_capability_needs_its_methods() -> None:
    from stackcore.compute.driver import HypervisorDriver

    class Liar(FakeHypervisorDriver):
        capabilities: ClassVar[dict[str, bool]] = {"pause": True}
        pause = HypervisorDriver.pause
        unpause = HypervisorDriver.unpause

    assert CONTRACT.problems(Liar) == [
        "capability 'pause' is declared but pause() is not implemented",
        "capability 'pause' is declared but unpause() is not implemented",
    ]


def test_abstract_method_left_unimplemented() -> None:
    from stackcore.compute.driver import HypervisorDriver

    class Partial(HypervisorDriver):
        VERSION = "1"

    problems = CONTRACT.problems(Partial)
    assert "spawn() is still abstract (not implemented)" in problems
    assert len([p for p in problems if "still abstract" in p]) == len(CONTRACT.required)


def test_constructor_signature_checked() -> None:
    class NeedsMore(FakeHypervisorDriver):
        def __init__(self, conf, host, secret):  # type: ignore[no-untyped-def]
            super().__init__(conf, host)

    assert "__init__(): extra parameter 'secret' has no default (callers never pass it)" in (
        CONTRACT.problems(NeedsMore)
    )


@pytest.mark.parametrize(
    ("impl", "expected"),
    [
        ("def f(self, a, b=1, *, c=2): pass", []),
        ("def f(self, a, b=1, *, c=2, d=3): pass", []),
        ("def f(self, *args, **kwargs): pass", []),
        ("def f(self, x, b=1, *, c=2): pass", [
            "positional parameter 1 is 'x', the contract calls it 'a'",
            "extra parameter 'x' has no default (callers never pass it)",
        ]),
        ("def f(self, a, b=1): pass", ["missing parameter 'c'"]),
        ("def f(self, a, b, *, c=2): pass", ["parameter 'b' needs a default (callers may omit it)"]),
        ("def f(self, a, b=1, *, c=2, z): pass", ["extra parameter 'z' has no default (callers never pass it)"]),
    ],
)
def test_signature_rules(impl: str, expected: list[str]) -> None:
    def ref(self, a, b=1, *, c=2):  # type: ignore[no-untyped-def]
        pass

    namespace: dict[str, Any] = {}
    exec(impl, namespace)
    assert signature_problems(ref, namespace["f"]) == expected


def test_declared_backend_libraries_must_be_installed() -> None:
    class NeedsMissing(FakeHypervisorDriver):
        REQUIRES: ClassVar[dict[str, str]] = {
            "json": "stdlib", "stackcore_no_such_module": "pip install nothing"}

    assert CONTRACT.problems(NeedsMissing) == [
        "needs the Python module 'stackcore_no_such_module', which is not installed "
        "(pip install nothing)"
    ]


@pytest.mark.parametrize(("declared", "problem"), [
    (None, None),
    ("1.0", None),
    ("0.9", "was written for compute contract 0.9; this stackcore implements 1.0"),
    ("2.0", "was written for compute contract 2.0; this stackcore implements 1.0"),
    ("1.7", "needs compute contract 1.7, newer than this stackcore's 1.0"),
    ("one", "CONTRACT_VERSION must be 'MAJOR.MINOR', not 'one'"),
])
def test_contract_version_declared_by_a_plugin(declared: str | None, problem: str | None) -> None:
    attrs = {} if declared is None else {"CONTRACT_VERSION": declared}
    cls = type("Versioned", (FakeHypervisorDriver,), attrs)
    assert CONTRACT.version == "1.0"
    found = [p for p in CONTRACT.problems(cls) if "contract" in p.lower() or "MAJOR" in p]
    if problem is None:
        assert found == [], found
    else:
        assert any(problem in p for p in found), f"expected {problem!r} in {found}"
