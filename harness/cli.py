"""`python -m harness`: a thin command line over `build_config` and `run`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from harness.single.config import SEARCH, SUTS, TELEMETRY_INTERVAL, build_config
from mlperf_llm_sut.benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, LOADGEN_SCENARIOS
from mlperf_llm_sut.common.errors import HarnessError, command_line_options, report_failure
from mlperf_llm_sut.common.stopping import Interrupted
from sut.apis import PROTOCOLS
from sut.dispatch import POLICIES
from sut.engine_config import parse_engine_arg

EPILOG = """\
Without --model the embedded tiny Llama model and the bundled synthetic OpenOrca
sample run with short demo LoadGen settings (never compliant). For a real run:

  python -m harness --scenario Offline --model /models/Llama-2-70b-chat-hf \\
      --dataset open_orca.parquet --user-conf user.conf \\
      --tensor-parallel-size 2 --quantization fp8 --kv-cache-dtype fp8

Against inference servers (vLLM's OpenAI server, e.g. one KServe InferenceService
per replica), with a local copy of the tokenizer:

  python -m harness --scenario Server --sut remote --model /models/llama2-tokenizer \
      --endpoint https://llama-0.apps.example.com --endpoint https://llama-1.apps.example.com \
      --served-model-name llama2-70b --token-env OPENSHIFT_TOKEN --dispatch least-requests

Every run writes a directory under --output-dir with LoadGen's logs, run.json
and samples.jsonl. 'python -m harness rerun RUN_DIR' runs one again (refusing if
the model or the data changed) and compares; 'python -m harness sweep PLAN' runs
every combination of a plan's settings, resumably; 'python -m harness multi PLAN'
runs several runs at once (each with its own LoadGen) and each alone; 'python -m harness.submission'
turns runs into the round's submission tree. Ctrl-C stops a run within seconds
(exit 130), with every issued sample answered and run.json written.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run MLPerf LoadGen (Offline, Server, Interactive or SingleStream) against vLLM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _run_options(p)
    _data_options(p)
    _loadgen_options(p)
    _engine_options(p)
    _remote_options(p)
    _generation_options(p)
    return p


AUDITS = sorted({test.name for benchmark in BENCHMARKS.values() for test in benchmark.compliance})
"""Every audit some benchmark has: what --compliance takes (one the benchmark lacks is an error naming its own)."""


