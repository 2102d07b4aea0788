"""Files an earlier run wrote, read back: one that is missing, a folder, not UTF-8, cut short, or not of the shape
this harness writes is one `HarnessError` line naming the file and what is wrong, never a traceback.

A shape maps dotted keys to the JSON types the reader relies on: `{"result": dict, "result.valid": bool}`. A
dotted key is checked where its parent is an object; a parent that is absent or null is its own key's business,
so `"accuracy": (dict, NULL)` with `"accuracy.metrics": dict` asks for metrics only when there is an accuracy."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mlperf_llm_sut.common.errors import HarnessError

NULL = type(None)
NUMBER = (int, float)
Kind = type | tuple[type, ...]
Shape = Mapping[str, Kind]

_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
    NULL: "null",
}

Item = TypeVar("Item")
Read = TypeVar("Read")


def read_text(path: Path, *, what: str, remedy: str = "") -> str:
    """The file's text, strictly UTF-8 (what the harness writes): anything else is a damaged file, not text to guess."""
    if path.is_dir():
        _fail(f"{what} {path} is a directory, not a file", remedy)
    if not path.exists():
        _fail(f"{what} {path} does not exist", remedy)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"{what} {path} cannot be read ({exc.strerror})", remedy)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = f"byte {data[exc.start]:#04x} at offset {exc.start}"
        _fail(f"{what} {path} is not UTF-8 text ({byte}): it is damaged", remedy)


def read_json(
    path: Path,
    *,
    what: str,
    expect: type = dict,
    required: Shape | None = None,
    optional: Shape | None = None,
    remedy: str = "",
) -> Any:
    """The file's JSON value, of type `expect`; an object is checked against `required` and `optional` keys."""
    text = read_text(path, what=what, remedy=remedy)
    if not text.strip():
        _fail(f"{what} {path} is empty", remedy)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        _fail(f"{what} {path} is not valid JSON ({where}): it is cut short or damaged", remedy)
    if not isinstance(value, expect):
        _fail(f"{what} {path} holds {describe_value(value)}, not {describe_kinds(expect)}", remedy)
    if isinstance(value, dict):
        check_shape(value, where=f"{what} {path}", required=required, optional=optional, remedy=remedy)
    return value


def read_jsonl(
    path: Path, *, what: str, required: Shape | None = None, optional: Shape | None = None, remedy: str = ""
) -> list[dict[str, Any]]:
    """One object per line, each checked against the shape; blank lines are passed over."""
    rows = []
    for number, line in enumerate(read_text(path, what=what, remedy=remedy).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{what} {path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"column {exc.colno}: {exc.msg}"
            _fail(f"{where} is not valid JSON ({problem}): the file is cut short or damaged", remedy)
        check_shape(row, where=where, required=required, optional=optional, remedy=remedy)
        rows.append(row)
    return rows


def check_shape(
    value: Any, *, where: str, required: Shape | None = None, optional: Shape | None = None, remedy: str = ""
) -> None:
    """`value` is an object with every `required` key and the right type for each key of either shape it has.
    A missing key is the sign of a file from elsewhere, or from a version of the harness that did not write it."""
    if not isinstance(value, dict):
        _fail(f"{where} holds {describe_value(value)}, not an object", remedy)
    keys = [(key, kind, True) for key, kind in (required or {}).items()]
    keys += [(key, kind, False) for key, kind in (optional or {}).items()]
    # Parents first: a damaged parent is named as itself, not as its missing children.
    for key, kind, needed in sorted(keys, key=lambda entry: entry[0].count(".")):
        *parents, last = key.split(".")
        node: Any = value
        for part in parents:
            node = node.get(part)
            if not isinstance(node, dict):
                break
        else:
            if last not in node:
                if needed:
                    _fail(f"{where} was not written by this harness, or by an older version of it (no {key!r})", remedy)
                continue
            if not isinstance(node[last], kind):
                _fail(
                    f"{where} is damaged: {key!r} is {describe_value(node[last])}, not {describe_kinds(kind)}", remedy
                )


def read_each(
    items: Sequence[Item], read: Callable[[Item], Read], warn: Callable[[str], None], *, left_out: str
) -> list[Read]:
    """`read` of each item, for a command over many runs: one that raises `HarnessError` (a damaged file) is a
    warning that ends with `left_out`, and the command goes on with the others. With nothing left to go on, it
    is one error: the item's own, when there was one."""
    done: list[Read] = []
    problems: list[str] = []
    for item in items:
        try:
            done.append(read(item))
        except HarnessError as exc:
            problems.append(str(exc))
    if not done and len(problems) == 1:
        raise HarnessError(problems[0])
    for problem in problems:
        warn(f"{problem} {left_out}")
    if not done and problems:
        raise HarnessError(f"none of the {len(problems)} runs can be read (the warnings above say why).")
    return done


def _fail(problem: str, remedy: str) -> NoReturn:
    raise HarnessError(f"{problem}; {remedy}." if remedy else f"{problem}.")


def describe_value(value: Any) -> str:
    """A JSON value's kind in words: `a string`, `null`."""
    return _NAMES.get(type(value), type(value).__name__)


def describe_kinds(kind: Kind) -> str:
    """JSON kinds in words: `an object or null`."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(_NAMES.get(k, k.__name__) for k in kinds))
