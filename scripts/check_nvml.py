"""Check the NVML sampler on a machine with NVIDIA GPUs: what it reads while GPU 0 idles, multiplies bf16
matrices, and idles again, and what the sampling costs.

Self-contained: needs `nvidia-ml-py` (pynvml) and, for the load, torch with CUDA; psutil and rich are used
when present. Run from the repository's root (the project need not be installed):

    python3 scripts/check_nvml.py

It prints a table per phase (mean and peak power, utilization, memory), the energy counter's delta over the busy
phase against the integral of the sampled power, the loop's CPU cost per tick (and per tick per GPU) at 0.1 s
and 1 s for the sampler's two ways of reading NVML (power and energy in one `nvmlDeviceGetFieldValues` call, and
the older one call per figure), and each NVML query's own cost; it writes all of it as JSON to
`$OUT/check_nvml.json` (`./check_nvml.json` without OUT). Exit status: 0 all went well, 1 a check failed or a step
broke (the JSON says which), 2 no GPU or no NVML here. About 50 s in all.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import Any

# The repository's root, for `telemetry`: this runs where the project is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.hardware import (
    FIELD_POWER_AVERAGE,
    FIELD_TOTAL_ENERGY,
    NvmlError,
    NvmlSampler,
    ProcessSampler,
    Pynvml,
)
from mlperf_llm_sut.telemetry.loop import SamplingLoop
from mlperf_llm_sut.telemetry.series import Reading, Sampler

PHASES = (("idle", 3.0), ("busy", 8.0), ("idle after", 3.0))
LOAD_INTERVAL = 0.1
COST_RUNS = (
    ("nvml-single", 0.1, 3.0),
    ("nvml", 0.1, 3.0),
    ("nvml-single", 1.0, 4.0),
    ("nvml", 1.0, 4.0),
    ("processes", 0.1, 2.0),
    ("nvml+processes", 1.0, 4.0),
)
"""(samplers, interval, seconds) of the loops that measure the sampling's cost: NVML over every GPU (`nvml`: the
sampler as runs use it, power and energy in one field-values call; `nvml-single`: one call per figure, as before
it), psutil over this process and its children."""
CALL_REPEATS = 50
"""Times each NVML query is made to time it alone."""
MATRIX = 8192
"""bf16 matrices of 8192 x 8192: one product is 1.1 TFLOP, about 1.5 ms on an H100 or H200."""
BATCH = 20
"""Products queued between synchronizations: the GPU never waits for Python, and a phase ends on time."""
DEADLINE = 85
"""Seconds after which the script gives up (SIGALRM) and writes what it has."""


class Deadline(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Deadline(f"gave up after {DEADLINE} s")


def _error(line: str) -> int:
    print(f"check_nvml: error: {line}", file=sys.stderr)
    return 2


def _gpu_info(count: int) -> list[dict[str, Any]]:
    """Each GPU's name, UUID and whether it has a total energy counter; best effort (pynvml directly)."""
    try:
        import pynvml
    except ImportError:
        return []
    info = []
    for index in range(count):
        entry: dict[str, Any] = {"index": index}
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            entry["name"] = _text(pynvml.nvmlDeviceGetName(handle))
            entry["uuid"] = _text(pynvml.nvmlDeviceGetUUID(handle))
            entry["memory_total_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            entry["power_limit_watts"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        except Exception as error:
            entry["info_error"] = f"{type(error).__name__}: {error}"
        info.append(entry)
    return info


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _driver() -> str | None:
    try:
        import pynvml

        return _text(pynvml.nvmlSystemGetDriverVersion())
    except Exception:
        return None


def _samplers(kinds: str, gpus: list[int]) -> list[Sampler] | None:
    """Fresh samplers for one cost run (None: psutil is not installed, and the run needs it)."""
    samplers: list[Sampler] = []
    names = kinds.split("+")
    if "nvml" in names or "nvml-single" in names:
        samplers.append(NvmlSampler(gpus, batched="nvml" in names))
    if "processes" in names:
        process = _process_sampler()
        if process is None:
            return None
        samplers.append(process)
    return samplers


def _call_costs(api: Pynvml, gpus: list[int]) -> dict[str, dict[str, float]]:
    """Each NVML query's cost alone on GPU 0: microseconds of this thread's CPU and of wall time, per call."""
    handle = api.handle(gpus[0])
    queries: dict[str, Callable[[object], object]] = {
        "utilization": api.utilization_percent,
        "memory": api.memory_used_bytes,
        "power": api.power_milliwatts,
        "total_energy": api.total_energy_millijoules,
        "field_values(power, energy)": lambda device: api.field_values(
            device, [FIELD_POWER_AVERAGE, FIELD_TOTAL_ENERGY]
        ),
    }
    costs = {}
    for name, query in queries.items():
        try:
            cpu, wall = time.thread_time(), time.perf_counter()
            for _ in range(CALL_REPEATS):
                query(handle)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        except NvmlError:
            continue
        costs[name] = {"cpu_us": 1e6 * cpu / CALL_REPEATS, "wall_us": 1e6 * wall / CALL_REPEATS}
    return costs


def _process_sampler() -> ProcessSampler | None:
    """This process and its children, where psutil is installed."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    return ProcessSampler({"check_nvml": os.getpid()}, with_children={"check_nvml"})


class Load:
    """bf16 matrix products on one CUDA device, on a thread, while `busy` is set."""

    def __init__(self, torch: Any, device: int) -> None:
        self.torch = torch
        self.device = torch.device("cuda", device)
        generator = torch.Generator(device=self.device).manual_seed(0)
        shape = (MATRIX, MATRIX)
        self.a = torch.randn(shape, device=self.device, dtype=torch.bfloat16, generator=generator)
        self.b = torch.randn(shape, device=self.device, dtype=torch.bfloat16, generator=generator)
        self.c = torch.empty(shape, device=self.device, dtype=torch.bfloat16)
        self.products = 0
        self.error: str | None = None

    def warm_up(self) -> None:
        for _ in range(3):
            self.torch.matmul(self.a, self.b, out=self.c)
        self.torch.cuda.synchronize(self.device)

    def run_until(self, end: float) -> float:
        """Products until `end` (monotonic); the busy seconds, from the first launch to the last completion."""
        started = time.monotonic()
        while time.monotonic() < end:
            for _ in range(BATCH):
                self.torch.matmul(self.a, self.b, out=self.c)
            self.products += BATCH
            self.torch.cuda.synchronize(self.device)
        return time.monotonic() - started


def _nvml_index_of(torch: Any, cuda_device: int, info: Sequence[dict[str, Any]]) -> int:
    """NVML's index of CUDA's device (they differ under CUDA_VISIBLE_DEVICES or CUDA's fastest-first order)."""
    try:
        uuid = str(torch.cuda.get_device_properties(cuda_device).uuid)
        for entry in info:
            if str(entry.get("uuid", "")).removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                return int(entry["index"])
    except Exception:
        pass
    return cuda_device


def _of(readings: Sequence[Reading], source: str, metric: str, start: float, end: float) -> list[Reading]:
    return [r for r in readings if r.source == source and r.metric == metric and start <= r.time <= end]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _integral(points: Sequence[Reading]) -> float | None:
    """Trapezoids under sampled power (W) over their times: joules."""
    if len(points) < 2:
        return None
    return sum((b.time - a.time) * (a.value + b.value) / 2.0 for a, b in pairwise(points))


def _phase_figures(readings: Sequence[Reading], source: str, start: float, end: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"seconds": end - start}
    for key, metric in (
        ("power_watts", metrics.GPU_POWER),
        ("utilization", metrics.GPU_UTILIZATION),
        ("memory_used_bytes", metrics.GPU_MEMORY_USED),
    ):
        values = [r.value for r in _of(readings, source, metric, start, end)]
        figures[f"{key}_mean"] = _mean(values)
        figures[f"{key}_peak"] = max(values, default=None)
        figures[f"{key}_samples"] = len(values)
    energy = _of(readings, source, metrics.GPU_ENERGY, start, end)
    power = _of(readings, source, metrics.GPU_POWER, start, end)
    counter = energy[-1].value - energy[0].value if len(energy) >= 2 else None
    integral = _integral(power)
    figures["energy_counter_joules"] = counter
    figures["energy_integral_joules"] = integral
    figures["energy_integral_vs_counter_percent"] = (
        100.0 * (integral - counter) / counter if counter and integral is not None else None
    )
    return figures


def _cost(kinds: str, samplers: list[Sampler], interval: float, seconds: float, gpus: int) -> dict[str, Any]:
    """The loop's CPU per tick, its first tick (opening NVML) taken apart: that is paid once per run."""
    opened = time.thread_time()
    for sampler in samplers:
        sampler.sample(time.monotonic())
    first_tick = time.thread_time() - opened
    loop = SamplingLoop(samplers, interval)
    loop.start()
    time.sleep(seconds)
    loop.stop(timeout=5.0)
    per_tick = loop.cpu_seconds / loop.ticks if loop.ticks else None
    per_gpu = per_tick / gpus if per_tick is not None and "nvml" in kinds and "processes" not in kinds else None
    return {
        "kinds": kinds,
        "interval": interval,
        "seconds": seconds,
        "gpus": gpus,
        "samplers": [sampler.name for sampler in samplers],
        "ticks": loop.ticks,
        "readings": len(loop.readings()),
        "cpu_seconds": loop.cpu_seconds,
        "cpu_ms_per_tick": None if per_tick is None else 1000.0 * per_tick,
        "cpu_ms_per_tick_per_gpu": None if per_gpu is None else 1000.0 * per_gpu,
        "core_percent": None if per_tick is None else 100.0 * per_tick / interval,
        "first_tick_cpu_ms": 1000.0 * first_tick,
        "warnings": loop.warnings(),
    }


def _fmt(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
        print(f"\n{title}")
        for line in (headers, *rows):
            print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=False)))
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=140).print(table)


