"""Schema migrations: numbered SQL files per backend, applied in order, each exactly once.

A `schema_migrations` table records what has been applied. The files are plain SQL so that an
operator can read and apply them by hand; a migration and its record commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: str) -> list[Migration]:
    """The migrations of `backend` ("sqlite" or "postgres"), oldest first."""
    folder = resources.files("assistants_grpc.adapters.storage") / "migrations" / backend
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version_text, _, name = entry.name.removesuffix(".sql").partition("_")
        found.append(Migration(int(version_text), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def split_statements(sql: str) -> list[str]:
    """Splits a migration into statements (ours never put a semicolon inside a literal)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
