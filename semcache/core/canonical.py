"""Canonical requests: what makes two requests the same, and which text a semantic match compares.

No I/O here. A request is an OpenAI-style body dict for chat completions, completions or responses.

- The **exact key** hashes a canonical JSON of every answer-changing part of the request, plus the
  namespace, tenant and cache version. Transport-only parameters (``stream``, ``user``, timeouts, ...)
  are left out, so a streamed and a non-streamed call share an entry.
- The **semantic text** is what gets embedded: by default the text parts of the last user turn.
- The **scope** hashes everything else (model, system prompt, earlier turns, tools, parameters, tenant,
  namespace, embedding model, version). A semantic match is only allowed inside one scope.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; json.dumps makes the same digests
    orjson = None  # type: ignore[assignment]

from semcache._errors import InvalidRequestError

Kind = Literal["chat", "completion", "responses"]
SemanticMode = Literal["last_user", "window", "conversation"]

#: Parameters that change how the answer travels, never what it says.
TRANSPORT_PARAMS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "timeout",
        "extra_headers",
        "extra_query",
        "extra_body",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "background",
    }
)

#: Deepest nesting of objects and lists keyed or stored (JSON schemas of tools stay far below);
#: deeper values would exhaust the interpreter's recursion limit somewhere on the way.
MAX_DEPTH = 100
#: Largest integer keyed: its decimal form stays under Python's 4,300-digit conversion limit.
MAX_INT_BITS = 4096

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_MARK = "\u0000semcache:semantic-text\u0000"


@dataclass(frozen=True, slots=True)
class SemanticPolicy:
    """Which part of a request the semantic layer embeds.

    ``mode="last_user"`` (default) embeds the last user turn; ``"window"`` the last ``window`` turns;
    ``"conversation"`` every turn. Everything not embedded goes into the scope.
    """

    mode: SemanticMode = "last_user"
    window: int = 2

    def __post_init__(self) -> None:
        if self.mode not in ("last_user", "window", "conversation"):
            raise ValueError(f"unknown semantic mode {self.mode!r}")
        if self.window < 1:
            raise ValueError("window must be at least 1")


@dataclass(frozen=True, slots=True)
class Canonical:
    """A request reduced to what the cache needs: its kind, keyed body, semantic text and the rest."""

    kind: Kind
    model: str
    body: dict[str, Any]
    semantic_text: str
    rest: dict[str, Any]
    """The body with the semantic text cut out: the part the scope hashes."""

    @property
    def stochastic(self) -> bool:
        """True when the request asks for sampled (temperature > 0) or several (n > 1) answers."""
        temperature = self.body.get("temperature", 1)
        n = self.body.get("n", 1)
        return bool(
            (isinstance(temperature, int | float) and temperature > 0)
            or (isinstance(n, int) and n > 1)
        )


def request_kind(request: Mapping[str, Any]) -> Kind:
    """Tell a chat, completion or responses body apart by its fields."""
    if "messages" in request:
        return "chat"
    if "prompt" in request:
        return "completion"
    if "input" in request:
        return "responses"
    raise InvalidRequestError("request has none of 'messages', 'prompt' or 'input'")


def canonicalize(
    request: Mapping[str, Any], policy: SemanticPolicy = SemanticPolicy()
) -> Canonical:
    """Validate a request body and split it into keyed body, semantic text and scope remainder."""
    if not isinstance(request, Mapping):
        raise InvalidRequestError(f"request must be a mapping, not {type(request).__name__}")
    kind = request_kind(request)
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("request needs a non-empty string 'model'")
    # the keyed values are depth-checked as they are copied; the transport ones on their own
    body = {
        k: _normal(v, ("request", k), 2)
        for k, v in request.items()
        if k not in TRANSPORT_PARAMS and v is not None
    }
    for k in TRANSPORT_PARAMS.intersection(request):
        check_depth(request[k], "request", start=2)
    text, rest = _split(kind, body, policy)
    return Canonical(kind=kind, model=model, body=body, semantic_text=text, rest=rest)


def dumps(value: Any) -> str:
    """The one canonical JSON encoding: sorted keys, no spaces, Unicode kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


#: What orjson writes otherwise than :func:`dumps`: a float in exponent form, or one under 1e-4
#: (Python writes ``1e-05``, orjson ``0.00001``). Only where a number can start inside a list or
#: an object (after ``[``, ``,`` or ``:``; orjson writes no spaces), so a hex digest or a text
#: holding ``8e5`` keeps the fast path; a text that merely looks like a number there
#: (``"a,1e5"``) falls back, as does a value that is not a list or an object. A leading character
#: class: 1.5 µs on a chat request's 270 bytes where the unanchored pattern took 3.6.
_UNLIKE_DUMPS = re.compile(rb"[\[,:]-?[0-9][0-9.]*[eE]|[\[,:]-?0\.0000")


