"""The one schema layer every public method of every family API validates its arguments through.

Nova validates each API request against a JSON schema before anything else runs; so does every
``cloud.<family>`` method here, with :func:`accepts`::

    @schemas.accepts(name=schemas.NAME, vcpus=schemas.integer(1, 4096),
                     extra_specs=schemas.optional(schemas.STRING_MAP))
    def create_flavor(self, name, vcpus, ..., extra_specs=None): ...

Why JSON Schema (with :mod:`jsonschema`, already a dependency) rather than typed models: the
schemas are data - rendered in the docs from the same objects (``.. stackcore-api-schemas::``)
and reusable unchanged by a REST layer - and a JSON document is exactly what crosses the RPC
boundary. Each argument the caller passes is checked before the method body runs, so nothing
is written or sent for a bad call; the first violation becomes one
:class:`~stackcore.exception.Invalid` naming the argument, or the path inside it
(``networks[0].fixed_ips[1].ip_address``), and the rule it broke.

Rules beyond plain JSON Schema, as formats (enforced, not annotations):

* ``text`` - valid Unicode that UTF-8 can encode (no lone surrogates), no control characters
  (C0, DEL and C1, so no terminal escape sequences), not blank; display names accept any other
  printable text, ``<>&'"$;`` included (drivers escape them);
* ``identifier`` - a backend object name: letters, digits, ``_.:-``;
* ``uuid``, ``ip-address``, ``ipv4-or-ipv6-cidr``, ``mac``, ``device-name`` (``/dev/vdb``,
  ``/dev/sdc``, no ``..``);
* ``keypair-name`` - Nova's: letters, digits, spaces and ``_-.@``, not blank;
* ``base64`` - standard base64 with padding, MIME line breaks (CR, LF) allowed;
* booleans are only ``True``/``False`` (``"false"`` is refused, not taken as true), integers
  are never ``True`` or ``3.0``; and ``maxDepth`` bounds how deeply a structure nests.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import math
import re
import uuid as uuid_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from stackcore import exception, fastschema

F = TypeVar("F", bound=Callable[..., Any])

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
_DEVICE = re.compile(r"^/dev/(vd|sd|xvd|hd)[a-z]{1,2}$")
#: Nova's keypair names (microversion 2.92): letters, digits, spaces and ``_-.@``
_KEYPAIR_NAME = re.compile(r"^[A-Za-z0-9 _.@-]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")

#: no argument nests deeper than this (a schema's own ``maxDepth`` may say less)
MAX_NESTING = 32

#: the attribute of a validated method holding its arguments' schema (and the key of its
#: compiled validator, for :func:`check`)
ATTRIBUTE = "__stackcore_schema__"
KEY_ATTRIBUTE = "__stackcore_schema_key__"


# --- building blocks ---------------------------------------------------------------------

def string(max_length: int = 255, fmt: str = "text", min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "format": fmt, "minLength": min_length, "maxLength": max_length}


def integer(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def number(minimum: float, maximum: float, exclusive_minimum: bool = False) -> dict[str, Any]:
    key = "exclusiveMinimum" if exclusive_minimum else "minimum"
    return {"type": "number", key: minimum, "maximum": maximum}


def enum(*values: Any) -> dict[str, Any]:
    return {"enum": list(values)}


def optional(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` or None."""
    return {"anyOf": [{"type": "null"}, dict(schema)]}


def one_of(*schemas: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(s) for s in schemas]}


def array(items: Mapping[str, Any], max_items: int = 64, unique: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "array", "items": dict(items), "maxItems": max_items}
    if unique:
        found["uniqueItems"] = True
    return found


def obj(properties: Mapping[str, Mapping[str, Any]], required: Sequence[str] = (),
        min_properties: int = 0) -> dict[str, Any]:
    """A mapping with exactly these keys allowed (``required`` of them mandatory)."""
    found: dict[str, Any] = {"type": "object", "properties": {k: dict(v) for k, v in
                                                              properties.items()},
                             "additionalProperties": False}
    if required:
        found["required"] = list(required)
    if min_properties:
        found["minProperties"] = min_properties
    return found


