"""Accuracy targets and the PASS/FAIL verdict.

The llama2-70b targets are the MLCommons submission checker's: ROUGE-1/2/L at
99% or 99.9% of the FP32 reference, and tokens per sample within 10% of the
reference's 294.45. Other models or data sets bring their own targets in a
small JSON file::

    {"name": "tiny-llama", "rouge1": 98.5, "rouge2": 97.7, "rougeL": 98.5,
     "factor": 0.99, "tokens_per_sample": 15.3, "tolerance": 0.1}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

LLAMA2_70B_REFERENCE = {"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162}
LLAMA2_70B_TOKENS_PER_SAMPLE = 294.45
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class Targets:
    name: str
    reference: dict[str, float]
    """Reference scores; each must be reached to within `factor`."""
    factor: float
    tokens_per_sample: float | None = None
    tolerance: float = 0.1

    def check(self, metrics: dict[str, float]) -> list[dict[str, Any]]:
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
            "reference": self.reference,
            "factor": self.factor,
            "tokens_per_sample": self.tokens_per_sample,
            "tolerance": self.tolerance,
        }


BENCHMARKS = {
    f"llama2-70b-{level}": Targets(
        f"llama2-70b-{level}", LLAMA2_70B_REFERENCE, factor, LLAMA2_70B_TOKENS_PER_SAMPLE, 0.1
    )
    for level, factor in (("99", 0.99), ("99.9", 0.999))
}


def resolve_targets(name_or_file: str | Path) -> Targets:
    """A benchmark name (llama2-70b-99, llama2-70b-99.9) or a targets JSON file."""
    if str(name_or_file) in BENCHMARKS:
        return BENCHMARKS[str(name_or_file)]
    path = Path(name_or_file)
    if not path.is_file():
        raise HarnessError(
            f"accuracy targets {name_or_file!r} are neither a known benchmark ({', '.join(BENCHMARKS)}) "
            "nor an existing JSON file."
        )
    try:
        raw = json.loads(path.read_text())
        reference = {k: float(raw[k]) for k in ROUGE_KEYS if k in raw}
        if not reference:
            raise KeyError("rouge1")
        tokens = raw.get("tokens_per_sample")
        return Targets(
            name=str(raw.get("name", path.stem)),
            reference=reference,
            factor=float(raw.get("factor", 1.0)),
            tokens_per_sample=float(tokens) if tokens is not None else None,
            tolerance=float(raw.get("tolerance", 0.1)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise HarnessError(
            f"accuracy targets file {path} is not valid ({type(exc).__name__}: {exc}); it needs a JSON object "
            'with at least one of rouge1/rouge2/rougeL/rougeLsum, e.g. {"rouge1": 44.4, "factor": 0.99}.'
        ) from None
