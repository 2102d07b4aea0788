"""One benchmark run: data set -> LoadGen -> scenario driver -> replica -> logs -> run.json.

`run(config)` is the library entry point the CLI, scripts and tests call.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import mlperf_loadgen as lg
import psutil
from rich.console import Console

from accuracy.compliance import (
    AUDITS,
    TEST07_THRESHOLD_KEY,
    TEST09_HIGH_KEY,
    TEST09_LOW_KEY,
    AuditVerdict,
    Test07Result,
    audit_value,
    score_test07,
    verify_test06,
    verify_test09,
)
from accuracy.exact_match import check_code_grading
from accuracy.scored_log import AccuracyReport, score_log
from accuracy.scoring import check_punkt
from accuracy.targets import resolve_targets
from harness.single.config import RunConfig, check_model_dir, check_tokenizer_dir, redact
from harness.single.fingerprint import model_fingerprint
from harness.single.progress import RunProgress
from harness.single.record import (
    AuditRecord,
    Calibration,
    DatasetRecord,
    LoadGenRecord,
    RunRecord,
    failure_kinds,
    package_versions,
    replica_rows,
    write_samples,
)
from harness.single.results import DetailLog, RunResult, effective_settings, read_detail_log, summarize
from harness.single.sampling import RunSampling
from harness.single.settings import CALIBRATION, BuiltSettings, build_settings, describe, log_settings
from mlperf_llm_sut.benchmarks import Benchmark, Targets, get_benchmark
from mlperf_llm_sut.common.dataset import Dataset, load_dataset
from mlperf_llm_sut.common.errors import HarnessError, InternalError, setting
from mlperf_llm_sut.common.stopping import Interrupted, Interruption, StopSignals, console_fd
from mlperf_llm_sut.telemetry.summary import Telemetry, Window
from scenarios.base import ScenarioDriver
from scenarios.qsl import SampleLibrary
from scenarios.requests import ResultSink
from scenarios.responder import Accounts, LoadGenResponder, SampleRecord
from sut.build import local_engines, ray_engines, remote_servers
from sut.replica import ReplicaGroup
from sut.systems import SystemUnderTest

SEED_FIELDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
CALIBRATION_SAMPLES = 1000
CALIBRATION_MARGIN = 3.0


@dataclass
class RunReport:
    run_dir: Path
    result: RunResult
    record: RunRecord
    """What run.json holds."""
    interrupted: Interruption | None = None
    """The stop signal that ended the run early, and in which phase."""


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
            "matching --model, or the benchmark's raw rows, which are tokenized at load time."
        )


def expected_queries(config: RunConfig, built: BuiltSettings) -> int | None:
    s = built.settings
    if config.loadgen.mode == "accuracy":
        return built.total_sample_count
    if built.audit is not None:
        return None
    if built.rules.streams:
        qps, seconds = float(s.server_target_qps), float(s.min_duration_ms) / 1000
        return max(int(s.min_query_count), math.ceil(qps * seconds))
    return None


ReplicaFactory = Callable[[RunConfig, ResultSink, Path], ReplicaGroup]
"""What builds a run's replicas from its configuration, the sink their results go to and its directory."""


def configured_replicas(config: RunConfig, sink: ResultSink, run_dir: Path) -> ReplicaGroup:
    """The replicas `config.sut` names (`sut.build`), with local and Ray engines' output in engine.log."""
    if config.sut == "remote":
        return remote_servers(config.servers(), sink)
    if config.sut == "ray":
        return ray_engines(config.engines(), sink, run_dir / "engine.log", address=config.ray_address)
    return local_engines(config.engines(), sink, run_dir / "engine.log")


DRAIN_SECONDS = 3.0
"""After a stop signal, how long LoadGen gets to return once every open sample has been failed. Offline
returns at once; Server keeps issuing on its schedule until its minimum duration (LoadGen's Python API has no
abort), and the run ends without waiting for that."""
POLL_SECONDS = 0.1
"""How often the main thread looks up from waiting on a phase; signals are handled between looks."""
TEST_POLL_SECONDS = 0.25
"""As POLL_SECONDS, during the LoadGen test."""
STOP_JOIN_SECONDS = 10.0
"""How long a phase's thread gets to end once its replicas were stopped under it."""
T = TypeVar("T")

