"""Benchmark: what answers of reasoning length cost the harness, from the run to the score.

deepseek-r1 answers run to 20,000 tokens (3,886 on average for the reference). Two parts:

* The runs: accuracy-mode runs of `--samples` synthetic deepseek-r1-style prompts (Offline, then Server,
  whose answers stream) through a real engine worker whose engine is the echo engine, answering each with
  `--output-tokens` tokens at once. The engine costs nothing, so what is measured is the harness's part:
  wall time, the harness process's peak memory (it keeps every output until LoadGen's log is written), and
  the sizes of LoadGen's accuracy log and of samples.jsonl.
* The scoring: an accuracy log of `--samples` answers, each a right answer of the synthetic sample
  (`scripts/synthetic_deepseek.py`: boxed math, AIME integers, letters, programs) after reasoning text that
  brings it to `--output-tokens` tokens, scored by exact match as `python -m accuracy --benchmark
  deepseek-r1` does (math through PRM800K's grader and programs against their tests, both in the sandbox).
  Its time, the peak memory of the scoring process, and the exact match (100: every answer is right).

    python scripts/bench_long_outputs.py [--samples 4388] [--output-tokens 3886] [--workers N]

Each part runs in a process of its own, so each peak is its own. Prints a table, writes JSON and a PNG.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_deepseek

from scripts.bench_harness_path import echo_replica
from scripts.plots import horizontal_bars

ROOT = Path(__file__).resolve().parent.parent
FILLER = "Let me think about this step by step and check each part again. "
"""Reasoning text before each scored answer: what brings it to the asked length."""


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_sample(folder: Path, samples: int) -> tuple[Path, Path]:
    """`samples` synthetic deepseek-r1 rows and the LiveCodeBench problems their code questions ask."""
    from mlperf_llm_sut.common.dataset import write_rows

    dataset, problems = folder / "deepseek.jsonl", folder / "livecodebench.jsonl"
    write_rows(list(synthetic_deepseek.rows(samples, seed=0)), dataset)
    synthetic_deepseek.write_problems(problems, seed=0)
    return dataset, problems


def measure_run(output_dir: Path, dataset: Path, problems: Path, output_tokens: int, scenario: str) -> dict[str, Any]:
    """An accuracy run of the whole data set with the echo engine, scored as any accuracy run is."""
    from harness.single.config import build_config
    from harness.single.runner import run

    options: dict[str, Any] = {"scenario": scenario, "min_duration_ms": 0}
    if scenario == "Server":
        options["target_qps"] = 2000.0
    config = build_config(
        benchmark="deepseek-r1",
        mode="accuracy",
        dataset=dataset,
        livecodebench=problems,
        output_dir=output_dir,
        warmup_samples=0,
        generation={"max_new_tokens": output_tokens},
        **options,
    )
    started = time.perf_counter()
    report = run(config, console=Console(file=io.StringIO()), replica_factory=echo_replica)
    run_dir = report.run_dir
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "samples": report.record.samples.completed,
        "tokens": report.record.samples.completed * output_tokens,
        "peak_mib": round(_peak_mib(), 1),
        "accuracy_log_mib": round((run_dir / "mlperf_log_accuracy.json").stat().st_size / 2**20, 1),
        "samples_jsonl_mib": round((run_dir / "samples.jsonl").stat().st_size / 2**20, 1),
    }


def byte_tokenizer(folder: Path, texts: list[str]) -> Path:
    """A byte-level BPE tokenizer trained on the answers: any text round-trips through it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(texts, vocab_size=2000, special_tokens=["<s>", "</s>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=trained, bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}User: {{ m['content'] }}\n{% endfor %}Assistant:"
    tokenizer.save_pretrained(folder)
    return folder


def measure_scoring(
    folder: Path, dataset: Path, problems: Path, output_tokens: int, workers: int | None
) -> dict[str, Any]:
    """Right answers padded with reasoning text to `output_tokens` tokens, scored by exact match."""
    import numpy as np

    from accuracy.scored_log import score_log
    from mlperf_llm_sut.benchmarks import get_benchmark
    from mlperf_llm_sut.common.dataset import load_dataset, load_tokenizer

    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    answers = [synthetic_deepseek.correct_output(row) for row in rows]
    tokenizer_dir = byte_tokenizer(folder / "tokenizer", [*answers[:500], FILLER * 4])
    tokenizer = load_tokenizer(tokenizer_dir)
    filler = tokenizer.encode(FILLER, add_special_tokens=False)
    entries = []
    for index, answer in enumerate(answers):
        tail = tokenizer.encode(answer, add_special_tokens=False)
        head = (filler * (output_tokens // len(filler) + 1))[: max(0, output_tokens - len(tail))]
        ids = np.asarray(head + tail, np.int32)
        entries.append({"seq_id": index, "qsl_idx": index, "data": ids.tobytes().hex()})
    log = folder / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(entries))
    del entries
    benchmark = get_benchmark("deepseek-r1")
    loaded = load_dataset(dataset, prompt_format=benchmark.prompt_format, tokenizer_dir=tokenizer_dir)
    started = time.perf_counter()
    report = score_log(
        log,
        loaded,
        tokenizer_dir,
        benchmark.accuracy,
        workers=workers,
        out_dir=folder,
        livecodebench=problems,
        progress=False,
    )
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "samples": report.metrics["num-samples"],
        "exact_match": report.metrics["exact_match"],
        "tokens_per_sample": round(report.metrics["tokens_per_sample"], 1),
        "peak_mib": round(_peak_mib(), 1),
        "accuracy_log_mib": round(log.stat().st_size / 2**20, 1),
    }


def _in_own_process(target: Any, *args: Any) -> dict[str, Any]:
    """`target(*args)` in a fresh process, which may start processes of its own (a pool's may not)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result: dict[str, Any] = pool.submit(target, *args).result()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4388)
    parser.add_argument("--output-tokens", type=int, default=3886)
    parser.add_argument("--workers", type=int, help="scoring processes (default: one per core)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_long_outputs.json")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        dataset, problems = write_sample(folder, args.samples)
        for scenario in ("Offline", "Server"):
            with console.status(f"{scenario} accuracy run: {args.samples:,} answers of {args.output_tokens:,} tokens"):
                results[f"{scenario} run"] = _in_own_process(
                    measure_run, folder / scenario, dataset, problems, args.output_tokens, scenario
                )
        (folder / "scoring").mkdir()
        with console.status(f"scoring {args.samples:,} answers of {args.output_tokens:,} tokens"):
            results["scoring"] = _in_own_process(
                measure_scoring, folder / "scoring", dataset, problems, args.output_tokens, args.workers
            )
    table = Table(
        title=f"{args.samples:,} answers of {args.output_tokens:,} tokens (echo engine; exact-match scoring)",
        title_justify="left",
    )
    for column in ("part", "seconds", "peak MiB", "accuracy log MiB", "other"):
        table.add_column(column, justify="left" if column in ("part", "other") else "right")
    for name, figures in results.items():
        other = (
            f"exact_match {figures['exact_match']:g}, {figures['tokens_per_sample']:,} tokens/sample"
            if "exact_match" in figures
            else f"samples.jsonl {figures['samples_jsonl_mib']} MiB, {figures['samples']:,} samples"
        )
        table.add_row(
            name, f"{figures['seconds']:,}", f"{figures['peak_mib']:,}", f"{figures['accuracy_log_mib']:,}", other
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"samples": args.samples, "output_tokens": args.output_tokens, "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    names = list(results)
    horizontal_bars(
        args.out.with_suffix(".png"),
        names,
        {"peak memory": [results[name]["peak_mib"] for name in names]},
        "%.0f MiB",
        xlabel="peak memory of the process (MiB)",
        title=f"{args.samples:,} answers of {args.output_tokens:,} tokens",
    )
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
