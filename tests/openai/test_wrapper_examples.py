"""The wrapper's examples run: the local-server one against the test server, the API one up to its
key check (never the network)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import hash_embedder
from openai_server import FakeOpenAI

import semcache

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_local_server_example(
    fake_openai: FakeOpenAI,
    wrap_cache: semcache.Cache,
    redis_url: str,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load("openai_local_server")
    example.main(fake_openai.base_url, "m", wrap_cache)
    lines = capsys.readouterr().out.splitlines()
    assert "upstream" in lines[0] and "exact" in lines[1] and "exact" in lines[2]
    assert "upstream" in lines[4]  # the bypassed call
    cache = semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace)
    await example.amain(fake_openai.base_url, "m", cache)
    await cache.aclose()
    out = capsys.readouterr().out
    assert "cold: 0/10" in out and "warm: 10/10" in out


def test_api_example_needs_a_key_and_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "openai_api.py")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr
