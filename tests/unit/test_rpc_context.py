"""The request context travels over RPC in both transports: the service handling a call sees
the caller's user, project, roles and request id as its current context; and a family API
call makes its context current for the calls it makes."""

from __future__ import annotations

import os
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
    url = "inprocess://" if request.param == "inprocess" else \
        os.environ.get("STACKCORE_TEST_RABBIT_URL") or pytest.fail(
            "STACKCORE_TEST_RABBIT_URL is not set: start RabbitMQ with tools/backends/up.sh",
            pytrace=False)
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


def test_a_family_api_call_makes_its_context_current(cloud) -> None:
    ctx = RequestContext(user_id="u2", project_id="p2", roles=["member"])
    cloud.as_project(ctx).compute.list_servers()
    found = current()
    assert found is not None and (found.project_id, found.request_id) == \
        ("p2", ctx.request_id), found
