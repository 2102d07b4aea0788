"""LoadGen's mlperf_log_accuracy.json: one entry per answered sample, its data in hex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.errors import HarnessError


def read_accuracy_log(path: Path, dtype: str = "int32") -> dict[int, np.ndarray]:
    """QSL index -> output token ids; duplicate entries of a sample keep the first, as the reference does."""
    try:
        entries = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise HarnessError(f"accuracy log {path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"accuracy log {path} is not valid JSON ({exc}).") from None
    item = np.dtype(dtype).itemsize
    outputs: dict[int, np.ndarray] = {}
    for entry in entries:
        index = int(entry["qsl_idx"])
        if index in outputs:
            continue
        data = bytes.fromhex(entry["data"])
        if len(data) % item:
            raise HarnessError(
                f"accuracy log {path}: sample {index} has {len(data)} bytes, not a whole number of "
                f"{dtype} values; pass the dtype the SUT wrote."
            )
        outputs[index] = np.frombuffer(data, dtype=dtype)
    return outputs
