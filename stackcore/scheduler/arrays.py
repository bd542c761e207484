"""numpy array types of the whole-set (columnar) filter and weigher paths.

Plugins import these for their annotations (under ``TYPE_CHECKING``); numpy is only imported
when something reads them at run time, so loading a filter does not import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcore import lazy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]
    BoolArray = npt.NDArray[np.bool_]


def _alias(dtype: str) -> Any:
    def build() -> Any:
        import numpy as np
        import numpy.typing as npt

        generic: Any = npt.NDArray
        return generic[getattr(np, dtype)]

    return build


__getattr__ = lazy.attributes(__name__, {
    "FloatArray": _alias("float64"), "IntArray": _alias("int64"), "BoolArray": _alias("bool_"),
})
