"""Ids are matched whole and bounded: a trailing newline or a name longer than a file name allows is a 400 that
says why, never a 500 or a stray file."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from runtime.config import MAX_ID_LENGTH
from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow


async def test_ids_are_matched_whole_and_bounded(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    data = tmp_path / "data"
    long_id = "r" * 251
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                sql = 'CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="t")'
                assert (await http.post("/streams", json={"sql": sql})).status_code == 201
                for rule_id, reason in [
                    ("nl1\n", "invalid characters"),
                    (long_id, f"too long: the limit is {MAX_ID_LENGTH}"),
                ]:
                    rule = {"id": rule_id, "sql": "SELECT * FROM s", "actions": [{"nop": {}}]}
                    resp = await http.post("/rules", json=rule)
                    assert resp.status_code == 400, resp.text
                    assert reason in resp.json()["message"]
                    assert long_id not in resp.text
                long_stream = "s" * (MAX_ID_LENGTH + 1)
                sql = f'CREATE STREAM {long_stream} () WITH (TYPE="memory", DATASOURCE="t")'
                resp = await http.post("/streams", json={"sql": sql})
                assert resp.status_code == 400 and "too long" in resp.json()["message"], resp.text
                resp = await http.put("/metadata/sources/memory/confKeys/k%0A", json={})
                assert resp.status_code == 400, resp.text
                assert "k\n" not in (await http.get("/metadata/sources/yaml/memory")).json()
                assert (await http.get("/rules")).json() == []
                assert (await http.get("/streams")).json() == ["s"]
            await daemon.terminate()
    stray = [p.name for p in data.rglob("*") if "\n" in p.name or len(p.name) > MAX_ID_LENGTH + 10]
    assert stray == []
