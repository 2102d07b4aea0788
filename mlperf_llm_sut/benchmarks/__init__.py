"""The MLPerf benchmarks a run can follow, as data: one module per benchmark family.

Each module in this package defines `BENCHMARKS`, a list of `Benchmark`s under
their official MLPerf names; the registry below collects them, so adding a
benchmark is one new file here: its rules, how the reference turns its public
data set's rows into prompts, its generation settings and its accuracy targets.
Every number comes from MLCommons' own files, named in a comment beside it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlperf_llm_sut.common.dataset import PromptFormat
from mlperf_llm_sut.common.errors import HarnessError, setting

DEFAULT_BENCHMARK = "llama2-70b-99.9"
ROUND = "v6.1"
"""The submission round whose rules these are."""
# loadgen/mlperf.conf: *.*.qsl_rng_seed, sample_index_rng_seed, schedule_rng_seed: one set per round,
# for every benchmark (the submission checker's constants.py "seeds").
SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}
# The LoadGen scenario each scenario name runs as: Interactive is LoadGen's Server with tighter limits.
LOADGEN_SCENARIOS = {"Offline": "Offline", "Server": "Server", "Interactive": "Server", "SingleStream": "SingleStream"}
STREAMING_SCENARIOS = ("Server", "SingleStream")
"""LoadGen scenarios whose samples stream: LoadGen times their first token."""


@dataclass(frozen=True)
class Targets:
    """Accuracy targets: reference scores (ROUGE, or exact match) reached to within `factor`, and output
    lengths held within `tolerance` of theirs (`tokens_per_sample`, or `gen_len`: the characters of all
    predictions together)."""

    name: str
    reference: Mapping[str, float]
    factor: float
    lengths: Mapping[str, float] = field(default_factory=dict)
    tolerance: float = 0.1
    samples: int | None = None
    """How many samples the `gen_len` target covers; a run over fewer is held to its share of it."""
    lengths_floor: bool = True
    """Whether output lengths are also held above `1 - tolerance` of theirs (gpt-oss-120b's have a ceiling
    only)."""
    grading: str = ""
    """Whose answer-grading rules an exact-match score follows ("deepseek-r1", "gpt-oss-120b": their
    eval_accuracy.py differ); empty for ROUGE."""

    @property
    def scoring(self) -> str:
        """How a log is scored against these targets: "exact_match" (deepseek-r1's, per-sample answers judged
        right or wrong) where that is a target, else "rouge"."""
        return "exact_match" if "exact_match" in self.reference else "rouge"

    def check(self, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
        """One row per checked metric: value, bound(s), PASS or FAIL."""
        rows = []
        for key, value in self.reference.items():
            minimum = value * self.factor
            rows.append({"metric": key, "value": metrics[key], "min": minimum, "passed": metrics[key] >= minimum})
        for key, target in self.lengths.items():
            row: dict[str, Any] = {"metric": key, "value": metrics[key]}
            if key == "gen_len" and self.samples and metrics.get("gen_num") not in (None, self.samples):
                target = target * metrics["gen_num"] / self.samples
                row["scaled_to"] = metrics["gen_num"]
            low = target * (1 - self.tolerance) if self.lengths_floor else None
            high = target * (1 + self.tolerance)
            passed = (low is None or low <= metrics[key]) and metrics[key] <= high
            rows.append({**row, "min": low, "max": high, "passed": passed})
        return rows

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": dict(self.reference),
            "factor": self.factor,
            "lengths": dict(self.lengths),
            "tolerance": self.tolerance,
            "samples": self.samples,
            "lengths_floor": self.lengths_floor,
            "grading": self.grading,
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
        return self.loadgen_scenario in STREAMING_SCENARIOS


@dataclass(frozen=True)
class ComplianceTest:
    """An official audit: its audit.config settings and what it checks."""

    name: str
    audit_settings: Mapping[str, str]
    """key -> value lines of the official audit.config, all for model `*` and scenario `*` (the lines that
    only the audit's run_verification.py reads, such as TEST07's threshold, included)."""
    eos_token_id: int | None = None
    """TEST06: the token an answer ends with."""
    accuracy_threshold: float | None = None
    """TEST07: the score the performance run's outputs must reach."""
    output_tokens: tuple[float, float] | None = None
    """TEST09: the bounds of the mean output length, in tokens."""


def test06(eos_token_id: int) -> ComplianceTest:
    """TEST06 (compliance/TEST06/audit.config, line for line: the same for every model), for a model whose
    tokenizer ends an answer with `eos_token_id`."""
    return ComplianceTest(
        "TEST06",
        audit_settings={
            "mode": "2",
            "accuracy_log_rng_seed": "720381539243781796",
            "accuracy_log_sampling_target": "100",
            "min_query_count": "100",
            "min_duration": "0",
            "sample_concatenate_permutation": "0",
        },
        eos_token_id=eos_token_id,
    )


