"""End to end through the real daemon subprocess: a conf group with a token in ``etc/sources/httppush.toml``, a
stream and rule created over REST, clients pushing to ``http://127.0.0.1:<httpServerPort>/api/data`` and the rows
reaching a file sink; the port is free again once the rule stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from tests.daemon_process import free_port, running_daemon, wait_for, write_etc
from tests.io.websocket.test_data_server import refused

pytestmark = pytest.mark.slow

TOKEN = "d43mon-push-token"


def _lines(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def test_daemon_takes_pushed_bodies_on_its_data_server(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "data" / "files" / "pushed.jsonl"  # inside the default file root
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    (etc / "sources" / "httppush.toml").write_text(
        f'[default]\nmethod = "POST"\n\n[devices]\nmethod = "PUT"\ntoken = "{TOKEN}"\nmaxMessageSize = 4096\n'
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery, running_daemon(nursery, etc, tmp_path / "data") as daemon:
            async with daemon.client() as rest:
                stream = (
                    'CREATE STREAM dev () WITH (TYPE="httppush", CONF_KEY="devices", DATASOURCE="/api/data")'
                )
                assert (await rest.post("/streams", json={"sql": stream})).status_code == 201
                rule = {
                    "id": "push",
                    "sql": "SELECT t, meta(method) AS m FROM dev WHERE t > 0",
                    "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}],
                }
                resp = await rest.post("/rules", json=rule)
                assert resp.status_code == 201, resp.text

                async def running() -> bool:
                    return bool((await rest.get("/rules/push/status")).json()["status"] == "running")

                await wait_for(running)
                url = f"http://127.0.0.1:{port}/api/data"
                auth = {"authorization": f"Bearer {TOKEN}"}
                async with httpx.AsyncClient(timeout=10) as http:
                    assert (await http.put(url, content=b'{"t": 1}')).status_code == 401
                    assert (await http.post(url, content=b'{"t": 1}', headers=auth)).status_code == 405
                    assert (await http.put(url, content=b"x" * 5000, headers=auth)).status_code == 413
                    for t in (1, 0, 2):
                        body = orjson.dumps([{"t": t}, {"t": t + 10}])
                        assert (await http.put(url, content=body, headers=auth)).status_code == 200
                    assert (await http.put(f"{url}?token={TOKEN}", content=b'{"t": 3}')).status_code == 200

                async def written() -> bool:
                    return len(_lines(out)) == 6

                await wait_for(written)
                assert [row["t"] for row in _lines(out)] == [1, 11, 10, 2, 12, 3]
                assert {row["m"] for row in _lines(out)} == {"PUT"}
                status = (await rest.get("/rules/push/status")).json()
                assert status["source_dev_0_records_in_total"] == 7
                assert status["source_dev_0_connection_status"] == 1
                # The REST API shows the conf group with its token masked, and refuses a bad one before saving it.
                groups = (await rest.get("/metadata/sources/yaml/httppush")).json()
                assert groups["devices"]["method"] == "PUT" and TOKEN not in str(groups)
                bad = await rest.put("/metadata/sources/httppush/confKeys/g2", json={"method": "GET"})
                assert bad.status_code == 400 and "must be POST or PUT" in bad.text
                assert (await rest.post("/rules/push/stop")).status_code == 200
                assert await refused(port)
                assert TOKEN.encode() not in daemon.output
            await daemon.terminate()
