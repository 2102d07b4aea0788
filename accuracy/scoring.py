"""Scoring an accuracy log: the MLCommons evaluators' algorithm, in parallel.

llama2-70b's evaluate-accuracy.py and llama3.1-8b's evaluation.py score alike,
step for step: drop repeated `qsl_idx` entries (the first stays), decode the hex data as token ids, detokenize with
`skip_special_tokens=True`, strip, split predictions and references into
sentences with NLTK's English Punkt and join them with newlines, score
ROUGE-1/2/L/Lsum with stemming per sample, and report each mean x100 rounded to
4 places, with gen_len, gen_num, gen_tok_len and tokens_per_sample. Chunks of
samples are scored by worker processes; the per-sample scores are then put back
in log order, so the means are the same floats a single process computes.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from accuracy import rouge
from common.errors import HarnessError

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
    return "\n".join(_punkt().tokenize(text.strip()))


@functools.cache
def _punkt() -> Any:
    """The tokenizer `nltk.sent_tokenize` uses, deciding each candidate break once per distinct context.

    Punkt decides whether a period (or ? or !) ends a sentence from its context alone (the word before, the
    punctuation, the token after): `text_contains_sentbreak(context)` is a pure function of that string and
    the trained parameters. Most of the splitter's time goes there, and contexts repeat, so its answers are
    kept; everything else is NLTK's own code."""
    from nltk.tokenize.punkt import PunktTokenizer

    tokenizer = PunktTokenizer("english")
    tokenizer.text_contains_sentbreak = functools.lru_cache(maxsize=1 << 17)(tokenizer.text_contains_sentbreak)
    return tokenizer


def _score_chunk(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, dict[str, float]]]:
    """(prediction, reference) texts -> (postprocessed prediction, scores); runs in a worker."""
    out = []
    for prediction, reference in pairs:
        pred = sentences_per_line(prediction)
        out.append((pred, rouge.score(sentences_per_line(reference), pred)))
    return out


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def score_texts(
    predictions: Sequence[str], references: Sequence[str], *, workers: int | None = None
) -> list[tuple[str, dict[str, float]]]:
    """Per-sample (postprocessed prediction, scores), in input order."""
    check_punkt()
    pairs = list(zip(predictions, references, strict=True))
    workers = max(1, workers or default_workers())
    if workers == 1 or len(pairs) < 64:
        return _score_chunk(pairs)
    # Several chunks per worker keep both busy to the end; spawn, because the
    # caller may hold threads (LoadGen, vLLM) that a fork would copy mid-flight.
    size = max(1, len(pairs) // (workers * 4))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    # A pool that is left by any way (a stop signal too) kills its workers at once rather than
    # letting them finish their chunks.
    with get_context("spawn").Pool(workers, initializer=_ignore_interrupts) as pool:
        return [item for chunk in pool.imap(_score_chunk, chunks) for item in chunk]


def _ignore_interrupts() -> None:
    """A Ctrl-C reaches every process of the terminal's group: the parent decides what it means, not these."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def evaluate(
    outputs: dict[int, np.ndarray],
    references: Sequence[str],
    tokenizer: Any,
    *,
    workers: int | None = None,
) -> AccuracyResult:
    """Score the decoded accuracy log (`accuracy.log.read_accuracy_log`) against `references`."""
    if not outputs:
        raise HarnessError("the accuracy log has no entries: was the run in accuracy mode?")
    out_of_range = [i for i in outputs if not 0 <= i < len(references)]
    if out_of_range:
        raise HarnessError(
            f"the accuracy log has qsl_idx {out_of_range[0]}, but the data set has only {len(references)} "
            "rows: the log and the data set do not belong together (pass the --dataset the run used)."
        )
    indices = list(outputs)
    token_ids = [outputs[i] for i in indices]
    decoded = tokenizer.batch_decode(token_ids, skip_special_tokens=True)
    scored = score_texts(decoded, [references[i] for i in indices], workers=workers)

    samples = [
        SampleScore(index, len(ids), **scores, prediction=pred)
        for index, ids, (pred, scores) in zip(indices, token_ids, scored, strict=True)
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