_loadgen_thread: threading.Thread | None = None
"""The LoadGen test this process started, while it runs: LoadGen is one global test per process."""


def exit_code(report: RunReport) -> int:
    """0 when the run passed (VALID, accuracy met, audit passed), 1 when not, 128 + the signal that stopped it."""
    if report.interrupted is not None:
        return report.interrupted.exit_code
    return 0 if report.result.passed else 1


def loadgen_running() -> bool:
    """Whether a LoadGen test of this process is still going: after a stop signal a Server test keeps its
    schedule. Such a process should end with `os._exit`, as LoadGen's thread may call into Python at any time."""
    return _loadgen_thread is not None and _loadgen_thread.is_alive()


def run(
    config: RunConfig,
    *,
    console: Console | None = None,
    replica_factory: ReplicaFactory | None = None,
    before_test: Callable[[], None] | None = None,
) -> RunReport:
    """Run LoadGen against the replica `replica_factory` builds (by default, what `config.sut` says).

    `before_test` is called once the replicas are warm, and the LoadGen test starts when it returns (runs
    measured together wait for each other there). SIGINT or SIGTERM (in the main thread) stop the run within
    seconds, at any phase: the report then has `interrupted`, and run.json says so. Before the run directory
    exists, `Interrupted` is raised instead."""
    if replica_factory is None:
        replica_factory = configured_replicas
    console = console or Console(stderr=True)
    if loadgen_running():
        raise HarnessError(
            "LoadGen is still running the test of an interrupted run in this process (a Server test keeps its "
            "schedule); start the next run in a new process."
        )
    with StopSignals(console_fd(console)) as stop:
        with stop.interruptible("preparation"):
            dataset, targets, built = _prepare(config, console)
        stop.check()
        run_dir = new_run_dir(config)
        try:
            return _Run(run_dir, config, console, stop, dataset, targets, built).execute(replica_factory, before_test)
        except (HarnessError, Interrupted):
            raise
        except Exception as exc:
            # A bug, not bad input: the user gets one line (exit 3), the traceback stays with the run.
            path = run_dir / "traceback.txt"
            path.write_text(traceback.format_exc())
            raise InternalError(str(exc) or type(exc).__name__, path) from exc


def _prepare(config: RunConfig, console: Console) -> tuple[Dataset, Targets | None, BuiltSettings]:
    """Every input checked and loaded, before anything expensive starts."""
    check_model_dir(config.engine.model, remote=config.sut == "remote")
    check_tokenizer_dir(config.engine.tokenizer or config.engine.model)
    dataset = load_dataset(
        config.dataset.path,
        prompt_format=get_benchmark(config.loadgen.benchmark).prompt_format,
        tokenizer_dir=config.engine.tokenizer or config.engine.model,
        trust_pickle=config.dataset.trust_pickle,
        expected_sha256=config.dataset.sha256,
    )
    check_vocabulary(dataset, config.engine.model)
    benchmark = get_benchmark(config.loadgen.benchmark)
    if config.loadgen.compliance is not None:
        check_audit_inputs(config, benchmark, dataset)
    targets = None
    if config.loadgen.mode == "accuracy":
        if dataset.references is None:
            console.print(f"[yellow]warning:[/] {dataset.path} has no reference outputs: accuracy will not be scored")
        else:
            targets = resolve_targets(config.accuracy_targets, grading=benchmark.accuracy.grading)
            if targets.scoring == "exact_match":
                check_code_grading(dataset, config.livecodebench, config.skip_code, grading=targets.grading)
            else:
                check_punkt()
    built, warnings = build_settings(config.loadgen, len(dataset))
    warnings += _context_warnings(dataset, config)
    if config.layout.step_delays:
        built.non_compliant.append(f"replicas slowed on purpose: step delays {config.layout.step_delays}")
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return dataset, targets, built


