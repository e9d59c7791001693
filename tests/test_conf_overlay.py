"""Conf group changes over REST land in the data dir, layered over etc/: the shipped files stay byte for byte
(comments included), reads show the merged view, rules use it, and it survives a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio

from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow

REPO_ETC = Path(__file__).resolve().parent.parent / "etc"


async def test_rest_changes_never_rewrite_etc(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    shutil.copy(REPO_ETC / "sources" / "websocket.toml", etc / "sources" / "websocket.toml")
    shipped = (etc / "sources" / "websocket.toml").read_bytes()
    assert b"#" in shipped  # the shipped file is commented: a rewrite would lose that
    (etc / "sources" / "memory.toml").write_text(
        "# shipped\n[default]\nbufferLength = 1\n\n[old]\nbufferLength = 2\n"
    )
    memory_shipped = (etc / "sources" / "memory.toml").read_bytes()
    data = tmp_path / "data"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                put = await http.put(
                    "/metadata/sources/websocket/confKeys/mine", json={"addr": "127.0.0.1:1"}
                )
                assert put.status_code == 200, put.text
                assert (
                    await http.put("/metadata/sources/memory/confKeys/old", json={"bufferLength": 5})
                ).status_code == 200
                assert (
                    await http.put("/metadata/sources/memory/confKeys/new", json={"bufferLength": 6})
                ).status_code == 200
                assert (await http.delete("/metadata/sources/memory/confKeys/default")).status_code == 200
                groups = (await http.get("/metadata/sources/yaml/memory")).json()
                assert groups == {"old": {"bufferLength": 5}, "new": {"bufferLength": 6}}
                ws = (await http.get("/metadata/sources/yaml/websocket")).json()
                assert ws["mine"] == {"addr": "127.0.0.1:1"} and "default" in ws
            await daemon.terminate()
            assert (etc / "sources" / "websocket.toml").read_bytes() == shipped
            assert (etc / "sources" / "memory.toml").read_bytes() == memory_shipped
            assert (data / "conf" / "sources" / "memory.toml").is_file()
            # After a restart the same merged view, still from the data dir.
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                groups = (await http.get("/metadata/sources/yaml/memory")).json()
                assert groups == {"old": {"bufferLength": 5}, "new": {"bufferLength": 6}}
                # A deleted shipped group can be made again.
                assert (
                    await http.put("/metadata/sources/memory/confKeys/default", json={})
                ).status_code == 200
                assert "default" in (await http.get("/metadata/sources/yaml/memory")).json()
            await daemon.terminate()
    assert (etc / "sources" / "memory.toml").read_bytes() == memory_shipped
