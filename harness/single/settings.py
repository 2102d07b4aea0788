"""LoadGen `TestSettings`: the benchmark's mlperf.conf, the user's user.conf, then our overrides.

Every override makes the run non-compliant, and says so: the reasons travel
with the settings into run.json and the summary.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg

from mlperf_llm_sut.benchmarks import (
    DEFAULT_BENCHMARK,
    LOADGEN_SCENARIOS,
    Benchmark,
    ComplianceTest,
    ScenarioRules,
    get_benchmark,
)
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError, setting

# The TestSettings field --target-qps sets, per LoadGen scenario.
TARGET_SETTINGS = {
    "Offline": "offline_expected_qps",
    "Server": "server_target_qps",
    "SingleStream": "single_stream_expected_latency_ns",
}
# Where a setting's value came from (`BuiltSettings.sources`); overrides are named by their option.
LOADGEN_DEFAULT = "LoadGen default"
MLPERF_CONF = "mlperf.conf"
USER_CONF = "user.conf"
DEMO = "demo"
DATA_SET = "data set"
CALIBRATION = "calibration"
MODES = {"performance": lg.TestMode.PerformanceOnly, "accuracy": lg.TestMode.AccuracyOnly}
CONF_SCENARIOS = {"*", "SingleStream", "MultiStream", "Server", "Offline"}
# The keys LoadGen's TestSettings::FromConfig looks up; anything else it ignores silently.
CONF_KEYS = frozenset(
    """accuracy_log_probability accuracy_log_rng_seed accuracy_log_sampling_target
    accuracy_sample_count_override coalesce_queries infer_token_latencies max_async_queries
    max_duration max_query_count min_duration min_query_count mode performance_issue_same
    performance_issue_same_index performance_issue_unique performance_sample_count_override
    print_timestamps qsl_rng_seed sample_concatenate_permutation sample_index_rng_seed
    samples_per_query schedule_rng_seed target_latency target_latency_percentile target_qps
    test05 test05_qsl_rng_seed test05_sample_index_rng_seed test05_schedule_rng_seed
    token_latency_scaling_factor tpot_latency ttft_latency use_token_latencies""".split()
)
_NUMBER = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")


@dataclass
class LoadGenConfig:
    """What decides LoadGen's behaviour for one run."""

    scenario: str = "Offline"
    """Offline, Server, Interactive (LoadGen's Server under the benchmark's interactive rules) or SingleStream."""
    mode: str = "performance"
    benchmark: str = DEFAULT_BENCHMARK
    """An official MLPerf name (`benchmarks.BENCHMARKS`)."""
    user_conf: Path | None = None
    target_qps: float | None = None
    calibrate: bool = False
    """Offline: size the query from the throughput measured just before the test (`--target-qps auto`),
    so the run cannot end before its minimum duration on a fast machine."""
    min_duration_ms: int | None = None
    min_query_count: int | None = None
    total_sample_count: int | None = None
    enable_trace: bool = False
    demo: bool = False
    """Short settings for the embedded tiny model; never compliant."""
    compliance: str | None = None
    """An audit of the benchmark (TEST06) to run instead of a plain performance run."""


@dataclass
class BuiltSettings:
    settings: Any
    benchmark: Benchmark
    rules: ScenarioRules
    total_sample_count: int
    performance_sample_count: int
    audit: ComplianceTest | None = None
    """The compliance test whose audit.config this run applies."""
    non_compliant: list[str] = field(default_factory=list)
    calibrate: bool = False
    """Offline: size the query from a calibration just before the test (`--target-qps auto`, or the demo)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Each TestSettings field: where its value came from (mlperf.conf, user.conf, demo, `--min-duration`, ...)."""

    def audit_config(self) -> str:
        """The audit.config text LoadGen reads over every other setting (empty without an audit)."""
        if self.audit is None:
            return ""
        return "".join(f"*.*.{key} = {value}\n" for key, value in self.audit.audit_settings.items())


