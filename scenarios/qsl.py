"""The query sample library LoadGen draws from: the data set's prompts as token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlperf_loadgen as lg

from common.dataset import Dataset


class SampleLibrary:
    """Holds the prompts LoadGen has asked to be loaded, keyed by QSL index."""

    def __init__(self, dataset: Dataset, total_count: int, performance_count: int) -> None:
        self.dataset = dataset
        self.total_count = total_count
        self.performance_count = performance_count
        self._loaded: dict[int, list[int]] = {}
        self._handle: Any = None

    def load(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded[index] = self.dataset.prompts[index]

    def unload(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._loaded.pop(index, None)

    def prompt(self, index: int) -> list[int]:
        return self._loaded[index]

    def open(self) -> Any:
        """LoadGen's handle to this library; `close` only once no LoadGen test can call it any more."""
        self._handle = lg.ConstructQSL(self.total_count, self.performance_count, self.load, self.unload)
        return self._handle

    def close(self) -> None:
        lg.DestroyQSL(self._handle)
        self._handle = None
