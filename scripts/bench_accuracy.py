"""Benchmark: accuracy scoring of a full-size (24,576-sample) llama2-70b-shaped accuracy log.

Times `accuracy.scoring.evaluate` (the harness's scorer: parallel workers, fast
exact ROUGE) against `accuracy.reference.reference_metrics` (the MLCommons
evaluator's algorithm, plainly, in one process) and checks that they agree:
the full-set metrics of our parallel and single-process runs must be equal, and
on the samples the reference scores, so must every per-sample score.

The workload is SYNTHETIC and deterministic: references of ~1,100 characters in
~10 sentences (the size of the OpenOrca answers), predictions that keep
about half of each sentence's words (ROUGE-1 around 65; llama2-70b's is 44),
token ids from the embedded tokenizer (about 570 a sample; llama2-70b: 294).
The reference is slow (about 25 ms a sample), so by default it scores the
first 2,000 samples and its full-set time is extrapolated; `--reference-samples 0` makes it score all of them.

    python scripts/bench_accuracy.py [--samples 24576] [--workers N] [--reference-samples 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy.log import read_accuracy_log
from accuracy.reference import reference_metrics
from accuracy.scoring import ScoringPool, check_punkt, default_workers, evaluate
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def workload(samples: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ra", "te", "vu", "no", "sa", "de", "fi", "ga", "pe", "zo", "ri", "an", "el"]
    suffixes = ["", "", "", "s", "ing", "ed", "ly", "tion"]
    vocabulary = [
        "".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) + rng.choice(suffixes) for _ in range(5000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]

    def sentence() -> str:
        return " ".join(rng.choices(vocabulary, weights, k=rng.randint(12, 24))).capitalize() + "."

    references, predictions = [], []
    for _ in range(samples):
        ref_sentences = [sentence() for _ in range(rng.randint(7, 12))]
        pred_sentences = []
        for text in ref_sentences:
            words = text.rstrip(".").split()
            for i in range(len(words)):
                if rng.random() < 0.5:
                    words[i] = rng.choices(vocabulary, weights)[0]
            pred_sentences.append(" ".join(words) + ".")
        references.append(" ".join(ref_sentences))
        predictions.append(" ".join(pred_sentences[: rng.randint(len(pred_sentences) - 2, len(pred_sentences))]))
    return references, predictions


def write_log(path: Path, token_ids: list[list[int]]) -> None:
    entries = [
        {"seq_id": i, "qsl_idx": i, "data": np.asarray(ids, dtype=np.int32).tobytes().hex().upper()}
        for i, ids in enumerate(token_ids)
    ]
    path.write_text(json.dumps(entries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=24576)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--reference-samples", type=int, default=2000, help="0: all samples")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_accuracy.json")
    args = parser.parse_args()
    check_punkt()
    console = Console()

    tokenizer = load_tokenizer(embedded.MODEL_DIR, use_fast=False)
    with console.status(f"building {args.samples} synthetic samples"):
        references, predictions = workload(args.samples)
        token_ids = tokenizer(predictions, add_special_tokens=False)["input_ids"]
        token_ids = [[*ids, tokenizer.eos_token_id] for ids in token_ids]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "mlperf_log_accuracy.json"
        write_log(log, token_ids)

        timings: dict[str, float] = {}
        with console.status(f"ours, {args.workers} workers"):
            start = time.perf_counter()
            with ScoringPool(args.workers) as pool:  # as `score_log`: it starts while the log is read
                parallel = evaluate(read_accuracy_log(log), references, tokenizer, pool=pool)
            timings["ours_parallel"] = time.perf_counter() - start
        with console.status("ours, 1 process"):
            start = time.perf_counter()
            single = evaluate(read_accuracy_log(log), references, tokenizer, workers=1)
            timings["ours_single"] = time.perf_counter() - start
        if parallel.metrics != single.metrics or parallel.samples != single.samples:
            raise SystemExit("parallel and single-process results differ")

        subset = args.reference_samples or args.samples
        subset_log = Path(tmp) / "subset.json"
        write_log(subset_log, token_ids[:subset])
        with console.status(f"reference algorithm, 1 process, {subset} samples"):
            start = time.perf_counter()
            expected, per_sample = reference_metrics(subset_log, references, tokenizer)
            timings["reference_subset"] = time.perf_counter() - start
        ours_subset = evaluate(read_accuracy_log(subset_log), references, tokenizer, workers=args.workers)
        for key, values in per_sample.items():
            if [getattr(s, key) for s in ours_subset.samples] != values:
                raise SystemExit(f"per-sample {key} differs from the reference")
        if ours_subset.metrics != {k: (float(v) if isinstance(v, float) else int(v)) for k, v in expected.items()}:
            raise SystemExit("metrics differ from the reference")

    reference_full = timings["reference_subset"] * args.samples / subset
    rows = [
        ("reference algorithm, 1 process", reference_full, subset < args.samples),
        ("ours, 1 process", timings["ours_single"], False),
        (f"ours, {args.workers} workers", timings["ours_parallel"], False),
    ]
    table = Table(title=f"scoring {args.samples:,} samples (identical results checked)", title_justify="left")
    for column in ("scorer", "seconds", "samples/s", "speed-up vs reference"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for name, seconds, extrapolated in rows:
        table.add_row(
            name + (f" (extrapolated from {subset:,})" if extrapolated else ""),
            f"{seconds:,.1f}",
            f"{args.samples / seconds:,.0f}",
            f"{reference_full / seconds:,.1f}x",
        )
    console.print(table)
    console.print(f"metrics: {parallel.metrics}")
    result = {
        "samples": args.samples,
        "workers": args.workers,
        "reference_samples": subset,
        "seconds": {
            "reference_full_extrapolated" if subset < args.samples else "reference_full": round(reference_full, 2),
            "reference_subset": round(timings["reference_subset"], 2),
            "ours_single": round(timings["ours_single"], 2),
            "ours_parallel": round(timings["ours_parallel"], 2),
        },
        "speedup_parallel_vs_reference": round(reference_full / timings["ours_parallel"], 1),
        "metrics": parallel.metrics,
        "identical": True,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.samples, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(rows: list[tuple[str, float, bool]], samples: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    names = [name + (" (extrapolated)" if extrapolated else "") for name, _, extrapolated in rows]
    seconds = [value for _, value, _ in rows]
    ax.barh(names, seconds, color=["tab:grey", "tab:blue", "tab:green"])
    for y, value in enumerate(seconds):
        ax.text(value, y, f" {value:,.1f} s", va="center")
    ax.set(xlabel="seconds", title=f"accuracy scoring of {samples:,} samples")
    ax.invert_yaxis()
    ax.set_xlim(0, max(seconds) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
