"""One typed configuration for a run, built in one place (`build_config`).

The CLI, scripts and tests all construct a `RunConfig` through `build_config`,
so defaults (the embedded demo, MLPerf generation settings) live only here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.single.settings import LoadGenConfig
from mlperf_llm_sut.benchmarks import DEFAULT_BENCHMARK, Benchmark, get_benchmark
from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.common.typed_json import from_json, to_json
from sut.build import EnginesConfig, ReplicaLayout, ServersConfig
from sut.dispatch import POLICIES
from sut.engine_config import EngineConfig
from sut.engine_worker import STALL_SECONDS, START_SECONDS
from sut.generation import GenerationConfig
from sut.remote_config import RemoteConfig, read_endpoints_file, redact_url

SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
SUTS = ("local", "remote", "ray")
TELEMETRY_INTERVAL = 1.0
"""Seconds between telemetry samples by default: often enough to see a KV cache fill up, cheap enough to stay
under 1% of the harness's CPU (docs/telemetry.md has the measurements)."""
AUTO = "auto"
SEARCH = "search"
"""The Server target QPS that asks for the peak search (`harness.research.peak`), on the command line and in
sweep plans."""


@dataclass
class DatasetConfig:
    path: Path
    trust_pickle: bool = False
    sha256: str | None = None
    embedded: bool = False


@dataclass
class RunConfig:
    loadgen: LoadGenConfig
    engine: EngineConfig
    generation: GenerationConfig
    dataset: DatasetConfig
    output_dir: Path = Path("results")
    warmup_samples: int = 8
    warmup_tokens: int = 16
    save_outputs: bool = False
    """Keep every sample's output token ids in samples.jsonl (always done in accuracy mode)."""
    sut: str = "local"
    """`local`: vLLM engines in worker processes on this host; `remote`: inference servers (`remote`);
    `ray`: vLLM engines in Ray actors, anywhere in a Ray cluster."""
    remote: RemoteConfig | None = None
    ray_address: str = "auto"
    """`--sut ray`: the cluster to join; `auto` joins this node's, or starts a local one on 127.0.0.1."""
    layout: ReplicaLayout = dataclasses.field(default_factory=ReplicaLayout)
    """How many engines (`--sut remote`: one per endpoint), where each runs, how they share the work."""
    accuracy_targets: str = DEFAULT_BENCHMARK
    """What an accuracy-mode run is scored against: a benchmark name or a targets JSON file."""
    scoring_workers: int | None = None
    livecodebench: Path | None = None
    """Exact-match scoring (deepseek-r1): the LiveCodeBench problems (code_generation_lite's test.jsonl, or its
    folder) whose tests grade the code answers."""
    skip_code: bool = False
    """Exact-match scoring leaves the LiveCodeBench samples out (the accuracy then does not cover the set)."""
    command: list[str] | None = None
    """The command line that made this configuration, when it came from one (for run.json and the
    submission README)."""
    telemetry_interval: float = TELEMETRY_INTERVAL
    """Seconds between telemetry samples (engine and server metrics, GPUs, processes); 0 samples nothing."""

    @property
    def keeps_tokens(self) -> bool:
        return self.save_outputs or self.loadgen.mode == "accuracy"

    def engines(self) -> EnginesConfig:
        """What `--sut local` and `--sut ray` build their replicas from."""
        return EnginesConfig(
            engine=self.engine,
            generation=self.generation,
            layout=self.layout,
            gpu_interval=self.telemetry_interval if self.telemetry_interval > 0 else None,
        )

    def servers(self) -> ServersConfig:
        """What `--sut remote` builds its replicas from."""
        assert self.remote is not None, "a remote run has its RemoteConfig"
        return ServersConfig(
            remote=self.remote,
            tokenizer=self.engine.tokenizer or self.engine.model,
            generation=self.generation,
            dispatch=self.layout.dispatch,
            work_stealing=self.layout.work_stealing,
        )

    def to_json(self) -> dict[str, Any]:
        """The resolved configuration for run.json, with secrets redacted."""
        resolved = to_json(self)
        if resolved["remote"]:
            resolved["remote"]["endpoints"] = [redact_url(url) for url in resolved["remote"]["endpoints"]]
        if resolved["command"]:
            resolved["command"] = [_redact_arg(arg) for arg in resolved["command"]]
        redacted: dict[str, Any] = redact(resolved)
        return redacted

    def redacted(self) -> RunConfig:
        """This configuration as run.json records it: secrets redacted."""
        return from_json(RunConfig, self.to_json(), where="the run's configuration")


