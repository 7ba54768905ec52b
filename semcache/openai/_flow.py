"""What a wrapped OpenAI client does with one HTTP request, written once as generators.

A flow yields I/O operations (:class:`Send` upstream, :class:`Read` a body, cache operations, and
:class:`Relay` for a streamed miss) and receives their results; the sync and async transports in
``_wrap_transport`` execute them. Covered: ``POST .../chat/completions``, ``.../completions``,
``.../responses`` and ``.../embeddings``; every other request goes upstream untouched. Upstream
errors are relayed as they came and never stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx2

from semcache._errors import InvalidRequestError
from semcache.core.plan import Plan
from semcache.core.stampede import Flight
from semcache.core.types import LookupResult
from semcache.openai import _embeddings as emb
from semcache.openai._options import (
    HEADER_PREFIX,
    SCOPE_OPTIONS,
    CacheInfo,
    RequestOptions,
    from_body,
    from_cache_control,
    from_headers,
    resolve,
)
from semcache.openai._restream import restream
from semcache.openai._sse import Recorder

log = logging.getLogger("semcache")

Endpoint = Literal["chat", "completion", "responses", "embeddings"]
_ENDPOINTS: tuple[tuple[str, Endpoint], ...] = (
    ("/chat/completions", "chat"),
    ("/completions", "completion"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
)
#: The usage a hit reports under ``usage_on_hit="zero"``, per body shape.
_ZERO_USAGE: dict[str, dict[str, Any]] = {
    "chat": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    "responses": {
        "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0},
    },
}  # fmt: skip
#: Headers that describe an encoded body; dropped where the body is passed on decoded.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


# --- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send a request upstream (streamed); the result is the response, or the error is raised."""

    request: httpx2.Request


@dataclass(frozen=True, slots=True)
class Read:
    """Read a response's whole (decoded) body."""

    response: httpx2.Response


@dataclass(frozen=True, slots=True)
class Lookup:
    plan: Plan


@dataclass(frozen=True, slots=True)
class LookupAndJoin:
    """Look up and, on a miss, join the single flight (the compute lock rides with the lookup):
    the result is ``(LookupResult, Flight | None)``. ``timeout``: the request's own, no wait
    outlasts it."""

    plan: Plan
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Store:
    """Store an answer, leaving ``flight`` in the same round trip (its lock freed with the writes)."""

    plan: Plan
    body: dict[str, Any]
    options: RequestOptions
    latency_ms: float
    streamed: bool
    flight: Flight | None = None


@dataclass(frozen=True, slots=True)
class GetVectors:
    model: str
    texts: list[str]
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class PutVectors:
    model: str
    texts: list[str]
    rows: list[bytes]
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """Join the single flight of identical misses (``Cache.join_flight``): the result is a
    ``Flight`` whose ``shared`` hit another caller stored (or ``failure`` its upstream answered),
    or None when the cache cannot tell. ``timeout``: the request's own, no wait outlasts it."""

    plan: Plan
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave a single flight, waking the callers that wait for this one's answer."""

    flight: Flight


@dataclass(frozen=True, slots=True)
class Relay:
    """Pass a streamed miss on as it arrives; at its terminal event, execute ``store(body)``;
    when the stream ends or is closed, execute ``done`` (leaving the single flight).

    The result is the response to return, built by :meth:`response` around the shell's stream.
    """

    upstream: httpx2.Response
    recorder: Recorder
    store: Callable[[dict[str, Any]], Store]
    info: CacheInfo
    done: Leave | None = None

    def response(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream) -> httpx2.Response:
        return _decoded(self.upstream, self.info, stream=stream)


CacheOp = Lookup | LookupAndJoin | Store | GetVectors | PutVectors | Join | Leave
WrapOp = Send | Read | Relay | CacheOp
WrapFlow = Generator[WrapOp, Any, httpx2.Response]


def cache_call(op: CacheOp, cache: Any) -> Callable[[], Any]:
    """The cache method call an operation stands for (awaitable when ``cache`` is an AsyncCache)."""
    if isinstance(op, Lookup):
        return lambda: cache.lookup_plan(op.plan)
    if isinstance(op, LookupAndJoin):
        return lambda: cache.lookup_and_join(op.plan, timeout=op.timeout)
    if isinstance(op, Store):
        o = op.options
        return lambda: cache.store_and_leave(
            op.plan, op.body, flight=op.flight, ttl=o.ttl, tags=o.tags, latency_ms=op.latency_ms,
            streamed=op.streamed,
        )  # fmt: skip
    if isinstance(op, GetVectors):
        return lambda: cache.cached_vectors(op.model, op.texts, tenant=op.tenant)
    if isinstance(op, Join):
        return lambda: cache.join_flight(op.plan, timeout=op.timeout)
    if isinstance(op, Leave):
        return lambda: cache.leave_flight(op.flight)
    return lambda: cache.store_vectors(op.model, op.texts, op.rows, tenant=op.tenant)


