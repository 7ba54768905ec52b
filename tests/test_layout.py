"""The package's shape: no import cycle, and one Redis boundary.

Both read the source (no import), so they hold for code paths no other test runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "semcache"

#: Every Redis command semcache sends (a string spelling one outside semcache/redis/ fails).
REDIS_COMMANDS = frozenset(
    [
        "GET",
        "SET",
        "MGET",
        "DEL",
        "UNLINK",
        "EXISTS",
        "PEXPIRE",
        "PERSIST",
        "EXPIRE",
        "HSET",
        "HGET",
        "HGETALL",
        "HINCRBY",
        "HINCRBYFLOAT",
        "SADD",
        "SMEMBERS",
        "ZINCRBY",
        "ZADD",
        "ZRANGE",
        "ZREMRANGEBYSCORE",
        "ZREMRANGEBYRANK",
        "ZREVRANGE",
        "EVAL",
        "EVALSHA",
        "PUBLISH",
        "PSUBSCRIBE",
        "SUBSCRIBE",
        "SCAN",
        "CLUSTER",
        "PING",
        "INFO",
        "SHUTDOWN",
        "FLUSHALL",
        "FLUSHDB",
        "FT.CREATE",
        "FT.SEARCH",
        "FT.INFO",
        "FT.DROPINDEX",
        "FT._LIST",
        "MODULE",
    ]
)
#: Client methods that send commands or hold a connection.
CLIENT_CALLS = frozenset({"execute_command", "pipeline", "scan_iter", "pubsub", "psubscribe"})


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules an import statement names (``from p import m`` names p.m, and p only when
    it takes a name from p itself)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{alias.name}" for alias in node.names]
        yield from names
        if any(name not in known for name in names):
            yield base


def import_graph() -> dict[str, set[str]]:
    """Module → the semcache modules it imports anywhere: at the top, inside functions, or under
    TYPE_CHECKING (an import moved into a function to dodge a cycle still counts)."""
    found = modules()
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py", set(found)):
                if target in found and target != name:
                    edges.add(target)
                    # importing a submodule runs its packages' __init__ first, except the ones
                    # the importing module is inside (already running)
                    parent = target.rsplit(".", 1)[0]
                    while parent in found and not (name + ".").startswith(parent + "."):
                        edges.add(parent)
                        parent = parent.rsplit(".", 1)[0]
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_semcache() -> None:
    graph = import_graph()
    assert graph.get("semcache.core.engine")
    assert cycles(graph) == []


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def redis_spellings(path: Path) -> list[str]:
    """Where a module spells a Redis command, a Lua script or a client call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) and id(node) not in skip else None
        if isinstance(text, str) and (text in REDIS_COMMANDS or "redis.call" in text):
            out.append(f"{path.name}:{node.lineno}: {text[:30]!r}")
        call = node.func if isinstance(node, ast.Call) else None
        if isinstance(call, ast.Attribute) and call.attr in CLIENT_CALLS:
            out.append(f"{path.name}:{node.lineno}: .{call.attr}()")
    return sorted(out)


def test_the_spelling_finder_finds_commands(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""GET is fine in a docstring."""\nx = ("HSET", k)\nc.pipeline()\n')
    assert redis_spellings(module) == ["m.py:2: 'HSET'", "m.py:3: .pipeline()"]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if (PACKAGE / "redis") not in p.parents),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_redis_boundary_spells_redis_commands(path: Path) -> None:
    assert redis_spellings(path) == []


def test_the_redis_boundary_does_spell_them() -> None:
    assert redis_spellings(PACKAGE / "redis" / "commands.py")
