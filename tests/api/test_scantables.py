"""``GET /rules/{id}/scantables`` (eKuiper docs api/restapi/streams.md and rules.md) over real HTTP: a running
join rule's scan tables, live."""

from __future__ import annotations

import trio
import trio.testing

from tests.api.harness import IO_TIMEOUT, Api

STREAM = 'CREATE STREAM s (id BIGINT, v FLOAT) WITH (TYPE="memory", DATASOURCE="in")'
TABLE = 'CREATE TABLE dev (id BIGINT, name STRING) WITH (TYPE="memory", DATASOURCE="dev", RETAIN_SIZE="2")'
RULE = {
    "id": "j",
    "sql": "SELECT s.id, dev.name FROM s INNER JOIN dev ON s.id = dev.id",
    "actions": [{"memory": {"topic": "out"}}],
}


async def test_scan_tables_of_a_running_rule(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        for kind, ddl in (("streams", STREAM), ("tables", TABLE)):
            assert (await api.client.post(f"/{kind}", json={"sql": ddl})).status_code == 201
        assert (await api.client.post("/rules", json=RULE)).status_code == 201
        assert (await api.client.get("/rules/j/scantables")).json() == {"dev": []}

        rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
        assert (await api.client.post("/memory/dev", json=rows)).status_code == 200
        await trio.testing.wait_all_tasks_blocked()  # the table's source has applied the batch
        resp = await api.client.get("/rules/j/scantables")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        assert resp.json() == {"dev": [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}]}  # RETAIN_SIZE 2

        assert (await api.client.post("/rules/j/stop")).status_code == 200
        assert (await api.client.get("/rules/j/scantables")).json() == {}  # not running: nothing held

        missing = await api.client.get("/rules/nope/scantables")
        assert missing.status_code == 404
        assert missing.json() == {
            "error": 1002,
            "message": "get rule scan tables error: Rule nope is not found in registry, please check if it is created",
        }


async def test_rule_without_tables_has_none(api: Api) -> None:
    with trio.fail_after(IO_TIMEOUT):
        assert (await api.client.post("/streams", json={"sql": STREAM})).status_code == 201
        rule = {"id": "p", "sql": "SELECT id FROM s", "actions": [{"memory": {"topic": "out"}}]}
        assert (await api.client.post("/rules", json=rule)).status_code == 201
        assert (await api.client.get("/rules/p/scantables")).json() == {}
