"""Scoring an accuracy log: the MLCommons evaluators' algorithm, in parallel.

llama2-70b's evaluate-accuracy.py and llama3.1-8b's evaluation.py score alike,
step for step: drop repeated `qsl_idx` entries (the first stays), decode the hex data as token ids, detokenize with
`skip_special_tokens=True`, strip, split predictions and references into
sentences with NLTK's English Punkt and join them with newlines, score
ROUGE-1/2/L/Lsum with stemming per sample, and report each mean x100 rounded to
4 places, with gen_len, gen_num, gen_tok_len and tokens_per_sample. Chunks of
samples are scored by worker processes, while the parent detokenizes the chunks
still to come; the per-sample scores are then put back in log order, so the means
are the same floats a single process computes.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from accuracy import rouge
from mlperf_llm_sut.common.errors import HarnessError, setting

PUNKT_HELP = (
    "NLTK's Punkt sentence splitter data (punkt_tab) is missing: install it with "
    "'python -m nltk.downloader punkt_tab', or set NLTK_DATA to a folder that has "
    "tokenizers/punkt_tab/english/."
)


@dataclass
class SampleScore:
    qsl_idx: int
    n_tokens: int
    rouge1: float
    rouge2: float
    rougeL: float
    rougeLsum: float
    prediction: str


@dataclass
class AccuracyResult:
    metrics: dict[str, Any]
    samples: list[SampleScore]


def check_punkt() -> None:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        raise HarnessError(PUNKT_HELP) from None


def sentences_per_line(text: str) -> str:
    """The reference's postprocess_text for one text: `"\n".join(nltk.sent_tokenize(text.strip()))`."""
    return "\n".join(_punkt().split(text.strip()))


_PLAIN_CONTEXT = re.compile(r"([A-Za-z]{2,})\. ([A-Za-z]+)")
"""A candidate break's context of the commonest kind: a word of ASCII letters, a period, one space, a word of
ASCII letters."""


