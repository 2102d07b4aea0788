"""Reads LoadGen's detail log into the figures people compare, and the verdict with its reasons."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PERCENTILES = {"p50": "50.00", "p90": "90.00", "p99": "99.00"}
_MLLOG = ":::MLLOG "


@dataclass
class DetailLog:
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def effective_settings(log: DetailLog) -> dict[str, Any]:
    """The settings LoadGen actually ran with (its `effective_*` keys, without the prefix)."""
    prefix = "effective_"
    return {key[len(prefix) :]: value for key, value in log.values.items() if key.startswith(prefix)}


@dataclass
class RunResult:
    valid: bool
    tokens_per_second: float | None = None
    samples_per_second: float | None = None
    ttft_ms: dict[str, float] | None = None
    tpot_ms: dict[str, float] | None = None
    latency_ms: dict[str, float] | None = None
    """SingleStream: each query's latency, first token to last (its p90 is the edge benchmarks' result)."""
    loadgen_validity: str | None = None
    invalid_reasons: list[str] = field(default_factory=list)
    accuracy_passed: bool | None = None
    """Accuracy mode: whether the scores met their targets (None when not scored)."""
    compliance_passed: bool | None = None
    """A compliance run (TEST06, TEST07, TEST09): whether the audit's checks passed."""
    interrupted: str | None = None
    """Set when a stop signal ended the run early: such a run never passes."""

    @property
    def passed(self) -> bool:
        """What the exit code says: a compliance run by its audit, any other by validity and accuracy."""
        if self.interrupted is not None:
            return False
        if self.compliance_passed is not None:
            return self.compliance_passed
        return self.valid and self.accuracy_passed is not False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_detail_log(path: Path) -> DetailLog:
    log = DetailLog()
    if not path.is_file():
        return log
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(_MLLOG):
            continue
        try:
            entry = json.loads(line[len(_MLLOG) :])
        except json.JSONDecodeError:
            continue
        key, value = entry.get("key"), entry.get("value")
        meta = entry.get("metadata", {})
        if meta.get("is_error"):
            log.errors.append(f"{key}: {value}")
        elif meta.get("is_warning"):
            log.warnings.append(f"{key}: {value}")
        log.values[key] = value
    return log


def _percentiles_ms(values: dict[str, Any], stem: str, suffix: str) -> dict[str, float] | None:
    found = {
        name: values[f"{stem}{pct}{suffix}"] / 1e6
        for name, pct in PERCENTILES.items()
        if f"{stem}{pct}{suffix}" in values
    }
    return {k: round(v, 3) for k, v in found.items()} or None


ONE_TOKEN_ERROR = "Number of tokens need to be greater than 1"


def _hint(error: str) -> str:
    """What to do about a LoadGen error whose text does not say."""
    if ONE_TOKEN_ERROR in error:
        return (
            " (a sample was answered with one token, EOS alone, and LoadGen's time per output token needs two: "
            "a model that does this needs --min-new-tokens 2)"
        )
    return ""


def summarize(
    log: DetailLog,
    *,
    scenario: str,
    mode: str,
    harness_problems: list[str],
) -> RunResult:
    """The run's result in LoadGen `scenario`; `harness_problems` are ours (failed or lost samples)."""
    v = log.values
    reasons = list(harness_problems)
    reasons += [f"LoadGen reported {e}{_hint(e)}" for e in dict.fromkeys(log.errors)]
    if mode == "accuracy":
        return RunResult(valid=not reasons, invalid_reasons=reasons)

    validity = v.get("result_validity")
    if validity is None:
        reasons.append("LoadGen wrote no result (the run did not finish)")
    if v.get("result_min_duration_met") is False:
        reasons.append("minimum duration not met: run longer (raise --min-query-count or the target QPS)")
    if v.get("result_min_queries_met") is False:
        reasons.append("minimum query count not met")
    if v.get("result_perf_constraints_met") is False:
        reasons.append("latency constraints not met: lower the target QPS")
    if v.get("early_stopping_met") is False:
        for key in ("early_stopping_ttft_result", "early_stopping_tpot_result"):
            text = " ".join(str(v.get(key, "")).replace("*", " ").split())
            if text:
                reasons.append(f"early stopping ({key.split('_')[2].upper()}): {text}")
    if v.get("result_invalid_reason"):
        reasons.append(str(v["result_invalid_reason"]).strip())
    if validity == "INVALID" and len(reasons) == len(harness_problems):
        reasons.append("LoadGen marked the run INVALID")

    latency = None
    if scenario == "Offline":
        tokens, samples = v.get("result_tokens_per_second"), v.get("result_samples_per_second")
        ttft = tpot = None
    else:
        ttft = _percentiles_ms(v, "result_first_token_", "_percentile_latency_ns")
        tpot = _percentiles_ms(v, "result_time_per_output_token_", "_percentile_ns")
        if scenario == "SingleStream":
            # LoadGen's result_token_throughput is not per second in SingleStream (6.0.17 logs ~1e-6); these are.
            tokens = v.get("result_token_throughput_with_loadgen_overhead")
            samples = v.get("result_qps_with_loadgen_overhead")
            latency = _percentiles_ms(v, "result_", "_percentile_latency_ns")
        else:
            tokens, samples = v.get("result_completed_tokens_per_second"), v.get("result_completed_samples_per_sec")
    return RunResult(
        valid=validity == "VALID" and not reasons,
        tokens_per_second=tokens,
        samples_per_second=samples,
        ttft_ms=ttft,
        tpot_ms=tpot,
        latency_ms=latency,
        loadgen_validity=validity,
        invalid_reasons=list(dict.fromkeys(reasons)),
    )
