"""Every REST endpoint over real HTTP against the real engine: status codes, bodies and eKuiper's error shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from runtime.api.routes import ERRORS
from tests.api.harness import IO_TIMEOUT, JSON_TYPE, Api

STREAM = 'CREATE STREAM demo (temperature FLOAT, id STRING) WITH (TYPE="memory", DATASOURCE="in/demo")'
TABLE = 'CREATE TABLE demo () WITH (TYPE="memory", DATASOURCE="in/t", KEY="id")'
RULE: dict[str, Any] = {
    "id": "r1",
    "sql": "SELECT id, temperature * 2 AS t2 FROM demo WHERE temperature > 20",
    "actions": [{"memory": {"topic": "out/r1"}}],
}


def _error(resp: httpx.Response, status: int, code: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.text.endswith("}\n")  # Go's http.Error newline
    assert resp.json() == {"error": code, "message": message}


def _text(resp: httpx.Response, status: int, body: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == body


async def test_ping_info_cors_and_unknown_routes(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        resp = await api.client.get("/ping")
        assert (resp.status_code, resp.content) == (200, b"")
        assert "access-control-allow-origin" not in resp.headers  # no wildcard CORS (docs/security.md)
        for method in ("GET", "POST"):
            info = await api.client.request(method, "/")
            assert info.status_code == 200
            assert info.headers["content-type"] == "application/json"
            assert {"version", "os", "arch", "upTimeSeconds"} <= info.json().keys()
        preflight = await api.client.options(
            "/rules", headers={"Origin": "http://ui", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 403  # an origin not in basic.allowedOrigins
        assert "access-control-allow-origin" not in preflight.headers
        _error(await api.client.get("/nope/x"), 404, 1002, "no such endpoint: /nope/x")
        resp = await api.client.delete("/rules")
        assert resp.status_code == 405
        assert "DELETE" in resp.json()["message"]
        assert (await api.client.post("/ping")).status_code == 405


@pytest.mark.parametrize(("kind", "ddl"), [("stream", STREAM), ("table", TABLE)])
async def test_stream_and_table_lifecycle(api: Api, kind: str, ddl: str) -> None:
    title, base = kind.capitalize(), f"/{kind}s"
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.get(base)).json() == []
        _text(await api.client.post(base, json={"sql": ddl}), 201, f"{title} demo is created.")
        _error(
            await api.client.post(base, json={"sql": ddl}),
            400,
            3000,
            f"{title} command error: Create {kind} fails: Item demo already exists.",
        )
        bad = await api.client.post(base, json={"sql": "CREATE STREAM (oops"})
        assert bad.status_code == 400 and bad.json()["error"] == 3000
        assert bad.json()["message"].startswith(f"{title} command error: ")
        invalid = await api.client.post(base, content=b"{not json", headers=JSON_TYPE)
        assert invalid.status_code == 400 and invalid.json()["error"] == 1001
        assert invalid.json()["message"].startswith("Invalid body: Error decoding the statement descriptor: ")

        listed = await api.client.get(base)
        assert (listed.status_code, listed.json()) == (200, ["demo"])
        described = await api.client.get(f"{base}/demo")
        assert described.status_code == 200
        assert described.json()["Name"] == "demo"
        assert described.json()["Options"]["datasource"] in ("in/demo", "in/t")
        # eKuiper's quirk: the not-found code is lost by wrapping, so describe answers 400 / 3000.
        _error(
            await api.client.get(f"{base}/nope"),
            400,
            3000,
            f"describe {kind} error: Describe {kind} fails, nope is not found.",
        )

        replacement = ddl.replace('KEY="id"', 'KEY="id2"').replace("id STRING", "id STRING, extra BIGINT")
        _text(
            await api.client.put(f"{base}/demo", json={"sql": replacement}), 200, f"{title} demo is replaced."
        )
        renamed = await api.client.put(f"{base}/other", json={"sql": replacement})
        assert renamed.status_code in (400, 404), renamed.text
        assert renamed.json()["message"].startswith(f"{title} command error: ")

        _text(await api.client.delete(f"{base}/demo"), 200, f"{title} demo is dropped.")
        _error(
            await api.client.delete(f"{base}/demo"),
            404,
            1002,
            f"delete {kind} error: Drop {kind} fails: {kind} demo is not found.",
        )
        assert (await api.client.get(base)).json() == []


async def test_drop_referenced_stream_needs_force(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
        assert (await api.client.post("/rules", json=RULE)).status_code == 201
        _error(
            await api.client.delete("/streams/demo"),
            400,
            1000,
            "stream demo has been referenced by other rules",
        )
        assert (await api.client.delete("/streams/demo?force=false")).status_code == 400
        _text(await api.client.delete("/streams/demo?force=true"), 200, "Stream demo is dropped.")


async def test_rule_crud_and_lifecycle(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
        _text(await api.client.post("/rules", json=RULE), 201, "Rule r1 was created successfully.")
        _error(await api.client.post("/rules", json=RULE), 400, 1000, "rule r1 already exists")
        bad_json = await api.client.post("/rules", content=b'{"id": "r2",', headers=JSON_TYPE)
        assert bad_json.status_code == 400
        assert bad_json.json()["message"].startswith("invalid rule json: ")
        _error(
            await api.client.post("/rules", content=b"[1, 2]", headers=JSON_TYPE),
            400,
            1000,
            "invalid rule json: the rule must be a JSON object",
        )
        _error(
            await api.client.post("/rules", json={"sql": "SELECT * FROM demo", "actions": [{"nop": {}}]}),
            400,
            1000,
            "Missing rule id.",
        )
        unknown = await api.client.post(
            "/rules", json={"id": "r3", "sql": "SELECT * FROM ghost", "actions": [{"nop": {}}]}
        )
        assert unknown.status_code == 400 and "ghost" in unknown.json()["message"]

        rules = (await api.client.get("/rules")).json()
        assert rules == [
            {"id": "r1", "name": "r1", "status": "running", "version": "", "trace": False, "tags": None}
        ]
        stored = await api.client.get("/rules/r1")
        assert stored.status_code == 200 and stored.headers["content-type"] == "application/json"
        assert stored.json()["sql"] == RULE["sql"]
        _error(
            await api.client.get("/rules/ghost"),
            404,
            1002,
            "Describe rule error: Rule ghost is not found in registry, please check if it is created",
        )

        updated = {**RULE, "sql": "SELECT id FROM demo"}
        _text(await api.client.put("/rules/r1", json=updated), 200, "Rule r1 was updated successfully.")
        assert (await api.client.get("/rules/r1")).json()["sql"] == "SELECT id FROM demo"
        _error(
            await api.client.put("/rules/r1", json={**updated, "id": "other"}),
            400,
            1000,
            "Update rule error: RuleId is not consistent with rule id.",
        )

        _text(await api.client.post("/rules/r1/stop"), 200, "Rule r1 was stopped.")
        assert (await api.client.get("/rules/r1/status")).json()["status"] == "stopped"
        _text(await api.client.post("/rules/r1/start"), 200, "Rule r1 was started")
        _text(await api.client.post("/rules/r1/restart"), 200, "Rule r1 was restarted")
        for verb in ("start", "stop", "restart"):
            _error(
                await api.client.post(f"/rules/ghost/{verb}"),
                404,
                1002,
                f"{verb} rule error: Rule ghost is not found in registry, please check if it is created",
            )

        status = await api.client.get("/rules/r1/status")
        assert status.status_code == 200 and status.headers["content-type"] == "application/json"
        assert status.text.startswith('{\n  "status": "running",\n')  # pretty-printed, 2-space indent
        assert status.json()["status"] == "running"
        _error(
            await api.client.get("/rules/ghost/status"),
            404,
            1002,
            "get rule status error: Rule ghost is not found in registry, please check if it is created",
        )
        everything = (await api.client.get("/rules/status/all")).json()
        assert everything == {"r1": {"status": "running", "last_exception": "", "exceptions_total": 0}}

        _text(await api.client.delete("/rules/r1"), 200, "Rule r1 is dropped.")
        # eKuiper answers a missing rule on delete with 400, not 404.
        _error(await api.client.delete("/rules/r1"), 400, 1000, "Delete rule error: rule r1 not found")
        assert (await api.client.get("/rules")).json() == []
        assert (await api.client.get("/rules/status/all")).json() == {}


async def test_put_creates_a_missing_rule(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
        _text(await api.client.put("/rules/r1", json=RULE), 200, "Rule r1 was updated successfully.")
        assert (await api.client.get("/rules/r1/status")).json()["status"] == "running"


async def test_memory_publish_feeds_a_rule_end_to_end(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
        async with api.engine.services.memory.subscribe("out/r1") as out:
            assert (await api.client.post("/rules", json=RULE)).status_code == 201
            rows = [{"temperature": 25, "id": "a"}, {"temperature": 10, "id": "b"}]
            _text(await api.client.post("/memory/in/demo", json=rows), 200, "published 2 rows")
            _text(
                await api.client.post("/memory/in/demo", json={"temperature": 30.5, "id": "c"}),
                200,
                "published 1 rows",
            )
            assert await out.receive() == ("out/r1", [{"id": "a", "t2": 50}])
            assert await out.receive() == ("out/r1", [{"id": "c", "t2": 61.0}])
        status = (await api.client.get("/rules/r1/status")).json()
        assert status["source_demo_0_records_in_total"] == 3


async def test_memory_publish_topic_with_slashes_and_bad_bodies(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with api.engine.services.memory.subscribe("a/b/c") as sub:
            _text(await api.client.post("/memory/a/b/c", json=[{"x": 1}, {"x": 2}]), 200, "published 2 rows")
            assert await sub.receive() == ("a/b/c", [{"x": 1}, {"x": 2}])
        for body in (b"[1, 2]", b'"text"', b"{broken"):
            resp = await api.client.post("/memory/a/b/c", content=body, headers=JSON_TYPE)
            assert resp.status_code == 400 and resp.json()["error"] == 1001, body
        wildcard = await api.client.post("/memory/a/+", json={"x": 1})
        assert wildcard.status_code == 400
        assert wildcard.json()["message"].startswith("publish error: invalid memory topic 'a/+'")
        assert (await api.client.get("/memory/a/b")).status_code == 405


async def test_body_limit_answers_413_before_reading_the_body(api: Api) -> None:
    # A raw socket: the server must answer from the Content-Length alone, without waiting for 16 MiB.
    with trio.fail_after(IO_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", api.port)
        async with stream:
            head = f"POST /memory/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {16 * 1024 * 1024 + 1}\r\n\r\n"
            await stream.send_all(head.encode())
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = await stream.receive_some()
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413 ")
        assert reply.rstrip().endswith(b'{"error":1001,"message":"request body larger than 16777216 bytes"}')


def test_every_error_table_entry_ends_with_a_catch_all() -> None:
    # Without a final EngineError entry an unexpected engine error would lose its endpoint prefix.
    from runtime.errors import EngineError

    for op, mappings in ERRORS.items():
        assert mappings[-1].error is EngineError, op
