"""The alignment verifier's parts: the tree walk, the token states and the features."""

from __future__ import annotations

import numpy as np
import pytest

from semcache.decision.alignment import FEATURES, TokenModel, Trees, features
from semcache.decision.verifier import artifact_dir


def stumps() -> Trees:
    """Two trees: x0 <= 0.5 ? -1 : +2 (NaN goes right), x1 <= 3 ? +0.5 : -0.5 (NaN goes left)."""
    return Trees(
        {
            "feature": np.array([0, 0, 0, 1, 0, 0]),
            "threshold": np.array([0.5, 0, 0, 3.0, 0, 0]),
            "left": np.array([1, 0, 0, 4, 0, 0]),
            "right": np.array([2, 0, 0, 5, 0, 0]),
            "value": np.array([0, -1.0, 2.0, 0, 0.5, -0.5]),
            "leaf": np.array([False, True, True, False, True, True]),
            "missing_left": np.array([False, False, False, True, False, False]),
            "roots": np.array([0, 3]),
            "baseline": np.array(0.25),
            "depth": np.array(1),
        }
    )


def test_the_tree_walk_sums_each_trees_leaf_onto_the_baseline() -> None:
    rows = np.array([[0.1, 1.0], [0.9, 5.0], [np.nan, np.nan], [0.5, 3.0]])
    assert stumps().raw(rows) == pytest.approx(
        [0.25 - 1 + 0.5, 0.25 + 2 - 0.5, 0.25 + 2 + 0.5, -0.25]
    )
    p = stumps().probabilities(rows[:1])
    assert p == pytest.approx([1 / (1 + np.exp(0.25))])


@pytest.fixture(scope="module")
def model() -> TokenModel:
    with np.load(artifact_dir() / "model.npz") as data:
        return TokenModel(data["idf"]).load()


def row(model: TokenModel, a: str, b: str) -> dict[str, float]:
    sa, sb = model.states([a, b])
    return dict(zip(FEATURES, features(a, b, sa, sb), strict=True))


def test_the_sentence_vector_is_the_default_embedders(model: TokenModel) -> None:
    from semcache.embedding.onnx import OnnxEmbedder

    text = "How do I reset my password?"
    (state,) = model.states([text])
    assert float(state.sentence @ OnnxEmbedder().embed([text])[0]) == pytest.approx(1.0, abs=1e-5)
    assert state.tokens.shape == (len(state.ids), 384) and len(state.ids) == len(state.weights)


def test_features_see_a_word_swap_and_a_changed_word(model: TokenModel) -> None:
    same = row(model, "Can a dog eat chocolate?", "Can a dog eat chocolate?")
    swap = row(model, "Can a dog eat chocolate?", "Can chocolate eat a dog?")
    other = row(model, "How do I learn Python?", "How do I learn Java?")
    assert same["cosine"] == pytest.approx(1.0, abs=1e-5) and same["order_tau"] == 1.0
    assert swap["same_bag"] == 1.0 and swap["order_tau"] < 0.5
    assert other["same_bag"] == 0.0 and other["token_jaccard"] < 1.0
    assert other["max_worst_idf"] > same["max_worst_idf"]


def test_the_embedder_and_the_verifier_share_one_model_and_its_recent_texts(
    model: TokenModel,
) -> None:
    """A query the default embedder has just embedded is not run again for the verifier."""
    from semcache.embedding.onnx import OnnxEmbedder

    embedder = OnnxEmbedder()
    assert embedder._model is model._model  # one session, one copy of the weights
    text = "What is the quickest way to learn the piano?"
    vector = embedder.embed([text])[0]
    assert text in model._model.recent
    (state,) = model.states([text])
    assert float(state.sentence @ vector) == pytest.approx(1.0, abs=1e-4)  # float16 rows kept
    from semcache.embedding.onnx import KEEP_BATCH

    bulk = [f"bulk text number {i}" for i in range(KEEP_BATCH + 1)]
    embedder.embed(bulk)  # a bulk load past a warm batch is not remembered
    assert not any(t in model._model.recent for t in bulk)
    batch = bulk[:20]
    embedder.embed(batch)  # a warm batch is: its entries keep the verifier's state
    assert all(t in model._model.recent for t in batch)


