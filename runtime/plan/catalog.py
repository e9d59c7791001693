"""The catalog: stream, table and rule definitions, persisted one file each under the data directory.

Layout: ``<data>/streams/<name>.json`` and ``<data>/tables/<name>.json`` hold ``{"sql": "<DDL>"}``;
``<data>/rules/<id>.json`` holds the rule JSON as submitted (``triggered`` kept current). One file per item keeps a
write O(1) however many rules exist, and each file is replaced atomically (``store.atomic_write``), so a crash
never leaves a half-written definition.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, final

import orjson

from runtime.config import RuleOptions
from runtime.errors import EngineError, StorageError
from runtime.plan.ruledef import RuleDef, parse_rule
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.store.files import atomic_write

LOGGER = logging.getLogger("oort.catalog")
KINDS = ("stream", "table")


@final
class Catalog:
    """In-memory definitions mirrored to disk. Not thread-safe; owned by the ``Engine``."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self.streams: dict[str, dict[str, StreamDef]] = {"stream": {}, "table": {}}
        self.rules: dict[str, RuleDef] = {}

    def load(self, defaults: RuleOptions) -> list[str]:
        """Read every definition from disk. Returns one message per file that could not be loaded.

        A bad file is reported and skipped; it is left on disk untouched so nothing is lost.
        """
        problems: list[str] = []
        for stale in self._dir.glob("*/.*.tmp"):
            # Left by a process killed in the middle of atomic_write; the real file is intact (old or new).
            stale.unlink(missing_ok=True)
        for kind in KINDS:
            for path in sorted(self._folder(kind).glob("*.json")):
                try:
                    stmt = parse_ddl(orjson.loads(path.read_bytes())["sql"])
                    if not isinstance(stmt, StreamDef):
                        raise EngineError("not a CREATE statement")
                    self.streams[stmt.kind][stmt.name] = stmt
                except (OSError, KeyError, TypeError, orjson.JSONDecodeError, EngineError) as exc:
                    problems.append(f"{path}: {exc}")
        for path in sorted(self._folder("rule").glob("*.json")):
            try:
                rule = parse_rule(orjson.loads(path.read_bytes()), defaults)
                self.rules[rule.id] = rule
            except (OSError, orjson.JSONDecodeError, EngineError) as exc:
                problems.append(f"{path}: {exc}")
        for problem in problems:
            LOGGER.error("catalog: cannot load %s", problem)
        return problems

    # Each change is written to disk first: when that fails (StorageError) the catalog is left as it was.

    def put_stream(self, stmt: StreamDef) -> None:
        self._write(stmt.kind, stmt.name, {"sql": stmt.statement})
        self.streams[stmt.kind][stmt.name] = stmt

    def remove_stream(self, kind: str, name: str) -> None:
        self._remove(kind, name)
        self.streams[kind].pop(name, None)

    def put_rule(self, rule: RuleDef) -> None:
        self._write("rule", rule.id, rule.raw)
        self.rules[rule.id] = rule

    def remove_rule(self, rule_id: str) -> None:
        self._remove("rule", rule_id)
        self.rules.pop(rule_id, None)

    def _remove(self, kind: str, name: str) -> None:
        try:
            self._path(kind, name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot remove {kind} {name} from {self._folder(kind)}: {exc.strerror}"
            ) from exc

    def _folder(self, kind: str) -> Path:
        return self._dir / f"{kind}s"

    def _path(self, kind: str, name: str) -> Path:
        return self._folder(kind) / f"{name}.json"

    def _write(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        folder = self._folder(kind)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self._path(kind, name), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise StorageError(f"cannot save {kind} {name} in {folder}: {exc.strerror}") from exc

    def __repr__(self) -> str:
        return (
            f"<Catalog {self._dir} streams={len(self.streams['stream'])} tables={len(self.streams['table'])}"
            f" rules={len(self.rules)}>"
        )