def fallback(op: CacheOp) -> Any:
    """What a cache operation returns when the cache fails in a way it did not handle itself."""
    if isinstance(op, Lookup | LookupAndJoin):
        missed = LookupResult(layer=None, key=op.plan.digest, reason="unavailable")
        return missed if isinstance(op, Lookup) else (missed, None)
    if isinstance(op, GetVectors):
        return [None] * len(op.texts)
    return False if isinstance(op, Store) else None  # Join: no flight, just call upstream


# --- the flows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What a wrapped client was given: the cache, default options, whether to record usage, the
    upstream server its entries belong to (None: shared), and whether a request may choose its
    own tenant and namespace."""

    cache: Any
    defaults: Mapping[str, Any] = field(default_factory=dict)
    record_usage: bool = True
    upstream: str | None = None
    scope_override: bool = False

    def stores(self, plan: Plan) -> bool:
        return bool(self.cache.stores(plan))


@dataclass(frozen=True, slots=True)
class Call:
    """A covered request: its endpoint, its body and options (controls stripped), and the request
    to send upstream."""

    endpoint: Endpoint
    body: dict[str, Any]
    options: RequestOptions
    forward: httpx2.Request

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True


def handle(request: httpx2.Request, settings: Settings) -> WrapFlow:
    """The flow of one request through a wrapped client."""
    controls = [(k, v) for k, v in request.headers.items() if k.lower().startswith(HEADER_PREFIX)]
    endpoint = _endpoint(request)
    body = _json_body(request) if endpoint is not None else None
    if endpoint is None or body is None:
        response: httpx2.Response = yield Send(rebuild(request) if controls else request)
        return response
    given = from_body(body.pop("semcache")) if "semcache" in body else {}
    headers = {
        **from_cache_control(request.headers.get("cache-control")),
        **from_headers(iter(controls)),
    }
    options = resolve(settings.defaults, headers, given)
    forward = rebuild(request, body) if controls or given else request
    chosen = sorted(SCOPE_OPTIONS & {*headers, *given})
    if chosen and not settings.scope_override:
        # Headers and extra_body may carry what a client sent: they never choose whose entries
        # are read or written (wrap(..., allow_scope_override=True) lets them).
        log.warning(
            "semcache: a request chose its own %s; passed through uncached", "/".join(chosen)
        )
        refused = yield Send(forward)
        return relay(refused, CacheInfo(layer=None, reason="scope-override-refused"))
    call = Call(endpoint=endpoint, body=body, options=options, forward=forward)
    if endpoint == "embeddings":
        return (yield from embeddings(call, settings))
    return (yield from generate(call, settings))


def generate(call: Call, settings: Settings) -> WrapFlow:
    """Chat completions, completions and responses: look up, else call upstream and store."""
    plan = _plan(call, settings)
    if plan is None:
        upstream = yield Send(call.forward)
        return relay(upstream, CacheInfo(layer=None, reason="uncacheable"))
    info = CacheInfo(layer=None, key=plan.digest, reason="bypass")
    refreshing = call.options.bypass  # the caller wants a fresh answer, not the stored one
    storing = not call.options.no_store and settings.stores(plan)
    flight: Flight | None = None
    timeout = _read_timeout(call.forward)
    if not call.options.bypass:
        # Identical misses share one upstream call: a miss joins their flight, its compute lock
        # taken in the lookup's own round trip.
        if storing:
            result, flight = yield LookupAndJoin(plan, timeout)
        else:
            result = yield Lookup(plan)
        # XFetch flagged this hit near expiry: this caller recomputes it, the others keep hitting.
        refreshing = result.hit and result.refresh
        hit = restream_hit(call, result) if result.hit and not refreshing else None
        if hit is not None:
            return hit
        info = CacheInfo.of(result) if not refreshing else replace(info, reason="refresh")
        if result.hit and storing and not refreshing:  # a hit that cannot be replayed: a miss
            flight = yield Join(plan, timeout)
    if flight is not None and flight.failure is not None:  # the leader's upstream failed
        yield Leave(flight)
        return _failure(flight.failure, info)
    if flight is not None and flight.shared is not None:  # another caller just stored the answer
        yield Leave(flight)
        hit = restream_hit(call, flight.shared)
        if hit is not None:
            return hit
        flight = None
    try:
        response = yield from _upstream(call, settings, plan, info, flight, storing)
    except BaseException as exc:
        if flight is not None:
            # A cancelled (or interrupted) leader leaves too: its followers waited out the whole
            # stampede_wait, and the flight stayed in the process for good, so every identical
            # miss after it waited as long. They elect a new leader instead of each going upstream.
            flight.abandoned = not isinstance(exc, Exception)
            yield Leave(flight)
        raise
    return response


def _upstream(
    call: Call,
    settings: Settings,
    plan: Plan,
    info: CacheInfo,
    flight: Flight | None,
    storing: bool,
) -> WrapFlow:
    """A miss: call upstream, pass the answer on, store it when complete, leave the flight."""
    leave = Leave(flight) if flight is not None else None
    inject = storing and call.stream and settings.record_usage and not call.wants_usage
    inject = inject and call.endpoint != "responses"
    start = time.perf_counter()
    upstream = yield Send(with_usage(call) if inject else call.forward)
    streamed = call.stream and upstream.headers.get("content-type", "").startswith(
        "text/event-stream"
    )
    if upstream.status_code >= 500 and flight is not None and flight.leader:
        # Its followers get this answer instead of all going upstream at once.
        content = yield Read(upstream)
        flight.failure = (upstream.status_code, upstream.headers.multi_items(), content)
        yield Leave(flight)
        return buffered(upstream, content, info)
    if upstream.status_code != 200 or not storing or (call.stream and not streamed):
        if leave is not None:
            yield leave
        return relay(upstream, info)
    if streamed:
        if flight is not None:
            flight.touch()  # from now on, its followers wait only while the stream moves

        def at_end(body: dict[str, Any]) -> Store:
            return Store(plan, body, call.options, _since(start), streamed=True, flight=flight)

        recorder = Recorder(call.endpoint, drop_usage=inject)
        relayed: httpx2.Response = yield Relay(upstream, recorder, at_end, info, leave)
        return relayed
    content = yield Read(upstream)
    body = complete_body(call.endpoint, content)
    if body is not None:
        yield Store(plan, body, call.options, _since(start), streamed=False, flight=flight)
    elif leave is not None:
        yield leave
    return buffered(upstream, content, info)


def embeddings(call: Call, settings: Settings) -> WrapFlow:
    """``embeddings.create``: cached inputs from the embedding cache, only the rest upstream."""
    texts = emb.inputs(call.body)
    if texts is None:
        upstream = yield Send(call.forward)
        return relay(upstream, CacheInfo(layer=None, reason="uncacheable"))
    model, count = emb.model_key(call.body), len(texts)
    cached: list[bytes | None] = (
        [None] * count
        if call.options.bypass
        else (yield GetVectors(model, texts, call.options.tenant))
    )
    missing = [i for i, row in enumerate(cached) if row is None]
    info = CacheInfo(
        layer=None if missing else "embeddings",
        reason=None if not missing else "bypass" if call.options.bypass else "miss",
        cached_inputs=count - len(missing),
        inputs=count,
    )
    if not missing:
        return _json(emb.response(call.body, [r for r in cached if r], None, None), info)
    todo = [texts[i] for i in missing]
    partial = len(missing) < count
    upstream = yield Send(
        rebuild(call.forward, {**call.body, "input": todo}) if partial else call.forward
    )
    if upstream.status_code != 200:
        return relay(upstream, info)
    content = yield Read(upstream)
    fresh = emb.vectors(content, len(todo))
    if fresh is None:
        return buffered(upstream, content, info)
    if not call.options.no_store and not settings.cache.config.read_only:
        yield PutVectors(model, todo, fresh, call.options.tenant)
    if not partial:
        return buffered(upstream, content, info)
    fill = dict(zip(missing, fresh, strict=True))
    rows = [row if row is not None else fill[i] for i, row in enumerate(cached)]
    usage, name = emb.upstream_meta(content)
    merged = json.dumps(emb.response(call.body, rows, usage, name)).encode()
    return buffered(upstream, merged, info)


# --- requests -------------------------------------------------------------------------------------


def _endpoint(request: httpx2.Request) -> Endpoint | None:
    if request.method != "POST":
        return None
    path = request.url.path.rstrip("/")
    return next((kind for suffix, kind in _ENDPOINTS if path.endswith(suffix)), None)


def _json_body(request: httpx2.Request) -> dict[str, Any] | None:
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(request.content)
    except (httpx2.RequestNotRead, ValueError):
        return None
    return body if isinstance(body, dict) else None


def rebuild(request: httpx2.Request, body: dict[str, Any] | None = None) -> httpx2.Request:
    """The request without semcache's control headers, with a new JSON body if given."""
    drop = (HEADER_PREFIX, "content-length") if body is not None else (HEADER_PREFIX,)
    headers = [(k, v) for k, v in request.headers.multi_items() if not k.lower().startswith(drop)]
    if body is None:
        return httpx2.Request(
            request.method, request.url, headers=headers, stream=request.stream,
            extensions=request.extensions,
        )  # fmt: skip
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return httpx2.Request(
        request.method, request.url, headers=headers, content=content, extensions=request.extensions
    )


