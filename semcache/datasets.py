"""semcache's own labelled data, and a generator of realistic request logs.

Shipped in ``semcache/data/`` and written by ``scripts/make_dataset.py`` from a hand-written bank:

- ``pairs.jsonl``: labelled pairs ``{"query", "candidate", "equivalent", "domain", "lang", "kind"}``
  across support, coding, facts, math, units, health, travel, food and five other languages, with
  hard negatives (``kind``: changed-number, negation, swapped-entity, swapped-order,
  different-unit, word-change, other-language, unrelated) next to the positives (paraphrase,
  surface). *Equivalent* means the cached answer to the candidate is a correct answer to the query,
  so a translation is not equivalent (its answer comes back in the other language).
- ``intents.jsonl``: groups of equivalent questions with a short answer, the material of
  :func:`generate_log`.
- ``sample_log.jsonl``: 400 requests from :func:`generate_log` (``semcache replay --sample``).

Example::

    from semcache import datasets
    pairs = datasets.load_pairs()
    log = datasets.generate_log(1000, seed=1)      # list of plain-JSONL log lines (dicts)
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semcache.tuning import Pair

DATA = Path(__file__).parent / "data"

FOLLOW_UPS = (
    "Can you give me an example?",
    "Can you explain that more simply?",
    "Are there any exceptions?",
)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant of a generated log: its model, system prompt and share of the traffic."""

    name: str
    model: str
    system: str
    weight: float
    domains: tuple[str, ...]


TENANTS = (
    Tenant(
        "acme",
        "gpt-4o-mini",
        "You are Acme's friendly customer support assistant.",
        0.5,
        ("support", "multilingual", "food", "travel"),
    ),
    Tenant(
        "globex",
        "gpt-4o",
        "You are a precise assistant for engineers and analysts.",
        0.3,
        ("coding", "math", "units", "facts"),
    ),
    Tenant(
        "initech",
        "gpt-4.1-mini",
        "You are a helpful general assistant.",
        0.2,
        ("facts", "health", "travel", "food", "support"),
    ),
)


def pairs_path() -> Path:
    """The shipped labelled pairs (JSONL)."""
    return DATA / "pairs.jsonl"


def sample_log_path() -> Path:
    """The shipped sample request log (plain JSONL, with groups, tenants and usage)."""
    return DATA / "sample_log.jsonl"


def load_pairs() -> list[Pair]:
    """The shipped labelled pairs."""
    from semcache.tuning import read_pairs

    return read_pairs(pairs_path()).pairs


def load_intents() -> list[dict[str, Any]]:
    """The shipped intents: ``{"group", "family", "domain", "lang", "texts", "answer"}``."""
    with (DATA / "intents.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def generate_log(
    n: int,
    *,
    seed: int = 0,
    tenants: Sequence[Tenant] = TENANTS,
    multi_turn: float = 0.12,
    skew: float = 1.1,
    start: float = 1735689600.0,
) -> list[dict[str, Any]]:
    """A realistic request log as plain-JSONL lines: popularity skew (Zipf with exponent ``skew``)
    over each tenant's intents, paraphrases and repeats, follow-up turns (share ``multi_turn``),
    several tenants with their own model and system prompt, responses with usage, and a ``group``
    per line (equivalent requests share one)."""
    rng = random.Random(seed)
    intents = load_intents()
    ranked = {t.name: _ranked(rng, intents, t) for t in tenants}
    clock = start
    out = []
    for i in range(n):
        tenant = rng.choices(list(tenants), weights=[t.weight for t in tenants])[0]
        clock += rng.expovariate(1 / 20)
        out.append(_line(rng, i, tenant, ranked[tenant.name], skew, multi_turn, clock))
    return out


def _ranked(
    rng: random.Random, intents: list[dict[str, Any]], tenant: Tenant
) -> list[dict[str, Any]]:
    mine = [it for it in intents if it["domain"] in tenant.domains]
    rng.shuffle(mine)
    return mine


def _zipf(rng: random.Random, count: int, skew: float) -> int:
    weights = [1 / (rank + 1) ** skew for rank in range(count)]
    return rng.choices(range(count), weights=weights)[0]


def _line(
    rng: random.Random,
    i: int,
    tenant: Tenant,
    intents: list[dict[str, Any]],
    skew: float,
    multi_turn: float,
    clock: float,
) -> dict[str, Any]:
    intent = intents[_zipf(rng, len(intents), skew)]
    messages: list[dict[str, str]] = [{"role": "system", "content": tenant.system}]
    if rng.random() < multi_turn:
        k = rng.randrange(len(FOLLOW_UPS))
        messages += [
            {"role": "user", "content": intent["texts"][0]},
            {"role": "assistant", "content": intent["answer"]},
            {"role": "user", "content": FOLLOW_UPS[k]},
        ]
        group, answer = f"{intent['group']}/follow-up-{k}", f"{intent['answer']} For example: ..."
    else:
        messages.append({"role": "user", "content": _pick_text(rng, intent["texts"])})
        group, answer = intent["group"], intent["answer"]
    request = {"model": tenant.model, "messages": messages, "temperature": 0}
    return {
        "request": request,
        "response": _response(rng, i, tenant.model, messages, answer, clock),
        "tenant": tenant.name,
        "timestamp": round(clock, 3),
        "group": group,
    }


def _pick_text(rng: random.Random, texts: list[str]) -> str:
    # The first wording is the most common; people retype the rest in their own way.
    text = texts[0] if rng.random() < 0.4 else rng.choice(texts)
    if rng.random() < 0.1:
        text = text.lower().rstrip("?.!").strip()
    return text


def _response(
    rng: random.Random,
    i: int,
    model: str,
    messages: list[dict[str, str]],
    answer: str,
    clock: float,
) -> dict[str, Any]:
    prompt = sum(len(m["content"]) for m in messages) // 4 + 4 * len(messages) + 3
    completion = len(answer) // 4 + rng.randint(40, 320)
    return {
        "id": f"chatcmpl-{i:06d}",
        "object": "chat.completion",
        "created": int(clock),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
