"""The semantic layer's decision stage: from the top-k candidates, pick one or none.

The core fetches the k nearest entries in scope and hands them to a :class:`Decision`; the decision
returns a :class:`Verdict` that names the accepted candidate (or none) and records why, check by
check. A decision is a flow like the rest of the core, so a check that needs I/O (a second embedding
model, an LLM judge) yields a :class:`semcache.core.ops.Call` and stays written once for sync and async.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from semcache.core.lru import LRU
from semcache.core.ops import Call, Commands
from semcache.decision.guard import Guard
from semcache.decision.opinion import SecondOpinion
from semcache.decision.protocol import Candidate as Candidate
from semcache.decision.protocol import Decision as Decision
from semcache.decision.protocol import Fields
from semcache.decision.protocol import Verdict as Verdict
from semcache.decision.thresholds import PerEntryThresholds, decode
from semcache.decision.verifier import EXTRA, Verifier, verifier_runtime
from semcache.redis import commands

TOKENS = "tok"
"""The document field holding the verifier's token state of the entry's text."""
OFFERED = 4096
"""Documents a process remembers having offered a token state (:meth:`GuardedDecision._learn`)."""
OFFER_AGAIN_S = 60.0
"""Seconds after which a document whose search row still says it has no state is offered it again:
its write did not land (Redis refused it, or the round trip it went with failed)."""
HAS_TOKENS = "tkn"
"""A one-byte document field saying the entry holds :data:`TOKENS`. The search returns it (the
state itself, ~5 KB, it does not), so a lookup reads the state only of an entry that has one: an
entry stored with a caller's vector, by a remote embedder or past ``state_tokens`` costs no read."""

log = logging.getLogger("semcache")


class ThresholdDecision:
    """The plain global threshold: the nearest candidate at or above it wins."""

    return_fields: tuple[str, ...] = ()

    def floor(self, threshold: float) -> float:
        """The lowest similarity it accepts: the threshold."""
        return threshold

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]:
        checks = []
        for candidate in candidates:
            passed = candidate.similarity >= threshold
            sign = ">=" if passed else "<"
            checks.append(("threshold", f"{candidate.similarity:.4f} {sign} {threshold:.4f}"))
            if passed:
                return Verdict(candidate, "accepted", tuple(checks))
            break
        return Verdict(None, "below-threshold", tuple(checks))
        yield  # a flow that needs no I/O


