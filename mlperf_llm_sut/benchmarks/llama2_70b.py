"""llama2-70b on OpenOrca: Offline, Server and Interactive, at 99% and 99.9% of the FP32 accuracy.

Sources, all in mlcommons/inference:
- loadgen/mlperf.conf: sample counts, durations, seeds, the TTFT/TPOT limits per LoadGen model key;
- tools/submission/submission_checker/constants.py (round v6.1): the names the round lists,
  accuracy targets, the data set size and which benchmarks need TEST06;
- compliance/TEST06/run_verification.py: the audit's EOS id;
- language/llama2-70b/README.md: the data set (24,576 processed OpenOrca samples);
- language/llama2-70b/processorca.py: the prompt template and its extra token;
- language/llama2-70b/SUT.py: the generation settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlperf_llm_sut.benchmarks import Benchmark, ScenarioRules, Targets, test06
from mlperf_llm_sut.common.dataset import PromptFormat

# processorca.py's templates, byte for byte.
PROMPT_SYSTEM = "<s>[INST] <<SYS>>\n{}\n<</SYS>>\n\n{} [/INST]"
PROMPT_NO_SYSTEM = "<s>[INST] {} [/INST]"
# processorca.py appends Llama-2's "▁" token to every prompt (its first-token cheat guard).
RESPONSE_INIT_TOKEN = 29871
# SUT.py gen_kwargs: greedy (do_sample False, num_beams 1), min_new_tokens 1, max_new_tokens 1024.
GENERATION = {"max_new_tokens": 1024, "min_new_tokens": 1}

# constants.py "accuracy-target" (ROUGE at 99 / 99.9% of these) and "accuracy-upper-limit" (tokens +-10%).
REFERENCE_ROUGE = {"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162}
TOKENS_PER_SAMPLE = 294.45
# mlperf.conf: llama2-70b.*.performance_sample_count_override; constants.py "dataset-size".
SAMPLES = 24576
# mlperf.conf: *.Offline.min_duration, *.Server.min_duration (constants.py TEST_DURATION_MS).
MIN_DURATION_MS = 600_000
# mlperf.conf: llama2-70b.Offline.min_query_count; Server sets none, so LoadGen's default of 100
# stands and early stopping decides the rest.
OFFLINE_MIN_QUERY_COUNT = 24576
SERVER_MIN_QUERY_COUNT = 100

SCENARIOS = {
    "Offline": ScenarioRules("llama2-70b", "Offline", MIN_DURATION_MS, OFFLINE_MIN_QUERY_COUNT),
    # mlperf.conf: llama2-70b.Server.ttft_latency = 2000, tpot_latency = 200.
    "Server": ScenarioRules("llama2-70b", "Server", MIN_DURATION_MS, SERVER_MIN_QUERY_COUNT, ttft_ms=2000, tpot_ms=200),
    # mlperf.conf: llama2-70b-interactive.Server.ttft_latency = 450, tpot_latency = 40.
    "Interactive": ScenarioRules(
        "llama2-70b-interactive", "Server", MIN_DURATION_MS, SERVER_MIN_QUERY_COUNT, ttft_ms=450, tpot_ms=40
    ),
}

# run_verification.py --eos_token_id defaults to 2, Llama-2's </s>.
TEST06 = test06(eos_token_id=2)


def format_prompt(system_prompt: str | None, question: str) -> str:
    if system_prompt:
        return PROMPT_SYSTEM.format(system_prompt, question)
    return PROMPT_NO_SYSTEM.format(question)


def response_init_token(tokenizer: Any) -> int | None:
    """Llama-2's "▁" id when the tokenizer is Llama-2's, so prompts match the reference."""
    if len(tokenizer) == 32000 and tokenizer.convert_ids_to_tokens(RESPONSE_INIT_TOKEN) == "▁":
        return RESPONSE_INIT_TOKEN
    return None


def tokenize_prompts(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Tokenize formatted prompts exactly as processorca.py does."""
    extra = response_init_token(tokenizer)
    encoded = tokenizer(list(texts))["input_ids"]
    if extra is not None:
        encoded = [[*ids, extra] for ids in encoded]
    return [list(map(int, ids)) for ids in encoded]


def _render(row: Mapping[str, Any]) -> str:
    return format_prompt(row.get("system_prompt") or "", row["question"])


def processed_rows(raw_rows: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Raw OpenOrca rows -> the reference's processed columns (processorca.py)."""
    rows = list(raw_rows)
    inputs = [_render(r) for r in rows]
    tok_inputs = tokenize_prompts(inputs, tokenizer)
    tok_outputs = [list(map(int, ids)) for ids in tokenizer([r["response"] for r in rows])["input_ids"]]
    return [
        {
            "id": r.get("id", str(i)),
            "origin": str(r.get("id", "")).split(".")[0],
            "system_prompt": r.get("system_prompt", ""),
            "question": r["question"],
            "input": text,
            "output": r["response"],
            "tok_input": ti,
            "tok_output": to,
            "tok_input_length": len(ti),
            "tok_output_length": len(to),
        }
        for i, (r, text, ti, to) in enumerate(zip(rows, inputs, tok_inputs, tok_outputs, strict=True))
    ]


OPENORCA = PromptFormat(
    source="OpenOrca (system_prompt, question, response)",
    prompt_columns=("question",),
    reference_column="response",
    render=_render,
    tokenize=tokenize_prompts,
    processed=processed_rows,
)


def _benchmark(level: str, factor: float, *, interactive: bool, current: bool) -> Benchmark:
    name = f"llama2-70b-interactive-{level}" if interactive else f"llama2-70b-{level}"
    return Benchmark(
        name=name,
        family="llama2-70b",
        # Since v5.1 Interactive is a scenario of llama2-70b-99.9, filed under that name.
        result_name=f"llama2-70b-{level}",
        scenarios={"Interactive": SCENARIOS["Interactive"]} if interactive else SCENARIOS,
        dataset="OpenOrca, processed (open_orca_gpt4_tokenized_llama.sampled_24576)",
        dataset_size=SAMPLES,
        performance_sample_count=SAMPLES,
        accuracy=Targets(name, REFERENCE_ROUGE, factor, {"tokens_per_sample": TOKENS_PER_SAMPLE}, 0.1),
        prompt_format=OPENORCA,
        demo_dataset="openorca-synthetic-600.jsonl",
        demo_targets="tiny-llama-targets.json",
        generation=GENERATION,
        compliance=(TEST06,),
        current_round=current,
    )


# constants.py v6.1 "models" lists llama2-70b-99.9 only; the others are earlier rounds' names.
BENCHMARKS = [
    _benchmark("99", 0.99, interactive=False, current=False),
    _benchmark("99.9", 0.999, interactive=False, current=True),
    _benchmark("99", 0.99, interactive=True, current=False),
    _benchmark("99.9", 0.999, interactive=True, current=False),
]