def _run_options(p: argparse.ArgumentParser) -> None:
    """What to run, where its results go, and how its replicas are laid out."""
    run = p.add_argument_group("run")
    run.add_argument(
        "--scenario",
        choices=list(LOADGEN_SCENARIOS),
        default="Offline",
        help="Offline, Server, Interactive (LoadGen's Server under the benchmark's interactive latency limits), or "
        "SingleStream (one query at a time: the edge benchmarks) (default: Offline)",
    )
    run.add_argument(
        "--mode",
        choices=["performance", "accuracy"],
        default="performance",
        help="performance measures speed; accuracy answers every sample once for scoring",
    )
    run.add_argument(
        "--benchmark",
        default=DEFAULT_BENCHMARK,
        help=f"the MLPerf benchmark whose rules, LoadGen settings and accuracy targets apply: {', '.join(BENCHMARKS)} "
        f"(default: {DEFAULT_BENCHMARK})",
    )
    run.add_argument(
        "--compliance",
        choices=AUDITS,
        help="run one of the benchmark's official audits instead of a plain run (TEST06: output consistency; "
        "TEST07: accuracy in a performance run, scored against the --dataset's answers; TEST09: output length): "
        "its audit.config is written to the run directory and applied, the outputs are verified as the audit's "
        "compliance/TESTxx/run_verification.py does (its verify file beside the logs), and the exit code is the "
        "audit's verdict. Which audits a benchmark has: python -m mlperf_llm_sut.benchmarks",
    )
    run.add_argument("--output-dir", default="results", help="where run directories go (default: ./results)")
    run.add_argument(
        "--save-outputs",
        action="store_true",
        help="keep every sample's output token ids in samples.jsonl (always on in accuracy mode)",
    )
    run.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="vLLM engines on this host; on GPUs replica i gets devices [i*TP, (i+1)*TP) (default: 1)",
    )
    run.add_argument(
        "--devices",
        action="append",
        metavar="IDS",
        help="GPUs of one replica, e.g. 0,1; give it once per replica (default: [i*TP, (i+1)*TP))",
    )
    run.add_argument(
        "--cpu-bind",
        action="append",
        metavar="CORES",
        help="cores of one replica's worker process: 0-15, 0,2,4 or node:1 (a NUMA node); once per replica "
        "(default on CPU: the available cores split evenly)",
    )
    run.add_argument(
        "--dispatch",
        choices=list(POLICIES),
        default="round-robin",
        help="how Server requests are spread over replicas (Offline always balances by pulls)",
    )
    run.add_argument(
        "--no-work-stealing",
        action="store_true",
        help="Offline: keep unstarted work where it was placed, even when another replica runs dry (to compare)",
    )
    run.add_argument(
        "--accuracy-targets",
        help="accuracy mode scores against these: a benchmark name or a targets JSON file (default: the "
        "benchmark's own; the embedded model has its own)",
    )
    run.add_argument(
        "--livecodebench",
        type=Path,
        help="exact-match scoring (deepseek-r1): a local copy of LiveCodeBench's code_generation_lite test.jsonl "
        "(or its folder), whose tests grade the code answers",
    )
    run.add_argument(
        "--skip-code",
        action="store_true",
        help="exact-match scoring: leave the LiveCodeBench samples out (the accuracy then fails: it does not "
        "cover the whole set)",
    )
    run.add_argument(
        "--warmup-samples", type=int, default=8, help="prompts generated before LoadGen starts, untimed (default: 8)"
    )
    run.add_argument(
        "--telemetry-interval",
        type=float,
        default=TELEMETRY_INTERVAL,
        metavar="SECONDS",
        help="seconds between telemetry samples: engine and server metrics (KV cache, running and waiting "
        "requests, preemptions, prefix cache), GPU power and energy, CPU and memory; 0 turns it off "
        f"(default: {TELEMETRY_INTERVAL:g})",
    )
    run.add_argument(
        "--start-timeout",
        type=float,
        metavar="S",
        help="the longest a local or Ray engine may take to come up (load its weights, compile); one that is not up "
        "by then is ended, with an error (default: 3600; servers have --connect-timeout)",
    )
    run.add_argument(
        "--stall-timeout",
        type=float,
        metavar="S",
        help="the longest any phase (warm-up, calibration, the test) waits on a replica that has work and makes no "
        "progress. A local or Ray engine whose step takes this long is ended (default: 300). A server with requests "
        "on the wire that returns no token and no answer for this long is stuck: before the test the run ends with "
        "an error; during it the server is taken out, even if its health check answers, and comes back only when "
        "a real generation succeeds (default: 120)",
    )


def _data_options(p: argparse.ArgumentParser) -> None:
    """The model and the data set."""
    data = p.add_argument_group("model and data")
    data.add_argument("--model", help="local Hugging Face model directory (default: the embedded tiny model)")
    data.add_argument("--tokenizer", help="tokenizer directory, if not the model's")
    data.add_argument(
        "--dataset",
        help="the benchmark's data set, processed or raw rows: .parquet, .jsonl, .json, .pkl with --trust-pickle, "
        "a saved Hugging Face dataset folder, or hf:<id>[:<config>][@<split>] (default: the bundled synthetic sample)",
    )
    data.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow --dataset to be a pickle; pickles can run code, so only for files you trust",
    )
    data.add_argument("--dataset-sha256", help="the data set's expected sha256; a matching pickle is trusted")


