"""ROUGE-1/2/L/Lsum exactly as `rouge_score` computes them, only faster.

`evaluate`'s "rouge" metric, which the MLCommons reference calls, is
`rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
use_stemmer=True).score(reference, prediction)` per sample. This module gives
the same numbers (tests compare it with `rouge_score` itself on random texts)
with three changes that do not touch the arithmetic:

* each text is tokenized once (by `rouge_score`'s own tokenizer; its tokens for
  a whole text are the concatenation of its tokens per line) and the Porter
  stemmer's answers are cached;
* the LCS tables are built with the bit-parallel algorithm of Allison & Dix /
  Hyyrö over Python integers, one integer per table row, instead of cell by
  cell; a cell is then ``j - popcount(row & low_bits(j))``;
* the read-out of one LCS (for ROUGE-Lsum's union LCS) walks those rows with
  `rouge_score`'s own tie rule, so the same LCS is chosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from nltk.stem import porter
from rouge_score import tokenize as rouge_tokenize

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class _CachedStemmer:
    """`rouge_score`'s stemmer (NLTK Porter, default mode) with memoised answers."""

    def __init__(self) -> None:
        self.stem = lru_cache(maxsize=1 << 18)(porter.PorterStemmer().stem)


_STEMMER = _CachedStemmer()


def tokenize_lines(text: str) -> list[list[str]]:
    """Tokens of each non-empty line, as rouge_score's ROUGE-Lsum sees them."""
    return [rouge_tokenize.tokenize(line, _STEMMER) for line in text.split("\n") if line]


def _fmeasure(precision: float, recall: float) -> float:
    # rouge_score.scoring.fmeasure, to the same float.
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _ngram_f(target: Sequence[str], prediction: Sequence[str], n: int) -> float:
    t = Counter(tuple(target[i : i + n]) for i in range(len(target) - n + 1))
    p = Counter(tuple(prediction[i : i + n]) for i in range(len(prediction) - n + 1))
    overlap = sum(min(count, p[gram]) for gram, count in t.items())
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(t.values()), 1)
    return _fmeasure(precision, recall)


def _match_masks(tokens: Sequence[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs_rows(ref: Sequence[str], can_masks: dict[str, int], can_length: int) -> list[int]:
    """Row i (after ref[:i]) of the LCS table as a bit vector over the candidate's positions.

    A 0 bit at position j means t[i][j+1] = t[i][j] + 1, so t[i][j] is j minus the
    number of 1 bits below position j.
    """
    full = (1 << can_length) - 1
    row = full
    rows = [row]
    for token in ref:
        match = row & can_masks.get(token, 0)
        row = ((row + match) | (row - match)) & full
        rows.append(row)
    return rows


def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    if not ref or not can:
        return 0
    return len(can) - _lcs_rows(ref, _match_masks(can), len(can))[-1].bit_count()


def lcs_indices(ref: Sequence[str], can: Sequence[str], can_masks: dict[str, int] | None = None) -> list[int]:
    """The ref positions of the LCS that rouge_score's `_backtrack_norec` reads out."""
    rows = _lcs_rows(ref, can_masks if can_masks is not None else _match_masks(can), len(can))
    i, j = len(ref), len(can)
    found: list[int] = []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            found.append(i - 1)
            i -= 1
            j -= 1
            continue
        # rouge_score: move left when t[i][j-1] > t[i-1][j], else up. With the bit rows,
        # t[i][j-1] = j-1 - ones(rows[i] below j-1) and t[i-1][j] = j - ones(rows[i-1] below j).
        below = (1 << (j - 1)) - 1
        left = (rows[i] & below).bit_count()
        up = (rows[i - 1] & (below << 1 | 1)).bit_count()
        if up - left > 1:
            j -= 1
        else:
            i -= 1
    found.reverse()
    return found


def _lcs_f(target: Sequence[str], prediction: Sequence[str]) -> float:
    if not target or not prediction:
        return 0.0
    length = lcs_length(target, prediction)
    return _fmeasure(length / len(prediction), length / len(target))


def _summary_lcs_f(target_lines: list[list[str]], prediction_lines: list[list[str]]) -> float:
    """rouge_score's `_summary_level_lcs` (ROUGE paper, section 3.2)."""
    if not target_lines or not prediction_lines:
        return 0.0
    m = sum(map(len, target_lines))
    n = sum(map(len, prediction_lines))
    if not n or not m:
        return 0.0
    counts_r: Counter[str] = Counter()
    counts_c: Counter[str] = Counter()
    for line in target_lines:
        counts_r.update(line)
    for line in prediction_lines:
        counts_c.update(line)
    candidates = [(can, _match_masks(can)) for can in prediction_lines if can]
    hits = 0
    for ref in target_lines:
        union: set[int] = set()
        for can, masks in candidates:
            if masks.keys().isdisjoint(ref):
                continue
            union.update(lcs_indices(ref, can, masks))
        for token in (ref[i] for i in sorted(union)):
            if counts_c[token] > 0 and counts_r[token] > 0:
                hits += 1
                counts_c[token] -= 1
                counts_r[token] -= 1
    return _fmeasure(hits / n, hits / m)


def score(reference: str, prediction: str) -> dict[str, float]:
    """The four F-measures for one sample, as `RougeScorer(...).score(reference, prediction)`."""
    ref_lines, pred_lines = tokenize_lines(reference), tokenize_lines(prediction)
    ref_tokens = [t for line in ref_lines for t in line]
    pred_tokens = [t for line in pred_lines for t in line]
    return {
        "rouge1": _ngram_f(ref_tokens, pred_tokens, 1),
        "rouge2": _ngram_f(ref_tokens, pred_tokens, 2),
        "rougeL": _lcs_f(ref_tokens, pred_tokens),
        "rougeLsum": _summary_lcs_f(ref_lines, pred_lines),
    }
