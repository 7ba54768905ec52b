"""The standard ``Cache-Control`` request header on a wrapped client: ``no-cache`` asks upstream (and
refreshes the entry), ``no-store`` stores nothing."""

from __future__ import annotations

import openai
import pytest
from openai_server import FakeOpenAI

from semcache.openai import cache_info
from semcache.openai._options import from_cache_control

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_no_cache_goes_upstream_and_refreshes_the_entry(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    wrapped.chat.completions.create(model="m", messages=ask("rates"))
    fresh = wrapped.chat.completions.create(
        model="m", messages=ask("rates"), extra_headers={"Cache-Control": "no-cache"}
    )
    assert fake_openai.calls(CHAT) == 2
    assert cache_info(fresh).reason == "bypass"  # type: ignore[union-attr]
    again = wrapped.chat.completions.create(model="m", messages=ask("rates"))
    assert fake_openai.calls(CHAT) == 2 and again.id == fresh.id
    assert cache_info(again).layer == "exact"  # type: ignore[union-attr]


def test_no_store_stores_nothing(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    for _ in range(2):
        wrapped.chat.completions.create(
            model="m", messages=ask("secret"), extra_headers={"Cache-Control": "private, no-store"}
        )
    assert fake_openai.calls(CHAT) == 2
    wrapped.chat.completions.create(model="m", messages=ask("secret"))
    assert fake_openai.calls(CHAT) == 3


def test_no_store_still_reads_what_was_stored(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    wrapped.chat.completions.create(model="m", messages=ask("faq"))
    hit = wrapped.chat.completions.create(
        model="m", messages=ask("faq"), extra_headers={"Cache-Control": "no-store"}
    )
    assert fake_openai.calls(CHAT) == 1 and cache_info(hit).layer == "exact"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "options"),
    [
        ("no-cache", {"bypass": True}),
        ("No-Store", {"no_store": True}),
        ("no-cache, no-store", {"bypass": True, "no_store": True}),
        ("max-age=0", {}),
        ("", {}),
        (None, {}),
    ],
)
def test_cache_control_directives(value: str | None, options: dict[str, bool]) -> None:
    assert from_cache_control(value) == options
