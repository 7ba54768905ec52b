"""Markdown tables of a ``benchmarks/results/compare.json`` (``python benchmarks/compare.py
--report``)."""

from __future__ import annotations

from typing import Any


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _threshold(p: dict[str, Any]) -> str:
    own = f"{p['threshold']:.4f}".rstrip("0").rstrip(".")
    cos = f"{p['cosine']:.4f}".rstrip("0").rstrip(".")
    return f"{own} (cos {cos})"


def _point(p: dict[str, Any] | None, best: float) -> str:
    if p is None:
        return f"not reached (best P {best:.3f})"
    return f"{_threshold(p)}: P {_num(p['precision'])}, R {_num(p['recall'])}, hits {_num(p['hit_rate'])}"


def accuracy_table(name: str, block: dict[str, Any], targets: list[str]) -> list[str]:
    head = ["system", "default threshold: precision, recall, hit rate"]
    head += [f"P ≥ {t[1:]}: threshold, P, R, hit rate" for t in targets]
    lines = [f"**{name}** ({block['note']}; {block['queries']:,} queries, "
             f"{block['with_equivalent']:,} with an equivalent candidate)", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]  # fmt: skip
    for system, r in block["systems"].items():
        cells = [system, _point(r["points"]["default"], r["best_precision"])]
        cells += [_point(r["points"].get(t), r["best_precision"]) for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def latency_table(rows: dict[str, Any]) -> list[str]:
    def cell(row: dict[str, Any], key: str) -> str:
        r = row.get(key)
        return "-" if not r else f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"

    lines = ["| system | stores/s | hit, repeated prompt p50 / p99 ms | hit, paraphrase p50 / p99 ms "
             "| miss p50 / p99 ms |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for system, row in rows.items():
        lines.append(f"| {system} | {row['store_per_s']:,.0f} | {cell(row, 'hit_repeat')} | "
                     f"{cell(row, 'hit_paraphrase')} | {cell(row, 'miss')} |")  # fmt: skip
    return lines


def markdown(result: dict[str, Any]) -> str:
    targets = sorted({k for b in result["accuracy"].values() for r in b["systems"].values()
                      for k in r["points"] if k != "default"}, reverse=True)  # fmt: skip
    out = [f"{result['date']}, {result['machine']}; load average "
           f"{result['load_average']['before'][0]:.1f} → {result['load_average']['after'][0]:.1f}.", ""]  # fmt: skip
    out += ["| system | threshold | to cosine | default |", "| --- | --- | --- | --- |"]
    for c in result["conversions"]:
        out.append(f"| {c['system']} | {c['scale']} | {c['to_cosine']} | "
                   f"{c['default']} (cos {c['default_cosine']:.2f}) |")  # fmt: skip
    for name, block in result["accuracy"].items():
        out += ["", *accuracy_table(name, block, targets)]
    for key, title in (("latency_model", "each system embeds with the model"),
                       ("latency_precomputed", "embeddings precomputed")):  # fmt: skip
        args = result["args"]
        out += ["", f"**Latency, {title}** ({args['entries']:,} entries stored, "
                f"{args['probes']} lookups per kind, all at cosine 0.9)", "", *latency_table(result[key])]  # fmt: skip
    return "\n".join(out)
