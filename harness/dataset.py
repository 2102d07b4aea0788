"""`python -m harness.dataset convert SRC DST`: re-save a benchmark's data set (e.g. the reference
pickle) as parquet or jsonl, so a pickle has to be trusted once only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlperf_llm_sut.benchmarks import BENCHMARKS
from mlperf_llm_sut.common.dataset import convert
from mlperf_llm_sut.common.errors import HarnessError, report_failure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.dataset",
        description="Convert a benchmark's data set (e.g. the reference pickle) to parquet or jsonl.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="re-save SRC as DST (.parquet or .jsonl)")
    conv.add_argument("src", type=Path)
    conv.add_argument("dst", type=Path)
    conv.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow SRC to be a pickle (it can run code when loaded: only for files you trust)",
    )
    args = parser.parse_args(argv)
    try:
        if not args.src.is_file():
            raise HarnessError(f"dataset {args.src} does not exist.")
        raw_formats = [benchmark.prompt_format for benchmark in BENCHMARKS.values()]
        count = convert(args.src, args.dst, trust_pickle=args.trust_pickle, raw_formats=raw_formats)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return report_failure(exc, lambda line: print(f"error: {line}", file=sys.stderr))
    print(f"wrote {count} rows to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
