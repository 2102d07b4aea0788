"""The MLPerf benchmarks a run can follow, as data: one module per benchmark family.

Each module in this package defines `BENCHMARKS`, a list of `Benchmark`s under
their official MLPerf names; the registry below collects them, so adding a
benchmark is one new file here (plus its data loader in `common.dataset`).
Every number comes from MLCommons' own files, named in a comment beside it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import HarnessError

DEFAULT_BENCHMARK = "llama2-70b-99.9"
# The LoadGen scenarios a scenario name runs as: Interactive is LoadGen's Server with tighter limits.
LOADGEN_SCENARIOS = {"Offline": "Offline", "Server": "Server", "Interactive": "Server"}


@dataclass(frozen=True)
class Targets:
    """Accuracy targets: reference scores reached to within `factor`, tokens per sample within `tolerance`."""

    name: str
    reference: Mapping[str, float]
    factor: float
    tokens_per_sample: float | None = None
    tolerance: float = 0.1

    def check(self, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
        """One row per checked metric: value, bound(s), PASS or FAIL."""
        rows = []
        for key, value in self.reference.items():
            minimum = value * self.factor
            rows.append({"metric": key, "value": metrics[key], "min": minimum, "passed": metrics[key] >= minimum})
        if self.tokens_per_sample is not None:
            low = self.tokens_per_sample * (1 - self.tolerance)
            high = self.tokens_per_sample * (1 + self.tolerance)
            value = metrics["tokens_per_sample"]
            rows.append(
                {"metric": "tokens_per_sample", "value": value, "min": low, "max": high, "passed": low <= value <= high}
            )
        return rows

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": dict(self.reference),
            "factor": self.factor,
            "tokens_per_sample": self.tokens_per_sample,
            "tolerance": self.tolerance,
        }


@dataclass(frozen=True)
class ScenarioRules:
    """What one scenario of a benchmark requires of a compliant run."""

    conf_model: str
    """The model key LoadGen's mlperf.conf (and a user.conf) uses for it."""
    loadgen_scenario: str
    """Offline or Server: Interactive runs as LoadGen's Server scenario."""
    min_duration_ms: int
    min_query_count: int
    """Offline: samples in the one query; Server: queries (early stopping decides the rest)."""
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    """p99 time to first token / time per output token limits (token-latency scenarios)."""

    @property
    def streams(self) -> bool:
        return self.loadgen_scenario == "Server"


@dataclass(frozen=True)
class ComplianceTest:
    """An official audit: its audit.config settings and what it checks."""

    name: str
    audit_settings: Mapping[str, str]
    """key -> value lines of the official audit.config, all for model `*` and scenario `*`."""
    eos_token_id: int


@dataclass(frozen=True)
class Benchmark:
    name: str
    """The official name, as the submission tree and the checker spell it."""
    family: str
    """The benchmark it belongs to (runs of `llama2-70b-99` and `-99.9` are the same runs, gated differently)."""
    result_name: str
    """The folder under results/<system>/ in the current round's submission tree."""
    scenarios: Mapping[str, ScenarioRules]
    dataset: str
    dataset_size: int
    performance_sample_count: int
    accuracy: Targets
    seeds: Mapping[str, int]
    compliance: tuple[ComplianceTest, ...] = ()
    current_round: bool = True
    """Listed by the current round's submission checker for a closed-division result."""
    round_name: str = ""
    token_dtype: str = "int32"
    """How the SUT writes output token ids into LoadGen's logs."""

    def rules(self, scenario: str) -> ScenarioRules:
        if scenario not in self.scenarios:
            raise HarnessError(
                f"--scenario {scenario} is not a scenario of {self.name}: use one of {', '.join(self.scenarios)}."
            )
        return self.scenarios[scenario]

    def compliance_test(self, name: str) -> ComplianceTest:
        for test in self.compliance:
            if test.name == name:
                return test
        known = ", ".join(test.name for test in self.compliance) or "none"
        raise HarnessError(f"--compliance {name}: {self.name} has no such audit (its audits: {known}).")

    def check_requested(self, scenario: str, settings: Mapping[str, Any]) -> list[str]:
        """Where the TestSettings asked of LoadGen (`harness.settings.describe`) loosen this benchmark's
        latency rules; LoadGen logs no effective value for these, so they are checked before the run."""
        rules = self.rules(scenario)
        problems = []
        if not settings.get("use_token_latencies"):
            problems.append(f"use_token_latencies is off; {self.name} measures token latencies")
        for key, limit_ms in (("ttft_latency", rules.ttft_ms), ("tpot_latency", rules.tpot_ms)):
            if limit_ms is not None and settings.get(key) != limit_ms * 1_000_000:
                problems.append(
                    f"{key} is {settings.get(key, 0) / 1e6:g} ms; {self.name} {scenario} limits it to {limit_ms:g} ms"
                )
        return problems

    def check_effective(self, scenario: str, mode: str, effective: Mapping[str, Any]) -> list[str]:
        """Where LoadGen's effective settings (`effective_*` keys of its detail log, without the
        prefix) break this benchmark's rules: one reason each."""
        rules = self.rules(scenario)
        problems = []

        def need(key: str, ok: bool, wanted: str) -> None:
            if key in effective and not ok:
                problems.append(f"LoadGen's effective {key} is {effective[key]}; {self.name} {scenario} needs {wanted}")

        for name, seed in self.seeds.items():
            need(name, effective.get(name) == seed, str(seed))
        if mode == "accuracy":
            count = effective.get("accuracy_sample_count")
            if count is not None and count != self.dataset_size:
                problems.append(
                    f"the accuracy run covers {count} samples; {self.name} needs the whole data set of "
                    f"{self.dataset_size}"
                )
            return problems
        need(
            "min_duration_ms",
            effective.get("min_duration_ms", 0) >= rules.min_duration_ms,
            f">= {rules.min_duration_ms}",
        )
        need(
            "performance_sample_count",
            effective.get("performance_sample_count", 0) >= self.performance_sample_count,
            f">= {self.performance_sample_count}",
        )
        if rules.loadgen_scenario == "Offline":
            need(
                "samples_per_query",
                effective.get("samples_per_query", 0) >= rules.min_query_count,
                f">= {rules.min_query_count}",
            )
        else:
            need(
                "min_query_count",
                effective.get("min_query_count", 0) >= rules.min_query_count,
                f">= {rules.min_query_count}",
            )
        need("sample_concatenate_permutation", effective.get("sample_concatenate_permutation") is True, "true")
        return problems


def _collect() -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for module in pkgutil.iter_modules(__path__):
        for benchmark in importlib.import_module(f"{__name__}.{module.name}").BENCHMARKS:
            found[benchmark.name] = benchmark
    return found


BENCHMARKS: dict[str, Benchmark] = _collect()


def get_benchmark(name: str, *, option: str = "--benchmark") -> Benchmark:
    """The benchmark of that official name; anything else is one error naming the closest."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    close = difflib.get_close_matches(name, sorted(BENCHMARKS), n=1, cutoff=0.3)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise HarnessError(
        f"{option} {name!r} is not an MLPerf benchmark this harness knows.{hint} Known: {', '.join(BENCHMARKS)}."
    )
