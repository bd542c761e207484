"""A server deleted while the scheduler is placing it (embedded default and PostgreSQL)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from stackcore.compute import models
from stackcore.compute.family import SCHEDULER_BINARY


def _scheduler(cloud):
    return next(s.manager for s in cloud.services if s.binary == SCHEDULER_BINARY)


def test_server_deleted_while_scheduled_leaves_no_claim(cloud, monkeypatch) -> None:
    """The delete lands after the scheduler chose a host and before it claims it: the
    scheduler must not claim for a deleted server (the claim would hold the host's capacity
    until a restart)."""
    scheduler = _scheduler(cloud)
    choose = scheduler.handler.run
    deletes: list[BaseException | None] = []

    def choose_then_delete(hosts, request, exclude):
        decision = choose(hosts, request, exclude=exclude)
        with cloud.db.transaction() as session:
            (server_id,) = session.execute(
                sa.select(models.Instance.uuid).where(models.Instance.host.is_(None),
                                                      models.Instance.vm_state == "building")
            ).scalars().all()

        def delete() -> None:  # another API call, in another thread
            try:
                cloud.compute.delete_server(server_id)
                deletes.append(None)
            except BaseException as err:
                deletes.append(err)

        thread = threading.Thread(target=delete)
        thread.start()
        thread.join(60)
        return decision

    monkeypatch.setattr(scheduler.handler, "run", choose_then_delete)
    server = cloud.compute.create_server("doomed", "small", "img", wait=False)
    monkeypatch.undo()
    assert deletes == [None], f"the delete failed: {deletes}"
    after = cloud.compute.get_server(server.id, include_deleted=True)
    assert after.status == "DELETED" and after.task_state is None, after
    assert after.fault is None, f"a deleted server got a scheduling fault: {after.fault}"
    allocated = {h.host: dict(h.allocated) for h in cloud.compute.list_hosts()}
    assert all(sum(a.values()) == 0 for a in allocated.values()), \
        f"the deleted server still holds a claim: {allocated}"
    with cloud.db.transaction() as session:
        rows = session.execute(sa.select(models.Allocation.instance_uuid)).scalars().all()
    assert rows == [], f"allocation rows left: {rows}"
    assert cloud.compute.create_server("next", "small", "img").status == "ACTIVE"
