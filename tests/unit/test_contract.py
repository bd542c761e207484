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
        # A renamed parameter is one problem, not also "an extra parameter without default".
        ("def f(self, x, b=1, *, c=2): pass", [
            "positional parameter 1 is 'x', the contract calls it 'a'",
        ]),
        ("def f(self, a, b=1): pass", ["missing parameter 'c'"]),
        ("def f(self, a, b, *, c=2): pass", ["parameter 'b' needs a default (callers may omit it)"]),
        ("def f(self, a, b=1, *, c=2, z): pass", ["extra parameter 'z' has no default (callers never pass it)"]),
        # the same names and kinds as the contract's, a default missing: not the fast path
        ("def f(self, a, b=1, *, c): pass", ["parameter 'c' needs a default (callers may omit it)"]),
        ("def f(self, a, b, *, c=2): pass", ["parameter 'b' needs a default (callers may omit it)"]),
        # a decorated method is checked by the signature it declares (its __wrapped__), even
        # when the wrapper's own code has the contract's shape
        ("import functools\n"
         "def g(self, a): pass\n"
         "@functools.wraps(g)\n"
         "def f(self, a, b=1, *, c=2): pass", ["missing parameter 'b'", "missing parameter 'c'"]),
    ],
)
def test_signature_rules(impl: str, expected: list[str]) -> None:
    def ref(self, a, b=1, *, c=2):  # type: ignore[no-untyped-def]
        pass

    namespace: dict[str, Any] = {}
    exec(impl, namespace)
    assert signature_problems(ref, namespace["f"]) == expected


def test_missing_backend_library_is_not_a_contract_problem() -> None:
    """A plugin whose backend library is absent meets its contract: it is *unavailable* (the
    loader says so with the install hint), not broken."""

    class NeedsMissing(FakeHypervisorDriver):
        REQUIRES: ClassVar[dict[str, str]] = {
            "json": "stdlib", "stackcore_no_such_module": "pip install nothing"}

    assert CONTRACT.problems(NeedsMissing) == []
    assert CONTRACT.missing_requirements(NeedsMissing) == {
        "stackcore_no_such_module": "pip install nothing"}


def test_malformed_requires_is_a_contract_problem() -> None:
    class BadRequires(FakeHypervisorDriver):
        REQUIRES: ClassVar[Any] = ["rados"]

    assert CONTRACT.problems(BadRequires) == [
        "REQUIRES must be a mapping of module name to install hint (strings), not ['rados']"]


def _families() -> list[Any]:
    from stackcore import families

    return [kind for kind in families.kinds()]


@pytest.mark.parametrize("kind", _families(), ids=lambda k: k.name)
def test_a_class_that_does_not_subclass_the_base_is_refused(kind: Any) -> None:
    """Defect 7/10: a look-alike class was accepted, then failed with NoSuchOptError."""
    contract = kind.contract()
    lookalike = type("LookAlike", (), {"VERSION": "1.0"})
    problems = contract.problems(lookalike)
    base = f"{contract.base.__module__}.{contract.base.__qualname__}"
    assert problems[0] == (f"does not subclass {base} (every {contract.family} plugin must: "
                           "its constructor, options and defaults come from it)"), problems
    assert len(problems) == len(set(problems)), problems


def test_each_problem_is_listed_once() -> None:
    """Defect 9: a method that is both required and a declared capability's was listed twice."""
    from stackcore.volume.driver import CONTRACT as VOLUME
    from stackcore.volume.fake import FakeVolumeDriver

    class Renamed(FakeVolumeDriver):
        def extend_volume(self, volume, size):  # type: ignore[no-untyped-def,override]
            pass

    assert VOLUME.problems(Renamed) == [
        "extend_volume(): positional parameter 2 is 'size', the contract calls it 'new_size'"]


@pytest.mark.parametrize(("protocol", "problem"), [
    ("FC", "STORAGE_PROTOCOL 'FC' has no connection_info schema in this stackcore "
           "(supported: iSCSI, NFS, ceph, file)"),
    ("iscsi", "STORAGE_PROTOCOL 'iscsi' is not one of iSCSI, NFS, ceph, file"),
    ("NFS", None),
])
def test_volume_storage_protocol_must_be_one_the_kit_can_attach(protocol: str,
                                                                problem: str | None) -> None:
    """Defect 7: any of Cinder's 17 protocols loaded, then the kit died with KeyError."""
    from stackcore.volume.driver import CONTRACT as VOLUME
    from stackcore.volume.fake import FakeVolumeDriver

    cls = type("Proto", (FakeVolumeDriver,), {"STORAGE_PROTOCOL": protocol})
    assert VOLUME.problems(cls) == ([problem] if problem else [])


def test_stats_integers_must_be_integers() -> None:
    """Defect 7: JSON Schema's "integer" accepts 8192.0; a stats report must not."""
    from stackcore import exception
    from stackcore.compute import stats
    from stackcore.compute.fake import FakeHypervisorDriver as Fake
    from stackcore.conf import load

    conf = load()
    from stackcore import conf as sc_conf

    sc_conf.register(conf, Fake.list_opts())
    report = Fake(conf, "h").get_available_resource()
    stats.validate(report, "fake")
    with pytest.raises(exception.StatsSchemaError) as caught:
        stats.validate({**report, "memory_mb": 8192.0}, "fake")
    assert str(caught.value) == (
        "stats from fake rejected: field 'memory_mb': 8192.0 is not of type 'integer'")


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
