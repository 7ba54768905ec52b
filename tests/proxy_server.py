"""Run a semcache proxy on uvicorn in a thread, on a free port of 127.0.0.1, for the tests."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from semcache.proxy import ProxyConfig, create_app


class RunningProxy:
    """``with RunningProxy(config, cache=cache) as proxy: openai.OpenAI(base_url=proxy.base_url)``."""

    def __init__(self, config: ProxyConfig, *, cache: Any) -> None:
        self.app = create_app(config, cache=cache)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> RunningProxy:
        self._thread.start()
        started = threading.Event()
        while not self.server.started and self._thread.is_alive():
            started.wait(0.02)
        if not self.server.started:
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()
