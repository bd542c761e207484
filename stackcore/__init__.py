"""stackcore: the OpenStack driver architecture, without the rest of OpenStack.

The public surface is small and imported lazily (``import stackcore`` stays cheap; the database
and RPC layers load only when a Cloud is built):

* :class:`Cloud` - the cloud: ``stackcore.Cloud()`` is the embedded default.
* :mod:`stackcore.exception` - the typed error hierarchy.
* family packages: :mod:`stackcore.compute` (and its contract :mod:`stackcore.compute.driver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcore import _compat, exception
from stackcore.version import __version__

_compat.install()  # old module paths keep working for one release (deprecated)

if TYPE_CHECKING:
    from stackcore.cloud import Cloud

__all__ = ["Cloud", "__version__", "exception"]


def __getattr__(name: str) -> Any:
    if name == "Cloud":
        from stackcore.cloud import Cloud

        return Cloud
    raise AttributeError(f"module 'stackcore' has no attribute {name!r}")
