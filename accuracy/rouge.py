"""ROUGE-1/2/L/Lsum exactly as `rouge_score` computes them, only faster.

`evaluate`'s "rouge" metric, which the MLCommons reference calls, is
`rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
use_stemmer=True).score(reference, prediction)` per sample. This module gives
the same numbers (tests compare it with `rouge_score` itself on random texts)
with changes that do not touch the arithmetic:

* each text is tokenized once (its tokens for a whole text are the concatenation
  of its tokens per line), by one regular expression that finds exactly the
  tokens `rouge_score`'s lower / replace / split / filter steps leave, and the
  Porter stemmer's answer for each word is cached;
* the LCS tables are built with the bit-parallel algorithm of Allison & Dix /
  Hyyrö over Python integers, one integer per table row, instead of cell by
  cell; a cell is then ``j - popcount(row & low_bits(j))``;
* the read-out of one LCS (for ROUGE-Lsum's union LCS) walks those rows with
  `rouge_score`'s own tie rule, so the same LCS is chosen; it visits only the ref
  tokens the candidate has (the walk passes the others by), each at most once
  (a run of steps to the left is one jump to the row's next match), and stops at
  the last match (`lcs_indices` says why each is exact);
* ROUGE-Lsum skips a candidate line whose LCS cannot add to the union (every ref
  position it could use is in already), takes all of them without a walk when the
  LCS is as long as their number, and counts its hits as an overlap of token counts
  (`_summary_lcs_f` says why that is rouge_score's count).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import chain, pairwise
from typing import Any

from nltk.stem import porter
from rouge_score import tokenize as rouge_tokenize

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


_WORD = re.compile(r"[a-z0-9]+")
"""What `rouge_score.tokenize` keeps of a lower-cased text: it replaces `[^a-z0-9]+` with spaces, splits
on whitespace and drops the empty pieces."""
_TOKENS: dict[str, str] = {}
"""Each word `_WORD` has found -> its rouge_score token: the word itself if it has at most 3 characters, else
its Porter stem. A word whose token rouge_score would drop as not [a-z0-9]+ is never kept here."""
_stem = porter.PorterStemmer().stem


def _new_tokens(words: list[str]) -> list[str]:
    tokens = []
    for word in words:
        token = _TOKENS.get(word)
        if token is None:
            token = word if len(word) <= 3 else _stem(word)
            # A stem of a [a-z0-9]+ word always is one; the check keeps the result rouge_score's by construction.
            if not rouge_tokenize.VALID_TOKEN_RE.match(token):
                continue
            _TOKENS[word] = token
        tokens.append(token)
    return tokens


def tokenize(text: str) -> list[str]:
    """`rouge_score.tokenize.tokenize(text, PorterStemmer())`, token for token."""
    words = _WORD.findall(text.lower())
    try:
        return list(map(_TOKENS.__getitem__, words))  # the common case: every word seen before
    except KeyError:
        return _new_tokens(words)


def tokenize_lines(text: str) -> list[list[str]]:
    """Tokens of each non-empty line, as rouge_score's ROUGE-Lsum sees them."""
    return [tokenize(line) for line in text.split("\n") if line]


def _fmeasure(precision: float, recall: float) -> float:
    # rouge_score.scoring.fmeasure, to the same float.
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _overlap(target: Counter[Any], prediction: Counter[Any]) -> int:
    """`(target & prediction).total()`, without building the intersection."""
    shared = target.keys() & prediction.keys()
    return sum(map(min, map(target.__getitem__, shared), map(prediction.__getitem__, shared)))


def _overlap_f(target: Counter[Any], prediction: Counter[Any]) -> float:
    """rouge_score's `_score_ngrams` F-measure, from the n-gram counts of each side."""
    overlap = _overlap(target, prediction)
    return _fmeasure(overlap / max(prediction.total(), 1), overlap / max(target.total(), 1))


