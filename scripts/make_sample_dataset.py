"""Write a benchmark's bundled SYNTHETIC sample data set (in mlperf_llm_sut/common/embedded/).

- llama2-70b: openorca-synthetic-600.jsonl, 600 rows in the processed OpenOrca schema (the
  reference's processorca.py columns), built by scripts/synthetic_openorca.py;
- llama3.1-8b: cnndm-synthetic-300.jsonl, 300 rows in cnn_eval.json's schema (download_cnndm.py's
  columns), built by scripts/synthetic_cnndm.py;
- deepseek-r1: deepseek-synthetic-100.jsonl, 100 rows in the schema of MLCommons' deepseek-r1 file
  (text_input, ground_truth, dataset, question), and livecodebench-synthetic.jsonl, the LiveCodeBench
  problems its code questions are graded against, built by scripts/synthetic_deepseek.py;
- gpt-oss-120b: gpt-oss-synthetic-60.jsonl, 60 rows in the schema of MLCommons' gpt-oss-120b files (the prompt
  in OpenAI's harmony chat format, text_input and its input_tokens; ground_truth, dataset), with reasoning
  effort high, and livecodebench-v6-synthetic.jsonl, the problems of its code questions, built by
  scripts/synthetic_gpt_oss.py.

All with seed 0, made into prompts by the benchmark's own `PromptFormat` (the harness's raw-rows
code path) with the embedded tiny model's tokenizer. Deterministic: the same tokenizer gives the same
file, byte for byte.

    python scripts/make_sample_dataset.py [--benchmark NAME] [--rows N] [--out FILE] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic_cnndm
import synthetic_deepseek
import synthetic_gpt_oss
import synthetic_openorca

from mlperf_llm_sut.benchmarks import DEFAULT_BENCHMARK, get_benchmark
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.dataset import load_tokenizer, write_rows

SAMPLE_SEED = 0
# Each benchmark family's generator of raw rows, and how many the bundled sample has.
SAMPLES: dict[str, tuple[Callable[..., Iterator[dict[str, str]]], int]] = {
    "llama2-70b": (synthetic_openorca.rows, 600),
    "llama3.1-8b": (synthetic_cnndm.rows, 300),
    "deepseek-r1": (synthetic_deepseek.rows, 100),
    "gpt-oss-120b": (synthetic_gpt_oss.rows, 60),
}
# The families whose sample has code questions: the writer of the LiveCodeBench problems they name.
PROBLEMS: dict[str, Callable[[Path, int], None]] = {
    "deepseek-r1": synthetic_deepseek.write_problems,
    "gpt-oss-120b": synthetic_gpt_oss.write_problems,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default=DEFAULT_BENCHMARK)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tokenizer", type=Path, default=embedded.MODEL_DIR)
    args = parser.parse_args()
    benchmark = get_benchmark(args.benchmark)
    generate, count = SAMPLES[benchmark.family]
    raw = list(generate(args.rows or count, seed=SAMPLE_SEED, prefix="synthetic"))
    rows = benchmark.prompt_format.processed(raw, load_tokenizer(args.tokenizer))
    out = args.out or embedded.ROOT / benchmark.demo_dataset
    write_rows(rows, out)
    print(f"wrote {len(rows)} synthetic rows to {out}")
    if benchmark.demo_problems:
        problems = out.parent / benchmark.demo_problems
        PROBLEMS[benchmark.family](problems, SAMPLE_SEED)
        print(f"wrote the LiveCodeBench problems of its code questions to {problems}")


if __name__ == "__main__":
    main()
