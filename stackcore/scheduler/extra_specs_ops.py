"""Extra-spec operators shared by the compute and volume capability filters.

A requirement is a string, optionally starting with an operator (Cinder's
``filters/extra_specs_ops.py`` and Nova's, which adds ``<all-in>``):

* ``=`` numeric: the value is *at least* the number (not equality - the Cinder/Nova rule);
* ``==`` / ``!=`` numeric (in)equality; ``>=`` / ``<=`` numeric order;
* ``s==``, ``s!=``, ``s<``, ``s<=``, ``s>``, ``s>=``: string comparison;
* ``<in>``: the requirement is a substring of the value (or an element, for a list);
* ``<all-in>``: every listed word is in the value (a list or a string);
* ``<is>``: boolean, ``<is> True`` / ``<is> False`` (the value read as a boolean);
* ``<or>``: ``<or> a <or> b``, the value equals one of the alternatives.

No operator: plain string equality. A value that cannot be read as a number for a numeric
operator does not match (never an error). There is no numeric ``<`` or ``>``.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


def _as_bool(text: Any) -> bool | None:
    word = str(text).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def _numeric(op: Callable[[float, float], bool]) -> Callable[[Any, str], bool]:
    def check(value: Any, wanted: str) -> bool:
        try:
            return op(float(value), float(wanted))
        except (TypeError, ValueError):
            return False

    return check


def _string(op: Callable[[str, str], bool]) -> Callable[[Any, str], bool]:
    return lambda value, wanted: op(str(value), wanted)


def _in(value: Any, wanted: str) -> bool:
    if isinstance(value, (list, tuple, set, frozenset)):
        return wanted in {str(v) for v in value}
    return wanted in str(value)


def _all_in(value: Any, wanted: str) -> bool:
    words = wanted.split()
    if isinstance(value, (list, tuple, set, frozenset)):
        have = {str(v) for v in value}
        return bool(words) and all(w in have for w in words)
    return bool(words) and all(w in str(value) for w in words)


def _is(value: Any, wanted: str) -> bool:
    want = _as_bool(wanted)
    have = value if isinstance(value, bool) else _as_bool(value)
    return want is not None and have is not None and want == have


OPERATORS: dict[str, Callable[[Any, str], bool]] = {
    "=": _numeric(operator.ge),
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "s==": _string(operator.eq),
    "s!=": _string(operator.ne),
    "s<": _string(operator.lt),
    "s<=": _string(operator.le),
    "s>": _string(operator.gt),
    "s>=": _string(operator.ge),
    "<in>": _in,
    "<all-in>": _all_in,
    "<is>": _is,
}


def match(value: Any, requirement: str) -> bool:
    """Whether a host/pool capability ``value`` satisfies ``requirement``."""
    if value is None:
        return False
    words = str(requirement).split()
    if not words:
        return str(value) == str(requirement)
    op = words[0]
    if op == "<or>":
        return str(value) in words[1::2]  # "<or> a <or> b": every other word
    check = OPERATORS.get(op)
    if check is None:
        return str(value) == str(requirement)
    return check(value, " ".join(words[1:]))


def match_any(value: Any, requirement: str) -> bool:
    """Like :func:`match`; a list-valued capability matches if any element does (Cinder), except
    for ``<in>``/``<all-in>``, which look inside the list themselves."""
    op = str(requirement).split()[0] if str(requirement).split() else ""
    if isinstance(value, (list, tuple, set, frozenset)) and op not in ("<in>", "<all-in>"):
        return any(match(v, requirement) for v in value)
    return match(value, requirement)


def lookup(capabilities: Any, path: list[str]) -> Any:
    """Walk ``capabilities`` along ``path`` (extra-spec key segments split on ``:``); None when a
    step is missing. A JSON string on the way (a driver's ``cpu_info``) is parsed."""
    node = capabilities
    for step in path:
        if isinstance(node, str):
            try:
                node = json.loads(node)
            except ValueError:
                return None
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node
