"""Image quotas (Glance's resources): ``image_count_total`` checked by create,
``image_size_total`` (MiB) enforced to the byte by upload - a declared size at once, an
unknown size as soon as the stream crosses it, again when the image becomes active (two uploads
racing for the last MiB: one wins) - and ``image_count_uploading``. A refusal keeps nothing:
no record, no bytes in the store. On the embedded SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import exception
from stackcore.project import RequestContext

A = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
B = RequestContext(user_id="bob", project_id="project-b", roles=["member"])
MIB = 1024 * 1024


@pytest.fixture
def qcloud(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> stackcore.Cloud:
    return make_cloud(overrides={"DEFAULT": {"state_path": str(tmp_path / "state")}})


def _objects(cloud: stackcore.Cloud) -> list[str]:
    """Everything in the file store, temporary files included."""
    return cloud.image.stores["file"].list_backend_objects()


class Endless:
    """A stream of unknown size that would never end: it counts what was read from it."""

    def __init__(self, chunk: int = 64 * 1024) -> None:
        self.chunk = chunk
        self.sent = 0

    def read(self, n: int = -1) -> bytes:
        size = self.chunk if n < 0 else min(n, self.chunk)
        self.sent += size
        return b"\0" * size


def test_image_count_total(qcloud: stackcore.Cloud) -> None:
    qcloud.project.set_quota("project-a", "image_count_total", 2)
    a, b = qcloud.as_project(A), qcloud.as_project(B)
    first = a.image.create("one")
    a.image.create("two")
    with pytest.raises(exception.OverQuota) as err:
        a.image.create("three")
    assert "image_count_total" in str(err.value) and "limit 2" in str(err.value), err.value
    assert (err.value.kwargs["resource"], err.value.kwargs["requested"],
            err.value.kwargs["used"]) == ("image_count_total", 1, 2), err.value.kwargs
    assert sorted(i.name for i in a.image.list_images()) == ["one", "two"], "a row was kept"
    b.image.create("other project")  # not counted against project-a
    a.image.delete(first.id)
    assert a.image.create("three").name == "three"
    usage = qcloud.project.get_quotas("project-a")["image_count_total"]
    assert (usage.in_use, usage.limit) == (2, 2), usage


def test_image_size_total_with_declared_sizes(qcloud: stackcore.Cloud) -> None:
    qcloud.project.set_quota("project-a", "image_size_total", 1)  # MiB
    a = qcloud.as_project(A)
    a.image.upload(a.image.create("600k").id, b"\0" * 600 * 1024)
    second = a.image.create("another 600k")
    with pytest.raises(exception.OverQuota) as err:
        a.image.upload(second.id, b"\0" * 600 * 1024, size=600 * 1024)
    text = str(err.value)
    assert "image_size_total" in text and "limit 1" in text, text
    assert f"needs {600 * 1024} bytes, {1024 * 424} bytes were left" in text, text
    assert a.image.get(second.id).status == "queued"
    assert len(_objects(qcloud)) == 1, _objects(qcloud)
    # what is left fits exactly
    assert a.image.upload(second.id, b"\0" * 424 * 1024).status == "active"
    usage = qcloud.project.get_quotas("project-a")["image_size_total"]
    assert (usage.in_use, usage.limit) == (1, 1), usage
    # the quota is the image owner's, whoever uploads (an admin here)
    third = a.image.create("one byte")
    with pytest.raises(exception.OverQuota, match="project-a"):
        qcloud.image.upload(third.id, b"x")


def test_upload_of_unknown_size_is_stopped_when_it_crosses_the_limit(
        qcloud: stackcore.Cloud) -> None:
    qcloud.project.set_quota("project-a", "image_size_total", 2)
    a = qcloud.as_project(A)
    image = a.image.create("endless")
    stream = Endless()
    with pytest.raises(exception.OverQuota) as err:
        a.image.upload(image.id, stream)
    text = str(err.value)
    assert "image_size_total" in text and "limit 2" in text, text
    assert "was stopped after" in text, text
    # stopped at the limit, not at the end of a stream that has none (nor at the 1 TiB cap)
    assert 2 * MIB < stream.sent <= 2 * MIB + 2 * stream.chunk + 1 * MIB, stream.sent
    assert a.image.get(image.id).status == "queued"
    assert _objects(qcloud) == [], "the stopped upload's bytes stayed"
    assert qcloud.project.get_quotas("project-a")["image_size_total"].in_use == 0


def test_two_uploads_racing_for_the_last_bytes(qcloud: stackcore.Cloud) -> None:
    """Both start with 1 MiB left and stream 700 KiB each: the check when an image becomes
    active (under the project's quota lock) lets exactly one through."""
    qcloud.project.set_quota("project-a", "image_size_total", 1)
    a = qcloud.as_project(A)
    images = [a.image.create(f"racer-{i}").id for i in range(2)]
    both_streaming = threading.Barrier(2, timeout=60)

    def stream() -> Any:
        class Racer:
            left = 700 * 1024
            waited = False

            def read(self, n: int = -1) -> bytes:
                if not self.waited:  # both uploads are past their start before either ends
                    self.waited = True
                    both_streaming.wait()
                size = min(self.left, 64 * 1024)
                self.left -= size
                return b"\0" * size
        return Racer()

    outcomes: dict[str, Any] = {}

    def upload(image_id: str) -> None:
        try:
            outcomes[image_id] = a.image.upload(image_id, stream()).status
        except exception.StackcoreError as err:
            outcomes[image_id] = err

    workers = [threading.Thread(target=upload, args=(i,)) for i in images]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    statuses = sorted(str(o) if isinstance(o, str) else type(o).__name__
                      for o in outcomes.values())
    assert statuses == ["OverQuota", "active"], outcomes
    loser = next(i for i, o in outcomes.items() if not isinstance(o, str))
    assert a.image.get(loser).status == "queued"
    assert len(_objects(qcloud)) == 1, f"the refused upload's bytes stayed: {_objects(qcloud)}"


def test_image_count_uploading(qcloud: stackcore.Cloud) -> None:
    qcloud.project.set_quota("project-a", "image_count_uploading", 1)
    a = qcloud.as_project(A)
    first, second = a.image.create("first").id, a.image.create("second").id
    started, release = threading.Event(), threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"\0" * 1024
        started.set()
        assert release.wait(60), "never released"
        yield b"\0" * 1024

    class Blocking:
        def __init__(self) -> None:
            self.it = chunks()

        def read(self, n: int = -1) -> bytes:
            return next(self.it, b"")

    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(a.image.upload(first, Blocking())))
    worker.start()
    try:
        assert started.wait(60), "the first upload never started"
        with pytest.raises(exception.OverQuota, match="image_count_uploading"):
            a.image.upload(second, b"\0" * 1024)
        assert a.image.get(second).status == "queued"
    finally:
        release.set()
        worker.join(60)
    assert done and done[0].status == "active", done
    assert a.image.upload(second, b"\0" * 1024).status == "active"


def test_concurrent_creates_end_exactly_at_the_limit(qcloud: stackcore.Cloud) -> None:
    qcloud.project.set_quota("project-a", "image_count_total", 5)
    a = qcloud.as_project(A)
    start = threading.Barrier(8, timeout=60)
    outcomes: list[str] = []

    def create(i: int) -> None:
        start.wait()
        try:
            a.image.create(f"racer-{i}")
            outcomes.append("created")
        except exception.OverQuota:
            outcomes.append("OverQuota")

    workers = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sorted(outcomes) == ["OverQuota"] * 3 + ["created"] * 5, outcomes
    assert len(a.image.list_images()) == 5