def _report(result: dict[str, Any]) -> None:
    print(f"driver {result.get('driver')}, GPUs: {[gpu.get('name') for gpu in result.get('gpus', [])]}")
    load = result.get("load") or {}
    if load.get("phases"):
        rows = []
        for name, figures in load["phases"].items():
            rows.append(
                [
                    name,
                    _fmt(figures["seconds"]),
                    _fmt(figures["power_watts_mean"]),
                    _fmt(figures["power_watts_peak"]),
                    _fmt(figures["utilization_mean"], 100.0),
                    _fmt(figures["utilization_peak"], 100.0),
                    _fmt(figures["memory_used_bytes_peak"], 2.0**-30, 2),
                    _fmt(figures["energy_counter_joules"]),
                    _fmt(figures["energy_integral_joules"]),
                    _fmt(figures["energy_integral_vs_counter_percent"], 1.0, 2),
                    str(figures["power_watts_samples"]),
                ]
            )
        _table(
            f"gpu:{load.get('nvml_index')} under bf16 {MATRIX}^3 products, sampled every {LOAD_INTERVAL} s "
            f"({load.get('tflops') and round(load['tflops'])} TFLOP/s while busy)",
            [
                "phase",
                "s",
                "W mean",
                "W peak",
                "util % mean",
                "util % peak",
                "mem GiB peak",
                "J counter",
                "J power integral",
                "integral vs counter %",
                "samples",
            ],
            rows,
        )
    if result.get("cost"):
        _table(
            "sampling cost (the loop thread's CPU; nvml: power and energy in one field-values call, nvml-single: one "
            "call per figure)",
            ["interval s", "samplers", "ticks", "ms CPU / tick", "ms CPU / tick / GPU", "% of a core", "first tick ms"],
            [
                [
                    _fmt(run["interval"], 1.0, 1),
                    run["kinds"],
                    str(run["ticks"]),
                    _fmt(run["cpu_ms_per_tick"], 1.0, 3),
                    _fmt(run["cpu_ms_per_tick_per_gpu"], 1.0, 3),
                    _fmt(run["core_percent"], 1.0, 3),
                    _fmt(run["first_tick_cpu_ms"], 1.0, 1),
                ]
                for run in result["cost"]
            ],
        )
    for interval, paths in result.get("nvml_per_gpu", {}).items():
        print(
            f"NVML CPU per tick per GPU at {interval} s: one call per figure {_fmt(paths.get('nvml-single'), 1.0, 3)}"
            f" ms, power and energy in one call {_fmt(paths.get('nvml'), 1.0, 3)} ms"
        )
    if result.get("nvml_call_costs"):
        _table(
            f"one NVML query on gpu:0 (mean of {CALL_REPEATS})",
            ["query", "us CPU", "us wall"],
            [[name, _fmt(cost["cpu_us"]), _fmt(cost["wall_us"])] for name, cost in result["nvml_call_costs"].items()],
        )
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    for check in result.get("checks", []):
        print(f"{'ok  ' if check['ok'] else 'FAIL'} {check['what']}")
    if result.get("error"):
        print(f"error: {result['error']}")


