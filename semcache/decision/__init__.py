"""The semantic layer's decision stage: which of the nearest candidates (if any) answers a request.

:class:`~semcache.decision.decide.Decision` is the protocol; the threshold, the guard, per-entry
thresholds and the second opinion are its checks; :mod:`~semcache.decision.calibrate` tunes them
offline. No I/O: a check that must call a model yields a :class:`~semcache.core.ops.Call`."""
