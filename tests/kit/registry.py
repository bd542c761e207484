"""What a zoo entry is."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Broken:
    """One broken driver and what the kit must say about it.

    ``kills``: node-id suffixes (``Class::test`` or ``Class::test[param]``) of the kit tests
    it must fail; ``expect``: words the failure message must contain (the defect, with its
    expected and actual values); ``outcome``: ``fail`` or ``unexpected-success`` (a capability
    declared unsupported that works); ``config``: text of the driver's config file.
    """

    family: str
    name: str
    target: str
    kills: tuple[str, ...]
    expect: str
    outcome: str = "fail"
    config: str = ""
    defect: str = ""
    #: the capability whose test(s) it targets ("" for required features)
    capability: str = ""

    @property
    def spec(self) -> str:
        return f"{self.family}:{self.name}"
