"""`python -m accuracy`: score an accuracy log, or compare two scored runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from accuracy.log import TOKEN_DTYPES
from mlperf_llm_sut.benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, get_benchmark
from mlperf_llm_sut.common.errors import HarnessError, command_line_options, report_failure
from mlperf_llm_sut.common.stopping import Interrupted, StopSignals


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m accuracy",
        description="Score mlperf_log_accuracy.json against the data set's references, as the benchmark's "
        "MLCommons evaluator does (ROUGE; exact match for deepseek-r1 and gpt-oss-120b). "
        "'python -m accuracy compare RUN_A RUN_B' "
        "compares two runs.",
    )
    p.add_argument("--accuracy-log", required=True, type=Path, help="LoadGen's mlperf_log_accuracy.json")
    p.add_argument("--dataset", required=True, type=Path, help="the data set the run used (.parquet, .jsonl, .pkl)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="model directory whose tokenizer detokenizes the outputs")
    source.add_argument("--tokenizer", help="tokenizer directory (instead of --model)")
    p.add_argument(
        "--benchmark",
        default=DEFAULT_BENCHMARK,
        help=f"whose accuracy targets apply: {', '.join(BENCHMARKS)} (default: {DEFAULT_BENCHMARK})",
    )
    p.add_argument("--targets", type=Path, help="a targets JSON file instead, for other models (see accuracy.targets)")
    p.add_argument("--dtype", default="int32", choices=TOKEN_DTYPES, help="token id dtype in the log (default: int32)")
    p.add_argument("--workers", type=int, help="scoring processes (default: one per CPU)")
    p.add_argument("--output-dir", type=Path, help="where the report files go (default: beside the log)")
    p.add_argument("--trust-pickle", action="store_true", help="allow a pickle --dataset (only files you trust)")
    p.add_argument(
        "--livecodebench",
        type=Path,
        help="exact-match scoring: a folder holding a local copy of LiveCodeBench's code_generation_lite release "
        "the benchmark's reference grades against (deepseek-r1: release_v1, test.jsonl; gpt-oss-120b: release_v6, "
        "test.jsonl to test6.jsonl), or one file holding the release, whose tests grade the code answers",
    )
    p.add_argument(
        "--skip-code",
        action="store_true",
        help="exact-match scoring: leave the LiveCodeBench samples out (the result then fails: it does not cover "
        "the whole set)",
    )
    return p


def _compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m accuracy compare", description="Compare the accuracy of two scored runs (B against A)."
    )
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)
    p.add_argument("--metric", default="rougeL", help="per-sample metric to rank drops by (default: rougeL)")
    p.add_argument("--top", type=int, default=5, help="how many of the largest drops to show (default: 5)")
    p.add_argument("--plot", type=Path, help="where to write the PNG (default: RUN_B/accuracy_vs_<RUN_A>.png)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        if argv[:1] == ["compare"]:
            from accuracy.sample_deltas import compare, plot_comparison, print_comparison

            args = _compare_parser().parse_args(argv[1:])
            comparison = compare(args.run_a, args.run_b, metric=args.metric, top=args.top)
            print_comparison(comparison, console)
            plot = plot_comparison(
                comparison, args.plot or comparison.b.path / f"accuracy_vs_{comparison.a.path.name}.png"
            )
            console.print(f"plot: {plot}")
            return 0
        args = _score_parser().parse_args(argv)
        from accuracy.scored_log import print_report, score_log
        from accuracy.targets import resolve_targets
        from mlperf_llm_sut.common.dataset import load_dataset

        benchmark = get_benchmark(args.benchmark)
        # A targets file without a grading of its own is graded as the benchmark named beside it.
        targets = resolve_targets(
            args.targets or benchmark.name, option="--targets", grading=benchmark.accuracy.grading
        )
        tokenizer = args.tokenizer or args.model
        if tokenizer is None:
            raise HarnessError("pass --model or --tokenizer: the outputs are token ids and need detokenizing.")
        dataset = load_dataset(
            args.dataset,
            prompt_format=benchmark.prompt_format,
            tokenizer_dir=tokenizer,
            trust_pickle=args.trust_pickle,
        )
        out_dir = args.output_dir or args.accuracy_log.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        with StopSignals() as stop, stop.interruptible("scoring"):
            report = score_log(
                args.accuracy_log,
                dataset,
                tokenizer,
                targets,
                dtype=args.dtype,
                workers=args.workers,
                out_dir=out_dir,
                livecodebench=args.livecodebench,
                skip_code=args.skip_code,
            )
    except Interrupted as stop:
        Console(stderr=True).print(f"[bold red]{stop}[/]")
        return stop.interruption.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:
        stderr = Console(stderr=True)
        return report_failure(
            exc,
            lambda line: stderr.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True),
            option=command_line_options(_score_parser(), _compare_parser()),
        )
    print_report(report, console)
    console.print(f"reports: {out_dir}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
