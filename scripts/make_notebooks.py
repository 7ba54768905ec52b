"""Write the notebooks in ``notebooks/`` from the cells below and execute them in place.

    python scripts/make_notebooks.py            # write and execute (outputs are committed)
    python scripts/make_notebooks.py --no-run   # write only

They run offline against semcache's embedded Redis. Run with SEMCACHE_HOME pointing at a scratch
directory to keep the notebooks' server away from your own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent / "notebooks"

QUICKSTART = [
    "# semcache quickstart\n\nAn exact and a semantic cache for LLM calls on Redis. With no URL, "
    "semcache starts its own local Redis with the search module; the embedding model "
    "(all-MiniLM-L6-v2) runs locally. Nothing here touches the network.",
    "import semcache\n\ncache = semcache.Cache(namespace='quickstart', ttl=3600)\ncache.flush()",
    "def ask(text, **params):\n"
    "    return {'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': text}], **params}\n\n"
    "def reply(text):\n"
    "    return {'object': 'chat.completion', 'model': 'gpt-4o-mini',\n"
    "            'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': text},\n"
    "                         'finish_reason': 'stop'}],\n"
    "            'usage': {'prompt_tokens': 14, 'completion_tokens': 40, 'total_tokens': 54}}",
    "## A miss, then a store\n\nA miss is a result, never an exception.",
    "request = ask('How do I reset my password?')\nresult = cache.lookup(request)\n"
    "result.layer, result.reason",
    "cache.store(request, reply('Open Settings, then Security, then Reset password.'))",
    "## The exact layer\n\nThe same request (transport options such as `stream` aside) hits the "
    "exact layer.",
    "hit = cache.lookup(ask('How do I reset my password?', stream=True))\n"
    "hit.layer, hit.similarity, hit.response['choices'][0]['message']['content']",
    "## The semantic layer\n\nA paraphrase hits the semantic layer, with its cosine similarity.",
    "hit = cache.lookup(ask('how can I reset my password'))\nhit.layer, round(hit.similarity, 3)",
    "A different question misses. The search asks Redis only for entries the decision could "
    "accept (a range query down to the threshold, `CacheConfig(search='range')`, the default), "
    "so this miss found no candidate and has no nearest entry to report; "
    "`CacheConfig(search='knn')` fetches the nearest however far, and `best_similarity` then "
    "says how close it was.",
    "miss = cache.lookup(ask('How do I delete my account?'))\n"
    "miss.layer, miss.reason, miss.best_similarity",
    "## Scope: tenants, system prompts, parameters\n\nA semantic match only happens inside one scope: "
    "another tenant, system prompt or answer-changing parameter never matches.",
    "[cache.lookup(ask('How do I reset my password?'), tenant='acme').layer,\n"
    " cache.lookup(ask('How do I reset my password?', temperature=0.2)).layer]",
    "## The threshold\n\n`CacheConfig.threshold` (or `threshold=` per lookup) is the cosine "
    "similarity a semantic match needs. See `02_threshold_tuning` for how to choose it.",
    "[cache.lookup(ask('how can I reset my password'), threshold=t).layer for t in (0.8, 0.99)]",
    "cache.flush()\ncache.close()",
]

TUNING = [
    "# Choosing a threshold\n\nA semantic cache answers a new question with the answer to a close "
    "enough old one. Too low a threshold serves wrong answers (false hits); too high and the "
    "semantic layer rarely hits. This notebook measures both on semcache's own labelled pairs: "
    "paraphrases and hard negatives (changed numbers, negations, swapped entities, other units, "
    "one-word meaning changes, other languages).",
    "import collections\n\nimport matplotlib.pyplot as plt\n\n"
    "import semcache\nfrom semcache import datasets, tuning\n\n"
    "pairs = datasets.load_pairs()\nembedder = semcache.OnnxEmbedder(threads=2)\n"
    "scores = tuning.score_pairs(pairs, embedder)\n"
    "len(pairs), int(scores.labels.sum())",
    "## Distributions\n\nThe two histograms overlap: no threshold separates them cleanly.",
    "tuning.plot_distributions(scores, threshold=0.9)\nplt.show()",
    "## Curves\n\nPrecision (share of hits that are right), recall (share of equivalent pairs that "
    "hit), F1, and false-hit rate (share of non-equivalent pairs that hit) per threshold.",
    "points = tuning.curve(scores)\n"
    "for t in (0.80, 0.85, 0.90, 0.95, 0.97):\n"
    "    p = tuning.at(points, t)\n"
    "    print(f'{t:.2f}  precision {p.precision:.3f}  recall {p.recall:.3f}  '\n"
    "          f'false-hit rate {p.false_hit_rate:.3f}')",
    "for target in (0.85, 0.90, 0.95):\n"
    "    found = tuning.recommend(points, target)\n"
    "    print(target, 'none reaches it' if found.point is None else\n"
    "          f'threshold {found.point.threshold:.2f}, recall {found.point.recall:.3f}')",
    "tuning.plot_curves(points, mark=tuning.at(points, 0.9))\nplt.show()",
    "## With the default decision stage\n\nThe cache's default decision stage also runs a lexical "
    "guard (numbers, negations, units, entities, the order of anchors) on each candidate, and a "
    "learned verifier (token alignment features scored by boosted trees) on candidates in a band "
    "around the threshold. The same "
    "curves, each pair decided as the cache decides it: a rejected pair never hits.",
    "guarded = tuning.curve(scores.decided(tuning.default_decision()))\n"
    "for t in (0.85, 0.90, 0.95):\n"
    "    p = tuning.at(guarded, t)\n"
    "    print(f'{t:.2f}  precision {p.precision:.3f}  recall {p.recall:.3f}')\n"
    "found = tuning.recommend(guarded, 0.95)\n"
    "print('target 0.95:', found.point.threshold, round(found.point.recall, 3))",
    "## What a false hit looks like\n\nThe non-equivalent pairs that score highest: the kinds a "
    "threshold alone cannot catch.",
    "ranked = sorted(zip(scores.similarities, pairs), key=lambda x: -x[0])\n"
    "false = [(s, p) for s, p in ranked if not p.equivalent]\n"
    "for s, p in false[:12]:\n"
    "    print(f'{s:.3f}  {p.kind:<15} {p.query!r} -> {p.candidate!r}')",
    "Which kinds of hard negatives get through at 0.90:",
    "through = collections.Counter(p.kind for s, p in zip(scores.similarities, pairs)\n"
    "                              if not p.equivalent and s >= 0.9)\n"
    "total = collections.Counter(p.kind for p in pairs if not p.equivalent)\n"
    "{k: f'{through[k]}/{total[k]}' for k in sorted(total)}",
    "## On traffic\n\nPairs are adversarial by design. On a realistic log (popular questions, "
    "paraphrases, repeats, follow-ups, three tenants) the same model does better, because hard "
    "negatives are rarer. `evaluate_log` replays the log offline with the cache's own rules at "
    "every threshold.",
    "log = [tuning.LogRecord(request=x['request'], response=x['response'], tenant=x['tenant'],\n"
    "                        group=x['group']) for x in datasets.generate_log(1500, seed=11)]\n"
    "grid = tuning.threshold_grid('0.70:0.99:0.01')\n"
    "sweep = tuning.evaluate_log(log, embedder, grid)\nlog_points = tuning.log_curve(sweep)\n"
    "for target in (0.90, 0.95):\n"
    "    found = tuning.recommend(log_points, target)\n"
    "    print(target, 'none reaches it' if found.point is None else\n"
    "          f'threshold {found.point.threshold:.2f}, recall {found.point.recall:.3f}')\n"
    "p = tuning.at(log_points, 0.9)\n"
    "print(f'at 0.90: precision {p.precision:.3f}, recall {p.recall:.3f}, hit rate {p.hit_rate:.3f}')",
    "fig, ax = plt.subplots(figsize=(7, 4))\n"
    "ax.plot(grid, [f.hit_rate for f in sweep], label='hit rate (both layers)')\n"
    "ax.plot(grid, [f.semantic.precision for f in sweep], label='semantic precision')\n"
    "ax.plot(grid, [f.recall for f in sweep], label='semantic recall')\n"
    "ax.set(xlabel='threshold', ylim=(0, 1.02)); ax.legend(); plt.show()",
]

REPLAY = [
    "# Replay a log and see the savings\n\n`semcache replay LOG` (or `tuning.replay`) feeds a "
    "request log through a real cache in order, stores the logged response on each miss, calls "
    "no model, and reports hits, false hits, tokens and dollars saved per layer. Here: the sample "
    "log shipped with semcache (400 requests, three tenants, follow-up turns).",
    "import matplotlib.pyplot as plt\n\nimport semcache\nfrom semcache import datasets, tuning\n\n"
    "log = tuning.read_log(datasets.sample_log_path())\nlen(log.records), len(log.bad_lines)",
    "grid = tuning.threshold_grid('0.80:0.98:0.02')\n"
    "config = semcache.CacheConfig(namespace='notebook-replay', ttl=None)\n"
    "with semcache.Cache(config=config) as cache:\n"
    "    cache.flush()\n"
    "    report = tuning.replay(cache, log, threshold=0.9, sweep=grid)\n"
    "    cache.flush()\n"
    "print(tuning.render_text(report, source='sample_log.jsonl'))",
    "## Savings per layer",
    "f = report.figures\nfig, ax = plt.subplots(figsize=(6, 3.5))\n"
    "ax.bar(['exact', 'semantic'], [f.exact.tokens_saved, f.semantic.tokens_saved])\n"
    "ax.set(ylabel='tokens saved', title=f'USD saved: {f.usd_saved:.4f}'); plt.show()",
    "## Hit rate over the log\n\nA cache warms up: the hit rate climbs as the log goes on.",
    "import numpy as np\n\nhits = np.cumsum([o.layer is not None for o in report.outcomes])\n"
    "x = np.arange(1, len(hits) + 1)\nplt.plot(x, hits / x); plt.xlabel('requests');\n"
    "plt.ylabel('cumulative hit rate'); plt.show()",
    "## The sweep\n\nOne pass, every threshold: a lower threshold buys hits with false hits. The "
    "exact layer gains as the semantic layer loses, since requests that no longer hit "
    "semantically get stored and repeat.",
    "for s in report.sweep:\n"
    "    print(f'{s.threshold:.2f}  hit rate {s.hit_rate:.3f}  exact {s.exact.hits:3d}  '\n"
    "          f'semantic {s.semantic.hits:3d}  false {s.semantic.false_hits:2d}  '\n"
    "          f'USD {s.usd_saved:.4f}')",
    "## The HTML report\n\n`semcache replay LOG --html report.html` writes the same figures with "
    "plots into one file that opens offline.",
    "import tempfile, pathlib\n\n"
    "page = pathlib.Path(tempfile.mkdtemp()) / 'report.html'\n"
    "page.write_text(tuning.render_html(report))\npage.stat().st_size > 10_000",
]

NOTEBOOKS = {"01_quickstart": QUICKSTART, "02_threshold_tuning": TUNING,
             "03_replay_and_savings": REPLAY}  # fmt: skip


def build(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    for source in cells:
        is_code = not source.startswith("#") and not source[:1].isupper()
        make = nbformat.v4.new_code_cell if is_code else nbformat.v4.new_markdown_cell
        nb.cells.append(make(source))
    return nb


#: sentence-transformers imports ``tqdm.auto``, which warns in a kernel without ipywidgets; the
#: notebooks draw no progress bar, so the warning says nothing about them and is kept out.
KERNEL_WARNINGS = "ignore:IProgress not found"


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in its own directory; raises on the first failing cell."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = KERNEL_WARNINGS  # read by the kernel process at start-up
    try:
        client.execute()
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS")
        else:
            os.environ["PYTHONWARNINGS"] = before
    return nb


def main() -> None:
    ROOT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        path = ROOT / f"{name}.ipynb"
        nbformat.write(build(cells), path)
        if "--no-run" not in sys.argv:
            nbformat.write(execute(path), path)
        print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
