"""Typed records (dataclasses) as JSON and back.

`to_json` writes a dataclass as plain JSON values; `from_json` builds it again from what a file held, checking
every value against the field's type on the way, so that a reader works with attributes and types instead of
`.get()` chains over a dict. A value of the wrong type or a missing field is one `HarnessError` line in the
words `mlperf_llm_sut.common.files` uses for any file an earlier run wrote: `<where> is damaged: 'result.valid'
is a string, not true or false`.

A field whose metadata has `FLATTEN` holds a mapping that is written into its parent object, and is read back
from the parent's keys that no other field claims: a replica's row in run.json carries what its kind of
replica adds (an endpoint's retries, an engine's devices) beside the fields every row has.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.files import NULL, describe_kinds, describe_value

FLATTEN = "flatten"
"""Field metadata key: `field(metadata={FLATTEN: True})` merges the field's mapping into its parent object."""

Record = TypeVar("Record")


def to_json(value: Any) -> Any:
    """`value` as plain JSON values: dataclasses as objects (flattened fields merged in), paths as strings,
    tuples as lists, mapping keys as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            item = to_json(getattr(value, field.name))
            if field.metadata.get(FLATTEN):
                plain.update(item)
            else:
                plain[field.name] = item
        return plain
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_json(kind: type[Record], value: Any, *, where: str) -> Record:
    """The dataclass `kind` built from `value`, each field checked against its type; `where` names the file
    in an error."""
    built: Record = _build(kind, value, where, "")
    return built


def _build(kind: Any, value: Any, where: str, key: str) -> Any:
    if kind is Any or kind is object:
        return value
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(kind), value, where, key)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, where, key)
    if origin in (list, tuple):
        items = _expect(value, list, where, key)
        (item_kind, *_) = typing.get_args(kind) or (Any,)
        built = [_build(item_kind, item, where, f"{key}[{index}]") for index, item in enumerate(items)]
        return built if origin is list else tuple(built)
    if origin is dict:
        key_kind, item_kind = typing.get_args(kind) or (str, Any)
        mapping = _expect(value, dict, where, key)
        return {
            _key(key_kind, name, where, key): _build(item_kind, item, where, _at(key, name))
            for name, item in mapping.items()
        }
    if kind is Path:
        return Path(_expect(value, str, where, key))
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        _damaged(where, key, value, float)
    if kind is int and isinstance(value, bool):
        _damaged(where, key, value, int)
    return _expect(value, kind, where, key)


def _dataclass(kind: Any, value: Any, where: str, key: str) -> Any:
    fields = _expect(value, dict, where, key)
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    claimed: set[str] = set()
    flattened = None
    for field in dataclasses.fields(kind):
        if field.metadata.get(FLATTEN):
            flattened = field
            continue
        claimed.add(field.name)
        if field.name in fields:
            values[field.name] = _build(hints[field.name], fields[field.name], where, _at(key, field.name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise HarnessError(
                f"{where} was not written by this harness, or by an older version of it (no {_at(key, field.name)!r})."
            )
    if flattened is not None:
        rest = {name: item for name, item in fields.items() if name not in claimed}
        values[flattened.name] = _build(hints[flattened.name], rest, where, key)
    return kind(**values)


def _union(kinds: tuple[Any, ...], value: Any, where: str, key: str) -> Any:
    if value is None and NULL in kinds:
        return None
    for kind in kinds:
        if (
            kind is not NULL
            and isinstance(value, _json_types(kind))
            and not (isinstance(value, bool) and kind is not bool)
        ):
            return _build(kind, value, where, key)
    _damaged(where, key, value, *(json_type for kind in kinds for json_type in _json_types(kind)))


def _json_types(kind: Any) -> tuple[type, ...]:
    """The JSON types a Python type is written as."""
    origin = typing.get_origin(kind) or kind
    if dataclasses.is_dataclass(origin) or origin in (dict, Mapping):
        return (dict,)
    if origin in (list, tuple):
        return (list,)
    if origin is Path:
        return (str,)
    if origin is float:
        return (int, float)
    return (origin,) if isinstance(origin, type) else (object,)


def _key(kind: Any, name: str, where: str, key: str) -> Any:
    if kind is int:
        try:
            return int(name)
        except ValueError:
            raise HarnessError(f"{where} is damaged: {_at(key, name)!r} is not a number.") from None
    return name


def _expect(value: Any, kind: type, where: str, key: str) -> Any:
    if not isinstance(value, kind):
        _damaged(where, key, value, kind)
    return value


def _damaged(where: str, key: str, value: Any, *kinds: type) -> NoReturn:
    raise HarnessError(f"{where} is damaged: {key!r} is {describe_value(value)}, not {describe_kinds(kinds)}.")


def _at(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)
