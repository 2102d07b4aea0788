"""PRM800K's MATH answer grader, which deepseek-r1's accuracy uses for its math500 samples.

`grade_answer(given, ground_truth)` behaves as `grade_answer` of openai/prm800k's `prm800k/grading/grader.py`
(with its `math_normalize.py`) at 7ecc794703b2877f63226f2477a49b34f9b25163, the commit the MLCommons reference
(`language/deepseek-r1/eval_accuracy.py`, `evaluate_math500`) pins as a submodule. An answer is right when

1. both normalize to the same string under the MATH release's (Hendrycks') normalization, or
2. both normalize to the same string under the grader's own normalization, or
3. element by element (tuples and intervals are split), the ground truth's element and the answer's are the
   same reduced fraction, or are both not integers and sympy simplifies their difference to 0.

tests/test_deepseek_graders.py holds this module to the transcription in `accuracy.reference_graders`. The one
difference: where the original's bare `except:` also swallows KeyboardInterrupt and SystemExit (a Ctrl-C in the
middle of `sympy.simplify` grades the answer wrong and carries on), this module catches `Exception` only. No
input makes sympy or pylatexenc raise anything else, so every answer is graded the same.

sympy can take unbounded time (and memory) on adversarial expressions. The guards against that are PRM800K's
(`_sympy_allowed`) and are kept exactly as they are, since they decide which answers get to sympy, and so the
grade. There is no timeout in here: callers run `grade_answer` in worker processes with their own time limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import sympy
from pylatexenc import latex2text
from sympy.parsing import sympy_parser

__all__ = ["grade_answer", "normalize_mathd", "normalize_sympy", "split_elements"]

# ---------------------------------------------------------------------------------------------------------------
# The MATH release's normalization (PRM800K's math_normalize.py, itself Hendrycks' math_equivalence)
# ---------------------------------------------------------------------------------------------------------------

# `$` (not `\Z`), no DOTALL, lazy text: exactly what both normalizations match, trailing newline and
# `\text{a} + \text{b}` (unwrapped to `a} + \text{b`) included.
_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")

# Plain substitutions, in order: the order matters (`\\` -> `\` before `\left`, `dfrac` before `\frac` fixes).
_MATHD_REWRITES: tuple[tuple[str, str], ...] = (
    ("\n", ""),
    ("\\!", ""),  # LaTeX negative thin space
    ("\\\\", "\\"),  # answers escaped once too often
    ("tfrac", "frac"),  # \tfrac and \dfrac only change the size; unanchored, as in the original
    ("dfrac", "frac"),
    ("\\left", ""),  # sizing only (and it eats `\left` out of `\leftarrow`, as in the original)
    ("\\right", ""),
    ("^{\\circ}", ""),  # degrees
    ("^\\circ", ""),
    ("\\$", ""),  # currency
)

_UNITS_TEXT = "\\text{ "
"""Where MATH puts units: the answer ends before it (a space after the brace is what marks units)."""


class _NotNormalizable(Exception):
    """An answer the MATH normalization fails on (an IndexError or AssertionError in the original): it is then
    compared as it was before normalizing."""


def normalize_mathd(answer: str) -> str:
    """The answer under the MATH release's normalization (PRM800K's `math_normalize.normalize_answer`)."""
    answer = answer.strip()
    wrapped = _TEXT_WRAPPED.search(answer)
    if wrapped is not None:
        answer = wrapped["text"].strip()
    try:
        return _mathd_strip(answer)
    except _NotNormalizable:
        return answer


def _mathd_strip(text: str) -> str:
    """Hendrycks' `_strip_string`: layout, sizing and unit noise out, fractions and roots in one spelling."""
    for old, new in _MATHD_REWRITES:
        text = text.replace(old, new)
    if _UNITS_TEXT in text:
        # The original asserts there is exactly one such units marker.
        if text.count(_UNITS_TEXT) != 1:
            raise _NotNormalizable
        text = text.partition(_UNITS_TEXT)[0]
    text = text.replace("\\%", "")
    # A bare leading decimal point gets its zero, so ".5" and "0.5" meet.
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text.startswith("."):
        text = "0" + text
    # "k = 5" -> " 5": a short left-hand side is taken for a variable name, a long one is kept.
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _brace_sqrt_arguments(text)
    text = text.replace(" ", "")
    text = _brace_frac_arguments(text)
    if text == "0.5":
        # The MATH answers write one half as a fraction.
        text = "\\frac{1}{2}"
    return _slash_to_frac(text)


def _brace_sqrt_arguments(text: str) -> str:
    r"""`\sqrt3` -> `\sqrt{3}`: only the one character after `\sqrt` is taken (so `\sqrt 3` -> `\sqrt{ }3`)."""
    if "\\sqrt" not in text:
        return text
    head, *tails = text.split("\\sqrt")
    out = [head]
    for tail in tails:
        if not tail:
            raise _NotNormalizable  # `\sqrt` with nothing after it
        out.append("\\sqrt" + (tail if tail[0] == "{" else "{" + tail[0] + "}" + tail[1:]))
    return "".join(out)


