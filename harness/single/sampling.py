"""A run's telemetry: what is sampled (each replica's own sources, the GPUs of this host's replicas, this
process), from when the replicas are up until they stop, and what run.json and the summary keep of it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.single.config import RunConfig
from mlperf_llm_sut.telemetry.hardware import NvmlSampler, ProcessSampler
from mlperf_llm_sut.telemetry.loop import SamplingLoop, write_jsonl
from mlperf_llm_sut.telemetry.series import Sampler
from mlperf_llm_sut.telemetry.summary import Telemetry, Window, summarize
from sut.replica import ReplicaGroup

SERIES_FILE = "telemetry.jsonl"
HARNESS = "harness"
"""The source name of this process's own CPU and memory."""


class RunSampling:
    """The sampling loop of one run, over the samplers its replicas and its host give."""

    def __init__(self, samplers: Sequence[Sampler], interval: float) -> None:
        self.interval = interval
        self._loop = SamplingLoop(samplers, interval)

    @classmethod
    def of(cls, config: RunConfig, group: ReplicaGroup) -> RunSampling | None:
        """The sampling `config` asks for (None: `telemetry_interval` 0 turns it off): the group's samplers,
        NVML over the GPUs of local replicas (a Ray actor samples its GPUs on its own node and sends their figures
        with its engine's: `EngineSampler`), and this process."""
        if config.telemetry_interval <= 0:
            return None
        # This host's own samplers first: a server slow to answer its /metrics holds up what comes after it in a
        # tick (until its scrape times out).
        samplers: list[Sampler] = [ProcessSampler({HARNESS: os.getpid()})]
        if config.sut == "local":
            # Each local worker's CUDA_VISIBLE_DEVICES entries (ordinals or UUIDs); a Ray actor samples its own.
            visible = dict.fromkeys(
                device for member in group.members for device in member.stats().devices if device != "cpu"
            )
            if visible:
                samplers.append(NvmlSampler.visible(list(visible)))
        return cls([*samplers, *group.samplers()], config.telemetry_interval)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def results(self, run_dir: Path, window: Window | None, output_tokens: int | None) -> Telemetry:
        """Write the time series beside the run's logs; the test window's figures (over every reading when the
        test never started)."""
        readings = self._loop.readings()
        write_jsonl(readings, run_dir / SERIES_FILE)
        if window is None:
            times = [reading.time for reading in readings]
            window = Window(min(times, default=0.0), max(times, default=0.0))
        return summarize(
            readings,
            window,
            interval=self.interval,
            output_tokens=output_tokens,
            sampling_cpu_seconds=self._loop.cpu_seconds,
            warnings=self._loop.warnings(),
        )
