"""llama3.1-8b on CNN-DailyMail summarization: datacenter (Offline, Server, Interactive) and edge
(Offline, SingleStream), both at 99% of the BF16 reference's ROUGE.

Sources, all in mlcommons/inference:
- loadgen/mlperf.conf: sample counts, durations, the TTFT/TPOT limits per LoadGen model key;
- tools/submission/submission_checker/constants.py (round v6.1): the names the round lists and
  their categories, accuracy targets (ROUGE at 99%, GEN_LEN within 10%), data set sizes, and which
  benchmarks need TEST06;
- language/llama3.1-8b/download_cnndm.py: the prompt template and its tokenization;
- language/llama3.1-8b/SUT_VLLM.py: the generation settings and the int32 output ids;
- language/llama3.1-8b/README.md: the data sets (13,368 samples of cnn_eval.json; the edge
  subset of 5,000, sample_cnn_eval_5000.json) and the model, Llama-3.1-8B-Instruct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlperf_llm_sut.benchmarks import Benchmark, ScenarioRules, Targets, test06
from mlperf_llm_sut.common.dataset import PromptFormat

# download_cnndm.py instruction_template["llama"], byte for byte; the article goes in {input}.
PROMPT = (
    "Summarize the following news article in 128 tokens. Please output the summary only, without any "
    "other text.\n\nArticle:\n{input}\n\nSummary:"
)
# SUT_VLLM.py gen_kwargs: temperature 0, top_p 1, top_k 1 (greedy), min_tokens 1, max_tokens 128.
GENERATION = {"max_new_tokens": 128, "min_new_tokens": 1}

# constants.py "accuracy-target" (ROUGE at 99%) and "accuracy-upper-limit" (GEN_LEN within 10%);
# language/llama3.1-8b/README.md prints the same reference scores.
DATACENTER_ROUGE = {"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957, "rougeLsum": 35.793}
DATACENTER_GEN_LEN = 8167644
EDGE_ROUGE = {"rouge1": 39.06, "rouge2": 16.1147, "rougeL": 24.6375, "rougeLsum": 36.124}
EDGE_GEN_LEN = 3051113
FACTOR = 0.99
GEN_LEN_TOLERANCE = 0.1

# constants.py "dataset-size" and "performance-sample-count"; mlperf.conf
# llama3_1-8b(-edge).*.performance_sample_count_override and .Offline.min_query_count.
DATACENTER_SAMPLES = 13368
EDGE_SAMPLES = 5000
# mlperf.conf: *.Offline.min_duration, *.Server.min_duration, *.SingleStream.min_duration.
MIN_DURATION_MS = 600_000
# Server and SingleStream set no min_query_count in mlperf.conf: LoadGen's default of 100 stands and
# early stopping decides the rest (the checker's uses_early_stopping skips its min-queries check).
EARLY_STOPPING_MIN_QUERY_COUNT = 100

DATACENTER_SCENARIOS = {
    "Offline": ScenarioRules("llama3_1-8b", "Offline", MIN_DURATION_MS, DATACENTER_SAMPLES),
    # mlperf.conf: llama3_1-8b.Server.ttft_latency = 2000, tpot_latency = 100.
    "Server": ScenarioRules(
        "llama3_1-8b", "Server", MIN_DURATION_MS, EARLY_STOPPING_MIN_QUERY_COUNT, ttft_ms=2000, tpot_ms=100
    ),
    # mlperf.conf: llama3_1-8b-interactive.Server.ttft_latency = 500, tpot_latency = 30.
    "Interactive": ScenarioRules(
        "llama3_1-8b-interactive", "Server", MIN_DURATION_MS, EARLY_STOPPING_MIN_QUERY_COUNT, ttft_ms=500, tpot_ms=30
    ),
}
EDGE_SCENARIOS = {
    "Offline": ScenarioRules("llama3_1-8b-edge", "Offline", MIN_DURATION_MS, EDGE_SAMPLES),
    # No TTFT/TPOT limits: the checker's llm_check only asks that token latencies are on.
    "SingleStream": ScenarioRules("llama3_1-8b-edge", "SingleStream", MIN_DURATION_MS, EARLY_STOPPING_MIN_QUERY_COUNT),
}

# constants.py "models_TEST06" lists llama3.1-8b (and its interactive runs), not the edge one.
# run_verification.py takes the EOS id as --eos_token_id: Llama-3.1-8B-Instruct's tokenizer ends a turn
# with <|eot_id|>, 128009.
TEST06 = test06(eos_token_id=128009)


def _render(row: Mapping[str, Any]) -> str:
    return PROMPT.format(input=row["article"])


def tokenize_prompts(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """download_cnndm.py: `tokenizer.encode(prompt)`, which adds the tokenizer's BOS."""
    return [list(map(int, tokenizer.encode(text))) for text in texts]


def processed_rows(raw_rows: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Raw CNN-DailyMail rows -> the rows of cnn_eval.json (download_cnndm.py's columns, and the id)."""
    rows = list(raw_rows)
    tok_inputs = tokenize_prompts([_render(r) for r in rows], tokenizer)
    return [
        {"id": r.get("id", str(i)), "input": r["article"], "tok_input": ids, "output": r["highlights"]}
        for i, (r, ids) in enumerate(zip(rows, tok_inputs, strict=True))
    ]


CNN_DAILYMAIL = PromptFormat(
    source="CNN-DailyMail 3.0.0 (article, highlights)",
    prompt_columns=("article",),
    reference_column="highlights",
    render=_render,
    tokenize=tokenize_prompts,
    processed=processed_rows,
)


def _benchmark(
    name: str, scenarios: dict[str, ScenarioRules], samples: int, rouge: dict[str, float], gen_len: int
) -> Benchmark:
    edge = name.endswith("-edge")
    return Benchmark(
        name=name,
        family="llama3.1-8b",
        result_name=name,
        scenarios=scenarios,
        dataset=f"CNN-DailyMail validation, processed ({'sample_cnn_eval_5000' if edge else 'cnn_eval'}.json)",
        dataset_size=samples,
        performance_sample_count=samples,
        accuracy=Targets(name, rouge, FACTOR, {"gen_len": gen_len}, GEN_LEN_TOLERANCE, samples),
        prompt_format=CNN_DAILYMAIL,
        demo_dataset="cnndm-synthetic-300.jsonl",
        demo_targets="tiny-llama-cnndm-targets.json",
        generation=GENERATION,
        compliance=() if edge else (TEST06,),
        category="edge" if edge else "datacenter",
    )


BENCHMARKS = [
    _benchmark("llama3.1-8b", DATACENTER_SCENARIOS, DATACENTER_SAMPLES, DATACENTER_ROUGE, DATACENTER_GEN_LEN),
    _benchmark("llama3.1-8b-edge", EDGE_SCENARIOS, EDGE_SAMPLES, EDGE_ROUGE, EDGE_GEN_LEN),
]