class GuardedDecision:
    """The global threshold (or an entry's own), the lexical guard, the learned verifier and a
    second opinion for borderline candidates; a rejected candidate hands over to the next one.

    For each candidate, nearest first: its cut-off is the entry's learned threshold when
    ``per_entry`` is set and the entry has feedback, else the request's threshold; a candidate below
    its cut-off (or below the verifier's or the opinion's band, when set) is rejected; then the
    guard; then, inside the verifier's band, the verifier; then, inside the opinion's band, the
    judge. Every step is recorded in ``LookupResult.checks``.

    Args:
        guard: the lexical guard (None: off).
        per_entry: per-entry thresholds learned from :meth:`semcache.Cache.feedback` (None: off).
        opinion: a judge consulted only for borderline candidates (None: off).
        verifier: the learned verifier (:class:`semcache.Verifier`), asked only inside its band
            around the cut-off (None: off; the default decision has it).

    Example::

        config = semcache.CacheConfig(decision=semcache.GuardedDecision(
            per_entry=semcache.PerEntryThresholds(delta=0.05)))
    """

    def __init__(
        self,
        *,
        guard: Guard | None = None,
        per_entry: PerEntryThresholds | None = None,
        opinion: SecondOpinion | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.guard = guard
        self.per_entry = per_entry
        self.opinion = opinion
        self.verifier = verifier
        reads_state = verifier is not None and verifier.kind == "alignment"
        self.return_fields: tuple[str, ...] = (
            *(("fb",) if per_entry else ()),
            *((HAS_TOKENS,) if reads_state else ()),
        )
        self._offered: LRU[str, float] = LRU(OFFERED)  # documents offered a state, and when
        self.clock: Callable[[], float] = time.monotonic

    def __repr__(self) -> str:
        return (
            f"GuardedDecision(guard={self.guard!r}, per_entry={self.per_entry!r}, "
            f"opinion={self.opinion!r}, verifier={self.verifier!r})"
        )

    def document_fields(self, text: str) -> Fields:
        """What an entry of ``text`` stores for this decision: the verifier's token state of the
        text when the store's embedding has just run the model on it (nothing otherwise), so a
        lookup in another process scores the entry without running the model on it."""
        if self.verifier is None:
            return ()
        try:
            packed = self.verifier.packed(text)
        except Exception as exc:  # a store never fails over what only saves a later lookup time
            log.debug("semcache: no token state stored for the verifier: %s", exc)
            return ()
        return ((TOKENS, packed), (HAS_TOKENS, b"1")) if packed else ()

    def floor(self, threshold: float) -> float:
        """The lowest similarity this decision can accept at ``threshold``: the bands' low end,
        at the per-entry thresholds' floor when that is lower (an entry's own cut-off may be)."""
        cutoff = min(threshold, self.per_entry.floor) if self.per_entry else threshold
        lows = [b.band(cutoff)[0] for b in (self.opinion, self.verifier) if b is not None]
        return min(lows) if lows else cutoff

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]:
        checks: list[tuple[str, str]] = []
        learned: list[tuple[str, Fields]] = []
        reason = "below-threshold"
        chosen = None
        for candidate in candidates:
            outcome = yield from self._judge(query, candidate, threshold, checks, learned)
            if outcome is None:
                chosen, reason = candidate, "accepted"
                break
            reason = outcome
        calls = sum(1 for name, _ in checks if self.opinion and name == self.opinion.name)
        cost = calls * self.opinion.cost_usd if self.opinion else 0.0
        return Verdict(chosen, reason, tuple(checks), judge_calls=calls, judge_usd=cost,
                       learned=tuple(learned))  # fmt: skip

    def _cutoff(
        self, candidate: Candidate, threshold: float, checks: list[tuple[str, str]]
    ) -> float:
        if self.per_entry is None or not candidate.fields.get("fb"):
            return threshold
        cutoff = self.per_entry.threshold(candidate.fields["fb"], threshold)
        seen = len(decode(candidate.fields["fb"]))
        checks.append(
            ("per-entry", f"{candidate.digest[:12]} cut-off {cutoff:.4f} from {seen} feedback")
        )
        return cutoff

    def _judge(
        self,
        query: str,
        candidate: Candidate,
        threshold: float,
        checks: list[tuple[str, str]],
        learned: list[tuple[str, Fields]],
    ) -> Generator[Any, Any, str | None]:
        """None when the candidate is accepted, else why it was rejected."""
        cutoff = self._cutoff(candidate, threshold, checks)
        o_low, o_high = self.opinion.band(cutoff) if self.opinion else (cutoff, cutoff)
        v_low, v_high = self.verifier.band(cutoff) if self.verifier else (cutoff, cutoff)
        low = (
            min(o_low, v_low)
            if self.opinion and self.verifier
            else o_low
            if self.opinion
            else v_low
        )
        s = candidate.similarity
        checks.append(("threshold", f"{s:.4f} {'>=' if s >= low else '<'} {low:.4f}"))
        if s < low:
            return "below-threshold"
        if self.guard is not None:
            why = self.guard.check(query, candidate.text)
            checks.append(("guard", f"reject: {why}" if why else "pass"))
            if why:
                return "guard"
        in_band = self.verifier is not None and v_low <= s < v_high
        if in_band and not (yield from self._verify(query, candidate, checks, learned)):
            return "verifier"
        if self.opinion is not None and o_low <= s < o_high:
            return (yield from self._ask(query, candidate, checks))
        return None

    def _verify(
        self,
        query: str,
        candidate: Candidate,
        checks: list[tuple[str, str]],
        learned: list[tuple[str, Fields]],
    ) -> Generator[Any, Any, bool]:
        """The verifier's verdict. A score that needs a model run (milliseconds) is a local
        :class:`Call`: the async cache runs it on a worker thread, not in its event loop; one known
        in memory is read here. A candidate whose document holds no token state, or one that does
        not read (missing, corrupt), gets the one this scoring ran (``learned``), so the next
        process to meet it reads it instead of running the model."""
        verifier = self.verifier
        assert verifier is not None
        alignment = verifier.kind == "alignment"  # the kind that has token states
        stored = alignment and bool(candidate.fields.get(HAS_TOKENS))
        if stored and candidate.key and not verifier.in_memory(query, candidate.text):
            stored = (yield from self._read_state(candidate)) is not False
        try:
            if verifier.in_memory(query, candidate.text):
                p = verifier.score(query, [candidate.text])[0]
            else:
                p = (yield Call(verifier.score, (query, [candidate.text]), local=True))[0]
        except (
            Exception
        ) as exc:  # a failing verifier is a "no": a miss costs less than a wrong answer
            checks.append(("verifier", f"reject: verifier failed ({type(exc).__name__}: {exc})"))
            return False
        ok = p >= verifier.threshold
        checks.append(("verifier", f"{p:.4f} {'>=' if ok else '<'} {verifier.threshold:.4f}"))
        if candidate.key and alignment and not stored:
            self._learn(candidate.key, candidate.text, learned)
        return ok

    def _learn(self, key: str, text: str, learned: list[tuple[str, Fields]]) -> None:
        """Offer the document ``key`` the token state of ``text``, once per process and document
        (until :data:`OFFERED` others push it out): the write goes with a later round trip, and
        until it lands the search row still says there is none. A row that still says so
        :data:`OFFER_AGAIN_S` after the offer lost its write (its round trip failed): offered
        again."""
        offered = self._offered.get(key)
        if offered is not None and self.clock() - offered < OFFER_AGAIN_S:
            return
        fields = self.document_fields(text)
        if fields:
            self._offered.put(key, self.clock())
            learned.append((key, fields))

    def _read_state(self, candidate: Candidate) -> Generator[Any, Any, bool | None]:
        """The candidate's stored token state (:meth:`document_fields`), one HGET, for the
        verifier to score it without a model run; sent only for an entry whose search row says it
        has one (:data:`HAS_TOKENS`). True when it was read; False when it is missing or corrupt
        (the model runs, and its state replaces it); None when Redis did not answer the read (the
        model runs; the stored state may be sound, so it is left)."""
        assert self.verifier is not None and candidate.key is not None
        try:
            (blob,) = yield Commands((commands.field(candidate.key, TOKENS),))
        except Exception as exc:  # the model's run answers as it did before the field existed
            blob = exc
        if isinstance(blob, Exception):  # raised, or an error reply in place
            log.debug("semcache: token state of %s not read: %s", candidate.key, blob)
            return None
        if blob is not None and self.verifier.hold(candidate.text, blob):
            return True
        log.debug("semcache: no readable token state in %s; the model runs", candidate.key)
        return False

    def _ask(
        self, query: str, candidate: Candidate, checks: list[tuple[str, str]]
    ) -> Generator[Any, Any, str | None]:
        opinion = self.opinion
        assert opinion is not None
        afn = opinion.ajudge or getattr(opinion.judge, "acall", None)
        try:
            verdict = yield Call(opinion.judge, (query, candidate.text), afn)
        except Exception as exc:  # a failing judge is a "no": a miss costs less than a wrong answer
            checks.append((opinion.name, f"reject: judge failed ({type(exc).__name__})"))
            return "opinion"
        accepted = opinion.accepts(verdict)
        shown = f"{verdict:.4f}" if isinstance(verdict, float) else str(verdict)
        checks.append((opinion.name, f"{'accept' if accepted else 'reject'}: {shown}"))
        return None if accepted else "opinion"


