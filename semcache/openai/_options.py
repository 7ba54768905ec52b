"""Per-request cache control for wrapped clients, and how a response says how it was answered. No I/O.

Options come from four places; a later one overrides an earlier one field by field:
the defaults given to ``wrap()``, the innermost ``cache_options()`` block, request headers
(``extra_headers``: the standard ``Cache-Control: no-cache`` / ``no-store``, then ``x-semcache-*``),
and the ``"semcache"`` object of ``extra_body``. The wrapper strips the ``x-semcache-*`` headers and
the body key before the request goes upstream (``Cache-Control`` is a standard header and goes on).
``tenant`` and ``namespace`` come only from the application's code (``wrap()``, ``cache_options()``)
unless ``wrap()`` is given ``allow_scope_override=True``: a request that sets them in a header or
``extra_body`` goes upstream uncached.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from semcache._errors import ConfigurationError
from semcache.core.types import LookupResult, check_namespace, check_threshold, check_ttl


class Options(TypedDict, total=False):
    """Per-request cache options (every key optional).

    Keys:
        bypass: do not answer from the cache; the fresh answer still refreshes it unless ``no_store``.
        no_store: do not store this call's answer.
        ttl: seconds the stored entry lives (None: no expiry); default: the cache's TTL.
        tenant: the tenant whose entries are read and written (tenants never see each other's).
        namespace: the cache namespace to use instead of the cache's own.
        threshold: the cosine similarity a semantic match needs for this request.
        tags: tags stored with the entry, for ``cache.invalidate(tags=...)``.
        usage_on_hit: ``"stored"`` (default): a hit replays the stored answer's token usage, as the
            SDK would have returned it; ``"zero"``: a hit reports zero usage, so cost tools that
            price ``usage`` (OpenTelemetry instrumentations, gateways) see it as free.
    """

    bypass: bool
    no_store: bool
    ttl: float | None
    tenant: str | None
    namespace: str | None
    threshold: float | None
    tags: Sequence[str]
    usage_on_hit: Literal["stored", "zero"]


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The options in force for one request, validated."""

    bypass: bool = False
    no_store: bool = False
    ttl: float | Literal["default"] | None = "default"
    tenant: str | None = None
    namespace: str | None = None
    threshold: float | None = None
    tags: tuple[str, ...] = ()
    usage_on_hit: Literal["stored", "zero"] = "stored"


_CONTEXT: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "semcache_openai_options", default=None
)

HEADER_PREFIX = "x-semcache-"
#: Options that choose whose entries a request reads and writes.
SCOPE_OPTIONS = frozenset({"tenant", "namespace"})
_BOOL = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@contextlib.contextmanager
def cache_options(**options: Unpack[Options]) -> Iterator[None]:
    """Apply cache options (keys of :class:`Options`) to every wrapped call inside the block.

    Example::

        with semcache.openai.cache_options(tenant="acme", bypass=True):
            client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    """
    check_options(options)
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **options})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def check_options(options: Mapping[str, Any]) -> RequestOptions:
    """Validate options; ConfigurationError names the first bad one."""
    unknown = set(options) - set(Options.__annotations__)
    if unknown:
        raise ConfigurationError(f"unknown semcache option(s): {', '.join(sorted(unknown))}")
    for name in ("bypass", "no_store"):
        if name in options and not isinstance(options[name], bool):
            raise ConfigurationError(f"semcache option {name} must be a bool")
    for name in ("tenant", "namespace"):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise ConfigurationError(f"semcache option {name} must be a string")
    if options.get("namespace") is not None:
        check_namespace(options["namespace"])
    if options.get("threshold") is not None:
        check_threshold(options["threshold"])
    tags = options.get("tags", ())
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise ConfigurationError("semcache option tags must be a list of non-empty strings")
    if "ttl" in options:
        check_ttl(options["ttl"])
    if options.get("usage_on_hit", "stored") not in ("stored", "zero"):
        raise ConfigurationError('semcache option usage_on_hit must be "stored" or "zero"')
    return RequestOptions(**{**options, "tags": tuple(tags)})


def resolve(
    defaults: Mapping[str, Any], headers: Mapping[str, Any], body: Mapping[str, Any]
) -> RequestOptions:
    """The options in force: wrap() defaults < cache_options() < headers < extra_body."""
    return check_options({**defaults, **(_CONTEXT.get() or {}), **headers, **body})


