"""LoadGen's mlperf_log_accuracy.json: one entry per answered sample, its data in hex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlperf_llm_sut.common.errors import HarnessError, setting

TOKEN_DTYPES = ("int32", "int64")


def read_accuracy_log(path: Path, dtype: str = "int32") -> dict[int, np.ndarray]:
    """QSL index -> output token ids; duplicate entries of a sample keep the first, as the reference does."""
    if dtype not in TOKEN_DTYPES:
        raise HarnessError(f"{setting('dtype')} {dtype}: token ids are integers; use one of {', '.join(TOKEN_DTYPES)}.")
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise HarnessError(f"accuracy log {path} {what}: pass the run's mlperf_log_accuracy.json.")
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"accuracy log {path} is not valid JSON ({exc}).") from None
    if not isinstance(entries, list):
        raise HarnessError(
            f"accuracy log {path} holds a JSON {type(entries).__name__}, not LoadGen's list of entries "
            "(mlperf_log_accuracy.json)."
        )
    item = np.dtype(dtype).itemsize
    outputs: dict[int, np.ndarray] = {}
    for number, entry in enumerate(entries):
        try:
            index = int(entry["qsl_idx"])
            if index in outputs:
                continue
            data = bytes.fromhex(entry["data"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(
                f"accuracy log {path}: entry {number} is not a LoadGen entry with 'qsl_idx' and hex 'data' "
                f"({type(exc).__name__}: {exc})."
            ) from None
        if len(data) % item:
            raise HarnessError(
                f"accuracy log {path}: sample {index} has {len(data)} bytes, not a whole number of "
                f"{dtype} values; pass the dtype the SUT wrote."
            )
        outputs[index] = np.frombuffer(data, dtype=dtype)
    return outputs
