"""A circuit breaker: after repeated failures the cache steps aside, then probes again. No I/O."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("semcache")

State = Literal["closed", "open", "half-open"]


class Breaker:
    """Closed: calls go through. ``failures`` consecutive failures open it for ``cooldown`` seconds,
    during which calls are refused at once; then one probe is let through (half-open), and its
    success closes the breaker. State changes are logged once, not per request."""

    def __init__(
        self,
        *,
        failures: int = 3,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.on_change = on_change
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.state: State = "closed"
        self.opened = 0
        self.closed = 0
        self._failures = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.state == "closed":  # the hot path reads one attribute, without the lock
            return True
        with self._lock:
            return self._allow()

    def _allow(self) -> bool:
        """:meth:`allow` under the lock (another thread may have closed the breaker meanwhile)."""
        if self.state == "closed":
            return True
        if self.state == "open" and self.clock() - self._since >= self.cooldown:
            self.state = "half-open"
            self._since = self.clock()
            return True
        # One probe at a time; a probe that never reported back frees the slot after a cooldown.
        if self.state == "half-open" and self.clock() - self._since >= self.cooldown:
            self._since = self.clock()
            return True
        return False

    def success(self) -> None:
        if self.state == "closed" and not self._failures:  # nothing to reset: no lock taken
            return
        with self._lock:
            self._failures = 0
            if self.state != "closed":
                self.state = "closed"
                self.closed += 1
                log.warning("semcache: Redis answers again; cache back in the request path")
                if self.on_change is not None:
                    self.on_change("closed")

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            if self.state == "half-open" or (
                self.state == "closed" and self._failures >= self.threshold
            ):
                opening = self.state == "closed"
                self.state = "open"
                if opening:
                    self.opened += 1
                    log.warning("semcache: Redis failing (%s); cache stepping aside", exc)
                    if self.on_change is not None:
                        self.on_change("open")
                self._since = self.clock()
