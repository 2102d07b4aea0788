"""The sampling loop and the hardware's samplers: NVML through recorded answers (no GPU here), psutil on this
process and its children. Each test takes at most about a second."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.hardware import (
    FIELD_POWER_AVERAGE,
    FIELD_TOTAL_ENERGY,
    NvmlError,
    NvmlFrame,
    NvmlNotSupported,
    NvmlSampler,
    NvmlUnavailable,
    ProcessSampler,
    Pynvml,
    RecordedNvml,
    gpu_devices_available,
)
from mlperf_llm_sut.telemetry.loop import SamplingLoop, read_jsonl, write_jsonl
from mlperf_llm_sut.telemetry.series import Reading

GIB = 2**30


class Counting:
    """A sampler that reads its tick count."""

    def __init__(self, name: str = "counting", warning: str | None = None) -> None:
        self.name = name
        self.times: list[float] = []
        self.closed = 0
        self._warning = warning

    def sample(self, now: float) -> list[Reading]:
        self.times.append(now)
        return [Reading(now, self.name, metrics.RUNNING, float(len(self.times)))]

    def warnings(self) -> list[str]:
        return [self._warning] if self._warning else []

    def close(self) -> None:
        self.closed += 1


class Raising(Counting):
    def sample(self, now: float) -> list[Reading]:
        super().sample(now)
        raise RuntimeError("scrape broke")


class Slow(Counting):
    def __init__(self, seconds: float) -> None:
        super().__init__("slow")
        self.seconds = seconds

    def sample(self, now: float) -> list[Reading]:
        time.sleep(self.seconds)
        return super().sample(now)


class Stuck(Counting):
    """Blocks in its second sample until `release` is set."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    def sample(self, now: float) -> list[Reading]:
        if self.times:
            self.release.wait(10)
        return super().sample(now)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# The loop.


