"""Load models now rather than on first use: the embedder and any verifier a decision stage holds.

Each component is asked for its ``load()`` (the ONNX embedder and the verifier have one); wrappers
are followed through the attributes that hold what they wrap, so ``Batching(embedder)`` and a
``SecondOpinion`` whose judge is a verifier's method are loaded too. No I/O beyond the models' own.
"""

from __future__ import annotations

from typing import Any

#: Attributes through which a component holds another (a wrapper's inner embedder, a decision's
#: second opinion, a judge's verifier, a bound method's object).
_HOLDS = ("embedder", "core", "decision", "inner", "opinion", "judge", "verifier", "__self__")


def preload(*components: Any) -> int:
    """Call ``load()`` on every component reachable from ``components``; returns how many loaded.

    Example::

        preload(cache)         # the cache's embedder and its decision stage's verifier
        preload(my_embedder)
    """
    seen: set[int] = set()
    loaded = 0
    todo = [c for c in components if c is not None]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        loaded += _load(item)
        todo += [v for name in _HOLDS if (v := getattr(item, name, None)) is not None]
    return loaded


def _load(item: Any) -> int:
    # sentence-transformers' embedder loads through a private method; the others through load().
    load = getattr(item, "load", None) or getattr(item, "_load", None)
    if not callable(load) or isinstance(item, type):
        return 0
    load()
    return 1
