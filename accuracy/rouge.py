"""ROUGE-1/2/L/Lsum exactly as `rouge_score` computes them, only faster.

`evaluate`'s "rouge" metric, which the MLCommons reference calls, is
`rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
use_stemmer=True).score(reference, prediction)` per sample. This module gives
the same numbers (tests compare it with `rouge_score` itself on random texts)
with three changes that do not touch the arithmetic:

* each text is tokenized once (its tokens for a whole text are the concatenation
  of its tokens per line), by one regular expression that finds exactly the
  tokens `rouge_score`'s lower / replace / split / filter steps leave, and the
  Porter stemmer's answer for each word is cached;
* the LCS tables are built with the bit-parallel algorithm of Allison & Dix /
  Hyyrö over Python integers, one integer per table row, instead of cell by
  cell; a cell is then ``j - popcount(row & low_bits(j))``;
* the read-out of one LCS (for ROUGE-Lsum's union LCS) walks those rows with
  `rouge_score`'s own tie rule, so the same LCS is chosen; it visits only the ref
  tokens the candidate has (the walk passes the others by), reads one row a
  step and stops at the last match (`lcs_indices` says why each is exact).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from nltk.stem import porter
from rouge_score import tokenize as rouge_tokenize

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


_WORD = re.compile(r"[a-z0-9]+")
"""What `rouge_score.tokenize` keeps of a lower-cased text: it replaces `[^a-z0-9]+` with spaces, splits
on whitespace and drops the empty pieces."""
_STEMS: dict[str, str] = {}
_stem = porter.PorterStemmer().stem


def _stemmed(word: str) -> str:
    # rouge_score stems words of more than 3 characters, then drops tokens that are not [a-z0-9]+ (a stem
    # of such a word always is one; the check is kept so that the result is rouge_score's by construction).
    stem = _stem(word)
    _STEMS[word] = stem if rouge_tokenize.VALID_TOKEN_RE.match(stem) else ""
    return _STEMS[word]


def tokenize(text: str) -> list[str]:
    """`rouge_score.tokenize.tokenize(text, PorterStemmer())`, token for token."""
    stems = _STEMS
    tokens = [word if len(word) <= 3 else (stems.get(word) or _stemmed(word)) for word in _WORD.findall(text.lower())]
    return tokens if all(tokens) else [token for token in tokens if token]


def tokenize_lines(text: str) -> list[list[str]]:
    """Tokens of each non-empty line, as rouge_score's ROUGE-Lsum sees them."""
    return [tokenize(line) for line in text.split("\n") if line]


def _fmeasure(precision: float, recall: float) -> float:
    # rouge_score.scoring.fmeasure, to the same float.
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _overlap_f(target: Counter[Any], prediction: Counter[Any]) -> float:
    """rouge_score's `_score_ngrams` F-measure, from the n-gram counts of each side."""
    overlap = (target & prediction).total()
    return _fmeasure(overlap / max(prediction.total(), 1), overlap / max(target.total(), 1))


def _match_masks(tokens: Sequence[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs_rows(ref: Sequence[str], can_masks: dict[str, int], can_length: int) -> tuple[list[int], list[int]]:
    """The ref positions whose token the candidate has, and the LCS table's row after each of them.

    A row is a bit vector over the candidate's positions: a 0 bit at position j means
    t[i][j+1] = t[i][j] + 1, so t[i][j] is j minus the number of 1 bits below position j.
    A ref token the candidate lacks leaves the row as it was, so rows[k] is the table's row
    for every ref prefix from common[k-1] + 1 up to common[k] (rows[0]: before any).
    """
    full = (1 << can_length) - 1
    row = full
    common = [i for i, token in enumerate(ref) if token in can_masks]
    rows = [row]
    for i in common:
        match = row & can_masks[ref[i]]
        row = ((row + match) | (row - match)) & full
        rows.append(row)
    return common, rows


def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    if not ref or not can:
        return 0
    return len(can) - _lcs_rows(ref, _match_masks(can), len(can))[1][-1].bit_count()


def lcs_indices(ref: Sequence[str], can: Sequence[str], can_masks: dict[str, int] | None = None) -> list[int]:
    """The ref positions of the LCS that rouge_score's `_backtrack_norec` reads out.

    Its walk from the table's corner: a match goes diagonally; otherwise it moves left when
    t[i][j-1] > t[i-1][j], else up. Off a match t[i][j] is the larger of the two, so that is:
    left exactly when t[i-1][j] is below t[i][j]. At a ref token the candidate lacks the two rows are
    equal, so the walk goes up past it: only the ref positions in `common` are visited. t[i][j] is
    carried along (it drops by one at each match, and only there), and the walk ends at the last match.
    """
    common, rows = _lcs_rows(ref, can_masks if can_masks is not None else _match_masks(can), len(can))
    k, j = len(common), len(can)
    length = j - rows[k].bit_count()
    found: list[int] = []
    while length:
        i = common[k - 1]
        if ref[i] == can[j - 1]:
            found.append(i)
            k -= 1
            j -= 1
            length -= 1
        elif j - (rows[k - 1] & ((1 << j) - 1)).bit_count() < length:
            j -= 1
        else:
            k -= 1
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
            if len(union) == len(ref):
                break  # no candidate can add a position
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
        # Unigrams counted as tokens and bigrams as pairs: the counts of rouge_score's n-gram tuples.
        "rouge1": _overlap_f(Counter(ref_tokens), Counter(pred_tokens)),
        "rouge2": _overlap_f(Counter(pairwise(ref_tokens)), Counter(pairwise(pred_tokens))),
        "rougeL": _lcs_f(ref_tokens, pred_tokens),
        "rougeLsum": _summary_lcs_f(ref_lines, pred_lines),
    }