def test_the_loop_ticks_on_its_interval_and_measures_its_cost():
    sampler = Counting()
    loop = SamplingLoop([sampler], 0.05)
    began = time.monotonic()
    loop.start()
    time.sleep(0.5)
    loop.stop()
    assert time.monotonic() - began < 1.0
    # 11 ticks in 0.5 s (the first at start); a loaded 2-core host may miss a few, never add any.
    assert 6 <= loop.ticks == len(sampler.times) <= 12
    gaps = [b - a for a, b in zip(sampler.times, sampler.times[1:], strict=False)]
    assert 0.03 < sorted(gaps)[len(gaps) // 2] < 0.08
    assert [reading.value for reading in loop.readings()] == [float(n) for n in range(1, loop.ticks + 1)]
    assert 0 < loop.cpu_seconds < 0.5
    assert sampler.closed == 1 and loop.warnings() == []


def test_a_sample_held_back_now_and_then_is_no_warning():
    """A busy harness holds the sampling thread back (it shares the GIL): one late sample in many says nothing."""
    late = Slow(0.08)
    counting = Counting()

    class OnceLate:
        name = "once-late"

        def __init__(self) -> None:
            self.calls = 0

        def sample(self, now: float) -> list[Reading]:
            self.calls += 1
            return late.sample(now) if self.calls == 1 else []

        def warnings(self) -> list[str]:
            return []

        def close(self) -> None:
            pass

    loop = SamplingLoop([OnceLate(), counting], 0.05)
    loop.start()
    time.sleep(0.7)
    loop.stop()
    assert loop.ticks >= 5 and loop.warnings() == []


def test_a_raising_or_slow_sampler_stops_neither_the_others_nor_the_loop():
    raising, slow, counting = Raising("raising"), Slow(0.12), Counting()
    loop = SamplingLoop([raising, slow, counting], 0.05)
    loop.start()
    time.sleep(0.6)
    loop.stop()
    # The stop can come while the slow one sleeps: the tick ends there, without asking the sampler after it.
    assert len(counting.times) >= 3 and len(raising.times) - len(counting.times) in (0, 1)
    assert all(reading.source != "raising" for reading in loop.readings())
    assert {reading.source for reading in loop.readings()} == {"slow", "counting"}
    warnings = loop.warnings()
    assert warnings == [
        f"slow: {len(slow.times)} of {loop.ticks} samples took longer than the 0.05 s interval (ticks skipped: "
        "raise --telemetry-interval)",
        f"raising: sampling raised {len(raising.times)} times, its readings of those ticks lost "
        "(first: RuntimeError: scrape broke)",
    ]
    # Ticks the slow sampler overran are skipped, not caught up in a burst.
    assert loop.ticks <= 6
    assert raising.closed == slow.closed == counting.closed == 1


def test_stop_is_bounded_with_a_stuck_sampler_and_closes_the_others():
    stuck, counting = Stuck(), Counting()
    loop = SamplingLoop([counting, stuck], 0.05)
    loop.start()
    time.sleep(0.15)
    began = time.monotonic()
    loop.stop(timeout=0.2)
    assert time.monotonic() - began < 0.5
    assert counting.closed == 1 and stuck.closed == 0
    assert "sampling: stuck did not return within 0.2 s of the stop; left behind" in loop.warnings()
    # Released, the loop's thread closes it and asks no sampler again.
    ticks = len(counting.times)
    stuck.release.set()
    deadline = time.monotonic() + 2
    while stuck.closed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck.closed == 1 and len(counting.times) == ticks and counting.closed == 1
    loop.stop()
    assert stuck.closed == 1


def test_warnings_are_every_samplers_once_and_stop_without_start_closes():
    one, two = Counting("one", warning="replica-0: no /metrics"), Counting("two", warning="replica-0: no /metrics")
    loop = SamplingLoop([one, two], 1.0)
    assert loop.warnings() == ["replica-0: no /metrics"]
    loop.stop()
    loop.stop()
    assert one.closed == two.closed == 1 and loop.ticks == 0 and loop.readings() == []


@pytest.mark.parametrize("interval", [0, -1, math.nan, math.inf])
def test_a_bad_interval_is_refused(interval):
    with pytest.raises(ValueError, match="interval must be a number of seconds > 0"):
        SamplingLoop([], interval)


def test_a_loop_starts_once():
    loop = SamplingLoop([], 1.0)
    loop.start()
    with pytest.raises(RuntimeError, match="once"):
        loop.start()
    loop.stop()


# NVML, through recorded answers.


def _frames(energy: bool = True) -> list[NvmlFrame]:
    return [
        NvmlFrame(0.0, 0, 1 * GIB, 100_000, 5_000_000 if energy else None),
        NvmlFrame(1.0, 50, 2 * GIB, 300_000, 5_200_000 if energy else None),
        NvmlFrame(3.0, 100, 2 * GIB, 500_000, 6_000_000 if energy else None),
    ]


def _by_metric(readings: list[Reading], source: str = "gpu:0") -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for reading in readings:
        if reading.source == source:
            values.setdefault(reading.metric, []).append(reading.value)
    return values


def test_nvml_readings_in_the_metrics_units():
    clock = Clock()
    nvml = RecordedNvml({0: _frames(), 1: _frames()}, clock=clock)
    sampler = NvmlSampler([1, 0], nvml=nvml)
    readings = []
    for at in (0.0, 1.0, 3.0):
        clock.now = 100.0 + at
        readings += sampler.sample(clock.now)
    assert {reading.source for reading in readings} == {"gpu:0", "gpu:1"}
    values = _by_metric(readings)
    assert values == {
        metrics.GPU_UTILIZATION: [0.0, 0.5, 1.0],
        metrics.GPU_MEMORY_USED: [1.0 * GIB, 2.0 * GIB, 2.0 * GIB],
        metrics.GPU_POWER: [100.0, 300.0, 500.0],
        # Joules since the sampler's first reading, from the counter's millijoules.
        metrics.GPU_ENERGY: [0.0, 200.0, 1000.0],
    }
    assert [reading.time for reading in readings if reading.source == "gpu:0"][::4] == [100.0, 101.0, 103.0]
    assert sampler.warnings() == []
    sampler.close()
    sampler.close()
    assert nvml.calls.count("init") == 1 and nvml.calls.count("shutdown") == 1
    assert sampler.sample(clock.now) == []


def test_nvml_energy_is_integrated_from_power_without_a_counter():
    clock = Clock()
    sampler = NvmlSampler([0], nvml=RecordedNvml({0: _frames(energy=False)}, clock=clock))
    energy = []
    for at in (0.0, 1.0, 3.0):
        clock.now = 100.0 + at
        energy += _by_metric(sampler.sample(clock.now))[metrics.GPU_ENERGY]
    # Trapezoids: (100 + 300) / 2 W for 1 s, then (300 + 500) / 2 W for 2 s.
    assert energy == [0.0, 200.0, 1000.0]
    assert len(sampler.warnings()) == 1
    assert sampler.warnings()[0].startswith("gpu:0: no total energy counter (before Volta)")


def test_nvml_missing_gives_one_warning_and_no_readings():
    nvml = RecordedNvml({0: _frames()}, clock=Clock(), available=False)
    sampler = NvmlSampler([0], nvml=nvml)
    assert sampler.sample(1.0) == [] and sampler.sample(2.0) == []
    assert sampler.warnings() == [
        "nvml: no GPU readings, NVML is not available here (nvmlInit: NVML Shared Library Not Found)"
    ]
    sampler.close()
    # Asked once, never shut down since it never started.
    assert nvml.calls == ["init"]
    assert gpu_devices_available(nvml) == []


def test_nvml_a_gpu_that_is_not_there_leaves_the_others():
    sampler = NvmlSampler([0, 7], nvml=RecordedNvml({0: _frames()}, clock=Clock()))
    assert {reading.source for reading in sampler.sample(100.0)} == {"gpu:0"}
    assert sampler.warnings() == [
        "gpu:7: no readings, NVML has no such GPU (nvmlDeviceGetHandleByIndex(7): Invalid Argument)"
    ]


def test_nvml_a_query_a_gpu_does_not_support_is_skipped_once():
    frame = NvmlFrame(0.0, utilization_percent=None, memory_used_bytes=GIB, power_milliwatts=None)
    sampler = NvmlSampler([0], nvml=RecordedNvml({0: [frame]}, clock=Clock()))
    for now in (1.0, 2.0):
        assert {reading.metric for reading in sampler.sample(now)} == {metrics.GPU_MEMORY_USED}
    assert sampler.warnings() == [
        "gpu:0: NVML does not report utilization on this GPU",
        "gpu:0: NVML does not report power on this GPU",
        "gpu:0: no total energy counter (before Volta): energy is integrated from the sampled power, which misses"
        " what happens between samples",
    ]


@pytest.mark.parametrize("devices", [[-1], ["0"], [True]])
def test_nvml_bad_device_indices_are_refused(devices):
    with pytest.raises(ValueError, match="GPU indices are integers >= 0"):
        NvmlSampler(devices, nvml=RecordedNvml({0: _frames()}, clock=Clock()))


def test_nvml_devices_available_and_a_recording_from_json(tmp_path):
    path = tmp_path / "gpus.json"
    frame = {"time": 0.0, "utilization_percent": 10, "memory_used_bytes": 5, "power_milliwatts": 70_000}
    path.write_text(json.dumps({"devices": {"0": [frame], "1": [frame]}}))
    clock = Clock()
    nvml = RecordedNvml.load(path, clock=clock)
    assert gpu_devices_available(nvml) == [0, 1]
    assert nvml.calls == ["init", "device_count", "shutdown"]
    readings = NvmlSampler([1], nvml=nvml).sample(clock.now)
    assert _by_metric(readings, "gpu:1")[metrics.GPU_POWER] == [70.0]
    with pytest.raises(ValueError, match="device 0 needs at least one frame"):
        RecordedNvml({0: []}, clock=clock)


def test_nvml_in_the_loop():
    nvml = RecordedNvml({0: _frames()}, clock=time.monotonic)
    loop = SamplingLoop([NvmlSampler([0], nvml=nvml)], 0.05)
    loop.start()
    time.sleep(0.2)
    loop.stop()
    assert {reading.metric for reading in loop.readings()} == {
        metrics.GPU_UTILIZATION,
        metrics.GPU_MEMORY_USED,
        metrics.GPU_POWER,
        metrics.GPU_ENERGY,
    }
    assert nvml.calls[0] == "init" and nvml.calls[-1] == "shutdown"


class _NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"code {value}")
        self.value = value


