"""What redkeep takes from redis-py exists in the installed release, named when it does not.

``make test`` runs this file on the pinned redis-py and on the lowest supported one (a second
venv, see the Makefile). Every ``from redis... import name`` and every ``rx.Name`` in redkeep's
sources is resolved, so a redis-py release that renames or drops one fails here first, with its
name. The fast path must stay off redis-py's internals: its modules may import only redis-py's
exceptions and backoff classes.
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).parents[2]
SRC = ROOT / "src" / "redkeep"
FAST_PATH = ["redis/mux.py", "redis/_multiplexer.py", "redis/_wire.py", "redis/_lanes.py"]
FAST_PATH_ALLOWED = {"redis.exceptions", "redis.backoff"}


def _uses() -> dict[str, set[str]]:
    """``{"redis.module": {"Name", ...}}`` for every use of redis-py in src/redkeep."""
    uses: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "redis":
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    try:  # "from redis import exceptions as rx" imports a module
                        importlib.import_module(full)
                        aliases[alias.asname or alias.name] = full
                    except ImportError:
                        uses.setdefault(str(node.module), set()).add(alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "redis":
                        aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                uses.setdefault(aliases[node.value.id], set()).add(node.attr)
    return uses


def test_every_name_redkeep_uses_exists() -> None:
    missing = []
    for module_name, names in sorted(_uses().items()):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"module {module_name}")
            continue
        missing += [f"{module_name}.{n}" for n in sorted(names) if not hasattr(module, n)]
    assert missing == [], f"redis-py {redis.__version__} lacks: {', '.join(missing)}"


def test_public_api_of_the_reference_transport() -> None:
    from redis.asyncio import Redis, RedisCluster, Sentinel

    for cls, methods in [
        (Redis, ["execute_command", "pipeline", "aclose", "response_callbacks"]),
        (RedisCluster, ["execute_command", "initialize", "get_primaries", "keyslot", "aclose"]),
        (Sentinel, ["master_for", "sentinels"]),
    ]:
        instance_attrs = {"response_callbacks", "sentinels"}
        absent = [
            m for m in methods if m not in instance_attrs and not callable(getattr(cls, m, None))
        ]
        assert absent == [], f"redis-py {redis.__version__}: {cls.__name__} lacks {absent}"


def test_the_fast_path_imports_no_redis_py_internals() -> None:
    for rel in FAST_PATH:
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("redis"):
                modules = (
                    {node.module}
                    if node.module != "redis"
                    else {f"redis.{a.name}" for a in node.names}
                )
                assert modules <= FAST_PATH_ALLOWED, f"{rel} imports {modules}"
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names if a.name.startswith("redis")}
                assert names <= FAST_PATH_ALLOWED, f"{rel} imports {names}"


def test_installed_redis_py_is_in_the_supported_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("redis"))
    found = re.search(r">=([\d.]+),<([\d.]+)", spec)
    assert found, f"redis-py must be bounded on both sides in pyproject.toml: {spec}"
    low, high = (tuple(int(p) for p in v.split(".")) for v in found.groups())
    installed = tuple(int(p) for p in redis.__version__.split(".")[:3])
    assert low <= installed < high, (redis.__version__, spec)


@pytest.mark.parametrize("name", ["MasterNotFoundError"])
def test_sentinel_errors_come_from_redis_asyncio(name: str) -> None:
    module = importlib.import_module("redis.asyncio.sentinel")
    assert issubclass(getattr(module, name), redis.exceptions.ConnectionError)
