"""What a proxy is configured with, and the decisions it makes about one request before any I/O:
where it goes upstream, whose tenant it is, and the cache status a response reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcache._errors import ConfigurationError
from semcache.openai._options import HEADER_PREFIX, check_options

#: Response header names for how the cache answered (Portkey's convention, next to x-semcache-layer).
PORTKEY_STATUS = "x-portkey-cache-status"
_TENANT = f"{HEADER_PREFIX}tenant"
#: Hop-by-hop headers (RFC 9110, section 7.6.1) and the ones the HTTP layers recompute.
_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip


class Refused(Exception):
    """A request the proxy answers itself with an OpenAI-style error (``status``, ``message``)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error", "code": self.code}}


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """How a caching proxy behaves.

    Args:
        upstream: the upstream's base URL as an OpenAI client would take it
            (``https://api.openai.com/v1``); ``/v1/<path>`` on the proxy goes to ``<upstream>/<path>``.
        tenant_header: a request header whose value is the request's tenant (e.g. ``x-tenant``).
        api_keys: ``{api key: tenant}``; the tenant of a request is the one of its bearer key, and a
            request with any other key is refused (401): a hit never reaches upstream, so the map is
            also what stands between a stranger and the cached answers. Exclusive with
            ``tenant_header``. With neither, every client shares one tenant-less cache and a client
            cannot pick a tenant (``x-semcache-tenant`` is refused).
        max_body: the largest request body accepted, in bytes (413 past it).
        timeout: seconds to wait for the upstream (connect, each read); past it the proxy answers 504.
        defaults: cache options for every request (``{"ttl": 600}``; keys of semcache.openai.Options).
        record_usage: as in ``semcache.wrap()``.
    """

    upstream: str
    tenant_header: str | None = None
    api_keys: Mapping[str, str] = field(default_factory=dict)
    max_body: int = 8 * 1024 * 1024
    timeout: float = 600.0
    defaults: Mapping[str, Any] = field(default_factory=dict)
    record_usage: bool = True

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigurationError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if self.tenant_header and self.api_keys:
            raise ConfigurationError("give tenant_header or api_keys, not both")
        if self.max_body <= 0 or self.timeout <= 0:
            raise ConfigurationError("max_body and timeout must be positive")
        if "tenant" in self.defaults:
            raise ConfigurationError("the proxy's tenant comes from tenant_header or api_keys")
        check_options(self.defaults)

    def target(self, path: str, query: str) -> str:
        """The upstream URL of a proxied path (``/v1`` prefix or not) and query string."""
        rest = path[3:] if path == "/v1" or path.startswith("/v1/") else path
        url = self.upstream.rstrip("/") + rest
        return f"{url}?{query}" if query else url

    def tenant(self, headers: Mapping[str, str]) -> str | None:
        """The request's tenant, from what the proxy was configured to trust (lower-case headers)."""
        if self.api_keys:
            scheme, _, key = headers.get("authorization", "").partition(" ")
            tenant = self.api_keys.get(key.strip()) if scheme.lower() == "bearer" else None
            if tenant is None:
                raise Refused(401, "unknown API key for this proxy", "invalid_api_key")
            return tenant
        if self.tenant_header:
            return headers.get(self.tenant_header.lower()) or None
        return None

    def forward_headers(
        self, headers: list[tuple[str, str]], tenant: str | None
    ) -> list[tuple[str, str]]:
        """The request headers the cache flow gets: hop-by-hop ones dropped, the tenant set by the
        proxy (a client's own ``x-semcache-tenant`` is refused unless it is the tenant header)."""
        own = (self.tenant_header or "").lower() == _TENANT
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower == _TENANT and not own:
                raise Refused(400, "this proxy sets the tenant itself", "tenant_not_allowed")
            if lower not in _HOP and lower != _TENANT:
                out.append((name, value))
        return [*out, (_TENANT, tenant)] if tenant is not None else out


def check_body(body: Any) -> None:
    """A covered endpoint's parsed JSON body: an object whose semcache options name no tenant."""
    if not isinstance(body, dict):
        raise Refused(400, "the request body must be a JSON object", "invalid_body")
    options = body.get("semcache")
    if isinstance(options, Mapping) and "tenant" in options:
        raise Refused(400, "this proxy sets the tenant itself", "tenant_not_allowed")


def response_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream (or cache) response headers for the client, with Portkey's cache status."""
    out = [(k, v) for k, v in headers if k.lower() not in _HOP]
    found = {k.lower(): v for k, v in out}
    layer = found.get(f"{HEADER_PREFIX}layer")
    if layer is not None:
        out.append((PORTKEY_STATUS, cache_status(layer, found.get(f"{HEADER_PREFIX}reason"))))
    return out


def cache_status(layer: str, reason: str | None) -> str:
    """Portkey's ``x-portkey-cache-status`` for an ``x-semcache-layer`` and reason."""
    if layer == "semantic":
        return "SEMANTIC HIT"
    if layer != "none":
        return "HIT"
    return {"bypass": "REFRESH", "uncacheable": "DISABLED"}.get(reason or "", "MISS")
