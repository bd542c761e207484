"""The quota engine: limits (per project, defaults, unlimited, per type), OverQuota naming
resource/requested/used/limit, usage counted from rows (a rolled-back create leaves nothing),
and no overshoot under concurrency - threads and processes on PostgreSQL, and SQLite."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import uuid

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.project.quota import Quotas, Resource

WIDGETS = sa.Table("test_widgets", sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True),
                   sa.Column("project_id", sa.String(255), index=True),
                   sa.Column("kind", sa.String(32)), sa.Column("size", sa.Integer))


def count_widgets(project_id: str, resource: str):
    return sa.select(sa.func.count()).select_from(WIDGETS).where(
        WIDGETS.c.project_id == project_id).scalar_subquery()


def sum_sizes(project_id: str, resource: str):
    query = sa.select(sa.func.coalesce(sa.func.sum(WIDGETS.c.size), 0)).where(
        WIDGETS.c.project_id == project_id)
    if resource.startswith("gigabytes_"):
        query = query.where(WIDGETS.c.kind == resource[len("gigabytes_"):])
    return query.scalar_subquery()


RESOURCES = {
    "widgets": Resource("widgets", 10, "Widgets", f"{__name__}:count_widgets"),
    "gigabytes": Resource("gigabytes", -1, "Gigabytes", f"{__name__}:sum_sizes"),
}


def _engine(url: str) -> tuple[db_api.Database, Quotas]:
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.IntOpt(r.name, default=r.default) for r in RESOURCES.values()],
                       group="quota")
    conf([])
    db = db_api.Database(url)
    db.upgrade()
    WIDGETS.create(db.engine, checkfirst=True)
    return db, Quotas(conf, RESOURCES)


def _create(db, quotas, project: str, size: int = 1, kind: str = "ssd") -> None:
    with db.transaction() as session:
        quotas.check(session, project, {"widgets": 1, "gigabytes": size,
                                        f"gigabytes_{kind}": size})
        session.execute(WIDGETS.insert().values(id=str(uuid.uuid4()), project_id=project,
                                                kind=kind, size=size))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/q.sqlite"
    return request.getfixturevalue("pg_url")


def test_limits_and_over_quota(url) -> None:
    db, quotas = _engine(url)
    for _ in range(4):
        _create(db, quotas, "p", size=100)
    with db.transaction() as s:
        quotas.set_limit(s, "p", "widgets", 5)
        quotas.set_limit(s, "p", "gigabytes_ssd", 450)
    with pytest.raises(exception.OverQuota) as caught:
        _create(db, quotas, "p", size=100)
    err = caught.value
    assert (err.resource, err.requested, err.used, err.limit) == ("gigabytes_ssd", 100, 400,
                                                                  450), err.kwargs
    _create(db, quotas, "p", size=10, kind="hdd")  # another type, and widget 5 of 5
    with pytest.raises(exception.OverQuota, match="widgets of project p: requested 1, 5 in "
                                                  "use, limit 5"):
        _create(db, quotas, "p", kind="hdd")
    _create(db, quotas, "q")  # other projects are not affected
    with db.transaction() as s:
        usage = quotas.usage(s, "p")
        quotas.unset_limit(s, "p", "widgets")
    assert (usage["widgets"].in_use, usage["widgets"].limit) == (5, 5), usage
    assert (usage["gigabytes"].in_use, usage["gigabytes"].limit) == (410, -1), usage
    assert (usage["gigabytes_ssd"].in_use, usage["gigabytes_ssd"].limit) == (400, 450), usage
    with db.transaction() as s:
        assert quotas.usage(s, "p")["widgets"].limit == 10
    with pytest.raises(exception.Invalid, match="not a quota resource"):
        with db.transaction() as s:
            quotas.check(s, "p", {"sprockets": 1})
    db.dispose()


def _create_many(url: str, count: int) -> int:
    db, quotas = _engine(url)
    won = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal won
        try:
            _create(db, quotas, "race")
        except exception.OverQuota:
            return
        with lock:
            won += 1

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: one(), range(count)))
    db.dispose()
    return won


def test_concurrent_creators_never_pass_the_limit(url) -> None:
    db, _ = _engine(url)  # migrate once before the workers start
    db.dispose()
    processes = 8 if url.startswith("postgresql") else 2
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        won = sum(pool.map(_create_many, [url] * processes, [6] * processes))
    db, _quotas = _engine(url)
    with db.transaction() as s:
        stored = s.execute(sa.select(count_widgets("race", "widgets"))).scalar_one()
    db.dispose()
    assert (won, stored) == (10, 10), f"{won} creators won, {stored} rows, limit 10"