def digest(value: Any) -> str:
    """``sha256(dumps(value))``, from orjson's bytes where they are the same as :func:`dumps`'s
    (0.25 µs against 3.7 for a chat request; the same on 400,000 random floats and every escape
    checked): entries keep their keys. An integer past 64 bits, a non-string key, a lone
    surrogate or a float orjson writes otherwise go through :func:`dumps`."""
    data: bytes | None = None
    if orjson is not None:
        try:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            data = None
    if data is None or data[:1] not in b"[{" or _UNLIKE_DUMPS.search(data):
        data = dumps(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def exact_hash(canon: Canonical, *, namespace: str, tenant: str, version: str) -> str:
    """The exact key's hash: the whole keyed body plus namespace, tenant and cache version."""
    return digest([canon.kind, canon.body, namespace, tenant, version])


def scope_hash(
    canon: Canonical, *, namespace: str, tenant: str, version: str, embedding_model: str
) -> str:
    """The scope tag: everything that changes the answer except the semantic text."""
    return digest([canon.kind, canon.rest, namespace, tenant, version, embedding_model])[:32]


# --- normalisation -------------------------------------------------------------------------------


Where = str | tuple[Any, str | int]
"""Where a value sits in the request: a name (``"request.messages"``), or (the place of its
container, its key or index), spelt out only when an error names it (a lookup builds no path)."""


def _path(where: Where) -> str:
    parts: list[str] = []
    while isinstance(where, tuple):
        where, part = where
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return where + "".join(reversed(parts))


def _normal(value: Any, where: Where, depth: int) -> Any:
    """JSON-ready copy of a value found ``depth`` containers down; whole floats become ints so 1
    and 1.0 key alike. A container deeper than :data:`MAX_DEPTH` is refused before it is walked.
    The JSON types go first, by their exact type (a chat request is strings, dicts and lists)."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _unicode(value, where)
    if kind is dict or kind is list:
        if depth > MAX_DEPTH:
            root = _path(where).split(".", 1)[0].split("[", 1)[0]
            raise InvalidRequestError(f"{root} is nested deeper than {MAX_DEPTH} levels")
        if kind is list:
            return [_normal(v, (where, i), depth + 1) for i, v in enumerate(value)]
        return _items(value, where, depth)
    if isinstance(value, str):  # a str subclass
        return _unicode(value, where)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise InvalidRequestError(f"{_path(where)} is an integer too large to key")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(f"{_path(where)} is not a finite number")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping | list | tuple) and depth > MAX_DEPTH:
        root = _path(where).split(".", 1)[0].split("[", 1)[0]
        raise InvalidRequestError(f"{root} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        return _items(value, where, depth)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_normal(v, (where, i), depth + 1) for i, v in enumerate(value)]
    if hasattr(value, "model_dump"):  # pydantic models from the openai SDK
        return _normal(value.model_dump(mode="json", exclude_none=True), where, depth)
    raise InvalidRequestError(f"{_path(where)} has a value of type {type(value).__name__}")


def _items(value: Mapping[Any, Any], where: Where, depth: int) -> dict[str, Any]:
    """A mapping's JSON-ready copy (``depth``: its own), its keys as valid Unicode strings."""
    out = {}
    for k, v in value.items():
        key = k if type(k) is str and k.isascii() else _unicode(str(k), where)
        out[key] = _normal(v, (where, key), depth + 1)
    return out


def check_depth(value: Any, where: str, *, start: int = 1) -> None:
    """Refuse a value nested deeper than :data:`MAX_DEPTH` (walked without recursion; ``start``:
    the depth of ``value`` itself)."""
    stack: list[tuple[Any, int]] = [(value, start)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidRequestError(f"{where} is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _unicode(text: str, where: Where) -> str:
    """The text as valid Unicode: a surrogate pair becomes its character (as JSON carries it
    upstream); a lone surrogate can be neither sent nor stored."""
    if text.isascii():  # no surrogates: nothing to check or copy
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f"{_path(where)} is not valid Unicode (a lone surrogate)"
            ) from None
    return text


# --- semantic text ---------------------------------------------------------------------------------


def _split(kind: Kind, body: dict[str, Any], policy: SemanticPolicy) -> tuple[str, dict[str, Any]]:
    if kind == "completion":
        return _split_prompt(body)
    field = "messages" if kind == "chat" else "input"
    turns = body.get(field)  # None values were dropped from the body: a null is a missing field
    if kind == "responses" and isinstance(turns, str):
        return turns, {**body, "input": _MARK}
    if not isinstance(turns, list) or not turns:
        raise InvalidRequestError(f"request.{field} must be a non-empty list")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise InvalidRequestError(f"request.{field}[{i}] must be an object")
        if kind == "chat" and not isinstance(turn.get("role"), str):
            raise InvalidRequestError(f"request.{field}[{i}] needs a string 'role'")
    chosen = _chosen_turns(turns, policy)
    texts: list[str] = []
    new_turns = list(turns)
    for i in chosen:
        text, cut = _cut_text(turns[i], f"request.{field}[{i}]")
        texts.append(text if policy.mode == "last_user" else f"{turns[i].get('role')}: {text}")
        new_turns[i] = cut
    semantic = "\n".join(texts) if any(texts) else ""
    return semantic, {**body, field: new_turns}


def _split_prompt(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, {**body, "prompt": _MARK}
    if isinstance(prompt, list):  # token ids or several prompts: exact layer only
        return "", body
    raise InvalidRequestError("request.prompt must be a string or a list")


def _chosen_turns(turns: list[dict[str, Any]], policy: SemanticPolicy) -> list[int]:
    if policy.mode == "conversation":
        return list(range(len(turns)))
    users = [i for i, t in enumerate(turns) if t.get("role", "user") == "user"]
    if not users:
        return []
    if policy.mode == "last_user":
        return users[-1:]
    last = users[-1]
    return list(range(max(0, last - policy.window + 1), last + 1))


def _cut_text(turn: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """The text parts of one turn, and the turn with those parts replaced by a marker."""
    content = turn.get("content")
    if isinstance(content, str):
        return content, {**turn, "content": _MARK}
    if content is None:
        return "", turn
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of parts")
    texts, parts = [], []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise InvalidRequestError(f"{where}.content[{j}] must be an object")
        if part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
            texts.append(part["text"])
            parts.append({**part, "text": _MARK})
        else:
            parts.append(part)
    if all(part.get("text") == _MARK for part in parts):  # text only: same scope as a string
        return "\n".join(texts), {**turn, "content": _MARK}
    return "\n".join(texts), {**turn, "content": parts}
