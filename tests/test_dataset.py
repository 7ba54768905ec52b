"""The shipped labelled pairs, intents and sample log, and the log generator."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from semcache import datasets
from semcache.replay._logs import read_log

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_pairs_cover_domains_languages_and_hard_negatives() -> None:
    pairs = datasets.load_pairs()
    assert len(pairs) >= 2500
    labels = Counter(p.equivalent for p in pairs)
    assert min(labels.values()) / len(pairs) > 0.4
    kinds = Counter(p.kind for p in pairs if not p.equivalent)
    for kind in (
        "changed-number",
        "negation",
        "swapped-entity",
        "swapped-order",
        "different-unit",
        "word-change",
        "other-language",
    ):
        assert kinds[kind] >= 10, kind
    assert {"support", "coding", "facts", "math", "multilingual"} <= {p.domain for p in pairs}
    assert {"en", "es", "fr", "de", "pt", "it"} <= {p.lang for p in pairs}
    assert all(p.query != p.candidate for p in pairs)


def test_shipped_files_are_what_the_script_writes(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import make_dataset

    lines = (datasets.DATA / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == make_dataset.pairs()
    assert datasets.load_intents() == make_dataset.intents()
    sys.modules.pop("make_dataset", None)
    sys.modules.pop("dataset_bank", None)


def test_sample_log_is_the_generator_output_and_parses_cleanly() -> None:
    log = read_log(datasets.sample_log_path())
    assert not log.bad_lines and len(log.records) == 400
    shipped = [json.loads(x) for x in datasets.sample_log_path().read_text().splitlines()]
    assert shipped == datasets.generate_log(400, seed=7)


def test_generated_log_is_realistic() -> None:
    lines = datasets.generate_log(600, seed=3)
    tenants = Counter(line["tenant"] for line in lines)
    assert len(tenants) == 3 and tenants.most_common(1)[0][0] == "acme"
    follow_ups = [x for x in lines if len(x["request"]["messages"]) == 4]
    assert 0.05 < len(follow_ups) / len(lines) < 0.25
    groups = Counter(line["group"] for line in lines)
    assert groups.most_common(1)[0][1] >= 10  # popularity skew
    texts = Counter(x["request"]["messages"][-1]["content"] for x in lines)
    assert len(texts) < len(lines) and any(n > 1 for n in texts.values())  # repeats
    assert all(x["response"]["usage"]["total_tokens"] > 0 for x in lines)
    assert [x["timestamp"] for x in lines] == sorted(x["timestamp"] for x in lines)
    assert datasets.generate_log(50, seed=3) == lines[:50]
