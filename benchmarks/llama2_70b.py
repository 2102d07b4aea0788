"""llama2-70b on OpenOrca: Offline, Server and Interactive, at 99% and 99.9% of the FP32 accuracy.

Sources, all in mlcommons/inference:
- loadgen/mlperf.conf: sample counts, durations, seeds, the TTFT/TPOT limits per LoadGen model key;
- tools/submission/submission_checker/constants.py (round v6.1): the names the round lists,
  accuracy targets, the data set size and which benchmarks need TEST06;
- compliance/TEST06/audit.config and run_verification.py: the audit and its EOS id;
- language/llama2-70b/README.md: the data set (24,576 processed OpenOrca samples).
"""

from __future__ import annotations

from benchmarks import Benchmark, ComplianceTest, ScenarioRules, Targets

# constants.py "accuracy-target" (ROUGE at 99 / 99.9% of these) and "accuracy-upper-limit" (tokens +-10%).
REFERENCE_ROUGE = {"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162}
TOKENS_PER_SAMPLE = 294.45
# mlperf.conf: llama2-70b.*.performance_sample_count_override; constants.py "dataset-size".
SAMPLES = 24576
# mlperf.conf: *.*.qsl_rng_seed, sample_index_rng_seed, schedule_rng_seed (constants.py "seeds").
SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}
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

# compliance/TEST06/audit.config, line for line; run_verification.py --eos_token_id defaults to 2.
TEST06 = ComplianceTest(
    "TEST06",
    audit_settings={
        "mode": "2",
        "accuracy_log_rng_seed": "720381539243781796",
        "accuracy_log_sampling_target": "100",
        "min_query_count": "100",
        "min_duration": "0",
        "sample_concatenate_permutation": "0",
    },
    eos_token_id=2,
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
        accuracy=Targets(name, REFERENCE_ROUGE, factor, TOKENS_PER_SAMPLE, 0.1),
        seeds=SEEDS,
        compliance=(TEST06,),
        current_round=current,
        round_name="v6.1",
    )


# constants.py v6.1 "models" lists llama2-70b-99.9 only; the others are earlier rounds' names.
BENCHMARKS = [
    _benchmark("99", 0.99, interactive=False, current=False),
    _benchmark("99.9", 0.999, interactive=False, current=True),
    _benchmark("99", 0.99, interactive=True, current=False),
    _benchmark("99.9", 0.999, interactive=True, current=False),
]