def _loadgen_options(p: argparse.ArgumentParser) -> None:
    """LoadGen's settings over mlperf.conf and user.conf."""
    lg_opts = p.add_argument_group("LoadGen settings (overrides make the run non-compliant)")
    lg_opts.add_argument("--user-conf", help="LoadGen user.conf, applied over the benchmark's mlperf.conf")
    lg_opts.add_argument(
        "--target-qps",
        type=_qps,
        help="Server target QPS; Offline expected QPS, or auto: measured just before the test, so the Offline query "
        "outlasts the minimum duration at any speed (the demo's default); Server and Interactive: search, the "
        "highest target QPS whose run is VALID, found by shorter runs and then run in full; SingleStream: 1 / the "
        "expected query latency, from which LoadGen sizes the test",
    )
    lg_opts.add_argument(
        "--search-from",
        metavar="OFFLINE_RUN_DIR|SAMPLES_PER_S",
        help="with --target-qps search: the Offline throughput to start from (default: a short Offline probe run)",
    )
    lg_opts.add_argument("--min-duration", type=int, dest="min_duration_ms", help="minimum run time in milliseconds")
    lg_opts.add_argument("--min-query-count", type=int, help="minimum number of queries")
    lg_opts.add_argument("--total-sample-count", type=int, help="use only the first N samples of the data set")
    lg_opts.add_argument("--enable-trace", action="store_true", help="write LoadGen's (large) trace log")


def _engine_options(p: argparse.ArgumentParser) -> None:
    """vLLM engine arguments (local and Ray replicas)."""
    eng = p.add_argument_group("vLLM engine (omitted options keep vLLM's defaults)")
    eng.add_argument("--dtype", default="auto", help="weights/activations dtype: auto, bfloat16, float16, float32")
    eng.add_argument("--quantization", help="weight quantization, e.g. fp8")
    eng.add_argument("--kv-cache-dtype", default="auto", help="KV cache dtype: auto, fp8, fp8_e4m3, fp8_e5m2")
    eng.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per replica")
    eng.add_argument("--max-model-len", type=int, help="longest prompt + output, in tokens")
    eng.add_argument("--max-num-seqs", type=int, help="most sequences in one engine step")
    eng.add_argument("--max-num-batched-tokens", type=int, help="most tokens in one engine step")
    eng.add_argument(
        "--gpu-memory-utilization",
        type=float,
        help="share of device memory vLLM may use (on CPU: of RAM; default there 0.2)",
    )
    eng.add_argument(
        "--enable-chunked-prefill",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="split long prefills across steps",
    )
    eng.add_argument(
        "--enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="no graph capture / compilation: faster start, slower steps (the embedded model defaults to it)",
    )
    eng.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other vllm EngineArgs field, passed through as given (repeatable; "
        "values are JSON when they parse as JSON), e.g. --engine-arg swap_space=8",
    )


