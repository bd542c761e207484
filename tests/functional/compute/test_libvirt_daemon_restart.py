"""libvirtd stops mid-run: calls fail cleanly with BackendUnavailable, and the same driver object
works again once the daemon is back - with the running guest still there."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from stackcore import exception
from stackcore.compute.objects import Flavor, Instance, PowerState

from .conftest import make_driver

pytestmark = pytest.mark.real


def test_daemon_stop_gives_clean_errors_and_the_driver_recovers(
    private_libvirtd: Any, tmp_path: Any, base_image: Any
) -> None:
    driver = make_driver(tmp_path, uri=private_libvirtd.uri, connection_retries=2,
                         connection_retry_interval=0.2)
    instance = Instance(uuid=str(uuid.uuid4()), name="survivor <&>", host="functional-host",
                        flavor=Flavor("f", 1, 128, 1), image=base_image)
    driver.spawn(instance, base_image, [], [])
    assert driver.get_info(instance).power_state == PowerState.RUNNING

    private_libvirtd.stop()

    calls = {
        "get_info": lambda: driver.get_info(instance),
        "list_instances": driver.list_instances,
        "get_available_resource": driver.get_available_resource,
        "power_off": lambda: driver.power_off(instance),
        "destroy": lambda: driver.destroy(instance, [], [], True),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(exception.BackendUnavailable) as caught:
            call()
        assert private_libvirtd.uri in str(caught.value), name
        assert time.monotonic() - started < 10, f"{name} hung instead of failing"

    private_libvirtd.start()

    # Same driver object: it reconnects by itself; the guest kept running meanwhile.
    assert driver.get_info(instance).power_state == PowerState.RUNNING
    assert driver.list_instances() == [instance.uuid]
    driver.power_off(instance)
    assert driver.get_info(instance).power_state == PowerState.SHUTDOWN
    driver.destroy(instance, [], [], True)
    assert driver.list_instances() == []
