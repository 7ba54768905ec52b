"""The README does what it says: its Python blocks run as written, its first screen shows the two
commands (quiet installs), what they print and how to stop the server they start; it documents
every command and what each extra costs. The notebooks teach public API only and carry no warning.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from semcache.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FIRST_SCREEN = README[: README.index("\n## ")]


def environ() -> dict[str, str]:
    """The environment of a subprocess: this one's (with the session's data directory), the
    worktree importable, no Redis URL from outside."""
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("SEMCACHE_REDIS_URL", "OPENAI_BASE_URL")
        },
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
    }


#: Runs every ```python block of a Markdown file in order, in one namespace, as a reader would.
HARNESS = """
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
scope = {"__name__": "__main__"}
for i, code in enumerate(re.findall(r"^```python\\n(.*?)^```", text, re.S | re.M), 1):
    print(f"--- block {i}", flush=True)
    exec(compile(code, f"README.md, python block {i}", "exec"), scope)
"""


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


@pytest.mark.slow
def test_every_python_block_runs_as_written(tmp_path: Path, fake_openai: object) -> None:
    home = tmp_path / "home"  # a fresh embedded Redis, as on a newcomer's machine
    env = {**environ(), "SEMCACHE_HOME": str(home), "OPENAI_API_KEY": "test",
           "OPENAI_BASE_URL": fake_openai.base_url}  # type: ignore[attr-defined]  # fmt: skip
    try:
        result = subprocess.run(
            [sys.executable, "-c", HARNESS, str(ROOT / "README.md")],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
    finally:
        EmbeddedServer(home).stop()
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.split("--- block ")
    assert len(printed) - 1 == len(blocks("python")) >= 3
    tour = printed[1].splitlines()[1]  # the tour prints the paraphrase's hit
    layer, similarity, answer = tour.split(" ", 2)
    assert layer == "semantic" and 0.9 <= float(similarity) <= 1.0
    assert answer == "Settings > Security > Reset."
    assert f"# {tour}" in README  # and the README shows what it prints


def test_the_first_screen_has_the_two_commands_with_quiet_installs() -> None:
    commands = [b for b in blocks("bash") if "pip install" in b][:2]
    assert "semcache replay --sample" in commands[0]
    assert "python -m pytest -p no:cacheprovider" in commands[1]
    for command in commands:
        assert command in FIRST_SCREEN
        installs = re.findall(r"pip install[^&]*", command)
        assert installs and all(i.startswith("pip install -q ") for i in installs), installs


def test_the_first_screen_says_what_the_server_is_and_how_to_stop_it() -> None:
    assert "started the embedded Redis at unix://" in FIRST_SCREEN
    assert "`semcache server stop`" in FIRST_SCREEN
    assert "replayed 400 requests of sample_log.jsonl" in FIRST_SCREEN


@pytest.mark.slow
def test_the_first_screen_shows_what_replay_prints(tmp_path: Path, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from semcache.cli import main; main(prog_name='semcache')",
         "replay", "--sample", "--redis-url", redis_url],
        capture_output=True, text=True, env=environ(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines()[1:]:
        # the figures as printed, up to the lookup latencies (which vary run to run)
        figures = line.rsplit("$", 1)[0] if "$" in line else line
        assert figures in FIRST_SCREEN, line


def test_the_readme_says_what_each_extra_costs_on_disk() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    section = README[README.index("## What installing costs") :]
    section = section[: section.index("\n## ", 3)]
    for extra in [e for e in extras if e != "bench"]:
        row = re.search(rf"^\| `\[{extra}\]` \|([^\n]*)$", section, re.M)
        assert row is not None, extra
        assert re.search(r"\d[\d,]* MB", row.group(1)), row.group(0)
    assert "bench_install.py" in section


def test_the_readme_documents_every_command() -> None:
    from semcache.cli import main

    section = README[README.index("## The command line") :]
    for name, command in main.commands.items():  # type: ignore[attr-defined]
        assert f"`semcache {name}" in section, name
        for sub in getattr(command, "commands", {}):
            assert sub in section, (name, sub)
    for name in ("doctor", "flush", "invalidate"):
        assert f"`semcache {name}" in section


def test_notebooks_use_public_api_and_carry_no_warning() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert not re.search(r"semcache\._", cell.source), (path.name, cell.source)
            for output in cell.get("outputs", []):
                text = output.get("text", "") if output.output_type == "stream" else ""
                assert "Warning" not in text, (path.name, text)
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    assert any(d.startswith("nbconvert") for d in dev)  # `jupyter nbconvert` after [dev]
