"""The wrapper on openai 1.x / 2.x, whose clients are built on ``httpx`` rather than ``httpx2``.

The caching flow speaks httpx2 (``_wrap_flow``); these transports translate at the two edges: the
SDK's ``httpx.Request`` becomes an ``httpx2.Request`` for the flow, the flow's upstream requests go
out through the client's original ``httpx`` client, and responses are translated back, bodies
streamed through untouched (raw bytes with their own content-encoding header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2

from semcache.openai._flow import Settings
from semcache.openai._transport import AsyncCachingTransport, CachingTransport


class HttpxCachingTransport(httpx.BaseTransport):
    """A sync ``httpx`` transport that runs the caching flow; the rest goes through ``inner``."""

    def __init__(self, inner: httpx.Client, settings: Settings) -> None:
        self.inner = inner
        self.flow = CachingTransport(inner, settings, self._send)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = to_httpx(self.flow.handle_request(to_httpx2(request)))
        return response

    def _send(self, request: httpx2.Request) -> httpx2.Response:
        return from_httpx(self.inner.send(to_httpx(request), stream=True))

    def close(self) -> None:
        self.inner.close()


class AsyncHttpxCachingTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`HttpxCachingTransport`."""

    def __init__(self, inner: httpx.AsyncClient, settings: Settings) -> None:
        self.inner = inner
        self.flow = AsyncCachingTransport(inner, settings, self._send)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = to_httpx(
            await self.flow.handle_async_request(to_httpx2(request))
        )
        return response

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        return from_httpx(await self.inner.send(to_httpx(request), stream=True))

    async def aclose(self) -> None:
        await self.inner.aclose()


def to_httpx2(request: httpx.Request | httpx2.Request) -> httpx2.Request:
    """An SDK request (its body already read: the SDK sends bytes) for the flow."""
    return httpx2.Request(
        request.method, str(request.url), headers=request.headers.multi_items(),
        content=request.content, extensions=request.extensions,
    )  # fmt: skip


def to_httpx(message: Any) -> Any:
    """A flow request to send with httpx, or a flow response to give back to the SDK."""
    headers = message.headers.multi_items()
    if isinstance(message, httpx2.Request):
        return httpx.Request(
            message.method, str(message.url), headers=headers, content=message.content,
            extensions=message.extensions,
        )  # fmt: skip
    stream = _Raw(message)
    return httpx.Response(message.status_code, headers=headers, stream=stream)


def from_httpx(response: httpx.Response) -> httpx2.Response:
    """An upstream httpx response (still streaming) as the httpx2 response the flow expects."""
    return httpx2.Response(
        response.status_code, headers=response.headers.multi_items(), stream=_Upstream(response),
        extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
    )  # fmt: skip


class _Raw(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An httpx2 response's body as an httpx stream: raw bytes, as its headers describe them."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        if self.response.is_stream_consumed:
            yield self.response.content
            return
        yield from self.response.iter_raw()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.response.is_stream_consumed:
            yield self.response.content
            return
        async for chunk in self.response.aiter_raw():
            yield chunk

    def close(self) -> None:
        self.response.close()

    async def aclose(self) -> None:
        await self.response.aclose()


class _Upstream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """An httpx response's raw body as an httpx2 stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self.response.iter_raw()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    def close(self) -> None:
        self.response.close()

    async def aclose(self) -> None:
        await self.response.aclose()