def _load_phases(result: dict[str, Any], gpus: list[int], info: list[dict[str, Any]]) -> None:
    try:
        import torch
    except ImportError:
        result["warnings"].append("torch is not installed: no load phases")
        return
    if not torch.cuda.is_available():
        result["warnings"].append("torch sees no CUDA device: no load phases")
        return
    nvml_index = _nvml_index_of(torch, 0, info)
    source = f"gpu:{nvml_index}"
    load_info: dict[str, Any] = {"cuda_device": 0, "nvml_index": nvml_index, "torch": torch.__version__}
    result["load"] = load_info
    sampler = NvmlSampler(gpus)
    loop = SamplingLoop([sampler], LOAD_INTERVAL)
    loop.start()
    try:
        load = Load(torch, 0)
        load.warm_up()
        marks: dict[str, tuple[float, float]] = {}
        for name, seconds in PHASES:
            start = time.monotonic()
            if name == "busy":
                busy = load.run_until(start + seconds)
                load_info["busy_seconds"] = busy
                load_info["products"] = load.products
                load_info["tflops"] = load.products * 2 * MATRIX**3 / busy / 1e12
            else:
                time.sleep(seconds)
            marks[name] = (start, time.monotonic())
        del load
        torch.cuda.empty_cache()
    finally:
        loop.stop(timeout=5.0)
    readings = loop.readings()
    t0 = marks[PHASES[0][0]][0]
    load_info["phases"] = {name: _phase_figures(readings, source, *mark) for name, mark in marks.items()}
    load_info["whole"] = _phase_figures(readings, source, t0, marks[PHASES[-1][0]][1])
    load_info["loop"] = {
        "ticks": loop.ticks,
        "cpu_seconds": loop.cpu_seconds,
        "cpu_ms_per_tick": 1000.0 * loop.cpu_seconds / loop.ticks if loop.ticks else None,
    }
    # The series itself, on the first phase's clock: a recording of a real GPU for later tests and plots.
    load_info["series"] = [[round(r.time - t0, 4), r.source, r.metric, r.value] for r in readings]
    result["warnings"].extend(loop.warnings())

    phases = load_info["phases"]
    idle, busy = phases["idle"], phases["busy"]
    for metric in (metrics.GPU_UTILIZATION, metrics.GPU_MEMORY_USED, metrics.GPU_POWER, metrics.GPU_ENERGY):
        count = len(_of(readings, source, metric, t0, math.inf))
        _check(result, count >= 10, f"{source}: {count} readings of {metric} (at least 10)")
    _check(
        result,
        (busy["utilization_mean"] or 0.0) >= 0.5,
        f"{source}: busy utilization {_fmt(busy['utilization_mean'], 100.0)} % (at least 50)",
    )
    _check(
        result,
        (busy["power_watts_mean"] or 0.0) > (idle["power_watts_mean"] or math.inf),
        f"{source}: busy power {_fmt(busy['power_watts_mean'])} W above idle {_fmt(idle['power_watts_mean'])} W",
    )
    _check(
        result,
        (busy["energy_counter_joules"] or 0.0) > 0.0,
        f"{source}: energy over the busy phase {_fmt(busy['energy_counter_joules'])} J (> 0)",
    )


