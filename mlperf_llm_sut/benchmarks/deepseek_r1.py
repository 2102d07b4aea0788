"""deepseek-r1 on a mix of reasoning data sets (AIME, MATH500, GPQA, MMLU-Pro, LiveCodeBench): datacenter
Offline, Server and Interactive, scored by exact match at 99% of the FP8 reference.

Sources, all in mlcommons/inference:
- loadgen/mlperf.conf: sample counts, durations, the TTFT/TPOT limits per LoadGen model key;
- tools/submission/submission_checker/constants.py (round v6.1): the names the round lists, the
  accuracy target (exact_match at 99%, TOKENS_PER_SAMPLE within 90-110%), the data set size, and
  that deepseek-r1 needs TEST06;
- language/deepseek-r1/README.md: the data set (mlperf_deepseek_r1_dataset_4388_fp8_eval.pkl) and
  the reference's scores;
- language/deepseek-r1/mlperf/utils.py (`prepare_mlperf_dataset`) and utils/tokenization.py
  (`StandardTokenizer`): prompts are the `text_input` column in the model's chat template;
- language/deepseek-r1/utils/backend_registry.py: the vLLM backend's generation settings and
  sequence lengths;
- language/deepseek-r1/eval_accuracy.py: the scoring (`accuracy.exact_match`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlperf_llm_sut.benchmarks import Benchmark, ScenarioRules, Targets, test06
from mlperf_llm_sut.common.dataset import SOURCE_COLUMN, PromptFormat
from mlperf_llm_sut.common.errors import HarnessError

# backend_registry.py: MAX_ISL = 3136, MAX_OSL = 20 * 1000, MAX_TEMPLATE_TOKS = 4.
MAX_INPUT_TOKENS = 3136
MAX_OUTPUT_TOKENS = 20_000
MAX_TEMPLATE_TOKENS = 4
MAX_MODEL_LEN = MAX_INPUT_TOKENS + MAX_OUTPUT_TOKENS + MAX_TEMPLATE_TOKENS
"""The vLLM backend's max_model_len: what an engine for the real model needs at least."""
# tokenization.py StandardTokenizer.DEFAULT_MAX_LENGTH: the chat template's output is cut at 32k tokens.
PROMPT_MAX_TOKENS = 32 * 1024
# backend_registry.py BACKEND_REGISTRY["vllm"]["config"]: temperature 0.0, top_p 1.0, seed 42,
# max_output_len MAX_OSL; vllm_backend.py passes them to SamplingParams, whose min_tokens stays 0.
GENERATION = {"max_new_tokens": MAX_OUTPUT_TOKENS, "min_new_tokens": 0, "seed": 42}
# The embedded tiny model never learnt to stop on reasoning prompts: left alone it fills its 2,048-token context
# (1,363 new tokens a sample on the bundled sample, 46 s for the accuracy run on 2 cores). Its demo answers
# stop at 256.
DEMO_GENERATION = {"max_new_tokens": 256}

# constants.py "accuracy-target": ("exact_match", 0.99 * 81.3582, "TOKENS_PER_SAMPLE", 0.9 * 3886.2274) and
# "accuracy-upper-limit": ("TOKENS_PER_SAMPLE", 1.1 * 3886.2274).
REFERENCE_EXACT_MATCH = 81.3582
TOKENS_PER_SAMPLE = 3886.2274
FACTOR = 0.99
TOKENS_TOLERANCE = 0.1

# mlperf.conf: deepseek-r1.*.performance_sample_count_override = 4388, deepseek-r1.Offline.min_query_count
# = 4388; constants.py "dataset-size" 4388.
SAMPLES = 4388
# mlperf.conf: *.Offline.min_duration, *.Server.min_duration.
MIN_DURATION_MS = 600_000
# Server sets no min_query_count in mlperf.conf: LoadGen's default of 100 stands and early stopping decides.
EARLY_STOPPING_MIN_QUERY_COUNT = 100

