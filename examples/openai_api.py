"""semcache.wrap() in front of the real OpenAI API. The key comes from the environment:

    OPENAI_API_KEY=sk-... python examples/openai_api.py

Each call below costs money only the first time; run the script twice to see every answer come
from the cache. Data stays in semcache's embedded local Redis (or ``SEMCACHE_REDIS_URL``).
"""

from __future__ import annotations

import os
import sys

import openai

import semcache
from semcache.openai import cache_info

MODEL = os.environ.get("SEMCACHE_EXAMPLE_MODEL", "gpt-4o-mini")
EMBEDDING_MODEL = "text-embedding-3-small"


def main() -> int:
    if not os.environ.get("OPENAI_API_KEY"):
        print("set OPENAI_API_KEY to run this example against the OpenAI API", file=sys.stderr)
        return 2
    cache = semcache.Cache(redis_url=os.environ.get("SEMCACHE_REDIS_URL"), namespace="example-api")
    client = semcache.wrap(openai.OpenAI(), cache=cache, ttl=24 * 3600)
    messages = [{"role": "user", "content": "Name three uses of Redis, comma-separated."}]

    reply = client.chat.completions.create(model=MODEL, messages=messages, temperature=0)
    report("chat", reply.choices[0].message.content, reply)

    stream = client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    report("chat, streamed", text, stream)

    response = client.responses.create(model=MODEL, input="Say hello in French, one word.")
    report("responses", response.output_text, response)

    # Per request, through extra_body: this tenant's entries are its own, kept for ten minutes.
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0,
        extra_body={"semcache": {"tenant": "acme", "ttl": 600}},
    )  # fmt: skip
    report("tenant acme", reply.choices[0].message.content, reply)

    vectors = client.embeddings.create(model=EMBEDDING_MODEL, input=["redis", "valkey", "redis"])
    report("embeddings", f"{len(vectors.data)} vectors", vectors)
    client.close()
    cache.close()
    return 0


def report(label: str, text: str | None, obj: object) -> None:
    info = cache_info(obj)
    served = f"cache ({info.layer})" if info and info.hit else "OpenAI"
    print(f"{label:>15}: {served:<18} {(text or '').strip()[:60]}")


if __name__ == "__main__":
    sys.exit(main())
