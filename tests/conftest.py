"""Shared fixtures: a real Redis with the search module started by semcache's own launcher, and the
real local embedding model (loaded once per session)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import semcache
from semcache.server import EmbeddedServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data directory of the session's own, so no test writes to the user's (tune's embedding
    cache, an embedded server started by a cache without a URL); its server is stopped after."""
    home = tmp_path_factory.mktemp("home")
    before = os.environ.get("SEMCACHE_HOME")
    os.environ["SEMCACHE_HOME"] = str(home)
    yield home
    EmbeddedServer(home).stop()
    if before is None:
        os.environ.pop("SEMCACHE_HOME")
    else:
        os.environ["SEMCACHE_HOME"] = before


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    """One private redis-server (with the search module) for the whole session."""
    directory = Path(tempfile.mkdtemp(prefix="semcache-test-"))
    server = EmbeddedServer(directory, persist=True).start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def embedder() -> semcache.Embedder:
    """The real default embedder (all-MiniLM-L6-v2 on ONNX Runtime, offline), shared by the session."""
    return semcache.Batching(semcache.OnnxEmbedder())


def hash_embedder(dimension: int = 16, model_id: str = "test-hash") -> semcache.CallableEmbedder:
    """A deterministic callable embedder for tests where the meaning of vectors does not matter:
    equal texts give equal vectors, different texts almost orthogonal ones."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(dimension))
        return np.asarray(rows, dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id=model_id, dimension=dimension)


@pytest.fixture
def namespace() -> str:
    """A fresh namespace per test, so tests never see each other's entries."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cache(redis_url: str, embedder: semcache.Embedder, namespace: str) -> Iterator[semcache.Cache]:
    with semcache.Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as c:
        yield c
        c.flush()


def chat(
    text: str, *, system: str | None = None, model: str = "gpt-4o-mini", **params: object
) -> dict:
    """A chat completions request body."""
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": text}], **params}


def answer(text: str, model: str = "gpt-4o-mini") -> dict:
    """A chat completion response body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


# --- the OpenAI wrapper: a local OpenAI-compatible server and wrapped clients on it ---------------


@pytest.fixture
def fake_openai() -> Iterator[object]:
    """A fresh local OpenAI-compatible server (tests/openai_server.py) per test."""
    from openai_server import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def wrap_cache(redis_url: str, namespace: str) -> Iterator[semcache.Cache]:
    """A cache whose semantic layer uses the fast hash embedder (no model load)."""
    with semcache.Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as c:
        yield c
        c.flush()


@pytest.fixture
def wrapped(fake_openai: object, wrap_cache: semcache.Cache) -> Iterator[object]:
    """``semcache.wrap(openai.OpenAI(...))`` on the local server, without SDK retries."""
    import openai

    url = fake_openai.base_url  # type: ignore[attr-defined]
    raw = openai.OpenAI(base_url=url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=wrap_cache)
    yield client
    client.close()


# --- a local Redis Cluster: 3 masters on 127.0.0.1, the search module on every node ----------------


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[object]:
    """A 3-master Redis Cluster started by semcache's own launcher, once per session."""
    from semcache.server import EmbeddedCluster

    cluster = EmbeddedCluster(Path(tempfile.mkdtemp(prefix="semcache-cluster-")), masters=3)
    cluster.start()
    yield cluster
    cluster.wipe()


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: object) -> str:
    return redis_cluster.url  # type: ignore[attr-defined, no-any-return]


def normalising_embedder(model_id: str = "normalising") -> semcache.CallableEmbedder:
    """Texts equal up to case and punctuation get the same vector: a deterministic paraphrase."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = "".join(c for c in text.lower() if c.isalnum() or c == " ").split()
            seed = int(hashlib.sha256(" ".join(words).encode()).hexdigest()[:8], 16)
            rows.append(np.random.default_rng(seed).standard_normal(16))
        return np.asarray(rows, dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id=model_id, dimension=16)
