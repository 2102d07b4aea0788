"""gpt-oss-120b on a mix of reasoning data sets (AIME 2025, GPQA diamond, LiveCodeBench v6): datacenter
Offline, Server and Interactive, scored by exact match at 99% of the reference, audited by TEST07 and TEST09.

Sources, all in mlcommons/inference:
- loadgen/mlperf.conf: sample counts (performance 6,396, accuracy 4,395), durations, the TTFT/TPOT limits
  per LoadGen model key, token latencies and sample concatenation;
- tools/submission/submission_checker/constants.py (round v6.1): the names the round lists, the accuracy
  target (exact_match at 99% of 83.13) and the TOKENS_PER_SAMPLE ceiling (1.1 x 9999, no floor), the data
  set sizes, and that gpt-oss-120b needs TEST07 and TEST09 (not TEST06);
- language/gpt-oss-120b/README.md and generation_config.json: sampling (temperature 1, top_p 1, top_k off),
  output limits (10,240 new tokens in performance runs, 32,768 in accuracy runs), the data set files;
- language/gpt-oss-120b/utils/tokenization.py (`load_tokenized_dataset`): prompts are the data set's
  `input_tokens` (`tok_input` before v4.0), already in the harmony chat format with the reasoning effort
  of the file (high for accuracy and TEST07, low for performance and TEST09);
- language/gpt-oss-120b/mlperf/server_sut.py: a streamed answer's first token goes to FirstTokenComplete
  and only the tokens after it to QuerySamplesComplete;
- language/gpt-oss-120b/eval_mlperf_accuracy.py and eval_accuracy.py: the scoring (`accuracy.gpt_oss`);
- compliance/TEST07/gpt-oss-120b/audit.config and compliance/TEST09/gpt-oss-120b/audit.config: the audits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlperf_llm_sut.benchmarks import Benchmark, ScenarioRules, Targets, test07, test09
from mlperf_llm_sut.common.dataset import SOURCE_COLUMN, PromptFormat

# README.md "Generation Configuration" and generation_config.json: temperature 1.0, top_p 1.0, top_k -1
# (off); max_output_len 10240 in performance runs, 32768 in accuracy runs. The reference sets no seed.
GENERATION = {"max_new_tokens": 10_240, "min_new_tokens": 0, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
ACCURACY_GENERATION = {"max_new_tokens": 32_768}
# The embedded tiny model never learnt to stop on reasoning prompts: its demo answers stop at 128 new tokens, so
# a demo run takes seconds (and its longest GPQA prompt, 1,875 tokens, still fits its 2,048-token context). It
# samples at temperature 1 as the reference does, unseeded: vLLM on CPU has no per-request seeds.
DEMO_GENERATION = {"max_new_tokens": 128}

# constants.py "accuracy-target": ("exact_match", 83.13 * 0.99); "accuracy-upper-limit":
# ("TOKENS_PER_SAMPLE", 1.1 * 9999): a ceiling, no floor.
REFERENCE_EXACT_MATCH = 83.13
FACTOR = 0.99
TOKENS_PER_SAMPLE = 9999
TOKENS_TOLERANCE = 0.1

# mlperf.conf: gpt-oss-120b.*.performance_sample_count_override = 6396, accuracy_sample_count_override =
# 4395; constants.py "dataset-size" / "performance-sample-count" 6396, "accuracy-sample-count" 4395.
SAMPLES = 6396
ACCURACY_SAMPLES = 4395
# mlperf.conf: *.Offline.min_duration, *.Server.min_duration.
MIN_DURATION_MS = 600_000
# mlperf.conf sets no gpt-oss-120b min_query_count: LoadGen's default (test_settings.h) of 100 stands, and
# in Server early stopping decides.
DEFAULT_MIN_QUERY_COUNT = 100

SCENARIOS = {
    "Offline": ScenarioRules("gpt-oss-120b", "Offline", MIN_DURATION_MS, DEFAULT_MIN_QUERY_COUNT),
    # mlperf.conf: gpt-oss-120b.Server.ttft_latency = 3000, tpot_latency = 80.
    "Server": ScenarioRules(
        "gpt-oss-120b", "Server", MIN_DURATION_MS, DEFAULT_MIN_QUERY_COUNT, ttft_ms=3000, tpot_ms=80
    ),
    # mlperf.conf: gpt-oss-120b-interactive.Server.ttft_latency = 2000, tpot_latency = 15.
    "Interactive": ScenarioRules(
        "gpt-oss-120b-interactive", "Server", MIN_DURATION_MS, DEFAULT_MIN_QUERY_COUNT, ttft_ms=2000, tpot_ms=15
    ),
}

# compliance/TEST07/gpt-oss-120b/audit.config: the 990 samples of acc_eval_compliance_gpqa.parquet, each
# once, scored against test07_accuracy_threshold = 60.698.
TEST07 = test07(samples=990, accuracy_threshold=60.698)
# compliance/TEST09/gpt-oss-120b/audit.config: the 6,396 performance samples, each once (sampling target
# 10000 logs them all), their mean output length within 1278.2 +/- 10%.
TEST09 = test09(samples=SAMPLES, sampling_target=10_000, low=1150.38, high=1406.02)

PROMPT_COLUMN = "text_input"
REFERENCE_COLUMN = "ground_truth"


def _render(row: Mapping[str, Any]) -> str:
    """A raw row's prompt: its harmony-formatted text (what the tokenized files were made from)."""
    return str(row[PROMPT_COLUMN])


