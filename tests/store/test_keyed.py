"""The engine's keyed state store: in memory, or a JSON file that other processes replace atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime.config import load_config
from runtime.engine import Engine
from runtime.errors import EngineError
from runtime.store.keyed import KEYED_STATE_FILE, KeyedStateStore


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

    # Another process replaces the file (write a temporary file, rename it over): the store sees it, even
    # with the same mtime and size, by the new inode.
    tmp = path.with_name("writer.tmp")
    tmp.write_bytes(orjson.dumps({"temp": 30, "mode": "eco"}))
    os.replace(tmp, path)
    assert (store.get("temp"), store.get("mode")) == (30, "eco")

    path.write_bytes(b"[1, 2]")
    with pytest.raises(EngineError, match="must hold a JSON object"):
        store.get("temp")


def test_a_replacement_with_the_same_mtime_and_size_is_seen(tmp_path: Path) -> None:
    path = tmp_path / KEYED_STATE_FILE
    path.write_bytes(b'{"k": 1}')
    store = KeyedStateStore(path)
    assert store.get("k") == 1
    st = path.stat()
    tmp = path.with_name("writer.tmp")
    tmp.write_bytes(b'{"k": 2}')
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, same size: only the inode differs
    os.replace(tmp, path)
    assert store.get("k") == 2


def test_a_broken_file_is_parsed_once_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / KEYED_STATE_FILE
    path.write_bytes(b'{"k": 1}')
    store = KeyedStateStore(path)
    assert store.get("k") == 1
    path.write_bytes(b"{not json")
    reads: list[Path] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    for _ in range(3):
        with pytest.raises(EngineError, match="not valid JSON"):
            store.get("k")
    assert len(reads) == 1  # the stamp is taken before parsing: a bad file is not re-read per event
    path.write_bytes(b'{"k": 3}')
    assert store.get("k") == 3


@pytest.mark.parametrize("make_bad", ["directory", "symlink loop"])
def test_an_unreadable_file_is_an_engine_error(tmp_path: Path, make_bad: str) -> None:
    # Both fail with an OSError even for root (chmod 0 would not stop root from reading).
    path = tmp_path / KEYED_STATE_FILE
    if make_bad == "directory":
        path.mkdir()
    else:
        path.symlink_to(path)
    with pytest.raises(EngineError, match="keyed state file"):
        KeyedStateStore(path).get("k")


def test_lookups_with_a_clock_stat_at_most_once_per_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / KEYED_STATE_FILE
    path.write_bytes(b'{"k": 1}')
    store = KeyedStateStore(path)
    stats: list[object] = []
    real = os.stat

    def counting(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if target == path:
            stats.append(target)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    assert [store.get("k", now) for now in (0, 10, 500, 999)] == [1, 1, 1, 1]
    assert len(stats) == 1
    path.write_bytes(b'{"k": 22}')
    assert store.get("k", 999) == 1  # not looked at yet
    assert store.get("k", 1000) == 22
    assert len(stats) == 2


def test_delete_removes_a_key_holding_null(tmp_path: Path) -> None:
    store = KeyedStateStore(tmp_path / KEYED_STATE_FILE)
    store.put("n", None)
    assert store.get("n") is None
    store.delete("n")
    with pytest.raises(KeyError):
        store.get("n")
    assert orjson.loads((tmp_path / KEYED_STATE_FILE).read_bytes()) == {}


def test_the_engine_keeps_its_store_in_its_data_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    engine = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data")
    engine.services.keyed_state.put("k", 1)
    assert orjson.loads((tmp_path / "data" / KEYED_STATE_FILE).read_bytes()) == {"k": 1}
