"""Fixtures for the network unit tests: a migrated SQLite database and clouds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore.db import api as db_api


@pytest.fixture
def db(tmp_path: Path) -> Iterator[db_api.Database]:
    database = db_api.Database(f"sqlite:///{tmp_path}/net.sqlite")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def net_cloud(make_cloud: Callable[..., stackcore.Cloud]) -> Callable[..., stackcore.Cloud]:
    """A cloud with network-only services and the given ``[group] option`` overrides."""

    def make(**overrides: dict[str, Any]) -> stackcore.Cloud:
        base: dict[str, dict[str, Any]] = {
            "ml2_type_vlan": {"network_vlan_ranges": ["data:100:102", "ext"]},
            "ml2_type_vxlan": {"vni_ranges": ["1000:1002"]},
            "ml2_type_flat": {"flat_networks": ["data", "ext"]},
        }
        for group, values in overrides.items():
            base.setdefault(group, {}).update(values)
        return make_cloud(overrides=base, services=("network",))

    return make
