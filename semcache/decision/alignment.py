"""The alignment verifier's model: token alignment features of a text pair, scored by boosted trees.

all-MiniLM-L6-v2 (the default embedder's graph, on ONNX Runtime) gives each text its contextual
token vectors. For a (query, candidate) pair, every token is matched to its most similar token on
the other side (as BERTScore and ColBERT do); the features say how well each side is covered (mean,
worst and IDF-weighted match, the IDF mass left unmatched), whether the matched tokens keep their
order (word swaps), how much the two bags of tokens overlap, the lengths, the sentence cosine and
the lexical guard's sub-check verdicts. A gradient-boosted tree ensemble
(``scripts/train_verifier.py``, scikit-learn at training time only) turns them into the
probability that the candidate's answer answers the query; the trees ship as arrays and are walked
here in numpy.

No I/O but reading the artifact and the model's files, on first use.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache._errors import ConfigurationError
from semcache.core.lru import LRU
from semcache.decision.guard import CHECKS, Guard
from semcache.embedding.embedders import unit_rows

Array = npt.NDArray[Any]
_SUB_GUARDS = tuple(Guard(**{c: c == name for c in CHECKS}) for name in CHECKS)
_GUARD = Guard()
FEATURES = (
    "cosine",
    *(
        f"{side}_{name}"
        for side in ("query", "candidate")
        for name in (
            "mean",
            "min",
            "idf_mean",
            "unmatched_idf",
            "worst_idf",
            "below_05",
            "below_07",
        )
    ),
    "min_mean",
    "min_min",
    "max_worst_idf",
    "order_tau",
    "token_jaccard",
    "same_bag",
    "query_tokens",
    "candidate_tokens",
    "token_gap",
    "guard_pass",
    *(f"guard_{name}" for name in CHECKS),
)


@dataclass(frozen=True, slots=True)
class TokenState:
    """One text as the verifier sees it: its sentence vector and its content tokens."""

    sentence: Array
    """The mean-pooled, L2-normalised vector (the embedder's own)."""
    tokens: Array
    """(n, 384) L2-normalised token vectors, special tokens left out."""
    weights: Array
    """(n,) the tokens' IDF weights."""
    ids: tuple[int, ...]


class TokenModel:
    """Token states of texts from the default embedder's ONNX graph. Without ``encoder`` it shares
    the embedder's model (:meth:`OnnxModel.shared`): a query or an entry the embedder has just
    embedded is not run again. With one, the same graph runs the encoder's fine-tuned layers (the
    word embeddings stay the model package's) in a session of its own.

    Args:
        idf: the IDF weight of every word piece (the artifact's).
        threads: ONNX Runtime intra-op threads (the default embedder's 1: the same session).
        encoder: a ``.safetensors`` file of fine-tuned layers (the artifact's), or None.
    """

    def __init__(self, idf: Array, *, threads: int = 1, encoder: Path | None = None) -> None:
        self.idf = idf
        self.threads = threads
        self.encoder = encoder
        self.tag = PACKED if encoder is None else _tag(encoder)
        """The stored form's tag: states of another encoder are another form (not read)."""
        self._model: Any = None
        self._lock = threading.Lock()
        self.held: LRU[str, TokenState] = LRU(HELD)
        """States read from stored entries (:func:`unpack`): texts this process never ran."""
        self._made: LRU[str, tuple[Any, TokenState]] = LRU(MADE)
        """The states last made from the model's remembered rows, with the rows they came from:
        a query verified against several candidates, or a hot entry verified again, is not
        rebuilt (~55 µs a text). Read only while the model still holds those same rows."""

    def load(self) -> TokenModel:
        with self._lock:
            if self._model is None:
                from semcache.embedding.onnx import MANIFEST, _spec
                from semcache.embedding.onnx_runtime import OnnxModel

                spec = replace(_spec(MANIFEST, None), overlay=self.encoder)
                self._model = OnnxModel.shared(spec, threads=self.threads).load()
        return self

    def knows(self, texts: Sequence[str]) -> bool:
        """Whether every text's token rows are remembered by the model (a run would be skipped)."""
        model = self._model
        return model is not None and all(t in model.recent or t in self.held for t in texts)

    def states(self, texts: Sequence[str], *, keep: bool = True) -> list[TokenState]:
        """One state per text, in order; texts the model has just run, or whose state a stored
        entry gave (:attr:`held`), are not run again."""
        model = self.load()._model
        found = {t: s for t in dict.fromkeys(texts) if (s := self._known(model, t)) is not None}
        todo = [t for t in dict.fromkeys(texts) if t not in found]
        for t, rows in zip(todo, model.tokens(todo, keep=keep) if todo else (), strict=True):
            found[t] = self.state(rows.ids, rows.hidden)
            kept = model.recent.get(t) if keep else None
            if kept is not None:  # the rows it keeps are float16: this state is the run's own
                self._made.put(t, (kept, found[t]))
        return [found[t] for t in texts]

    def _known(self, model: Any, text: str) -> TokenState | None:
        rows = model.recent.get(text)
        return self._from_rows(text, rows) if rows is not None else self.held.get(text)

    def _from_rows(self, text: str, rows: Any) -> TokenState:
        """The state of the model's remembered ``rows`` of ``text``, made once while it holds them."""
        made = self._made.get(text)
        if made is not None and made[0] is rows:
            return made[1]
        state = self.state(rows.ids, rows.hidden)
        self._made.put(text, (rows, state))
        return state

    def packed(self, text: str, most: int) -> bytes | None:
        """The stored form (:func:`pack`) of a text the model has just run, else None (no run);
        None too past ``most`` content tokens."""
        rows = self._model.recent.get(text) if self._model is not None else None
        state = self._from_rows(text, rows) if rows is not None else None
        if rows is None and self.encoder is not None:  # the embedder ran it: so does the encoder
            from semcache.embedding.onnx_runtime import OnnxModel

            if OnnxModel.ran(text):
                rows = self.load()._model.tokens([text], keep=True)[0]
                state = self.state(rows.ids, rows.hidden)
        return pack(state, self.tag) if state is not None and len(state.ids) <= most else None

    def hold(self, text: str, blob: Any) -> bool:
        """Keep the state a stored entry gave for ``text`` (:func:`unpack`); False when ``blob``
        is not one (missing, corrupt, of another format), and nothing is kept."""
        model = self.load()._model
        dim = int(model.spec.dimension or DIMENSION)
        state = unpack(blob, self.idf, dim, self.tag) if isinstance(blob, bytes) else None
        if state is not None:
            self.held.put(text, state)
        return state is not None

    def state(self, ids: Array, hidden: Array) -> TokenState:
        hidden = hidden.astype(np.float32)
        # the embedder's mean pooling and scaling; unchecked: the graph's own output needs no
        # checks, and they cost more than the division on a 20-token text
        sentence = unit_rows(hidden.mean(axis=0)[None, :])[0]
        keep = (ids != 0) & ((ids < 100) | (ids > 103))  # not [PAD] [UNK] [CLS] [SEP] [MASK]
        tokens = unit_rows(hidden[keep])
        kept = ids[keep].astype(np.int64)
        return TokenState(sentence, tokens, self.idf[kept].astype(np.float32), tuple(kept.tolist()))


HELD = 512
"""Stored entries' token states a verifier keeps (~5 KB each for a 12-token question)."""
MADE = 64
"""States made from the model's rows that a verifier keeps (float32: ~20 KB for 12 tokens)."""
DIMENSION = 384
"""all-MiniLM-L6-v2's, when the graph's manifest does not say."""
PACKED = b"smtk"
"""The stored form's tag, version 1 (all-MiniLM-L6-v2's token vectors): another tag, another form."""
ENCODER = "encoder.safetensors"
"""An artifact's fine-tuned layers, beside its ``model.npz`` (none: the embedder's own graph)."""
_HEAD = struct.Struct("<4sHHf")


def _tag(encoder: Path) -> bytes:
    """A fine-tuned encoder's stored-form tag: ``sm`` and two bytes of its file's digest."""
    import hashlib

    try:
        with encoder.open("rb") as handle:
            digest = hashlib.file_digest(handle, "blake2b").digest()
    except OSError as exc:
        raise ConfigurationError(f"no readable verifier encoder at {encoder}: {exc}") from exc
    return b"sm" + digest[:2]


def pack(state: TokenState, tag: bytes = PACKED) -> bytes:
    """A state as an entry stores it: the sentence vector and each content token's unit vector
    in int8 with a float32 scale, and the token ids (uint16): ~390 bytes a token. Scores from
    the unpacked state match the model's own on 1,998 of 2,000 held-out Quora pairs (probed)."""
    dim = int(state.sentence.shape[0])
    tokens = np.asarray(state.tokens, dtype=np.float32).reshape(len(state.ids), dim)
    scale = np.maximum(np.abs(tokens).max(axis=1, initial=0.0), 1e-12).astype("<f4")
    top = max(float(np.abs(state.sentence).max(initial=0.0)), 1e-12)
    return b"".join((
        _HEAD.pack(tag, len(state.ids), dim, top),
        _int8(state.sentence / top).tobytes(),
        np.asarray(state.ids, dtype="<u2").tobytes(),
        scale.tobytes(),
        _int8(tokens / scale[:, None]).tobytes(),
    ))  # fmt: skip


def unpack(blob: bytes, idf: Array, dim: int, tag: bytes = PACKED) -> TokenState | None:
    """The state :func:`pack` stored, or None when ``blob`` is not one: another tag or dimension,
    a length that does not add up, a token id outside the vocabulary, a scale not finite and
    positive."""
    if len(blob) < _HEAD.size:
        return None
    found_tag, n, found, top = _HEAD.unpack_from(blob)
    if found_tag != tag or found != dim or len(blob) != _HEAD.size + dim + n * (6 + dim):
        return None
    at = _HEAD.size
    sentence = np.frombuffer(blob, np.int8, dim, at).astype(np.float32) * np.float32(top / 127)
    ids = np.frombuffer(blob, "<u2", n, at + dim).astype(np.int64)
    scale = np.frombuffer(blob, "<f4", n, at + dim + 2 * n).astype(np.float32)
    rows = np.frombuffer(blob, np.int8, n * dim, at + dim + 6 * n).reshape(n, dim)
    if (ids >= len(idf)).any() or not (np.isfinite(scale).all() and (scale > 0).all()):
        return None
    if not (np.isfinite(top) and top > 0):  # (a NaN fails every comparison)
        return None
    tokens = unit_rows(rows.astype(np.float32) * (scale[:, None] / np.float32(127)))
    sentence = unit_rows(sentence[None, :])[0]
    return TokenState(sentence, tokens, idf[ids].astype(np.float32), tuple(ids.tolist()))


def _int8(values: Array) -> Array:
    rounded: Array = np.clip(np.rint(values * 127), -127, 127).astype(np.int8)
    return rounded


def features(query: str, candidate: str, a: TokenState, b: TokenState) -> list[float]:
    """The pair's feature row, in the order of :data:`FEATURES`."""
    cosine = float(a.sentence @ b.sentence)
    row = [cosine]
    if len(a.tokens) and len(b.tokens):
        sims = a.tokens @ b.tokens.T
        best_a, best_b = sims.max(axis=1), sims.max(axis=0)
        for best, w in ((best_a, a.weights), (best_b, b.weights)):
            unmatched = (1.0 - best) * w
            row += [float(best.mean()), float(best.min()), float((best * w).sum() / max(float(w.sum()), 1e-9)),
                    float(unmatched.sum()), float(unmatched.max()), float((best < 0.5).sum()),
                    float((best < 0.7).sum())]  # fmt: skip
        row += [min(row[2], row[9]), min(row[3], row[10]), max(row[5], row[12])]
        confident = best_a > 0.8
        row.append(_tau(sims.argmax(axis=1)[confident]))
    else:
        row += [0.0] * 18
    bag_a, bag_b = _bag(a.ids), _bag(b.ids)
    shared = sum(min(n, bag_b.get(t, 0)) for t, n in bag_a.items())
    union = len(a.ids) + len(b.ids) - shared
    row += [shared / max(1, union), float(bag_a == bag_b), float(len(a.ids)), float(len(b.ids)),
            float(abs(len(a.ids) - len(b.ids)))]  # fmt: skip
    row.append(float(_GUARD.check(query, candidate) is None))
    row += [float(g.check(query, candidate) is not None) for g in _SUB_GUARDS]
    return row


def _tau(positions: Array) -> float:
    """Kendall's tau of the aligned positions against the query's order (1: same order)."""
    if len(positions) < 2:
        return 1.0
    later = np.triu(positions[None, :] - positions[:, None], 1)  # each pair once, i < j
    agree, disagree = int((later > 0).sum()), int((later < 0).sum())
    return (agree - disagree) / max(1, agree + disagree)


def _bag(ids: tuple[int, ...]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in ids:
        out[i] = out.get(i, 0) + 1
    return out


class Trees:
    """A binary-classification tree ensemble as flat arrays, walked level by level for all trees."""

    def __init__(self, arrays: dict[str, Array]) -> None:
        self.feature = arrays["feature"].astype(np.int64)
        self.threshold = arrays["threshold"].astype(np.float64)
        self.value = arrays["value"].astype(np.float64)
        self.missing_left = arrays["missing_left"].astype(bool)
        self.roots = arrays["roots"].astype(np.int64)
        self.baseline = float(arrays["baseline"])
        self.depth = int(arrays["depth"])
        # a leaf leads to itself both ways, so every tree can take ``depth`` steps
        leaf, here = arrays["leaf"].astype(bool), np.arange(len(self.feature))
        self.left = np.where(leaf, here, arrays["left"].astype(np.int64))
        self.right = np.where(leaf, here, arrays["right"].astype(np.int64))
        self._exits = _Exits.build(self, leaf)

    def raw(self, rows: Array) -> Array:
        """The ensemble's log-odds for each feature row."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        walk = self._walk if self._exits is None else self._exits.raw
        return np.array([walk(x) for x in rows], dtype=np.float64)

    def _walk(self, x: Array) -> float:
        """One row down every tree at once: a gather and a compare per level (a missing value
        goes where the tree sent its training's missing values)."""
        missing = bool(np.isnan(x).any())
        node = self.roots
        for _ in range(self.depth):
            v = x[self.feature[node]]
            go_left = v <= self.threshold[node]
            if missing:
                go_left = np.where(np.isnan(v), self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        return self.baseline + float(self.value[node].sum())

    def probabilities(self, rows: Array) -> Array:
        return np.asarray(1.0 / (1.0 + np.exp(-self.raw(rows))), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Exits:
    """Every tree's exit leaf found at once, the way QuickScorer does (Lucchese et al., SIGIR 2015):
    number each tree's leaves left to right; a split whose test sends a row right rules out the
    leaves of its left subtree; the exit leaf is the leftmost leaf no split ruled out. One compare
    over all splits, one AND per tree and one lowest-bit per tree replace :meth:`Trees._walk`'s
    compare and gather per level (the shipped 19-level ensemble: 65 → 25 µs a row, warm), with the
    same leaves, so the same log-odds. Only for trees of at most 64 leaves (a leaf per bit; 32 or
    fewer, as scikit-learn's default 31, take half the memory)."""

    feature: Array
    """The feature each split tests, splits grouped by tree."""
    threshold: Array
    missing_left: Array
    cleared: Array
    """A bit mask per split: its tree's leaves minus those of its left subtree."""
    starts: Array
    """Where each tree with splits starts among the splits."""
    split_trees: Array
    """The trees that have splits (a tree may be a single leaf)."""
    first_leaf: Array
    """Per tree with splits, where its leaves start in :attr:`values`."""
    values: Array
    """Leaf values, each tree's left to right."""
    constant: Array
    """Per tree: its value when it is a single leaf, else 0 (replaced by its exit's)."""
    baseline: float
    full: Any
    """Every bit set, in :attr:`cleared`'s type: a split sending the row left rules nothing out."""

    @classmethod
    def build(cls, trees: Trees, leaf: Array) -> _Exits | None:
        under: dict[int, list[int]] = {}  # each node's leaves, left to right, found once

        def leaves(node: int) -> list[int]:
            found = under.get(node)
            if found is None:
                found = under[node] = (
                    [node]
                    if leaf[node]
                    else leaves(int(trees.left[node])) + leaves(int(trees.right[node]))
                )
            return found

        orders = [leaves(root) for root in trees.roots.tolist()]
        widest = max(map(len, orders), default=1)
        if widest > 64:
            return None
        bits = np.uint32 if widest <= 32 else np.uint64
        full = int(np.iinfo(bits).max)
        splits: list[tuple[int, float, bool, int]] = []  # feature, threshold, missing left, mask
        starts, split_trees, first = [], [], []
        values: list[float] = []
        constant = np.zeros(len(trees.roots), dtype=np.float64)
        for t, (root, order) in enumerate(zip(trees.roots.tolist(), orders, strict=True)):
            if len(order) == 1:
                constant[t] = trees.value[root]
                continue
            bit = {node: 1 << i for i, node in enumerate(order)}
            starts.append(len(splits))
            split_trees.append(t)
            first.append(len(values))
            values += trees.value[order].tolist()
            todo = [root]
            while todo:
                node = todo.pop()
                if leaf[node]:
                    continue
                ruled_out = sum(bit[n] for n in leaves(int(trees.left[node])))
                splits.append((int(trees.feature[node]), float(trees.threshold[node]),
                               bool(trees.missing_left[node]), ~ruled_out & full))  # fmt: skip
                todo += [int(trees.left[node]), int(trees.right[node])]
        feature, threshold, missing, cleared = zip(*splits, strict=True) if splits else ([],) * 4
        return cls(
            np.array(feature, dtype=np.int16 if max(feature, default=0) < 2**15 else np.int64),
            np.array(threshold, dtype=np.float64),
            np.array(missing, dtype=bool),
            np.array(cleared, dtype=bits),
            np.array(starts, dtype=np.int64),
            np.array(split_trees, dtype=np.int64),
            np.array(first, dtype=np.int64),
            np.array(values, dtype=np.float64),
            constant,
            trees.baseline,
            bits(full),
        )

    def raw(self, x: Array) -> float:
        """One row's log-odds."""
        v = x[self.feature]
        right = ~(v <= self.threshold)
        if np.isnan(x).any():  # a missing value goes where the tree sent its training's
            right = np.where(np.isnan(v), ~self.missing_left, right)
        left = np.bitwise_and.reduceat(np.where(right, self.cleared, self.full), self.starts)
        lowest = left & (~left + left.dtype.type(1))  # the leftmost leaf left: a power of two
        exit_leaf = np.log2(lowest.astype(np.float64)).astype(np.int64)  # exact on powers of two
        per_tree = self.constant.copy()
        per_tree[self.split_trees] = self.values[self.first_leaf + exit_leaf]
        return self.baseline + float(per_tree.sum())


def export_sklearn(model: Any) -> dict[str, Array]:
    """The arrays of a fitted ``HistGradientBoostingClassifier`` (binary) for :class:`Trees`."""
    parts: dict[str, list[Array]] = {
        k: [] for k in ("feature", "threshold", "left", "right", "value", "leaf", "missing_left")
    }
    roots, offset, depth = [], 0, 0
    for (tree,) in model._predictors:
        nodes = tree.nodes
        roots.append(offset)
        leaf = nodes["is_leaf"].astype(bool)
        parts["feature"].append(nodes["feature_idx"])
        parts["threshold"].append(nodes["num_threshold"])
        parts["left"].append(np.where(leaf, 0, nodes["left"]) + offset)
        parts["right"].append(np.where(leaf, 0, nodes["right"]) + offset)
        parts["value"].append(np.where(leaf, nodes["value"], 0.0))
        parts["leaf"].append(leaf)
        parts["missing_left"].append(nodes["missing_go_to_left"])
        depth = max(depth, int(nodes["depth"].max()))
        offset += len(nodes)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["value"] = out["value"].astype(np.float32)
    out["threshold"] = out["threshold"].astype(np.float64)
    out["roots"] = np.array(roots)
    out["baseline"] = np.array(float(np.ravel(model._baseline_prediction)[0]))
    out["depth"] = np.array(depth)
    return out


class AlignmentScorer:
    """Token states, features and trees: the probability for each (query, candidate) pair."""

    def __init__(self, model: TokenModel, trees: Trees) -> None:
        self.model = model
        self.trees = trees

    @classmethod
    def open(cls, path: Path, *, threads: int = 1) -> AlignmentScorer:
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"no readable alignment verifier at {path}: {exc}") from exc
        encoder = path.parent / ENCODER
        model = TokenModel(arrays.pop("idf"), threads=threads,
                           encoder=encoder if encoder.exists() else None)  # fmt: skip
        return cls(model.load(), Trees(arrays))

    def knows(self, texts: Sequence[str]) -> bool:
        """Whether every text's token rows are in the model's memory (no model run for them)."""
        return self.model.knows(texts)

    def packed(self, text: str, most: int) -> bytes | None:
        return self.model.packed(text, most)

    def hold(self, text: str, blob: Any) -> bool:
        return self.model.hold(text, blob)

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> Array:
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        states = dict(zip(texts, self.model.states(texts), strict=True))
        rows = np.array([features(a, b, states[a], states[b]) for a, b in pairs])
        return self.trees.probabilities(rows)