class _SentenceSplitter:
    """`nltk.sent_tokenize` for English (`PunktTokenizer("english").tokenize`), at less cost.

    NLTK splits in layers of generators: candidate breaks (`_match_potential_end_contexts`), the ones that
    are breaks (`_slices_from_text`), closing quotes and brackets moved onto the sentence before
    (`_realign_boundaries`). `split` is those three steps in one loop, step for step, with NLTK's own
    regular expressions; only their bookkeeping is plainer:

    * the word before a candidate starts after the last whitespace character (NLTK's `string.whitespace`)
      since the previous candidate, found by `rfind` for each of those the text has; as NLTK's
      `_get_last_whitespace_index` answers 0 both for none and for one right at the previous candidate,
      both give the previous candidate's word start;
    * a candidate's context, NLTK's `text[word] + match.group() + match.group("after_tok")`, is one slice, as
      the match is the one character before the after_tok group;
    * a break is realigned only when its next sentence starts with a character NLTK's realignment pattern
      can start with (asked of the pattern itself, once per character);
    * whether a context holds a break (`text_contains_sentbreak`) is a pure function of that string and the
      trained parameters, where most of NLTK's time goes. A plain context "Word. Next" (`_PLAIN_CONTEXT`) is
      decided here, with Punkt's own rules: it is the two tokens "Word." and "Next"; the first pass makes
      "Word." a break unless "word" is a known abbreviation (those are left to NLTK), and of the second
      pass's rules only the collocation one can apply ("Word." is neither an abbreviation, an ellipsis, an
      initial nor a number), undoing the break when ("word", "next") is a known collocation. Any other
      context goes to NLTK's code, whose answers are kept, as contexts repeat.
    """

    def __init__(self) -> None:
        from nltk.tokenize.punkt import PunktTokenizer

        self.punkt = PunktTokenizer("english")
        self._abbreviations = self.punkt._params.abbrev_types
        self._collocations = self.punkt._params.collocations
        self._nltk_is_break = functools.lru_cache(maxsize=1 << 17)(self.punkt.text_contains_sentbreak)
        self._candidates = self.punkt._lang_vars.period_context_re().finditer
        self._realignment = self.punkt._lang_vars.re_boundary_realignment.match
        self._may_realign = functools.cache(lambda first: self._realignment(first) is not None)

    def is_break(self, context: str) -> bool:
        """`text_contains_sentbreak(context)`."""
        plain = _PLAIN_CONTEXT.fullmatch(context)
        if plain is None:
            return bool(self._nltk_is_break(context))
        word = plain[1].lower()
        if word in self._abbreviations:
            return bool(self._nltk_is_break(context))
        return (word, plain[2].lower()) not in self._collocations

    def split(self, text: str) -> list[str]:
        """`tokenize(text)`: the sentences."""
        return self._realigned(text, self._spans(text))

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """`_slices_from_text`, with `_match_potential_end_contexts` in its loop."""
        is_break = self.is_break
        spans = []
        last_break = 0
        previous: Any = None  # the candidate before, decided once it is known not to overlap this one
        previous_start = previous_stop = 0  # its word's span: NLTK's previous_slice
        whitespace = [char for char in string.whitespace if char in text]  # what `_get_last_whitespace_index` seeks
        for match in [*self._candidates(text), None]:
            if match is not None:
                start = match.start()
                if len(whitespace) == 1:  # the common case, at a third of the cost
                    space = text.rfind(whitespace[0], previous_stop, start)
                else:
                    space = max([text.rfind(char, previous_stop, start) for char in whitespace], default=-1)
                word_start = space + 1 if space > previous_stop else previous_start
                if previous is not None and previous_stop > word_start:
                    previous = None  # its word runs into this one's: NLTK drops it
            if previous is not None and is_break(text[previous_start : previous.end("after_tok")]):
                spans.append((last_break, previous.end()))
                last_break = previous.start("next_tok") if previous.group("next_tok") else previous.end()
            if match is not None:
                previous, previous_start, previous_stop = match, word_start, start
        spans.append((last_break, len(text.rstrip())))
        return spans

    def _realigned(self, text: str, spans: list[tuple[int, int]]) -> list[str]:
        """`_realign_boundaries`, then the texts of the non-empty spans."""
        sentences = []
        realign = 0
        followers: list[tuple[int, int] | None] = [*spans[1:], None]
        for (start, stop), following in zip(spans, followers, strict=True):
            start += realign
            moved = None
            if following is not None and self._may_realign(text[following[0] : following[0] + 1]):
                moved = self._realignment(text[following[0] : following[1]])
            if moved is not None and following is not None:
                sentences.append(text[start : following[0] + len(moved.group(0).rstrip())])
                realign = moved.end()
            else:
                realign = 0
                if start < stop:
                    sentences.append(text[start:stop])
        return sentences


_punkt = functools.cache(_SentenceSplitter)


Pair = tuple[str, str]
"""A sample's (prediction, reference) texts."""
Scored = tuple[str, float, float, float, float]
"""A sample's postprocessed prediction and F-measures (`rouge.METRICS` order): a plain tuple, quick to pickle."""
CHUNKS_PER_WORKER = 16
"""Many small chunks: the first is ready to score soon, and the workers end close together."""


