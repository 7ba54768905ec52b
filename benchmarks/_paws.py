"""PAWS-Wiki dev split by connected sentence components, like ``_qqp.py`` splits QQP. No model.

PAWS builds many pairs from one source sentence (its word swaps and back-translations), so a split
by row would put one sentence on both sides. Whole components of the sentence graph go to ``fit``
(the verifier learns from them), ``dev`` (the band is chosen there) and ``test`` (only the
benchmark measures there): 70/10/20 in a seeded order, the same seed as QQP. Figures on ``test``
are in-domain (the model saw other PAWS sentences); the cross-domain figure needs a model trained
without PAWS.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import _qqp

FILE = "paws-wiki-dev.tsv"


def split(data: Path = _qqp.DEFAULT_DATA, seed: int = _qqp.SEED) -> _qqp.Split:
    """PAWS dev pairs, whole sentence components to fit / dev / test (:data:`_qqp.FRACTIONS`)."""
    return _qqp.split(_qqp.read_paws(data / FILE), seed)
