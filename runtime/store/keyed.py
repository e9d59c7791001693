"""The engine's keyed state store: the external key/value store ``get_keyed_state(key, type, default)`` reads.

eKuiper keeps this store outside the rules (sqlite or redis, written by other applications) and the SQL
function only reads it. Oort's store is one JSON object in the engine's data folder (``keyed_state.json``):
other processes write it (atomically: write a temporary file, then rename it over the old one) and the engine
notices the change by the file's inode, modification time and size (looked at most once a second of rule
time); in-process code writes it with ``put``/``delete``. One
store per engine, shared by all its rules. Without a file (tests, ``oort replay``) it lives in memory only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, final

import orjson

from runtime.errors import EngineError

KEYED_STATE_FILE = "keyed_state.json"
RECHECK_MS = 1000
"""How often (rule clock ms) a lookup re-stats the file: the hot path pays a comparison, not a syscall."""

_MISSING = object()

_Stamp = tuple[int, int, int]  # (st_ino, st_mtime_ns, st_size): a rename over the file changes st_ino


@final
class KeyedStateStore:
    """String keys to JSON values, optionally persisted in ``path``.

    Args:
      path: the JSON file backing the store, or None for a store in memory only.

    Lookups with a ``now_ms`` look at the file at most once per ``RECHECK_MS``; the file is parsed only when
    its stamp (inode, mtime, size) changed, so a broken file is parsed once, not on every event. While it is
    broken (unreadable, not JSON, not an object) the store keeps its last good data in memory and reports
    the problem.

    Raises (``get``, ``put``, ``delete``):
      EngineError: the file cannot be read or is not a JSON object.
    """

    __slots__ = ("_checked_ms", "_data", "_error", "_path", "_stamp")

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._data: dict[str, Any] = {}
        self._stamp: _Stamp | None = None  # of the file last parsed (or found broken)
        self._error: str | None = None  # why the file at ``_stamp`` is unusable
        self._checked_ms: int | None = None  # rule-clock time of the last stat

    def get(self, key: str, now_ms: int | None = None) -> Any:
        """The value of ``key``; ``now_ms`` (the rule clock) lets the store skip the stat when it looked
        less than ``RECHECK_MS`` ago. Raises KeyError when the store has no such key."""
        return self._current(now_ms)[key]

    def put(self, key: str, value: Any) -> None:
        data = dict(self._current())
        data[key] = value
        self._write(data)

    def delete(self, key: str) -> None:
        data = dict(self._current())
        if data.pop(key, _MISSING) is not _MISSING:
            self._write(data)

    def _current(self, now_ms: int | None = None) -> dict[str, Any]:
        if self._path is None:
            return self._data
        last = self._checked_ms
        if now_ms is None or last is None or not 0 <= now_ms - last < RECHECK_MS:
            self._refresh(self._path)
            self._checked_ms = now_ms
        if self._error is not None:
            raise EngineError(self._error)
        return self._data

    def _refresh(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._data, self._stamp, self._error = {}, None, None
            return
        except OSError as exc:
            self._stamp, self._error = None, f"keyed state file {path}: {exc.strerror or exc}"
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        # Stamp first: a file that fails below is not read again until it changes.
        self._stamp, self._error = stamp, None
        try:
            doc = orjson.loads(path.read_bytes() or b"{}")
        except OSError as exc:  # a directory, no permission, gone between stat and read
            self._error = f"keyed state file {path}: {exc.strerror or exc}"
            return
        except orjson.JSONDecodeError as exc:
            self._error = f"keyed state file {path} is not valid JSON: {exc}"
            return
        if not isinstance(doc, dict):
            self._error = f"keyed state file {path} must hold a JSON object"
            return
        self._data = doc

    def _write(self, data: dict[str, Any]) -> None:
        if self._path is None:
            self._data = data
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self._path)
        self._data, self._stamp, self._error = data, None, None  # re-stat on the next read

    def __repr__(self) -> str:
        return f"<KeyedStateStore {self._path or 'memory'}>"
