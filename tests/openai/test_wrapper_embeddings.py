"""embeddings.create through semcache.wrap(): one (model, text) cache entry per input."""

from __future__ import annotations

import base64
import uuid

import numpy as np
import openai
import pytest
from openai_server import FakeOpenAI, vector_for

from semcache.openai import cache_info


@pytest.fixture
def model() -> str:
    """A model id of this test's own: the embedding cache is shared by every namespace."""
    return f"emb-{uuid.uuid4().hex[:8]}"


def test_batch_calls_the_model_only_for_uncached_inputs(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, model: str
) -> None:
    first = wrapped.embeddings.create(model=model, input=["alpha", "beta"])
    second = wrapped.embeddings.create(model=model, input=["gamma", "alpha", "beta", "delta"])
    assert fake_openai.embedded == ["alpha", "beta", "gamma", "delta"]
    assert [d.index for d in second.data] == [0, 1, 2, 3]
    for row, text in zip(second.data, ["gamma", "alpha", "beta", "delta"], strict=True):
        assert np.array_equal(np.asarray(row.embedding, dtype=np.float32), vector_for(text))
    assert first.data[0].embedding == second.data[1].embedding
    info = cache_info(second)
    assert info is not None and (info.cached_inputs, info.inputs) == (2, 4) and not info.hit
    assert second.usage.prompt_tokens == 2  # only the two texts the model embedded


def test_fully_cached_batch_never_calls_the_model(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, model: str
) -> None:
    wrapped.embeddings.create(model=model, input="one text")
    again = wrapped.embeddings.create(model=model, input="one text")
    assert fake_openai.calls("embeddings") == 1
    assert cache_info(again).layer == "embeddings"  # type: ignore[union-attr]
    assert np.array_equal(np.asarray(again.data[0].embedding, np.float32), vector_for("one text"))


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_answers_in_the_encoding_asked_for(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, encoding_format: str, model: str
) -> None:
    wrapped.embeddings.create(model=model, input=["cached"])
    reply = wrapped.embeddings.create(
        model=model,
        input=["cached", "fresh"],
        encoding_format=encoding_format,  # type: ignore[arg-type]
    )
    assert fake_openai.last("embeddings").body["input"] == ["fresh"]
    for row, text in zip(reply.data, ["cached", "fresh"], strict=True):
        if encoding_format == "base64":
            assert isinstance(row.embedding, str)
            raw = np.frombuffer(base64.b64decode(row.embedding), dtype="<f4")
        else:
            assert isinstance(row.embedding, list)
            raw = np.asarray(row.embedding, dtype=np.float32)
        assert np.array_equal(raw, vector_for(text))


def test_dimensions_and_model_are_part_of_the_key(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, model: str
) -> None:
    wrapped.embeddings.create(model=model, input="same")
    small = wrapped.embeddings.create(model=model, input="same", dimensions=4)
    wrapped.embeddings.create(model=model + "-other", input="same")
    assert fake_openai.calls("embeddings") == 3
    assert len(small.data[0].embedding) == 4


def test_token_inputs_pass_through(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, model: str
) -> None:
    for _ in range(2):
        reply = wrapped.embeddings.create(model=model, input=[[1, 2, 3]])
    assert fake_openai.calls("embeddings") == 2
    assert cache_info(reply).reason == "uncacheable"  # type: ignore[union-attr]
