"""Moved public names keep working for one release, with a DeprecationWarning naming the new
place (the policy: doc/source/deprecation.rst)."""

from __future__ import annotations

import importlib
import sys

import pytest

from stackcore import _compat
from stackcore.plugins import loader


def _forget(name: str) -> None:
    sys.modules.pop(name, None)


@pytest.mark.parametrize("old", sorted(_compat.MOVED_MODULES))
def test_old_module_path_imports_the_new_module_with_a_warning(old: str) -> None:
    new = _compat.MOVED_MODULES[old]
    _forget(old)
    with pytest.deprecated_call(match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new), f"{old} is not {new}"


@pytest.mark.parametrize(("module", "name"), sorted(
    (m, n) for m, names in _compat.MOVED_NAMES.items() for n in names))
def test_old_name_resolves_to_the_new_object_with_a_warning(module: str, name: str) -> None:
    new_module, _, attr = _compat.MOVED_NAMES[module][name].partition(":")
    with pytest.deprecated_call(match=f"{module}.{name} moved to {new_module}.{attr}"):
        value = getattr(importlib.import_module(module), name)
    assert value is getattr(importlib.import_module(new_module), attr)


def test_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        importlib.import_module("stackcore.db.models").Nope


def test_old_entry_point_target_still_loads(installed_plugins) -> None:
    """A third-party package registering a wave-1 target keeps loading (with the warning)."""
    installed_plugins("old-style-types", {"stackcore.network.type_drivers": {
        "oldflat": "stackcore.network.type_flat:FlatTypeDriver"}})
    _forget("stackcore.network.type_flat")
    from stackcore.network.contracts import type_driver
    from stackcore.network.types.flat import FlatTypeDriver

    with pytest.deprecated_call():
        plugin = loader.load_one(type_driver.NAMESPACE, "oldflat", type_driver.CONTRACT)
    assert plugin.cls is FlatTypeDriver
