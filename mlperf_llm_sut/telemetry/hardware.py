"""The hardware's samplers: each GPU's load, memory, power and energy through NVML, and each process's CPU and
memory through psutil.

Both bindings are optional at run time (imported when a sampler first needs them): a CPU host without NVIDIA's
driver, or a machine without psutil, gets no readings and one warning line, never an exception. This module
imports nothing of the project beyond `telemetry`, so `scripts/check_nvml.py` can use it on a GPU machine where
the project is not installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol

from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.series import Reading


class NvmlError(Exception):
    """An NVML call failed (a lost GPU, a timeout): the reading is skipped, the sampler carries on."""


class NvmlUnavailable(NvmlError):
    """No NVML here: no binding, no library, no driver, or a driver that does not match its library."""


class NvmlNotSupported(NvmlError):
    """This GPU does not answer this query (a total energy counter before Volta, power on some boards)."""


class NvmlApi(Protocol):
    """The NVML calls the sampler makes, in NVML's own units; each raises one of the `NvmlError`s above."""

    def init(self) -> None: ...

    def shutdown(self) -> None: ...

    def device_count(self) -> int: ...

    def handle(self, index: int) -> object:
        """The device at NVML's `index` (PCI bus order, whatever `CUDA_VISIBLE_DEVICES` says)."""
        ...

    def utilization_percent(self, handle: object) -> int:
        """`nvmlDeviceGetUtilizationRates().gpu`: percent of the last sample period in which a kernel ran."""
        ...

    def memory_used_bytes(self, handle: object) -> int:
        """`nvmlDeviceGetMemoryInfo().used`."""
        ...

    def power_milliwatts(self, handle: object) -> int:
        """`nvmlDeviceGetPowerUsage()`: instant power before Ampere, averaged over the last second after."""
        ...

    def total_energy_millijoules(self, handle: object) -> int:
        """`nvmlDeviceGetTotalEnergyConsumption()`: since the driver was loaded (Volta and later)."""
        ...

    def field_values(self, handle: object, fields: Sequence[int]) -> list[int | NvmlError]:
        """`nvmlDeviceGetFieldValues()`: several figures in one call, each field's value (an integer in NVML's
        units) or the error NVML gave for that field alone; raises when the call as a whole fails
        (`NvmlNotSupported`: a driver without it)."""
        ...

    def uuid(self, handle: object) -> str:
        """`nvmlDeviceGetUUID()`: `GPU-` and 32 hex digits in dashed groups, as `CUDA_VISIBLE_DEVICES` may name it."""
        ...


FIELD_TOTAL_ENERGY = 83
"""NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (nvml.h): millijoules since the driver was loaded, as
`nvmlDeviceGetTotalEnergyConsumption`."""
FIELD_POWER_AVERAGE = 185
"""NVML_FI_DEV_POWER_AVERAGE: milliwatts averaged over the last second, what `nvmlDeviceGetPowerUsage` returns on
Ampere (except GA100) and later; not supported before."""
FIELD_POWER_INSTANT = 186
"""NVML_FI_DEV_POWER_INSTANT: milliwatts now, what `nvmlDeviceGetPowerUsage` returns on GA100 and earlier."""


