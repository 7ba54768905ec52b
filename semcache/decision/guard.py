"""A lexical guard against near-duplicates that differ in meaning. No I/O, no model.

Embeddings place "Convert 6 feet to meters" and "Convert 7 feet to meters" a hair apart, and so
"flights from Paris to Rome" and "flights from Rome to Paris". The guard compares what an embedding
blurs: numbers (digits, decimals, number words, arithmetic operators), negations and polarity words
(in English, Spanish, French, German, Italian and Portuguese), units (length, mass, volume,
temperature, percent, currencies, time), named entities (capitalised words past the start of a
sentence, acronyms, code identifiers, quoted strings) and the order of those anchors, where a swap
of roles ("from A to B" / "from B to A") is caught by the words in front of each anchor.

Each sub-check is a switch on :class:`Guard`; ``benchmarks/bench_accuracy.py`` measures each one.

Example::

    guard = Guard()
    guard.check("Convert 6 feet to meters", "Convert 7 feet to meters")  # "numbers 6 != 7"
    guard.check("How do I reset my password?", "how can I reset my password")  # None
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from semcache.core.lru import LRU


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(
    r"\d+(?:[.,]\d+)*(?![^\W_])|[^\W_]+(?:'[^\W_]+)?|[+*/\u00d7÷^=<>%$€£¥°-]", re.UNICODE
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
_CODE = re.compile(r"`([^`]+)`|\b([A-Za-z_]\w*(?:\.\w+)+|[a-z]+_\w+|[a-z]+[A-Z]\w*)\b|\b(\w+)\(\)")
_QUOTED = re.compile(r"\"([^\"]{1,80})\"|“([^”]{1,80})”|«\s?([^»]{1,80}?)\s?»")
_SENTENCE_START = re.compile(r"(?:^|[.!?¿¡:;]\s*|\n)\W*$")
_DEGREES = re.compile(r"°\s?([CF])\b")
_GLUED_UNIT = re.compile(
    r"(\d)(km|cm|mm|kg|g|lbs?|oz|ml|l|m|ft|in|h|hrs?|min|s|mph)\b", re.IGNORECASE
)
_TAG_QUESTION = re.compile(r"\b(?:or not|o no|ou non|ou não|oder nicht|o non)\b", re.IGNORECASE)

# Words for numbers 0 and 2..20 and round numbers; "one" and "a" are the same question, so 1 is left
# out of the comparison everywhere (see _numbers).
_NUMBER_WORDS = {
    **dict.fromkeys(("zero", "cero", "zéro"), "0"),
    **dict.fromkeys(("two", "dos", "deux", "zwei", "due", "dois", "duas"), "2"),
    **dict.fromkeys(("three", "tres", "trois", "drei", "tre", "três"), "3"),
    **dict.fromkeys(("four", "cuatro", "quatre", "vier", "quattro", "quatro"), "4"),
    **dict.fromkeys(("five", "cinco", "cinq", "fünf", "cinque"), "5"),
    **dict.fromkeys(("six", "seis", "sechs", "sei"), "6"),
    **dict.fromkeys(("seven", "siete", "sept", "sieben", "sette", "sete"), "7"),
    **dict.fromkeys(("eight", "ocho", "huit", "acht", "otto", "oito"), "8"),
    **dict.fromkeys(("nine", "nueve", "neuf", "neun", "nove"), "9"),
    **dict.fromkeys(("ten", "diez", "dix", "zehn", "dieci", "dez"), "10"),
    "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
    "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000",
    "billion": "1000000000", "half": "0.5", "quarter": "0.25", "twice": "2", "double": "2",
    "triple": "3",
}  # fmt: skip

_OPERATORS = {
    "+": "+", "plus": "+", "más": "+", "mais": "+", "più": "+",
    "-": "-", "minus": "-", "menos": "-", "moins": "-", "meno": "-",
    "*": "*", "\u00d7": "*", "times": "*", "multiply": "*", "multiplied": "*", "product": "*",
    "mal": "*", "fois": "*",
    "/": "/", "÷": "/", "divided": "/", "divide": "/", "quotient": "/", "dividido": "/", "geteilt": "/", "diviso": "/",
    "^": "^", "squared": "^2", "cubed": "^3", "power": "^",
}  # fmt: skip

_NEGATIONS = _words(
    "not no never n't cannot without none nobody nothing neither nor "  # en
    "nunca jamás sin ni ningún ninguna ninguno "  # es (no: see en)
    "ne n' pas jamais sans aucun aucune rien "  # fr
    "nicht kein keine keinen keinem keiner keines nie niemals ohne "  # de
    "non mai senza nessun nessuno nessuna "  # it
    "não nenhum nenhuma sem"  # pt
)

# Pairs whose swap flips the answer and that a paraphrase does not use for each other.
_POLARITY = (
    ("enable", "disable"), ("activate", "deactivate"), ("best", "worst"),
    ("most", "least"), ("increase", "decrease"), ("maximum", "minimum"),
    ("before", "after"), ("above", "below"), ("upload", "download"), ("import", "export"),
    ("encrypt", "decrypt"), ("buy", "sell"), ("cheapest", "dearest"), ("highest", "lowest"),
    ("largest", "smallest"), ("biggest", "smallest"), ("fastest", "slowest"), ("add", "subtract"),
    ("advantages", "disadvantages"), ("pros", "cons"), ("hot", "cold"), ("lock", "unlock"),
    ("mejor", "peor"), ("meilleur", "pire"), ("beste", "schlechteste"), ("migliore", "peggiore"),
    ("melhor", "pior"), ("activar", "desactivar"), ("activer", "désactiver"),
    ("aktivieren", "deaktivieren"), ("attivare", "disattivare"), ("ativar", "desativar"),
)  # fmt: skip
_ANTONYM = {a: b for x, y in _POLARITY for a, b in ((x, y), (y, x))}

_UNIT_WORDS: dict[str, str] = {}
for _unit, _names in {
    "km": "km kms kilometer kilometers kilometre kilometres kilómetros kilomètres kilometri quilômetros",
    "mi": "mi mile miles milla millas miglia milhas",
    "m": "meter meters metre metres metro metros mètres meter metri",
    "cm": "cm centimeter centimeters centimetre centimetres centímetros",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "ft": "ft foot feet pies pieds fuß piedi pés",
    "in": "inch inches pulgadas pouces zoll pollici polegadas",
    "yd": "yd yard yards",
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme kilogrammes kilogramos kilogramm chilogrammi quilos",
    "g": "gram grams gramme grammes gramos gramm grammi gramas",
    "lb": "lb lbs pound pounds libra libras livre livres pfund libbre",
    "oz": "oz ounce ounces onza onzas",
    "l": "liter liters litre litres litro litros",
    "ml": "ml milliliter milliliters millilitre millilitres mililitros",
    "gal": "gallon gallons galón galones gallone",
    "qt": "quart quarts",
    "cup": "cup cups taza tazas tasse tasses",
    "tbsp": "tbsp tablespoon tablespoons",
    "tsp": "tsp teaspoon teaspoons",
    "c": "celsius centigrade",
    "f": "fahrenheit",
    "k": "kelvin",
    "%": "% percent percentage por ciento pourcent prozent percento",
    "usd": "$ usd dollar dollars dólar dólares",
    "eur": "€ eur euro euros",
    "gbp": "£ gbp sterling",
    "jpy": "¥ jpy yen",
    "s": "second seconds sec secs segundo segundos seconde secondes sekunde sekunden secondi",
    "min": "minute minutes mins minuto minutos minuten minuti",
    "h": "hour hours hr hrs hora horas heure heures stunde stunden ora ore",
    "day": "day days día días jour jours tage giorno giorni dia dias",
    "week": "week weeks semana semanas semaine semaines woche wochen settimana settimane",
    "month": "month months meses mois monat monate mese mesi",
    "year": "year years año años ans année années jahr jahre anno anni ano anos",
    "mph": "mph",
    "kmh": "km/h kph",
}.items():
    for _name in _names.split():
        _UNIT_WORDS[_name] = _unit

_GERMAN = _words(
    "der das ist ich und wie welche welcher welches mein meine meines meinen von mit für nicht "
    "eine einen einer auf wo kann muss wann gibt dauert lange bitte zu im"
)

# Function words: never anchors of a role swap (they are the roles' markers).
_STOP = _words(
    "the and for from with into onto than then also after before during that this these those "
    "which who whom whose what when where how why its his her their our your are was were been "
    "being has have had does did can could should would will may might must not but all any "
    "some such very more most los las del por para con una uno les des pour avec dans sur une "
    "der die das und mit von für den dem ein eine che per con della degli dos das com para"
)

# Words too common to be told apart from a name by their capital letter alone.
_COMMON = _words(
    "i i'm i've i'd i'll a an the what how why when where which who whom whose is are was were do "
    "does did can could should would will may might must please hi hello hey thanks ok okay big o "
    "vs"
)


@dataclass(frozen=True, slots=True)
class Features:
    """What the guard compares, read from one text."""

    numbers: tuple[str, ...]
    operators: tuple[str, ...]
    negated: bool
    polarity: frozenset[str]
    units: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str]
    anchors: tuple[tuple[str, str], ...]
    """Entities, numbers, units and content words in order, each with the two tokens before it."""


@lru_cache(maxsize=16384)
def features(text: str) -> Features:
    """Read a text's numbers, negations, units, entities and anchors (cached per text)."""
    text = _DEGREES.sub(lambda m: " celsius" if m.group(1) == "C" else " fahrenheit", text)
    text = _TAG_QUESTION.sub(" ", _GLUED_UNIT.sub(r"\1 \2", text))
    tokens = [(m.group(), m.start()) for m in _WORD.finditer(text)]
    lower = [t.lower() for t, _ in tokens]
    entities = _entities(text, tokens)
    anchors, before = [], ["", ""]
    for (token, _), low in zip(tokens, lower, strict=True):
        kind = _anchor(token, low, entities)
        if kind:
            anchors.append((kind, " ".join(before)))
        if low.isalnum():
            before = [before[1], low]
    return Features(
        numbers=_numbers(lower),
        operators=tuple(_OPERATORS[t] for t in lower if t in _OPERATORS),
        negated=any(t in _NEGATIONS or t.endswith("n't") for t in lower),
        polarity=frozenset(t for t in lower if t in _ANTONYM),
        units=frozenset(_UNIT_WORDS[t] for t in lower if t in _UNIT_WORDS),
        entities=frozenset(entities),
        words=frozenset(lower),
        anchors=tuple(anchors),
    )


