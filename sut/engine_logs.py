"""Where vLLM's output goes: the run's engine.log, not the harness display.

Engines run in worker processes whose descriptors 1 and 2 point at the log
(`redirect_output`), so everything they and their engine processes print, log
or trace lands there. This process only imports vLLM (to check engine
arguments and the platform); `route_vllm_logs` keeps that import from
configuring logging here: vLLM's `dictConfig` would close every handler the
process already has, and some close their streams (absl's does, taking a test
runner's captured stderr with it).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from mlperf_llm_sut.common.errors import setting

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_handler: logging.Handler | None = None


def route_vllm_logs(log_path: Path) -> None:
    """vLLM's logs in this process to `log_path`, and vLLM imported without configuring logging."""
    global _handler
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("vllm")
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler.close()
    _handler = logging.FileHandler(log_path)
    _handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    # Versions of vLLM that configure logging on import must not do it here.
    previous = os.environ.get("VLLM_CONFIGURE_LOGGING")
    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
    try:
        import vllm.logger  # noqa: F401
    finally:
        if previous is None:
            os.environ.pop("VLLM_CONFIGURE_LOGGING", None)
        else:
            os.environ["VLLM_CONFIGURE_LOGGING"] = previous


def prefix_vllm_logs() -> None:
    """Put this process's `VLLM_LOGGING_PREFIX` into vLLM's log format where vLLM came imported before it was
    set (a worker forked from the forkserver, `sut.worker_imports`): vLLM reads the prefix once, on import,
    into the format it configures logging with when an engine starts."""
    loaded = sys.modules.get("vllm.logger")
    prefix = os.environ.get("VLLM_LOGGING_PREFIX", "")
    if loaded is None or not prefix:
        return
    for formatter in loaded.DEFAULT_LOGGING_CONFIG["formatters"].values():
        if not formatter["format"].startswith(prefix):
            formatter["format"] = prefix + formatter["format"]


def redirect_output(log_path: Path) -> None:
    """Everything this process and the processes it starts print goes to `log_path`."""
    target = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


MEMORY_WORDS = re.compile(r"memory|\bOOM\b|KV cache|cache blocks|cannot allocate", re.IGNORECASE)


def memory_hint(reason: str) -> str:
    """What to try when an engine ran out of memory; nothing when its reason was something else."""
    if not MEMORY_WORDS.search(reason):
        return ""
    return (
        f" It ran out of memory: lower {setting('max_model_len')} or {setting('max_num_seqs')}, or adjust "
        f"{setting('gpu_memory_utilization')}."
    )


def engine_failure_reason(log_path: Path | None, exc: BaseException) -> str:
    """The root cause of an engine start failure, from its log when vLLM put it there."""
    causes: list[str] = []
    if log_path is not None and log_path.is_file():
        pattern = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception): .+")
        for line in log_path.read_text(errors="replace").splitlines():
            text = line.strip()
            if pattern.match(text) and "Engine core initialization failed" not in text:
                causes.append(text)
    if causes:
        return causes[-1]
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic's ValidationError: the first line only names the model
        return "; ".join(str(e.get("msg", e)) for e in errors())
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
