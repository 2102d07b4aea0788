r"""Deterministic generator of a SYNTHETIC deepseek-r1-style sample.

Nothing here comes from AIME, MATH, GPQA, MMLU-Pro or LiveCodeBench: every question is built from templates
over a small invented world (towns, planets, elements), so that a tiny model can run the prompts on CPU and
the project's graders have something real to judge. The rows have the columns of MLPerf's deepseek-r1 data
set (`text_input`, `ground_truth`, `dataset`, `question`; mlcommons/inference `language/deepseek-r1`), plus
an `id`, and their `dataset` names are those the real data uses, so that each row is graded by the kind its
name selects (`accuracy.answers.kind_of`):

* math500: `\boxed{}` answers in a few LaTeX forms (`\frac{a}{b}`, `k\sqrt{m}`, integers), which PRM800K's
  grader must find equal to differently written right answers;
* aime (`aime` + a year): integers 0 to 999;
* gpqa and mmlu_pro: multiple choice, A-D and A-J;
* livecodebench: the ground truth is the `question_id` of a problem of a synthetic code_generation_lite
  test.jsonl (`problems`, `write_problems`), standard-input and functional (`class Solution`) ones, half of
  them with their private tests base64(zlib(pickle(JSON text))) as the real file has them.

`correct_output` and `wrong_output` write model-style answers that the graders judge right and wrong: for
tests, and for demos (a "perfect" accuracy log).
"""

from __future__ import annotations

import base64
import json
import math
import pickle
import random
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from types import MappingProxyType
from typing import Final

from accuracy.answers import GPQA_OPTIONS, MMLU_PRO_OPTIONS, kind_of

# The question makers and answer writers that scripts/synthetic_gpt_oss.py shares (`multiple_choice`, `Task`,
# `code_prompt`, `task_of`, `wrong_program`) are public too: that sample is built from the same questions.
__all__ = [
    "AIME_TEMPLATES",
    "GPQA_TEMPLATES",
    "SOURCES",
    "TASKS",
    "Task",
    "code_prompt",
    "correct_output",
    "multiple_choice",
    "problems",
    "rows",
    "task_of",
    "write_problems",
    "wrong_output",
    "wrong_program",
]

SOURCES: Final = ("math500", "aime", "gpqa", "mmlu_pro", "livecodebench")
"""The mix: row i is from SOURCES[i % 5], so that any five consecutive rows hold every kind of grading."""

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""DeepSeek-R1's recommended instruction for math, as the data set's math prompts end."""

# ---------------------------------------------------------------------------------------------------------------
# The invented world
# ---------------------------------------------------------------------------------------------------------------

_SYLLABLES = ["ka", "lo", "mi", "ra", "te", "vu", "no", "sa", "de", "fi", "ga", "pe", "zo", "ri"]


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _world() -> tuple[list[str], list[str], list[str]]:
    """Towns, planets and elements; fixed (seed 11) so that every seed's rows share them."""
    rng = random.Random(11)
    towns = sorted({_name(rng, 2) + "ville" for _ in range(12)})
    planets = sorted({_name(rng, 3) for _ in range(12)})
    elements = sorted({_name(rng, 2) + "ium" for _ in range(12)})
    return towns, planets, elements


TOWNS, PLANETS, ELEMENTS = _world()

Template = Callable[[random.Random], tuple[str, str]]
"""A math question and its ground truth."""
Choice = Callable[[random.Random], tuple[str, int, str]]
"""A multiple choice question, its numeric answer, and the unit its options are in ("" for none)."""

# ---------------------------------------------------------------------------------------------------------------
# math500: \boxed{} answers, several LaTeX forms
# ---------------------------------------------------------------------------------------------------------------

_SQUARE_FREE = [2, 3, 5, 6, 7, 10, 11, 13, 14, 15]


def _probability(rng: random.Random) -> tuple[str, str]:
    """A reduced fraction strictly between 0 and 1, so never an integer: `\\frac{p}{q}`."""
    red, blue = rng.randint(1, 9), rng.randint(1, 9)
    town = rng.choice(TOWNS)
    divisor = math.gcd(red, red + blue)
    return (
        f"A jar from the {town} market holds {red} red and {blue} blue beads. One bead is drawn at random. What "
        "is the probability that it is red? Express your answer as a common fraction.",
        f"\\frac{{{red // divisor}}}{{{(red + blue) // divisor}}}",
    )


