"""stackcore_drivers.ceph.remove_image finishes a removal librbd left in the pool's trash (a
format-2 image is moved there with source "REMOVING", then deleted from there; CI once saw the
name still listed after ``remove`` returned). With stand-in bindings: the state cannot be made
through the public librbd API."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from stackcore_drivers import ceph


class _ImageNotFound(Exception):
    pass


class _ImageBusy(Exception):
    pass


class _FakeRbd:
    ImageNotFound = _ImageNotFound
    ImageBusy = _ImageBusy

    def __init__(self, trash: list[dict[str, str]], in_directory: bool) -> None:
        self.trash = trash
        self.in_directory = in_directory
        self.calls: list[tuple[str, ...]] = []
        fake = self

        class RBD:
            def remove(self, ioctx: Any, name: str) -> None:
                fake.calls.append(("remove", name))
                if not fake.in_directory:
                    raise _ImageNotFound(name)
                fake.in_directory = False

            def trash_list(self, ioctx: Any) -> list[dict[str, str]]:
                return list(fake.trash)

            def trash_remove(self, ioctx: Any, image_id: str, force: bool = False) -> None:
                fake.calls.append(("trash_remove", image_id, str(force)))
                fake.trash = [e for e in fake.trash if e["id"] != image_id]

        self.RBD = RBD


@pytest.mark.parametrize("in_directory", [True, False], ids=["listed", "gone-from-directory"])
def test_an_image_left_removing_in_the_trash_is_removed_from_there(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        in_directory: bool) -> None:
    trash = [{"id": "abc", "name": "volume-1", "source": "REMOVING"},
             {"id": "def", "name": "volume-1", "source": "USER"},  # an operator's: kept
             {"id": "ghi", "name": "volume-2", "source": "REMOVING"}]  # another image's
    fake = _FakeRbd(trash, in_directory)
    monkeypatch.setattr(ceph, "bindings", lambda user: (None, fake))
    with caplog.at_level(logging.WARNING, logger=ceph.__name__):
        removed = ceph.remove_image(object(), "volume-1")
    assert removed is True, "a removal that had to finish from the trash is a removal"
    assert ("trash_remove", "abc", "True") in fake.calls, fake.calls
    assert [e["id"] for e in fake.trash] == ["def", "ghi"], fake.trash
    assert "left in the trash" in caplog.text, caplog.text


def test_nothing_in_the_trash_leaves_the_result_as_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRbd([], in_directory=False)
    monkeypatch.setattr(ceph, "bindings", lambda user: (None, fake))
    assert ceph.remove_image(object(), "volume-1") is False
    fake = _FakeRbd([], in_directory=True)
    monkeypatch.setattr(ceph, "bindings", lambda user: (None, fake))
    assert ceph.remove_image(object(), "volume-1") is True
    assert [c[0] for c in fake.calls] == ["remove"], fake.calls