def string_map(max_items: int = 128, value_max: int = 255,
               nullable_values: bool = False) -> dict[str, Any]:
    """Metadata, extra specs, properties: text keys to text values."""
    value: dict[str, Any] = string(value_max, min_length=0)
    if nullable_values:
        value = optional(value)
    return {"type": "object", "maxProperties": max_items,
            "propertyNames": string(255), "additionalProperties": value}


def json_document(max_depth: int = 8, max_length: int = 4095) -> dict[str, Any]:
    """Free-form JSON (a binding profile): bounded nesting and size."""
    return {"type": "object", "maxDepth": max_depth, "maxJsonLength": max_length}


NAME = string(255)
OPTIONAL_NAME = optional(NAME)
DESCRIPTION = string(1024, min_length=0)
IDENTIFIER = string(64, "identifier")
UUID = {"type": "string", "format": "uuid"}
OPTIONAL_UUID = optional(UUID)
NAME_OR_ID = string(255)
BOOLEAN = {"type": "boolean"}
STRING_MAP = string_map()
TIMEOUT = optional(number(0, 86400, exclusive_minimum=True))
HOST = string(255)
ZONE = string(255)
IP_ADDRESS = {"type": "string", "format": "ip-address"}
CIDR = {"type": "string", "format": "ipv4-or-ipv6-cidr"}
MAC = {"type": "string", "format": "mac"}
DEVICE_NAME = {"type": "string", "format": "device-name"}
#: pagination of list_* methods
LIMIT = optional(integer(1, 10000))
SORT_DIR = enum("asc", "desc")


# --- the validator -----------------------------------------------------------------------

