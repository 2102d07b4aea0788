"""Deterministic generator of SYNTHETIC CNN-DailyMail-style rows.

Nothing here comes from the real CNN-DailyMail data set: each "news article"
is built from templates over the same invented world as the synthetic OpenOrca
rows (scripts/synthetic_openorca.py), and its highlights restate the
article's key facts in a few short sentences, as CNN's bullet points do. The
row schema is CNN-DailyMail's (`id`, `article`, `highlights`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from synthetic_openorca import COUNTRIES, PEOPLE

_EVENTS = ["festival", "market", "concert", "race", "exhibition", "fair"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_WEATHER = ["heavy rain", "strong winds", "a long heat wave", "an early frost", "thick fog"]
_DAMAGE = ["roads", "bridges", "gardens", "boats", "roofs", "power lines"]
_OFFICIALS = ["the mayor", "the city council", "a spokesperson for the police", "the local school board"]

Story = Callable[[random.Random], tuple[list[str], list[str]]]
"""An article's sentences and its highlights."""


def _person(rng: random.Random) -> tuple[str, str, str, str]:
    name = rng.choice(sorted(PEOPLE))
    job, city, thing = PEOPLE[name]
    return name, job, city, thing


def _event(rng: random.Random) -> tuple[list[str], list[str]]:
    name, job, city, thing = _person(rng)
    event, day = rng.choice(_EVENTS), rng.choice(_DAYS)
    visitors = rng.randint(2, 40) * 100
    country = rng.choice(sorted(COUNTRIES))
    article = [
        f"{city} held its first {event} of the year on {day}, and {visitors} visitors came.",
        f"The {event} was organised by {name}, a local {job} known for {thing}.",
        f'"We wanted people to meet again," {name} said. "The whole town helped."',
        f"Guests travelled from as far as {COUNTRIES[country]}, the capital of {country}.",
        f"Officials said the {event} would return next year if the weather allows.",
    ]
    highlights = [
        f"{city} held a {event} on {day} with {visitors} visitors.",
        f"It was organised by {name}, a {job}.",
        f"The {event} may return next year.",
    ]
    return article, highlights


def _storm(rng: random.Random) -> tuple[list[str], list[str]]:
    country = rng.choice(sorted(COUNTRIES))
    city = COUNTRIES[country]
    weather, damaged = rng.choice(_WEATHER), rng.sample(_DAMAGE, 2)
    homes = rng.randint(3, 90) * 10
    official = rng.choice(_OFFICIALS)
    article = [
        f"{weather.capitalize()} hit {city}, the capital of {country}, this week.",
        f"The {damaged[0]} and {damaged[1]} of the city were damaged, and {homes} homes lost power.",
        f"Nobody was hurt, {official} said on Friday.",
        f"Workers began to repair the {damaged[0]} the next morning.",
        f"People in {city} were asked to stay at home until the work is done.",
    ]
    highlights = [
        f"{weather.capitalize()} hit {city}, the capital of {country}.",
        f"{homes} homes lost power and the {damaged[0]} were damaged.",
        "Nobody was hurt.",
    ]
    return article, highlights


def _award(rng: random.Random) -> tuple[list[str], list[str]]:
    name, job, city, thing = _person(rng)
    year = rng.randint(1990, 2024)
    rival, _, _, _ = _person(rng)
    article = [
        f"{name}, a {job} from {city}, won this year's national prize for {thing}.",
        f"The judges chose {name} from more than {rng.randint(3, 30) * 10} people.",
        f"{name} has worked in {city} since {year}.",
        f"Last year the prize went to {rival}.",
        f'"This prize belongs to everyone in {city}," {name} told reporters.',
    ]
    highlights = [
        f"{name} won the national prize for {thing}.",
        f"{name} is a {job} who has worked in {city} since {year}.",
    ]
    return article, highlights


def _move(rng: random.Random) -> tuple[list[str], list[str]]:
    name, job, city, _ = _person(rng)
    country = rng.choice(sorted(COUNTRIES))
    new_city = COUNTRIES[country]
    reason = rng.choice(["a new job", "a larger school", "the sea", "a quieter life"])
    article = [
        f"{name} is leaving {city} after many years as a {job}.",
        f"{name} will move to {new_city} in {country} next month for {reason}.",
        f"Friends in {city} plan a party to say goodbye on {rng.choice(_DAYS)}.",
        f"{name} said the move was hard but right.",
    ]
    highlights = [
        f"{name}, a {job}, is leaving {city}.",
        f"{name} moves to {new_city} in {country} for {reason}.",
    ]
    return article, highlights


STORIES: list[Story] = [_event, _storm, _award, _move]


def rows(count: int, *, seed: int, prefix: str = "synthetic") -> Iterator[dict[str, str]]:
    """`count` rows in CNN-DailyMail's schema; the same seed gives the same rows."""
    rng = random.Random(seed)
    for index in range(count):
        story = STORIES[index % len(STORIES)]
        article, highlights = story(rng)
        yield {
            "id": f"{prefix}.{story.__name__.lstrip('_')}.{index}",
            "article": " ".join(article),
            "highlights": "\n".join(highlights),
        }
