"""Streaming through semcache.wrap(): streamed misses pass through and are recorded; hits replay as
real SDK streams; streamed and non-streamed calls share one entry."""

from __future__ import annotations

import threading
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from openai_server import TOOL_CALL, FakeOpenAI

from semcache.openai import cache_info

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def tool_calls_of(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.id
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    return [calls[i] for i in sorted(calls)]


def test_streamed_miss_then_streamed_hit(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    miss = wrapped.chat.completions.create(model="m", messages=ask("tell me a story"), stream=True)
    first = list(miss)
    hit = wrapped.chat.completions.create(model="m", messages=ask("tell me a story"), stream=True)
    second = list(hit)
    assert fake_openai.calls(CHAT) == 1
    assert isinstance(hit, openai.Stream) and all(
        isinstance(c, ChatCompletionChunk) for c in second
    )
    assert text_of(second) == text_of(first) == "echo: tell me a story"
    assert second[-1].choices[0].finish_reason == first[-1].choices[0].finish_reason == "stop"
    assert cache_info(miss).hit is False  # type: ignore[union-attr]
    assert cache_info(hit).layer == cache_info(second[0]).layer == "exact"  # type: ignore[union-attr]


def test_recorded_stream_replays_unstreamed_with_usage_and_never_leaks_usage(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    streamed = list(wrapped.chat.completions.create(model="m", messages=ask("hi"), stream=True))
    sent = fake_openai.last(CHAT).body
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream for the entry's sake
    assert all(c.choices for c in streamed)  # ... and the usage-only chunk was not passed on
    assert all(c.usage is None for c in streamed)
    reply = wrapped.chat.completions.create(model="m", messages=ask("hi"))
    assert fake_openai.calls(CHAT) == 1
    assert reply.choices[0].message.content == text_of(streamed) == "echo: hi"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert reply.model == "m" and reply.id == streamed[0].id
    assert cache_info(reply).layer == "exact"  # type: ignore[union-attr]


def test_caller_who_asks_for_usage_gets_it_on_miss_and_hit(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    options = {"include_usage": True}
    runs = [
        list(wrapped.chat.completions.create(
            model="m", messages=ask("usage please"), stream=True, stream_options=options  # type: ignore[arg-type]
        ))
        for _ in range(2)
    ]  # fmt: skip
    assert fake_openai.calls(CHAT) == 1
    for chunks in runs:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert runs[0][-1].usage == runs[1][-1].usage


def test_unstreamed_entry_replays_as_a_stream(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    reply = wrapped.chat.completions.create(model="m", messages=ask("first plain"))
    options = {"include_usage": True}
    chunks = list(
        wrapped.chat.completions.create(
            model="m",
            messages=ask("first plain"),
            stream=True,
            stream_options=options,  # type: ignore[arg-type]
        )
    )
    assert fake_openai.calls(CHAT) == 1
    assert text_of(chunks) == reply.choices[0].message.content
    assert chunks[-1].usage == reply.usage


@pytest.mark.parametrize("first_streamed", [True, False])
def test_tool_calls_round_trip_through_streams(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, first_streamed: bool
) -> None:
    messages = ask("weather [tool]")
    if first_streamed:
        recorded = tool_calls_of(
            list(wrapped.chat.completions.create(model="m", messages=messages, stream=True))  # type: ignore[arg-type]
        )
    else:
        call = wrapped.chat.completions.create(model="m", messages=messages).choices[0]  # type: ignore[arg-type]
        assert call.message.tool_calls is not None
        f = call.message.tool_calls[0].function  # type: ignore[union-attr]
        recorded = [{"id": call.message.tool_calls[0].id, "name": f.name, "arguments": f.arguments}]
    expected = {"id": TOOL_CALL["id"], **TOOL_CALL["function"]}  # type: ignore[dict-item]
    assert recorded == [expected]
    replayed = list(wrapped.chat.completions.create(model="m", messages=messages, stream=True))  # type: ignore[arg-type]
    assert tool_calls_of(replayed) == [expected]
    assert replayed[-1].choices[0].finish_reason == "tool_calls"
    plain = wrapped.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert plain.choices[0].message.tool_calls[0].function.arguments == expected["arguments"]  # type: ignore[index, union-attr]
    with wrapped.chat.completions.stream(model="m", messages=messages) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
    assert fake_openai.calls(CHAT) == 1


def test_stream_cut_before_its_terminal_event_is_not_stored(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        chunks = list(
            wrapped.chat.completions.create(model="m", messages=ask("[cut]"), stream=True)
        )
        assert text_of(chunks) == "echo: [cut]"  # the caller saw what upstream sent
    events = [
        list(wrapped.responses.create(model="m", input="[cut]", stream=True)) for _ in range(2)
    ]
    assert events[0][-1].type == "response.output_item.done"
    assert fake_openai.calls(CHAT) == 2 and fake_openai.calls("responses") == 2


def test_abandoned_stream_is_not_stored(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    stream = wrapped.chat.completions.create(model="m", messages=ask("long answer"), stream=True)
    next(iter(stream))
    stream.close()
    wrapped.chat.completions.create(model="m", messages=ask("long answer"))
    assert fake_openai.calls(CHAT) == 2


def test_streamed_miss_passes_chunks_on_as_they_arrive(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    # The server sends two chunks, then waits for the gate (10 s at most, then says "TIMEOUT").
    stream = wrapped.chat.completions.create(model="m", messages=ask("wait [gate]"), stream=True)
    iterator = iter(stream)
    early = [next(iterator), next(iterator)]
    assert not fake_openai.gate.is_set()
    threading.Timer(0.05, fake_openai.gate.set).start()
    rest = list(iterator)
    assert text_of(early + rest) == "echo: wait [gate]"  # the server never timed out


def test_responses_stream_round_trip(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    first = list(wrapped.responses.create(model="m", input="stream me", stream=True))
    second = list(wrapped.responses.create(model="m", input="stream me", stream=True))
    plain = wrapped.responses.create(model="m", input="stream me")
    assert fake_openai.calls("responses") == 1
    assert first[-1].type == second[-1].type == "response.completed"
    assert second[-1].response.output_text == first[-1].response.output_text == "echo: stream me"  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in second if e.type == "response.output_text.delta")
    assert deltas == "echo: stream me"
    assert plain.output_text == "echo: stream me" and plain.usage == first[-1].response.usage  # type: ignore[union-attr]
    with wrapped.responses.stream(model="m", input="stream me") as helper:
        assert helper.get_final_response().output_text == "echo: stream me"
    assert cache_info(second[0]).layer == "exact"  # type: ignore[union-attr]


def test_responses_function_call_replays_as_a_stream(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    plain = wrapped.responses.create(model="m", input="call a tool [tool]")
    events = list(wrapped.responses.create(model="m", input="call a tool [tool]", stream=True))
    assert fake_openai.calls("responses") == 1
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert args == plain.output[0].arguments  # type: ignore[union-attr]
    assert events[-1].response.output[0].model_dump() == plain.output[0].model_dump()  # type: ignore[union-attr]


def test_completions_stream_round_trip(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    first = list(wrapped.completions.create(model="m", prompt="count to three", stream=True))
    second = list(wrapped.completions.create(model="m", prompt="count to three", stream=True))
    plain = wrapped.completions.create(model="m", prompt="count to three")
    assert fake_openai.calls("completions") == 1
    text = "".join(c.choices[0].text for c in first if c.choices)
    assert text == "".join(c.choices[0].text for c in second) == plain.choices[0].text
    assert plain.usage is not None and plain.choices[0].finish_reason == "stop"


CHAT_BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "system_fingerprint": "fp", "service_tier": "default",
    "choices": [
        {"index": 0, "finish_reason": "stop",
         "logprobs": {"content": [{"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []}],
                      "refusal": None},
         "message": {"role": "assistant", "content": "a", "refusal": None, "annotations": []}},
        {"index": 1, "finish_reason": "tool_calls", "logprobs": None,
         "message": {"role": "assistant", "content": None, "refusal": None,
                     "tool_calls": [TOOL_CALL, {**TOOL_CALL, "id": "call_2"}]}},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}  # fmt: skip
RESPONSE_BODY = {
    "id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
    "output": [
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "hi", "annotations": []},
                     {"type": "refusal", "refusal": "no"}]},
        {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}",
         "status": "completed"},
    ],
    "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
}  # fmt: skip
COMPLETION_BODY = {
    "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "text": "hello", "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "body"),
    [("chat", CHAT_BODY), ("completion", COMPLETION_BODY), ("responses", RESPONSE_BODY)],
)
@pytest.mark.parametrize("usage", [True, False])
def test_replayed_stream_records_back_to_the_same_body(
    kind: str, body: dict[str, Any], usage: bool
) -> None:
    from semcache.openai._restream import restream as replay
    from semcache.openai._sse import Recorder

    stream = replay(kind, body, include_usage=usage)
    recorder = Recorder(kind, drop_usage=False)
    assembled = [recorder.feed(stream[i : i + 7])[1] for i in range(0, len(stream), 7)]
    (recorded,) = [b for b in assembled if b is not None]
    expected = (
        body if usage or kind == "responses" else {k: v for k, v in body.items() if k != "usage"}
    )
    assert recorded == expected
