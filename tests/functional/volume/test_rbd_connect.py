"""The RBD driver's connection retries (tenacity) against the real single-node Ceph."""

from __future__ import annotations

import time

import pytest
from oslo_config import cfg

from stackcore import exception
from tests.conftest import backend_env

pytestmark = pytest.mark.real


def test_unusable_pool_is_backend_unavailable_after_the_configured_attempts() -> None:
    pytest.importorskip("rados", reason="python3-rados is not importable in this venv")
    from stackcore_drivers.volume.rbd import OPTS, RbdDriver

    conf = cfg.ConfigOpts()
    conf(args=[])
    conf.register_opts(list(OPTS), group="backend")
    for name, value in (("rbd_ceph_conf", backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")),
                        ("rbd_pool", "stackcore-no-such-pool"), ("rados_connect_timeout", 10),
                        ("rados_connection_retries", 3), ("rados_connection_interval", 1)):
        conf.set_override(name, value, group="backend")
    driver = RbdDriver(conf, "backend", "host")
    started = time.monotonic()
    with pytest.raises(exception.BackendUnavailable,
                       match=r"pool 'stackcore-no-such-pool' after 3 attempt\(s\)"):
        driver.do_setup()
    took = time.monotonic() - started
    assert took >= 2.0, f"3 attempts 1 s apart took only {took:.1f} s: no wait between them"
