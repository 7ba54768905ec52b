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
    bulk = [f"bulk text number {i}" for i in range(20)]
    embedder.embed(bulk)  # a bulk load is not remembered
    assert not any(t in model._model.recent for t in bulk)


def test_a_text_without_content_tokens_still_scores(model: TokenModel) -> None:
    empty, other = model.states(["?", "What is love?"])
    assert len(empty.ids) == 1  # "?" alone
    values = features("", "What is love?", model.states([""])[0], other)
    assert len(values) == len(FEATURES) and all(np.isfinite(values))
