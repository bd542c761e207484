"""The image family's descriptor (see :mod:`stackcore.families`): its tables only, so far -
no plugins, no services, and its API is still part of ``cloud.compute`` (``register_image``)."""

from __future__ import annotations

from stackcore.families import Family

FAMILY = Family(
    name="image",
    title="Image",
    package="stackcore.image",
    models=("stackcore.image.models",),
)
