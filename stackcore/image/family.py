"""The image family's descriptor (see :mod:`stackcore.families`).

Plugin kind ``image.store`` (namespace ``stackcore.image.stores``): where image bytes live
(contract :mod:`stackcore.image.store`). Its API is still part of ``cloud.compute``
(``register_image``) for registered local files.
"""

from __future__ import annotations

from stackcore.families import Family, PluginKind

FAMILY = Family(
    name="image",
    title="Image",
    package="stackcore.image",
    kinds=(
        PluginKind("image.store", "stackcore.image.stores", "stackcore.image.store:CONTRACT",
                   "stackcore.testing.suites.image_store", "Image stores"),
    ),
    models=("stackcore.image.models",),
)
