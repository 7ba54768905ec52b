"""Per-entry thresholds learned online from feedback, in the manner of vCache (Schroeder et al., 2025).

Each semantic entry keeps its own evidence, the similarity of every lookup that was judged against
it and whether its answer was right, and its own cut-off, both on the entry's document hash in
Redis (fields ``fb`` and ``thr``). A user-set bound ``delta`` on the wrong-answer rate decides how
far the evidence may move the cut-off away from the global threshold:

- for every cut-off ``t`` the entry could use, the wrong-answer rate among its lookups at or above
  ``t`` is estimated as ``(wrong + prior) / (seen + 2)``, where the prior is ``delta`` at or above
  the global threshold (which the user already trusts) and one wrong answer below it (Laplace's
  rule: nothing known);
- the entry's cut-off is the lowest ``t`` whose estimate is within ``delta``.

So one wrong answer at similarity ``s`` lifts the cut-off above ``s`` (until many right answers
above ``s`` outweigh it), and the cut-off falls below the global threshold only after enough right
answers and no wrong one there (18 for ``delta=0.05``, 3 for ``delta=0.2``). Without evidence the global threshold holds.

Everything here is pure; the two Lua scripts keep the Redis side single-key (cluster-friendly).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from semcache._errors import ConfigurationError
from semcache.core.ops import Commands
from semcache.redis import commands

RECORD = 6
"""One observation in ``fb``: the similarity with three decimals (``0.912``) and ``+`` or ``-``."""

Observation = tuple[float, bool]


def encode(similarity: float, correct: bool) -> str:
    """One fixed-width observation record."""
    clamped = min(max(float(similarity), 0.0), 0.999)
    return f"{clamped:.3f}{'+' if correct else '-'}"


def decode(raw: bytes | str | None) -> list[Observation]:
    """The observations of an ``fb`` field (oldest first); malformed records are skipped."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw or ""
    out = []
    for start in range(0, len(text) - RECORD + 1, RECORD):
        record = text[start : start + RECORD]
        try:
            similarity = float(record[:-1])
        except ValueError:
            continue
        if record[-1] in "+-":
            out.append((similarity, record[-1] == "+"))
    return out


def append(fb: str, record: str, keep: int) -> str:
    """What :data:`APPEND` leaves in ``fb`` (the pure twin, for simulations and tests)."""
    fb += record
    return fb[-keep:] if len(fb) > keep else fb


def entry_threshold(
    observations: Sequence[Observation], *, default: float, delta: float, floor: float = 0.0
) -> float:
    """The lowest cut-off at or above ``floor`` whose estimated wrong-answer rate is within
    ``delta`` (see the module docstring); ``default`` when there is no evidence."""
    if not observations:
        return default
    points = sorted(observations, key=lambda o: -o[0])
    cuts = {default, *(s for s, _ in points), *(s + 0.001 for s, ok in points if not ok)}
    best, i, seen, wrong = 1.0, 0, 0, 0
    for cut in sorted(cuts, reverse=True):
        while i < len(points) and points[i][0] >= cut:
            seen, wrong, i = seen + 1, wrong + (not points[i][1]), i + 1
        if cut < floor:
            break
        prior = delta if cut >= default else 1.0
        if (wrong + prior) / (seen + 2) <= delta:
            best = cut
    return round(best, 4)


@dataclass(frozen=True, slots=True)
class PerEntryThresholds:
    """The per-entry threshold check of :class:`semcache.GuardedDecision`.

    Args:
        delta: the bound on the wrong-answer rate each entry's cut-off is chosen for.
        floor: no entry's cut-off falls below this similarity, however much evidence it has.
        keep: observations kept per entry (the most recent ones).
    """

    delta: float = 0.05
    floor: float = 0.6
    keep: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1:
            raise ConfigurationError("delta is a wrong-answer rate in (0, 1)")
        if self.keep < 1:
            raise ConfigurationError("keep must be at least 1")

    def threshold(self, fb: bytes | str | None, default: float) -> float:
        """The cut-off of an entry with evidence ``fb``."""
        obs = decode(fb)
        return entry_threshold(obs, default=default, delta=self.delta, floor=self.floor)


def feedback_flow(
    key: str,
    similarity: float,
    correct: bool,
    per_entry: PerEntryThresholds | None,
    default: float,
) -> Generator[Any, Any, bool]:
    """Append one observation to the document ``key`` and store its new cut-off: two single-key
    scripts, the second skipped by Redis when another feedback landed in between."""
    params = per_entry or PerEntryThresholds()
    record = encode(similarity, correct)
    (fb,) = yield Commands((commands.append_feedback(key, record, RECORD * params.keep),))
    if fb is None or isinstance(fb, Exception):
        return False
    cutoff = params.threshold(fb, default)
    yield Commands((commands.set_entry_threshold(key, fb, cutoff),))
    return True
