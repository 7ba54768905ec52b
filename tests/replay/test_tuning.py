"""The tuning maths, ``semcache tune`` through the real entry point, and offline log evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import semcache
from semcache import tuning
from semcache.cli import main
from tests.replay.test_replay import GUARD_ONLY, hand_log, table_embedder

# (similarity to the anchor, equivalent): hand-computed curve on the grid 0.80:0.99:0.01 below.
LABELLED = [
    (0.995, True),
    (0.975, True),
    (0.955, False),
    (0.935, True),
    (0.915, True),
    (0.895, False),
    (0.875, True),
    (0.855, False),
    (0.805, True),
    (0.705, False),
]


def anchor_embedder() -> semcache.CallableEmbedder:
    """ "anchor" is [1, 0]; "s=0.97 #3" is at cosine 0.97 from it."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            s = 1.0 if text == "anchor" else float(text.split()[0][2:])
            rows.append([s, math.sqrt(max(0.0, 1 - s * s))])
        return np.asarray(rows, dtype=np.float64)

    return semcache.CallableEmbedder(embed, model_id="test-anchor", dimension=2)


def pairs_file(path: Path, labelled: list[tuple[float, bool]] = LABELLED) -> Path:
    rows = [
        {"query": "anchor", "candidate": f"s={s} #{i}", "equivalent": eq}
        for i, (s, eq) in enumerate(labelled)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    return path


def tune(path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [
            "tune",
            str(path),
            "--embedder",
            "test_tuning:anchor_embedder",
            "--grid",
            "0.80:0.99:0.01",
            "--no-guard",
            *args,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_curve_matches_hand_computation(tmp_path: Path) -> None:
    parsed = tuning.read_pairs(pairs_file(tmp_path / "p.jsonl"))
    assert len(parsed.pairs) == 10 and [b.line for b in parsed.bad_lines] == [11]
    scores = tuning.score_pairs(parsed.pairs, anchor_embedder())
    points = {p.threshold: p for p in tuning.curve(scores, tuning.threshold_grid("0.80:0.99:0.01"))}
    assert (points[0.9].precision, points[0.9].recall) == (0.8, 4 / 6)
    assert points[0.9].false_hit_rate == 1 / 4 and points[0.9].hit_rate == 0.5
    assert points[0.92].precision == 0.75 and points[0.96].precision == 1.0
    assert points[0.99].recall == 1 / 6 and points[0.8].recall == 1.0


@pytest.mark.parametrize(
    ("target", "threshold", "precision", "recall"),
    [(0.75, 0.90, 0.8, 4 / 6), (0.95, 0.96, 1.0, 2 / 6), (0.6, 0.80, 6 / 9, 1.0)],
)
def test_tune_picks_the_hand_computed_threshold(tmp_path, target, threshold, precision, recall):
    code, out, err = tune(
        pairs_file(tmp_path / "p.jsonl"), "--target-precision", str(target), "--json"
    )
    assert code == 0, err
    best = json.loads(out)["recommended"]
    assert best["threshold"] == threshold
    assert best["precision"] == pytest.approx(precision) and best["recall"] == pytest.approx(recall)
    assert "p.jsonl:11" in err


def test_tune_text_and_unreachable_target(tmp_path: Path) -> None:
    code, out, _ = tune(pairs_file(tmp_path / "p.jsonl"), "--target-precision", "0.75")
    assert code == 0 and "recommended threshold for precision >= 0.750: 0.900" in out
    assert "expected hit rate 0.500" in out
    worst_first = [(0.995, False), *LABELLED[1:]]
    code, out, _ = tune(pairs_file(tmp_path / "q.jsonl", worst_first), "--target-precision", "1")
    assert code == 1 and "no threshold reaches precision 1.000" in out


def test_tune_plot(tmp_path: Path) -> None:
    image = tmp_path / "curves.png"
    code, _, _ = tune(
        pairs_file(tmp_path / "p.jsonl"), "--target-precision", "0.75", "--plot", str(image)
    )
    assert code == 0 and image.read_bytes().startswith(b"\x89PNG")


def test_offline_log_evaluation_equals_the_replay_sweep(redis_url, namespace, tmp_path):
    log = tuning.read_log(hand_log(tmp_path / "log.jsonl"))
    grid = [0.85, 0.9, 0.96]
    precisions = {}
    for name, decision in (("guard", GUARD_ONLY), ("default", None)):
        config = semcache.CacheConfig(namespace=namespace, ttl=None, decision=decision)
        offline = tuning.evaluate_log(log.records, table_embedder(), grid, config=config)
        with semcache.Cache(redis_url=redis_url, embedder=table_embedder(), config=config) as cache:
            swept = tuning.replay(cache, log, sweep=grid).sweep
            cache.flush()
        assert [f.to_json() for f in offline] == [f.to_json() for f in swept], name
        precisions[name] = [p.precision for p in tuning.log_curve(offline)]
    assert precisions["guard"] == [1 / 3, 1.0, None]  # hand-computed
    assert precisions["default"] == [1.0, 1.0, None]  # the verifier rejects both wrong answers


def test_tune_on_a_grouped_log(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "tune",
            str(hand_log(tmp_path / "log.jsonl")),
            "--embedder",
            "test_replay:table_embedder",
            "--grid",
            "0.85:0.95:0.05",
            "--json",
        ],
    )
    report = json.loads(result.stdout)
    assert report["kind"] == "log" and report["requests"] == 8
    # 0.90 with the guard alone; the default decision's verifier rejects the two wrong answers
    # served at 0.85 (test_offline_log_evaluation_equals_the_replay_sweep), so 0.85 reaches it
    assert report["recommended"]["threshold"] == 0.85


class RejectNumberTwo:
    """A stand-in guard: rejects the pair whose candidate is #2 (the 0.955 non-equivalent one)."""

    def check(self, query: str, candidate: str) -> str | None:
        return "numbers differ" if candidate.endswith("#2") else None


def test_a_guard_removes_the_hits_it_rejects(tmp_path: Path) -> None:
    scores = tuning.score_pairs(tuning.read_pairs(pairs_file(tmp_path / "p.jsonl")).pairs,
                                anchor_embedder())  # fmt: skip
    guarded = {p.threshold: p for p in tuning.curve(scores.guarded(RejectNumberTwo()), [0.92])}
    assert guarded[0.92].precision == 1.0 and guarded[0.92].recall == 3 / 6
    assert tuning.curve(scores, [0.92])[0].precision == 0.75


def test_tune_applies_the_default_guard(tmp_path: Path) -> None:
    rows = [
        ("Convert 6 feet to meters", "Convert 7 feet to meters", False),
        ("Convert 6 feet to meters", "How many meters is 6 feet?", True),
    ]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps({"query": q, "candidate": c, "equivalent": e})
                              for q, c, e in rows))  # fmt: skip
    table = {text: [1.0, 0.0] for row in rows for text in row[:2]}  # every pair at similarity 1
    import test_tuning

    test_tuning.flat = lambda: semcache.CallableEmbedder(  # type: ignore[attr-defined]
        lambda texts: [table[t] for t in texts], model_id="flat", dimension=2
    )
    args = [
        "tune",
        str(path),
        "--embedder",
        "test_tuning:flat",
        "--target-precision",
        "1",
        "--json",
    ]
    with_guard = json.loads(CliRunner().invoke(main, args).stdout)
    assert with_guard["guard"] is True and with_guard["recommended"]["precision"] == 1.0
    without = CliRunner().invoke(main, [*args, "--no-guard"])
    assert without.exit_code == 1 and json.loads(without.stdout)["recommended"] is None
