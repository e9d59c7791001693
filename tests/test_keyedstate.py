"""The engine's keyed state store: in memory, or a JSON file that other processes replace atomically."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from runtime.config import load_config
from runtime.engine import Engine
from runtime.errors import EngineError
from runtime.keyedstate import KEYED_STATE_FILE, KeyedStateStore


def test_memory_store_puts_gets_and_deletes() -> None:
    store = KeyedStateStore()
    with pytest.raises(KeyError):
        store.get("a")
    store.put("a", {"x": 1})
    assert store.get("a") == {"x": 1}
    store.delete("a")
    with pytest.raises(KeyError):
        store.get("a")


def test_file_store_sees_external_replacements_and_persists_puts(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEYED_STATE_FILE
    store = KeyedStateStore(path)
    with pytest.raises(KeyError):
        store.get("temp")  # no file yet: empty
    store.put("temp", 21.5)
    assert orjson.loads(path.read_bytes()) == {"temp": 21.5}
    assert KeyedStateStore(path).get("temp") == 21.5  # another engine (or a restart) reads it back

    # Another process replaces the file (write a temporary file, rename it over): the store sees it.
    tmp = path.with_name("writer.tmp")
    tmp.write_bytes(orjson.dumps({"temp": 30, "mode": "eco"}))
    os.replace(tmp, path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a distinct mtime, however fast the fs
    assert (store.get("temp"), store.get("mode")) == (30, "eco")

    path.write_bytes(b"[1, 2]")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000))
    with pytest.raises(EngineError, match="must hold a JSON object"):
        store.get("temp")


def test_the_engine_keeps_its_store_in_its_data_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    engine = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data")
    engine.services.keyed_state.put("k", 1)
    assert orjson.loads((tmp_path / "data" / KEYED_STATE_FILE).read_bytes()) == {"k": 1}
