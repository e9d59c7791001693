"""Tests for runtime/store/files.py: atomic replacement of files and the JSON object store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.store import files as store
from runtime.store.files import JsonStore, atomic_write


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "catalog.json"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write(target, b"second, longer content")
    assert target.read_bytes() == b"second, longer content"
    atomic_write(target, b"")
    assert target.read_bytes() == b""
    assert os.listdir(target.parent) == ["catalog.json"]


def test_new_file_is_readable_and_existing_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "conf.toml"
    atomic_write(target, b"a")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o600)
    atomic_write(target, b"b")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_failure_midway_keeps_old_content_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "catalog.json"
    atomic_write(target, b"old content")

    # The disk fails after the new bytes were written to the temporary file but before the rename.
    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(target, b"new content that never lands")
    monkeypatch.undo()

    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["catalog.json"]


def test_failure_of_the_rename_keeps_old_content(tmp_path: Path) -> None:
    # Replacing a directory with a file fails in os.replace, the last step: nothing may be left behind.
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert (target / "inside").read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_json_store_round_trip(tmp_path: Path) -> None:
    store = JsonStore(tmp_path / "store.json")
    assert store.load() == {}
    value = {"streams": {"demo": {"sql": 'CREATE STREAM demo () WITH (TYPE="memory")'}}, "n": 3, "ok": True}
    store.save(value)
    assert store.load() == value
    store.save({"n": 4})
    assert store.load() == {"n": 4}
    assert JsonStore(tmp_path / "store.json").load() == {"n": 4}
    assert repr(store) == f"<JsonStore {str(tmp_path / 'store.json')!r}>"
    assert os.listdir(tmp_path) == ["store.json"]


@pytest.mark.parametrize("content", [b'{"streams": {"a": 1}', b"", b"\x00\x01garbage"])
def test_json_store_corrupt_file_raises_and_is_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        JsonStore(path).load()
    assert info.value.message.startswith(f"{path}: invalid JSON: ")
    assert path.read_bytes() == content


def test_json_store_rejects_non_object(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(b"[1, 2]")
    with pytest.raises(ConfigError) as info:
        JsonStore(path).load()
    assert info.value.message == f"{path}: expected a JSON object, got list"


def test_json_store_unserializable_value_leaves_file_untouched(tmp_path: Path) -> None:
    store = JsonStore(tmp_path / "store.json")
    store.save({"a": 1})
    with pytest.raises(ConfigError, match=r"cannot store value"):
        store.save({"a": object()})
    assert store.load() == {"a": 1}


def test_a_foreign_temp_file_with_the_name_we_draw_is_left_alone(tmp_path: Path) -> None:
    # Another process (or a dead one) holds the temp name this process draws next: it may be mid-write, so the
    # write picks the following name and never touches that file.
    target = tmp_path / "rule.json"
    seq = next(store._TMP_SEQ) + 1
    foreign = tmp_path / f".rule.json.{store._tmp_token}-{seq}.tmp"
    foreign.write_bytes(b"someone else's")
    atomic_write(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert foreign.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == sorted(["rule.json", foreign.name])


def test_forked_children_draw_their_own_temp_names() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its token and leaves at once
        os.write(write_end, store._tmp_token.encode())
        os._exit(0)
    os.close(write_end)
    child_token = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_token and child_token != store._tmp_token