def offline(decision: Any) -> Any:
    """``decision`` with its verifier's scores kept in memory: for sweeps that decide the same pairs
    at many thresholds (tuning, benchmarks). Other decisions are returned as they are."""
    verifier = getattr(decision, "verifier", None)
    if verifier is None:
        return decision
    clone = copy.copy(decision)
    clone.verifier = verifier.memoised()
    return clone


def decision_floor(decision: Any, threshold: float) -> float:
    """The lowest similarity ``decision`` can accept at ``threshold`` (the threshold itself unless
    the decision has a band reaching below it, as the verifier's does)."""
    floor = search_floor(decision, threshold)
    return threshold if floor is None else floor


def search_floor(decision: Any, threshold: float) -> float | None:
    """The lowest similarity a search must reach for ``decision`` at ``threshold``, or None when
    the decision does not say (one of the user's own without ``floor``: it may accept any
    candidate, so the search fetches the nearest however far)."""
    floor = getattr(decision, "floor", None)
    return float(floor(threshold)) if callable(floor) else None


def default_decision() -> Decision:
    """What ``CacheConfig(decision=None)`` means: every check that calls no remote model, the
    lexical guard and the shipped learned verifier (asked only inside its band around the cut-off).
    Without the verifier's runtime (no all-MiniLM-L6-v2 weights installed) it is the guard alone,
    and a warning says so once."""
    global _WARNED
    if verifier_runtime():
        return GuardedDecision(guard=Guard(), verifier=Verifier())
    if not _WARNED:
        _WARNED = True
        log.warning(
            "semcache: the verifier's runtime is not installed; deciding with the guard alone (%s)",
            EXTRA,
        )
    return GuardedDecision(guard=Guard())


_WARNED = False