class _FakePynvml:
    """pynvml's surface that `Pynvml` touches, failing with a given NVML code."""

    NVMLError = _NVMLError

    def __init__(self, code: int) -> None:
        self.code = code

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        raise _NVMLError(self.code)


@pytest.mark.parametrize(
    ("code", "error"),
    [(1, NvmlUnavailable), (9, NvmlUnavailable), (12, NvmlUnavailable), (3, NvmlNotSupported), (15, NvmlError)],
)
def test_pynvml_errors_become_the_samplers(code, error, monkeypatch):
    api = Pynvml()
    monkeypatch.setattr(api, "_module", _FakePynvml(code))
    with pytest.raises(error) as raised:
        api.power_milliwatts(object())
    assert type(raised.value) is error


class _FieldsPynvml(_FakePynvml):
    """Answers `nvmlDeviceGetFieldValues` with pynvml's own structures: power as an unsigned int, energy as an
    unsigned long long, a third field refused as unknown."""

    def nvmlDeviceGetFieldValues(self, handle: object, fields: list[tuple[int, int]]) -> object:
        import pynvml

        answers = (pynvml.c_nvmlFieldValue_t * len(fields))()
        for answer, (field, scope) in zip(answers, fields, strict=True):
            answer.fieldId, answer.scopeId = field, scope
        answers[0].valueType, answers[0].value.uiVal = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, 312_250
        answers[1].valueType, answers[1].value.ullVal = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, 2**40 + 5
        answers[2].nvmlReturn = pynvml.NVML_ERROR_INVALID_ARGUMENT
        return answers