def _text(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "format" applies to strings only; "type" says the rest
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    # blank is refused unless empty (minLength says whether empty is allowed)
    return (value == "" or bool(value.strip())) and not _CONTROL.search(value)


def _raises_to_false(check: Callable[[str], object]) -> Callable[[object], bool]:
    def wrapped(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            return check(value) is not False
        except ValueError:
            return False

    return wrapped


def _uuid(value: str) -> bool:
    return str(uuid_module.UUID(value)) == value.lower()


def _cidr(value: str) -> bool:
    ipaddress.ip_network(value, strict=False)
    return "/" in value


def _base64(value: str) -> bool:
    """Standard base64 (padding included), whose lines may be broken by CR/LF as MIME does."""
    import base64
    import binascii

    compact = value.replace("\r", "").replace("\n", "")
    if len(compact) % 4 or not _BASE64.match(compact):
        return False
    try:
        base64.b64decode(compact, validate=True)
    except binascii.Error:
        return False
    return True


def _depth(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


#: the formats above, by name (for jsonschema's FormatChecker and the fast path alike)
FORMATS: dict[str, Callable[[object], bool]] = {
    "text": _text,
    "identifier": lambda v: not isinstance(v, str) or (_text(v) and bool(_IDENTIFIER.match(v))),
    "uuid": _raises_to_false(_uuid),
    "ip-address": _raises_to_false(ipaddress.ip_address),
    "ipv4-or-ipv6-cidr": _raises_to_false(_cidr),
    "mac": lambda v: not isinstance(v, str) or bool(_MAC.match(v)),
    "device-name": lambda v: not isinstance(v, str) or bool(_DEVICE.match(v)),
    "keypair-name": lambda v: not isinstance(v, str) or (bool(_KEYPAIR_NAME.match(v))
                                                         and bool(v.strip())),
    "base64": _raises_to_false(_base64),
}


@functools.cache
def _validator_class() -> Any:
    import jsonschema
    from jsonschema import validators

    checker = jsonschema.FormatChecker()
    for name, format_check in FORMATS.items():
        checker.checks(name)(format_check)

    base = jsonschema.Draft202012Validator
    # Callers pass Python values: any Mapping is an object, any list or tuple an array.
    # Integers are Python ints (not True, not 3.0), numbers finite ints or floats.
    type_checker = base.TYPE_CHECKER.redefine_many({
        "object": lambda _c, v: isinstance(v, Mapping),
        "array": lambda _c, v: isinstance(v, (list, tuple)),
        "integer": lambda _c, v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda _c, v: isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v),
    })

    def max_depth(_validator: Any, limit: int, instance: Any, _schema: Any) -> Any:
        if not _depth(instance, limit):
            yield jsonschema.ValidationError(f"nests deeper than {limit} levels")

    def max_json_length(_validator: Any, limit: int, instance: Any, _schema: Any) -> Any:
        import json

        if not _depth(instance, 64):
            return  # maxDepth reports it
        try:
            text = json.dumps(instance)
        except (TypeError, ValueError):
            yield jsonschema.ValidationError("must contain only JSON types")
            return
        if len(text) > limit:
            yield jsonschema.ValidationError(f"is {len(text)} characters as JSON, the maximum "
                                             f"is {limit}")

    cls = validators.extend(base, {"maxDepth": max_depth, "maxJsonLength": max_json_length},
                            type_checker=type_checker)
    return functools.partial(cls, format_checker=checker)


@functools.cache
def _compiled(key: int) -> Any:
    return _validator_class()(_SCHEMAS[key])


@functools.cache
def _fast(key: int) -> fastschema.Check | None:
    """The schema's "certainly valid" predicate (see :mod:`stackcore.fastschema`): a valid
    call is checked without jsonschema, an invalid one is worded by jsonschema as before."""
    return fastschema.compile_schema(_SCHEMAS[key], FORMATS, {
        "maxDepth": fastschema.max_depth(_depth),
        "maxJsonLength": fastschema.max_json_length(_depth)})


_SCHEMAS: dict[int, dict[str, Any]] = {}


def _path(parts: Sequence[Any], schema_path: Sequence[Any], root: Mapping[str, Any]) -> str:
    """``networks[0].fixed_ips[1].ip_address`` for the fields of a fixed structure,
    ``metadata['k']`` for the keys of a mapping (an object schema that admits other keys)."""
    as_key = []  # per instance-path step: is it a key of a mapping?
    node: Any = root
    for step in schema_path:
        if step in ("properties", "additionalProperties") and isinstance(node, Mapping):
            as_key.append(node.get("additionalProperties", True) is not False)
        elif step in ("items", "prefixItems"):
            as_key.append(False)
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
    text = ""
    for index, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif index < len(as_key) and as_key[index] and text:
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _rule(error: Any) -> str:
    """The broken rule in words, without repeating the (possibly huge) value."""
    keyword, expected = error.validator, error.validator_value
    words: dict[str, Callable[[], str]] = {
        "type": lambda: f"must be of type {expected if isinstance(expected, str) else ' or '.join(expected)}",  # noqa: E501
        "format": lambda: {
            "text": "must be printable text (valid UTF-8, no control characters, not blank)",
            "identifier": "may contain only letters, digits and _.:- (starting with a letter "
                          "or digit)",
            "uuid": "is not a UUID",
            "ip-address": "is not an IP address",
            "ipv4-or-ipv6-cidr": "is not a CIDR (address/prefix)",
            "mac": "is not a MAC address (xx:xx:xx:xx:xx:xx)",
            "device-name": "is not a device name like /dev/vdb",
            "keypair-name": "may contain only letters, digits, spaces and _-.@ (not blank)",
            "base64": "is not valid base64 (MIME line breaks are allowed)",
        }.get(expected, f"does not match format {expected}"),
        "minimum": lambda: f"must be >= {expected}",
        "maximum": lambda: f"must be <= {expected}",
        "exclusiveMinimum": lambda: f"must be > {expected}",
        "minLength": lambda: "must not be empty" if expected == 1 else
        f"must be at least {expected} characters",
        "maxLength": lambda: f"must be at most {expected} characters",
        "maxItems": lambda: f"must have at most {expected} items",
        "maxProperties": lambda: f"must have at most {expected} items",
        "minProperties": lambda: f"must have at least {expected} item(s)",
        "enum": lambda: "must be one of " + ", ".join(repr(v) for v in expected),
        "additionalProperties": lambda: str(error.message).replace(
            repr(error.instance), "").strip() or "has unexpected keys",
        "required": lambda: error.message.split(" is a required")[0] + " is required",
        "uniqueItems": lambda: "must not list an item twice",
    }
    found = words.get(keyword)
    return found() if found else str(error.message)


def check(schema_key: int, arguments: Mapping[str, Any]) -> None:
    """Raise Invalid for the first argument of ``arguments`` that breaks the schema."""
    for name, value in arguments.items():
        # Before jsonschema, which recurses (and quotes values) per level: no argument of any
        # method nests deeper than this, whatever its schema says.
        if not _depth(value, MAX_NESTING):
            raise exception.Invalid(name, f"nests deeper than {MAX_NESTING} levels",
                                    type(value).__name__)
    fast = _fast(schema_key)
    if fast is not None and fast(dict(arguments)):
        return
    import jsonschema

    validator = _compiled(schema_key)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
    if error is None:
        return
    # In an anyOf (optional values), report the branch that is not "null".
    while error.context:
        inner = [e for e in error.context if e.validator != "type" or e.validator_value != "null"]
        error = jsonschema.exceptions.best_match(inner or error.context)
    path = list(error.absolute_path)
    if error.validator == "required" and not path:
        missing = error.message.split("'")[1] if "'" in error.message else "<argument>"
        raise exception.Invalid(missing, "is required")
    if error.validator == "additionalProperties" and not path:
        extra = sorted(set(arguments) - set(_SCHEMAS[schema_key]["properties"]))
        raise exception.Invalid(extra[0] if extra else "<argument>", "is not an argument of "
                                "this method")
    value = error.instance
    shown = value if isinstance(value, (str, int, float, bool, type(None))) else \
        type(value).__name__
    raise exception.Invalid(_path(path, list(error.absolute_schema_path), _SCHEMAS[schema_key]),
                            _rule(error), _safe(shown))


def _safe(value: Any) -> Any:
    """A value fit for a message: lone surrogates escaped, long text cut."""
    if isinstance(value, str):
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value if len(value) <= 80 else value[:77] + "..."
    return value


def accepts(**properties: Mapping[str, Any]) -> Callable[[F], F]:
    """Validate the arguments a caller passes to the decorated method against ``properties``
    (one schema per parameter; every parameter but ``self`` must have one) before it runs."""

    def decorate(method: F) -> F:
        signature = inspect.signature(method)
        params = [p for p in signature.parameters if p != "self"]
        missing = sorted(set(params) - set(properties))
        unknown = sorted(set(properties) - set(params))
        if missing or unknown:
            raise TypeError(f"schema of {method.__qualname__}: parameters without a schema "
                            f"{missing}, schemas without a parameter {unknown}")
        schema = {"type": "object", "properties": {k: dict(v) for k, v in properties.items()},
                  "additionalProperties": False,
                  "required": [p for p in params
                               if signature.parameters[p].default is inspect.Parameter.empty]}
        key = len(_SCHEMAS)
        _SCHEMAS[key] = schema

        @functools.wraps(method)
        def validated(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as err:
                named = re.search(r"'(\w+)'", str(err))
                raise exception.Invalid(named.group(1) if named else "<arguments>",
                                        str(err)) from None
            passed = {k: v for k, v in bound.arguments.items() if k != "self"}
            check(key, passed)
            return method(self, *args, **kwargs)

        setattr(validated, ATTRIBUTE, schema)
        setattr(validated, KEY_ATTRIBUTE, key)
        return validated  # type: ignore[return-value]

    return decorate


def schema_of(method: Callable[..., Any]) -> dict[str, Any] | None:
    """The arguments' schema of a validated method (None: not validated)."""
    found: dict[str, Any] | None = getattr(method, ATTRIBUTE, None)
    return found
