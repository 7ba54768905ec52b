"""Write semcache's own labelled data from the hand-written bank in ``dataset_bank.py``.

    python scripts/make_dataset.py          # rewrites semcache/data/{intents,pairs,sample_log}.jsonl

Deterministic: the same bank and seed give byte-identical files (a test checks the shipped ones).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from dataset_bank import FAMILIES, Family

DATA = Path(__file__).resolve().parent.parent / "semcache" / "data"
SEED = 20240601
_FIELD = re.compile(r"{(\w+)")


def keys_of(family: Family) -> set[str]:
    return {k for p in family.paraphrases for k in _FIELD.findall(p)}


def texts(family: Family, slots: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(p.format(**slots) for p in family.paraphrases))


def intents() -> list[dict[str, Any]]:
    """Every intent (a group of equivalent texts), contrasts included as intents of their own."""
    out = []
    for family in FAMILIES:
        for si, slots in enumerate(family.slots):
            base = {"family": family.name, "domain": family.domain, "lang": family.lang}
            out.append(
                {
                    **base,
                    "group": f"{family.name}/{si}",
                    "texts": texts(family, slots),
                    "answer": family.answer.format(**slots),
                }
            )
            for ci, (template, _) in enumerate(family.contrasts):
                out.append(
                    {
                        **base,
                        "group": f"{family.name}/{si}/c{ci}",
                        "texts": [template.format(**slots)],
                        "answer": f"(answer to: {template.format(**slots)})",
                    }
                )
    return out


# --- pairs --------------------------------------------------------------------------------------


def pair(query: str, candidate: str, equivalent: bool, family: Family, kind: str) -> dict[str, Any]:
    return {
        "query": query,
        "candidate": candidate,
        "equivalent": equivalent,
        "domain": family.domain,
        "lang": family.lang,
        "kind": kind,
    }


def positives(rng: random.Random, family: Family, group: list[str]) -> list[dict[str, Any]]:
    combos = list(itertools.combinations(group, 2))
    chosen = rng.sample(combos, min(4, len(combos)))
    out = [pair(*(rng.sample(c, 2)), True, family, "paraphrase") for c in chosen]
    out.append(pair(surface(rng, rng.choice(group)), rng.choice(group), True, family, "surface"))
    return out


def surface(rng: random.Random, text: str) -> str:
    """The same question as people type it: casing, punctuation, a typo, filler words."""
    choice = rng.randrange(5)
    if choice == 0:
        return text.lower().rstrip("?.!").strip()
    if choice == 1:
        words = text.split()
        long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if long:
            i = rng.choice(long)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        return " ".join(words)
    prefix = {
        "en": ["Hi, ", "Quick question: ", "Hey, ", "Please tell me: "],
        "es": ["Hola, ", "Una pregunta: "],
        "fr": ["Bonjour, ", "Petite question : "],
        "de": ["Hallo, ", "Kurze Frage: "],
        "pt": ["Olá, ", "Uma pergunta: "],
        "it": ["Ciao, ", "Una domanda: "],
    }[text_lang(text)]
    if choice == 2:
        return rng.choice(prefix) + text[0].lower() + text[1:]
    if choice == 3:
        thanks = {
            "en": [" Thanks!", " Thank you.", " thx"],
            "es": [" ¡Gracias!"],
            "fr": [" Merci !"],
            "de": [" Danke!"],
            "pt": [" Obrigado!"],
            "it": [" Grazie!"],
        }
        return text + rng.choice(thanks[text_lang(text)])
    return text.replace("?", "??") if "?" in text else text + "?"


_LANG = {"en": "en"}


def text_lang(text: str) -> str:
    return _LANG.get(text, "en")


def neighbours(rng: random.Random, family: Family, si: int) -> list[dict[str, Any]]:
    """The same templates with slots changed: the hardest negatives."""
    keys = keys_of(family)
    slots = family.slots[si]
    out = []
    others = [o for o in family.slots if o is not slots]
    for other in rng.sample(others, min(3, len(others))):
        diff = sorted(k for k in keys if other.get(k) != slots.get(k))
        if not diff:
            continue
        kind = family.kinds.get(diff[0], "swapped-entity")
        if len(diff) == 2 and {str(other[k]) for k in diff} == {str(slots[k]) for k in diff}:
            kind = "swapped-order"
        i = rng.randrange(len(family.paraphrases))
        j = i if rng.random() < 0.6 else rng.randrange(len(family.paraphrases))
        out.append(
            pair(
                family.paraphrases[i].format(**slots),
                family.paraphrases[j].format(**other),
                False,
                family,
                kind,
            )
        )
    out += changed_numbers(rng, family, slots, keys)
    return out


def changed_numbers(
    rng: random.Random, family: Family, slots: dict[str, Any], keys: set[str]
) -> list[dict[str, Any]]:
    numeric = [k for k in sorted(keys) if isinstance(slots.get(k), int)]
    if not numeric:
        return []
    key = rng.choice(numeric)
    value = slots[key]
    new = rng.choice([value + 1, value - 1, value * 10, value + 10]) if value > 2 else value + 2
    changed = {**slots, key: new}
    i = rng.randrange(len(family.paraphrases))
    return [
        pair(
            family.paraphrases[i].format(**slots),
            family.paraphrases[i].format(**changed),
            False,
            family,
            "changed-number",
        )
    ]


def contrasts(
    rng: random.Random, family: Family, group: list[str], slots: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        pair(rng.choice(group), template.format(**slots), False, family, kind)
        for template, kind in family.contrasts
    ]


def cross_lingual(rng: random.Random, family: Family, si: int) -> list[dict[str, Any]]:
    if family.xling is None or family.lang == "en":
        return []
    english = next(f for f in FAMILIES if f.xling == family.xling and f.lang == "en")
    if si >= len(english.slots):
        return []
    mine = texts(family, family.slots[si])
    theirs = texts(english, english.slots[si])
    return [pair(rng.choice(mine), rng.choice(theirs), False, family, "other-language")]


def unrelated(rng: random.Random, family: Family, group: list[str]) -> list[dict[str, Any]]:
    same = [f for f in FAMILIES if f.domain == family.domain and f is not family]
    if not same or rng.random() > 0.35:
        return []
    other = rng.choice(same)
    return [
        pair(
            rng.choice(group),
            rng.choice(texts(other, rng.choice(other.slots))),
            False,
            family,
            "unrelated",
        )
    ]


def pairs() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    out: list[dict[str, Any]] = []
    for family in FAMILIES:
        for lang_text in (t for s in family.slots for t in texts(family, s)):
            _LANG[lang_text] = family.lang
        for si, slots in enumerate(family.slots):
            group = texts(family, slots)
            out += positives(rng, family, group)
            out += neighbours(rng, family, si)
            out += contrasts(rng, family, group, slots)
            out += cross_lingual(rng, family, si)
            out += unrelated(rng, family, group)
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in out:
        key = (p["query"], p["candidate"])
        if p["query"] != p["candidate"] and key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    write_jsonl(DATA / "intents.jsonl", intents())
    rows = pairs()
    write_jsonl(DATA / "pairs.jsonl", rows)
    from semcache.datasets import generate_log

    write_jsonl(DATA / "sample_log.jsonl", generate_log(400, seed=7))
    positives_count = sum(r["equivalent"] for r in rows)
    print(
        f"{len(rows)} pairs ({positives_count} equivalent), "
        f"{len(intents())} intents, sample log of 400 requests",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