def _remote_options(p: argparse.ArgumentParser) -> None:
    """Inference servers as replicas (`--sut remote`)."""
    rem = p.add_argument_group(
        "remote replicas (--sut remote: vLLM OpenAI, KServe v2 or TGI servers; --model/--tokenizer is then only "
        "the local tokenizer)"
    )
    rem.add_argument(
        "--sut",
        choices=list(SUTS),
        default="local",
        help="local: vLLM engines in this host's worker processes (default); remote: inference servers; "
        "ray: vLLM engines in Ray actors across a Ray cluster",
    )
    rem.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="--sut ray: the cluster's head (host:6379); default: this node's cluster, else a local one",
    )
    rem.add_argument("--endpoint", action="append", metavar="URL", help="a server's base URL; once per replica")
    rem.add_argument("--endpoints-file", metavar="FILE", help="base URLs, one a line (# comments)")
    rem.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="openai",
        help="openai: /v1/completions, token ids both ways (default); kserve-v2: generate_stream, text; "
        "tgi: text-generation-inference's generate_stream, text in, token ids out",
    )
    rem.add_argument("--served-model-name", help="the model name the servers serve (default: the only one listed)")
    rem.add_argument("--token-env", metavar="VAR", help="environment variable with a bearer token (never logged)")
    rem.add_argument("--token-file", metavar="FILE", help="file with a bearer token (never logged)")
    rem.add_argument("--ca-bundle", metavar="PEM", help="CA certificates for TLS; verification is always on")
    rem.add_argument("--max-in-flight", type=int, default=256, help="requests on the wire per replica (default: 256)")
    rem.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="(default: 10)")
    rem.add_argument(
        "--first-token-timeout", type=float, default=600.0, metavar="S", help="send to first token (default: 600)"
    )
    rem.add_argument(
        "--request-timeout", type=float, default=3600.0, metavar="S", help="send to last token (default: 3600)"
    )
    rem.add_argument(
        "--retries", type=int, default=2, help="further attempts, only before LoadGen saw a token (default: 2)"
    )
    rem.add_argument(
        "--eject-after",
        type=int,
        default=3,
        metavar="N",
        help="errors in a row that take a replica out until its health probe passes (default: 3)",
    )
    rem.add_argument("--probe-interval", type=float, default=2.0, metavar="S", help="(default: 2)")
    rem.add_argument(
        "--down-timeout", type=float, default=120.0, metavar="S", help="out this long: failed for good (default: 120)"
    )
    rem.add_argument(
        "--output-ids",
        choices=["auto", "text"],
        default="auto",
        help="auto: the server's token ids where it sends them, else its text re-tokenized; text: always re-tokenize",
    )
    rem.add_argument(
        "--client-processes",
        type=int,
        metavar="N",
        help="worker processes that read the servers' streams, each serving whole endpoints (default: one per "
        "endpoint, up to the cores less one); 0: in the harness's own process",
    )


def _generation_options(p: argparse.ArgumentParser) -> None:
    """Generation settings over the benchmark's reference ones."""
    gen = p.add_argument_group("generation (defaults: the benchmark's reference settings, greedy)")
    lengths = {b.family: b.generation.get("max_new_tokens") for b in BENCHMARKS.values()}
    gen.add_argument(
        "--max-new-tokens",
        type=int,
        help="default: the benchmark's (" + ", ".join(f"{family} {n}" for family, n in lengths.items()) + ")",
    )
    gen.add_argument("--min-new-tokens", type=int, help="default: 1")
    gen.add_argument("--temperature", type=float, help="0 (the default) is greedy")
    gen.add_argument("--top-p", type=float, help="default: 1")
    gen.add_argument("--top-k", type=int, help="0 (the default) disables top-k")
    gen.add_argument("--seed", type=int, help="sampling seed (only matters when temperature > 0)")


ENGINE_FLAGS = (
    "dtype",
    "quantization",
    "kv_cache_dtype",
    "tensor_parallel_size",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "enable_chunked_prefill",
    "enforce_eager",
)
GENERATION_FLAGS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "seed")
REMOTE_FLAGS = (
    "protocol",
    "served_model_name",
    "token_env",
    "token_file",
    "ca_bundle",
    "max_in_flight",
    "connect_timeout",
    "first_token_timeout",
    "request_timeout",
    "retries",
    "eject_after",
    "probe_interval",
    "down_timeout",
    "output_ids",
    "client_processes",
)


def _qps(text: str) -> float | str:
    if text in ("auto", SEARCH):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number, auto nor search") from None


def _say(console: Console, line: str) -> None:
    console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["rerun"]:
        from harness.submission.rerun import main as rerun_main

        return _leave(rerun_main(argv[1:]))
    if argv[:1] == ["compare"]:
        from harness.research.regression import main as compare_main

        return compare_main(argv[1:])
    if argv[:1] == ["report"]:
        from harness.research.report import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["sweep"]:
        from harness.research.sweep import main as sweep_main

        return _leave(sweep_main(argv[1:]))
    if argv[:1] == ["multi"]:
        from harness.research.multi import main as multi_main

        return multi_main(argv[1:])
    args = _parser().parse_args(argv)
    # A duplicate of stderr: engine start-up redirects fd 2 to the engine log for a while.
    with open(os.dup(2), "w", buffering=1) as stream:
        return _run_command(args, argv, Console(file=stream))


