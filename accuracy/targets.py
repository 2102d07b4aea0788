"""Accuracy targets: a benchmark's own (from `benchmarks`), or a small JSON file for other models::

{"name": "tiny-llama", "rouge1": 98.5, "rouge2": 97.7, "rougeL": 98.5,
 "factor": 0.99, "tokens_per_sample": 15.3, "tolerance": 0.1}

A file whose target is `exact_match` is scored by exact match, any other by ROUGE. Exact match follows one
reference's rules (`accuracy.exact_match.GRADINGS`), named by the file's `grading` ("deepseek-r1",
"gpt-oss-120b"); a file without one follows the benchmark it is used with where the caller names it, else
deepseek-r1's (exact-match files written before gpt-oss-120b's rules were all deepseek-r1's).

Output length targets are `tokens_per_sample` (llama2-70b's) or `gen_len`, the
characters of all predictions together (llama3.1-8b's), with `samples`: how many
samples that total covers; `"lengths_floor": false` makes them a ceiling only
(gpt-oss-120b's).
"""

from __future__ import annotations

import json
from pathlib import Path

from accuracy.exact_match import GRADINGS
from mlperf_llm_sut.benchmarks import BENCHMARKS, Targets, get_benchmark
from mlperf_llm_sut.common.errors import HarnessError

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
SCORE_KEYS = ("exact_match", *ROUGE_KEYS)
LENGTH_KEYS = ("tokens_per_sample", "gen_len")


def resolve_targets(name_or_file: str | Path, *, option: str = "--accuracy-targets", grading: str = "") -> Targets:
    """A benchmark name (llama2-70b-99.9, ...) or a targets JSON file; `grading`: the rules an exact-match file
    without a `grading` of its own follows (the benchmark's it is used with), "" for deepseek-r1's."""
    if str(name_or_file) in BENCHMARKS:
        return BENCHMARKS[str(name_or_file)].accuracy
    path = Path(name_or_file)
    if not path.is_file():
        if path.suffix.lower() != ".json":
            get_benchmark(str(name_or_file), option=option)  # raises, naming the closest benchmark
        raise HarnessError(f"{option} {name_or_file}: no such file. Pass a targets JSON file or a benchmark name.")
    try:
        raw = json.loads(path.read_text())
        reference = {k: float(raw[k]) for k in SCORE_KEYS if k in raw}
        if not reference:
            raise KeyError("rouge1")
        samples = raw.get("samples")
        targets = Targets(
            name=str(raw.get("name", path.stem)),
            reference=reference,
            factor=float(raw.get("factor", 1.0)),
            lengths={k: float(raw[k]) for k in LENGTH_KEYS if k in raw},
            tolerance=float(raw.get("tolerance", 0.1)),
            samples=int(samples) if samples is not None else None,
            lengths_floor=bool(raw.get("lengths_floor", True)),
            grading=str(raw.get("grading") or grading or "deepseek-r1") if "exact_match" in reference else "",
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HarnessError(
            f"accuracy targets file {path} is not valid ({type(exc).__name__}: {exc}); it needs a JSON object "
            'with exact_match or at least one of rouge1/rouge2/rougeL/rougeLsum, e.g. {"rouge1": 44.4, "factor": 0.99}.'
        ) from None
    if targets.scoring == "exact_match" and targets.grading not in GRADINGS:
        raise HarnessError(
            f"accuracy targets file {path}: grading {targets.grading!r} is not known; exact match follows "
            f'{" or ".join(map(repr, GRADINGS))}\'s rules: set "grading" to one of those.'
        )
    return targets