def with_usage(call: Call) -> httpx2.Request:
    """The upstream request asking for usage in the stream, so the stored entry carries it."""
    options = call.body.get("stream_options")
    options = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return rebuild(call.forward, {**call.body, "stream_options": options})


def _plan(call: Call, settings: Settings) -> Plan | None:
    body, options = call.body, call.options
    if body.get("background") or body.get("conversation") is not None:
        return None  # answered later, or from server-side state the request does not show
    try:
        plan: Plan = settings.cache.plan(
            body, tenant=options.tenant, namespace=options.namespace, threshold=options.threshold,
            upstream=settings.upstream,
        )  # fmt: skip
    except InvalidRequestError as exc:
        log.debug("semcache: request passed through uncached: %s", exc)
        return None
    except Exception:  # a request the cache cannot key must never fail the call
        log.warning("semcache: request passed through uncached after an error", exc_info=True)
        return None
    return plan if plan.canon.kind == call.endpoint else None


# --- responses ------------------------------------------------------------------------------------


def restream_hit(call: Call, result: LookupResult) -> httpx2.Response | None:
    """The response for a hit, as JSON or as a stream; None when the entry cannot be replayed."""
    body = result.response or {}
    if call.options.usage_on_hit == "zero" and isinstance(body.get("usage"), dict):
        body = {
            **body,
            "usage": _ZERO_USAGE["responses" if call.endpoint == "responses" else "chat"],
        }
    try:
        if call.stream:
            content = restream(call.endpoint, body, include_usage=call.wants_usage)
            kind = "text/event-stream; charset=utf-8"
        else:
            content = json.dumps(body, ensure_ascii=False).encode()
            kind = "application/json"
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        log.warning("semcache: entry %s cannot be replayed, treated as a miss: %r", result.key, exc)
        return None
    headers = {"content-type": kind, **CacheInfo.of(result).headers()}
    return httpx2.Response(200, headers=headers, content=content)


