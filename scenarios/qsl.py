"""The query sample library LoadGen draws from: the data set's prompts as token ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg

from mlperf_llm_sut.benchmarks import get_benchmark
from mlperf_llm_sut.common.dataset import Dataset, load_dataset


class SampleLibrary:
    """Holds the prompts LoadGen has asked to be loaded, keyed by QSL index."""

    def __init__(self, dataset: Dataset, total_count: int, performance_count: int) -> None:
        self.dataset = dataset
        self.total_count = total_count
        self.performance_count = performance_count
        self._loaded: dict[int, list[int]] = {}
        self._handle: Any = None

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        benchmark: str,
        tokenizer: str | Path | None = None,
        trust_pickle: bool = False,
        sha256: str | None = None,
        total_count: int | None = None,
        performance_count: int | None = None,
    ) -> SampleLibrary:
        """A benchmark's data set from `path` (processed file, raw rows, a saved Hugging Face dataset, or
        `hf://` id), checked as a run checks it; raw rows are tokenized with `tokenizer` (a model
        directory). `total_count` and `performance_count` default to the whole data set; a pickle loads
        only with `trust_pickle` or its known `sha256`."""
        dataset = load_dataset(
            path,
            prompt_format=get_benchmark(benchmark).prompt_format,
            tokenizer_dir=tokenizer,
            trust_pickle=trust_pickle,
            expected_sha256=sha256,
        )
        total = min(len(dataset), total_count or len(dataset))
        return cls(dataset, total, min(total, performance_count or total))

    # -- what LoadGen calls ----------------------------------------------------------------------------
    def load(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded[index] = self.dataset.prompts[index]

    def unload(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded.pop(index, None)

    def prompt(self, index: int) -> list[int]:
        return self._loaded[index]

    @property
    def handle(self) -> Any:
        """`lg.ConstructQSL` over this library, made once; `close` destroys it."""
        if self._handle is None:
            self._handle = lg.ConstructQSL(self.total_count, self.performance_count, self.load, self.unload)
        return self._handle

    def close(self) -> None:
        """Destroy `handle`: only once no LoadGen test can call it any more."""
        if self._handle is not None:
            lg.DestroyQSL(self._handle)
            self._handle = None
