"""Plugin loading is loud: every failure names namespace, entry point and distribution."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from stackcore import exception
from stackcore.compute.driver import CONTRACT, NAMESPACE
from stackcore.plugins import loader

GOOD = """
from stackcore.compute.fake import FakeHypervisorDriver

class Good(FakeHypervisorDriver):
    VERSION = "2.0"
"""

BROKEN = """
from stackcore.compute.fake import FakeHypervisorDriver

class Broken(FakeHypervisorDriver):
    VERSION = ""

    def spawn(self, instance):
        pass
"""


def test_load_reference_driver() -> None:
    plugin = loader.load_one(NAMESPACE, "fake", CONTRACT)
    assert plugin.cls.__name__ == "FakeHypervisorDriver"
    assert plugin.target == "stackcore.compute.fake:FakeHypervisorDriver"


def test_missing_name_lists_what_is_installed() -> None:
    with pytest.raises(exception.PluginNotFound) as caught:
        loader.load_one(NAMESPACE, "vmware", CONTRACT)
    message = str(caught.value)
    assert "'vmware'" in message and NAMESPACE in message and "fake" in message


def test_import_error_names_entry_point_and_distribution(installed_plugins) -> None:
    installed_plugins("acme-drivers", {NAMESPACE: {"acme": "acme_missing_module:Driver"}})
    with pytest.raises(exception.PluginLoadError) as caught:
        loader.load_one(NAMESPACE, "acme", CONTRACT)
    message = str(caught.value)
    assert "'acme'" in message
    assert "acme_missing_module:Driver" in message
    assert "acme-drivers 1.0" in message
    assert "ModuleNotFoundError" in message


def test_duplicate_name_across_distributions_is_refused(installed_plugins) -> None:
    installed_plugins("one-drivers", {NAMESPACE: {"twin": "twin_a:Good"}}, {"twin_a": GOOD})
    installed_plugins("two-drivers", {NAMESPACE: {"twin": "twin_b:Good"}}, {"twin_b": GOOD})
    with pytest.raises(exception.PluginLoadError) as caught:
        loader.load_one(NAMESPACE, "twin", CONTRACT)
    assert "one-drivers" in str(caught.value) and "two-drivers" in str(caught.value)


def test_contract_failure_lists_every_problem(installed_plugins) -> None:
    installed_plugins("bad-drivers", {NAMESPACE: {"bad": "bad_driver:Broken"}},
                      {"bad_driver": BROKEN})
    with pytest.raises(exception.DriverContractError) as caught:
        loader.load_one(NAMESPACE, "bad", CONTRACT)
    err = caught.value
    assert "bad-drivers" in str(err) and "'bad'" in str(err)
    assert "spawn(): missing parameter 'image'" in err.problems
    assert "VERSION is missing or not a non-empty string" in err.problems


def test_third_party_plugin_loads(installed_plugins) -> None:
    installed_plugins("good-drivers", {NAMESPACE: {"good": "good_driver:Good"}},
                      {"good_driver": GOOD})
    assert loader.load_one(NAMESPACE, "good", CONTRACT).cls.VERSION == "2.0"


def test_load_ordered_keeps_configured_order(installed_plugins) -> None:
    installed_plugins("good-drivers", {NAMESPACE: {"good": "good_driver2:Good"}},
                      {"good_driver2": GOOD})
    names = [p.name for p in loader.load_ordered(NAMESPACE, ["good", "fake"], CONTRACT)]
    assert names == ["good", "fake"]
    names = [p.name for p in loader.load_ordered(NAMESPACE, ["fake", "good"], CONTRACT)]
    assert names == ["fake", "good"]


def test_load_ordered_refuses_missing_and_duplicates() -> None:
    with pytest.raises(exception.PluginNotFound, match="'ghost'"):
        loader.load_ordered(NAMESPACE, ["fake", "ghost"], CONTRACT)
    with pytest.raises(exception.ConfigError, match="listed twice"):
        loader.load_ordered(NAMESPACE, ["fake", "fake"], CONTRACT)


def test_discover_records_failures_instead_of_raising(installed_plugins) -> None:
    installed_plugins("bad-drivers", {NAMESPACE: {"bad": "bad_driver3:Broken",
                                                  "gone": "nowhere:X"}},
                      {"bad_driver3": BROKEN})
    found = {d.name: d for d in loader.discover(NAMESPACE, CONTRACT)}
    assert found["fake"].plugin is not None and found["fake"].error is None
    assert found["bad"].plugin is None and "spawn()" in (found["bad"].error or "")
    assert found["gone"].plugin is None and "ModuleNotFoundError" in (found["gone"].error or "")
    assert found["bad"].distribution == "bad-drivers"


NEEDS_LIBRARY = """
from typing import ClassVar
from stackcore.compute.fake import FakeHypervisorDriver

