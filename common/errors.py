"""The one exception type that reaches the user as a single clear line."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or environment.

    The message says what was wrong, which input, and what to do; the CLI prints
    it as one line and exits non-zero, without a traceback.
    """

    exit_code = 2