def _run_command(args: argparse.Namespace, argv: list[str], console: Console) -> int:
    """`python -m harness` with its options parsed: one run, or a peak search and its final run."""
    try:
        from harness.single.runner import exit_code, run
        from harness.single.summary import print_summary

        defaults = _parser().parse_args([])
        # Only what the user typed overrides the embedded defaults.
        engine = {k: getattr(args, k) for k in ENGINE_FLAGS if getattr(args, k) != getattr(defaults, k)}
        remote = {k: getattr(args, k) for k in REMOTE_FLAGS if getattr(args, k) != getattr(defaults, k)}
        if args.endpoint:
            remote["endpoints"] = args.endpoint
        config = build_config(
            scenario=args.scenario,
            mode=args.mode,
            benchmark=args.benchmark,
            compliance=args.compliance,
            model=args.model,
            tokenizer=args.tokenizer,
            dataset=args.dataset,
            trust_pickle=args.trust_pickle,
            dataset_sha256=args.dataset_sha256,
            output_dir=args.output_dir,
            user_conf=args.user_conf,
            target_qps=None if args.target_qps == SEARCH else args.target_qps,
            min_duration_ms=args.min_duration_ms,
            min_query_count=args.min_query_count,
            total_sample_count=args.total_sample_count,
            enable_trace=args.enable_trace,
            engine=engine,
            engine_extra=dict(parse_engine_arg(text) for text in args.engine_arg),
            generation={k: getattr(args, k) for k in GENERATION_FLAGS if getattr(args, k) is not None},
            warmup_samples=args.warmup_samples,
            telemetry_interval=args.telemetry_interval,
            save_outputs=args.save_outputs,
            accuracy_targets=args.accuracy_targets,
            livecodebench=args.livecodebench,
            skip_code=args.skip_code,
            replicas=args.replicas,
            dispatch=args.dispatch,
            work_stealing=not args.no_work_stealing,
            devices=args.devices,
            cpu_bind=args.cpu_bind,
            stall_timeout=args.stall_timeout,
            start_timeout=args.start_timeout,
            sut=args.sut,
            remote=remote,
            endpoints_file=args.endpoints_file,
            ray_address=args.ray_address,
            command=["python", "-m", "harness", *argv],
        )
        if args.target_qps == SEARCH:
            from harness.research.peak import offline_rate, print_search, search_peak

            search = search_peak(config, offline_samples_per_second=offline_rate(args.search_from), console=console)
            print_search(search, Console(width=None if sys.stdout.isatty() else 120))
            assert search.final is not None
            report = search.final
        elif args.search_from:
            raise HarnessError("--search-from goes with --target-qps search.")
        else:
            report = run(config, console=console)
    except Interrupted as stop:  # before a run had a directory, or a peak search's run
        console.print(f"[bold red]{stop}[/]")
        return _leave(stop.interruption.exit_code)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:
        return report_failure(
            exc, lambda line: _say(console, line), traceback_dir=Path(args.output_dir), option=_options()
        )
    # Piped to a file, rich would assume 80 columns and fold the per-replica table.
    print_summary(report, Console(width=None if sys.stdout.isatty() else 120))
    return _leave(exit_code(report))


# Settings whose option is not named after them (`engine` is a mapping of the typed engine options).
OPTION_OF = {
    "endpoints": "--endpoint",
    "engine": "engine options (--dtype, --tensor-parallel-size, ...)",
    "engine_extra": "--engine-arg",
    "work_stealing": "--no-work-stealing",
}


def _options() -> Callable[[str], str | None]:
    """The option that sets each setting (`build_config`'s and the configurations' names): what an error of the
    library (`mlperf_llm_sut.common.errors.setting`) is reported with here."""
    return command_line_options(_parser(), aliases=OPTION_OF)


def _leave(code: int) -> int:
    """`code`, for `sys.exit`; or the end of the process here, when the test of an interrupted run is still
    going: a Server test keeps its schedule after a stop, and LoadGen's thread may call into Python while
    the interpreter shuts down. Everything is written by then."""
    from harness.single.runner import loadgen_running

    if loadgen_running():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