class Pynvml:
    """`NvmlApi` over `pynvml`, the module of NVIDIA's `nvidia-ml-py` distribution."""

    # NVML's return codes (nvml.h) that mean there is no NVML to ask, rather than that one query failed.
    _UNAVAILABLE: ClassVar[frozenset[int]] = frozenset(
        {
            1,  # NVML_ERROR_UNINITIALIZED
            9,  # NVML_ERROR_DRIVER_NOT_LOADED
            12,  # NVML_ERROR_LIBRARY_NOT_FOUND
            18,  # NVML_ERROR_LIB_RM_VERSION_MISMATCH: the driver was upgraded under a running kernel module
        }
    )
    _NOT_SUPPORTED: ClassVar[frozenset[int]] = frozenset(
        {
            3,  # NVML_ERROR_NOT_SUPPORTED
            13,  # NVML_ERROR_FUNCTION_NOT_FOUND: a library older than the binding, without that query
        }
    )
    _FIELD_UNKNOWN: ClassVar[int] = 2
    """NVML_ERROR_INVALID_ARGUMENT, for one field of `nvmlDeviceGetFieldValues`: a driver older than that field."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None

    @property
    def _nvml(self) -> ModuleType:
        if self._module is None:
            try:
                # Imported by name: pynvml has no type information, and a host without it must still import this.
                self._module = importlib.import_module("pynvml")
            except ImportError as error:
                raise NvmlUnavailable(f"pynvml is not installed (pip install nvidia-ml-py): {error}") from error
        return self._module

    def _call(self, name: str, *args: object) -> Any:
        nvml = self._nvml
        try:
            return getattr(nvml, name)(*args)
        except nvml.NVMLError as error:
            raise self._error(name, getattr(error, "value", None), str(error)) from error
        except OSError as error:
            # ctypes' own failure to load libnvidia-ml.so, on bindings that do not wrap it in an NVMLError.
            raise NvmlUnavailable(f"{name}: {error}") from error

    def init(self) -> None:
        self._call("nvmlInit")

    def shutdown(self) -> None:
        self._call("nvmlShutdown")

    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    def handle(self, index: int) -> object:
        handle: object = self._call("nvmlDeviceGetHandleByIndex", index)
        return handle

    def utilization_percent(self, handle: object) -> int:
        return int(self._call("nvmlDeviceGetUtilizationRates", handle).gpu)

    def memory_used_bytes(self, handle: object) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo", handle).used)

    def power_milliwatts(self, handle: object) -> int:
        return int(self._call("nvmlDeviceGetPowerUsage", handle))

    def total_energy_millijoules(self, handle: object) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", handle))

    def field_values(self, handle: object, fields: Sequence[int]) -> list[int | NvmlError]:
        # Scope 0: the GPU alone (power fields also have a module scope, GPU and Grace CPU together).
        answers = self._call("nvmlDeviceGetFieldValues", handle, [(field, 0) for field in fields])
        return [self._field(answer) for answer in answers]

    def uuid(self, handle: object) -> str:
        uuid = self._call("nvmlDeviceGetUUID", handle)
        return uuid.decode() if isinstance(uuid, bytes) else str(uuid)

    def _error(self, name: str, code: object, text: str) -> NvmlError:
        if code in self._UNAVAILABLE:
            return NvmlUnavailable(f"{name}: {text}")
        if code in self._NOT_SUPPORTED:
            return NvmlNotSupported(f"{name}: {text}")
        return NvmlError(f"{name}: {text}")

    def _field(self, answer: Any) -> int | NvmlError:
        """One `c_nvmlFieldValue_t`: its value, in the member of the union its `valueType` names."""
        name = f"nvmlDeviceGetFieldValues(field {answer.fieldId})"
        if answer.nvmlReturn == self._FIELD_UNKNOWN:
            return NvmlNotSupported(f"{name}: not a field this driver knows")
        if answer.nvmlReturn != 0:
            return self._error(name, answer.nvmlReturn, f"NVML error {answer.nvmlReturn}")
        member = _VALUE_MEMBERS.get(answer.valueType)
        if member is None:
            return NvmlError(f"{name}: a value of unknown type {answer.valueType}")
        return int(getattr(answer.value, member))


_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
"""`nvmlValueType_t` (NVML_VALUE_TYPE_DOUBLE ... _UNSIGNED_SHORT) -> the member of `c_nvmlValue_t` that holds it."""


@dataclass(frozen=True)
class NvmlFrame:
    """What one GPU answered at `time` seconds after `RecordedNvml.init`, in NVML's units; None: the query is
    not supported there."""

    time: float
    utilization_percent: int | None = None
    memory_used_bytes: int | None = None
    power_milliwatts: int | None = None
    total_energy_millijoules: int | None = None


class RecordedNvml:
    """`NvmlApi` that replays recorded answers: for tests, and for looking at a GPU's recording without one.

    Each device answers with its last frame at or before the time since `init()` on `clock`; `available=False`
    plays a host without NVML, `field_values=False` a driver without `nvmlDeviceGetFieldValues`, and
    `averaged_power=False` a GPU before Ampere (or a GA100), whose power is instant and which has no averaged
    power field. A device's UUID is `uuids[index]`, else one made of its index. `RecordedNvml.load` reads the
    JSON `{"devices": {"0": [frame, ...]}}`, each frame an object of `NvmlFrame`'s fields."""

    def __init__(
        self,
        devices: Mapping[int, Sequence[NvmlFrame]],
        *,
        clock: Callable[[], float],
        available: bool = True,
        field_values: bool = True,
        averaged_power: bool = True,
        uuids: Mapping[int, str] | None = None,
    ) -> None:
        for index, frames in devices.items():
            if not frames or list(frames) != sorted(frames, key=lambda frame: frame.time):
                raise ValueError(f"RecordedNvml: device {index} needs at least one frame, in time order")
        self._devices = {index: list(frames) for index, frames in devices.items()}
        self._clock = clock
        self._available = available
        self._field_values = field_values
        self._fields = {
            FIELD_TOTAL_ENERGY: "total_energy_millijoules",
            FIELD_POWER_INSTANT: "power_milliwatts",
            **({FIELD_POWER_AVERAGE: "power_milliwatts"} if averaged_power else {}),
        }
        self._uuids = {index: f"GPU-{index:08x}-0000-0000-0000-000000000000" for index in self._devices}
        self._uuids.update(uuids or {})
        self._start: float | None = None
        self.calls: list[str] = []
        """The calls made, by name, in order (what a test checks that the sampler asked)."""

    @classmethod
    def load(cls, path: Path, *, clock: Callable[[], float]) -> RecordedNvml:
        data = json.loads(Path(path).read_text())
        devices = {int(index): [NvmlFrame(**frame) for frame in frames] for index, frames in data["devices"].items()}
        return cls(devices, clock=clock)

    def _frame(self, handle: object) -> NvmlFrame:
        if self._start is None:
            raise NvmlUnavailable("nvml: Uninitialized")
        assert isinstance(handle, int)
        elapsed = self._clock() - self._start
        frames = self._devices[handle]
        return next((frame for frame in reversed(frames) if frame.time <= elapsed), frames[0])

    def _value(self, handle: object, name: str) -> int:
        self.calls.append(name)
        value: int | None = getattr(self._frame(handle), name)
        if value is None:
            raise NvmlNotSupported(f"{name}: Not Supported")
        return value

    def _field_value(self, frame: NvmlFrame, field: int) -> int | NvmlError:
        name = self._fields.get(field)
        value: int | None = None if name is None else getattr(frame, name)
        return NvmlNotSupported(f"field {field}: Not Supported") if value is None else value

    def init(self) -> None:
        self.calls.append("init")
        if not self._available:
            raise NvmlUnavailable("nvmlInit: NVML Shared Library Not Found")
        self._start = self._clock()

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        self._start = None

    def device_count(self) -> int:
        self.calls.append("device_count")
        if self._start is None:
            raise NvmlUnavailable("nvml: Uninitialized")
        return len(self._devices)

    def handle(self, index: int) -> object:
        self.calls.append("handle")
        if self._start is None:
            raise NvmlUnavailable("nvml: Uninitialized")
        if index not in self._devices:
            raise NvmlError(f"nvmlDeviceGetHandleByIndex({index}): Invalid Argument")
        return index

    def utilization_percent(self, handle: object) -> int:
        return self._value(handle, "utilization_percent")

    def memory_used_bytes(self, handle: object) -> int:
        return self._value(handle, "memory_used_bytes")

    def power_milliwatts(self, handle: object) -> int:
        return self._value(handle, "power_milliwatts")

    def total_energy_millijoules(self, handle: object) -> int:
        return self._value(handle, "total_energy_millijoules")

    def field_values(self, handle: object, fields: Sequence[int]) -> list[int | NvmlError]:
        self.calls.append("field_values")
        if not self._field_values:
            raise NvmlNotSupported("nvmlDeviceGetFieldValues: Function Not Found")
        frame = self._frame(handle)
        return [self._field_value(frame, field) for field in fields]

    def uuid(self, handle: object) -> str:
        self.calls.append("uuid")
        self._frame(handle)  # raises as NVML does when not initialized
        assert isinstance(handle, int)
        return self._uuids[handle]