def _number(token: str) -> str | None:
    if token in _NUMBER_WORDS:
        return _NUMBER_WORDS[token]
    if not _NUMBER.match(token):
        return None
    token = token.replace(",", "") if _THOUSANDS.match(token) else token.replace(",", ".")
    try:
        value = float(token)
    except ValueError:  # "1.2.3", a version or a date: compare as written
        return token
    return f"{value:g}"


def _numbers(lower: list[str]) -> tuple[str, ...]:
    found = (_number(t) for t in lower)
    return tuple(sorted(n for n in found if n is not None and n != "1"))


def _entities(text: str, tokens: list[tuple[str, int]]) -> set[str]:
    found = {_fold(m) for m in _CODE.findall(text) for m in m if m}
    found |= {_fold(m) for m in _QUOTED.findall(text) for m in m if m}
    german = len(_GERMAN.intersection(t.lower() for t, _ in tokens)) >= 2  # nouns have capitals
    for token, start in tokens:
        if token.lower() in _COMMON:
            continue
        if len(token) >= 2 and token.isupper() and token.isalpha():
            found.add(token.lower())  # an acronym, wherever it stands
        elif token[:1].isupper() and not german and not _at_start(text, start):
            found.add(token.lower())
        elif any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
            found.add(token.lower())  # 2FA, x86, gpt-4o
    return found


