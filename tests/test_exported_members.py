"""The public surface: ``__all__`` names every public name the package has (as httpx pins its own),
and no public signature mentions a type the package does not export."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest

import semcache
import semcache.openai
import semcache.replay
import semcache.tuning

#: Subpackages and modules reachable as attributes of ``semcache``: the public ones, and the
#: internal layer packages (documented in the README's module map, not for import).
PUBLIC_MODULES = {
    "cli",
    "datasets",
    "integrations",
    "openai",
    "prometheus",
    "proxy",
    "replay",
    "server",
    "tuning",
}
LAYER_PACKAGES = {"accounting", "core", "decision", "embedding", "redis"}
SHELLS = (semcache.Cache, semcache.AsyncCache)


def test_all_is_sorted_and_names_every_public_member() -> None:
    members = {
        name: value
        for name, value in vars(semcache).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert semcache.__all__ == sorted(members)
    modules = {n for n, v in vars(semcache).items() if isinstance(v, types.ModuleType)}
    assert modules - {"_errors", "_flows", "_shell"} <= PUBLIC_MODULES | LAYER_PACKAGES


@pytest.mark.parametrize("module", [semcache.openai, semcache.replay, semcache.tuning])
def test_public_subpackages_export_what_they_define(module: types.ModuleType) -> None:
    assert sorted(module.__all__) == module.__all__ or module is semcache.tuning
    for name in module.__all__:
        assert hasattr(module, name), name


def _exported() -> set[Any]:
    found = set()
    for module in (semcache, semcache.openai, semcache.replay, semcache.tuning):
        found |= {getattr(module, name) for name in module.__all__}
    return found


def _classes(hint: Any) -> Iterator[type]:
    if isinstance(hint, type) and not typing.get_args(hint):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes(arg)
    origin = typing.get_origin(hint)
    if isinstance(origin, type):
        yield origin


def _public_callables() -> Iterator[tuple[str, Any]]:
    for name in semcache.__all__:
        value = getattr(semcache, name)
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            if value is not semcache.Plan:  # a handle the cache makes, never built by callers
                yield f"{name}.__init__", value.__init__
            for attr, member in vars(value).items():
                if not attr.startswith("_") and callable(member):
                    yield f"{name}.{attr}", member
    for shell in SHELLS:  # the methods the shells inherit from their shared flows
        for attr in dir(shell):
            member = getattr(shell, attr)
            if not attr.startswith("_") and inspect.isfunction(member):
                yield f"{shell.__name__}.{attr}", member


def test_no_private_type_in_a_public_signature() -> None:
    exported = _exported()
    checked = 0
    for name, fn in _public_callables():
        try:
            hints = typing.get_type_hints(fn)
        except (NameError, TypeError):  # annotations of a third-party base (e.g. a Protocol)
            continue
        checked += 1
        for hint in hints.values():
            for cls in _classes(hint):
                if cls.__module__.split(".")[0] == "semcache":
                    assert cls in exported, f"{name} mentions {cls.__module__}.{cls.__qualname__}"
    assert checked > 50


def test_the_shells_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    sync_only, async_only = {"close"}, {"aclose", "connect"}
    assert public(semcache.Cache) - sync_only == public(semcache.AsyncCache) - async_only
    for name in public(semcache.Cache) - sync_only - {"config", "embedder", "namespace"}:
        member = getattr(semcache.AsyncCache, name)
        if inspect.isfunction(member) and name not in {
            "single_flight",
            "plan",
            "bypasses",
            "stores",
        }:
            assert inspect.iscoroutinefunction(member), name
