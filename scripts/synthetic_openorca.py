"""Deterministic generator of SYNTHETIC OpenOrca-style rows.

Nothing here comes from the real OpenOrca data set: the rows are built from
templates over a small invented world (countries, people, words), so that a
tiny model trained for minutes on CPU can learn to answer them and ROUGE
against the references measures something real. The row schema is OpenOrca's
(`id`, `system_prompt`, `question`, `response`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

SYSTEM_PROMPTS = [
    "",
    "You are an AI assistant. User will you give you a task. Your goal is to complete "
    "the task as faithfully as you can.",
    "You are a helpful assistant, who always provide explanation.",
    "You are an AI assistant that helps people find information.",
]

_SYLLABLES = ["ka", "lo", "mi", "ra", "te", "vu", "no", "sa", "de", "fi", "ga", "pe", "zo", "ri"]
_PROFESSIONS = ["baker", "teacher", "pilot", "farmer", "painter", "doctor", "sailor", "writer"]
_THINGS = ["bread", "music", "maps", "bridges", "gardens", "stories", "boats", "lamps"]
_ITEMS = ["soup", "room", "coffee", "service", "movie", "book", "bed", "pizza"]
_GOOD = ["great", "delicious", "clean", "friendly", "wonderful", "warm"]
_BAD = ["cold", "dirty", "slow", "rude", "awful", "boring"]
_WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "candle",
    "garden",
    "mirror",
    "pencil",
    "window",
    "forest",
    "silver",
    "rocket",
    "button",
    "jacket",
    "planet",
    "violin",
    "ladder",
]
_OPPOSITES = {
    "hot": "cold",
    "tall": "short",
    "fast": "slow",
    "happy": "sad",
    "early": "late",
    "light": "dark",
    "open": "closed",
    "full": "empty",
    "strong": "weak",
    "new": "old",
}


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _world() -> tuple[dict[str, str], dict[str, tuple[str, str, str]]]:
    """The invented facts; fixed (seed 7) so that every split shares them."""
    rng = random.Random(7)
    countries: dict[str, str] = {}
    while len(countries) < 24:
        countries[_name(rng, 3)] = _name(rng, 2) + "ton"
    cities = list(countries.values())
    people: dict[str, tuple[str, str, str]] = {}
    while len(people) < 24:
        people[_name(rng, 2) + " " + _name(rng, 3)] = (
            rng.choice(_PROFESSIONS),
            rng.choice(cities),
            rng.choice(_THINGS),
        )
    return countries, people


COUNTRIES, PEOPLE = _world()

Task = Callable[[random.Random], tuple[str, str]]


def _capital(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(COUNTRIES))
    city = COUNTRIES[country]
    return (
        f"What is the capital of {country}?",
        f"The capital of {country} is {city}. {city} is also the largest city in {country}.",
    )


def _person(rng: random.Random) -> tuple[str, str]:
    person = rng.choice(sorted(PEOPLE))
    job, city, thing = PEOPLE[person]
    return (
        f"Who is {person}?",
        f"{person} is a {job} who lives in {city}. {person} is known for {thing}.",
    )


def _addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    return (
        f"What is {a} plus {b}? Explain your answer.",
        f"To find the answer, add {a} and {b}. {a} plus {b} equals {a + b}. So the answer is {a + b}.",
    )


def _sort_words(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(_WORDS, rng.randint(3, 5))
    return (
        "Sort the following words in alphabetical order: " + ", ".join(words) + ".",
        "The words in alphabetical order are: " + ", ".join(sorted(words)) + ".",
    )


def _sentiment(rng: random.Random) -> tuple[str, str]:
    item = rng.choice(_ITEMS)
    positive = rng.random() < 0.5
    adjective = rng.choice(_GOOD if positive else _BAD)
    verdict = "positive" if positive else "negative"
    return (
        f'Review: "The {item} was {adjective}." Is this review positive or negative?',
        f"The review is {verdict}. The customer says that the {item} was {adjective}.",
    )


def _reading(rng: random.Random) -> tuple[str, str]:
    person = rng.choice(sorted(PEOPLE))
    job, city, _ = PEOPLE[person]
    year = rng.randint(1950, 2020)
    return (
        f"Read the text and answer the question.\n\nText: {person} moved to {city} in "
        f"{year} to work as a {job}.\n\nQuestion: When did {person} move to {city}?",
        f"{person} moved to {city} in {year}. The text says that {person} went there to work as a {job}.",
    )


def _opposite(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(sorted(_OPPOSITES))
    return (
        f"What is the opposite of the word {word}?",
        f'The opposite of "{word}" is "{_OPPOSITES[word]}".',
    )


TASKS: dict[str, Task] = {
    "capital": _capital,
    "person": _person,
    "addition": _addition,
    "sort": _sort_words,
    "sentiment": _sentiment,
    "reading": _reading,
    "opposite": _opposite,
}


def rows(count: int, seed: int, prefix: str) -> Iterator[dict[str, str]]:
    """`count` OpenOrca-schema rows; the same (count, seed) always gives the same rows."""
    rng = random.Random(seed)
    names = sorted(TASKS)
    for i in range(count):
        task = names[i % len(names)]
        question, response = TASKS[task](rng)
        yield {
            "id": f"{prefix}.{task}.{i}",
            "system_prompt": rng.choice(SYSTEM_PROMPTS),
            "question": question,
            "response": response,
        }
