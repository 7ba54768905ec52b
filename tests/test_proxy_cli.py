"""``semcache proxy`` started as a real process from the command line, used by curl (a client that
is not Python): exact hits, server-sent event streams and status headers over plain HTTP."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from openai_server import FakeOpenAI

import semcache
from semcache.cli import main

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cli_proxy(fake_openai: FakeOpenAI, redis_url: str, namespace: str) -> Iterator[str]:
    """The proxy as ``semcache proxy ...`` in a child process; yields its base URL."""
    port = free_port()
    args = ["proxy", "--upstream", fake_openai.base_url, "--port", str(port),
            "--redis-url", redis_url, "--namespace", namespace, "--exact-only"]  # fmt: skip
    code = "import sys; from semcache.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, *args]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as child:
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", child)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            child.terminate()
            child.wait(20)
    config = semcache.CacheConfig(namespace=namespace, semantic=False)
    with semcache.Cache(redis_url=redis_url, config=config) as cache:
        cache.flush()


def _wait_healthy(url: str, child: subprocess.Popen[str]) -> None:
    pause = threading.Event()
    for _ in range(600):  # the child imports semcache, starlette and uvicorn first
        if child.poll() is not None:
            raise RuntimeError(
                f"semcache proxy exited: {child.stderr.read() if child.stderr else ''}"
            )
        try:
            if httpx2.get(f"{url}/healthz").status_code == 200:
                return
        except httpx2.TransportError:
            pause.wait(0.1)
    raise RuntimeError("semcache proxy did not start")


def curl(url: str, body: dict[str, object]) -> tuple[dict[str, str], str]:
    """POST with curl; the response headers (lower-case) and body."""
    out = subprocess.run(
        ["curl", "-sS", "-N", "-D", "-", "-H", "content-type: application/json", "-H",
         "authorization: Bearer sk-test", "--data-binary", json.dumps(body), url],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    head, _, content = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, content


def test_curl_gets_a_miss_then_the_same_answer_from_the_cache(
    cli_proxy: str, fake_openai: FakeOpenAI
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello from curl"}]}
    miss_headers, miss = curl(f"{cli_proxy}/chat/completions", body)
    hit_headers, hit = curl(f"{cli_proxy}/chat/completions", body)
    assert miss_headers["x-portkey-cache-status"] == "MISS"
    assert (hit_headers["x-portkey-cache-status"], hit_headers["x-semcache-layer"]) == (
        "HIT",
        "exact",
    )
    assert json.loads(hit) == json.loads(miss)
    assert json.loads(hit)["choices"][0]["message"]["content"] == "echo: hello from curl"
    assert fake_openai.calls("chat/completions") == 1


def test_curl_stream_is_server_sent_events_on_miss_and_hit(
    cli_proxy: str, fake_openai: FakeOpenAI
) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "sse please"}]}
    texts = []
    for _ in range(2):
        headers, content = curl(f"{cli_proxy}/chat/completions", body)
        assert headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in content.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        texts.append(
            "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        )
    assert texts == ["echo: sse please", "echo: sse please"]
    assert headers["x-portkey-cache-status"] == "HIT"
    assert fake_openai.calls("chat/completions") == 1


def test_bad_api_keys_file_is_a_usage_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('["not", "a", "map"]')
    result = CliRunner().invoke(
        main, ["proxy", "--upstream", "http://x/v1", "--api-keys", str(keys)]
    )
    assert result.exit_code == 2 and "api key" in result.output
    result = CliRunner().invoke(main, ["proxy", "--upstream", "x:1"])
    assert result.exit_code == 2 and "http(s) URL" in result.output
