"""``TYPE="httppush"`` through a real Engine and the builtin registry: many concurrent clients, the data server's
lifetime, malformed bodies, and flow control against a rule whose sink is held (``block``: requests wait;
``dropNewest``: 503 and exact accounting of what was taken)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from runtime.config import load_config
from runtime.engine import Engine
from runtime.io.contract import Sink, SinkSpec
from runtime.io.registry import Registry
from runtime.model import Row
from tests.io.websocket.test_data_server import connect, refused

CLIENTS = 50
REQUESTS = 20  # per client
ROWS = 5  # per request


class _GatedSink:
    """Holds every write until the test opens the gate; records what it got."""

    def __init__(self, gate: trio.Event, got: list[Row]) -> None:
        self._gate, self._got = gate, got

    async def open(self) -> None:
        pass

    async def write(self, data: Row | list[Row]) -> None:
        await self._gate.wait()
        self._got.extend(data if isinstance(data, list) else [data])

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def gated(tmp_path: Path, registry: Registry) -> AsyncIterator[tuple[Engine, trio.Event, list[Row]]]:
    gate, got = trio.Event(), []

    def factory(spec: SinkSpec) -> Sink:
        return _GatedSink(gate, got)

    registry.register_sink("gated", factory)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "oort.toml").write_text('[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = 0\n')
    engine = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        engine.create_stream("stream", 'CREATE STREAM feed () WITH (TYPE="httppush", DATASOURCE="/in")')
        yield engine, gate, got
        nursery.cancel_scope.cancel()


def _rule(rule_id: str = "r", *, buffer: int = 1024, policy: str = "block", sql: str = "") -> dict[str, Any]:
    return {
        "id": rule_id,
        "sql": sql or "SELECT c, q, i FROM feed",
        "actions": [{"gated": {"sendSingle": True}}],
        "options": {"bufferLength": buffer, "bufferFullPolicy": policy},
    }


def _body(client: int, request: int) -> bytes:
    return b"[" + b",".join(b'{"c": %d, "q": %d, "i": %d}' % (client, request, i) for i in range(ROWS)) + b"]"


async def _wait_rows(got: list[Row], count: int) -> None:
    while len(got) < count:
        await trio.testing.wait_all_tasks_blocked()


async def test_fifty_concurrent_clients_lose_and_duplicate_nothing(
    gated: tuple[Engine, trio.Event, list[Row]],
) -> None:
    engine, gate, got = gated
    gate.set()
    with trio.fail_after(60):
        await engine.create_rule(_rule())
        await engine.wait_status("r", "running")
        url = f"http://127.0.0.1:{engine.services.data_server.port}/in"
        statuses: list[int] = []

        async def client(c: int) -> None:
            async with httpx.AsyncClient(timeout=30) as http:  # its own connection, kept alive throughout
                for q in range(REQUESTS):
                    statuses.append((await http.post(url, content=_body(c, q))).status_code)

        async with trio.open_nursery() as nursery:
            for c in range(CLIENTS):
                nursery.start_soon(client, c)
        assert statuses == [200] * (CLIENTS * REQUESTS)
        total = CLIENTS * REQUESTS * ROWS
        await _wait_rows(got, total)
        assert len(got) == total
        assert {(r["c"], r["q"], r["i"]) for r in got} == {
            (c, q, i) for c in range(CLIENTS) for q in range(REQUESTS) for i in range(ROWS)
        }
        for c in range(CLIENTS):  # one client's requests arrive in the order it sent them
            mine = [(r["q"], r["i"]) for r in got if r["c"] == c]
            assert mine == sorted(mine)
        status = engine.rule_status("r")
        assert status["source_feed_0_records_in_total"] == total
        assert status["source_feed_0_exceptions_total"] == 0
        assert status["source_feed_0_connection_status"] == 1
        assert engine.services.data_server.budget.used == 0


async def test_a_malformed_body_is_400_counted_and_the_next_one_flows(
    gated: tuple[Engine, trio.Event, list[Row]],
) -> None:
    engine, gate, got = gated
    gate.set()
    with trio.fail_after(20):
        await engine.create_rule(_rule(sql="SELECT *, meta(method) AS m, meta(path) AS p FROM feed"))
        await engine.wait_status("r", "running")
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{engine.services.data_server.port}/in"
            bad = await http.post(url, content=b'{"c": 1,')
            assert bad.status_code == 400 and bad.text.startswith("cannot decode the body: invalid JSON")
            not_rows = await http.post(url, content=b"[1, 2]")
            assert not_rows.status_code == 400
            assert not_rows.text == (
                "cannot decode the body: expected a JSON object or an array of objects, "
                "got an array with a non-object element"
            )
            assert (await http.post(url, content=b'{"c": 2}')).status_code == 200
        await _wait_rows(got, 1)
        assert got == [{"c": 2, "m": "POST", "p": "/in"}]
        status = engine.rule_status("r")
        assert status["status"] == "running"
        assert status["source_feed_0_exceptions_total"] == 2
        assert "httppush /in: expected a JSON object" in status["source_feed_0_last_exception"]


async def test_the_port_is_bound_while_a_push_or_websocket_server_rule_runs(
    gated: tuple[Engine, trio.Event, list[Row]],
) -> None:
    engine, gate, _ = gated
    gate.set()
    engine.create_stream("stream", 'CREATE STREAM ws () WITH (TYPE="websocket", DATASOURCE="/ws")')
    hub = engine.services.data_server
    with trio.fail_after(20):
        await engine.create_rule(_rule("push"))
        await engine.create_rule({"id": "sock", "sql": "SELECT * FROM ws", "actions": [{"nop": {}}]})
        await engine.wait_status("push", "running")
        await engine.wait_status("sock", "running")
        port = hub.port
        await engine.stop_rule("push")
        assert not await refused(port)
        async with httpx.AsyncClient() as http:
            gone = await http.post(f"http://127.0.0.1:{port}/in", content=b"{}")
            assert gone.status_code == 404  # the websocket rule keeps the server; nobody serves /in now
        async with connect(port, "/ws"):
            pass
        await engine.stop_rule("sock")
        assert await refused(port) and not hub.running
        await engine.start_rule("push")
        await engine.wait_status("push", "running")
        assert hub.running and not await refused(hub.port)
        await engine.stop_rule("push")
        assert await refused(hub.port) and not hub.running


async def test_block_makes_requests_wait_until_the_rule_drains(
    gated: tuple[Engine, trio.Event, list[Row]],
) -> None:
    engine, gate, got = gated
    with trio.fail_after(30):
        await engine.create_rule(_rule(buffer=1))
        await engine.wait_status("r", "running")
        hub = engine.services.data_server
        url = f"http://127.0.0.1:{hub.port}/in"
        done: list[int] = []

        async def post_all() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                for q in range(10):
                    done.append((await http.post(url, content=_body(0, q))).status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_all)
            endpoint = hub.push_routes.get("/in")
            assert endpoint is not None
            while not endpoint.pushers[0].pending:  # a request waits on the rule's full buffer
                await trio.testing.wait_all_tasks_blocked()
            waiting_at = len(done)
            assert waiting_at < 10
            await trio.testing.wait_all_tasks_blocked()
            assert len(done) == waiting_at  # nothing drains while the sink is held: the request keeps waiting
            assert got == []
            gate.set()
        assert done == [200] * 10
        await _wait_rows(got, 10 * ROWS)
        assert [(r["q"], r["i"]) for r in got] == [(q, i) for q in range(10) for i in range(ROWS)]


async def test_drop_newest_answers_503_and_what_was_accepted_is_exactly_what_arrives(
    gated: tuple[Engine, trio.Event, list[Row]],
) -> None:
    engine, gate, got = gated
    with trio.fail_after(30):
        await engine.create_rule(_rule(buffer=1, policy="dropNewest"))
        await engine.wait_status("r", "running")
        url = f"http://127.0.0.1:{engine.services.data_server.port}/in"
        accepted: list[int] = []
        refused_at: list[int] = []
        async with httpx.AsyncClient() as http:
            for q in range(
                40
            ):  # the held sink, the operator and the buffer hold a few; then the buffer is full
                answer = await http.post(url, content=_body(0, q))
                assert answer.status_code in (200, 503)
                (accepted if answer.status_code == 200 else refused_at).append(q)
                if answer.status_code == 503:
                    assert "busy (its buffer is full)" in answer.text
                await trio.testing.wait_all_tasks_blocked()  # let the rule take what it can
        assert refused_at and len(accepted) < 10
        gate.set()
        await _wait_rows(got, len(accepted) * ROWS)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted({r["q"] for r in got}) == accepted
        assert len(got) == len(accepted) * ROWS
        status = engine.rule_status("r")
        assert status["source_feed_0_records_dropped_total"] == 0  # refused and told, never silently dropped
