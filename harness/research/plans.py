"""Plan files (YAML or TOML) of the commands that run many runs (`sweep`, `multi`): what a plan may say (its
schema, here and nowhere else), reading and checking it, where a key stands in its text (every mistake names
its line), and what the two commands share once a plan is read: the run it plans, and the directory names.

A plan's run settings are `build_config`'s keyword arguments, listed here with their kinds rather than read
from its signature: what a plan may set is a decision about plans, and a new `build_config` argument reaches
plans only when it is added to `RUN_SETTINGS` (tests/test_sweep.py holds the two together)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from harness.single.config import SEARCH, RunConfig
from mlperf_llm_sut.benchmarks import LOADGEN_SCENARIOS
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.files import read_text


# -- the schema -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """What a value in a plan may be, as YAML and TOML read it; `described` says so in an error ("give ...")."""

    described: str
    types: tuple[type, ...]
    nullable: bool = False
    """`null` (YAML's `~` or an empty value) is allowed: the setting as if left out."""
    items: Kind | None = None
    """What each item of a list must be."""
    choices: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        # By exact type: YAML's `true` is a bool, which Python would also take for the whole number 1.
        if type(value) not in self.types or (self.choices and value not in self.choices):
            return False
        return self.items is None or all(self.items.accepts(item) for item in value)

    def or_null(self) -> Kind:
        return replace(self, nullable=True)


TEXT = Kind("text", (str,))
PATH = Kind("a path", (str,))
WHOLE = Kind("a whole number", (int,))
NUMBER = Kind("a number", (int, float))
FLAG = Kind("true or false", (bool,))
SETTINGS = Kind("a mapping of settings", (dict,))
TARGET_QPS = Kind("a number, auto (Offline) or search (sweeps: the peak search)", (int, float, str))
GPUS = Kind("a list with one entry per replica, its GPU ids as text ('0,1')", (list,), items=TEXT)
CORES = Kind("a list with one entry per replica, its cores as text ('0-3', 'node:1')", (list,), items=TEXT)
NAME = Kind("a name (letters, digits, . _ -)", (str, int, float))
SCENARIOS = Kind(
    f"a list of {', '.join(LOADGEN_SCENARIOS)}",
    (list,),
    nullable=True,
    items=Kind("a scenario", (str,), choices=tuple(LOADGEN_SCENARIOS)),
)


@dataclass(frozen=True)
class RunSetting:
    """One of `build_config`'s keyword arguments, as a plan gives it: a sweep's base or axis, a multi run."""

    kind: Kind
    set_by_the_sweep: str = ""
    """Why a sweep's base and axes may not set it (the sweep sets it for each run), and what to write instead;
    empty: a sweep may set it in its base or vary it as an axis."""
    placement: bool = False
    """`multi` gives it to each local run that leaves it out: the run's share of this host's cores or GPUs."""

    @property
    def axis(self) -> bool:
        """A sweep's base may set it, and an axis may vary it."""
        return not self.set_by_the_sweep


RUN_SETTINGS: Mapping[str, RunSetting] = {
    "scenario": RunSetting(TEXT, set_by_the_sweep="list scenarios under `scenarios`"),
    "mode": RunSetting(
        TEXT,
        set_by_the_sweep="each point has a performance run per scenario and, unless `accuracy: false`, one "
        "accuracy run",
    ),
    "benchmark": RunSetting(TEXT),
    "compliance": RunSetting(
        TEXT.or_null(), set_by_the_sweep="to none, as a sweep runs no audits (run one with --compliance)"
    ),
    "model": RunSetting(PATH.or_null()),
    "tokenizer": RunSetting(PATH.or_null()),
    "dataset": RunSetting(PATH.or_null()),
    "trust_pickle": RunSetting(FLAG),
    "dataset_sha256": RunSetting(TEXT.or_null()),
    "user_conf": RunSetting(PATH.or_null()),
    "target_qps": RunSetting(TARGET_QPS.or_null()),
    "min_duration_ms": RunSetting(WHOLE.or_null()),
    "min_query_count": RunSetting(WHOLE.or_null()),
    "total_sample_count": RunSetting(WHOLE.or_null()),
    "enable_trace": RunSetting(FLAG),
    "engine": RunSetting(SETTINGS.or_null()),
    "engine_extra": RunSetting(SETTINGS.or_null()),
    "generation": RunSetting(SETTINGS.or_null()),
    "warmup_samples": RunSetting(WHOLE),
    "save_outputs": RunSetting(FLAG),
    "accuracy_targets": RunSetting(replace(PATH, described="a benchmark name or a targets file").or_null()),
    "scoring_workers": RunSetting(WHOLE.or_null()),
    "livecodebench": RunSetting(PATH.or_null()),
    "skip_code": RunSetting(FLAG),
    "replicas": RunSetting(WHOLE),
    "dispatch": RunSetting(TEXT),
    "work_stealing": RunSetting(FLAG),
    "devices": RunSetting(GPUS.or_null(), placement=True),
    "cpu_bind": RunSetting(CORES.or_null(), placement=True),
    "step_delays": RunSetting(replace(SETTINGS, described="a mapping of replica slot to seconds").or_null()),
    "stall_timeout": RunSetting(NUMBER.or_null()),
    "start_timeout": RunSetting(NUMBER.or_null()),
    "sut": RunSetting(TEXT),
    "remote": RunSetting(SETTINGS.or_null()),
    "endpoints_file": RunSetting(PATH.or_null()),
    "ray_address": RunSetting(TEXT.or_null()),
    "telemetry_interval": RunSetting(NUMBER),
}
"""Every run setting a plan may give, by `build_config`'s name for it."""
SET_FOR_EACH_RUN: Mapping[str, str] = {
    "output_dir": ": the plan's own `output_dir`, or --output-dir, says where its runs go",
    "command": "",
}
"""`build_config`'s arguments that no plan gives: the command sets them for each run (with what to write
instead)."""


class Holds(Enum):
    """What a plan key's value holds, beyond its kind: what is checked inside it."""

    VALUE = "a value"
    SETTINGS = "run settings"
    AXES = "axes: run settings, dotted into mapping settings, each with a list of values"
    RUNS = "named runs, each a mapping of run settings"


@dataclass(frozen=True)
class PlanKey:
    """A key at a plan's top level."""

    kind: Kind
    holds: Holds = Holds.VALUE


@dataclass(frozen=True)
class PlanSchema:
    """What one command's plan may say."""

    command: str
    """`sweep` or `multi`, as the user types it."""
    who: str
    """Who sets what a plan may not, as an error says it."""
    keys: Mapping[str, PlanKey]

    @property
    def what(self) -> str:
        return f"{self.command} plan"

    @property
    def swept(self) -> bool:
        """Its run settings are a sweep's: those the sweep sets for each run are not the plan's."""
        return self.command == "sweep"

    def settings(self) -> list[str]:
        """The run settings its plans may give."""
        return sorted(key for key, setting in RUN_SETTINGS.items() if setting.axis or not self.swept)


SWEEP_PLAN = PlanSchema(
    "sweep",
    "the sweep",
    {
        "name": PlanKey(NAME.or_null()),
        "output_dir": PlanKey(PATH.or_null()),
        "scenarios": PlanKey(SCENARIOS),
        "accuracy": PlanKey(FLAG),
        "base": PlanKey(SETTINGS.or_null(), Holds.SETTINGS),
        "axes": PlanKey(replace(SETTINGS, described="a mapping of axes to their values").or_null(), Holds.AXES),
    },
)
MULTI_PLAN = PlanSchema(
    "multi",
    "`multi`",
    {
        "name": PlanKey(NAME.or_null()),
        "output_dir": PlanKey(PATH.or_null()),
        "runs": PlanKey(replace(SETTINGS, described="a mapping of two or more named runs").or_null(), Holds.RUNS),
    },
)


# -- reading and checking ----------------------------------------------------------------------------------------
class PlanLines:
    """Where a key stands in the plan's text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def of(self, *keys: str) -> str:
        """`path:line` of the last of `keys`, each looked for within the block of the one before it:
        `of("runs", "b", "replicas")` is run b's replicas, not run a's. A key not on a line of its own (as in
        `b: {replicas: 2}`) gives the line of the last one that is; none at all, the path alone."""
        start, end, found = 0, len(self.lines), None
        for key in keys:
            number = self._find(key, start, end)
            if number is not None:
                found, start, end = number, number + 1, self._end_of_block(number)
        return f"{self.path}:{found + 1}" if found is not None else str(self.path)

    def _find(self, key: str, start: int, end: int) -> int | None:
        # A dotted key stands as itself (an axis), or as its last part nested under its parent.
        for candidate in dict.fromkeys((key, key.split(".")[-1])):
            name = rf"[\"']?{re.escape(candidate)}[\"']?"
            pattern = re.compile(rf"^\s*(?:{name}\s*[:=]|\[+(?:[^\]]*\.)?\s*{name}\s*\]+)")
            for number in range(start, end):
                if pattern.search(self.lines[number]):
                    return number
        return None

    def _end_of_block(self, number: int) -> int:
        """Where what is inside line `number`'s key ends: at a TOML table, the next table; in YAML, the next
        line indented no deeper (but a list item, which YAML may indent as deep as its key)."""
        line = self.lines[number]
        table = line.lstrip().startswith("[")
        indent = len(line) - len(line.lstrip())
        for later in range(number + 1, len(self.lines)):
            text = self.lines[later]
            stripped = text.lstrip()
            if not stripped or stripped.startswith("#"):
                continue
            depth = len(text) - len(stripped)
            if stripped.startswith("[") if table else depth < indent or (depth == indent and stripped[0] != "-"):
                return later
        return len(self.lines)


def read_plan(path: Path, schema: PlanSchema) -> tuple[dict[str, Any], PlanLines]:
    """The plan's mapping and its lines, checked against `schema`: a missing file, a folder, bad syntax or a
    key, value or run name the schema refuses is one error."""
    text = read_text(path, what=schema.what, remedy="give a .yaml or .toml plan")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise HarnessError(f"{schema.what} {path} does not parse: {exc}".replace("\n", " ")) from None
    lines = PlanLines(path, text)
    check_plan(data, lines, schema)
    return data, lines


def check_plan(data: Any, lines: PlanLines, schema: PlanSchema) -> None:
    """Every key of the plan, and every run setting in it, is one the schema has, of its kind: the first that is
    not is one error with the plan's line, the key, and what the schema allows there. What the settings mean
    together (a scenario the benchmark lacks, a layout this host cannot hold) is `build_config`'s to check."""
    if not isinstance(data, dict):
        raise HarnessError(f"{schema.what} {lines.path} is not a mapping of {', '.join(schema.keys)}.")
    unknown = sorted(str(key) for key in data if key not in schema.keys)
    if unknown:
        raise HarnessError(
            f"{lines.of(unknown[0])}: unknown plan key {unknown[0]!r}; a plan has {', '.join(schema.keys)}."
        )
    for key, value in data.items():
        plan_key = schema.keys[key]
        _check_kind(lines.of(key), key, value, plan_key.kind)
        if plan_key.holds is Holds.SETTINGS:
            _check_settings(value or {}, lines, schema, (key,))
        elif plan_key.holds is Holds.AXES:
            _check_axes(value or {}, lines, schema, key)
        elif plan_key.holds is Holds.RUNS:
            for name, settings in (value or {}).items():
                where = lines.of(key, str(name))
                directory_name(name, where, "run name")
                if not isinstance(settings, dict):
                    raise HarnessError(f"{where}: run {str(name)!r} needs a mapping of settings.")
                _check_settings(settings, lines, schema, (key, str(name)), f"run {str(name)!r}: ")


def _check_settings(
    settings: dict[Any, Any], lines: PlanLines, schema: PlanSchema, within: tuple[str, ...], context: str = ""
) -> None:
    for key, value in settings.items():
        where = lines.of(*within, str(key))
        _check_kind(where, f"{context}{key}", value, _run_setting(str(key), where, schema, context).kind)


def _check_axes(axes: dict[Any, Any], lines: PlanLines, schema: PlanSchema, within: str) -> None:
    for axis, values in axes.items():
        where = lines.of(within, str(axis))
        root, dotted = str(axis).split(".")[0], "." in str(axis)
        setting = _run_setting(root, where, schema)
        if not isinstance(values, list) or not values:
            raise HarnessError(f"{where}: axis {axis!r} needs a list of one or more values.")
        if dotted and dict not in setting.kind.types:
            mappings = ", ".join(key for key in schema.settings() if dict in RUN_SETTINGS[key].kind.types)
            raise HarnessError(
                f"{where}: axis {axis!r}: {root} is {setting.kind.described}, with nothing inside to dot into; "
                f"dotted axes go into {mappings}."
            )
        for value in values if not dotted else ():
            _check_kind(where, str(axis), value, setting.kind)


def _run_setting(key: str, where: str, schema: PlanSchema, context: str = "") -> RunSetting:
    """The schema's entry for `key`, where this command's plans may give it; else the error that says why not."""
    if key in SET_FOR_EACH_RUN:
        raise HarnessError(f"{where}: {context}{key!r} is set by {schema.who} for each run{SET_FOR_EACH_RUN[key]}.")
    setting = RUN_SETTINGS.get(key)
    if setting is not None and schema.swept and not setting.axis:
        raise HarnessError(
            f"{where}: {context}{key!r} is set by {schema.who} for each run: {setting.set_by_the_sweep}."
        )
    if setting is None:
        allowed = schema.settings()
        near = difflib.get_close_matches(key, allowed, n=1)
        meant = f" (did you mean {near[0]!r}?)" if near else ""
        raise HarnessError(
            f"{where}: {context}unknown setting {key!r}{meant}; a {schema.what}'s settings: {', '.join(allowed)}."
        )
    return setting


def _check_kind(where: str, key: str, value: Any, kind: Kind) -> None:
    if not kind.accepts(value):
        shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:77]}..."
        raise HarnessError(f"{where}: {key} = {shown}: give {kind.described}.")


