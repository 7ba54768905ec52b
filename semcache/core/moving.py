"""Moving figures a cache steers by: a share of events and a mean of times. No I/O.

Races between threads only blur them, which the decisions they feed tolerate.
"""

from __future__ import annotations


class Share:
    """A moving share of events (the last ~``window`` of them weigh most)."""

    def __init__(self, window: int = 64) -> None:
        self.share = 0.0
        self._weight = 1.0 / window

    def saw(self, event: bool) -> None:
        self.share += (float(event) - self.share) * self._weight


class Mean:
    """A moving mean of a measure (the last ~``window`` values weigh most), known once ``skip``
    values have been left out (the first calls of a model or a connection are its warm-up) and
    one more seen."""

    def __init__(self, window: int = 16, skip: int = 0) -> None:
        self.mean = 0.0
        self.seen = 0
        self._skip = skip
        self._weight = 1.0 / window

    @property
    def known(self) -> bool:
        return self.seen > self._skip

    def saw(self, value: float) -> None:
        self.seen += 1
        if self.seen <= self._skip + 1:
            self.mean = value
        else:
            self.mean += (value - self.mean) * self._weight
