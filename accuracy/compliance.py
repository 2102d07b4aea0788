"""TEST06, the LLM output consistency audit: the official checks on a run's accuracy log.

The checks are those of mlcommons/inference compliance/TEST06/run_verification.py, with
its exact loop bounds and its output format (which the submission checker reads line by
line); this module also says which sample broke a check, so a failure can be acted on:

* first token: where the scenario reports it on its own (not Offline), the reported
  first token equals the output's first token;
* EOS: an output ends with at most one EOS token;
* sample length: the reported token count equals the output's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_llm_sut.common.errors import HarnessError

VERIFY_FILE = "verify_accuracy.txt"


@dataclass
class Test06Result:
    first_token_pass: bool | None
    """None where the scenario does not report first tokens (Offline): the official "Skipped"."""
    eos_pass: bool
    length_pass: bool
    samples: int
    failures: list[str] = field(default_factory=list)
    """The first offending sample of each failed check, for people."""

    @property
    def passed(self) -> bool:
        return self.first_token_pass is not False and self.eos_pass and self.length_pass

    def text(self) -> str:
        """verify_accuracy.txt, byte for byte as run_verification.py writes it."""
        first = "Skipped" if self.first_token_pass is None else str(self.first_token_pass)
        verdict = "TEST06 verification complete" if self.passed else "TEST06 verification failed"
        return (
            f"First token check pass: {first}\n"
            f"EOS check pass: {self.eos_pass}\n"
            f"Sample length check pass: {self.length_pass}\n"
            f"{verdict}\n"
        )


def _ids(hex_data: str, dtype: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex_data), dtype=dtype)


def eos_failure(entries: Sequence[dict[str, Any]], dtype: str, eos_token_id: int) -> str | None:
    """run_verification.py's eos_check: walking back from the end (index 0 excluded, as there),
    a second EOS fails."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        i = data.shape[0] - 1
        n_eos = 0
        while i > 0:
            if data[i] == eos_token_id:
                n_eos += 1
            if n_eos >= 2:
                return f"sample {entry.get('qsl_idx')} ends with more than one EOS token ({eos_token_id})"
            if data[i] != eos_token_id:
                break
            i -= 1
    return None


def first_token_failure(entries: Sequence[dict[str, Any]], dtype: str) -> str | None:
    """run_verification.py's first_token_check: the reported first token(s) against the output's start."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        first = _ids(entry["token_data"], dtype)
        for position, (t1, t2) in enumerate(zip(data, first, strict=False)):
            if t1 != t2:
                return (
                    f"sample {entry.get('qsl_idx')}: reported first token {int(t2)} differs from output token "
                    f"{position} ({int(t1)})"
                )
    return None


def length_failure(entries: Sequence[dict[str, Any]], dtype: str) -> str | None:
    """run_verification.py's sample_len_check: token_count equals the output's length."""
    for entry in entries:
        data = _ids(entry["data"], dtype)
        if len(data) != int(entry["token_count"]):
            return f"sample {entry.get('qsl_idx')}: token_count {entry['token_count']} but {len(data)} output tokens"
    return None


def _guarded(check: Callable[..., str | None], *args: Any) -> str | None:
    """The official script counts an exception in a check (a missing field, bad hex) as a failure."""
    try:
        return check(*args)
    except (KeyError, ValueError, TypeError) as exc:
        return f"the accuracy log could not be checked ({type(exc).__name__}: {exc})"


def verify_test06(log_path: Path, *, first_token_reported: bool, eos_token_id: int, dtype: str) -> Test06Result:
    try:
        entries = json.loads(Path(log_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"TEST06: cannot read the accuracy log {log_path}: {exc}") from None
    if not isinstance(entries, list):
        raise HarnessError(f"TEST06: {log_path} is not a LoadGen accuracy log (a JSON list of entries).")
    failures: dict[str, str | None] = {
        "eos": _guarded(eos_failure, entries, dtype, eos_token_id),
        "first_token": _guarded(first_token_failure, entries, dtype) if first_token_reported else None,
        "length": _guarded(length_failure, entries, dtype),
    }
    return Test06Result(
        first_token_pass=(failures["first_token"] is None) if first_token_reported else None,
        eos_pass=failures["eos"] is None,
        length_pass=failures["length"] is None,
        samples=len(entries),
        failures=[f"{check}: {reason}" for check, reason in failures.items() if reason],
    )


def write_verification(result: Test06Result, out_dir: Path) -> Path:
    path = out_dir / VERIFY_FILE
    path.write_text(result.text())
    return path
