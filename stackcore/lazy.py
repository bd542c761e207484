"""Paying for costly imports only on first use: option lists and module attributes.

Loading a plugin imports its module (every ``stackcore drivers`` run, every start-up verifies
every configured plugin), so what a module builds at import time is paid by everyone who merely
lists it. Two things are worth deferring, and this module is the one way to do either:

* **option lists** - building ``cfg.Opt`` objects imports oslo.config. Define them as
  ``OPTS = lazy.options(lambda cfg: [cfg.StrOpt(...), ...])``: the list is built, once, the
  first time something iterates it (``conf.register_opts(OPTS)``, ``list(OPTS)``);
* **module attributes** built from a heavy library (numpy array aliases, a compiled pattern):
  ``__getattr__ = lazy.attributes(__name__, {"Name": build})`` builds each on first access
  and caches it in the module.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from oslo_config import cfg


class Options(Sequence["cfg.Opt"]):
    """A list of oslo.config options built on first use (see :func:`options`)."""

    def __init__(self, build: Callable[[Any], list[cfg.Opt]]) -> None:
        self._build = build

    @functools.cached_property
    def _opts(self) -> list[cfg.Opt]:
        from oslo_config import cfg

        return list(self._build(cfg))

    @overload
    def __getitem__(self, index: int) -> cfg.Opt: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[cfg.Opt]: ...

    def __getitem__(self, index: int | slice) -> cfg.Opt | Sequence[cfg.Opt]:
        return self._opts[index]

    def __len__(self) -> int:
        return len(self._opts)

    def __iter__(self) -> Iterator[cfg.Opt]:
        return iter(self._opts)

    def __add__(self, other: Sequence[cfg.Opt]) -> list[cfg.Opt]:
        return [*self._opts, *other]

    def __repr__(self) -> str:
        return f"lazy.Options({[o.name for o in self._opts]})"


def options(build: Callable[[Any], list[cfg.Opt]]) -> Options:
    """Options built on first use by ``build(cfg)`` (``cfg`` is ``oslo_config.cfg``)."""
    return Options(build)


def attributes(module: str, builders: Mapping[str, Callable[[], Any]]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` building each of ``builders`` on first access.

    The value is stored in the module, so later accesses are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        build = builders.get(name)
        if build is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = build()
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