def _brace_frac_arguments(text: str) -> str:
    r"""`\frac12` -> `\frac{1}{2}`, `\frac1{72}` -> `\frac{1}{72}`: single-character arguments get braces."""
    head, *tails = text.split("\\frac")
    out = [head]
    for tail in tails:
        if not tail:
            raise _NotNormalizable  # `\frac` with nothing after it
        if tail[0] == "{":
            out.append("\\frac" + tail)
        elif len(tail) < 2:
            return text  # `\frac1` and nothing more: the original gives up and keeps the whole text as it is
        elif tail[1] == "{":
            out.append("\\frac{" + tail[0] + "}" + tail[1:])
        else:
            out.append("\\frac{" + tail[0] + "}{" + tail[1] + "}" + tail[2:])
    return "".join(out)


def _slash_to_frac(text: str) -> str:
    """`3/4` -> `\\frac{3}{4}`, for a model that writes the slash where MATH writes the fraction; only integers in
    their plain spelling (no `+`, spaces, leading zeros or `_`: the round trip through `int` must give `text`)."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    if f"{numerator}/{denominator}" != text:
        return text
    return f"\\frac{{{numerator}}}{{{denominator}}}"


# ---------------------------------------------------------------------------------------------------------------
# The grader's own normalization (grader.py's `_normalize`), for the comparisons sympy makes
# ---------------------------------------------------------------------------------------------------------------

_SYMPY_REWRITES: tuple[tuple[str, str], ...] = (
    ("\\%", "%"),
    ("\\$", "$"),
    ("$", ""),  # currency and percent carry no value here
    ("%", ""),
    (" or ", " , "),  # "2 or 3" and "2 and 3" are the set {2, 3}: made a tuple
    (" and ", " , "),
    ("million", "*10^6"),
    ("billion", "*10^9"),
    ("trillion", "*10^12"),
)

# Removed one after the other, in this order (removing one can make the next), anywhere in the text: "Monday"
# loses its "day", "perimeter" its "meter". A plural ending, spaces and a power ("cm^2") go with the unit.
_UNIT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?")
    for unit in (
        "degree",
        "cm",
        "centimeter",
        "meter",
        "mile",
        "second",
        "minute",
        "hour",
        "day",
        "week",
        "month",
        "year",
        "foot",
        "feet",
        "inch",
        "yard",
    )
)
_DEGREE_SIGN = re.compile(r"\^ *\\circ")
_NEGATIVE_THIN_SPACE_AFTER_COMMA = re.compile(r",\\! *")  # "1,\!000" is one thousand
_SPACE_AFTER_MINUS = re.compile(r"- *")  # "- 3 1/2" must stay one negative mixed number
_MIXED_NUMBER = re.compile(r"([0-9]) +([0-9])")  # "7 3/4" is 7+3/4
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")  # a comma followed by exactly three digits


def normalize_sympy(expr: str) -> str:
    """The answer as grader.py's `_normalize` leaves it for the comparison by string, and then by sympy."""
    wrapped = _TEXT_WRAPPED.search(expr)
    if wrapped is not None:
        expr = wrapped["text"]  # not stripped, unlike the MATH normalization
    for old, new in _SYMPY_REWRITES:
        expr = expr.replace(old, new)
    for unit in _UNIT_PATTERNS:
        expr = unit.sub("", expr)
    expr = _DEGREE_SIGN.sub("", expr)
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    expr = _NEGATIVE_THIN_SPACE_AFTER_COMMA.sub("", expr)
    # "2.0" and "1e3" are the integers 2 and 1000 (and anything within 1e-7 of an integer is that integer).
    value = _float_or_none(expr)
    if value is not None and _is_near_integer(value):
        expr = str(round(value))
    if "\\" in expr:
        try:
            expr = _latex_to_sympy_text(expr)
        except Exception:
            pass  # LaTeX that pylatexenc cannot read is compared as it is
    expr = _SPACE_AFTER_MINUS.sub("-", expr)
    expr = _MIXED_NUMBER.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "")
    # Braces that survive are LaTeX grouping with no meaning left.
    expr = expr.replace("{", "").replace("}", "")
    expr = expr.lower()  # text answers ("Monday", "B") are not case sensitive
    integer = _integer_text(expr)
    return expr if integer is None else integer


# Characters pylatexenc writes for what sympy needs spelled out; in this order.
_LATEX_TEXT_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("√", "sqrt"),
    ("π", "pi"),
    ("∞", "inf"),
    ("∪", "U"),
    ("·", "*"),
    ("×", "*"),
)


