"""``semcache replay`` through the real entry point (click's CliRunner), on the session Redis."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from semcache.cli import main
from tests.replay.test_replay import EXPECTED, hand_log

TABLE = "tests.replay.test_replay:table_embedder"


def run(redis_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["replay", "--redis-url", redis_url, *args])
    return result.exit_code, result.stdout, result.stderr


def figures_of(report: dict) -> tuple[int, int, int | None, int]:
    layers = report["layers"]
    semantic = layers["semantic"]
    return layers["exact"]["hits"], semantic["hits"], semantic["false_hits"], report["tokens_saved"]


def test_replay_json_matches_hand_computed_figures(redis_url: str, tmp_path: Path) -> None:
    log = hand_log(tmp_path / "log.jsonl")
    for threshold, (exact, semantic, false_hits, tokens) in EXPECTED.items():
        code, out, err = run(
            redis_url,
            str(log),
            "--embedder",
            TABLE,
            "-t",
            str(threshold),
            "--json",
            "--no-verifier",
        )
        assert code == 0, err
        report = json.loads(out)
        assert report["requests"] == 8
        assert figures_of(report) == (exact, semantic, false_hits, tokens)
        assert report["hit_rate"] == (exact + semantic) / 8
        assert set(report) >= {
            "requests",
            "layers",
            "hit_rate",
            "tokens_saved",
            "usd_saved",
            "sweep",
        }


def test_replay_decides_with_the_default_verifier_unless_told_not_to(
    redis_url: str, tmp_path: Path
) -> None:
    """At 0.85 the guard alone serves two wrong answers of the hand log (EXPECTED); the default
    decision's verifier rejects them, so the replay's figures are the verifier's."""
    log = hand_log(tmp_path / "log.jsonl")
    reports = {}
    for flag in ("--verifier", "--no-verifier"):
        code, out, err = run(redis_url, str(log), "--embedder", TABLE, "-t", "0.85", "--json", flag)
        assert code == 0, err
        reports[flag] = json.loads(out)
    assert figures_of(reports["--no-verifier"])[2] == EXPECTED[0.85][2] == 2
    assert figures_of(reports["--verifier"])[2] == 0


def test_bad_lines_are_counted_and_named(redis_url: str, tmp_path: Path) -> None:
    log = hand_log(tmp_path / "log.jsonl")
    code, out, err = run(redis_url, str(log), "--embedder", TABLE, "--json")
    assert code == 0
    bad = json.loads(out)["bad_lines"]
    assert [(b["line"], b["error"].split(":")[0]) for b in bad] == [
        (8, "not JSON"),
        (9, "invalid request"),
    ]
    assert f"{log}:8: not JSON" in err and f"{log}:9: invalid request" in err


def test_sweep_agrees_with_single_threshold_replays(redis_url: str, tmp_path: Path) -> None:
    log = str(hand_log(tmp_path / "log.jsonl"))
    code, out, _ = run(redis_url, log, "--embedder", TABLE, "--sweep", "0.84:0.97:0.01", "--json")
    assert code == 0
    sweep = json.loads(out)["sweep"]
    assert len(sweep) == 14
    for point in sweep[::3]:
        _, single, _ = run(
            redis_url, log, "--embedder", TABLE, "-t", str(point["threshold"]), "--json"
        )
        report = json.loads(single)
        assert figures_of(point) == figures_of(report)
        assert point["precision"] == report["precision"] and point["recall"] == report["recall"]


def test_text_report_and_html(redis_url: str, tmp_path: Path) -> None:
    log = hand_log(tmp_path / "log.jsonl")
    page = tmp_path / "report.html"
    code, out, _ = run(
        redis_url,
        str(log),
        "--embedder",
        TABLE,
        "-t",
        "0.85",
        "--sweep",
        "0.85:0.95:0.05",
        "--html",
        str(page),
    )
    assert code == 0
    assert "semantic" in out and "66.7%" not in out.splitlines()[0]
    assert "false hits" in out and "sweep" in out
    text = page.read_text()
    assert text.count("<svg") == 4
    assert "<script" not in text and "src=" not in text and "<link" not in text


def test_sample_log_replays(redis_url: str) -> None:
    code, out, err = run(redis_url, "--sample", "--embedder", "conftest:hash_embedder", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["requests"] == 400 and not report["bad_lines"]
    assert report["layers"]["exact"]["hits"] > 50
    assert report["tokens_saved"] > 0


def test_batch_api_files(redis_url: str, tmp_path: Path) -> None:
    from conftest import chat

    from tests.replay.test_replay import A2, A, usage_answer

    inputs = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": chat(text)}
        for i, text in enumerate([A, A, A2])
    ]
    inputs.append({"custom_id": "r0", "body": chat(A)})  # duplicate id: a bad line
    outputs = [
        {"custom_id": f"r{i}", "response": {"status_code": 200, "body": usage_answer(10, 4)}}
        for i in range(3)
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in inputs))
    (tmp_path / "out.jsonl").write_text("\n".join(json.dumps(x) for x in outputs))
    code, out, err = run(
        redis_url,
        str(tmp_path / "in.jsonl"),
        "--responses",
        str(tmp_path / "out.jsonl"),
        "--embedder",
        TABLE,
        "--json",
    )
    report = json.loads(out)
    assert code == 0 and report["requests"] == 3
    assert (report["layers"]["exact"]["hits"], report["layers"]["semantic"]["hits"]) == (1, 1)
    assert report["tokens_saved"] == 28
    assert "duplicate custom_id" in err


def test_usage_errors(redis_url: str, tmp_path: Path) -> None:
    code, _, err = run(redis_url)
    assert code == 2 and "--sample" in err
    code, _, err = run(redis_url, "--sample", "--sweep", "0.9:0.8:0.1")
    assert code == 2 and "--sweep" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{oops\n")
    code, _, err = run(redis_url, str(empty))
    assert code == 1 and "no usable request" in err and "empty.jsonl:1" in err


def test_feedback_teaches_per_entry_thresholds_during_a_replay(
    redis_url: str, tmp_path: Path
) -> None:
    """At 0.85, B ("reset my username", group g2) is served A's entry twice (lines 4 and 6). With
    --feedback the first false hit is reported wrong, A's own cut-off rises above 0.88, and the
    second is a miss instead."""
    log = str(hand_log(tmp_path / "log.jsonl"))
    # the guard alone: the verifier would reject both false hits before feedback could teach anything
    args = ("--embedder", TABLE, "-t", "0.85", "--per-entry", "0.05", "--json", "--no-verifier")
    code, out, err = run(redis_url, log, *args)
    assert code == 0, err
    assert figures_of(json.loads(out))[2] == 2
    code, out, err = run(redis_url, log, *args, "--feedback")
    assert code == 0, err
    _exact, semantic, false_hits, _ = figures_of(json.loads(out))
    assert (semantic, false_hits) == (2, 1)
    code, _, err = run(redis_url, log, "--embedder", TABLE, "--feedback", "--sweep", "0.8:0.9:0.05")
    assert code == 2 and "--sweep" in err