def gpu_devices_available(nvml: NvmlApi | None = None) -> list[int]:
    """The NVML indices of this host's GPUs; empty where there is no NVML (no driver, a CPU host)."""
    api = nvml if nvml is not None else Pynvml()
    try:
        api.init()
    except NvmlError:
        return []
    try:
        return list(range(api.device_count()))
    except NvmlError:
        return []
    finally:
        try:
            api.shutdown()
        except NvmlError:
            pass


_NEXT_POWER_FIELD = {FIELD_POWER_AVERAGE: FIELD_POWER_INSTANT, FIELD_POWER_INSTANT: None}
"""Where a power field the GPU refuses leads: the averaged power (what `nvmlDeviceGetPowerUsage` returns from
Ampere on), else the instant one (what it returns before), else the single call itself."""


class _Gpu:
    """One GPU's state in the sampler: its handle, how its power and energy are read, and where its energy starts."""

    def __init__(self, index: int, handle: object, *, batched: bool) -> None:
        self.source = f"gpu:{index}"
        self.handle = handle
        self.power_field: int | None = FIELD_POWER_AVERAGE if batched else None
        """The field power is read from in the batched call; None: its own call (`nvmlDeviceGetPowerUsage`)."""
        self.energy_field = batched
        """Whether the energy counter is read in the batched call (else in its own)."""
        self.energy_counter = True
        """False once the GPU said it has no total energy counter: energy is integrated from power then."""
        self.energy_base_mj: int | None = None
        self.integrated_joules = 0.0
        self.last_power: tuple[float, float] | None = None
        """(time, watts) of the last power reading, for the integration."""

    def fields(self) -> list[int]:
        """What the batched call asks for this tick."""
        return [
            *([self.power_field] if self.power_field is not None else []),
            *([FIELD_TOTAL_ENERGY] if self.energy_field and self.energy_counter else []),
        ]


