"""Calibration: the hit rate each decision configuration reaches at a target precision."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from semcache.cli import main
from semcache.decision.calibrate import calibrate, table

# Near-duplicates that differ in a number score as high as the paraphrases: one threshold cannot
# tell them apart, the guard can.
PAIRS = [
    ("Convert 6 feet to meters.", "Convert 7 feet to meters.", False, 0.97),
    ("Convert 8 feet to meters.", "Convert 9 feet to meters.", False, 0.96),
    ("Convert 6 feet to meters.", "How many meters is 6 feet?", True, 0.95),
    ("Convert 8 feet to meters.", "8 feet in meters?", True, 0.94),
    ("How do I reset my password?", "how can I reset my password", True, 0.93),
    ("Capital of France?", "Capital of Spain?", False, 0.92),
    ("Capital of France?", "What is the capital of France?", True, 0.91),
]


def test_the_guard_buys_hits_the_plain_threshold_cannot_at_equal_precision() -> None:
    queries, candidates, labels, sims = zip(*PAIRS, strict=True)
    rows = calibrate(queries, candidates, np.array(sims), np.array(labels), target=0.95)
    by = {r.configuration: r for r in rows}
    assert set(by) == {
        "global threshold",
        "guard",
        "per-entry thresholds",
        "guard + per-entry thresholds",
    }
    assert not by["global threshold"].reached  # the top pair is a wrong answer
    assert by["guard"].reached and by["guard"].precision == 1.0 and by["guard"].recall == 1.0
    assert "guard" in table(rows, 0.95)


def test_a_judge_adds_a_second_opinion_row() -> None:
    pairs = [*PAIRS, ("Who discovered insulin?", "When was insulin discovered?", False, 0.965)]
    queries, candidates, labels, sims = zip(*pairs, strict=True)
    truth = {(q, c): y for q, c, y, _ in pairs}
    rows = calibrate(
        queries, candidates, np.array(sims), np.array(labels), judge=lambda q, c: truth[(q, c)]
    )
    guard, judged = rows[1], rows[-1]
    assert judged.configuration == "guard + second opinion" and judged.reached
    assert judged.recall == 1.0 and not guard.reached  # the guard lets "who"/"when" through
    assert 0 < judged.judge_calls <= 1


def test_tune_configs_prints_the_calibration(tmp_path, embedder) -> None:  # type: ignore[no-untyped-def]
    import json

    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"query": q, "candidate": c, "equivalent": y}) + "\n" for q, c, y, _ in PAIRS
        )
    )
    result = CliRunner().invoke(main, ["tune", str(path), "--configs", "--json"])
    report = json.loads(result.output)
    names = [row["configuration"] for row in report["configurations"]]
    assert names[:3] == ["global threshold", "guard", "guard + verifier (default)"]


def test_the_default_verifier_adds_its_row_and_rejects_what_the_guard_lets_through() -> None:
    from semcache import Verifier

    pairs = [*PAIRS, ("Can a cat eat grapes?", "Can grapes eat a cat?", False, 0.965)]
    queries, candidates, labels, sims = zip(*pairs, strict=True)
    rows = calibrate(queries, candidates, np.array(sims), np.array(labels), verifier=Verifier())
    by = {r.configuration: r for r in rows}
    verified = by["guard + verifier (default)"]
    assert not by["guard"].reached  # the word swap passes the guard at 0.965
    assert verified.reached and verified.precision == 1.0 and verified.recall > 0
    assert 0 < verified.judge_calls <= 1  # the share of pairs the verifier was asked about
