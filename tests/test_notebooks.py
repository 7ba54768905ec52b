"""The notebooks run top to bottom, offline, on an embedded Redis started in a temp directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from semcache.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def notebook_home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("nbhome")
    yield home
    EmbeddedServer(home).stop()


def test_the_three_notebooks_are_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_quickstart",
        "02_threshold_tuning",
        "03_replay_and_savings",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, notebook_home: Path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("SEMCACHE_HOME", str(notebook_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from make_notebooks import execute

    committed = nbformat.read(path, as_version=4)
    assert all(
        c.get("outputs")
        for c in committed.cells
        if c.cell_type == "code" and not c.source.startswith(("import", "cache.flush", "def "))
    ), "commit outputs"
    nb = execute(path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert sum(1 for c in nb.cells if c.cell_type == "code") >= 6
    sys.modules.pop("make_notebooks", None)