def _at_start(text: str, start: int) -> bool:
    return bool(_SENTENCE_START.search(text[:start]))


def _fold(value: str) -> str:
    return " ".join(value.lower().split())


def _anchor(token: str, low: str, entities: set[str]) -> str:
    if low in entities:
        return low
    number = _number(low)
    if number is not None and number != "1":
        return number
    if low in _UNIT_WORDS:
        return _UNIT_WORDS[low]
    return low if len(low) >= 3 and low.isalpha() and low not in _STOP else ""


# --- comparisons ---------------------------------------------------------------------------------


def _differ_numbers(q: Features, c: Features) -> str | None:
    if q.numbers != c.numbers:
        return f"numbers {' '.join(q.numbers) or '-'} != {' '.join(c.numbers) or '-'}"
    for a, b in (("+", "-"), ("*", "/")):
        if a in q.operators and b in c.operators and a not in c.operators and b not in q.operators:
            return f"operators {a} != {b}"
        if b in q.operators and a in c.operators and b not in c.operators and a not in q.operators:
            return f"operators {b} != {a}"
    return None


def _differ_negation(q: Features, c: Features) -> str | None:
    if q.negated != c.negated:
        return f"negation {'yes' if q.negated else 'no'} != {'yes' if c.negated else 'no'}"
    for word in q.polarity - c.polarity:
        if _ANTONYM[word] in c.polarity - q.polarity:
            return f"polarity {word} != {_ANTONYM[word]}"
    return None


