"""Management endpoints against the real engine and REST server: details, schema, validate, topo, tags, bulk,
ruleset export/import, v2 status and Prometheus metrics."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import orjson
import trio
import trio.testing

from tests.api.harness import IO_TIMEOUT, JSON_TYPE, Api, running_api
from tests.io.websocket.client_peer import Peer
from tests.tls_certs import Certs

STREAM = (
    'CREATE STREAM demo (size BIGINT, color STRING) WITH (TYPE="memory", DATASOURCE="demo", FORMAT="JSON")'
)
TABLE = 'CREATE TABLE look () WITH (TYPE="memory", DATASOURCE="look", KIND="lookup", KEY="id")'


def _rule(rule_id: str, **extra: object) -> dict[str, object]:
    return {
        "id": rule_id,
        "sql": "SELECT color FROM demo WHERE size > 3",
        "actions": [{"nop": {}}],
        **extra,
    }


async def _setup(api: Api) -> None:
    assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
    assert (await api.client.post("/tables", json={"sql": TABLE})).status_code == 201


async def test_details_schema_and_table_kind_filter(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        http = api.client
        assert (await http.get("/streamdetails")).json() == [
            {"name": "demo", "type": "memory", "format": "json"}
        ]
        assert (await http.get("/tabledetails?kind=lookup")).json()[0]["name"] == "look"
        assert (await http.get("/tables?kind=lookup")).json() == ["look"]
        assert (await http.get("/tables?kind=scan")).json() == []
        schema = (await http.get("/streams/demo/schema")).json()
        assert schema == {"size": {"type": "bigint"}, "color": {"type": "string"}}
        missing = await http.get("/streams/nope/schema")
        assert missing.status_code == 404


async def test_validate_rule(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        ok = await api.client.post("/rules/validate", json=_rule("v1"))
        assert ok.status_code == 200
        assert ok.json() == {"sources": ["demo"], "valid": True}
        bad = await api.client.post("/rules/validate", json={"id": "v2", "sql": "SELECT * FROM demo"})
        assert bad.status_code == 422
        assert bad.text == "Missing rule actions."
        unknown = await api.client.post("/rules/validate", json=_rule("v3", sql="SELECT * FROM nowhere"))
        assert unknown.status_code == 422 and "nowhere" in unknown.text
        assert (
            await api.client.post("/rules/validate", content=b"{oops", headers=JSON_TYPE)
        ).status_code == 400
        assert (await api.client.get("/rules")).json() == [], "validation creates nothing"


async def test_topo_status_v2_and_metrics_after_data(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        http = api.client
        assert (await http.post("/rules", json=_rule("r1"))).status_code == 201
        rows = [
            {"size": s, "color": c} for s, c in [(3, "red"), (6, "blue"), (2, "blue"), (4, "y"), (1, "r")]
        ]
        await http.post("/memory/demo", json=rows)
        await trio.testing.wait_all_tasks_blocked()
        topo = (await http.get("/rules/r1/topo")).json()
        assert topo == {
            "sources": ["source_demo"],
            "edges": {
                "source_demo": ["op_2_filter"],
                "op_2_filter": ["op_3_project"],
                "op_3_project": ["sink_nop_0"],
            },
        }
        status = (await http.get("/v2/rules/r1/status")).json()
        assert status["source_demo_0_records_in_total"] == 5
        assert status["op_2_filter_0_records_out_total"] == 2
        assert status["sink_nop_0_0_records_in_total"] == 2
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
        assert 'oort_rule_status{rule="r1"} 1' in text
        assert 'oort_rule_count{status="running"} 1' in text
        assert 'oort_op_records_out_total{rule="r1",op="op_2_filter"} 2' in text
        await http.post("/rules/r1/stop")
        assert (await http.get("/rules/r1/topo")).status_code == 400
        assert 'oort_rule_status{rule="r1"} 0' in (await http.get("/metrics")).text


async def test_tags_match_and_bulk(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        http = api.client
        await http.post("/rules", json=_rule("a", tags=["edge", "temp"]))
        await http.post("/rules", json=_rule("b", tags=["edge"]))
        await http.post("/rules", json=_rule("c"))
        assert (await http.request("GET", "/rules/tags/match", json={"tags": ["edge"]})).json() == {
            "rules": ["a", "b"]
        }
        assert (await http.patch("/rules/c/tags", json={"tags": ["edge", "x"]})).status_code == 200
        assert (await http.request("DELETE", "/rules/a/tags", json={"tags": ["edge"]})).status_code == 200
        assert (await http.put("/rules/b/tags", json={"tags": ["only"]})).status_code == 200
        tags = {r["id"]: r["tags"] for r in (await http.get("/rules")).json()}
        assert tags == {"a": ["temp"], "b": ["only"], "c": ["edge", "x"]}
        stopped = (await http.post("/rules/bulkstop", json={"tags": ["edge"]})).json()
        assert stopped == [{"ruleId": "c", "success": True}]
        statuses = {r["id"]: r["status"] for r in (await http.get("/rules")).json()}
        assert statuses == {"a": "running", "b": "running", "c": "stopped"}
        started = (await http.post("/rules/bulkstart", json={"tags": ["x"]})).json()
        assert started == [{"ruleId": "c", "success": True}]
        assert (await http.put("/rules/zz/tags", json={"tags": []})).status_code == 404
        assert (await http.put("/rules/a/tags", json={"nope": 1})).status_code == 400


async def test_ruleset_export_then_import_into_a_fresh_engine(api: Api, tmp_path: Path) -> None:
    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        await api.client.post("/rules", json=_rule("r1", tags=["t"]))
        await api.client.post("/rules", json=_rule("r2", triggered=False))
        exported = (await api.client.post("/ruleset/export")).json()
        assert set(exported) == {"streams", "tables", "rules"}
        assert exported["streams"]["demo"] == STREAM
        assert orjson.loads(exported["rules"]["r1"])["tags"] == ["t"]
        async with running_api(tmp_path / "fresh") as fresh:
            resp = await fresh.client.post(
                "/ruleset/import", json={"content": orjson.dumps(exported).decode()}
            )
            assert resp.status_code == 200, resp.text
            assert resp.text == "imported 1 streams, 1 tables and 2 rules"
            statuses = {r["id"]: r["status"] for r in (await fresh.client.get("/rules")).json()}
            assert statuses == {"r1": "running", "r2": "stopped"}
            # A file import reads inside the file roots: a relative name is taken in the first one.
            path = tmp_path / "fresh" / "data" / "files" / "ruleset.json"
            path.parent.mkdir(parents=True)
            path.write_bytes(orjson.dumps(exported))
            again = await fresh.client.post("/ruleset/import", json={"file": "ruleset.json"})
            assert again.status_code == 200, again.text
            bad = await fresh.client.post("/ruleset/import", json={"content": "{not json"})
            assert bad.status_code == 400


async def test_conf_group_crud_masks_secrets_and_refuses_delete_in_use(api: Api) -> None:
    etc = api.engine.services.conf_overlay  # REST changes land in the data dir, over etc/
    assert etc is not None
    with trio.fail_after(IO_TIMEOUT):
        http = api.client
        resp = await http.put(
            "/metadata/sources/memory/confKeys/feed", json={"bufferLength": 8, "token": "s3"}
        )
        assert resp.status_code == 200, resp.text
        on_disk = tomllib.loads((etc / "sources" / "memory.toml").read_text())
        assert on_disk == {"feed": {"bufferLength": 8, "token": "s3"}}
        view = (await http.get("/metadata/sources/yaml/memory")).json()
        assert view == {"feed": {"bufferLength": 8, "token": "******"}}
        await http.post(
            "/streams",
            json={"sql": 'CREATE STREAM f () WITH (TYPE="memory", DATASOURCE="f", CONF_KEY="feed")'},
        )
        await http.post("/rules", json={"id": "uses", "sql": "SELECT * FROM f", "actions": [{"nop": {}}]})
        refused = await http.delete("/metadata/sources/memory/confKeys/feed")
        assert refused.status_code == 400
        assert "in use by running rule(s): uses" in refused.json()["message"]
        await http.post("/rules/uses/stop")
        assert (await http.delete("/metadata/sources/memory/confKeys/feed")).status_code == 200
        assert tomllib.loads((etc / "sources" / "memory.toml").read_text()) == {}
        assert (await http.delete("/metadata/sources/memory/confKeys/feed")).status_code == 404
        assert (await http.put("/metadata/sources/memory/confKeys/bad.key", json={})).status_code == 400


async def test_patch_configs_log_level(api: Api) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        with trio.fail_after(IO_TIMEOUT):
            assert (await api.client.patch("/configs", json={"debug": True})).status_code == 204
            assert root.level == logging.DEBUG
            assert (await api.client.patch("/configs", json={"logLevel": "error"})).status_code == 204
            assert root.level == logging.ERROR
            assert (await api.client.patch("/configs", json={"logLevel": "loud"})).status_code == 400
    finally:
        root.setLevel(before)


async def test_metrics_parse_with_prometheus_client(api: Api) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with trio.fail_after(IO_TIMEOUT):
        await _setup(api)
        await api.client.post("/rules", json=_rule("p1"))
        await api.client.post("/memory/demo", json=[{"size": 9, "color": "c"}])
        await trio.testing.wait_all_tasks_blocked()
        text = (await api.client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["oort_rule_status"].samples[0].labels == {"rule": "p1"}
    # prometheus_client strips the _total suffix from counter family names
    sink_in = families["oort_sink_records_in"].samples
    assert [(s.labels["op"], s.value) for s in sink_in if s.name.endswith("_total")] == [("sink_nop_0", 1.0)]


async def test_connection_test_dials_websocket_client_mode(api: Api, certs: Certs) -> None:
    peer = Peer()
    async with trio.open_nursery() as nursery:
        await peer.start(nursery)
        with trio.fail_after(IO_TIMEOUT):
            ok = await api.client.post(
                "/metadata/sources/connection/websocket",
                json={"addr": f"127.0.0.1:{peer.port}", "datasource": "/api/data"},
            )
            assert (ok.status_code, ok.text) == (200, f"connected to ws://127.0.0.1:{peer.port}/api/data")
            wrong_ca = await api.client.post(
                "/metadata/sources/connection/websocket",
                json={
                    "addr": f"wss://127.0.0.1:{peer.port}",
                    "rootCaPath": str(certs.other_ca),
                    "connectTimeout": 1,
                },
            )
            assert wrong_ca.status_code == 400
            await peer.stop()
            refused = await api.client.post(
                "/metadata/sources/connection/websocket",
                json={"addr": f"127.0.0.1:{peer.port}", "connectTimeout": 1},
            )
            assert refused.status_code == 400
            assert refused.json()["message"].startswith(f"cannot connect to ws://127.0.0.1:{peer.port}/")
            server_mode = await api.client.post("/metadata/sources/connection/websocket", json={})
            assert server_mode.status_code == 400
            assert (await api.client.post("/metadata/sources/connection/mqtt", json={})).status_code == 400
        nursery.cancel_scope.cancel()


async def test_conf_checks_and_connection_tests_come_from_the_registry(api: Api) -> None:
    """A connector type plugs its conf check and connection test in through the registry; the REST views
    name no connector type, so a type registered here is served exactly like the built-in websocket."""
    from collections.abc import Mapping
    from typing import Any

    from runtime.clock import Clock
    from runtime.errors import EngineError, PlanError
    from runtime.io.memory.connector import MemorySink, MemorySource
    from runtime.io.services import Services

    def check(props: Mapping[str, Any], where: str) -> None:
        if "speed" not in props:
            raise PlanError(f"{where}: speed is required")

    async def dial(services: Services, clock: Clock, props: Mapping[str, Any]) -> str:
        assert services is api.engine.services
        if props.get("speed") == 0:
            raise EngineError("cannot connect to probe: speed 0")
        return f"probe connected at speed {props['speed']}"

    api.engine.registry.register_source("probe", MemorySource, check_conf=check, test_connection=dial)
    api.engine.registry.register_sink("probe", MemorySink, check_conf=check)
    etc = api.engine.services.conf_overlay  # REST changes land in the data dir, over etc/
    assert etc is not None
    with trio.fail_after(IO_TIMEOUT):
        http = api.client
        for kind in ("sources", "sinks"):
            bad = await http.put(f"/metadata/{kind}/probe/confKeys/k1", json={"other": 1})
            assert bad.status_code == 400
            assert bad.json()["message"] == "probe conf group 'k1': speed is required"
            assert not (etc / kind / "probe.toml").exists()  # nothing is written for a refused group
            good = await http.put(f"/metadata/{kind}/probe/confKeys/k1", json={"speed": 3})
            assert good.status_code == 200, good.text
            assert tomllib.loads((etc / kind / "probe.toml").read_text()) == {"k1": {"speed": 3}}
        ok = await http.post("/metadata/sources/connection/probe", json={"speed": 7})
        assert (ok.status_code, ok.text) == (200, "probe connected at speed 7")
        failed = await http.post("/metadata/sources/connection/probe", json={"speed": 0})
        assert failed.status_code == 400
        assert "cannot connect to probe: speed 0" in failed.json()["message"]
        # Types without a check accept any group; types without a connection test say so.
        assert (await http.put("/metadata/sources/memory/confKeys/k1", json={"x": 1})).status_code == 200
        nope = await http.post("/metadata/sources/connection/memory", json={})
        assert nope.status_code == 400
        assert "connection test is not supported for source type memory" in nope.json()["message"]
