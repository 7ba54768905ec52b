"""Replay a request log through a real cache, and report on it (text or HTML).

Example::

    from semcache import replay
    with semcache.Cache(namespace="replay-1") as cache:
        report = replay.replay(cache, replay.read_log("traffic.jsonl"), sweep=[0.85, 0.9])
    print(replay.render_text(report))

Threshold tuning from the same figures is :mod:`semcache.tuning`.
"""

from semcache.replay._html import render_html as render_html
from semcache.replay._logs import BadLine as BadLine
from semcache.replay._logs import Log as Log
from semcache.replay._logs import LogRecord as LogRecord
from semcache.replay._logs import read_log as read_log
from semcache.replay._replay import ReplayReport as ReplayReport
from semcache.replay._replay import replay as replay
from semcache.replay._replay import threshold_grid as threshold_grid
from semcache.replay._text import render_text as render_text

__all__ = [
    "BadLine",
    "Log",
    "LogRecord",
    "ReplayReport",
    "read_log",
    "render_html",
    "render_text",
    "replay",
    "threshold_grid",
]
