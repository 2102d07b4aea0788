"""Output token ids from a streamed answer: the server's own ids, or its text re-tokenized.

LoadGen counts (and the accuracy check decodes) token ids. A server that streams
ids (vLLM with `return_token_ids`) is taken at its word. A server that sends
only text has it re-tokenized with the model's tokenizer, without an added BOS;
where the server reported how many tokens it generated (`usage`), a different
count is flagged, because then tokens/s and the ids LoadGen logs are approximate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_llm_sut.common.dataset import load_tokenizer


@dataclass(slots=True)
class Delta:
    """What one server-sent event adds to an answer: what a `StreamAPI` parses, and `OutputAssembler` collects."""

    text: str = ""
    token_ids: list[int] | None = None
    """None: the server sent text without token ids."""
    finished: bool = False
    completion_tokens: int | None = None
    """The server's own count of output tokens (`usage`), when this event carries it."""
    text_read: bool = True
    """False: the event's text was not read (its token ids are the output)."""


class Retokenizer:
    """The model's tokenizer, loaded on first use (most runs never need it)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = str(directory)
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.directory)
            return self._tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.load().encode(text, add_special_tokens=False))

    def decode_prompt(self, ids: list[int]) -> str:
        """Prompt text for text-only protocols; the server adds its own special tokens."""
        return str(self.load().decode(ids, skip_special_tokens=True))


class OutputAssembler:
    """One answer being streamed: collects deltas, names its first token, gives the final ids."""

    def __init__(self, retokenizer: Retokenizer, *, force_text: bool = False) -> None:
        self._retokenizer = retokenizer
        self._ids: list[int] = []
        self._text: list[str] = []
        self._text_only = force_text
        self._text_skipped = False
        self._first: int | None = None
        self.finished = False
        self.server_count: int | None = None

    @property
    def started(self) -> bool:
        return self._first is not None

    @property
    def first(self) -> int:
        assert self._first is not None
        return self._first

    def add(self, delta: Delta) -> int | None:
        """Take one event; returns the first output token id when this event brings it."""
        if delta.completion_tokens is not None:
            self.server_count = delta.completion_tokens
        self.finished = self.finished or delta.finished
        if delta.token_ids is None and delta.text:
            if self._text_skipped:
                raise ValueError("the server sent token ids with some events and only text with others")
            self._text_only = True
        self._text_skipped = self._text_skipped or not delta.text_read
        if delta.token_ids:
            self._ids += delta.token_ids
        if delta.text:
            self._text.append(delta.text)
        if self._first is not None:
            return None
        if not self._text_only and self._ids:
            self._first = self._ids[0]
        elif self._text_only and self._text:
            ids = self._retokenizer.encode("".join(self._text))
            self._first = ids[0] if ids else None
        return self._first

    def token_ids(self) -> tuple[list[int], bool]:
        """The output ids, and whether they disagree with the server's own count."""
        ids = self._retokenizer.encode("".join(self._text)) if self._text_only else self._ids
        return ids, self.server_count is not None and self.server_count != len(ids)

    @property
    def from_text(self) -> bool:
        return self._text_only
