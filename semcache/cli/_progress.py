"""What a command shows while it works: a line per slow step and tqdm bars, on a terminal only.

Everything goes to stderr, and only when stderr is a terminal, so piped or redirected output stays
exactly the command's result.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import click

T = TypeVar("T")


def on_terminal() -> bool:
    """True when stderr is a terminal (progress is shown), False when piped or redirected."""
    return sys.stderr.isatty()


def say(message: str) -> None:
    """One line on stderr whatever stderr is: what a command did that the user must know."""
    click.echo(message, err=True)


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """``message...`` before a slow step and its duration after it, on a terminal."""
    if not on_terminal():
        yield
        return
    click.echo(f"{message}...", err=True, nl=False)
    start = time.perf_counter()
    try:
        yield
    finally:
        click.echo(f" {time.perf_counter() - start:.1f} s", err=True)


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """A tqdm bar over ``items`` on a terminal; ``items`` unchanged when stderr is piped."""
    if not on_terminal():
        return items
    from tqdm import tqdm

    shown: Iterable[T] = tqdm(
        items, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr
    )
    return shown


def replay_progress(items: Iterable[Any], desc: str, total: int) -> Iterable[Any]:
    """The ``progress`` callback of :func:`semcache.tuning.replay` and the sweeps."""
    units = {"replaying": "req", "sweeping": "threshold"}
    return bar(items, desc, total, unit=units.get(desc, "batch"))
