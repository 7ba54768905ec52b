"""A verifier artifact with fine-tuned layers (``encoder.safetensors``): its token states come from
those layers over the model package's weights, in a session of its own, and its stored form is
another form, never read as the embedder's (or another encoder's) states."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from semcache import Verifier
from semcache.decision import alignment
from semcache.decision.alignment import ENCODER, PACKED, TokenModel
from semcache.decision.verifier import artifact_dir

TEXTS = ["How do I lose weight fast?", "Can a dog eat chocolate?"]
LAYER = "encoder.layer.5.output.dense.bias"


def overlay(folder: Path, shift: float) -> Path:
    """An encoder file replacing one layer's bias (fp16, as training exports it), shifted up and
    down on alternate features (a LayerNorm follows: a constant shift would be normalised away)."""
    from safetensors.numpy import load_file, save_file

    from semcache.embedding.onnx import _weights_dir

    base = load_file(str(_weights_dir() / "model.safetensors"))[LAYER]
    folder.mkdir(parents=True, exist_ok=True)
    signs = np.where(np.arange(base.shape[0]) % 2 == 0, 1.0, -1.0)
    save_file({LAYER: (base + shift * signs).astype(np.float16)}, str(folder / ENCODER))
    return folder / ENCODER


def sentences(model: TokenModel) -> np.ndarray:
    return np.array([s.sentence for s in model.states(TEXTS, keep=False)])


def test_fine_tuned_layers_change_the_states_and_a_copy_of_the_base_does_not(
    tmp_path: Path,
) -> None:
    idf = np.ones(30522, dtype=np.float32)
    base = sentences(TokenModel(idf))
    same = sentences(TokenModel(idf, encoder=overlay(tmp_path / "same", 0.0)))
    tuned = sentences(TokenModel(idf, encoder=overlay(tmp_path / "tuned", 0.5)))
    assert np.min(np.sum(same * base, axis=1)) > 0.9999  # fp16 of the base layer: the base
    assert np.max(np.sum(tuned * base, axis=1)) < 0.999  # the overlay is what ran


def test_states_of_another_encoder_are_another_form(tmp_path: Path) -> None:
    idf = np.ones(30522, dtype=np.float32)
    base, tuned = TokenModel(idf), TokenModel(idf, encoder=overlay(tmp_path / "a", 0.5))
    other = TokenModel(idf, encoder=overlay(tmp_path / "b", -0.5))
    assert base.tag == PACKED and tuned.tag not in (PACKED, other.tag)
    state = tuned.states(TEXTS[:1])[0]
    blob = alignment.pack(state, tuned.tag)
    assert tuned.hold(TEXTS[0], blob)
    assert not base.hold(TEXTS[0], blob) and not other.hold(TEXTS[0], blob)
    assert not tuned.hold(TEXTS[0], alignment.pack(base.states(TEXTS[:1])[0]))


def test_a_verifier_artifact_with_an_encoder_scores_with_it(tmp_path: Path) -> None:
    shipped = artifact_dir()
    folder = tmp_path / "artifact"
    shutil.copytree(shipped, folder)
    overlay(folder, 0.5)
    pair = ("How do I lose weight fast?", "How can I lose weight quickly?")
    own, tuned = Verifier(shipped), Verifier(folder)
    assert tuned._load().model.encoder == folder / ENCODER
    assert own._load().model.encoder is None
    assert tuned.score(pair[0], [pair[1]]) != pytest.approx(own.score(pair[0], [pair[1]]))


def test_an_unreadable_encoder_is_a_configuration_error(tmp_path: Path) -> None:
    from semcache import ConfigurationError

    with pytest.raises(ConfigurationError, match="verifier encoder"):
        TokenModel(np.ones(3), encoder=tmp_path / "missing.safetensors")


def test_an_overlay_that_replaces_none_of_the_graphs_tensors_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from semcache.embedding.onnx import MANIFEST, _spec
    from semcache.embedding.onnx_runtime import _session

    spec = _spec(MANIFEST, None)
    for name, tensors in {
        "unknown": {"encoder.layer.9.output.dense.bias": np.zeros(384, np.float16)},
        "shape": {LAYER: np.zeros(383, np.float16)},
    }.items():
        save_file(tensors, str(tmp_path / f"{name}.safetensors"))
        bad = replace(spec, overlay=tmp_path / f"{name}.safetensors")
        with pytest.raises(ValueError, match="replace none of the graph's"):
            _session(bad, 1)


def test_a_store_that_embedded_the_text_stores_the_encoders_state(tmp_path: Path) -> None:
    from semcache.embedding.onnx import OnnxEmbedder

    idf = np.ones(30522, dtype=np.float32)
    tuned = TokenModel(idf, encoder=overlay(tmp_path, 0.5)).load()
    text = "Which is the tallest mountain in Wales?"
    assert tuned.packed(text, 64) is None  # nothing ran the text: no model run for a store
    OnnxEmbedder().embed([text])  # the store's embedding
    blob = tuned.packed(text, 64)
    assert blob is not None and blob.startswith(tuned.tag)
    again = TokenModel(idf, encoder=tmp_path / ENCODER)
    assert again.hold(text, blob)
    held = again.held.get(text)
    ran = tuned.states([text])[0]
    assert held is not None and float(held.sentence @ ran.sentence) > 0.999