DIRECTORY_NAME = re.compile(r"(?!\.\.?$)[\w.-]+")
"""A plan's name and a run's name: each is a directory's name, under the output folder or the plan's."""


def directory_name(name: Any, where: str, what: str) -> str:
    text = str(name)
    if not DIRECTORY_NAME.fullmatch(text):
        raise HarnessError(
            f"{where}: the {what} {text!r} is a directory name: letters, digits, . _ - only (and not . or ..)."
        )
    return text


def plan_directory(
    data: dict[str, Any], lines: PlanLines, *, output_dir: Path | None, default: str
) -> tuple[str, Path]:
    """The plan's name (its own, else its file's) and its directory: under `output_dir`, else the plan's
    `output_dir`, else `default`."""
    name = directory_name(data.get("name") or lines.path.stem, lines.of("name"), "name")
    return name, Path(output_dir or data.get("output_dir") or default) / name


# -- what a read plan holds ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedRun:
    """One run a plan asks for, its configuration built and checked before anything runs."""

    name: str
    """Its directory under the plan's: a sweep's point (which the point's runs share) or a multi run's name."""
    options: dict[str, Any]
    """`build_config`'s keyword arguments as the plan gives them: a sweep's base with the point's axis values
    (`target_qps: search` included), a multi run's settings with the cores or GPUs `multi` gave it."""
    config: RunConfig
    values: dict[str, Any] = field(default_factory=dict)
    """A sweep's run: the axis values that make its point."""
    placed: str | None = None
    """A multi run: what `multi` placed it on ("cores 0-3", "GPUs 0,1"), when it did."""

    @property
    def scenario(self) -> str:
        return self.config.loadgen.scenario

    @property
    def mode(self) -> str:
        return self.config.loadgen.mode

    @property
    def key(self) -> str:
        """Hash of everything the run was configured with: a sweep does not run again a finished run with the
        same key."""
        described = {"options": self.options, "scenario": self.scenario, "mode": self.mode}
        return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def search(self) -> bool:
        """`target_qps: search` on a Server or Interactive performance run: the peak search, then its final run."""
        searched = self.options.get("target_qps") == SEARCH
        return searched and self.mode == "performance" and self.scenario != "Offline"


@dataclass
class Plan:
    """A plan read and checked, with every run it asks for."""

    path: Path
    name: str
    directory: Path
    runs: list[PlannedRun]
    axes: dict[str, list[Any]] = field(default_factory=dict)
    """A sweep's axes, as the plan gives them."""


def cell(value: float | None, spec: str, unit: str = "") -> str:
    """A figure in a table of many runs: formatted by `spec`, or `-` for a run that has none."""
    return "-" if value is None else f"{format(value, spec)}{unit}"