def _radical(rng: random.Random) -> tuple[str, str]:
    """`\\sqrt{m}` or `k\\sqrt{m}`: equal, for the grader, to the unsimplified `\\sqrt{k^2 m}`."""
    root, factor = rng.choice(_SQUARE_FREE), rng.randint(1, 4)
    truth = f"\\sqrt{{{root}}}" if factor == 1 else f"{factor}\\sqrt{{{root}}}"
    return (
        f"What is the positive value of $x$ if $x^2 = {factor * factor * root}$? Express your answer in simplest "
        "radical form.",
        truth,
    )


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    """A plain integer, negative at times."""
    a, b, c = rng.randint(2, 15), rng.randint(2, 15), rng.randint(1, 200)
    return f"Compute ${a} \\times {b} - {c}$.", str(a * b - c)


def _roots(rng: random.Random) -> tuple[str, str]:
    """A plain integer from a short word problem."""
    first, second = rng.randint(1, 9), rng.randint(1, 9)
    return (
        f"The two roots of $x^2 - {first + second}x + {first * second} = 0$ are the ages of two {rng.choice(TOWNS)} "
        "goats. What is the product of their ages?",
        str(first * second),
    )


MATH_TEMPLATES: Final[dict[str, Template]] = {
    "probability": _probability,
    "radical": _radical,
    "arithmetic": _arithmetic,
    "roots": _roots,
}

# ---------------------------------------------------------------------------------------------------------------
# aime: integers 0 to 999
# ---------------------------------------------------------------------------------------------------------------


def _power_remainder(rng: random.Random) -> tuple[str, str]:
    base, exponent = rng.randint(2, 19), rng.randint(10, 99)
    return f"Find the remainder when ${base}^{{{exponent}}}$ is divided by $1000$.", str(pow(base, exponent, 1000))


def _divisors(rng: random.Random) -> tuple[str, str]:
    powers = {2: rng.randint(1, 5), 3: rng.randint(0, 3), 5: rng.randint(0, 2), 7: rng.randint(0, 2)}
    number = math.prod(prime**power for prime, power in powers.items())
    return f"Find the number of positive divisors of ${number}$.", str(math.prod(p + 1 for p in powers.values()))


