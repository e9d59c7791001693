"""When the data dir refuses a write, a request changes nothing and says why (500), and a daemon that cannot use
its data dir says so in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow


async def test_a_refused_write_leaves_the_rule_as_it_was(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    stream = {"sql": 'CREATE STREAM s (v BIGINT) WITH (TYPE="memory", DATASOURCE="t/s")'}
    rule = {"id": "r", "sql": "SELECT v FROM s", "actions": [{"nop": {}}]}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                assert (await http.post("/streams", json=stream)).status_code == 201
                assert (await http.post("/rules", json=rule)).status_code == 201
                # The rules folder becomes a file: every save or removal in it fails, even for root.
                (data / "rules").rename(data / "rules.away")
                (data / "rules").write_text("in the way")
                for method, url in (
                    ("POST", "/rules/r/stop"),
                    ("DELETE", "/rules/r"),
                    ("PUT", "/rules/r/tags"),
                ):
                    body = {"tags": ["x"]} if method == "PUT" else None
                    resp = await http.request(method, url, json=body)
                    assert resp.status_code == 500, (url, resp.text)
                    assert "rule r" in resp.json()["message"], resp.text
                    status = (await http.get("/rules/r/status")).json()
                    assert status["status"] == "running", (url, status)
                bad_update = {**rule, "sql": "SELECT v * 2 AS w FROM s"}
                assert (await http.put("/rules/r", json=bad_update)).status_code == 500
                assert (await http.get("/rules/r")).json()["sql"] == rule["sql"]
                # Once the folder is back, the same requests work.
                (data / "rules").unlink()
                (data / "rules.away").rename(data / "rules")
                assert (await http.post("/rules/r/stop")).status_code == 200
                assert (await http.get("/rules/r/status")).json()["status"] == "stopped"
            await daemon.terminate()
            # The stop was saved: after a restart the rule stays stopped.
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                assert (await http.get("/rules/r/status")).json()["status"] == "stopped"
            await daemon.terminate()


@pytest.mark.parametrize("bad", ["file/data", "file"])
async def test_an_unusable_data_dir_is_one_line(tmp_path: Path, bad: str) -> None:
    etc = write_etc(tmp_path / "etc")
    (tmp_path / "file").write_text("not a folder")
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(tmp_path / bad)],
            capture_stderr=True,
            check=False,
        )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert lines == [f"oort: data dir {tmp_path / bad} is not usable: {lines[0].rsplit(': ', 1)[1]}"], lines
    assert "Traceback" not in result.stderr.decode()