class NvmlSampler:
    """Each GPU's utilization (0-1), memory used (bytes), power (W) and energy (J, since the sampler's first
    reading) under the source `gpu:<index>`.

    Energy is NVML's total energy counter where the GPU has one (Volta and later), else power integrated over
    the sampling times (trapezoids; said once in `warnings()`): coarser, since power between two samples is
    not seen. `devices` are NVML's indices, which follow PCI bus order and ignore `CUDA_VISIBLE_DEVICES`
    (`NvmlSampler.visible` takes that variable's entries instead).

    Each tick costs three NVML calls per GPU: utilization, memory, and one `nvmlDeviceGetFieldValues` for power
    and the energy counter together (NVML has no field for the other two). A figure the field call does not
    give (an older driver, a GPU without that field) is read by its own call from then on, as with `batched=False`
    (one call per figure: what `scripts/check_nvml.py` compares the cost against). Nothing costlier (process
    lists, device names) is read per tick."""

    name = "nvml"

    def __init__(self, devices: Sequence[int], *, nvml: NvmlApi | None = None, batched: bool = True) -> None:
        if any(not isinstance(index, int) or isinstance(index, bool) or index < 0 for index in devices):
            raise ValueError(f"NvmlSampler: GPU indices are integers >= 0, not {list(devices)!r}")
        self._devices: Sequence[int | str] = sorted(set(devices))
        self._api = nvml if nvml is not None else Pynvml()
        self._batched = batched
        self._gpus: list[_Gpu] | None = None
        """None until NVML is opened, at the first sample (so a sampler made and never run opens nothing)."""
        self._initialized = False
        self._closed = False
        self._warnings: dict[str, None] = {}
        """Ordered and deduplicated: one line per kind of trouble, not one per tick."""

    @classmethod
    def visible(cls, entries: Sequence[str], *, nvml: NvmlApi | None = None, batched: bool = True) -> NvmlSampler:
        """The GPUs `CUDA_VISIBLE_DEVICES` names by `entries` (its comma-separated items), found in NVML when it is
        first opened. An ordinal is taken as NVML's index: CUDA's order is NVML's (PCI bus order) where
        `CUDA_DEVICE_ORDER=PCI_BUS_ID` or the GPUs are all of one kind (CUDA puts the fastest first, ties in bus
        order). A UUID (`GPU-...`, or a unique start of one, as CUDA takes it) is looked up among NVML's GPUs.
        A MIG instance (`MIG-...`) is not sampled: NVML reports power and energy per GPU, not per instance."""
        sampler = cls([], nvml=nvml, batched=batched)
        sampler._devices = [entry.strip() for entry in entries if entry.strip()]
        return sampler

    def _warn(self, line: str) -> None:
        self._warnings.setdefault(line, None)

    def _open(self) -> list[_Gpu]:
        if self._gpus is not None:
            return self._gpus
        self._gpus = []
        try:
            self._api.init()
        except NvmlError as error:
            self._warn(f"nvml: no GPU readings, NVML is not available here ({error})")
            return self._gpus
        self._initialized = True
        for index in self._indices():
            try:
                self._gpus.append(_Gpu(index, self._api.handle(index), batched=self._batched))
            except NvmlError as error:
                self._warn(f"gpu:{index}: no readings, NVML has no such GPU ({error})")
        return self._gpus

    def _indices(self) -> list[int]:
        """NVML's indices of the devices asked for (NVML is open)."""
        indices: set[int] = set()
        uuids: list[str] | None = None
        for device in self._devices:
            if isinstance(device, int) or device.isdigit():
                indices.add(int(device))
            elif device.upper().startswith("MIG-"):
                self._warn(f"{device}: no readings of a MIG instance (NVML reports power and energy per GPU)")
            elif device.upper().startswith("GPU-"):
                try:
                    if uuids is None:
                        uuids = [self._api.uuid(self._api.handle(index)) for index in range(self._api.device_count())]
                except NvmlError as error:
                    self._warn(f"{device}: no readings, NVML could not list its GPUs' UUIDs ({error})")
                    continue
                found = [index for index, uuid in enumerate(uuids) if uuid.lower().startswith(device.lower())]
                if len(found) == 1:
                    indices.add(found[0])
                else:
                    self._warn(f"{device}: no readings, {'no' if not found else 'more than one'} GPU has that UUID")
            else:
                self._warn(f"{device}: no readings, not a GPU ordinal or UUID")
        return sorted(indices)

    def sample(self, now: float) -> list[Reading]:
        if self._closed:
            return []
        readings: list[Reading] = []
        for gpu in self._open():
            readings.extend(self._sample_gpu(gpu, now))
        return readings

    def _read(self, gpu: _Gpu, what: str, query: Callable[[object], int]) -> int | None:
        try:
            return query(gpu.handle)
        except NvmlNotSupported:
            self._warn(f"{gpu.source}: NVML does not report {what} on this GPU")
        except NvmlError as error:
            self._warn(f"{gpu.source}: NVML failed to read {what}, readings skipped ({error})")
        return None

    def _sample_gpu(self, gpu: _Gpu, now: float) -> list[Reading]:
        api = self._api
        readings: list[Reading] = []
        utilization = self._read(gpu, "utilization", api.utilization_percent)
        if utilization is not None:
            readings.append(Reading(now, gpu.source, metrics.GPU_UTILIZATION, utilization / 100.0))
        memory = self._read(gpu, "memory used", api.memory_used_bytes)
        if memory is not None:
            readings.append(Reading(now, gpu.source, metrics.GPU_MEMORY_USED, float(memory)))
        power_mw, total_mj = self._power_and_energy(gpu)
        watts = None if power_mw is None else power_mw / 1000.0
        if watts is not None:
            readings.append(Reading(now, gpu.source, metrics.GPU_POWER, watts))
        energy = self._energy(gpu, now, watts, total_mj)
        if energy is not None:
            readings.append(Reading(now, gpu.source, metrics.GPU_ENERGY, energy))
        return readings

    def _power_and_energy(self, gpu: _Gpu) -> tuple[int | None, int | None]:
        """Power (mW) and the energy counter (mJ): None where not read. What the field call does not give is read
        by its own call, this tick and after."""
        answers: dict[int, int | NvmlError] = {}
        fields = gpu.fields()
        if fields:
            try:
                answers = dict(zip(fields, self._api.field_values(gpu.handle, fields), strict=True))
            except NvmlNotSupported:
                gpu.power_field, gpu.energy_field = None, False  # a driver without the call: one call per figure
            except NvmlError as error:
                self._warn(f"{gpu.source}: NVML failed to read power and energy, readings skipped ({error})")
                return None, None
        power = self._power(gpu, answers)
        energy = self._energy_counter(gpu, answers)
        return power, energy

    def _power(self, gpu: _Gpu, answers: Mapping[int, int | NvmlError]) -> int | None:
        field = gpu.power_field
        answer = answers.get(field) if field is not None else None
        if isinstance(answer, int):
            return answer
        if isinstance(answer, NvmlNotSupported) and field is not None:
            gpu.power_field = _NEXT_POWER_FIELD[field]
        elif isinstance(answer, NvmlError):
            self._warn(f"{gpu.source}: NVML failed to read power, readings skipped ({answer})")
            return None
        return self._read(gpu, "power", self._api.power_milliwatts)

    def _energy_counter(self, gpu: _Gpu, answers: Mapping[int, int | NvmlError]) -> int | None:
        if not gpu.energy_counter:
            return None
        answer = answers.get(FIELD_TOTAL_ENERGY) if gpu.energy_field else None
        if isinstance(answer, int):
            return answer
        if isinstance(answer, NvmlNotSupported):
            gpu.energy_field = False
        elif isinstance(answer, NvmlError):
            self._warn(f"{gpu.source}: NVML failed to read energy, readings skipped ({answer})")
            return None
        try:
            return self._api.total_energy_millijoules(gpu.handle)
        except NvmlNotSupported:
            gpu.energy_counter = False
            self._warn(
                f"{gpu.source}: no total energy counter (before Volta): energy is integrated from the sampled"
                " power, which misses what happens between samples"
            )
        except NvmlError as error:
            self._warn(f"{gpu.source}: NVML failed to read energy, readings skipped ({error})")
        return None

    def _energy(self, gpu: _Gpu, now: float, watts: float | None, total_mj: int | None) -> float | None:
        """Joules since the first reading: the counter's, else the integral of the sampled power."""
        if gpu.energy_counter:
            if total_mj is None:
                return None
            if gpu.energy_base_mj is None:
                gpu.energy_base_mj = total_mj
            return (total_mj - gpu.energy_base_mj) / 1000.0
        # The integration: a trapezoid between this power reading and the last one; no reading, no step.
        if watts is None:
            return None
        if gpu.last_power is not None:
            last_time, last_watts = gpu.last_power
            gpu.integrated_joules += max(now - last_time, 0.0) * (last_watts + watts) / 2.0
        gpu.last_power = (now, watts)
        return gpu.integrated_joules

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._initialized:
            try:
                self._api.shutdown()
            except NvmlError as error:
                self._warn(f"nvml: shutdown failed ({error})")