def _context_warnings(dataset: Dataset, config: RunConfig) -> list[str]:
    """Prompts whose answers a local engine's context would cut before `max_new_tokens` (gpt-oss-120b's accuracy
    runs ask for 32,768): vLLM ends them at max_model_len without an error, so the run would not say."""
    limit = config.engine.max_model_len
    if limit is None or config.sut == "remote":
        return []
    wanted = config.generation.max_new_tokens
    lengths = [len(prompt) for prompt in dataset.prompts]
    short = sum(1 for length in lengths if length + wanted > limit)
    if not short:
        return []
    return [
        f"max_model_len {limit} leaves {short} of {len(lengths)} prompts less room than max_new_tokens {wanted}: "
        f"their answers stop at the context's end, where the reference's go on. Raise max_model_len to "
        f"{max(lengths) + wanted} (the longest prompt, {max(lengths)} tokens, plus max_new_tokens), or leave it to "
        "the model's own."
    ]


def check_audit_inputs(config: RunConfig, benchmark: Benchmark, dataset: Dataset) -> None:
    """What an audit needs of the data set, checked before the run: TEST07 scores the run's outputs against
    the data set's answers (and grades LiveCodeBench answers by running them, where it asks such questions)."""
    audit = benchmark.compliance_test(str(config.loadgen.compliance))
    if audit.name not in AUDITS:
        raise HarnessError(f"{setting('compliance')} {audit.name}: {_NOT_BUILT_IN}")
    if audit.name != "TEST07":
        return
    exact_match = benchmark.accuracy.scoring == "exact_match"
    if dataset.references is None or (exact_match and dataset.sources is None):
        # Exact match also needs each row's source data set: it says how the answer is read and judged.
        missing = "answers (a 'ground_truth' column)" if dataset.references is None else "sources (a 'dataset' column)"
        raise HarnessError(
            f"{setting('compliance')} TEST07 scores the run's outputs against the data set's answers, but "
            f"{dataset.path} has no {missing}: pass {benchmark.name}'s TEST07 data set with {setting('dataset')}."
        )
    if exact_match:
        check_code_grading(dataset, config.livecodebench, config.skip_code, grading=benchmark.accuracy.grading)