def check_user_conf(path: Path, conf_model: str) -> list[str]:
    """Validate a user.conf the way LoadGen parses it, but loudly; returns warnings."""
    if not path.is_file():
        raise HarnessError(f"user.conf {path} does not exist. Pass an existing file to {setting('user_conf')}.")
    applies = False
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"user.conf {path} line {number}"
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key or not value or " " in key or " " in value:
            raise HarnessError(f"{where}: expected 'model.scenario.key = value', got {raw.strip()!r}.")
        parts = key.split(".")
        if len(parts) < 3:
            raise HarnessError(
                f"{where}: key {key!r} needs three parts, model.scenario.key "
                f"(for example {conf_model}.Server.target_qps)."
            )
        model, scenario, name = ".".join(parts[:-2]), parts[-2], parts[-1]
        if scenario not in CONF_SCENARIOS:
            hint = (
                " Interactive settings are LoadGen Server settings of the interactive model key, e.g. "
                "llama2-70b-interactive.Server.target_qps."
                if scenario == "Interactive"
                else ""
            )
            raise HarnessError(f"{where}: unknown scenario {scenario!r}; use one of {sorted(CONF_SCENARIOS)}.{hint}")
        if name not in CONF_KEYS:
            close = difflib.get_close_matches(name, sorted(CONF_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise HarnessError(f"{where}: LoadGen has no setting {name!r}.{hint}")
        if not _NUMBER.match(value):
            raise HarnessError(f"{where}: value {value!r} of {key} must be a number.")
        applies = applies or model in ("*", conf_model)
    if not applies:
        return [
            f"user.conf {path} sets nothing for {conf_model}, the LoadGen model key of this benchmark and "
            "scenario (its keys start with another model name)"
        ]
    return []


@dataclass
class _Asked:
    """What a configuration asks of LoadGen before a data set sizes it."""

    settings: Any
    benchmark: Benchmark
    rules: ScenarioRules
    sources: dict[str, str]
    non_compliant: list[str]
    calibrate: bool
    warnings: list[str]


def requested_settings(config: LoadGenConfig) -> Any:
    """The TestSettings `config` asks for from mlperf.conf, its user.conf, its overrides and (for the embedded
    model) the demo, before a data set caps its sample counts: what a search shortens its runs from."""
    return _ask(config).settings


def build_settings(config: LoadGenConfig, dataset_size: int) -> tuple[BuiltSettings, list[str]]:
    """TestSettings for `config`, and warnings worth showing the user.

    Each setting comes from one place, recorded in `BuiltSettings.sources`, latest first: the audit's
    audit.config, the data set (a performance sample count it cannot fill), an override (`--target-qps`,
    `--min-duration`, `--min-query-count`), the user.conf, the demo (only where the user set nothing), the
    benchmark's mlperf.conf, LoadGen's default."""
    asked = _ask(config)
    settings, benchmark, sources, non_compliant = asked.settings, asked.benchmark, asked.sources, asked.non_compliant
    audit = benchmark.compliance_test(config.compliance) if config.compliance else None
    total = dataset_size
    if config.total_sample_count is not None:
        if config.total_sample_count < 1:
            raise HarnessError(f"{setting('total_sample_count')} must be at least 1.")
        total = min(dataset_size, config.total_sample_count)
        non_compliant.append(f"--total-sample-count {config.total_sample_count}")
    requested = settings.performance_sample_count_override or total
    performance = min(requested, total)
    if performance != requested:
        settings.performance_sample_count_override = performance
        sources["performance_sample_count_override"] = DATA_SET
        if config.mode != "accuracy":  # an accuracy run is held to its sample count instead (check_effective)
            non_compliant.append(
                f"performance sample count {performance} (the benchmark asks for {requested}; "
                f"the data set has {dataset_size} samples)"
            )
    elif sources["performance_sample_count_override"] == LOADGEN_DEFAULT:
        sources["performance_sample_count_override"] = DATA_SET  # LoadGen takes the QSL's count: ours
    wanted = benchmark.accuracy_sample_count
    if config.mode == "accuracy" and wanted is not None and total > wanted:
        # LoadGen would score the first `wanted` rows of a bigger file: likely the performance data set.
        non_compliant.append(
            f"the data set has {total} samples, but {benchmark.name}'s accuracy data set has {wanted}: is it the "
            "performance data set?"
        )
    if settings.accuracy_sample_count_override > total:
        # LoadGen would ask for samples past the end of the data set (gpt-oss-120b's 4,395 of a smaller file);
        # the run's check of LoadGen's effective count then says it is short.
        settings.accuracy_sample_count_override = total
        sources["accuracy_sample_count_override"] = DATA_SET
    non_compliant += benchmark.check_requested(config.scenario, describe(settings))
    built = BuiltSettings(
        settings, benchmark, asked.rules, total, performance, audit, non_compliant, asked.calibrate, sources
    )
    if audit is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".config") as audit_file:
            audit_file.write(built.audit_config())
            audit_file.flush()
            audited = _fields_set_by(audit_file.name, asked.rules, 2)
            sources.update(dict.fromkeys(audited, f"{audit.name} audit.config"))
    return built, asked.warnings


def _ask(config: LoadGenConfig) -> _Asked:
    """mlperf.conf, then the user.conf, then the overrides, then the demo where none of them set anything."""
    if config.scenario not in LOADGEN_SCENARIOS:
        raise HarnessError(f"unknown scenario {config.scenario!r}: use one of {', '.join(LOADGEN_SCENARIOS)}.")
    if config.mode not in MODES:
        raise HarnessError(f"unknown mode {config.mode!r}: use performance or accuracy.")
    benchmark = get_benchmark(config.benchmark)
    rules = benchmark.rules(config.scenario)
    warnings: list[str] = []
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, rules.loadgen_scenario)
    sources = dict.fromkeys(describe(settings), LOADGEN_DEFAULT)
    # conf_type 0 loads LoadGen's built-in mlperf.conf; 2 then reads user.conf over it. That is
    # what conf_type 1 does, minus its process-wide counter, which logs a "multiple conf files"
    # error into every later run of the same process (a library must allow many runs).
    status = settings.FromConfig("", rules.conf_model, rules.loadgen_scenario, 0)
    sources.update(dict.fromkeys(_fields_set_by("", rules, 0), MLPERF_CONF))
    if status == 0 and config.user_conf is not None:
        warnings += check_user_conf(config.user_conf, rules.conf_model)
        status = settings.FromConfig(str(config.user_conf), rules.conf_model, rules.loadgen_scenario, 2)
        sources.update(dict.fromkeys(_fields_set_by(str(config.user_conf), rules, 2), USER_CONF))
    if status != 0:
        raise HarnessError(
            f"LoadGen rejected the configuration for {rules.conf_model}/{rules.loadgen_scenario} "
            f"(code {status}); check {setting('user_conf')}."
        )
    settings.mode = MODES[config.mode]
    non_compliant: list[str] = []
    target = TARGET_SETTINGS[rules.loadgen_scenario]

    def override(source: str, name: str, value: Any, reason: str) -> None:
        setattr(settings, name, value)
        sources[name] = source
        non_compliant.append(reason)

    if config.target_qps is not None:
        reason = f"--target-qps {config.target_qps}"
        if rules.loadgen_scenario == "SingleStream":
            reason += f" (an expected latency of {1e3 / config.target_qps:g} ms)"
        override("--target-qps", target, _target_value(target, config.target_qps), reason)
    for flag, name, value in (
        ("--min-duration", "min_duration_ms", config.min_duration_ms),
        ("--min-query-count", "min_query_count", config.min_query_count),
    ):
        if value is not None:
            override(flag, name, value, f"{flag} {value}")
    calibrate = config.calibrate
    if calibrate and not config.demo:
        non_compliant.append("--target-qps auto (the Offline query sized from a calibration run)")
    if config.demo:
        calibrate = _apply_demo(config, rules, settings, sources, non_compliant)
    return _Asked(settings, benchmark, rules, sources, non_compliant, calibrate, warnings)


