"""The one exception type that reaches the user as a single clear line."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

_SETTING = re.compile(r"\u27e6([\w.]+)\u27e7")


def setting(name: str) -> str:
    """A setting named in an error message (`setting("tensor_parallel_size")`): the library's own name for it
    when the error is read as it is, the command line's option (`--tensor-parallel-size`) when the command
    line reports it (`HarnessError.render`)."""
    return f"\u27e6{name}\u27e7"


def command_line_options(
    *parsers: argparse.ArgumentParser, aliases: Mapping[str, str] | None = None
) -> Callable[[str], str | None]:
    """How a command line names the settings its errors speak of (`HarnessError.render`): the option whose
    destination is the setting (`tensor_parallel_size` -> `--tensor-parallel-size`), or its `aliases` entry."""
    options = {
        action.dest: max(action.option_strings, key=len)
        for parser in parsers
        for action in parser._actions
        if action.option_strings
    }
    return (options | dict(aliases or {})).get


class HarnessError(Exception):
    """A problem with the user's input or environment.

    The message says what was wrong, which input, and what to do; the CLI prints
    it as one line and exits non-zero, without a traceback. The settings it names
    (`setting`) read as the library's names, or as options where `render` is given them.
    """

    exit_code = 2

    def __str__(self) -> str:
        return self.render()

    @property
    def message(self) -> str:
        """The message with its settings marked (`setting`): what an error that wraps this one should carry."""
        return super().__str__()

    def render(self, option: Callable[[str], str | None] = lambda name: None) -> str:
        """The message, each setting in it named by `option(setting)`, or by its own name where that is None."""
        return _SETTING.sub(lambda match: option(match[1]) or match[1], self.message)


class InternalError(Exception):
    """An unexpected failure inside the harness (a bug): reported as one line that says where the full
    traceback was saved, with exit code 3, so scripts can tell a crash from an INVALID run (1)."""

    exit_code = 3

    def __init__(self, message: str, traceback_path: Path) -> None:
        super().__init__(message)
        self.traceback_path = traceback_path


def save_traceback(directory: Path | None = None) -> Path:
    """The exception being handled, its traceback in a file: in `directory` when it can be written there,
    else in the temporary folder."""
    text = traceback.format_exc()
    name = f"harness-traceback-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    for folder in (directory, Path(tempfile.gettempdir())):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    raise RuntimeError("cannot write a traceback file anywhere")  # no writable temp folder: let Python print it


def internal_error_line(exc: BaseException, traceback_path: Path) -> str:
    """The one line a user sees for a bug."""
    return (
        f"internal error ({type(exc.__cause__ or exc).__name__}: {exc}); the full traceback is in {traceback_path}. "
        "This is a bug in the harness: please report it with that file."
    )


def report_failure(
    exc: Exception,
    say: Callable[[str], None],
    *,
    traceback_dir: Path | None = None,
    option: Callable[[str], str | None] = lambda name: None,
) -> int:
    """Tell the user about `exc` as `error:` lines (`say` prints one) and return the exit code: 2 for bad
    input (each line of a `HarnessError`, its settings named by `option`: a command line's flags), 3 for a
    bug (one line naming the saved traceback). Call it from the `except` block, where the traceback is
    still at hand."""
    if isinstance(exc, HarnessError):
        for line in exc.render(option).splitlines():
            say(line)
        return exc.exit_code
    path = exc.traceback_path if isinstance(exc, InternalError) else save_traceback(traceback_dir)
    say(internal_error_line(exc, path))
    return InternalError.exit_code
