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
  cell; for ROUGE-Lsum, the tables of a ref line against all the candidate lines
  at once, the lines side by side in one integer (`_Lines` says why they never mix);
* the read-out of one LCS (for ROUGE-Lsum's union LCS) walks those rows with
  `rouge_score`'s own tie rule, so the same LCS is chosen; it visits only the ref
  tokens the candidate has (the walk passes the others by), each at most once
  (a run of steps to the left is one jump to the row's next match), and stops at
  the last match (`_union_lcs` says why each is exact);
* ROUGE-Lsum skips a candidate line whose LCS cannot add to the union (every ref
  position it could use is in already), and counts its hits as an overlap of token
  counts (`_summary_lcs_f` says why that is rouge_score's count).
"""

from __future__ import annotations

import functools
import operator
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
_ASCII_NOT_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not re.fullmatch(r"[a-z0-9\n]", c)})
"""For an ASCII text, `text.translate(_ASCII_NOT_WORD).split()` is `_WORD.findall(text)`, at half the cost;
line breaks stay, for the split into lines."""
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


def _tokens(words: list[str]) -> list[str]:
    try:
        return list(map(_TOKENS.__getitem__, words))  # the common case: every word seen before
    except KeyError:
        return _new_tokens(words)


def tokenize(text: str) -> list[str]:
    """`rouge_score.tokenize.tokenize(text, PorterStemmer())`, token for token."""
    lower = text.lower()
    return _tokens(lower.translate(_ASCII_NOT_WORD).split() if lower.isascii() else _WORD.findall(lower))


def tokenize_lines(text: str) -> list[list[str]]:
    """The tokens of each line, as rouge_score's ROUGE-Lsum sees them: `[tokenize(line) for line in
    text.split("\n") if line]`, and empty token lists for empty lines (they add nothing to any score)."""
    lower = text.lower()
    if lower.isascii():
        return [_tokens(line.split()) for line in lower.translate(_ASCII_NOT_WORD).split("\n")]
    return [_tokens(_WORD.findall(line)) for line in lower.split("\n")]


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


class _Lines:
    """Candidate lines side by side in one bit vector, each followed by a guard bit.

    A row of the LCS tables of one ref sequence against all the lines at once is such a vector: a 0 bit at a
    line's position p means t[i][p+1] = t[i][p] + 1 in that line's table, so t[i][p] is p minus the 1 bits
    of the line below p. The guard bit is 0 in every row of `rows`, so the addition's carry out of a line stops there
    (and the mask then clears it): the lines never mix, and each goes through exactly the steps it would
    alone (Allison & Dix / Hyyrö's bit-parallel LCS).
    """

    def __init__(self, lines: Sequence[Sequence[str]]) -> None:
        self.spans: list[tuple[int, int, int, int]] = []
        """Each non-empty line's (index of its lowest bit, that bit, its bits, its size)."""
        tokens: list[str | None] = []  # the lines' tokens, a guard (None) after each
        for line in lines:
            if line:
                low = len(tokens)
                self.spans.append((low, 1 << low, ((1 << len(line)) - 1) << low, len(line)))
                tokens += line
                tokens.append(None)
        masks: dict[str | None, int] = {}
        get = masks.get
        for position, token in enumerate(tokens):
            masks[token] = get(token, 0) | (1 << position)
        guards = masks.pop(None, 0)
        self.masks: dict[str | None, int] = masks
        """Each token -> the bits of its positions in all lines."""
        self.full = ((1 << len(tokens)) - 1) ^ guards
        """Every line's bits and no guard bit: the row before any ref token."""
        self.guards = guards
        """The guard bits."""

    def joined_lcs_length(self, ref: Sequence[str]) -> int:
        """The LCS length of `ref` and all the lines joined into one sequence (ROUGE-L).

        With the guard bits 1 from the start, the addition's carry runs through them, so the lines join up: a
        guard is then a position no token matches, which lengthens no common subsequence."""
        masks = self.masks
        everything = self.full | self.guards
        row = everything
        for mask in map(masks.get, ref):
            if mask:
                match = row & mask
                row = ((row + match) | (row ^ match)) & everything
        return everything.bit_length() - row.bit_count()

    def rows(self, common_masks: list[int]) -> list[int]:
        """The row before the first of the ref tokens the lines have (their `common_masks`) and after each.

        A ref token no line has leaves the row as it is, so rows[k] is the row for every ref prefix that ends
        between the (k-1)th and the kth of those tokens (rows[0]: before any)."""
        full = row = self.full
        rows = [row]
        for mask in common_masks:
            match = row & mask
            row = ((row + match) | (row ^ match)) & full  # match's bits are row's: ^ is -, without borrows
            rows.append(row)
        return rows


def _union_lcs(common: list[str], common_masks: list[int], lines: _Lines) -> set[int]:
    """The union of the LCSs that rouge_score's `_backtrack_norec` reads out of a ref sequence and each line:
    their k, each the index of a ref token in `common` (the ref tokens the lines have, in order).

    Its walk from the table's corner: a match goes diagonally; otherwise it moves left when
    t[i][j-1] > t[i-1][j], else up. Off a match t[i][j] is the larger of the two, so that is:
    left exactly when t[i-1][j] is below t[i][j]. Then t[i][j-1] = t[i][j], and t[i-1][j-1] is below it
    too, so once the walk turns left in a row it keeps going left, at the same value, up to that row's
    next match on the left, and takes it. So in row i at column j with value L, the walk takes the ref
    token (and goes on from the rightmost match column c <= j, at (i-1, c-1), with L-1) when there is a
    match at j or t[i-1][j] < L, and otherwise goes up to (i-1, j). Where the line has no match at or left
    of j the two rows are equal there, so the walk goes up: ref tokens no line has are never visited, the
    others once each, and the walk ends at the last match. Here j is a bit index in the whole vector.

    A union is the same in any order, so the lines go longest LCS first, and less is read: a line is skipped
    when every ref token it has is in the union already (its LCS, a subset of those, cannot add one), and a
    walk stops below the lowest k not in yet.
    """
    masks = lines.masks
    rows = lines.rows(common_masks)
    last = rows[-1]
    union: set[int] = set()
    untaken = Counter(common)
    open_ = functools.reduce(operator.or_, common_masks, 0)  # the bits an untaken ref token could match
    floor = 0  # the lowest k not in the union
    spans = lines.spans
    lengths = [size - (last & bits).bit_count() for _, _, bits, size in spans]  # each line's LCS length
    for line in sorted(range(len(spans)), key=lengths.__getitem__, reverse=True):
        low, low_bit, below, size = spans[line]
        if not open_ & below:
            continue
        length = lengths[line]  # at least 1: the line has an untaken ref token
        j, threshold = low + size, size - length  # taken when popcount(row & below) > threshold: t[i-1][j] < L
        for k in range(len(common_masks) - 1, floor - 1, -1):
            hits = common_masks[k] & below
            if hits:
                column = hits.bit_length()
                if column == j or (rows[k] & below).bit_count() > threshold:
                    if k not in union:
                        union.add(k)
                        token = common[k]
                        untaken[token] -= 1
                        if not untaken[token]:
                            open_ &= ~masks[token]
                    length -= 1
                    if not length:
                        break
                    j = column - 1
                    below = (1 << j) - low_bit
                    threshold = j - low - length
        if not open_:
            break
        while floor in union:
            floor += 1
    return union


def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    return _Lines([can]).joined_lcs_length(ref)


def lcs_indices(ref: Sequence[str], can: Sequence[str]) -> list[int]:
    """The ref positions of the LCS that rouge_score's `lcs_ind` reads out."""
    lines = _Lines([can])
    positions = [i for i, token in enumerate(ref) if token in lines.masks]
    common = [ref[i] for i in positions]
    return [positions[k] for k in sorted(_union_lcs(common, [lines.masks[token] for token in common], lines))]


def _lcs_f(target: Sequence[str], prediction: _Lines, prediction_length: int) -> float:
    if not target or not prediction_length:
        return 0.0
    length = prediction.joined_lcs_length(target)
    return _fmeasure(length / prediction_length, length / len(target))


def _summary_lcs_f(target_lines: list[list[str]], lines: _Lines, prediction_counts: Counter[str]) -> float:
    """rouge_score's `_summary_level_lcs` (ROUGE paper, section 3.2); `prediction_counts`: the prediction's tokens.

    Union LCS: the tables of a ref line against every prediction line are built at once (`_Lines`), and the
    union of the lines' LCSs is read out of them (`_union_lcs`).

    Hits: rouge_score walks each ref line's union LCS in order and counts a hit for a token while both its
    counts (in the whole prediction, and in the whole reference) are above 0, taking one off each. A token t
    then has min(U, C, R) hits, U, C and R being its numbers in all union LCSs, the prediction and the
    reference; U <= R (the union LCSs are distinct positions of the reference), so that is min(U, C): the
    hits are the overlap of the union LCSs' token counts with the prediction's, whatever the order.
    """
    m = sum(map(len, target_lines))
    n = prediction_counts.total()
    if not n or not m:
        return 0.0
    masks = lines.masks
    union_tokens: list[str] = []
    for ref in target_lines:
        common = [token for token in ref if token in masks]
        union_tokens.extend(map(common.__getitem__, _union_lcs(common, [masks[token] for token in common], lines)))
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
    lines = _Lines(pred_lines)
    return (
        # Unigrams counted as tokens and bigrams as pairs: the counts of rouge_score's n-gram tuples.
        _overlap_f(Counter(ref_tokens), pred_counts),
        _overlap_f(Counter(pairwise(ref_tokens)), Counter(pairwise(pred_tokens))),
        _lcs_f(ref_tokens, lines, len(pred_tokens)),
        _summary_lcs_f(ref_lines, lines, pred_counts),
    )