CHILDREN_EVERY = 10.0
"""Seconds between two listings of a process's children, by default."""


def _import_psutil() -> ModuleType | None:
    try:
        # By name: psutil has no type information (types-psutil is not a dependency), and is optional where
        # scripts/check_nvml.py runs.
        return importlib.import_module("psutil")
    except ImportError:
        return None


class _Tracked:
    """One named process, and the CPU times of it (and its children) at the last tick."""

    def __init__(self, name: str, pid: int, process: Any) -> None:
        self.name = name
        self.pid = pid
        self.process = process
        self.cpu_seconds: dict[tuple[int, float], float] | None = None
        """(pid, create time) -> user + system seconds, of the process and the children counted with it."""
        self.time: float | None = None
        self.children: list[Any] = []
        self.children_listed: float | None = None


class ProcessSampler:
    """Each named process's CPU (percent of one core since the last tick: 200 is two cores busy) and resident
    memory, under the source `name`.

    `with_children`: the names whose figures include all their descendants (vLLM v1 runs its engine core in a
    child of the process that made the engine). Their resident memory is the sum of the processes', which counts
    pages they share more than once. Children are listed again every `children_every` seconds, not every tick:
    listing them reads every process of the host (about 1 ms for 70 processes), and an engine's children live as
    long as it. CPU comes from the second tick on (it is a difference); CPU spent by a child that ended between
    two ticks is not seen. A process that ended gives a warning and no more readings."""

    name = "processes"

    def __init__(
        self,
        processes: Mapping[str, int],
        *,
        with_children: Collection[str] = (),
        children_every: float = CHILDREN_EVERY,
    ) -> None:
        unknown = sorted(set(with_children) - set(processes))
        if unknown:
            raise ValueError(f"ProcessSampler: with_children names {unknown} that are not among {sorted(processes)}")
        for name, pid in processes.items():
            if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
                raise ValueError(f"ProcessSampler: {name!r} needs a pid (an integer > 0), not {pid!r}")
        if not children_every >= 0:
            raise ValueError(f"ProcessSampler: children_every is seconds >= 0, not {children_every!r}")
        self._with_children = frozenset(with_children)
        self._children_every = children_every
        self._warnings: dict[str, None] = {}
        self._tracked: list[_Tracked] = []
        self._psutil = _import_psutil()
        if self._psutil is None:
            self._warn("processes: no CPU or memory readings, psutil is not installed")
            return
        for name, pid in processes.items():
            try:
                self._tracked.append(_Tracked(name, pid, self._psutil.Process(pid)))
            except self._psutil.Error as error:
                self._warn(f"{name}: no readings, process {pid} is not there ({type(error).__name__})")

    def _warn(self, line: str) -> None:
        self._warnings.setdefault(line, None)

    def sample(self, now: float) -> list[Reading]:
        psutil = self._psutil
        if psutil is None:
            return []
        readings: list[Reading] = []
        ended: list[_Tracked] = []
        for tracked in self._tracked:
            try:
                readings.extend(self._sample_one(tracked, now))
            except psutil.NoSuchProcess:
                # ZombieProcess is a NoSuchProcess too: an ended process that its parent has not waited for.
                ended.append(tracked)
                self._warn(f"{tracked.name}: process {tracked.pid} ended; no readings of it after that")
            except psutil.AccessDenied:
                ended.append(tracked)
                self._warn(f"{tracked.name}: not allowed to read process {tracked.pid}; no readings of it")
            except Exception as error:  # psutil's other failures (an unreadable /proc): skip a tick, say so once.
                self._warn(f"{tracked.name}: reading process {tracked.pid} failed ({type(error).__name__}: {error})")
        for tracked in ended:
            self._tracked.remove(tracked)
        return readings

    def _sample_one(self, tracked: _Tracked, now: float) -> list[Reading]:
        psutil = self._psutil
        assert psutil is not None
        if tracked.name in self._with_children and (
            tracked.children_listed is None or now - tracked.children_listed >= self._children_every
        ):
            try:
                tracked.children = tracked.process.children(recursive=True)
            except psutil.NoSuchProcess:
                raise
            except psutil.Error:
                pass  # One that ended while the tree was read: the list of the last time serves another tick.
            tracked.children_listed = now
        cpu: dict[tuple[int, float], float] = {}
        rss = 0
        ended: list[Any] = []
        for index, process in enumerate([tracked.process, *tracked.children]):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                    memory = process.memory_info().rss
            except psutil.NoSuchProcess:
                if index == 0:
                    raise
                ended.append(process)  # A child that ended: its figures are gone with it.
                continue
            cpu[key] = times.user + times.system
            rss += int(memory)
        for process in ended:
            tracked.children.remove(process)
        readings = [Reading(now, tracked.name, metrics.RSS, float(rss))]
        if tracked.cpu_seconds is not None and tracked.time is not None and now > tracked.time:
            # A child first seen now started after the last tick (or was missed): all its CPU time is new.
            spent = sum(seconds - tracked.cpu_seconds.get(key, 0.0) for key, seconds in cpu.items())
            readings.append(Reading(now, tracked.name, metrics.CPU_PERCENT, 100.0 * spent / (now - tracked.time)))
        tracked.cpu_seconds = cpu
        tracked.time = now
        return readings

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        self._tracked.clear()
