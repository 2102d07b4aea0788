"""The MLCommons reference `main.py` flow (language/llama2-70b), with the reference's SUT swapped for this
project's `sut.LocalVLLM`: LoadGen, its settings and its logs stay the script's own.

    python examples/loadgen_main.py --scenario Server --model-path /models/llama2-70b \
        --dataset-path open_orca_gpt4_tokenized_llama.sampled_24576.pkl --dataset-sha256 <sha256> \
        --user-conf user.conf --replicas 2 --tensor-parallel-size 2 --engine-arg quantization=fp8
"""

import argparse
import json
import os
import sys

import mlperf_loadgen as lg

from mlperf_llm_sut.common.errors import HarnessError
from sut import EngineConfig, EnginesConfig, GenerationConfig, LocalVLLM, ReplicaLayout, SampleLibrary

scenario_map = {"offline": lg.TestScenario.Offline, "server": lg.TestScenario.Server}


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=["Offline", "Server"], default="Offline")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--dataset-path", required=True)
    parser.add_argument("--dataset-sha256", help="the pickle's known sha256 (a pickle loads only when it matches)")
    parser.add_argument("--accuracy", action="store_true", help="run AccuracyOnly mode")
    parser.add_argument("--user-conf", default="user.conf")
    parser.add_argument("--total-sample-count", type=int, default=24576)
    parser.add_argument("--output-log-dir", default="output-logs")
    parser.add_argument("--enable-log-trace", action="store_true")
    parser.add_argument("--replicas", type=int, default=1, help="vLLM engines on this host")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE", help="any vLLM EngineArgs")
    return parser.parse_args()


def engine_args(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` words as vLLM engine arguments; values are JSON where they parse as JSON."""
    parsed: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def main() -> int:
    args = get_args()
    settings = lg.TestSettings()
    settings.scenario = scenario_map[args.scenario.lower()]
    # mlperf.conf is built into LoadGen; user.conf sets this system's target QPS.
    settings.FromConfig(args.user_conf, "llama2-70b", args.scenario)
    settings.mode = lg.TestMode.AccuracyOnly if args.accuracy else lg.TestMode.PerformanceOnly

    os.makedirs(args.output_log_dir, exist_ok=True)
    log_output_settings = lg.LogOutputSettings()
    log_output_settings.outdir = args.output_log_dir
    log_output_settings.copy_summary_to_stdout = True
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output_settings
    log_settings.enable_trace = args.enable_log_trace

    # The reference builds `SUT(model_path=..., dataset_path=...)` here; this project's SUT takes the data set
    # as a QSL of its own and vLLM's engine arguments, and runs `--replicas` engines behind one dispatcher.
    library = SampleLibrary.from_path(
        args.dataset_path,
        benchmark="llama2-70b-99",
        tokenizer=args.model_path,
        sha256=args.dataset_sha256,
        total_count=args.total_sample_count,
    )
    engine = EngineConfig.from_vllm_args(
        args.model_path, tensor_parallel_size=args.tensor_parallel_size, **engine_args(args.engine_arg)
    )
    generation = GenerationConfig.of_benchmark("llama2-70b-99")
    engines = EnginesConfig(engine, generation, ReplicaLayout(replicas=args.replicas))
    with LocalVLLM(engines, library, args.scenario, keep_tokens=args.accuracy) as sut:  # starts and warms up
        lgSUT = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
        lg.StartTestWithLogSettings(lgSUT, library.handle, settings, log_settings)
        lg.DestroySUT(lgSUT)
    library.close()

    accounts = sut.accounts()
    for stats in sut.stats():
        print(f"{stats.name}: {stats.samples} samples, {stats.tokens_per_second:.1f} tokens/s while busy")
    print(f"{accounts.completed} of {accounts.issued} samples answered, {accounts.failed} failed")
    return 0 if accounts.completed == accounts.issued else 1


if __name__ == "__main__":  # the engines' worker processes are started with spawn
    try:
        raise SystemExit(main())
    except HarnessError as error:  # bad input (a path, a setting): one line that says what to fix
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
