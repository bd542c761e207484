"""The quota engine: limits and usage, OverQuota naming resource/requested/used/limit, nothing
persisted past a limit, and no overshoot under concurrency - threads and processes on
PostgreSQL, and SQLite."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading

import pytest
from oslo_config import cfg

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.project.models import QuotaUsage
from stackcore.project.quota import Quotas, Resource

RESOURCES = {"widgets": Resource("widgets", 10, "Widgets"),
             "gizmos": Resource("gizmos", -1, "Gizmos")}


def _engine(url: str) -> tuple[db_api.Database, Quotas]:
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.IntOpt(r.name, default=r.default) for r in RESOURCES.values()],
                       group="quota")
    conf([])
    db = db_api.Database(url)
    db.upgrade()
    return db, Quotas(conf, RESOURCES)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/q.sqlite"
    return request.getfixturevalue("pg_url")


def test_consume_release_and_limits(url) -> None:
    db, quotas = _engine(url)
    with db.transaction() as s:
        quotas.consume(s, "p", {"widgets": 4, "gizmos": 1000})
    with pytest.raises(exception.OverQuota) as caught:
        with db.transaction() as s:
            quotas.consume(s, "p", {"gizmos": 1, "widgets": 7})
    err = caught.value
    assert (err.resource, err.requested, err.used, err.limit) == ("widgets", 7, 4, 10), err.kwargs
    with db.transaction() as s:
        usage = quotas.usage(s, "p")
    # the failed transaction took nothing, gizmos included
    assert (usage["widgets"].in_use, usage["gizmos"].in_use) == (4, 1000), usage
    with db.transaction() as s:
        quotas.set_limit(s, "p", "widgets", 5)
        quotas.release(s, "p", {"widgets": 10})  # never below zero
    with db.transaction() as s:
        usage = quotas.usage(s, "p")
    assert (usage["widgets"].in_use, usage["widgets"].limit) == (0, 5), usage
    with pytest.raises(exception.Invalid, match="not a quota resource"):
        with db.transaction() as s:
            quotas.consume(s, "p", {"sprockets": 1})
    db.dispose()


def _consume_many(url: str, count: int) -> int:
    db, quotas = _engine(url)
    won = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal won
        try:
            with db.transaction() as s:
                quotas.consume(s, "race", {"widgets": 1})
        except exception.OverQuota:
            return
        with lock:
            won += 1

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: one(), range(count)))
    db.dispose()
    return won


def test_concurrent_consumers_never_pass_the_limit(url) -> None:
    db, _ = _engine(url)  # migrate once before the workers start
    db.dispose()
    processes = 8 if url.startswith("postgresql") else 2
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        won = sum(pool.map(_consume_many, [url] * processes, [6] * processes))
    db, _ = _engine(url)
    with db.transaction() as s:
        stored = s.get(QuotaUsage, ("race", "widgets")).in_use
    db.dispose()
    assert (won, stored) == (10, 10), f"{won} consumers won, usage {stored}, limit 10"
