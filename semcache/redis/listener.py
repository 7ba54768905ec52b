"""The L1 tier's listener: a daemon thread subscribed to every namespace's invalidations.

Every invalidation is published on ``semcache:l1:<namespace>``; this thread applies each message to
its process's :class:`~semcache.core.l1.L1`. On a lost subscription the whole L1 is cleared, since
messages may have been missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from semcache.core.l1 import L1
from semcache.redis.keys import CHANNELS, namespace_of_channel
from semcache.redis.replies import text

log = logging.getLogger("semcache")


class Listener:
    """A daemon thread that applies every namespace's invalidations to an :class:`L1`.

    ``connect`` makes a plain (sync) Redis client; on a cluster any node will do, since classic
    pub/sub messages reach every node.
    """

    def __init__(self, l1: L1, connect: Callable[[], Any], poll: float = 0.5) -> None:
        self.l1 = l1
        self._connect = connect
        self._poll = poll
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="semcache-l1", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # Redis went away: copies may be stale from now on
                log.debug("semcache: L1 subscription lost: %r", exc)
            self.subscribed.clear()
            self.l1.clear()
            self._stop.wait(1.0)

    def _listen(self) -> None:
        client = self._connect()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.psubscribe(CHANNELS)
            while not self._stop.is_set():
                msg = pubsub.get_message(timeout=self._poll)
                if msg is None:  # the first poll has read the subscription's confirmation
                    self.subscribed.set()
                    continue
                self.l1.apply(namespace_of_channel(text(msg["channel"])), msg["data"])
        finally:
            pubsub.close()
            client.close()
