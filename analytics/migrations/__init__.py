"""Numbered ClickHouse migrations: `NNNN_name.py`, applied in version order, each recorded once.

Each module's docstring says why it exists, and its `forwards(database)` returns DDL statements that are
each idempotent (IF NOT EXISTS and the like), so a run interrupted between a statement and its record
is safe to repeat. There is no hand-written reverse DDL to drift from the forward one.
"""
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass

_MODULE_NAME = re.compile(r"^(\d{4})_(\w+)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    why: str
    forwards: Callable[[str], list[str]]


def load() -> list[Migration]:
    """Every migration in this package, by version; raises ValueError on a malformed package."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if match is None:
            raise ValueError(f"migration module {info.name!r} is not named NNNN_name")
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not (module.__doc__ or "").strip():
            raise ValueError(f"migration {info.name} has no docstring saying why it exists")
        found.append(Migration(int(match.group(1)), info.name, module.__doc__.strip(), module.forwards))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {[m.name for m in found]}")
    return found