class NeedsLib(FakeHypervisorDriver):
    REQUIRES: ClassVar[dict] = {"stackcore_no_such_lib": "pip install stackcore-no-such-lib"}
"""

LOOKALIKE = """
class LookAlike:
    VERSION = "1.0"
    def __init__(self, conf, host):
        pass
"""


def test_missing_backend_library_makes_a_plugin_unavailable_not_broken(
        installed_plugins) -> None:
    installed_plugins("lib-drivers", {NAMESPACE: {"needslib": "needs_lib:NeedsLib"}},
                      {"needs_lib": NEEDS_LIBRARY})
    with pytest.raises(exception.PluginUnavailable) as caught:
        loader.load_one(NAMESPACE, "needslib", CONTRACT)
    assert caught.value.missing == {"stackcore_no_such_lib": "pip install stackcore-no-such-lib"}
    assert "is unavailable: it needs the Python module 'stackcore_no_such_lib' " \
           "(pip install stackcore-no-such-lib)" in str(caught.value)
    found = {d.name: d for d in loader.discover(NAMESPACE, CONTRACT)}["needslib"]
    assert (found.status, found.error, found.hint) == (
        "unavailable", "needs stackcore_no_such_lib (not installed)",
        "pip install stackcore-no-such-lib")


def test_import_of_a_missing_third_party_module_is_unavailable(installed_plugins) -> None:
    installed_plugins("lib2-drivers", {NAMESPACE: {"importslib": "imports_lib:Driver"}},
                      {"imports_lib": "import stackcore_absent_backend_lib\n"})
    found = {d.name: d for d in loader.discover(NAMESPACE, CONTRACT)}["importslib"]
    assert found.status == "unavailable", found
    assert found.hint == "install the Python module 'stackcore_absent_backend_lib'"


def test_a_missing_module_of_the_plugins_own_package_is_broken(installed_plugins) -> None:
    installed_plugins("own-drivers", {NAMESPACE: {"own": "own_pkg_missing.sub:Driver"}})
    found = {d.name: d for d in loader.discover(NAMESPACE, CONTRACT)}["own"]
    assert found.status == "broken" and "ModuleNotFoundError" in (found.error or ""), found


def test_a_class_not_subclassing_the_base_is_refused_by_name(installed_plugins) -> None:
    """Defect 10: it used to fail later with ``NoSuchOptError: no such option backend``."""
    installed_plugins("look-drivers", {NAMESPACE: {"look": "look_alike:LookAlike"}},
                      {"look_alike": LOOKALIKE})
    with pytest.raises(exception.DriverContractError) as caught:
        loader.load_one(NAMESPACE, "look", CONTRACT)
    assert caught.value.problems[0].startswith(
        "does not subclass stackcore.compute.driver.HypervisorDriver")


class _Distribution(importlib.metadata.Distribution):
    """A distribution whose files are given as texts (no files on disk)."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files = files

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: Any) -> Any:
        raise FileNotFoundError(path)


@pytest.mark.parametrize(("files", "owner"), [
    # the header block only: a "Name:" in the long description must not count
    ({"METADATA": "Metadata-Version: 2.1\nName: pkg-a\nVersion: 1.2\nSummary: x\n\n"
                  "Name: not-this\n"}, ("pkg-a", "1.2")),
    ({"PKG-INFO": "Metadata-Version: 1.0\nVersion: 3\nName: pkg-b\n"}, ("pkg-b", "3")),
    # no Version in the header block: the email package's full parse decides
    ({"METADATA": "Metadata-Version: 2.1\nName: pkg-c\n\nVersion: 9\n"}, ("pkg-c", "?")),
])
def test_distribution_owner_reads_name_and_version_from_the_header_block(
        files: dict[str, str], owner: tuple[str, str]) -> None:
    got = loader._distribution_owner(_Distribution(files))
    assert got == owner, f"{files}: {got}"