def test_a_state_is_made_once_from_the_same_rows_and_again_from_new_ones(model: TokenModel) -> None:
    """A query verified against four candidates is not rebuilt four times; rows the model ran
    afresh (another run of the text, the memory dropped) make a new state, never the old one."""
    from semcache.embedding.onnx_runtime import TokenRows

    text = "Which train goes from Paris to Lyon in the morning?"
    first, again = model.states([text]), model.states([text])
    assert first[0] is again[0]
    rows = model._model.recent.get(text)
    model._model.recent.put(text, TokenRows(rows.ids, (-rows.hidden).astype(rows.hidden.dtype)))
    (flipped,) = model.states([text])
    assert flipped is not first[0]
    assert float(flipped.sentence @ first[0].sentence) == pytest.approx(-1.0, abs=1e-4)


def test_a_text_without_content_tokens_still_scores(model: TokenModel) -> None:
    empty, other = model.states(["?", "What is love?"])
    assert len(empty.ids) == 1  # "?" alone
    values = features("", "What is love?", model.states([""])[0], other)
    assert len(values) == len(FEATURES) and all(np.isfinite(values))


def reference(trees: Trees, x: np.ndarray) -> float:
    """One tree at a time, one node at a time: the plainest walk, the oracle of the fast one."""
    total = trees.baseline
    for root in trees.roots:
        node = int(root)
        while trees.left[node] != node:  # a leaf leads to itself
            v = x[trees.feature[node]]
            left = bool(trees.missing_left[node]) if np.isnan(v) else v <= trees.threshold[node]
            node = int(trees.left[node] if left else trees.right[node])
        total += float(trees.value[node])
    return total


def test_the_fast_exit_search_finds_the_leaves_a_plain_walk_finds() -> None:
    """The shipped ensemble (19 levels) on rows of its own features' ranges, some missing values
    among them: every row's log-odds equals the node-by-node walk's and the level walk's."""
    with np.load(artifact_dir() / "model.npz") as data:
        trees = Trees({k: data[k] for k in data.files if k != "idf"})
    assert trees._exits is not None
    rng = np.random.default_rng(3)
    spread = np.nan_to_num(trees.threshold[trees.left != np.arange(len(trees.left))])
    rows = rng.uniform(spread.min(), spread.max(), size=(300, len(FEATURES)))
    rows[:100] = rng.choice(spread, size=(100, len(FEATURES)))  # on the thresholds themselves
    rows[rng.random(rows.shape) < 0.05] = np.nan
    fast = trees.raw(rows)
    assert fast.tolist() == [trees._walk(x) for x in rows]
    assert fast == pytest.approx([reference(trees, x) for x in rows], abs=1e-9)
    assert stumps()._exits is not None  # single-split trees go the fast way too


def test_a_tree_of_more_than_64_leaves_is_walked_level_by_level() -> None:
    """A chain of 65 leaves (x0 <= 0 ? leaf : (x0 <= 1 ? leaf : ...)) has no bit per leaf."""
    n = 64  # splits; leaves = n + 1
    split = np.arange(n) * 2  # split i at node 2i, its left leaf at 2i+1, its right the next split
    size = 2 * n + 1
    feature, threshold = np.zeros(size, dtype=np.int64), np.zeros(size)
    left, right = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    value, leaf = np.zeros(size), np.ones(size, dtype=bool)
    leaf[split] = False
    threshold[split] = np.arange(n, dtype=float)
    left[split], right[split] = split + 1, split + 2
    value[split + 1] = np.arange(n, dtype=float)
    value[size - 1] = 100.0
    trees = Trees({"feature": feature, "threshold": threshold, "left": left, "right": right,
                   "value": value, "leaf": leaf, "missing_left": np.zeros(size, dtype=bool),
                   "roots": np.array([0]), "baseline": np.array(0.0), "depth": np.array(n)})  # fmt: skip
    assert trees._exits is None
    assert trees.raw(np.array([[-1.0], [5.5], [1000.0]])).tolist() == [0.0, 6.0, 100.0]


def test_a_tree_that_is_one_leaf_adds_its_value_beside_the_others() -> None:
    trees = Trees(
        {
            "feature": np.array([0, 0, 0, 0]),
            "threshold": np.array([0.0, 0.5, 0, 0]),
            "left": np.array([0, 2, 0, 0]),
            "right": np.array([0, 3, 0, 0]),
            "value": np.array([7.0, 0, -1.0, 2.0]),
            "leaf": np.array([True, False, True, True]),
            "missing_left": np.zeros(4, dtype=bool),
            "roots": np.array([0, 1]),
            "baseline": np.array(0.5),
            "depth": np.array(1),
        }
    )
    assert trees._exits is not None
    assert trees.raw(np.array([[0.1], [0.9], [np.nan]])).tolist() == [6.5, 9.5, 9.5]