def _redact_arg(arg: str) -> str:
    """A command-line word with any URL in it (`URL` or `--endpoint=URL`) stripped of user:password."""
    if "://" not in arg:
        return arg
    option, sep, url = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    return option + sep + redact_url(url)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if str(k).lower().endswith(SECRET_MARKERS) and v else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def check_model_dir(model: str, *, remote: bool = False) -> None:
    """`remote`: the servers hold the weights; the directory only needs config.json and the tokenizer."""
    path = Path(model)
    holds = (
        "config.json and tokenizer; no weights needed: the servers have them"
        if remote
        else ("config.json, weights, tokenizer")
    )
    if not path.exists():
        raise HarnessError(
            f"model {model} does not exist. Pass {setting('model')} with a local Hugging Face model "
            f"directory ({holds}), or leave it out for the embedded tiny model."
        )
    if not (path / "config.json").is_file():
        raise HarnessError(
            f"model {model} is not a Hugging Face model directory: it has no config.json. "
            f"Point {setting('model')} at the directory that holds {holds}."
        )
    try:
        json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"model {model}: config.json is not valid JSON ({exc}).") from None


def check_tokenizer_dir(directory: str) -> None:
    """A tokenizer needs one of these files; without them loading it fails far from the cause."""
    path = Path(directory)
    if not path.is_dir():
        raise HarnessError(
            f"tokenizer {directory} does not exist. Pass {setting('tokenizer')} (or {setting('model')}) with its "
            "directory."
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise HarnessError(
            f"{directory} has no tokenizer ({', '.join(TOKENIZER_FILES)}): copy the model's tokenizer files there, "
            f"or pass {setting('tokenizer')} with the directory that has them."
        )


def build_config(
    *,
    scenario: str = "Offline",
    mode: str = "performance",
    benchmark: str = DEFAULT_BENCHMARK,
    compliance: str | None = None,
    model: str | Path | None = None,
    tokenizer: str | Path | None = None,
    dataset: str | Path | None = None,
    trust_pickle: bool = False,
    dataset_sha256: str | None = None,
    output_dir: str | Path = "results",
    user_conf: str | Path | None = None,
    target_qps: float | str | None = None,
    min_duration_ms: int | None = None,
    min_query_count: int | None = None,
    total_sample_count: int | None = None,
    enable_trace: bool = False,
    engine: dict[str, Any] | None = None,
    engine_extra: dict[str, Any] | None = None,
    generation: dict[str, Any] | None = None,
    warmup_samples: int = 8,
    save_outputs: bool = False,
    accuracy_targets: str | Path | None = None,
    scoring_workers: int | None = None,
    livecodebench: str | Path | None = None,
    skip_code: bool = False,
    replicas: int = 1,
    dispatch: str = "round-robin",
    work_stealing: bool = True,
    devices: list[str] | None = None,
    cpu_bind: list[str] | None = None,
    step_delays: dict[int, float] | None = None,
    stall_timeout: float | None = None,
    start_timeout: float | None = None,
    sut: str = "local",
    remote: dict[str, Any] | None = None,
    endpoints_file: str | Path | None = None,
    ray_address: str | None = None,
    command: list[str] | None = None,
    telemetry_interval: float = TELEMETRY_INTERVAL,
) -> RunConfig:
    """Everything a run needs. Leaving out `model` selects the embedded tiny model,
    its bundled synthetic data set and short demo LoadGen settings (non-compliant).

    With `sut="remote"`, `remote` holds `RemoteConfig` fields (endpoints and the
    rest) and `model` (or `tokenizer`) is a local directory with the model's
    tokenizer; the engine itself is the servers' business.

    `stall_timeout` bounds every wait on a replica that has work and makes no progress, in every phase: a
    local or Ray engine's step, or a server that returns no token and no answer. `start_timeout` bounds a local
    or Ray engine's start-up."""
    _check_sut_options(sut, stall_timeout, start_timeout, ray_address, devices)
    if stall_timeout is not None and sut == "remote":
        remote = {**(remote or {}), "stall_timeout": stall_timeout}
    chosen = _check_benchmark(benchmark, scenario, mode, compliance)
    remote_config = _remote_config(sut, remote, endpoints_file)
    if remote_config is not None:
        _check_local_only(
            {
                f"{setting('engine')}, {setting('engine_extra')}": bool(engine or engine_extra),
                setting("replicas"): replicas != 1,
                setting("devices"): bool(devices),
                setting("cpu_bind"): bool(cpu_bind),
                setting("step_delays"): bool(step_delays),
                setting("start_timeout"): start_timeout is not None,
            }
        )
    demo = model is None
    engine_config = _engine_config(model, tokenizer, engine, engine_extra)
    if dataset is None:
        dataset = embedded.ROOT / chosen.demo_dataset
    generation_config = _generation_config(
        {
            **chosen.generation,
            **(chosen.accuracy_generation if mode == "accuracy" else {}),
            **(chosen.demo_generation if demo else {}),
        },
        generation,
    )
    # The demo's own LoadGen settings (`embedded.DEMO_LOADGEN`) fill in, setting by setting, only what the user
    # leaves unset here and in their user.conf: `harness.single.settings.build_settings` knows both.
    loadgen = LoadGenConfig(
        scenario=scenario,
        mode=mode,
        benchmark=benchmark,
        user_conf=Path(user_conf) if user_conf else None,
        target_qps=_target_qps(target_qps, scenario),
        min_duration_ms=min_duration_ms,
        min_query_count=min_query_count,
        total_sample_count=total_sample_count,
        enable_trace=enable_trace,
        demo=demo,
        calibrate=target_qps == AUTO,
        compliance=compliance,
    )
    if remote_config is not None:
        remote_config.check_generation(generation_config)
    if sut != "remote":
        engine_config.check()
    _check_ranges(
        {
            setting("warmup_samples"): (warmup_samples, 0),
            setting("replicas"): (replicas, 1),
            setting("min_duration_ms"): (min_duration_ms, 0),
            setting("min_query_count"): (min_query_count, 1),
            setting("total_sample_count"): (total_sample_count, 1),
            "scoring_workers": (scoring_workers, 1),
            setting("telemetry_interval"): (telemetry_interval, 0),
        }
    )
    if dispatch not in POLICIES:
        raise HarnessError(f"{setting('dispatch')} {dispatch!r}: use one of {', '.join(POLICIES)}.")
    step_delays = dict(step_delays or {})
    _check_step_delays(step_delays, replicas)
    return RunConfig(
        loadgen=loadgen,
        engine=engine_config,
        generation=generation_config,
        dataset=DatasetConfig(
            path=Path(dataset),
            trust_pickle=trust_pickle,
            sha256=dataset_sha256,
            embedded=Path(dataset).parent == embedded.ROOT,
        ),
        output_dir=Path(output_dir),
        warmup_samples=warmup_samples,
        save_outputs=save_outputs,
        sut=sut,
        remote=remote_config,
        ray_address=ray_address or "auto",
        layout=ReplicaLayout(
            replicas=len(remote_config.endpoints) if remote_config else replicas,
            dispatch=dispatch,
            work_stealing=work_stealing,
            devices=list(devices) if devices else None,
            cpu_bind=list(cpu_bind) if cpu_bind else None,
            stall_timeout=stall_timeout if stall_timeout is not None and sut != "remote" else STALL_SECONDS,
            start_timeout=start_timeout if start_timeout is not None else START_SECONDS,
            step_delays=step_delays,
        ),
        accuracy_targets=str(accuracy_targets or (embedded.ROOT / chosen.demo_targets if demo else benchmark)),
        scoring_workers=scoring_workers,
        livecodebench=_livecodebench(livecodebench, chosen, Path(dataset)),
        skip_code=skip_code,
        command=list(command) if command else None,
        telemetry_interval=telemetry_interval,
    )


def _livecodebench(given: str | Path | None, chosen: Benchmark, dataset: Path) -> Path | None:
    """The LiveCodeBench problems: those given, else the bundled ones of the benchmark's bundled sample."""
    if given is not None:
        return Path(given)
    if chosen.demo_problems and dataset == embedded.ROOT / chosen.demo_dataset:
        return embedded.ROOT / chosen.demo_problems
    return None


def _check_sut_options(
    sut: str,
    stall_timeout: float | None,
    start_timeout: float | None,
    ray_address: str | None,
    devices: list[str] | None,
) -> None:
    if sut not in SUTS:
        raise HarnessError(f"{setting('sut')} {sut!r}: use one of {', '.join(SUTS)}.")
    for name, seconds in (
        (setting("stall_timeout"), stall_timeout),
        (setting("start_timeout"), start_timeout),
    ):
        if seconds is not None and not seconds > 0:
            raise HarnessError(f"{name} must be above 0, got {seconds}.")
    if ray_address is not None and sut != "ray":
        raise HarnessError(f"{setting('ray_address')} goes with {setting('sut')} ray.")
    if sut == "ray" and devices:
        raise HarnessError(
            f"{setting('devices')} maps this host's GPUs, and with {setting('sut')} ray the Ray cluster places "
            "replicas."
        )


def _check_benchmark(benchmark: str, scenario: str, mode: str, compliance: str | None) -> Benchmark:
    """A wrong benchmark, scenario or audit is an error now, before anything is loaded."""
    chosen = get_benchmark(benchmark)
    chosen.rules(scenario)
    if compliance is not None:
        chosen.compliance_test(compliance)
        if mode != "performance":
            raise HarnessError(
                f"{setting('compliance')} {compliance} sets its own mode: leave out {setting('mode')} {mode}."
            )
    return chosen


def _check_local_only(given: dict[str, bool]) -> None:
    """Options that configure local engines, refused for servers: they run the model themselves."""
    used = [name for name, set_ in given.items() if set_]
    if used:
        raise HarnessError(
            f"{', '.join(used)} configure local engines, not {setting('sut')} remote: the servers run the model "
            f"(set engine options in their own arguments, e.g. the ServingRuntime), and each {setting('endpoints')} "
            "is one replica."
        )


def _engine_config(
    model: str | Path | None,
    tokenizer: str | Path | None,
    engine: dict[str, Any] | None,
    engine_extra: dict[str, Any] | None,
) -> EngineConfig:
    """Without a model, the embedded tiny model with its engine defaults and a fixed KV cache."""
    demo = model is None
    fields = dict(engine or {})
    if demo:
        model = embedded.MODEL_DIR
        for key, value in embedded.ENGINE_DEFAULTS.items():
            fields.setdefault(key, value)
    unknown = set(fields) - {f.name for f in dataclasses.fields(EngineConfig)}
    if unknown:
        raise HarnessError(f"unknown engine settings {sorted(unknown)}; pass them as engine_extra.")
    extra = dict(engine_extra or {})
    if demo and "gpu_memory_utilization" not in fields:
        extra.setdefault("kv_cache_memory_bytes", embedded.KV_CACHE_BYTES)
    return EngineConfig(model=str(model), tokenizer=str(tokenizer) if tokenizer else None, extra=extra, **fields)


def _generation_config(benchmark: Mapping[str, Any], given: dict[str, Any] | None) -> GenerationConfig:
    """The benchmark's reference settings, with what the user gave over them."""
    try:
        config = GenerationConfig(**{**benchmark, **(given or {})})
    except TypeError as exc:
        raise HarnessError(f"unknown generation setting: {exc}") from None
    config.check()
    return config


def _target_qps(target_qps: float | str | None, scenario: str) -> float | None:
    """A number above 0, or None: none given, or `auto` (Offline), which calibrates the query instead."""
    if target_qps is None:
        return None
    if target_qps == AUTO:
        if scenario != "Offline":
            raise HarnessError(
                f"{setting('target_qps')} auto calibrates the Offline query only; give Server and Interactive a number."
            )
        return None
    try:
        qps = float(target_qps)
    except ValueError:
        raise HarnessError(f"{setting('target_qps')} {target_qps!r}: give a number, or auto (Offline).") from None
    if not qps > 0:
        raise HarnessError(f"{setting('target_qps')} must be above 0, got {qps}.")
    return qps


def _check_ranges(values: dict[str, tuple[float | None, int]]) -> None:
    """Each (value, lowest) pair: a value below its lowest is an error naming the option."""
    for name, (value, lowest) in values.items():
        if value is not None and value < lowest:
            raise HarnessError(f"{name} must be at least {lowest}, got {value}.")


def _check_step_delays(step_delays: dict[int, float], replicas: int) -> None:
    for slot, delay in step_delays.items():
        if not 0 <= slot < replicas or delay < 0:
            raise HarnessError(
                f"step delay {delay} for replica {slot}: needs a replica slot below {replicas} "
                "and a delay of 0 or more seconds."
            )


def _remote_config(sut: str, fields: dict[str, Any] | None, endpoints_file: str | Path | None) -> RemoteConfig | None:
    if sut != "remote":
        if fields or endpoints_file:
            raise HarnessError(f"{setting('endpoints')} and the other remote options need {setting('sut')} remote.")
        return None
    fields = dict(fields or {})
    endpoints = list(fields.pop("endpoints", None) or [])
    if endpoints_file:
        endpoints += read_endpoints_file(Path(endpoints_file))
    for name in ("token_file", "ca_bundle"):
        if fields.get(name) is not None:
            fields[name] = Path(fields[name])
    try:
        config = RemoteConfig(endpoints=endpoints, **fields)
    except TypeError as exc:
        raise HarnessError(f"unknown remote setting: {exc}") from None
    config.check()
    return config