def test_pynvml_field_values_are_read_from_their_union_members(monkeypatch):
    api = Pynvml()
    monkeypatch.setattr(api, "_module", _FieldsPynvml(0))
    power, energy, unknown = api.field_values(object(), [FIELD_POWER_AVERAGE, FIELD_TOTAL_ENERGY, 999])
    assert (power, energy) == (312_250, 2**40 + 5)
    assert isinstance(unknown, NvmlNotSupported)


def test_the_real_binding_without_a_driver_reads_nothing():
    if gpu_devices_available():
        pytest.skip("this host has NVIDIA GPUs")
    sampler = NvmlSampler([0])
    assert sampler.sample(time.monotonic()) == []
    assert len(sampler.warnings()) == 1 and sampler.warnings()[0].startswith("nvml: no GPU readings")
    sampler.close()


# Processes.


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_this_process_cpu_and_memory():
    sampler = ProcessSampler({"harness": os.getpid()})
    first = sampler.sample(time.monotonic())
    assert [reading.metric for reading in first] == [metrics.RSS] and first[0].value > 10e6
    _burn(0.1)
    readings = {reading.metric: reading for reading in sampler.sample(time.monotonic())}
    assert set(readings) == {metrics.RSS, metrics.CPU_PERCENT}
    assert readings[metrics.CPU_PERCENT].source == "harness"
    assert 10 < readings[metrics.CPU_PERCENT].value < 250
    assert sampler.warnings() == []


def test_a_process_that_ended_gives_a_warning_not_an_error():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    try:
        sampler = ProcessSampler({"harness": os.getpid(), "worker": child.pid})
        assert {reading.source for reading in sampler.sample(time.monotonic())} == {"harness", "worker"}
        child.wait(5)
        for _ in range(2):
            assert {reading.source for reading in sampler.sample(time.monotonic())} == {"harness"}
        assert sampler.warnings() == [f"worker: process {child.pid} ended; no readings of it after that"]
    finally:
        child.kill()
        child.wait()
    gone = ProcessSampler({"gone": child.pid})
    assert gone.sample(time.monotonic()) == []
    assert gone.warnings() == [f"gone: no readings, process {child.pid} is not there (NoSuchProcess)"]


def test_children_count_with_their_parent_when_asked():
    # A child that burns CPU for 0.6 s (the engine core under its worker): counted in the figures of this
    # process only where asked.
    script = "import time\nend = time.thread_time() + 0.6\nwhile time.thread_time() < end: pass"
    both = ProcessSampler({"with": os.getpid()}, with_children={"with"}, children_every=0.0)
    alone = ProcessSampler({"alone": os.getpid()})
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(0.05)
        now = time.monotonic()
        both.sample(now)
        alone.sample(now)
        time.sleep(0.3)
        now = time.monotonic()
        with_children = {reading.metric: reading.value for reading in both.sample(now)}
        without = {reading.metric: reading.value for reading in alone.sample(now)}
    finally:
        child.kill()
        child.wait()
    assert with_children[metrics.CPU_PERCENT] > without[metrics.CPU_PERCENT] + 30
    assert with_children[metrics.RSS] > without[metrics.RSS]