def _apply_demo(
    config: LoadGenConfig, rules: ScenarioRules, settings: Any, sources: dict[str, str], non_compliant: list[str]
) -> bool:
    """The embedded model's short settings, each only where the user set nothing of their own (user.conf or an
    override); returns whether the Offline query is sized by calibration, which the demo does unless the user
    gave an expected QPS."""
    demo = embedded.DEMO_LOADGEN.get(config.scenario, {})
    target = TARGET_SETTINGS[rules.loadgen_scenario]
    chosen = {"min_duration_ms": demo.get("min_duration_ms"), "min_query_count": demo.get("min_query_count")}
    if "target_qps" in demo:
        chosen[target] = _target_value(target, demo["target_qps"])
    applied = []
    for name, value in chosen.items():
        if value is not None and sources[name] in (LOADGEN_DEFAULT, MLPERF_CONF):
            setattr(settings, name, value)
            sources[name] = DEMO
            applied.append(f"{name} {value:g}")
    calibrate = config.calibrate or (
        rules.loadgen_scenario == "Offline" and sources[target] in (LOADGEN_DEFAULT, MLPERF_CONF)
    )
    if calibrate:
        applied.append("the Offline query sized by calibration")
    if applied:
        non_compliant.append(f"demo settings for the embedded tiny model: {', '.join(applied)}")
    else:
        non_compliant.append("the embedded tiny model, not the benchmark's")
    return calibrate


def _target_value(name: str, qps: float) -> float:
    """What `--target-qps` means for the setting it sets: LoadGen sizes a SingleStream test from the expected
    latency of one query, 1 / its target QPS."""
    return 1e9 / qps if name == "single_stream_expected_latency_ns" else qps


def _fields_set_by(path: str, rules: ScenarioRules, conf_type: int) -> set[str]:
    """The TestSettings fields a conf file ("": LoadGen's mlperf.conf) sets for this benchmark and scenario,
    by LoadGen's own parser: read over two settings that differ in every field, what it sets is then equal."""
    plain, shifted = lg.TestSettings(), lg.TestSettings()
    for name, value in describe(shifted).items():
        if isinstance(value, bool):
            setattr(shifted, name, not value)
        elif isinstance(value, int | float):
            setattr(shifted, name, value * 2 + 1)
    for settings in (plain, shifted):
        settings.FromConfig(path, rules.conf_model, rules.loadgen_scenario, conf_type)
    before, after = describe(plain), describe(shifted)
    return {name for name, value in before.items() if after[name] == value and name not in ("scenario", "mode")}


def describe(settings: Any) -> dict[str, Any]:
    """Every TestSettings field, for run.json."""
    values: dict[str, Any] = {}
    for name in dir(settings):
        if name.startswith("_"):
            continue
        value = getattr(settings, name)
        if callable(value):
            continue
        values[name] = value.name if hasattr(value, "name") else value
    return values


def log_settings(output_dir: Path, enable_trace: bool) -> Any:
    output = lg.LogOutputSettings()
    output.outdir = str(output_dir)
    output.copy_summary_to_stdout = False
    log = lg.LogSettings()
    log.log_output = output
    log.enable_trace = enable_trace
    return log
