"""The lexical guard: each sub-check rejects the near-duplicates it is for and lets paraphrases by."""

from __future__ import annotations

import pytest

from semcache import Guard
from semcache.decision.guard import CHECKS, features

REJECT = [
    ("numbers", "Convert 6 feet to meters.", "Convert 7 feet to meters."),
    ("numbers", "What is twelve times 4?", "What is 13 times 4?"),
    ("numbers", "¿Cuánto es 17 por 23?", "¿Cuánto es 17 por 24?"),
    ("numbers", "Solve for x: 5x + 1 = 26", "Solve for x: 5x - 1 = 26"),
    ("negation", "Which mammals lay eggs?", "Which mammals do not lay eggs?"),
    ("negation", "Welche Länder nutzen den Euro?", "Welche Länder nutzen den Euro nicht?"),
    ("negation", "How do I enable 2FA?", "How do I disable 2FA?"),
    ("units", "How many ounces are in a pound?", "How many grams are in a kilogram?"),
    ("units", "Water boils at what temperature in °C?", "Water boils at what temperature in °F?"),
    ("entities", "What is the capital of Canada?", "What is the capital of Australia?"),
    ("entities", "How do I install `numpy`?", "How do I install `pandas`?"),
    ("order", "Flights from Paris to Rome?", "Flights from Rome to Paris?"),
    ("order", "Can I use butter instead of oil?", "Can I use oil instead of butter?"),
    ("sequence", "Born in Boston in 1923.", "Born in 1923 in Boston."),
]

PASS = [
    ("How do I reset my password?", "how can I reset my password"),
    ("How many grams make one kilogram?", "How many grams are in a kilogram?"),
    ("Is tofu vegan?", "tofu vegan or not?"),
    ("A circle has radius 10 cm. What is its area?", "area of circle radius 10cm"),
    (
        "Which skincare ingredients are safe during pregnancy?",
        "List skincare ingredients that are OK to use when pregnant.",
    ),
    ("Welche Stadt ist die Hauptstadt von Japan?", "Was ist die Hauptstadt von Japan?"),
    ("What is 1,000 divided by 4?", "what is 1000 divided by 4"),
    ("How do I reverse a list in Python?", "Python: how do I reverse a list?"),
]


@pytest.mark.parametrize(("check", "query", "candidate"), REJECT)
def test_each_sub_check_rejects_its_near_duplicates(check: str, query: str, candidate: str) -> None:
    only = Guard(**{name: name == check for name in CHECKS})
    reason = only.check(query, candidate)
    assert reason is not None and reason.split()[0] in (check, "polarity", "operators", "entity")
    assert Guard(**{name: False for name in CHECKS}).check(query, candidate) is None


@pytest.mark.parametrize(("query", "candidate"), PASS)
def test_paraphrases_pass_the_default_guard(query: str, candidate: str) -> None:
    assert Guard().check(query, candidate) is None
    assert Guard().check(candidate, query) is None


def test_sequence_is_off_by_default_and_clause_moves_pass_the_role_check() -> None:
    assert Guard().check("Born in Boston in 1923.", "Born in 1923 in Boston.") is None
    assert Guard(sequence=True).check("Born in Boston in 1923.", "Born in 1923 in Boston.")


def test_features_normalise_numbers_units_and_entities() -> None:
    f = features("Is 1,500 km more than 2.5 Miles from the USA to `my_func()`?")
    assert f.numbers == ("1500", "2.5")
    assert f.units == {"km", "mi"}
    assert {"usa", "my_func()"} <= f.entities
    assert features("one kilogram").numbers == features("a kilogram").numbers == ()


def test_remembered_verdicts_are_per_guard_setting_and_per_pair() -> None:
    from semcache.decision import guard as module

    swap = ("Flights from Paris to Rome?", "Flights from Rome to Paris?")
    assert Guard().check(*swap) is not None
    assert Guard(order=False).check(*swap) is None  # another setting: not the remembered "no"
    assert Guard().check(*swap) is not None  # asked again: remembered, the same verdict
    assert (Guard(), *swap) in module._VERDICTS._items
    same = ("How do I learn Python fast?", "What is the quickest way to learn Python?")
    assert Guard().check(*same) is None and Guard().check(*same) is None
    long_query = "How do I learn Python fast? " * 100  # past 2,000 characters: never remembered
    Guard().check(long_query, same[1])
    assert (Guard(), long_query, same[1]) not in module._VERDICTS._items