def test_process_sampler_bad_input_and_no_psutil(monkeypatch):
    with pytest.raises(ValueError, match=r"with_children names \['worker'\]"):
        ProcessSampler({"harness": os.getpid()}, with_children={"worker"})
    with pytest.raises(ValueError, match="'harness' needs a pid"):
        ProcessSampler({"harness": 0})
    monkeypatch.setattr("mlperf_llm_sut.telemetry.hardware._import_psutil", lambda: None)
    sampler = ProcessSampler({"harness": os.getpid()})
    assert sampler.sample(time.monotonic()) == []
    assert sampler.warnings() == ["processes: no CPU or memory readings, psutil is not installed"]


# The readings' file.


def test_write_jsonl_round_trip(tmp_path: Path):
    readings = [
        Reading(1.5, "gpu:0", metrics.GPU_POWER, 312.25),
        Reading(1.5, "replica-0", metrics.RUNNING, 3.0),
        Reading(2.5, "harness", metrics.CPU_PERCENT, math.nan),
    ]
    path = tmp_path / "telemetry.jsonl"
    write_jsonl(readings, path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"time": 1.5, "source": "gpu:0", "metric": "gpu_power_watts", "value": 312.25}
    assert json.loads(lines[2])["value"] is None
    back = read_jsonl(path)
    assert back[:2] == readings[:2] and math.isnan(back[2].value) and back[2].source == "harness"
    path.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(ValueError, match=r"telemetry.jsonl:2: not a reading"):
        read_jsonl(path)


def test_the_gpu_check_says_there_is_no_gpu_here(tmp_path):
    if gpu_devices_available():
        pytest.skip("this host has NVIDIA GPUs: the check would run in full")
    script = Path(__file__).resolve().parent.parent / "scripts" / "check_nvml.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OUT": str(tmp_path)},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("check_nvml: error: no NVML here, so no GPU to check (")
    assert len(done.stderr.splitlines()) == 1 and not list(tmp_path.iterdir())


def test_a_real_h200_recording_read_through_the_sampler_gives_its_energy_and_power():
    """NVML's answers as one H200 gave them (tests/recordings/h200_nvml.json, from scripts/check_nvml.py): replayed
    through `NvmlSampler` at the recorded times, then summed up over the busy phase as a run's test window is."""
    from mlperf_llm_sut.telemetry.summary import Window, summarize

    path = Path(__file__).parent / "recordings" / "h200_nvml.json"
    recording = json.loads(path.read_text())
    series = {}
    for batched in (True, False):
        clock = Clock()
        clock.now = 0.0
        nvml = RecordedNvml.load(path, clock=clock)
        sampler = NvmlSampler([0], nvml=nvml, batched=batched)
        series[batched] = []
        for frame in recording["devices"]["0"]:
            clock.now = frame["time"]
            series[batched] += sampler.sample(frame["time"])
        assert sampler.warnings() == []
        # After init and the handle: three calls a tick with power and energy in one field-values call, four without.
        ticks = len(recording["devices"]["0"])
        assert len(nvml.calls) == 2 + (3 if batched else 4) * ticks
    readings = series[True]
    assert readings == series[False]
    busy = Window(*recording["phases"]["busy"])
    gpu = summarize(readings, busy, interval=0.1, output_tokens=None).gpus["gpu:0"]
    measured = recording["check_nvml"]["busy"]
    # The energy counter across the window is what the check measured over the same phase.
    assert gpu.energy_joules == pytest.approx(measured["energy_counter_joules"], rel=0.03)
    assert gpu.power_mean_watts == pytest.approx(measured["power_watts_mean"], rel=0.03)
    assert gpu.utilization_mean is not None and gpu.utilization_mean > 0.9
    idle = summarize(readings, Window(*recording["phases"]["idle"]), interval=0.1, output_tokens=None).gpus["gpu:0"]
    assert idle.power_mean_watts is not None and idle.power_mean_watts < gpu.power_mean_watts / 3


# NVML's calls per tick: power and energy in one field-values call, what it does not give by its own call.


def _calls_per_tick(nvml: RecordedNvml, sampler: NvmlSampler, clock: Clock) -> list[str]:
    sampler.sample(clock.now)  # opens NVML, and settles which figure comes from which call
    before = len(nvml.calls)
    clock.now += 1.0
    sampler.sample(clock.now)
    return nvml.calls[before:]