def tokenize_prompts(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Harmony text is already the whole conversation, special markers and all: it is encoded as it is, with
    nothing added (gpt-oss's tokenizer turns `<|start|>`, `<|message|>`, ... into their own ids)."""
    return [list(map(int, tokenizer.encode(text, add_special_tokens=False))) for text in texts]


def processed_rows(raw_rows: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The reference's file: the prompt's tokens (`input_tokens`) beside its text, answer and source."""
    tokens = tokenize_prompts([_render(row) for row in raw_rows], tokenizer)
    return [
        {
            "id": row.get("id", str(i)),
            "input_tokens": ids,
            PROMPT_COLUMN: row[PROMPT_COLUMN],
            REFERENCE_COLUMN: row[REFERENCE_COLUMN],
            SOURCE_COLUMN: row[SOURCE_COLUMN],
        }
        for i, (row, ids) in enumerate(zip(raw_rows, tokens, strict=True))
    ]


HARMONY_MIX = PromptFormat(
    source="gpt-oss-120b's mix of AIME 2025, GPQA diamond and LiveCodeBench v6 in the harmony chat format "
    "(input_tokens, or text_input; ground_truth, dataset)",
    prompt_columns=(PROMPT_COLUMN,),
    reference_column=REFERENCE_COLUMN,
    render=_render,
    tokenize=tokenize_prompts,
    processed=processed_rows,
)

BENCHMARKS = [
    Benchmark(
        name="gpt-oss-120b",
        family="gpt-oss-120b",
        result_name="gpt-oss-120b",
        scenarios=SCENARIOS,
        dataset="gpt-oss-120b mix, prepared by MLCommons (perf/perf_eval_ref.parquet for performance and "
        "TEST09, acc/acc_eval_inputs.parquet for accuracy, acc/acc_eval_compliance_gpqa.parquet for TEST07)",
        dataset_size=SAMPLES,
        performance_sample_count=SAMPLES,
        accuracy_sample_count=ACCURACY_SAMPLES,
        accuracy=Targets(
            "gpt-oss-120b",
            {"exact_match": REFERENCE_EXACT_MATCH},
            FACTOR,
            {"tokens_per_sample": TOKENS_PER_SAMPLE},
            TOKENS_TOLERANCE,
            lengths_floor=False,
            grading="gpt-oss-120b",
        ),
        prompt_format=HARMONY_MIX,
        demo_dataset="gpt-oss-synthetic-60.jsonl",
        demo_targets="tiny-llama-gpt-oss-targets.json",
        demo_problems="livecodebench-v6-synthetic.jsonl",
        generation=GENERATION,
        accuracy_generation=ACCURACY_GENERATION,
        demo_generation=DEMO_GENERATION,
        compliance=(TEST07, TEST09),
        first_token_in_completion=False,
    )
]
