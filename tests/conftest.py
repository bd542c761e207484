"""Shared fixtures: embedded clouds, installed test plugins, real-backend settings."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from stevedore import extension

import stackcore
from stackcore.plugins import loader

# tests marked guest: run inside the full-kernel test guest, or drive it (tests/guest/plugin.py)
pytest_plugins = ("tests.guest.plugin", "tests.logsecrets")

T = TypeVar("T")


def backend_env(name: str, service: str) -> str:
    """A real-backend setting from tools/backends/env.sh; fail (never skip) when absent."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: start the backend with `tools/backends/up.sh {service}` "
                    "and source /var/lib/stackcore-backends/env.sh", pytrace=False)
    return value


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something true (returned), at most ``timeout``
    seconds: the way to wait for a condition, instead of sleeping a fixed time. Fails naming
    ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {result!r})")
        time.sleep(interval)


@pytest.fixture
def image_file(tmp_path: Path) -> str:
    path = tmp_path / "image.raw"
    with open(path, "wb") as handle:
        handle.truncate(1024 * 1024)
    return str(path)


#: The server databases of :func:`database_url` (param id -> the fixture giving a fresh one).
SERVER_DATABASES = {"postgresql": "pg_url", "mariadb": "mysql_url"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test on both databases: None (the embedded SQLite) and a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue(SERVER_DATABASES[request.param])
    return url


#: ``params`` of a database fixture that also runs on MariaDB (the concurrency and migration
#: tests; the rest run on SQLite and PostgreSQL only, to keep CI's time).
ALL_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                 pytest.param("mariadb", marks=pytest.mark.mysql)]


@pytest.fixture
def make_cloud(database_url: str | None) -> Iterator[Callable[..., stackcore.Cloud]]:
    """Build embedded clouds (closed at teardown) on the test's database. Periodic tasks
    (statistics) are driven by tests via tick(); heartbeats run as configured."""
    clouds: list[stackcore.Cloud] = []

    def make(**kwargs: Any) -> stackcore.Cloud:
        overrides = kwargs.pop("overrides", {})
        overrides.setdefault("DEFAULT", {}).setdefault("periodic_interval", 3600)
        if database_url:
            overrides.setdefault("database", {}).setdefault("connection", database_url)
        cloud = stackcore.Cloud(overrides=overrides, **kwargs)
        clouds.append(cloud)
        return cloud

    yield make
    for cloud in clouds:
        cloud.close()


@pytest.fixture
def cloud(make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> stackcore.Cloud:
    """An embedded cloud with two fake hosts, a flavor 'small' and an image 'img'."""
    c = make_cloud(fake_hosts=2)
    c.compute.create_flavor("small", 1, 512, 1)
    c.compute.register_image("img", image_file, "raw", {"architecture": "x86_64"})
    return c


@pytest.fixture
def installed_plugins(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Install throwaway distributions with entry points, visible to importlib.metadata and
    stevedore for the duration of a test: ``install(dist_name, {namespace: {name: target}},
    modules={"mod_name": "source"})``."""
    added: list[str] = []

    def install(dist: str, entry_points: dict[str, dict[str, str]],
                modules: dict[str, str] | None = None) -> None:
        root = tmp_path / f"site-{dist}"
        info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = []
        for group, items in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in items.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        sys.path.insert(0, str(root))
        added.append(str(root))
        _forget_plugin_caches()

    yield install
    for path in added:
        sys.path.remove(path)
    _forget_plugin_caches()


def _forget_plugin_caches() -> None:
    extension.ExtensionManager.ENTRY_POINT_CACHE.clear()
    loader._entry_point_owners.cache_clear()
    importlib.invalidate_caches()


def rabbit_vhost_url(base: str, vhost: str) -> str:
    """``base`` (a ``rabbit://`` URL of the shared node) on the virtual host ``vhost``."""
    return base.rstrip("/") + "/" + vhost


@pytest.fixture
def rabbit_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this test's own on the shared node (the test user may use
    it), deleted afterwards; :func:`rabbit_vhost_url` puts a broker URL on it.

    Why: oslo.messaging names queues by topic alone (``scheduler``, ``compute.HOST``), whatever
    the exchange, so on the shared ``/`` a service of another test or another run - one a
    failed test left behind, a concurrent checkout's - takes this deployment's calls and
    answers them from its own database. Tests that run services as processes use one."""
    import subprocess
    import urllib.parse

    base = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    vhost = f"stackcore-test-{uuid.uuid4().hex[:12]}"
    user = urllib.parse.urlsplit(base).username or "guest"
    for command in (["add_vhost", vhost],
                    ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        run = subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, text=True,
                             timeout=120, check=False)
        assert run.returncode == 0, f"rabbitmqctl {' '.join(command)}: {run.stdout}{run.stderr}"
    try:
        yield vhost
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True,
                       timeout=120, check=False)


@pytest.fixture
def rabbit_url(rabbit_vhost: str) -> str:
    """The shared node's URL on a virtual host of this test's own (:func:`rabbit_vhost`)."""
    return rabbit_vhost_url(backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq"), rabbit_vhost)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    base = backend_env("STACKCORE_TEST_PG_URL", "postgres")
    name = f"stackcore_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            # A plain DROP waits for (and signals) autovacuum workers itself; only a session
            # the test left open needs FORCE (PostgreSQL 13+, role needs pg_signal_backend).
            try:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            except sa.exc.OperationalError:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB database for one test, dropped afterwards."""
    base = backend_env("STACKCORE_TEST_MYSQL_URL", "mariadb")
    name = f"stackcore_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()
