"""eKuiper's REST flows end to end against the real daemon subprocess, with status codes and bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from tests.api.harness import JSON_TYPE
from tests.daemon_process import start_daemon, wait_for, write_etc

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

STREAM = 'CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (TYPE="memory", DATASOURCE="demo")'
RULE = {
    "id": "r1",
    "sql": "SELECT color, ts FROM demo WHERE size > 3",
    "actions": [{"nop": {}}],
    "tags": ["a"],
}
ROWS = [
    {"color": "red", "size": 3, "ts": 1},
    {"color": "blue", "size": 6, "ts": 2},
    {"color": "blue", "size": 2, "ts": 3},
    {"color": "yellow", "size": 4, "ts": 4},
    {"color": "red", "size": 1, "ts": 5},
]
METRICS = (
    "records_in_total",
    "records_out_total",
    "messages_processed_total",
    "process_latency_us",
    "buffer_length",
    "last_invocation",
    "exceptions_total",
    "last_exception",
    "last_exception_time",
)


async def test_ekuiper_rest_flow(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, etc, tmp_path / "data")
        async with daemon.client() as http:
            with trio.fail_after(30):
                r = await http.post("/streams", json={"sql": STREAM})
                assert (r.status_code, r.text) == (201, "Stream demo is created.")
                r = await http.post("/streams", json={"sql": STREAM})
                assert r.status_code == 400
                assert r.json() == {
                    "error": 3000,
                    "message": "Stream command error: Create stream fails: Item demo already exists.",
                }
                described = (await http.get("/streams/demo")).json()
                assert described["Name"] == "demo" and described["StreamType"] == 0
                assert (await http.get("/streams/demo/schema")).json()["size"] == {"type": "bigint"}
                r = await http.get("/streams/nope")
                assert (r.status_code, r.json()["error"]) == (400, 3000)

                r = await http.post("/rules", json=RULE)
                assert (r.status_code, r.text) == (201, "Rule r1 was created successfully.")
                r = await http.post("/rules", json=RULE)
                assert r.status_code == 400 and r.json() == {
                    "error": 1000,
                    "message": "rule r1 already exists",
                }
                r = await http.post("/rules", content=b"{bad json", headers=JSON_TYPE)
                assert r.status_code == 400 and r.json()["message"].startswith("invalid rule json")
                await http.post("/memory/demo", json=ROWS)

                async def flowed() -> bool:
                    status = (await http.get("/rules/r1/status")).json()
                    return bool(status.get("sink_nop_0_0_records_in_total") == 2)

                await wait_for(flowed)
                status = (await http.get("/rules/r1/status")).json()
                assert list(status)[:5] == [
                    "status",
                    "message",
                    "lastStartTimestamp",
                    "lastStopTimestamp",
                    "nextStartTimestamp",
                ]
                for node in ("source_demo", "op_2_filter", "op_3_project", "sink_nop_0"):
                    for metric in METRICS:
                        assert f"{node}_0_{metric}" in status, f"{node}_0_{metric}"
                assert (
                    status["source_demo_0_records_in_total"],
                    status["op_2_filter_0_records_out_total"],
                ) == (5, 2)
                assert (await http.get("/rules/r1/topo")).json()["sources"] == ["source_demo"]
                explain = (await http.get("/rules/r1/explain")).text.splitlines()
                assert explain[0].startswith('{"op":"ProjectPlan_0"') and "FilterPlan_1" in explain[1]

                r = await http.post("/rules/r1/stop")
                assert (r.status_code, r.text) == (200, "Rule r1 was stopped.")
                assert (await http.get("/rules/r1/status")).json()["status"] == "stopped"
                r = await http.post("/rules/r1/restart")
                assert (r.status_code, r.text) == (200, "Rule r1 was restarted")
                await http.patch("/rules/r1/tags", json={"tags": ["b"]})
                assert (await http.request("GET", "/rules/tags/match", json={"tags": ["a", "b"]})).json() == {
                    "rules": ["r1"]
                }
                assert (await http.post("/rules/bulkstop", json={"tags": ["b"]})).json() == [
                    {"ruleId": "r1", "success": True}
                ]
                assert (await http.post("/rules/bulkstart", json={"tags": ["a"]})).json() == [
                    {"ruleId": "r1", "success": True}
                ]
                r = await http.post("/rules/nope/start")
                assert r.status_code == 404
                assert (
                    r.json()["message"]
                    == "start rule error: Rule nope is not found in registry, please check if it is created"
                )
                r = await http.delete("/rules/nope")
                assert (r.status_code, r.json()["error"]) == (400, 1000)

                exported = (await http.post("/ruleset/export")).json()
                r = await http.delete("/streams/demo")
                assert (r.status_code, r.json()) == (
                    400,
                    {"error": 1000, "message": "stream demo has been referenced by other rules"},
                )
                r = await http.delete("/streams/demo?force=true")
                assert (r.status_code, r.text) == (200, "Stream demo is dropped.")
                assert (await http.delete("/streams/demo")).status_code == 404
            with trio.fail_after(2):
                assert await daemon.terminate() == 0

        fresh = await start_daemon(nursery, write_etc(tmp_path / "etc2"), tmp_path / "data2")
        async with fresh.client() as http:
            with trio.fail_after(30):
                r = await http.post("/ruleset/import", json={"content": json.dumps(exported)})
                assert (r.status_code, r.text) == (200, "imported 1 streams, 0 tables and 1 rules")
                assert [(x["id"], x["status"]) for x in (await http.get("/rules")).json()] == [
                    ("r1", "running")
                ]
            with trio.fail_after(2):
                assert await fresh.terminate() == 0
