"""The request context travels over RPC in both transports: the service handling a call sees
the caller's user, project, roles and request id as its current context; and a family API
call makes its context current for the calls it makes, and for those only."""

from __future__ import annotations

import uuid

import pytest

from stackcore import conf, rpc
from stackcore.project import RequestContext
from stackcore.project.context import current
from stackcore.rpc import Target


class Echo:
    target = Target(f"ctx-{uuid.uuid4().hex[:8]}", version="1.0")

    def who(self) -> dict | None:
        found = current()
        return None if found is None else found.wire()


@pytest.fixture(params=["inprocess", pytest.param("rabbit", marks=pytest.mark.rabbit)])
def transport(request):
    # on RabbitMQ, a virtual host of its own: the Echo topic is fixed
    url = "inprocess://" if request.param == "inprocess" else \
        request.getfixturevalue("rabbit_url")
    t = rpc.get_transport(conf.load(overrides={"DEFAULT": {"transport_url": url}}))
    yield t
    t.close()


def test_context_reaches_the_serving_side(transport) -> None:
    server = transport.serve(Target(Echo.target.topic, "h"), Echo())
    try:
        caller = RequestContext(user_id="u1", project_id="p1", roles=["member"],
                                request_id="req-" + uuid.uuid4().hex)
        caller.update_store()
        seen = transport.client(Target(Echo.target.topic, version="1.0")).prepare(
            server="h").call("who")
        assert seen == caller.wire(), f"the service saw {seen}, the caller was {caller.wire()}"
    finally:
        server.stop()


def test_a_family_api_call_serves_its_context_for_that_call_only(cloud) -> None:
    """During the call its context is current (the driver calls it makes are logged under its
    request id and project); afterwards the caller's thread has what it had before."""
    import logging

    before = current()
    seen: list[tuple[str, str | None, str | None]] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = current()
            seen.append((record.getMessage(), found and found.request_id,
                         found and found.project_id))

    spy, logger = Spy(logging.INFO), logging.getLogger("stackcore.managers")
    logger.addHandler(spy)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ctx = RequestContext(user_id="u2", project_id="p2", roles=["member"])
        volume = cloud.as_project(ctx).volume.create(1, timeout=60)
    finally:
        logger.removeHandler(spy)
        logger.setLevel(old_level)
    created = [entry for entry in seen if f"create_volume of volume {volume.id}" in entry[0]]
    assert created, f"no driver call logged for {volume.id}: {seen}"
    assert {entry[1:] for entry in created} == {(ctx.request_id, "p2")}, created
    assert current() is before, (current(), before)