def _score_chunk(pairs: Sequence[Pair]) -> list[Scored]:
    """Each pair's postprocessed prediction and scores; runs in a worker."""
    out = []
    for prediction, reference in pairs:
        pred = sentences_per_line(prediction)
        out.append((pred, *rouge.scores(sentences_per_line(reference), pred)))
    return out


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ScoringPool:
    """Scoring worker processes, started before the work is at hand: their start (Python, NLTK, Punkt's
    parameters: about half a second of CPU each) then overlaps what the caller does meanwhile, such as reading
    the accuracy log and loading the tokenizer. `with ScoringPool(workers) as pool:` ... `evaluate(...,
    pool=pool)`. Leaving the `with` by any way (a stop signal too) kills the workers at once rather than
    letting them finish their chunks; one worker means no process, the caller scores."""

    def __init__(self, workers: int | None = None) -> None:
        check_punkt()
        self.workers = max(1, workers or default_workers())
        # Spawn, because the caller may hold threads (LoadGen, vLLM) that a fork would copy mid-flight.
        self._processes = (
            get_context("spawn").Pool(self.workers, initializer=_start_worker) if self.workers > 1 else None
        )

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._processes is not None:
            self._processes.terminate()

    def score(self, chunks: Callable[[int], Iterable[list[Pair]]], count: int) -> list[Scored]:
        """Score the `count` pairs that `chunks(size)` yields, `size` at a time, in order.

        `chunks` is lazy: the pool's feeder thread draws each chunk as the workers need work, so that whatever
        it does to make the pairs (detokenizing) overlaps the scoring of the chunks before."""
        if self._processes is None or count < MIN_SAMPLES_PER_POOL:
            return [item for chunk in chunks(max(count, 1)) for item in _score_chunk(chunk)]
        size = max(1, count // (self.workers * CHUNKS_PER_WORKER))
        return [item for chunk in self._processes.imap(_score_chunk, chunks(size)) for item in chunk]


MIN_SAMPLES_PER_POOL = 64
"""Fewer samples are scored at once in the caller's process: starting workers would take longer."""


def _score_chunks(
    chunks: Callable[[int], Iterable[list[Pair]]], count: int, workers: int | None, pool: ScoringPool | None = None
) -> list[Scored]:
    """`pool.score`, in a pool of `workers` of its own when there is none."""
    if pool is not None:
        return pool.score(chunks, count)
    with ScoringPool(workers if count >= MIN_SAMPLES_PER_POOL else 1) as own:
        return own.score(chunks, count)


def score_texts(
    predictions: Sequence[str], references: Sequence[str], *, workers: int | None = None
) -> list[tuple[str, dict[str, float]]]:
    """Per-sample (postprocessed prediction, scores), in input order."""
    pairs = list(zip(predictions, references, strict=True))
    scored = _score_chunks(lambda size: (pairs[i : i + size] for i in range(0, len(pairs), size)), len(pairs), workers)
    return [(pred, dict(zip(rouge.METRICS, values, strict=True))) for pred, *values in scored]


def _start_worker() -> None:
    # A Ctrl-C reaches every process of the terminal's group: the parent decides what it means, not these.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _punkt()  # Punkt's parameters load now, while the caller has no work to give


def check_indices(outputs: Mapping[int, object], rows: int) -> None:
    """An accuracy log that has entries, each of a row of the data set (of `rows`)."""
    if not outputs:
        raise HarnessError("the accuracy log has no entries: was the run in accuracy mode?")
    out_of_range = [i for i in outputs if not 0 <= i < rows]
    if out_of_range:
        raise HarnessError(
            f"the accuracy log has qsl_idx {out_of_range[0]}, but the data set has only {rows} "
            f"rows: the log and the data set do not belong together (pass the {setting('dataset')} the run used)."
        )


def evaluate(
    outputs: dict[int, np.ndarray],
    references: Sequence[str],
    tokenizer: Any,
    *,
    workers: int | None = None,
    pool: ScoringPool | None = None,
) -> AccuracyResult:
    """Score the decoded accuracy log (`accuracy.log.read_accuracy_log`) against `references`, in `pool`, or
    in a pool of `workers` (default: one a core) of its own."""
    check_indices(outputs, len(references))
    indices = list(outputs)
    token_ids = [outputs[i] for i in indices]
    targets = [references[i] for i in indices]

    def decoded(size: int) -> Iterator[list[Pair]]:
        # batch_decode decodes each sequence alone: by slices, it gives the same texts as all at once.
        for start in range(0, len(token_ids), size):
            texts = tokenizer.batch_decode(token_ids[start : start + size], skip_special_tokens=True)
            yield list(zip(texts, targets[start : start + size], strict=True))

    samples = [
        SampleScore(index, len(ids), rouge1, rouge2, rouge_l, rouge_lsum, prediction)
        for index, ids, (prediction, rouge1, rouge2, rouge_l, rouge_lsum) in zip(
            indices, token_ids, _score_chunks(decoded, len(indices), workers, pool), strict=True
        )
    ]
    # np.float64's own round(), as the reference applies it, then plain floats for printing.
    metrics: dict[str, Any] = {
        key: float(round(np.mean([getattr(s, key) for s in samples]) * 100, 4)) for key in rouge.METRICS
    }
    gen_tok_len = sum(s.n_tokens for s in samples)
    metrics |= {
        "gen_len": int(sum(len(s.prediction) for s in samples)),
        "gen_num": len(samples),
        "gen_tok_len": int(gen_tok_len),
        "tokens_per_sample": round(gen_tok_len / len(samples), 1),
    }
    return AccuracyResult(metrics, samples)