def complete_body(endpoint: Endpoint, content: bytes) -> dict[str, Any] | None:
    """The parsed body of a successful, complete answer; None for anything not worth storing."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("error") is not None:
        return None
    if endpoint == "responses":
        return body if body.get("status") == "completed" else None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    done = all(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)
    return body if done else None


def _read_timeout(request: httpx2.Request) -> float | None:
    """The read timeout the caller gave its request (the SDK's ``timeout=``), if any."""
    timeout = request.extensions.get("timeout")
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _failure(failure: tuple[int, list[tuple[str, str]], bytes], info: CacheInfo) -> httpx2.Response:
    """A follower's answer when its leader's upstream failed: the same status, headers and body."""
    status, headers, content = failure
    kept = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
    marked = replace(info, reason="leader-failed")
    return httpx2.Response(status, headers=[*kept, *marked.headers().items()], content=content)


def relay(upstream: httpx2.Response, info: CacheInfo) -> httpx2.Response:
    """The upstream response as it came (body still streaming), marked with ``info``."""
    headers = [*upstream.headers.multi_items(), *info.headers().items()]
    return httpx2.Response(
        upstream.status_code,
        headers=headers,
        stream=upstream.stream,
        extensions=upstream.extensions,
    )


def buffered(upstream: httpx2.Response, content: bytes, info: CacheInfo) -> httpx2.Response:
    """A response with upstream's status and headers and a body already read (decoded)."""
    return _decoded(upstream, info, content=content)


def _decoded(
    upstream: httpx2.Response,
    info: CacheInfo,
    *,
    content: bytes | None = None,
    stream: httpx2.SyncByteStream | httpx2.AsyncByteStream | None = None,
) -> httpx2.Response:
    headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    extensions = {
        k: v for k, v in upstream.extensions.items() if k in ("http_version", "reason_phrase")
    }
    return httpx2.Response(
        upstream.status_code, headers=[*headers, *info.headers().items()], content=content,
        stream=stream, extensions=extensions,
    )  # fmt: skip


def _json(body: dict[str, Any], info: CacheInfo) -> httpx2.Response:
    headers = {"content-type": "application/json", **info.headers()}
    return httpx2.Response(200, headers=headers, content=json.dumps(body).encode())


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
