"""ROUGE-1/2/L/Lsum exactly as `rouge_score` computes them, only faster.

`evaluate`'s "rouge" metric, which the MLCommons reference calls, is
`rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
use_stemmer=True).score(reference, prediction)` per sample. This module gives
the same numbers (tests compare it with `rouge_score` itself on random texts)
with changes that do not touch the arithmetic:

* each text is tokenized once (its tokens for a whole text are the concatenation
  of its tokens per line), by str.translate and split for an ASCII text, else one
  regular expression, either finding exactly the tokens `rouge_score`'s lower /
  replace / split / filter steps leave, and the Porter stemmer's answer for each
  word is cached;
* the LCS tables are built with the bit-parallel algorithm of Allison & Dix /
  Hyyrö over Python integers, one integer per table row, instead of cell by
  cell, for all the candidate lines at once: the lines side by side in one
  integer (`_Lines` says why they never mix, and why ROUGE-L can join them up);
* ROUGE-Lsum's union LCS is read out of those rows with `rouge_score`'s own tie
  rule, so the same LCSs are chosen, by all the lines' walks at once, one step
  per ref token the candidate has (`_Lines.union_lcs` says why each is exact),
  and its hits are counted as an overlap of token counts (`_summary_lcs_f` says
  why that is rouge_score's count).
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
    of the line below p (Allison & Dix / Hyyrö's bit-parallel LCS). With the guard bits 0 in every row, the
    addition's carry out of a line stops at its guard (which the mask then clears): the lines never mix, and
    each goes through exactly the steps it would alone.
    """

    def __init__(self, lines: Sequence[Sequence[str]]) -> None:
        tokens: list[str | None] = []  # the lines' tokens, a guard (None) after each
        for line in lines:
            if line:
                tokens += line
                tokens.append(None)
        masks: dict[str | None, int] = {}
        get = masks.get
        for position, token in enumerate(tokens):
            masks[token] = get(token, 0) | (1 << position)
        guards = masks.pop(None, 0)
        self.masks: dict[str | None, int] = masks
        """Each token -> the bits of its positions in all lines."""
        self.guards = guards
        """The guard bits."""
        self.full = ((1 << len(tokens)) - 1) ^ guards
        """Every line's bits and no guard bit: the row before any ref token."""
        self.tops = guards >> 1
        """Each line's last bit."""

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

    def union_lcs(self, common_masks: list[int]) -> list[int]:
        """The union of the LCSs that rouge_score's `_backtrack_norec` reads out of a ref sequence and each
        line: the k of the ref tokens in it, last first, `common_masks` being the masks of the ref tokens the
        lines have, in order (a token no line has leaves every row as it is: the walk passes it by).

        The walk, from the table's corner: a match goes diagonally; otherwise it moves left when
        t[i][j-1] > t[i-1][j], else up. Off a match t[i][j] is the larger of the two, so that is: left
        exactly when t[i-1][j] is below t[i][j]. Then t[i][j-1] = t[i][j], and t[i-1][j-1] is below it too,
        so once the walk turns left in a row it keeps going left, at the same value, up to that row's next
        match on the left, and takes it. So at row i, column j, the walk takes the ref token, and goes on
        from the rightmost match column c <= j at (i-1, c-1), exactly when there is a match at j or
        t[i-1][j] < t[i][j]; otherwise it goes up to (i-1, j).

        Both are one bit of `steps[k]` at the walk's column. Row i turns into row i+1 (the k-th ref token,
        its match bits M) as V' = (V + U) | (V - U), U = V & M; in each run of 1 bits of V that has a bit of
        U, from its lowest U bit u to its top bit b, the 0 moves from b + 1 down to u, so t grows by one at
        the columns u + 1 to b + 1 and nowhere else. The addition's carries, (V + U) ^ V ^ U, are 1 at just
        those columns, and shifted down one, at the walk's position j - 1: steps[k] is M | carries >> 1.

        So every line walks at once: `walkers` has one bit per line, at its j - 1, and a ref token is in the
        union when a walker is on a bit of its `steps`. A walker on a match steps one down; any other that
        takes goes below the rightmost match under it. A walker that leaves its line stops: the mask drops
        it (and no `steps` has a guard bit: M has none, and no carry leaves a guard, 0 in V and U). When the
        walk of a line has taken its LCS, the table holds 0 left of its column: no match there, no walker
        steps on a bit."""
        full = self.full
        row = full
        steps = []
        for mask in common_masks:
            match = row & mask
            added = row + match
            steps.append(mask | ((added ^ row ^ match) >> 1))
            row = (added | (row ^ match)) & full
        walkers = self.tops
        union = []
        for k in range(len(common_masks) - 1, -1, -1):
            taking = walkers & steps[k]
            if taking:
                union.append(k)
                mask = common_masks[k]
                on_match = taking & mask
                walkers ^= taking
                walkers |= on_match >> 1
                jumping = taking ^ on_match
                while jumping:
                    walker = jumping & -jumping
                    jumping ^= walker
                    # One below the rightmost match under it (in its line: it takes, so there is one).
                    walkers |= (1 << (mask & (walker - 1)).bit_length()) >> 2
                walkers &= full
                if not walkers:
                    break
        return union


def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    return _Lines([can]).joined_lcs_length(ref)


def lcs_indices(ref: Sequence[str], can: Sequence[str]) -> list[int]:
    """The ref positions of the LCS that rouge_score's `lcs_ind` reads out."""
    lines = _Lines([can])
    common = [i for i, token in enumerate(ref) if token in lines.masks]  # the only positions an LCS can use
    return [common[k] for k in reversed(lines.union_lcs([lines.masks[ref[i]] for i in common]))]


def _lcs_f(target: Sequence[str], prediction: _Lines, prediction_length: int) -> float:
    if not target or not prediction_length:
        return 0.0
    length = prediction.joined_lcs_length(target)
    return _fmeasure(length / prediction_length, length / len(target))


def _summary_lcs_f(target_lines: list[list[str]], lines: _Lines, prediction_counts: Counter[str]) -> float:
    """rouge_score's `_summary_level_lcs` (ROUGE paper, section 3.2); `prediction_counts`: the prediction's tokens.

    Union LCS: the tables of a ref line against every prediction line are built at once, and the union of
    the lines' LCSs is read out of them in one walk (`_Lines.union_lcs`).

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
        common = list(filter(masks.__contains__, ref))
        union_tokens.extend(map(common.__getitem__, lines.union_lcs(list(map(masks.__getitem__, common)))))
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
