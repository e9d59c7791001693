"""The engine's keyed state store: the external key/value store ``get_keyed_state(key, type, default)`` reads.

eKuiper keeps this store outside the rules (sqlite or redis, written by other applications) and the SQL
function only reads it. Oort's store is one JSON object in the engine's data folder (``keyed_state.json``):
other processes write it (atomically: write a temporary file, then rename it over the old one) and the engine
notices the change by the file's modification time; in-process code writes it with ``put``/``delete``. One
store per engine, shared by all its rules. Without a file (tests, ``oort replay``) it lives in memory only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, final

import orjson

from runtime.errors import EngineError

KEYED_STATE_FILE = "keyed_state.json"


@final
class KeyedStateStore:
    """String keys to JSON values, optionally persisted in ``path``.

    Args:
      path: the JSON file backing the store, or None for a store in memory only.

    Raises (``get``, ``put``, ``delete``):
      EngineError: the file exists but is not a JSON object.
    """

    __slots__ = ("_data", "_path", "_stamp")

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._data: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def get(self, key: str) -> Any:
        """The value of ``key``. Raises KeyError when the store has no such key."""
        return self._current()[key]

    def put(self, key: str, value: Any) -> None:
        data = dict(self._current())
        data[key] = value
        self._write(data)

    def delete(self, key: str) -> None:
        data = dict(self._current())
        if data.pop(key, None) is not None:
            self._write(data)

    def _current(self) -> dict[str, Any]:
        if self._path is None:
            return self._data
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._data, self._stamp = {}, None
            return self._data
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            # Re-read only when the file changed: one stat per lookup on the hot path, no parse.
            doc = orjson.loads(self._path.read_bytes() or b"{}")
            if not isinstance(doc, dict):
                raise EngineError(f"keyed state file {self._path} must hold a JSON object")
            self._data, self._stamp = doc, stamp
        return self._data

    def _write(self, data: dict[str, Any]) -> None:
        if self._path is None:
            self._data = data
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self._path)
        self._data, self._stamp = data, None  # re-stat on the next read

    def __repr__(self) -> str:
        return f"<KeyedStateStore {self._path or 'memory'}>"
