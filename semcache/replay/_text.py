"""A replay report as plain text tables for the terminal. No I/O."""

from __future__ import annotations

from semcache.replay._figures import Figures, LayerFigures
from semcache.replay._replay import ReplayReport


def render_text(report: ReplayReport, *, source: str = "", kept: bool = False) -> str:
    """The report as a few aligned tables."""
    f = report.figures
    where = f"namespace {report.namespace}" + ("" if kept else " (throwaway, removed)")
    lines = [
        f"replayed {f.requests} requests of {source or 'the log'} in {where}",
        f"{len(report.bad_lines)} bad lines skipped" if report.bad_lines else "no bad lines",
        f"threshold {f.threshold:.3f}",
        "",
        _row(
            _LAYERS,
            (
                "layer",
                "hits",
                "hit rate",
                "false hits",
                "precision",
                "tokens saved",
                "USD saved",
                "lookup p50/p95 ms",
            ),
        ),
        _layer_row("exact", f.exact),
        _layer_row("semantic", f.semantic),
        _row(
            _LAYERS,
            (
                "total",
                str(f.hits),
                _pct(f.hit_rate),
                "",
                "",
                f"{f.tokens_saved:,}",
                _usd(f.usd_saved),
                _latency(f.lookup_ms),
            ),
        ),
    ]
    if f.recall is not None:
        lines.append(f"semantic recall (equivalent entries found, by group): {_pct(f.recall)}")
    if f.unpriced_hits:
        lines.append(f"{f.unpriced_hits} hits answered by entries without usage (not counted)")
    if report.sweep:
        lines += ["", "sweep", _sweep_header(), *(_sweep_row(s) for s in report.sweep)]
    return "\n".join(lines)


def _layer_row(name: str, layer: LayerFigures) -> str:
    return _row(
        _LAYERS,
        (
            name,
            str(layer.hits),
            _pct(layer.hit_rate),
            "-" if layer.false_hits is None else str(layer.false_hits),
            _pct(layer.precision),
            f"{layer.tokens_saved:,}",
            _usd(layer.usd_saved),
            _latency(layer.latency_ms),
        ),
    )


_SWEEP = (10, 9, 7, 9, 11, 10, 8, 13, 11)


def _sweep_header() -> str:
    return _row(
        _SWEEP,
        (
            "threshold",
            "hit rate",
            "exact",
            "semantic",
            "false hits",
            "precision",
            "recall",
            "tokens saved",
            "USD saved",
        ),
    )


def _sweep_row(s: Figures) -> str:
    return _row(
        _SWEEP,
        (
            f"{s.threshold:.3f}",
            _pct(s.hit_rate),
            str(s.exact.hits),
            str(s.semantic.hits),
            "-" if s.semantic.false_hits is None else str(s.semantic.false_hits),
            _pct(s.semantic.precision),
            _pct(s.recall),
            f"{s.tokens_saved:,}",
            _usd(s.usd_saved),
        ),
    )


_LAYERS = (10, 6, 9, 11, 10, 13, 11, 18)


def _row(widths: tuple[int, ...], cells: tuple[str, ...]) -> str:
    return "".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    ).rstrip()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.4f}"


def _latency(values: dict[str, float] | None) -> str:
    return "-" if not values else f"{values['p50']:.2f} / {values['p95']:.2f}"
