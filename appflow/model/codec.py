"""Records to JSON and back: one mapping for every store.

The embedded SQLite store keeps nested record fields (a sync policy, catalog
install data, a Helm release reference, resource counts) as JSON text, and the
hub store keeps whole records as custom resources. Both go through here, so a
record means the same thing wherever it is kept.

The mapping is read from the dataclasses' own type hints, so a new field needs
no code here:

- a dataclass becomes an object with camelCase keys (Kubernetes' convention);
  on the way back a missing key takes the field's default, so records written
  before a field existed still read;
- tuples and lists become arrays, mappings objects, datetimes ISO 8601 text,
  enums their value;
- a union of dataclasses is told apart by their ``kind`` field (a ``Literal``),
  the way a tagged type is spelled in JSON;
- ``JsonValue`` (free-form data such as Helm values) passes through as it is.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, overload

from appflow.errors import StoreError, Where

JsonValue = Union[str, int, float, bool, None, list["JsonValue"], dict[str, "JsonValue"]]  # noqa: UP007
"""Any JSON document (the union is spelled out so that mypy can follow the recursion)."""
JsonObject = dict[str, JsonValue]

T = TypeVar("T")
_CAMEL = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """'desired_ready' -> 'desiredReady'."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def to_json(value: object) -> JsonValue:
    """VALUE (a record, or anything a record holds) as JSON data."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            camel(f.name): to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.init
        }
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [to_json(v) for v in value]
    raise TypeError(f"{type(value).__name__} has no JSON form")


@overload
def from_json(tp: type[T], data: JsonValue, *, what: str = "") -> T: ...
@overload
def from_json(tp: object, data: JsonValue, *, what: str = "") -> object: ...


def from_json(tp: object, data: JsonValue, *, what: str = "") -> object:
    """DATA (as to_json wrote it) as a TP; StoreError naming the field when it does not fit.

    TP may also be a union or a generic alias (``tuple[Dependency, ...]``); the result is
    then typed ``object`` and the caller casts it.
    """
    try:
        return _decode(tp, data, what or getattr(tp, "__name__", "value"))
    except _Mismatch as err:
        raise StoreError(
            f"stored data does not fit: {err}",
            where=Where(field=err.path),
            hint="the store was written by a different appflow, or edited by hand",
        ) from None


class _Mismatch(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # JsonObject's forward reference to JsonValue is resolved here, wherever the
    # record's module imported JsonObject from.
    return typing.get_type_hints(cls, localns={"JsonValue": JsonValue})


def _decode(tp: Any, data: Any, path: str) -> Any:
    if tp is Any or _is_json(tp):
        return data
    origin = get_origin(tp)
    if origin is Literal:
        if data not in get_args(tp):
            raise _Mismatch(path, f"{data!r} is not one of {', '.join(map(repr, get_args(tp)))}")
        return data
    if origin in (Union, types.UnionType):
        return _decode_union(tp, data, path)
    if dataclasses.is_dataclass(tp):
        return _decode_record(cast(type, tp), data, path)
    if origin in (tuple, list, frozenset) or tp in (tuple, list):
        return _decode_sequence(tp, origin, data, path)
    if origin in (dict, Mapping) or origin is getattr(typing, "Mapping", None):
        return _decode_mapping(tp, data, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is datetime:
        if not isinstance(data, str):
            raise _Mismatch(path, f"expected a time, got {data!r}")
        return datetime.fromisoformat(data)
    if tp is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if tp in (str, int, bool) and type(data) is tp:
        return data
    raise _Mismatch(path, f"expected {getattr(tp, '__name__', tp)}, got {data!r}")


_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _is_json(tp: Any) -> bool:
    """Whether TP is JsonValue (get_type_hints hands back a copy with its forward
    references resolved one level, so it is recognised by its shape)."""
    if get_origin(tp) not in (Union, types.UnionType):
        return False
    args = get_args(tp)
    return set(args) >= _SCALARS and {get_origin(a) for a in args} >= {list, dict}


def _decode_union(tp: Any, data: Any, path: str) -> Any:
    options = [a for a in get_args(tp) if a is not type(None)]
    if data is None:
        if len(options) < len(get_args(tp)):
            return None
        raise _Mismatch(path, "is missing")
    if len(options) == 1:
        return _decode(options[0], data, path)
    if all(dataclasses.is_dataclass(o) for o in options):
        kind = data.get("kind") if isinstance(data, dict) else None
        for option in options:
            if kind in get_args(_hints(option).get("kind", Literal[None])):
                return _decode(option, data, path)
        raise _Mismatch(f"{path}.kind", f"{kind!r} names none of the kinds this field holds")
    for option in options:  # plain unions (int | str): the first that fits
        try:
            return _decode(option, data, path)
        except (_Mismatch, ValueError, TypeError):
            continue
    raise _Mismatch(path, f"{data!r} fits none of the types this field holds")


def _decode_record(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise _Mismatch(path, f"expected an object, got {data!r}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = camel(f.name)
        if key in data:
            values[f.name] = _decode(hints[f.name], data[key], f"{path}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Mismatch(f"{path}.{key}", "is missing")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise _Mismatch(path, str(err)) from err


def _decode_sequence(tp: Any, origin: Any, data: Any, path: str) -> Any:
    if not isinstance(data, list):
        raise _Mismatch(path, f"expected a list, got {data!r}")
    args = get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(data):
            raise _Mismatch(path, f"expected {len(args)} items, got {len(data)}")
        return tuple(
            _decode(a, d, f"{path}[{i}]") for i, (a, d) in enumerate(zip(args, data, strict=True))
        )
    item = args[0] if args else Any
    items = [_decode(item, d, f"{path}[{i}]") for i, d in enumerate(data)]
    if origin is list or tp is list:
        return items
    return frozenset(items) if origin is frozenset else tuple(items)


def _decode_mapping(tp: Any, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise _Mismatch(path, f"expected an object, got {data!r}")
    args = get_args(tp)
    value_type = args[1] if len(args) == 2 else Any
    return {str(k): _decode(value_type, v, f"{path}.{k}") for k, v in data.items()}