def _latex_to_sympy_text(expr: str) -> str:
    """LaTeX as plain text sympy can parse."""
    expr = expr.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac")
    # "3\frac12" must read as 3 1/2 (then 3+1/2), not 31/2.
    expr = expr.replace("\\frac", " \\frac")
    text: str = latex2text.LatexNodes2Text().latex_to_text(expr)
    for symbol, spelled in _LATEX_TEXT_SYMBOLS:
        text = text.replace(symbol, spelled)
    return text.strip()


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_near_integer(value: float) -> bool:
    try:
        return abs(value - round(value)) <= 1e-7
    except (OverflowError, ValueError):  # inf, nan
        return False


def _strip_thousands_commas(expr: str) -> str:
    """`1,234,567` -> `1234567`, leaving the commas of tuples such as `(1,2)`: until nothing changes, since one
    pass skips a comma whose left digit the previous match consumed."""
    while True:
        stripped = _THOUSANDS_COMMA.sub(r"\1\3\4", expr)
        if stripped == expr:
            return expr
        expr = stripped


def _is_integer_text(text: str) -> bool:
    """Whether the text is a number within 1e-7 of an integer, thousands commas allowed."""
    value = _float_or_none(_strip_thousands_commas(text))
    return value is not None and _is_near_integer(value)


def _integer_text(text: str) -> str | None:
    """The integer the text spells (`1,000` -> `1000`; truncated, as the original does), or None."""
    if not _is_integer_text(text):
        return None
    return str(int(float(text.replace(",", ""))))


# ---------------------------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------------------------

_BRACKETS = "()[]"
# sympy might hang on these (towers of powers, big exponents): such answers are not given to it at all.
_SLOW_SUBSTRINGS = ("^{", "^(")
_SLOW_PATTERNS = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
# Integers must match exactly; only non-integer elements are compared by sympy.
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")  # `.` is any character, as in the original


def split_elements(expr: str) -> list[str]:
    """A tuple or interval's elements (`(1,2]` -> `1`, `2`), thousands commas kept inside numbers; anything else,
    one element. Nested brackets make it one element."""
    expr = _strip_thousands_commas(expr)
    if not expr:
        return []
    inner = expr[1:-1]
    if len(expr) > 2 and expr[0] in _BRACKETS and expr[-1] in _BRACKETS and not any(b in inner for b in _BRACKETS):
        return [element.strip() for element in inner.split(",")]
    return [expr]


def _sympy_allowed(expr: str) -> bool:
    """PRM800K's guard: no free text and no functions of more than two variables (letters other than those of
    `sqrt` and `frac`), nothing sympy might hang on."""
    letters = {c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}
    if len(letters) > 2:
        return False
    if any(slow in expr for slow in _SLOW_SUBSTRINGS):
        return False
    return not any(pattern.search(expr) for pattern in _SLOW_PATTERNS)


_TRANSFORMATIONS: tuple[Callable[..., object], ...] = (
    *sympy_parser.standard_transformations,
    sympy_parser.implicit_multiplication_application,  # "2x" and "sqrt2" as a person writes them
)


def _equal_under_sympy(ground_truth: str, given: str) -> bool:
    difference = f"({ground_truth})-({given})"
    if not _sympy_allowed(difference):
        return False
    try:
        parsed = sympy_parser.parse_expr(difference.replace("^", "**"), transformations=_TRANSFORMATIONS)
        return bool(sympy.simplify(parsed) == 0)
    except Exception:
        return False  # what sympy cannot parse or simplify is not equal


def _elements_equal(ground_truth: str, given: str) -> bool:
    if _FRACTION.search(ground_truth) and _FRACTION.search(given):
        # Both fractions: by string only, so an unreduced 2/4 for 1/2 is wrong.
        return ground_truth == given
    if _is_integer_text(ground_truth) != _is_integer_text(given):
        # An integer against a non-integer: wrong without asking sympy (integers already compared as strings).
        return False
    return _equal_under_sympy(ground_truth, given)


def grade_answer(given_answer: str | None, ground_truth: str) -> bool:
    """Whether `given_answer` is the `ground_truth` answer of a MATH problem (PRM800K's `grade_answer`)."""
    if given_answer is None:
        return False
    # At least as lenient as the MATH release's own check.
    if normalize_mathd(ground_truth) == normalize_mathd(given_answer):
        return True
    truth, given = normalize_sympy(ground_truth), normalize_sympy(given_answer)
    if truth == given:
        return True
    if not given:
        return False
    truth_elements, given_elements = split_elements(truth), split_elements(given)
    # A tuple or interval needs the same brackets: (1,2] is not [1,2].
    if len(truth_elements) > 1 and (truth[0] != given[0] or truth[-1] != given[-1]):
        return False
    if len(truth_elements) != len(given_elements):
        return False
    return _all_equal(zip(truth_elements, given_elements, strict=True))


def _all_equal(pairs: Iterable[tuple[str, str]]) -> bool:
    # In order, stopping at the first difference: later elements never reach sympy.
    return all(_elements_equal(truth, given) for truth, given in pairs)