def test07(*, samples: int, accuracy_threshold: float) -> ComplianceTest:
    """TEST07, accuracy checked inside a performance run (compliance/TEST07/<model>/audit.config): every
    sample of the compliance data set issued once and logged, then scored against `accuracy_threshold`."""
    return ComplianceTest(
        "TEST07",
        audit_settings={
            "mode": "2",
            "accuracy_log_rng_seed": "720381539243781796",
            "accuracy_log_sampling_target": str(samples),
            "min_query_count": str(samples),
            "min_duration": "0",
            "performance_issue_unique": "1",
            "sample_concatenate_permutation": "0",
            "test07_accuracy_threshold": repr(accuracy_threshold),
        },
        accuracy_threshold=accuracy_threshold,
    )


def test09(*, samples: int, sampling_target: int, low: float, high: float) -> ComplianceTest:
    """TEST09, output length checked inside a performance run (compliance/TEST09/<model>/audit.config):
    every sample of the performance data set issued once and logged, their mean length within [low, high]."""
    return ComplianceTest(
        "TEST09",
        audit_settings={
            "mode": "2",
            "accuracy_log_rng_seed": "720381539243781796",
            "accuracy_log_sampling_target": str(sampling_target),
            "min_query_count": str(samples),
            "min_duration": "0",
            "performance_issue_unique": "1",
            "sample_concatenate_permutation": "0",
            "test09_min_output_tokens": repr(low),
            "test09_max_output_tokens": repr(high),
        },
        output_tokens=(low, high),
    )


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
    prompt_format: PromptFormat
    demo_dataset: str
    """The bundled synthetic sample in the benchmark's processed schema (a file in mlperf_llm_sut/common/embedded/)."""
    demo_targets: str
    """The embedded tiny model's own scores on that sample (a targets file in mlperf_llm_sut/common/embedded/)."""
    demo_problems: str | None = None
    """The bundled synthetic LiveCodeBench problems that the code questions of its demo sample are graded
    against (a test.jsonl in mlperf_llm_sut/common/embedded/), for a benchmark that has such questions."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """The reference's generation settings (`sut.generation.GenerationConfig` fields)."""
    accuracy_generation: Mapping[str, Any] = field(default_factory=dict)
    """What an accuracy run uses over `generation`, where the reference's accuracy runs differ."""
    accuracy_sample_count: int | None = None
    """The samples of an accuracy run where its data set is not the performance one (LoadGen's
    accuracy_sample_count_override); None: the whole `dataset_size`."""
    first_token_in_completion: bool = True
    """Whether a streamed answer's completion (QuerySamplesComplete) repeats the first token that
    FirstTokenComplete reported (the llama and deepseek-r1 references, which TEST06 checks), or holds only
    the tokens after it (gpt-oss-120b's reference, language/gpt-oss-120b/mlperf/server_sut.py)."""
    demo_generation: Mapping[str, Any] = field(default_factory=dict)
    """What the embedded tiny model's demo runs use over `generation` (the demo is never compliant)."""
    seeds: Mapping[str, int] = field(default_factory=lambda: SEEDS)
    compliance: tuple[ComplianceTest, ...] = ()
    current_round: bool = True
    """Listed by the current round's submission checker for a closed-division result."""
    round_name: str = ROUND
    token_dtype: str = "int32"
    """How the SUT writes output token ids into LoadGen's logs."""
    category: str = "datacenter"
    """datacenter or edge: the system category whose submissions list it."""

    def rules(self, scenario: str) -> ScenarioRules:
        if scenario not in self.scenarios:
            raise HarnessError(
                f"{setting('scenario')} {scenario} is not a scenario of {self.name}: use one of "
                f"{', '.join(self.scenarios)}."
            )
        return self.scenarios[scenario]

    def compliance_test(self, name: str) -> ComplianceTest:
        for test in self.compliance:
            if test.name == name:
                return test
        known = ", ".join(test.name for test in self.compliance) or "none"
        raise HarnessError(f"{setting('compliance')} {name}: {self.name} has no such audit (its audits: {known}).")

    def check_requested(self, scenario: str, settings: Mapping[str, Any]) -> list[str]:
        """Where the TestSettings asked of LoadGen (`harness.single.settings.describe`) loosen this benchmark's
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
            wanted = self.accuracy_sample_count or self.dataset_size
            if count is not None and count != wanted:
                problems.append(
                    f"the accuracy run covers {count} samples; {self.name} needs the whole accuracy data set of "
                    f"{wanted}"
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
        if module.name.startswith("_"):  # __main__: the table of them
            continue
        for benchmark in importlib.import_module(f"{__name__}.{module.name}").BENCHMARKS:
            found[benchmark.name] = benchmark
    return found


BENCHMARKS: dict[str, Benchmark] = _collect()


def get_benchmark(name: str, *, option: str = setting("benchmark")) -> Benchmark:
    """The benchmark of that official name; anything else is one error naming the closest."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    close = difflib.get_close_matches(name, sorted(BENCHMARKS), n=1, cutoff=0.3)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise HarnessError(
        f"{option} {name!r} is not an MLPerf benchmark this harness knows.{hint} Known: {', '.join(BENCHMARKS)}."
    )