def _differ_units(q: Features, c: Features) -> str | None:
    if q.units and c.units and q.units != c.units:
        return f"units {' '.join(sorted(q.units))} != {' '.join(sorted(c.units))}"
    return None


def _differ_entities(q: Features, c: Features) -> str | None:
    for mine, other in ((q, c), (c, q)):
        for entity in sorted(mine.entities):
            if not _mentioned(entity, other):
                return f"entity {entity!r} not in both"
    return None


def _mentioned(entity: str, other: Features) -> bool:
    if entity in other.entities or entity in other.words:
        return True
    if " " in entity:  # a quoted phrase or a code span: every word of it must be there
        return all(_mentioned(part, other) for part in entity.split())
    # "Frankreich" / "Frankreichs", "Japan" / "Japan's": a shared stem of five letters or more.
    stem = entity[:5]
    return len(entity) >= 5 and any(w.startswith(stem) for w in other.words)


def _differ_order(q: Features, c: Features) -> str | None:
    """A swap of roles: two anchors in both texts trade places *and* trade the words in front of
    them ("from Paris to Rome" / "from Rome to Paris", "a red circle on a white background" /
    "a white circle on a red background"). Moving a whole clause keeps each anchor's words in
    front, so a paraphrase that reorders clauses passes."""
    qa, ca = dict(q.anchors), dict(c.anchors)
    shared = [a for a in qa if a in ca]
    if len(shared) < 2:
        return None
    # Each anchor's two words in front, and its last word in front, cut once (not once per pair).
    views = [({a: cut(qa[a]) for a in shared}, {a: cut(ca[a]) for a in shared}) for cut in _CUTS]
    for i, a in enumerate(shared):
        for b in shared[i + 1 :]:
            for qv, cv in views:
                if qv[a] != qv[b] and cv[a] == qv[b] and cv[b] == qv[a]:
                    return f"order {a} <-> {b}"
    return None


def _whole(before: str) -> str:
    return before


def _last_word(before: str) -> str:
    return before.rsplit(" ", 1)[-1]


_CUTS = (_whole, _last_word)


def _differ_sequence(q: Features, c: Features) -> str | None:
    """Strict order: the anchors both texts share must come in the same order. Catches every
    reordering, paraphrases that move a clause included, so it is off by default."""
    shared = {a for a, _ in q.anchors} & {a for a, _ in c.anchors}
    qs = list(dict.fromkeys(a for a, _ in q.anchors if a in shared))
    cs = list(dict.fromkeys(a for a, _ in c.anchors if a in shared))
    if qs != cs:
        first = next(a for a, b in zip(qs, cs, strict=True) if a != b)
        return f"sequence {first} moved"
    return None


CHECKS = {
    "numbers": _differ_numbers,
    "negation": _differ_negation,
    "units": _differ_units,
    "entities": _differ_entities,
    "order": _differ_order,
    "sequence": _differ_sequence,
}


RECENT_VERDICTS = 4096
"""(guard, query, candidate) verdicts kept in memory, for pairs of at most 2,000 characters."""
_REMEMBERED_CHARS = 2000
_VERDICTS: LRU[tuple[Any, str, str], str] = LRU(RECENT_VERDICTS)


@dataclass(frozen=True, slots=True)
class Guard:
    """Rejects a candidate whose numbers, negations, units, entities or anchor roles differ from
    the query's. Every sub-check can be switched; ``sequence`` (any change of the anchors' order,
    off by default) suits long declarative texts where a paraphrase rarely reorders.

    Example::

        semcache.CacheConfig(decision=semcache.GuardedDecision(guard=semcache.Guard(units=False)))
    """

    numbers: bool = True
    negation: bool = True
    units: bool = True
    entities: bool = True
    order: bool = True
    sequence: bool = False

    def check(self, query: str, candidate: str) -> str | None:
        """Why the candidate's answer would be wrong for the query, or None when nothing differs.
        The verdicts of the last :data:`RECENT_VERDICTS` short pairs are kept: a paraphrase asked
        again is not checked again (10-14 µs a pair)."""
        if len(query) + len(candidate) > _REMEMBERED_CHARS:
            return self._check(query, candidate)
        key = (self, query, candidate)
        known = _VERDICTS.get(key)
        if known is None:
            known = self._check(query, candidate) or ""
            _VERDICTS.put(key, known)
        return known or None

    def _check(self, query: str, candidate: str) -> str | None:
        q, c = features(query), features(candidate)
        for name, differ in CHECKS.items():
            if getattr(self, name):
                reason = differ(q, c)
                if reason:
                    return reason
        return None
