"""Plan files (YAML or TOML) of the commands that run many runs (`sweep`, `multi`): reading, and where a key
stands in the text, so that every mistake names its line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from common.errors import HarnessError
from common.files import read_text


class PlanLines:
    """Where a key stands in the plan's text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def of(self, key: str, *, within: str | None = None) -> str:
        """`path:line` of `key`'s line; a key not on a line of its own (as in `{a: 1}`) gives `within`'s line."""
        last = key.split(".")[-1]
        for candidates in (key, last):
            pattern = re.compile(rf"^\s*[\"']?{re.escape(candidates)}[\"']?\s*[:=]")
            for number, line in enumerate(self.lines, 1):
                if pattern.search(line):
                    return f"{self.path}:{number}"
        return self.of(within) if within is not None else str(self.path)


def read_plan(path: Path, what: str, keys: tuple[str, ...]) -> tuple[dict[str, Any], PlanLines]:
    """The plan's mapping and its lines; a missing file, a folder, bad syntax or an unknown key is one error."""
    text = read_text(path, what=what, remedy="give a .yaml or .toml plan")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise HarnessError(f"{what} {path} does not parse: {exc}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise HarnessError(f"{what} {path} is not a mapping of {', '.join(keys)}.")
    lines = PlanLines(path, text)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise HarnessError(f"{lines.of(unknown[0])}: unknown plan key {unknown[0]!r}; a plan has {', '.join(keys)}.")
    return data, lines
