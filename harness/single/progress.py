"""A live progress line while LoadGen runs: samples answered, samples/s and tokens/s.

It polls the responder's counters from its own thread a few times a second,
so the hot path never touches the display.
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scenarios.responder import LoadGenResponder


class RunProgress:
    def __init__(self, responder: LoadGenResponder, console: Console, *, label: str, expected: int | None) -> None:
        self._responder = responder
        self._expected = expected
        self._stop = threading.Event()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            # Drawn when `_poll` has new counts, not ten times a second from a thread of rich's own: a
            # client's CPU per token is measured while this runs.
            auto_refresh=False,
            disable=console.quiet,
        )
        self._task = self._progress.add_task(label, total=expected, rate="")
        self._thread = threading.Thread(target=self._poll, name="progress", daemon=True)

    def __enter__(self) -> RunProgress:
        self._started = time.perf_counter()
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._refresh()
        self._progress.stop()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self._refresh()

    def _refresh(self) -> None:
        r = self._responder
        answered = r.completed_count + r.failed_count
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        total = max(self._expected or 0, r.issued_count) or None
        rate = f"{answered / elapsed:7.1f} samples/s {r.output_tokens / elapsed:9.1f} tokens/s"
        if r.failed_count:
            rate += f"  [red]{r.failed_count} failed"
        self._progress.update(self._task, completed=answered, total=total, rate=rate, refresh=True)