SCENARIOS = {
    "Offline": ScenarioRules("deepseek-r1", "Offline", MIN_DURATION_MS, SAMPLES),
    # mlperf.conf: deepseek-r1.Server.ttft_latency = 2000, tpot_latency = 80.
    "Server": ScenarioRules(
        "deepseek-r1", "Server", MIN_DURATION_MS, EARLY_STOPPING_MIN_QUERY_COUNT, ttft_ms=2000, tpot_ms=80
    ),
    # mlperf.conf: deepseek-r1-interactive.Server.ttft_latency = 1500, tpot_latency = 15.
    "Interactive": ScenarioRules(
        "deepseek-r1-interactive", "Server", MIN_DURATION_MS, EARLY_STOPPING_MIN_QUERY_COUNT, ttft_ms=1500, tpot_ms=15
    ),
}

# constants.py "models_TEST06" lists deepseek-r1. run_verification.py takes the EOS id as --eos_token_id:
# DeepSeek-R1's tokenizer ends an answer with <｜end▁of▁sentence｜>, id 1 (its config.json eos_token_id).
TEST06 = test06(eos_token_id=1)

PROMPT_COLUMN = "text_input"
REFERENCE_COLUMN = "ground_truth"


def _render(row: Mapping[str, Any]) -> str:
    """The prompt text: the data set's `text_input`, as prepared by MLCommons."""
    return str(row[PROMPT_COLUMN])


def tokenize_prompts(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """tokenization.py `tokenize_prompts` with the chat template (the vLLM backend's `uses_chat_template`):
    one user turn, the generation prompt added, cut at 32k tokens."""
    if not getattr(tokenizer, "chat_template", None):
        raise HarnessError(
            f"deepseek-r1 prompts go through the model's chat template, and the tokenizer of "
            f"{getattr(tokenizer, 'name_or_path', 'this model')} has none: use DeepSeek-R1's tokenizer, or one "
            "whose tokenizer_config.json has a chat_template."
        )
    prompts = []
    for text in texts:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            add_generation_prompt=True,
            max_length=PROMPT_MAX_TOKENS,
            truncation=True,
        )
        # transformers 5 returns a BatchEncoding where 4 returned the ids.
        ids = ids["input_ids"] if isinstance(ids, Mapping) else ids
        prompts.append(list(map(int, ids)))
    return prompts


def processed_rows(raw_rows: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The reference's file is the raw rows themselves, tokenized at run time: its four columns, and the id."""
    return [
        {
            "id": row.get("id", str(i)),
            PROMPT_COLUMN: row[PROMPT_COLUMN],
            REFERENCE_COLUMN: row[REFERENCE_COLUMN],
            SOURCE_COLUMN: row[SOURCE_COLUMN],
            "question": row.get("question", ""),
        }
        for i, row in enumerate(raw_rows)
    ]


REASONING_MIX = PromptFormat(
    source="deepseek-r1's mix of AIME, MATH500, GPQA, MMLU-Pro and LiveCodeBench (text_input, ground_truth, dataset)",
    prompt_columns=(PROMPT_COLUMN,),
    reference_column=REFERENCE_COLUMN,
    render=_render,
    tokenize=tokenize_prompts,
    processed=processed_rows,
)

BENCHMARKS = [
    Benchmark(
        name="deepseek-r1",
        family="deepseek-r1",
        result_name="deepseek-r1",
        scenarios=SCENARIOS,
        dataset="deepseek-r1 mix, prepared by MLCommons (mlperf_deepseek_r1_dataset_4388_fp8_eval.pkl)",
        dataset_size=SAMPLES,
        performance_sample_count=SAMPLES,
        accuracy=Targets(
            "deepseek-r1",
            {"exact_match": REFERENCE_EXACT_MATCH},
            FACTOR,
            {"tokens_per_sample": TOKENS_PER_SAMPLE},
            TOKENS_TOLERANCE,
            grading="deepseek-r1",
        ),
        prompt_format=REASONING_MIX,
        demo_dataset="deepseek-synthetic-100.jsonl",
        demo_targets="tiny-llama-deepseek-targets.json",
        demo_problems="livecodebench-synthetic.jsonl",
        generation=GENERATION,
        demo_generation=DEMO_GENERATION,
        compliance=(TEST06,),
    )
]
