"""matplotlib, loaded only when a plot is drawn (the ``plot`` extra)."""

from __future__ import annotations

import sys
from typing import Any

from semcache._errors import missing_extra


def pyplot() -> Any:
    """matplotlib's pyplot (headless outside notebooks); ImportError naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg") if not interactive() else None
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("matplotlib", "plot") from exc
    return plt


def interactive() -> bool:
    return "ipykernel" in sys.modules or "IPython" in sys.modules
