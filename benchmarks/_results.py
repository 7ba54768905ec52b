"""The header every results file of a benchmark run carries: when, on what, under what load."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


class Run:
    """One benchmark run: started when made, written with :meth:`write`."""

    def __init__(self) -> None:
        self.load_before = round(os.getloadavg()[0], 2)
        self.began = time.perf_counter()

    def header(self) -> dict[str, Any]:
        return {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores",
            "load_average_1min": [self.load_before, round(os.getloadavg()[0], 2)],
            "seconds": round(time.perf_counter() - self.began, 1),
        }

    def write(self, path: Path, **fields: Any) -> dict[str, Any]:
        """The header and ``fields`` as JSON at ``path`` (said on stdout)."""
        result = {**self.header(), **fields}
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}")
        return result