def _windows(rng: random.Random) -> tuple[str, str]:
    floors = rng.randint(100, 2000)
    return (
        f"The tower of {rng.choice(TOWNS)} has {floors} floors, and floor $k$ has $k$ windows. Find the remainder "
        "when the total number of windows is divided by $1000$.",
        str(floors * (floors + 1) // 2 % 1000),
    )


AIME_TEMPLATES: Final[dict[str, Template]] = {
    "power": _power_remainder,
    "divisors": _divisors,
    "windows": _windows,
}

# ---------------------------------------------------------------------------------------------------------------
# gpqa (A-D) and mmlu_pro (A-J): multiple choice
# ---------------------------------------------------------------------------------------------------------------


def _mass_number(rng: random.Random) -> tuple[str, int, str]:
    protons = rng.randint(3, 40)
    neutrons = protons + rng.randint(0, 12)
    return (
        f"An isotope of {rng.choice(ELEMENTS)} has {protons} protons and {neutrons} neutrons. What is its mass number?",
        protons + neutrons,
        "",
    )


def _distance(rng: random.Random) -> tuple[str, int, str]:
    speed, seconds = rng.randint(2, 20), rng.randint(3, 30)
    return (
        f"A probe on {rng.choice(PLANETS)} rolls at a constant {speed} m/s for {seconds} s. How far does it roll?",
        speed * seconds,
        "m",
    )


def _charge(rng: random.Random) -> tuple[str, int, str]:
    current, seconds = rng.randint(2, 12), rng.randint(5, 60)
    return (
        f"A battery made on {rng.choice(PLANETS)} delivers a steady {current} A for {seconds} s. How much charge "
        "flows?",
        current * seconds,
        "coulombs",
    )


def _minutes(rng: random.Random) -> tuple[str, int, str]:
    hours, minutes = rng.randint(2, 9), rng.randint(40, 90)
    return (
        f"An hour on {rng.choice(PLANETS)} has {minutes} minutes. How many minutes are in {hours} of its hours?",
        hours * minutes,
        "",
    )


def _percent(rng: random.Random) -> tuple[str, int, str]:
    # Every one of these percentages of a multiple of 20 is a whole number.
    percent, base = rng.choice([5, 10, 20, 25, 40, 50, 75]), 20 * rng.randint(2, 30)
    return f"What is {percent}% of {base}?", percent * base // 100, ""


def _price(rng: random.Random) -> tuple[str, int, str]:
    price, lamps = rng.randint(3, 40), rng.randint(2, 25)
    return (
        f"Lamps in {rng.choice(TOWNS)} cost {price} coins each. How much do {lamps} lamps cost?",
        price * lamps,
        "coins",
    )


GPQA_TEMPLATES: Final[dict[str, Choice]] = {"mass": _mass_number, "distance": _distance, "charge": _charge}
MMLU_PRO_TEMPLATES: Final[dict[str, Choice]] = {"minutes": _minutes, "percent": _percent, "price": _price}


def _options(rng: random.Random, answer: int, count: int) -> list[int]:
    """`count` distinct positive numbers near `answer`, one of them `answer`, in random order. The range
    searched holds at least `count + 1` positive numbers, so the loop ends."""
    spread = max(count, answer // 4)
    values = {answer}
    while len(values) < count:
        values.add(rng.randint(max(1, answer - spread), answer + spread))
    options = sorted(values)
    rng.shuffle(options)
    return options


def multiple_choice(rng: random.Random, templates: Mapping[str, Choice], letters: str) -> tuple[str, str, str]:
    """The question with its options, the prompt (ending with the request for the letter), and the letter."""
    question, answer, unit = templates[rng.choice(sorted(templates))](rng)
    options = _options(rng, answer, len(letters))
    suffix = f" {unit}" if unit else ""
    listed = "\n".join(f"{letter}) {value}{suffix}" for letter, value in zip(letters, options, strict=True))
    full = f"{question}\n\n{listed}"
    prompt = (
        f"Answer the following multiple choice question.\n\n{full}\n\nThink step by step, then end with a line of "
        f"the form 'Answer: $LETTER', where LETTER is one of {letters}."
    )
    return full, prompt, letters[options.index(answer)]


# ---------------------------------------------------------------------------------------------------------------
# livecodebench: a synthetic code_generation_lite test.jsonl
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One synthetic LiveCodeBench problem: its statement (with its sample, the public test), how to make
    more tests (the private ones), and a program that solves it."""

    question_id: str
    title: str
    content: str
    sample: tuple[str, str]
    case: Callable[[random.Random], tuple[str, str]]
    solution: str
    func_name: str | None = None
    starter: str = ""
    pickled: bool = False


def _call(*args: object, result: object) -> tuple[str, str]:
    """A functional test as LCB writes it: one JSON argument a line, the expected return value as JSON."""
    return "\n".join(json.dumps(arg) for arg in args), json.dumps(result)


def _letters(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(low, high)))


def _sum_case(rng: random.Random) -> tuple[str, str]:
    values = [rng.randint(-100, 100) for _ in range(rng.randint(1, 8))]
    return f"{len(values)}\n{' '.join(map(str, values))}\n", f"{sum(values)}\n"


def _reverse_case(rng: random.Random) -> tuple[str, str]:
    word = _letters(rng, 1, 12)
    return f"{word}\n", f"{word[::-1]}\n"


def _spread_case(rng: random.Random) -> tuple[str, str]:
    values = [rng.randint(0, 99) for _ in range(rng.randint(1, 8))]
    return f"{len(values)}\n{' '.join(map(str, values))}\n", f"{max(values) - min(values)}\n"


def _triple_case(rng: random.Random) -> tuple[str, str]:
    number = rng.randint(1, 10**6)
    return f"{number}\n", "Yes\n" if number % 3 == 0 else "No\n"


def _pair_case(rng: random.Random) -> tuple[str, str]:
    while True:  # until exactly one pair adds up to the target
        nums = [rng.randint(-20, 20) for _ in range(rng.randint(2, 7))]
        first, second = sorted(rng.sample(range(len(nums)), 2))
        target = nums[first] + nums[second]
        pairs = [(i, j) for i in range(len(nums)) for j in range(i + 1, len(nums)) if nums[i] + nums[j] == target]
        if pairs == [(first, second)]:
            return _call(nums, target, result=[first, second])


def _vowels_case(rng: random.Random) -> tuple[str, str]:
    word = _letters(rng, 0, 15)
    return _call(word, result=sum(letter in "aeiou" for letter in word))


def _mirror_case(rng: random.Random) -> tuple[str, str]:
    half = [rng.randint(0, 9) for _ in range(rng.randint(1, 4))]
    nums = half + half[-2::-1] if rng.random() < 0.5 else half + [rng.randint(0, 9) for _ in range(3)]
    return _call(nums, result=nums == nums[::-1])


def _running_case(rng: random.Random) -> tuple[str, str]:
    nums = [rng.randint(-9, 9) for _ in range(rng.randint(1, 7))]
    return _call(nums, result=list(accumulate(nums)))


_TASKS: Final = (
    Task(
        "synthetic_sum",
        "Sum of Numbers",
        "Given N and then N integers, print their sum.\n\nSample Input\n3\n1 2 3\n\nSample Output\n6",
        ("3\n1 2 3\n", "6\n"),
        _sum_case,
        "import sys\n\ndata = sys.stdin.read().split()\nn = int(data[0])\nprint(sum(int(x) for x in data[1 : n + 1]))",
        pickled=True,
    ),
    Task(
        "synthetic_reverse",
        "Reverse",
        "Given a string S of lowercase letters, print S reversed.\n\nSample Input\nlamp\n\nSample Output\npmal",
        ("lamp\n", "pmal\n"),
        _reverse_case,
        "s = input().strip()\nprint(s[::-1])",
    ),
    Task(
        "synthetic_spread",
        "Spread",
        "Given N and then N integers, print the largest minus the smallest.\n\nSample Input\n3\n4 9 2\n\n"
        "Sample Output\n7",
        ("3\n4 9 2\n", "7\n"),
        _spread_case,
        "n = int(input())\nvalues = list(map(int, input().split()))\nprint(max(values) - min(values))",
        pickled=True,
    ),
    Task(
        "synthetic_triple",
        "Triple",
        "Given an integer N, print Yes if N is a multiple of 3 and No otherwise.\n\nSample Input\n12\n\n"
        "Sample Output\nYes",
        ("12\n", "Yes\n"),
        _triple_case,
        "n = int(input())\nprint('Yes' if n % 3 == 0 else 'No')",
    ),
    Task(
        "synthetic_pair",
        "Find the Pair",
        "Given nums and target, return the indices [i, j], i < j, of the only two numbers that add up to target."
        "\n\nExample: nums = [3, 8, 5], target = 13 gives [1, 2].",
        _call([3, 8, 5], 13, result=[1, 2]),
        _pair_case,
        "class Solution:\n    def findPair(self, nums: List[int], target: int) -> List[int]:\n        seen = {}\n"
        "        for j, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return [seen[target - x], j]\n            seen.setdefault(x, j)\n        return []",
        "findPair",
        "class Solution:\n    def findPair(self, nums: List[int], target: int) -> List[int]:\n        ",
        pickled=True,
    ),
    Task(
        "synthetic_vowels",
        "Count Vowels",
        'Return the number of vowels (a, e, i, o, u) in the lowercase string s.\n\nExample: s = "lantern" gives 2.',
        _call("lantern", result=2),
        _vowels_case,
        "class Solution:\n    def countVowels(self, s: str) -> int:\n        return sum(c in 'aeiou' for c in s)",
        "countVowels",
        "class Solution:\n    def countVowels(self, s: str) -> int:\n        ",
    ),
    Task(
        "synthetic_mirror",
        "Mirror List",
        "Return true if the list nums reads the same from both ends, false otherwise.\n\nExample: nums = [1, 2, 1]"
        " gives true.",
        _call([1, 2, 1], result=True),
        _mirror_case,
        "class Solution:\n    def isMirror(self, nums: List[int]) -> bool:\n        return nums == nums[::-1]",
        "isMirror",
        "class Solution:\n    def isMirror(self, nums: List[int]) -> bool:\n        ",
        pickled=True,
    ),
    Task(
        "synthetic_running",
        "Running Sum",
        "Return the running sums of nums: element i is nums[0] + ... + nums[i].\n\nExample: nums = [1, 2, 3] "
        "gives [1, 3, 6].",
        _call([1, 2, 3], result=[1, 3, 6]),
        _running_case,
        "class Solution:\n    def runningSum(self, nums: List[int]) -> List[int]:\n        total, sums = 0, []\n"
        "        for x in nums:\n            total += x\n            sums.append(total)\n        return sums",
        "runningSum",
        "class Solution:\n    def runningSum(self, nums: List[int]) -> List[int]:\n        ",
    ),
)
TASKS: Final = MappingProxyType({task.question_id: task for task in _TASKS})
"""The problems by question id (they are the same for every seed; only their private tests differ)."""


def _encode_private(tests_json: str) -> str:
    """How code_generation_lite stores private tests: base64(zlib(pickle(JSON text))). Protocol 4 is pinned
    so that the bytes are the same under every Python."""
    return base64.b64encode(zlib.compress(pickle.dumps(tests_json, protocol=4))).decode("ascii")


def _cases(tests: list[tuple[str, str]], testtype: str) -> str:
    return json.dumps([{"input": given, "output": wanted, "testtype": testtype} for given, wanted in tests])


def problems(seed: int = 0) -> list[dict[str, str]]:
    """The test.jsonl rows (code_generation_lite's fields, every value text) of every problem the
    livecodebench rows can name: the sample in the statement is the public test, and 1 to 3 private tests
    are drawn with `seed`; the same seed always gives the same rows."""
    rng = random.Random(seed)
    made = []
    for task in _TASKS:
        testtype = "stdin" if task.func_name is None else "functional"
        private = _cases([task.case(rng) for _ in range(rng.randint(1, 3))], testtype)
        made.append(
            {
                "question_title": task.title,
                "question_content": task.content,
                "platform": "synthetic",
                "question_id": task.question_id,
                "contest_id": "synthetic",
                "contest_date": "2024-01-01T00:00:00",
                "starter_code": task.starter,
                "difficulty": "easy",
                "public_test_cases": _cases([task.sample], testtype),
                "private_test_cases": _encode_private(private) if task.pickled else private,
                "metadata": json.dumps({} if task.func_name is None else {"func_name": task.func_name}),
            }
        )
    return made


def write_problems(path: Path, seed: int = 0) -> None:
    """`problems(seed)` as a test.jsonl that `accuracy.livecodebench.load_problems` reads: one JSON object a
    line, keys sorted, "\\n" endings, so that the same seed gives the same bytes."""
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in problems(seed))
    path.write_bytes(text.encode("utf-8"))


def code_prompt(task: Task) -> str:
    if task.func_name is None:
        return (
            f"Write a Python program that solves this problem.\n\n{task.content}\n\nRead the input from stdin and "
            "write the answer to stdout. Enclose your code within delimiters as follows.\n```python\n"
            "# YOUR CODE HERE\n```"
        )
    return (
        f"Solve this problem in Python.\n\n{task.content}\n\nComplete the starter code and enclose your code "
        f"within delimiters as follows.\n```python\n{task.starter}\n```"
    )


# ---------------------------------------------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------------------------------------------


def rows(count: int, *, seed: int, prefix: str = "synthetic") -> Iterator[dict[str, str]]:
    """`count` rows in deepseek-r1's schema, the sources cycling through `SOURCES`; the livecodebench rows go
    through every problem of `problems` (in an order drawn with `seed`) before naming one again. The same
    arguments always give the same rows."""
    rng = random.Random(seed)
    order = list(TASKS)
    rng.shuffle(order)
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        dataset = source
        if source == "math500":
            question, truth = MATH_TEMPLATES[rng.choice(sorted(MATH_TEMPLATES))](rng)
            prompt = f"{question}\n{MATH_INSTRUCTION}"
        elif source == "aime":
            question, truth = AIME_TEMPLATES[rng.choice(sorted(AIME_TEMPLATES))](rng)
            prompt = f"{question}\n{MATH_INSTRUCTION}"
            dataset = f"aime{rng.randint(1983, 2024)}"
        elif source == "gpqa":
            question, prompt, truth = multiple_choice(rng, GPQA_TEMPLATES, GPQA_OPTIONS)
        elif source == "mmlu_pro":
            question, prompt, truth = multiple_choice(rng, MMLU_PRO_TEMPLATES, MMLU_PRO_OPTIONS)
        else:
            task = TASKS[order[(i // len(SOURCES)) % len(order)]]
            question, prompt, truth = task.content, code_prompt(task), task.question_id
        yield {
            "id": f"{prefix}.{source}.{i}",
            "text_input": prompt,
            "ground_truth": truth,
            "dataset": dataset,
            "question": question,
        }


# ---------------------------------------------------------------------------------------------------------------
# Model-style answers
# ---------------------------------------------------------------------------------------------------------------

_FRACTION = re.compile(r"\\frac\{(\d+)\}\{(\d+)\}")
_RADICAL = re.compile(r"(\d*)\\sqrt\{(\d+)\}")


def _math_forms(truth: str) -> tuple[list[str], str]:
    """Ways of writing the ground truth that PRM800K's grader takes as equal to it, and a wrong value in the
    same form."""
    if found := _FRACTION.fullmatch(truth):
        top, bottom = found.groups()
        return [truth, f"\\dfrac{{{top}}}{{{bottom}}}", f"{top}/{bottom}"], f"\\frac{{{int(top) + 1}}}{{{bottom}}}"
    if found := _RADICAL.fullmatch(truth):
        factor, root = int(found[1] or 1), int(found[2])
        return [truth, f"\\sqrt{{{factor * factor * root}}}"], f"{factor}\\sqrt{{{root + 1}}}"
    value = int(truth)
    return [truth, f"x = {value}"], str(value + 1)


def task_of(row: Mapping[str, str], problems_by_id: Mapping[str, object] | None) -> Task:
    """The problem a code row names by its ground truth (its question id); a KeyError where `problems_by_id`
    is given and lacks it, or where no problem of this generator has that id."""
    question_id = row["ground_truth"]
    if problems_by_id is not None and question_id not in problems_by_id:
        raise KeyError(f"livecodebench question {question_id!r} is not among the given problems")
    if question_id not in TASKS:
        raise KeyError(f"livecodebench question {question_id!r} is not one of this generator's problems")
    return TASKS[question_id]


def _answer(thinking: str, body: str) -> str:
    return f"<think>\n{thinking}\n</think>\n\n{body}"


def correct_output(row: Mapping[str, str], problems_by_id: Mapping[str, object] | None = None) -> str:
    """A model-style answer that the project's graders judge right for `row` (one of `rows`), written in one
    of several forms the graders accept, chosen by the row's id. `problems_by_id` (the problems by question
    id, as `problems` or `accuracy.livecodebench.load_problems` gives them), where given, must hold a
    livecodebench row's problem."""
    form = random.Random(row["id"])  # seeded by text: the same choice in every process
    truth, kind = row["ground_truth"], kind_of(row["dataset"])
    if kind in ("gpqa", "mmlu_pro"):
        return _answer(
            "Working through each option, only one matches.", f"The option that fits is {truth}.\n\nAnswer: {truth}"
        )
    if kind == "aime":
        last = f"\\boxed{{{truth}}}" if form.random() < 0.5 else f"Answer: {truth}"
        return _answer("I compute the value step by step and check it.", f"So the result is {int(truth)}.\n\n{last}")
    if kind == "math500":
        right, _ = _math_forms(truth)
        return _answer("Let me simplify carefully.", f"The final answer is $\\boxed{{{form.choice(right)}}}$.")
    task = task_of(row, problems_by_id)
    return _answer("I work out the algorithm, then write it as the problem asks.", f"```python\n{task.solution}\n```")


def wrong_output(row: Mapping[str, str], problems_by_id: Mapping[str, object] | None = None) -> str:
    """A model-style answer from which the graders read an answer, and judge it wrong: another letter,
    another number, or a program that runs and fails every test."""
    truth, kind = row["ground_truth"], kind_of(row["dataset"])
    if kind in ("gpqa", "mmlu_pro"):
        letters = GPQA_OPTIONS if kind == "gpqa" else MMLU_PRO_OPTIONS
        other = letters[(letters.index(truth) + 1) % len(letters)]
        return _answer("Working through each option, one stands out.", f"Answer: {other}")
    if kind == "aime":
        return _answer("A quick estimate.", f"\\boxed{{{(int(truth) + 1) % 1000}}}")
    if kind == "math500":
        _, wrong = _math_forms(truth)
        return _answer("A quick guess.", f"The final answer is $\\boxed{{{wrong}}}$.")
    return _answer("I am not sure.", f"```python\n{wrong_program(task_of(row, problems_by_id))}\n```")


def wrong_program(task: Task) -> str:
    """A program that runs and fails every test of `task`."""
    if task.func_name is None:
        return "print('no answer')"  # never an expected output: those are numbers, words of letters, Yes or No
    return f"class Solution:\n    def {task.func_name}(self, *args):\n        return None"  # no output is null