def from_headers(headers: Iterator[tuple[str, str]]) -> dict[str, Any]:
    """Options given as ``x-semcache-*`` request headers (``x-semcache-no-store: 1``)."""
    options: dict[str, Any] = {}
    for name, value in headers:
        key = name.lower().removeprefix(HEADER_PREFIX).replace("-", "_")
        options[key] = _header_value(key, value.strip())
    return options


def from_cache_control(value: str | None) -> dict[str, Any]:
    """Options from a standard ``Cache-Control`` request header (RFC 9111, section 5.2.1):
    ``no-cache`` answers from upstream (and refreshes the entry), ``no-store`` stores nothing."""
    directives = {d.split("=", 1)[0].strip().lower() for d in (value or "").split(",")}
    options: dict[str, Any] = {}
    if "no-cache" in directives:
        options["bypass"] = True
    if "no-store" in directives:
        options["no_store"] = True
    return options


def _header_value(key: str, value: str) -> Any:
    if key in ("bypass", "no_store"):
        if value.lower() not in _BOOL:
            raise ConfigurationError(f"x-semcache-{key} must be 1/0, true/false or yes/no")
        return _BOOL[value.lower()]
    if key in ("ttl", "threshold"):
        if value.lower() == "none":
            return None
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(f"x-semcache-{key} must be a number") from None
        return number if math.isfinite(number) else value
    if key == "tags":
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


def from_body(value: Any) -> dict[str, Any]:
    """Options given as ``extra_body={"semcache": {...}}``."""
    if not isinstance(value, Mapping):
        raise ConfigurationError('extra_body["semcache"] must be an object of semcache options')
    return dict(value)


# --- how a response was answered ------------------------------------------------------------------

InfoLayer = Literal["l1", "exact", "semantic", "embeddings"]


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """How semcache answered one call made through a wrapped client.

    Attributes:
        layer: ``"exact"``, ``"semantic"`` (or ``"l1"``) for a hit; ``"embeddings"`` when every input
            of an ``embeddings.create`` call came from the embedding cache; None when upstream answered.
        similarity: cosine similarity of the match (1.0 for exact hits), None on a miss.
        key: the exact-key digest of the request (for ``cache.invalidate(keys=[...])``).
        reason: why upstream answered: ``"miss"``-like reasons from the lookup (``"no-candidates"``,
            ``"below-threshold"``, ...), ``"bypass"``, ``"stochastic"``, ``"uncacheable"``,
            ``"scope-override-refused"`` (a request chose its own tenant or namespace), ...
        created_at: when the entry that answered was stored (epoch seconds).
        cached_inputs, inputs: for ``embeddings.create``, how many inputs the cache answered, of all.
    """

    layer: InfoLayer | None
    similarity: float | None = None
    key: str | None = None
    reason: str | None = None
    created_at: float | None = None
    cached_inputs: int | None = None
    inputs: int | None = None

    @property
    def hit(self) -> bool:
        """True when the cache answered the whole call."""
        return self.layer is not None

    @classmethod
    def of(cls, result: LookupResult) -> CacheInfo:
        entry = result.entry
        return cls(
            layer=result.layer,
            similarity=result.similarity,
            key=result.key or None,
            reason=None if result.hit else (result.reason or "miss"),
            created_at=entry.created_at if entry is not None else None,
        )

    def headers(self) -> dict[str, str]:
        """The ``x-semcache-*`` response headers that carry this info."""
        out: dict[str, str] = {"x-semcache-layer": self.layer or "none"}
        for name, value in (
            ("similarity", self.similarity), ("key", self.key), ("reason", self.reason),
            ("created-at", self.created_at),
        ):  # fmt: skip
            if value is not None:
                out[f"x-semcache-{name}"] = str(value)
        if self.inputs is not None:
            out["x-semcache-inputs"] = f"{self.cached_inputs}/{self.inputs}"
        return out

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> CacheInfo | None:
        """Read the info back from response headers; None when semcache did not handle the call."""
        layer = headers.get("x-semcache-layer")
        if layer is None:
            return None
        cached, _, total = (headers.get("x-semcache-inputs") or "").partition("/")
        return cls(
            layer=None if layer == "none" else layer,  # type: ignore[arg-type]
            similarity=_float(headers.get("x-semcache-similarity")),
            key=headers.get("x-semcache-key"),
            reason=headers.get("x-semcache-reason"),
            created_at=_float(headers.get("x-semcache-created-at")),
            cached_inputs=int(cached) if cached.isdigit() else None,
            inputs=int(total) if total.isdigit() else None,
        )


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