def _check(result: dict[str, Any], ok: bool, what: str) -> None:
    result["checks"].append({"ok": bool(ok), "what": what})


def main() -> int:
    out_dir = Path(os.environ.get("OUT") or ".")
    out_file = out_dir / "check_nvml.json"
    api = Pynvml()
    try:
        api.init()
        count = api.device_count()
    except NvmlError as error:
        return _error(f"no NVML here, so no GPU to check ({error})")
    if count == 0:
        api.shutdown()
        return _error("NVML sees no GPU")
    gpus = list(range(count))
    result: dict[str, Any] = {
        "driver": _driver(),
        "gpus": _gpu_info(count),
        "python": sys.version.split()[0],
        "warnings": [],
        "checks": [],
    }
    info = result["gpus"]
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(DEADLINE)
    began = time.monotonic()
    try:
        _load_phases(result, gpus, info)
        if _process_sampler() is None:
            result["warnings"].append("psutil is not installed: the cost runs sample the GPUs alone")
        result["nvml_call_costs"] = _call_costs(api, gpus)
        result["cost"] = []
        for kinds, interval, seconds in COST_RUNS:
            samplers = _samplers(kinds, gpus)
            if samplers is not None:
                result["cost"].append(_cost(kinds, samplers, interval, seconds, len(gpus)))
        per_gpu: dict[str, dict[str, float]] = {}
        for run in result["cost"]:
            result["warnings"].extend(run["warnings"])
            if run["cpu_ms_per_tick_per_gpu"] is not None:
                per_gpu.setdefault(f"{run['interval']:g}", {})[run["kinds"]] = run["cpu_ms_per_tick_per_gpu"]
        result["nvml_per_gpu"] = per_gpu
        default = next(run for run in result["cost"] if run["interval"] == 1.0 and run["kinds"] == "nvml")
        _check(
            result,
            default["core_percent"] is not None and default["core_percent"] < 1.0,
            f"sampling at {default['interval']:g} s takes {_fmt(default['core_percent'], 1.0, 3)} % of a core (< 1)",
        )
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
    finally:
        signal.alarm(0)
        api.shutdown()
    result["seconds"] = time.monotonic() - began
    result["warnings"] = list(dict.fromkeys(result["warnings"]))
    result["threads_left"] = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    _report(result)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {out_file}")
    except OSError as error:
        print(f"check_nvml: could not write {out_file}: {error}", file=sys.stderr)
        return 1
    ok = "error" not in result and all(check["ok"] for check in result["checks"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