def test_nvml_reads_power_and_energy_in_one_call_per_gpu():
    clock = Clock()
    nvml = RecordedNvml({0: _frames(), 1: _frames()}, clock=clock)
    calls = _calls_per_tick(nvml, NvmlSampler([0, 1], nvml=nvml), clock)
    assert calls == ["utilization_percent", "memory_used_bytes", "field_values"] * 2


def test_without_field_values_each_figure_is_read_by_its_own_call_and_reads_the_same():
    """A driver without `nvmlDeviceGetFieldValues`, and `batched=False`: the four calls of each tick, the same
    readings."""
    readings = {}
    for name, options, batched in (
        ("batched", {}, True),
        ("old driver", {"field_values": False}, True),
        ("single", {}, False),
    ):
        clock = Clock()
        nvml = RecordedNvml({0: _frames()}, clock=clock, **options)
        sampler = NvmlSampler([0], nvml=nvml, batched=batched)
        readings[name] = []
        for at in (0.0, 1.0, 3.0):
            clock.now = 100.0 + at
            readings[name] += sampler.sample(clock.now)
        assert sampler.warnings() == []
        if name != "batched":
            assert _calls_per_tick(nvml, sampler, clock) == [
                "utilization_percent",
                "memory_used_bytes",
                "power_milliwatts",
                "total_energy_millijoules",
            ]
    assert readings["batched"] == readings["old driver"] == readings["single"]
    assert len(readings["batched"]) == 12


def test_a_gpu_without_averaged_power_gives_its_instant_power_in_the_same_call():
    """Before Ampere (and on a GA100) `nvmlDeviceGetPowerUsage` is the instant power: so is the field read."""
    clock = Clock()
    nvml = RecordedNvml({0: _frames()}, clock=clock, averaged_power=False)
    sampler = NvmlSampler([0], nvml=nvml)
    first = _by_metric(sampler.sample(clock.now))
    assert first[metrics.GPU_POWER] == [100.0]  # the refused field's own call, once
    assert nvml.calls.count("power_milliwatts") == 1
    assert _calls_per_tick(nvml, sampler, clock) == ["utilization_percent", "memory_used_bytes", "field_values"]
    assert sampler.warnings() == []


def test_a_failing_field_call_skips_power_and_energy_of_that_tick_only():
    class Flaky(RecordedNvml):
        failures = 1

        def field_values(self, handle: object, fields: Sequence[int]) -> list[int | NvmlError]:
            if self.failures:
                self.failures -= 1
                raise NvmlError("nvmlDeviceGetFieldValues: GPU is lost")
            return super().field_values(handle, fields)

    clock = Clock()
    sampler = NvmlSampler([0], nvml=Flaky({0: _frames()}, clock=clock))
    assert set(_by_metric(sampler.sample(clock.now))) == {metrics.GPU_UTILIZATION, metrics.GPU_MEMORY_USED}
    clock.now += 1.0
    assert metrics.GPU_ENERGY in _by_metric(sampler.sample(clock.now))
    assert sampler.warnings() == [
        "gpu:0: NVML failed to read power and energy, readings skipped (nvmlDeviceGetFieldValues: GPU is lost)"
    ]


def test_cuda_visible_devices_are_found_in_nvml_by_ordinal_or_uuid():
    uuids = {
        0: "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
        1: "GPU-0e31e0c2-4a4a-7e3d-9f51-5f3bd5b3a0aa",
        2: "GPU-0e31aaaa-0000-0000-0000-000000000000",
    }
    nvml = RecordedNvml({index: _frames() for index in uuids}, clock=Clock(), uuids=uuids)
    # A full UUID, a unique start of one (as CUDA takes it), an ordinal, and the same GPU twice.
    sampler = NvmlSampler.visible(["GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", "GPU-0e31e0", "2", " 0"], nvml=nvml)
    assert {reading.source for reading in sampler.sample(100.0)} == {"gpu:0", "gpu:1", "gpu:2"}
    assert sampler.warnings() == []
    wrong = NvmlSampler.visible(["GPU-0e31", "GPU-ffff", "MIG-4f2e", "cpu", ""], nvml=nvml)
    assert wrong.sample(100.0) == []
    assert wrong.warnings() == [
        "GPU-0e31: no readings, more than one GPU has that UUID",
        "GPU-ffff: no readings, no GPU has that UUID",
        "MIG-4f2e: no readings of a MIG instance (NVML reports power and energy per GPU)",
        "cpu: no readings, not a GPU ordinal or UUID",
    ]
