"""Fixtures for the volume unit tests: embedded clouds with the fake volume backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import stackcore
from stackcore.volume.manager import BINARY


def manager_of(cloud: stackcore.Cloud, backend: str = "fake") -> Any:
    for service in cloud.services:
        if service.binary == BINARY and service.host.endswith("@" + backend):
            return service.manager
    raise LookupError(backend)


@pytest.fixture
def vcloud(make_cloud: Callable[..., stackcore.Cloud]) -> Callable[..., stackcore.Cloud]:
    """Build a cloud with only the volume service; ``fake={...}`` sets [fake] options."""

    def make(fake: dict[str, Any] | None = None, volume: dict[str, Any] | None = None,
             **kwargs: Any) -> stackcore.Cloud:
        overrides = kwargs.pop("overrides", {})
        if fake:
            overrides["fake"] = fake
        if volume:
            overrides["volume"] = volume
        return make_cloud(services=("volume",), overrides=overrides, **kwargs)

    return make