class _Run:
    """One run's life in phases: start the replicas, warm up (and calibrate), the LoadGen test, drain, stop,
    results. Each phase cleans up after itself, and every way out (the end, an error, a stop signal) goes
    through drain, stop and (unless the error is the user's or a bug) results, in that order."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        console: Console,
        stop: StopSignals,
        dataset: Dataset,
        targets: Targets | None,
        built: BuiltSettings,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.console = console
        self.stop = stop
        self.dataset = dataset
        self.targets = targets
        self.built = built
        self.started = datetime.now(UTC)
        self.library = SampleLibrary(dataset, built.total_sample_count, built.performance_sample_count)
        self.system: SystemUnderTest | None = None
        self.calibration: Calibration | None = None
        self.audit_path = run_dir / "audit.config"
        self.loadgen: _LoadGenTest | None = None
        self.sampling: RunSampling | None = None
        self.interruption: Interruption | None = None
        """The stop signal that cut the run short, and in which phase."""

    def execute(self, replica_factory: ReplicaFactory, before_test: Callable[[], None] | None = None) -> RunReport:
        try:
            self.start_replicas(replica_factory)
            self.warm_up()
            if before_test is not None:
                self._until_stopped("waiting to start", before_test)
            self.test()
        except Interrupted:
            pass  # `stop.requested` says when and why; what follows is the same as after a whole run
        finally:
            self.drain()
            # A signal from here on cuts nothing short (but scoring): the run finishes and is judged as it is.
            self.interruption = self.stop.requested
            self.stop_replicas()
        return self.results()

    # -- phases -------------------------------------------------------------------------------------
    def start_replicas(self, replica_factory: ReplicaFactory) -> None:
        config = self.config
        self.stop.phase = "start-up"
        self.audit_path = write_audit_config(self.built, self.run_dir, self.console)
        if config.loadgen.user_conf is not None:
            # The submission tree needs the user.conf each run used, kept with its logs.
            shutil.copyfile(config.loadgen.user_conf, self.run_dir / "user.conf")
        t0 = time.perf_counter()
        self.system = system = SystemUnderTest(
            lambda sink: replica_factory(config, sink, self.run_dir),
            self.library,
            self.built.rules.loadgen_scenario,
            keep_tokens=config.keeps_tokens,
            first_token_in_completion=self.built.benchmark.first_token_in_completion,
        )
        what = (
            f"connecting to {config.layout.replicas} endpoint(s)"
            if config.sut == "remote"
            else f"starting {system.name}"
        )
        with self.console.status(f"{what} for {config.engine.model} (logs: {self.run_dir})"):
            self._until_stopped("start-up", system.start)
        self._done(f"{system.name} up in {time.perf_counter() - t0:.1f} s")
        self.sampling = RunSampling.of(config, system.replicas)
        if self.sampling is not None:
            self.sampling.start()

    def warm_up(self) -> None:
        system, config = self.system, self.config
        assert system is not None
        t0 = time.perf_counter()
        with self.console.status("warming up"):
            self._until_stopped("warm-up", lambda: system.warm_up(config.warmup_samples, config.warmup_tokens))
        self._done(f"warmed up in {time.perf_counter() - t0:.1f} s")
        self.calibration = self._until_stopped(
            "calibration", lambda: calibrate_offline(config, self.built, system.replicas, self.dataset, self.console)
        )

    def test(self) -> None:
        """LoadGen's test on a thread of its own; the main thread waits in short steps, so a stop signal is
        acted on at once (`drain`)."""
        system = self.system
        assert system is not None
        built, config = self.built, self.config
        self.stop.phase = "the LoadGen test"
        self.loadgen = _LoadGenTest(
            self.library, system.driver, built, log_settings(self.run_dir, config.loadgen.enable_trace)
        )
        label = f"{config.loadgen.scenario} {config.loadgen.mode}"
        # What exists now (data set, tokenizer, replicas) lives through the test: out of the collector's way,
        # which otherwise walks it all again every few thousand samples answered.
        gc.collect()
        gc.freeze()
        try:
            with RunProgress(system.responder, self.console, label=label, expected=expected_queries(config, built)):
                self.loadgen.start(self.audit_path)
                # Joined in steps: the end of the test wakes the wait at once, a stop signal within a step. Each look
                # wakes this thread, which in a Server run at a low rate is a good share of the process's CPU.
                while self.loadgen.running and self.stop.requested is None:
                    self.loadgen.join(TEST_POLL_SECONDS)
        finally:
            gc.unfreeze()
        self.loadgen.raise_failure()

    def drain(self) -> None:
        """After a stop signal: every open sample is failed, so LoadGen can return; it gets DRAIN_SECONDS."""
        test = self.loadgen
        if test is None:
            return
        interruption = self.stop.requested
        if interruption is not None:
            self.stop.phase = "drain"
            assert self.system is not None  # a test has started
            self.system.abandon(f"the run was {interruption}")
            test.join(DRAIN_SECONDS)
        test.finish()

    def stop_replicas(self) -> None:
        if self.sampling is not None:
            self.sampling.stop()
        if self.system is not None:
            self.stop.phase = "stopping the replicas"
            self.system.stop()

    def results(self) -> RunReport:
        """Judge the run and write run.json and samples.jsonl, whatever stage it reached."""
        self.stop.phase = "results"
        config, built = self.config, self.built
        group = self.system.replicas if self.system is not None else None
        accounts = self.system.accounts() if self.system is not None else LoadGenResponder().accounts()
        # What the run reports is each replica of the group.
        members = list(group.members) if group is not None else []
        detail = read_detail_log(self.run_dir / "mlperf_log_detail.txt")
        problems = self._problems(group, accounts)
        result = summarize(
            detail, scenario=built.rules.loadgen_scenario, mode=config.loadgen.mode, harness_problems=problems
        )
        effective, compliance = self._check_rules(detail)
        if compliance is not None:
            result.compliance_passed = compliance.passed

        records = accounts.records
        placed = group.assignments() if group is not None else {}
        by_replica: dict[str, list[SampleRecord]] = {member.name: [] for member in members}
        for sample in records:
            if sample.response_id in placed:
                by_replica[placed[sample.response_id]].append(sample)
        write_samples(self.run_dir / "samples.jsonl", records, placed)
        accuracy = self._score(accounts)
        if accuracy is not None:
            result.accuracy_passed = accuracy.passed
        interruption = self.interruption
        if interruption is not None:
            # What LoadGen says of a test cut short (too short, too few samples) follows from the interruption.
            result.interrupted = str(interruption)
            result.valid = False
            result.invalid_reasons = [f"the run was {interruption}", *problems]
        record = RunRecord(
            benchmark=config.loadgen.benchmark,
            scenario=config.loadgen.scenario,
            mode=config.loadgen.mode,
            compliance_test=config.loadgen.compliance,
            loadgen_scenario=built.rules.loadgen_scenario,
            started_at=self.started.isoformat(),
            interrupted=interruption,
            wall_seconds=round(self.loadgen.wall_seconds, 3) if self.loadgen else None,
            test_window=(
                (round(self.loadgen.started_unix, 3), round(self.loadgen.started_unix + self.loadgen.wall_seconds, 3))
                if self.loadgen
                else None
            ),
            harness_cpu_seconds=round(self.loadgen.cpu_seconds, 3) if self.loadgen else None,
            worker_cpu_seconds=round(self.loadgen.worker_cpu_seconds, 3) if self.loadgen else None,
            compliant=not built.non_compliant,
            non_compliant=built.non_compliant,
            sut=config.sut,
            config=config.redacted(),
            engine_args=redact(json.loads(json.dumps(group.engine_args() if group else {}, default=str))),
            versions=package_versions(),
            model=model_fingerprint(config.engine.model, quantization=config.engine.quantization),
            loadgen=LoadGenRecord(
                seeds={name: getattr(built.settings, name) for name in SEED_FIELDS},
                settings=describe(built.settings),
                sources=built.sources,
                effective=effective,
                audit_config=built.audit_config() or None,
                errors=detail.errors,
                warnings=detail.warnings,
            ),
            dataset=DatasetRecord(
                **self.dataset.describe(),
                total_sample_count=built.total_sample_count,
                performance_sample_count=built.performance_sample_count,
            ),
            samples=accounts.counts(),
            replicas=replica_rows(members, by_replica if built.rules.streams else None),
            offline_tail_seconds=None if built.rules.streams or group is None else _rounded(group.finish_spread()),
            offline_stolen=None if built.rules.streams or group is None else group.stolen(),
            replica_failures=(group.replica_failures() if group else {}) or accounts.replica_failures,
            result=result,
            accuracy=accuracy,
            compliance=AuditRecord.of(compliance) if compliance else None,
            calibration=self.calibration,
            telemetry=self._telemetry(accounts),
        )
        record.write(self.run_dir)
        return RunReport(self.run_dir, result, record, interruption)

    # -- helpers ------------------------------------------------------------------------------------
    def _until_stopped(self, phase: str, work: Callable[[], T]) -> T:
        """`work` (which waits on the replicas) on a thread of its own, while the main thread waits in short
        steps: on a stop signal the replicas are stopped, which ends what `work` waits on, and `Interrupted`
        is raised here. No exception is ever raised inside replica code."""
        self.stop.phase = phase
        self.stop.check()
        returned: list[T] = []
        raised: list[BaseException] = []

        def target() -> None:
            try:
                returned.append(work())
            except BaseException as exc:  # re-raised on the main thread
                raised.append(exc)

        thread = threading.Thread(target=target, name=phase, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if self.stop.requested is not None:
                self.stop_replicas()
                thread.join(STOP_JOIN_SECONDS)
                raise Interrupted(self.stop.requested)
        if raised:
            if isinstance(raised[0], HarnessError):
                # The replica's error says which replica and what it did (a line each); this says when.
                raise HarnessError("\n".join(f"{phase}: {line}" for line in raised[0].message.splitlines())) from None
            raise raised[0]
        return returned[0]

    def _done(self, line: str) -> None:
        self.console.print(f"[dim]{line}[/]", highlight=False)

    def _problems(self, group: ReplicaGroup | None, accounts: Accounts) -> list[str]:
        """Why the harness itself makes the run INVALID: failed replicas, failed, duplicate or lost samples."""
        members = group.members if group is not None else []
        mismatches = sum(member.stats().count_mismatches for member in members)
        if mismatches:
            self.built.non_compliant.append(
                f"{mismatches} answers re-tokenized from text differ in length from the server's own token count: "
                "tokens/s and the logged ids are approximate (a server that streams token ids avoids this, e.g. "
                "vLLM with --protocol openai)"
            )
        problems = []
        replica_failures = group.replica_failures() if group is not None else {}
        for failure in replica_failures.values():
            problems.append(f"{failure['reason']} ({failure['moved']} unstarted samples moved to other replicas)")
        if not replica_failures:
            problems += accounts.replica_failures
        if accounts.failed:
            problems.append(f"{accounts.failed} samples failed ({failure_kinds(accounts.failures)})")
        if accounts.duplicates:
            problems.append(f"{accounts.duplicates} duplicate answers were dropped")
        if accounts.unanswered:
            problems.append(f"{accounts.unanswered} samples were never answered")
        return problems

    def _telemetry(self, accounts: Accounts) -> Telemetry | None:
        if self.sampling is None:
            return None
        test = self.loadgen
        window = Window(test.started_monotonic, test.started_monotonic + test.wall_seconds) if test else None
        return self.sampling.results(self.run_dir, window, accounts.output_tokens)

    def _check_rules(self, detail: DetailLog) -> tuple[dict[str, Any], AuditVerdict | None]:
        """The rules are judged on a test that ran to its end; an interrupted one is INVALID anyway. TEST07
        scores the outputs, which a stop signal cuts short: the run is then unjudged, and interrupted."""
        if self.interruption is not None or self.loadgen is None:
            return effective_settings(detail), None
        audit = self.built.audit
        if audit is None:
            return check_rules(self.config, self.built, detail, self.run_dir)
        try:
            with self.stop.interruptible("scoring"), self.console.status(f"verifying {audit.name}"):
                return check_rules(self.config, self.built, detail, self.run_dir, self.dataset)
        except Interrupted as stop:
            self.interruption = stop.interruption
            return effective_settings(detail), None

    def _score(self, accounts: Accounts) -> AccuracyReport | None:
        """Accuracy of a whole accuracy run; a stop signal here leaves the run unscored, and interrupted."""
        if self.targets is None or not accounts.completed or self.interruption is not None:
            return None
        try:
            with self.stop.interruptible("scoring"), self.console.status("scoring accuracy"):
                return score_log(
                    self.run_dir / "mlperf_log_accuracy.json",
                    self.dataset,
                    self.config.engine.tokenizer or self.config.engine.model,
                    self.targets,
                    workers=self.config.scoring_workers,
                    livecodebench=self.config.livecodebench,
                    skip_code=self.config.skip_code,
                    progress=False,  # under the status line; its own bar would fight it for the terminal
                )
        except Interrupted as stop:
            self.interruption = stop.interruption
            return None


class _LoadGenTest:
    """LoadGen's `StartTest` on a thread of its own. The SUT and QSL handles LoadGen calls through are
    destroyed only once the test has returned: after a stop signal a Server test may still be running, and
    then they stay (the process is about to end)."""

    def __init__(self, library: SampleLibrary, driver: ScenarioDriver, built: BuiltSettings, logs: Any) -> None:
        self._library = library
        self._driver = driver
        self._built = built
        self._logs = logs
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._t0 = self._cpu0 = 0.0
        self._workers0: dict[int, float] = {}
        self.wall_seconds = self.cpu_seconds = self.worker_cpu_seconds = 0.0
        self._finished = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, audit_path: Path) -> None:
        global _loadgen_thread
        qsl, sut = self._library.handle, self._driver.open()
        self._thread = threading.Thread(target=self._test, args=(sut, qsl, audit_path), name="loadgen", daemon=True)
        self._t0, self._cpu0 = time.perf_counter(), time.process_time()
        self._workers0 = _worker_cpu()
        self.started_unix = time.time()
        self.started_monotonic = time.monotonic()
        """On the clock telemetry is read on."""
        _loadgen_thread = self._thread
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def finish(self) -> None:
        """Record the test's time; release LoadGen's handles if it has returned."""
        global _loadgen_thread
        if self._finished or self._thread is None:
            return
        self._finished = True
        self.wall_seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._cpu0
        # Workers that ended during the test (a killed one) count for what they had until the start.
        workers = _worker_cpu()
        self.worker_cpu_seconds = sum(workers.get(pid, used) - used for pid, used in self._workers0.items())
        if not self._thread.is_alive():
            self._driver.close()
            self._library.close()
            _loadgen_thread = None

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _test(self, sut: Any, qsl: Any, audit_path: Path) -> None:
        try:
            lg.StartTestWithLogSettings(sut, qsl, self._built.settings, self._logs, str(audit_path))
        except BaseException as exc:  # the main thread re-raises it
            self._failure = exc


def calibrate_offline(
    config: RunConfig, built: BuiltSettings, replica: ReplicaGroup, dataset: Dataset, console: Console
) -> Calibration | None:
    """`--target-qps auto` (and the demo): generate up to CALIBRATION_SAMPLES samples untimed, as the timed run
    will, and tell LoadGen to expect CALIBRATION_MARGIN times that rate. LoadGen fills the Offline query with
    that rate x the minimum duration (x 1.1), so the query outlasts the minimum duration unless the timed run is
    that many times faster than the calibration; without it, a fixed query that takes seconds on a CPU is done
    in milliseconds on a GPU, and the run is INVALID for ending too early."""
    if not built.calibrate or config.loadgen.mode != "performance" or built.audit is not None:
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
    built.sources["offline_expected_qps"] = CALIBRATION
    return Calibration(
        samples=len(prompts),
        seconds=round(seconds, 3),
        samples_per_second=round(rate, 2),
        offline_expected_qps=round(rate * CALIBRATION_MARGIN, 2),
    )


def check_rules(
    config: RunConfig, built: BuiltSettings, detail: DetailLog, run_dir: Path, dataset: Dataset | None = None
) -> tuple[dict[str, Any], AuditVerdict | None]:
    """The settings LoadGen used, with each benchmark rule they break added to the non-compliance reasons;
    a compliance run is judged by its audit instead, whose verdict this returns (and writes into `run_dir`,
    as the audit's run_verification.py would). TEST07 scores the outputs against `dataset`."""
    effective = effective_settings(detail)
    if built.audit is None:
        built.non_compliant += built.benchmark.check_effective(config.loadgen.scenario, config.loadgen.mode, effective)
        return effective, None
    verdict = verify_audit(config, built, run_dir, dataset)
    verdict.write(run_dir)
    if isinstance(verdict, Test07Result) and verdict.skipped:
        built.non_compliant.append(
            f"TEST07's score leaves out {verdict.skipped} LiveCodeBench samples (code grading skipped): the "
            "audit scores them all (pass their problems with --livecodebench)"
        )
    return effective, verdict


def verify_audit(config: RunConfig, built: BuiltSettings, run_dir: Path, dataset: Dataset | None) -> AuditVerdict:
    """The audit's own checks on the run's accuracy log; thresholds as its run_verification.py reads them
    from the audit.config the run applied."""
    audit, log = built.audit, run_dir / "mlperf_log_accuracy.json"
    assert audit is not None
    if audit.name == "TEST06":
        if audit.eos_token_id is None:
            raise HarnessError(
                f"{built.benchmark.name}'s TEST06 names no EOS token: its registry entry needs "
                "test06(eos_token_id=...)."
            )
        return verify_test06(
            log,
            first_token_reported=built.rules.streams,
            eos_token_id=audit.eos_token_id,
            dtype=built.benchmark.token_dtype,
        )
    if audit.name == "TEST07":
        if dataset is None:
            raise HarnessError("TEST07 scores the run's outputs against its data set: pass `dataset` to check_rules.")
        return score_test07(
            log,
            dataset,
            config.engine.tokenizer or config.engine.model,
            built.benchmark.accuracy,
            threshold=audit_value(audit, TEST07_THRESHOLD_KEY),
            dtype=built.benchmark.token_dtype,
            workers=config.scoring_workers,
            livecodebench=config.livecodebench,
            skip_code=config.skip_code,
        )
    if audit.name == "TEST09":
        return verify_test09(log, low=audit_value(audit, TEST09_LOW_KEY), high=audit_value(audit, TEST09_HIGH_KEY))
    raise HarnessError(f"{setting('compliance')} {audit.name}: {_NOT_BUILT_IN}")


_NOT_BUILT_IN = f"this harness verifies only {', '.join(AUDITS)}; run that audit with the official compliance scripts."


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
            "working directory over every setting); for an official audit use --compliance "
            f"{' or '.join(test.name for test in built.benchmark.compliance) or '(none for this benchmark)'}."
        )
    return path


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _worker_cpu() -> dict[int, float]:
    """CPU seconds so far of each process under the harness's, by pid (those that end meanwhile are skipped)."""
    used: dict[int, float] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        used[child.pid] = times.user + times.system
    return used
