"""LoadGen `TestSettings`: the benchmark's mlperf.conf, the user's user.conf, then our overrides.

Every override makes the run non-compliant, and says so: the reasons travel
with the settings into run.json and the summary.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg

from benchmarks import DEFAULT_BENCHMARK, LOADGEN_SCENARIOS, Benchmark, ComplianceTest, ScenarioRules, get_benchmark
from common.errors import HarnessError

# The TestSettings field --target-qps sets, per LoadGen scenario.
QPS_SETTINGS = {"Offline": "offline_expected_qps", "Server": "server_target_qps"}
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

    def audit_config(self) -> str:
        """The audit.config text LoadGen reads over every other setting (empty without an audit)."""
        if self.audit is None:
            return ""
        return "".join(f"*.*.{key} = {value}\n" for key, value in self.audit.audit_settings.items())


def check_user_conf(path: Path, conf_model: str) -> list[str]:
    """Validate a user.conf the way LoadGen parses it, but loudly; returns warnings."""
    if not path.is_file():
        raise HarnessError(f"user.conf {path} does not exist. Pass an existing file to --user-conf.")
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


def build_settings(config: LoadGenConfig, dataset_size: int) -> tuple[BuiltSettings, list[str]]:
    """TestSettings for `config`, and warnings worth showing the user."""
    if config.scenario not in LOADGEN_SCENARIOS:
        raise HarnessError(f"unknown scenario {config.scenario!r}: use one of {', '.join(LOADGEN_SCENARIOS)}.")
    if config.mode not in MODES:
        raise HarnessError(f"unknown mode {config.mode!r}: use performance or accuracy.")
    benchmark = get_benchmark(config.benchmark)
    rules = benchmark.rules(config.scenario)
    audit = benchmark.compliance_test(config.compliance) if config.compliance else None
    warnings: list[str] = []
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, rules.loadgen_scenario)
    # conf_type 0 loads LoadGen's built-in mlperf.conf; 2 then reads user.conf over it. That is
    # what conf_type 1 does, minus its process-wide counter, which logs a "multiple conf files"
    # error into every later run of the same process (a library must allow many runs).
    status = settings.FromConfig("", rules.conf_model, rules.loadgen_scenario, 0)
    if status == 0 and config.user_conf is not None:
        warnings += check_user_conf(config.user_conf, rules.conf_model)
        status = settings.FromConfig(str(config.user_conf), rules.conf_model, rules.loadgen_scenario, 2)
    if status != 0:
        raise HarnessError(
            f"LoadGen rejected the configuration for {rules.conf_model}/{rules.loadgen_scenario} "
            f"(code {status}); check --user-conf."
        )
    settings.mode = MODES[config.mode]
    non_compliant: list[str] = []
    if config.demo:
        non_compliant.append("demo settings for the embedded tiny model")

    def override(flag: str, attribute: str, value: Any) -> None:
        if value is not None:
            setattr(settings, attribute, value)
            non_compliant.append(f"{flag} {value}")

    if rules.loadgen_scenario == "SingleStream":
        # LoadGen's own view: a SingleStream test's target QPS is 1 / its expected query latency, from which
        # it sizes the test (before rounding up to whole passes over the performance samples).
        if config.target_qps is not None:
            settings.single_stream_expected_latency_ns = round(1e9 / config.target_qps)
            non_compliant.append(
                f"--target-qps {config.target_qps} (an expected latency of {1e3 / config.target_qps:g} ms)"
            )
    else:
        override("--target-qps", QPS_SETTINGS[rules.loadgen_scenario], config.target_qps)
    if config.calibrate and not config.demo:
        non_compliant.append("--target-qps auto (the Offline query sized from a calibration run)")
    override("--min-duration", "min_duration_ms", config.min_duration_ms)
    override("--min-query-count", "min_query_count", config.min_query_count)

    total = dataset_size
    if config.total_sample_count is not None:
        if config.total_sample_count < 1:
            raise HarnessError("--total-sample-count must be at least 1.")
        total = min(dataset_size, config.total_sample_count)
        non_compliant.append(f"--total-sample-count {config.total_sample_count}")
    requested = settings.performance_sample_count_override or total
    performance = min(requested, total)
    if performance != requested:
        settings.performance_sample_count_override = performance
        non_compliant.append(
            f"performance sample count {performance} (the benchmark asks for {requested}; "
            f"the data set has {dataset_size} samples)"
        )
    non_compliant += benchmark.check_requested(config.scenario, describe(settings))
    return BuiltSettings(settings, benchmark, rules, total, performance, audit, non_compliant), warnings


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