def _match_masks(tokens: Sequence[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _common_positions(ref: Sequence[str], can_masks: dict[str, int]) -> list[int]:
    """The ref positions whose token the candidate has: the only ones an LCS can use."""
    return [i for i, token in enumerate(ref) if token in can_masks]


def _lcs_rows(ref: Sequence[str], common: list[int], can_masks: dict[str, int], can_length: int) -> list[int]:
    """The LCS table's row before the first of the `common` ref positions and after each of them.

    A row is a bit vector over the candidate's positions: a 0 bit at position j means
    t[i][j+1] = t[i][j] + 1, so t[i][j] is j minus the number of 1 bits below position j.
    A ref token the candidate lacks leaves the row as it was, so rows[k] is the table's row
    for every ref prefix from common[k-1] + 1 up to common[k] (rows[0]: before any).
    """
    full = (1 << can_length) - 1
    row = full
    rows = [row]
    for i in common:
        match = row & can_masks[ref[i]]
        row = ((row + match) | (row - match)) & full
        rows.append(row)
    return rows


def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    if not ref or not can:
        return 0
    masks = _match_masks(can)
    return len(can) - _lcs_rows(ref, _common_positions(ref, masks), masks, len(can))[-1].bit_count()


def lcs_indices(
    ref: Sequence[str], can: Sequence[str], can_masks: dict[str, int] | None = None, common: list[int] | None = None
) -> list[int]:
    """The ref positions of the LCS that rouge_score's `_backtrack_norec` reads out.

    Its walk from the table's corner: a match goes diagonally; otherwise it moves left when
    t[i][j-1] > t[i-1][j], else up. Off a match t[i][j] is the larger of the two, so that is:
    left exactly when t[i-1][j] is below t[i][j]. Then t[i][j-1] = t[i][j], and t[i-1][j-1] is below it
    too, so once the walk turns left in a row it keeps going left, at the same value, up to that row's
    next match on the left, and takes it. So in row i at column j with value L, the walk takes ref
    position i-1 (and goes on from the rightmost match column c <= j, at (i-1, c-1), with L-1) when
    there is a match at j or t[i-1][j] < L, and otherwise goes up to (i-1, j). At a ref token the
    candidate lacks the two rows are equal, so the walk goes up past it: only the `common` positions are
    visited, one step each, and the walk ends at the last match.
    """
    masks = can_masks if can_masks is not None else _match_masks(can)
    if common is None:
        common = _common_positions(ref, masks)
    rows = _lcs_rows(ref, common, masks, len(can))
    j = len(can)
    length = j - rows[-1].bit_count()
    if length == len(common):
        return common  # an LCS of that length uses every position that can match
    found: list[int] = []
    k = len(common)
    while length:
        k -= 1
        i = common[k]
        below_j = (1 << j) - 1
        column = (masks[ref[i]] & below_j).bit_length()  # the rightmost match column <= j
        if column == j or j - (rows[k] & below_j).bit_count() < length:
            found.append(i)
            j = column - 1
            length -= 1
    found.reverse()
    return found


def _lcs_f(target: Sequence[str], prediction: Sequence[str]) -> float:
    if not target or not prediction:
        return 0.0
    length = lcs_length(target, prediction)
    return _fmeasure(length / len(prediction), length / len(target))


def _summary_lcs_f(
    target_lines: list[list[str]], prediction_lines: list[list[str]], prediction_counts: Counter[str]
) -> float:
    """rouge_score's `_summary_level_lcs` (ROUGE paper, section 3.2); `prediction_counts`: the prediction's tokens.

    It walks each ref line's union LCS in order and counts a hit for a token while both its counts (in the
    whole prediction, and in the whole reference) are above 0, taking one off each. A token t then has
    min(U, C, R) hits, U, C and R being its numbers in all union LCSs, the prediction and the reference;
    U <= R (the union LCSs are distinct positions of the reference), so that is min(U, C): the hits are
    the overlap of the union LCSs' token counts with the prediction's, whatever the order.
    """
    m = sum(map(len, target_lines))
    n = prediction_counts.total()
    if not n or not m:
        return 0.0
    candidates = [(can, _match_masks(can)) for can in prediction_lines if can]
    union_tokens: list[str] = []
    for ref in target_lines:
        union: set[int] = set()
        for can, masks in candidates:
            common = _common_positions(ref, masks)
            if union.issuperset(common):
                continue  # the LCS is a subset of `common`: nothing to add
            union.update(lcs_indices(ref, can, masks, common))
            if len(union) == len(ref):
                break  # no candidate can add a position
        union_tokens.extend(map(ref.__getitem__, union))
    hits = _overlap(Counter(union_tokens), prediction_counts)
    return _fmeasure(hits / n, hits / m)


def score(reference: str, prediction: str) -> dict[str, float]:
    """The four F-measures for one sample, as `RougeScorer(...).score(reference, prediction)`."""
    return dict(zip(METRICS, scores(reference, prediction), strict=True))


def scores(reference: str, prediction: str) -> tuple[float, float, float, float]:
    """`score`'s F-measures, in `METRICS` order."""
    ref_lines, pred_lines = tokenize_lines(reference), tokenize_lines(prediction)
    ref_tokens = list(chain.from_iterable(ref_lines))
    pred_tokens = list(chain.from_iterable(pred_lines))
    pred_counts = Counter(pred_tokens)
    return (
        # Unigrams counted as tokens and bigrams as pairs: the counts of rouge_score's n-gram tuples.
        _overlap_f(Counter(ref_tokens), pred_counts),
        _overlap_f(Counter(pairwise(ref_tokens)), Counter(pairwise(pred_tokens))),
        _lcs_f(ref_tokens, pred_tokens),
        _summary_lcs_f(ref_lines, pred_lines, pred_counts),
    )
