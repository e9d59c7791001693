"""The daemon's logs as configured in ``[basic]``: JSON lines on stderr, the REST access log, per-logger levels,
and a size-rotated file, read back from a real daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.daemon_process import free_port, start_daemon, write_etc
from tests.io.websocket.test_data_server import connect

pytestmark = pytest.mark.slow


async def test_json_lines_access_log_and_per_logger_levels(tmp_path: Path) -> None:
    port = free_port()
    etc = write_etc(
        tmp_path / "etc",
        extra_toml='logFormat = "json"\naccessLog = true\nlogLevels = { "oort.websocket" = "debug" }\n'
        f"[source]\nhttpServerPort = {port}\n",
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                assert (await http.get("/ping")).status_code == 200
                assert (await http.get("/rules/nope")).status_code == 404
                sql = 'CREATE STREAM w () WITH (TYPE="websocket", DATASOURCE="/w")'
                assert (await http.post("/streams", json={"sql": sql})).status_code == 201
                rule = {"id": "r", "sql": "SELECT * FROM w", "actions": [{"nop": {}}]}
                assert (await http.post("/rules", json=rule)).status_code == 201
                async with connect(port, "/w") as ws:
                    await ws.send_message('{"a": 1}')
            await daemon.terminate()
    records: list[dict[str, Any]] = [orjson.loads(line) for line in daemon.output.decode().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r["message"] for r in records if r["logger"] == "oort.access"]
    assert any('"GET /ping" 200' in line for line in access), access
    assert any('"GET /rules/nope" 404' in line for line in access), access
    debug = {r["logger"] for r in records if r["level"] == "DEBUG"}
    assert "oort.websocket.server" in debug  # the client's connect and leave, at debug for this logger only
    assert "oort.engine" not in debug  # the rule's own debug lines stay below the info level


async def test_a_size_rotated_log_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "oort.log"
    etc = write_etc(
        tmp_path / "etc",
        extra_toml=f'fileLog = true\nlogFile = "{log}"\nrotateSize = 2048\nrotateCount = 2\naccessLog = true\n',
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                for _ in range(100):
                    assert (await http.get("/ping")).status_code == 200
            await daemon.terminate()
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["oort.log", "oort.log.1", "oort.log.2"]
    assert all(p.stat().st_size <= 2048 for p in log.parent.iterdir())
    assert '"GET /ping" 200' in (log.parent / "oort.log").read_text()
