"""A fast "certainly valid" check for the JSON schemas of :mod:`stackcore.schemas` and
:mod:`stackcore.stats`, in front of :mod:`jsonschema`.

Every public API call validates its arguments and every service validates its stats reports;
with :mod:`jsonschema` alone each check costs tens to hundreds of microseconds (its generic
keyword dispatch, error objects built and discarded) plus, once per process, importing it
(tens of milliseconds of every start-up). Almost every check passes, so the common case is made
cheap: :func:`compile_schema` turns a schema into a plain Python predicate that answers
``True`` only when the instance certainly meets the schema. Anything else - invalid, or a case
the predicate does not decide (an unhashable item under ``uniqueItems``, a Decimal where a
number is expected) - answers ``False``, and the caller asks jsonschema, which decides and
words the error exactly as before. So the predicate may be stricter than jsonschema, never
looser, and behaviour does not change: only valid calls get faster.

A schema using a keyword this module does not know compiles to ``None`` (no fast path).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

#: annotation keywords: no effect on validity
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment",
                          "deprecated", "readOnly", "writeOnly"})


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


#: The type checks shared by both validators, each no looser than either's: ``object`` and
#: ``array`` are the concrete types both accept (schemas.py also takes any Mapping, tuples:
#: those fall back to jsonschema), numbers are finite ints and floats, never bools.
TYPES: dict[str, Check] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": _is_number,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}

_SCALARS = (str, int, float, bool, type(None))


def _same(a: Any, b: Any) -> bool:
    """JSON equality for scalars (``True`` is not ``1``); False (undecided) for the rest."""
    if type(a) not in _SCALARS or type(b) not in _SCALARS:
        return False
    if type(a) is bool or type(b) is bool or a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return bool(a == b)


def compile_schema(schema: Mapping[str, Any],
                   formats: Mapping[str, Callable[[Any], bool]] | None = None,
                   extra: Mapping[str, Callable[[Any], Check]] | None = None) -> Check | None:
    """A predicate true only for instances that certainly meet ``schema``; None when the
    schema uses something not handled here. ``formats``: format name -> check (unknown formats
    give None); ``extra``: custom keyword -> (keyword value -> check)."""
    try:
        return _compile(schema, formats or {}, extra or {})
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(schema: Any, formats: Mapping[str, Callable[[Any], bool]],
             extra: Mapping[str, Callable[[Any], Check]]) -> Check:
    if schema is True or schema == {}:
        return lambda v: True
    if not isinstance(schema, Mapping):
        raise _Unsupported(schema)
    checks: list[Callable[..., bool]] = []  # each called with the instance only
    is_object, is_array, is_string, is_number = (TYPES["object"], TYPES["array"],
                                                 TYPES["string"], _is_number)
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            names = [value] if isinstance(value, str) else list(value)
            if any(n not in TYPES for n in names):
                raise _Unsupported(value)
            type_checks = [TYPES[n] for n in names]
            checks.append(lambda v, t=type_checks: any(c(v) for c in t))
        elif key == "properties":
            props = {k: _compile(s, formats, extra) for k, s in value.items()}
            checks.append(lambda v, p=props: not is_object(v) or all(
                p[k](item) for k, item in v.items() if k in p))
        elif key == "additionalProperties":
            known = frozenset(schema.get("properties", {}))
            if "patternProperties" in schema:
                raise _Unsupported(key)
            if value is False:
                checks.append(lambda v, k=known: not is_object(v) or k.issuperset(v))
            else:
                sub = _compile(value, formats, extra)
                checks.append(lambda v, k=known, s=sub: not is_object(v) or all(
                    s(item) for name, item in v.items() if name not in k))
        elif key == "required":
            names = list(value)
            checks.append(lambda v, r=names: not is_object(v) or all(n in v for n in r))
        elif key == "propertyNames":
            sub = _compile(value, formats, extra)
            checks.append(lambda v, s=sub: not is_object(v) or all(s(k) for k in v))
        elif key == "minProperties":
            checks.append(lambda v, n=value: not is_object(v) or len(v) >= n)
        elif key == "maxProperties":
            checks.append(lambda v, n=value: not is_object(v) or len(v) <= n)
        elif key == "items":
            sub = _compile(value, formats, extra)
            checks.append(lambda v, s=sub: not is_array(v) or all(s(i) for i in v))
        elif key == "minItems":
            checks.append(lambda v, n=value: not is_array(v) or len(v) >= n)
        elif key == "maxItems":
            checks.append(lambda v, n=value: not is_array(v) or len(v) <= n)
        elif key == "uniqueItems":
            if value:
                checks.append(lambda v: not is_array(v) or _unique(v))
        elif key == "minLength":
            checks.append(lambda v, n=value: not is_string(v) or len(v) >= n)
        elif key == "maxLength":
            checks.append(lambda v, n=value: not is_string(v) or len(v) <= n)
        elif key == "pattern":  # jsonschema: re.search, as here
            checks.append(lambda v, r=re.compile(value): not is_string(v) or bool(r.search(v)))
        elif key == "minimum":
            checks.append(lambda v, n=value: not is_number(v) or v >= n)
        elif key == "maximum":
            checks.append(lambda v, n=value: not is_number(v) or v <= n)
        elif key == "exclusiveMinimum":
            checks.append(lambda v, n=value: not is_number(v) or v > n)
        elif key == "exclusiveMaximum":
            checks.append(lambda v, n=value: not is_number(v) or v < n)
        elif key == "enum":
            options = list(value)
            checks.append(lambda v, o=options: any(_same(v, e) for e in o))
        elif key == "const":
            checks.append(lambda v, c=value: _same(v, c))
        elif key == "anyOf":
            subs = [_compile(s, formats, extra) for s in value]
            checks.append(lambda v, s=subs: any(c(v) for c in s))
        elif key == "allOf":
            subs = [_compile(s, formats, extra) for s in value]
            checks.append(lambda v, s=subs: all(c(v) for c in s))
        elif key == "oneOf":
            # "exactly one" cannot be decided from "certainly valid" answers (a branch that
            # answers False may still be valid): certain only when one branch is, and every
            # other branch's type excludes the instance.
            subs = [_compile(s, formats, extra) for s in value]
            excluders = [_type_only(s) for s in value]
            checks.append(lambda v, s=subs, x=excluders: _one_of(v, s, x))
        elif key == "format":
            check = formats.get(value)
            if check is None:
                raise _Unsupported(value)
            checks.append(lambda v, c=check: not is_string(v) or bool(c(v)))
        elif key in extra:
            checks.append(extra[key](value))
        else:
            raise _Unsupported(key)
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


def _type_only(schema: Any) -> Check | None:
    """A check that is False only for instances the branch's ``type`` certainly excludes
    (each type taken as loosely as either validator could)."""
    if not isinstance(schema, Mapping):
        return None
    options = [schema["const"]] if "const" in schema else schema.get("enum")
    if options is not None and all(type(o) in _SCALARS for o in options):
        # equality of scalars is exact (_same): a scalar equal to none is excluded
        return lambda v: type(v) not in _SCALARS or any(_same(v, o) for o in options)
    if "type" not in schema:
        return None
    names = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
    if any(n not in _LOOSE for n in names):
        return None
    return lambda v: any(isinstance(v, _LOOSE[n]) for n in names)


_LOOSE: dict[str, Any] = {"object": Mapping, "array": (list, tuple), "string": str,
                          "integer": numbers.Number, "number": numbers.Number,
                          "boolean": bool, "null": type(None)}


def _one_of(value: Any, subs: list[Check], excluders: list[Check | None]) -> bool:
    valid = [i for i, check in enumerate(subs) if check(value)]
    if len(valid) != 1:
        return False
    return all(i == valid[0] or (x is not None and not x(value))
               for i, x in enumerate(excluders))


def _unique(items: list[Any]) -> bool:
    if any(type(i) not in (str, int, float) for i in items):
        return False  # undecided (bools, unhashables): jsonschema decides
    return len(set(items)) == len(items)


def max_depth(depth: Callable[[Any, int], bool]) -> Callable[[Any], Check]:
    """The ``maxDepth`` keyword of :mod:`stackcore.schemas` (``depth(value, limit)``)."""
    return lambda limit: lambda v: depth(v, limit)


def max_json_length(depth: Callable[[Any, int], bool]) -> Callable[[Any], Check]:
    """The ``maxJsonLength`` keyword of :mod:`stackcore.schemas`."""

    def build(limit: int) -> Check:
        def check(value: Any) -> bool:
            if not depth(value, 64):
                return False
            try:
                return len(json.dumps(value)) <= limit
            except (TypeError, ValueError):
                return False

        return check

    return build
