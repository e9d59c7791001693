"""End to end: the real daemon subprocess, REST, a memory stream, a rule with a file sink, and a restart."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest
import trio

from tests.daemon_process import start_daemon, wait_for, write_etc

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

STREAM = 'CREATE STREAM s (temperature FLOAT, id STRING) WITH (TYPE="memory", DATASOURCE="devices/s")'
SQL = "SELECT temperature * 2 AS t2, id FROM s WHERE temperature > 20"


def _lines(path: Path) -> list[object]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def test_stream_rule_file_sink_survive_restart(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    out = data / "files" / "out" / "hot.jsonl"  # inside the default file root
    rule = {
        "id": "r1",
        "sql": SQL,
        "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}],
    }
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, etc, data)
        async with daemon.client() as http:
            assert (await http.get("/ping")).status_code == 200
            resp = await http.post("/streams", json={"sql": STREAM})
            assert resp.status_code == 201, resp.text
            assert resp.text == "Stream s is created."
            resp = await http.post("/rules", json=rule)
            assert resp.status_code == 201, resp.text
            rows = [
                {"temperature": 25, "id": "a"},
                {"temperature": 10, "id": "b"},
                {"temperature": 30.5, "id": "c"},
            ]
            resp = await http.post("/memory/devices/s", json=rows)
            assert resp.status_code == 200, resp.text

            async def two_lines() -> bool:
                return len(_lines(out)) >= 2

            with trio.fail_after(10):
                await wait_for(two_lines)
            assert _lines(out) == [{"t2": 50, "id": "a"}, {"t2": 61.0, "id": "c"}]
            status = (await http.get("/rules/r1/status")).json()
            assert status["status"] == "running"
            assert status["source_s_0_records_in_total"] == 3
            assert status["op_2_filter_0_records_out_total"] == 2
            assert status["sink_file_0_0_records_out_total"] == 2
        with trio.fail_after(2):
            assert await daemon.terminate() == 0

        # Same data directory: the stream and the rule come back, the rule running.
        daemon = await start_daemon(nursery, etc, data)
        async with daemon.client() as http:
            assert (await http.get("/streams")).json() == ["s"]
            assert (await http.get("/rules/r1")).json()["sql"] == SQL

            async def running() -> bool:
                return bool((await http.get("/rules/r1/status")).json()["status"] == "running")

            with trio.fail_after(10):
                await wait_for(running)
            await http.post("/memory/devices/s", json={"temperature": 21, "id": "d"})

            async def three_lines() -> bool:
                return len(_lines(out)) >= 3

            with trio.fail_after(10):
                await wait_for(three_lines)
            assert _lines(out)[-1] == {"t2": 42, "id": "d"}
        with trio.fail_after(2):
            assert await daemon.terminate() == 0


async def test_bad_etc_files_are_reported_and_the_rest_loads(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    (etc / "streams").mkdir()
    (etc / "streams" / "01_good.sql").write_text(
        '-- a comment\nCREATE STREAM good () WITH (TYPE="memory", DATASOURCE="good");\n'
        'CREATE TABLE t1 () WITH (TYPE="memory", DATASOURCE="t1", KEY="id");\n'
    )
    (etc / "streams" / "02_bad.sql").write_text("CREATE STREAM bad (\n  a BIGINT\n  b STRING) WITH ();")
    (etc / "rules").mkdir()
    (etc / "rules" / "good.json").write_text(
        orjson.dumps({"id": "g", "sql": "SELECT * FROM good", "actions": [{"nop": {}}]}).decode()
    )
    (etc / "rules" / "bad.json").write_text("{not json")
    (etc / "rules" / "toml_rule.toml").write_text(
        'id = "tr"\nsql = "SELECT * FROM good"\n[[actions]]\n[actions.log]\n'
    )
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, etc, tmp_path / "data")
        async with daemon.client() as http:
            assert (await http.get("/streams")).json() == ["good"]
            assert (await http.get("/tables")).json() == ["t1"]
            rules = {r["id"]: r["status"] for r in (await http.get("/rules")).json()}
            assert rules == {"g": "running", "tr": "running"}
        with trio.fail_after(2):
            assert await daemon.terminate() == 0
    text = daemon.output.decode()
    assert "02_bad.sql" in text and "line 3" in text
    assert "bad.json" in text


async def test_rest_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    taken = trio.socket.socket()
    await taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    etc = write_etc(tmp_path / "etc")
    (etc / "oort.toml").write_text(f'[basic]\nrestIp = "127.0.0.1"\nrestPort = {port}\n')
    with trio.fail_after(20), taken:
        result = await trio.run_process(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(tmp_path / "data")],
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot bind 127.0.0.1:{port}" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


async def test_bad_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "oort.toml").write_text('[basic]\nrestPot = 1\n[source]\nhttpServerPort = "10081"\n')
    with trio.fail_after(20):
        result = await trio.run_process(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(tmp_path / "data")],
            capture_stderr=True,
            check=False,
        )
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "basic.restPot" in err and "source.httpServerPort: expected int, got str" in err


async def test_rest_stop_shuts_the_daemon_down(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, etc, tmp_path / "data")
        async with daemon.client() as http:
            resp = await http.post("/stop")
            assert resp.text == "stop success"
        with trio.fail_after(2):
            assert await daemon.process.wait() == 0
