"""The image family's countable resources, counted from its rows (see
:mod:`stackcore.project.quota`); Glance's names and units (its unified-limits resources).
Every ``[quota]`` default is -1 (unlimited).

* ``image_count_total``: images of a project, whatever their status (a queued record holds
  its place as in Glance); checked by ``create``;
* ``image_size_total``: MiB of a project's stored images (their sizes summed, rounded up).
  MiB, not bytes: Glance's unit, and a limit must fit the 32-bit quota columns. The image API
  enforces it to the byte: an upload may store at most the bytes left under the limit and
  is stopped as soon as it crosses them (an upload of unknown size included), and the check
  is made again, under the project's quota lock, in the transaction that makes the image
  active - of two uploads racing for the last MiB, one is refused and keeps nothing;
* ``image_count_uploading``: uploads in progress at once (images ``saving``); checked when an
  upload starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import BindParameter, ColumnElement

from stackcore.project.resources import UNLIMITED, Resource

_HERE = "stackcore.image.quotas"
MIB = 1024 * 1024

RESOURCES = [
    Resource("image_count_total", UNLIMITED, "Images per project (any status)",
             f"{_HERE}:count"),
    Resource("image_size_total", UNLIMITED, "MiB of a project's stored images",
             f"{_HERE}:count"),
    Resource("image_count_uploading", UNLIMITED, "Image uploads of a project in progress at "
             "once", f"{_HERE}:count"),
]


def stored_bytes(project_id: str | BindParameter[str]) -> ColumnElement[int]:
    """Bytes of the project's stored images (an image not active yet has size 0)."""
    import sqlalchemy as sa

    from stackcore.image import models

    image = models.Image
    return sa.select(sa.func.coalesce(sa.func.sum(image.size_bytes), 0)).where(
        image.project_id == project_id).scalar_subquery()


def count(project_id: str | BindParameter[str], resource: str) -> ColumnElement[int]:
    """Usage of ``resource`` by ``project_id``."""
    import sqlalchemy as sa

    from stackcore.image import models

    image = models.Image
    if resource == "image_size_total":
        return (stored_bytes(project_id) + (MIB - 1)) // MIB
    rows = sa.select(sa.func.count()).select_from(image).where(image.project_id == project_id)
    if resource == "image_count_uploading":
        rows = rows.where(image.status == "saving")
    return rows.scalar_subquery()
