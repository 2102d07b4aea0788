"""Where vLLM's output goes: the run's engine.log, not the harness display.

Two things make this more than a logging handler. vLLM configures logging with
`logging.config.dictConfig`, which closes every handler the process already
has (and some close their streams: absl's does, taking a test runner's
captured stderr with it); so this process gets a plain file handler on the
`vllm` logger, and vLLM applies its logging config only in the engine processes
it starts, which are fresh interpreters with nothing to lose. And those
processes print progress bars, C++ warnings and tracebacks straight to their
stdout/stderr; they are started while this process's descriptors 1 and 2 point
at the log, and keep that for life.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_handler: logging.Handler | None = None


def route_vllm_logs(log_path: Path) -> Path:
    """vLLM's logs in this process to `log_path`; returns the logging config for its engine processes."""
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

    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_path), "formatter": "plain"}},
        "loggers": {"vllm": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    config_path = log_path.with_suffix(".logging.json")
    config_path.write_text(json.dumps(config))
    return config_path


def with_engine_logging(engine_args: Any, config_path: Path) -> Any:
    """Engine arguments whose logging config applies in the engine processes only.

    vLLM applies `logging_config` when an engine is built, in this process too,
    unless it is the config it applied last; so it is recorded as applied here
    (this process has its handler already). Where that record does not exist,
    the engine processes keep vLLM's unconfigured logging: warnings and errors
    still reach the log through their redirected stderr. A user's own
    `--engine-arg logging_config=...` is left alone.
    """
    if getattr(engine_args, "logging_config", "absent") is not None:
        return engine_args
    import vllm.logger as vllm_logger
    from vllm.config.logging import LoggingConfig

    if hasattr(vllm_logger, "_last_configured_logging_config"):
        config = LoggingConfig(configure_logging=True, pylogging_config_file=str(config_path))
        vllm_logger._last_configured_logging_config = config
    else:
        config = LoggingConfig(configure_logging=False, pylogging_config_file=None)
    return dataclasses.replace(engine_args, logging_config=config)


@contextlib.contextmanager
def output_to(log_path: Path | None) -> Iterator[None]:
    """Point descriptors 1 and 2 at `log_path` while vLLM starts its engine processes.

    Python warnings raised meanwhile (deprecations from imports) go to the log
    too. The CLI's console writes to its own duplicate of stderr and stays visible.
    """
    if log_path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            os.dup2(target, 1)
            os.dup2(target, 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.write(
            target,
            "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught).encode(),
        )
        for fd in (*saved, target):
            os.close(fd)


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
