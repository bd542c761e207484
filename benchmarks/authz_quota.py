"""Authorisation + quota overhead per create, against the same create with both disabled, in
the same run.

For each create (``create_network``, ``create_port``, ``create_server``) the benchmark runs
``--rounds`` pairs, alternating the two variants within each pair so that drift of a busy
machine hits both alike:

* **checked**: ``cloud.as_project(member)`` - oslo.policy rule check on every call, quota
  check (project lock row, limit lookup, count of the project's rows) in the creating
  transaction, with finite limits so the counting really runs;
* **unchecked**: the same bound APIs given a policy that allows everything and quotas that
  check nothing (``ScopedAPI.use``), i.e. the create without the two layers.

It prints the p50 of each variant and the p50 of the per-pair difference ("added"), on the
embedded SQLite and, when ``STACKCORE_TEST_PG_URL`` is set, on PostgreSQL. Goal: < 1 ms p50
added per create.

    .venv/bin/python benchmarks/authz_quota.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import stackcore
from stackcore.project import RequestContext
from stackcore.project.scope import ScopedAPI

GOAL_MS = 1.0
MEMBER = RequestContext(user_id="bench", project_id="bench-project", roles=["member"])
BIG = 10**7  # finite limits: the quota check counts rows instead of short-cutting unlimited


class AllowAll:
    """A policy that allows everything (the "checks disabled" variant)."""

    def authorize(self, *_: Any, **__: Any) -> None:
        return None


class NoQuotas:
    """Quotas that never refuse and take no lock (the "checks disabled" variant)."""

    def check(self, *_: Any, **__: Any) -> None:
        return None


def _unchecked(api: Any) -> Any:
    """A copy of bound ``api`` (and the family APIs it calls) with both layers disabled."""
    api = api.bind(api.context)
    api.use(AllowAll(), NoQuotas())
    for name in api.BOUND_APIS:
        other = getattr(api, name, None)
        if isinstance(other, ScopedAPI):
            setattr(api, name, _unchecked(other))
    return api


def _pairs(rounds: int, checked: Callable[[], Any], unchecked: Callable[[], Any],
           after_pair: Callable[[], None]) -> tuple[list[float], list[float]]:
    with_checks, without = [], []
    for i in range(rounds):
        order = (checked, unchecked) if i % 2 == 0 else (unchecked, checked)
        times = []
        for fn in order:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        after_pair()
        if i % 2 == 0:
            with_checks.append(times[0])
            without.append(times[1])
        else:
            with_checks.append(times[1])
            without.append(times[0])
    return with_checks, without


def _measure(database: str, overrides: dict[str, Any], rounds: int, image: str
             ) -> dict[str, dict[str, float]]:
    results = {}
    with stackcore.Cloud(fake_hosts=1, overrides=overrides) as cloud:
        cloud.compute.create_flavor("bench", 1, 64, 0)
        cloud.compute.register_image("bench-img", image, "raw", visibility="public")
        for resource in ("instances", "cores", "ram", "networks", "subnets", "ports"):
            cloud.project.set_quota(MEMBER.project_id, resource, BIG)
        view = cloud.as_project(MEMBER)
        network = view.network.create_network("bench-net")
        checked = {"network": view.network, "compute": view.compute}
        plain = {name: _unchecked(api) for name, api in checked.items()}
        creates: dict[str, Callable[[dict[str, Any]], Any]] = {
            "create_network": lambda a: a["network"].create_network(f"n-{uuid.uuid4().hex[:8]}"),
            "create_port": lambda a: a["network"].create_port(network.id),
            # the API call alone (where both layers work): the build it casts is awaited
            # outside the timing (after_pair), so builds never overlap the next pair
            "create_server": lambda a: built.append(a["compute"].create_server(
                f"s-{uuid.uuid4().hex[:8]}", "bench", "bench-img", wait=False).id),
        }
        built: list[str] = []

        def after_pair() -> None:
            while built:
                view.compute.wait_for_server(built.pop())

        for name, create in creates.items():
            create(checked), create(plain)  # warm up both paths
            after_pair()
            rounds_here = rounds if name != "create_server" else max(rounds // 2, 20)
            with_checks, without = _pairs(rounds_here, lambda c=create: c(checked),
                                          lambda c=create: c(plain), after_pair)
            added = [a - b for a, b in zip(with_checks, without, strict=True)]
            results[name] = {
                "rounds": rounds_here,
                "checked_p50_ms": statistics.median(with_checks) * 1000,
                "unchecked_p50_ms": statistics.median(without) * 1000,
                "added_p50_ms": statistics.median(added) * 1000,
            }
            r = results[name]
            print(f"authz+quota [{database}] {name}: checked {r['checked_p50_ms']:.2f} ms | "
                  f"unchecked {r['unchecked_p50_ms']:.2f} ms | added p50 "
                  f"{r['added_p50_ms']:.3f} ms ({rounds_here} pairs) | goal < {GOAL_MS:g} ms: "
                  f"{'met' if r['added_p50_ms'] < GOAL_MS else 'MISSED'}")
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv or [])
    results: dict[str, Any] = {"load_average_1min": os.getloadavg()[0]}
    print(f"authz+quota: load average {results['load_average_1min']:.2f} on "
          f"{os.cpu_count()} CPUs (a busy machine inflates the PostgreSQL round trips the "
          f"quota lock and read add)")
    with tempfile.TemporaryDirectory() as state:
        image = os.path.join(state, "image.raw")
        with open(image, "wb") as handle:
            handle.truncate(1024 * 1024)
        results["sqlite"] = _measure("sqlite", {"DEFAULT": {
            "state_path": os.path.join(state, "sqlite"), "periodic_interval": 3600}},
            args.rounds, image)
        pg_url = os.environ.get("STACKCORE_TEST_PG_URL")
        if pg_url:
            with _fresh_database(pg_url) as url:
                results["postgresql"] = _measure("postgresql", {
                    "DEFAULT": {"state_path": os.path.join(state, "pg"),
                                "periodic_interval": 3600},
                    "database": {"connection": url}}, args.rounds, image)
    return results


@contextlib.contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the PostgreSQL server of ``server_url``, dropped afterwards."""
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
