"""A connector whose host never answers holds up nothing: the REST API opens and rules are created without
waiting for it (its progress shows in the rule's status), and the daemon stops promptly."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import orjson
import pytest
import trio

from runtime.api.server import GRACEFUL_TIMEOUT
from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow

CONNECT_TIMEOUT = 5  # the websocket default: a start that waited for a connection would take at least this


def _rule(rule_id: str, port: int) -> dict[str, object]:
    sink = {"websocket": {"addr": f"127.0.0.1:{port}", "path": f"/{rule_id}"}}
    return {"id": rule_id, "sql": "SELECT v FROM s", "actions": [sink]}


async def test_silent_hosts_delay_neither_start_up_nor_rule_creation(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts TCP (the kernel does) and never answers the handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        etc = write_etc(tmp_path / "etc")
        (etc / "streams").mkdir()
        (etc / "streams" / "s.sql").write_text(
            'CREATE STREAM s (v BIGINT) WITH (TYPE="memory", DATASOURCE="t/s");'
        )
        (etc / "rules").mkdir()
        for rule_id in ("r1", "r2"):
            (etc / "rules" / f"{rule_id}.json").write_bytes(orjson.dumps(_rule(rule_id, port)))
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                began = trio.current_time()
                daemon = await start_daemon(nursery, etc, tmp_path / "data")
                ready = trio.current_time() - began
                async with daemon.client() as http:
                    for rule_id in ("r1", "r2"):
                        status = (await http.get(f"/rules/{rule_id}/status")).json()
                        assert status["status"] == "running", status
                        assert status["sink_websocket_0_0_connection_status"] != 1, status  # still trying
                    began = trio.current_time()
                    assert (await http.post("/rules", json=_rule("r3", port))).status_code == 201
                    created = trio.current_time() - began
                daemon.process.send_signal(signal.SIGTERM)
                began = trio.current_time()
                assert await daemon.process.wait() == 0
                stopped = trio.current_time() - began
    print(f"REST ready {ready:.2f} s, rule created {created:.2f} s, exit {stopped:.2f} s after SIGTERM")
    assert ready < CONNECT_TIMEOUT / 2  # process start included: ~0.7 s here, 10 s when starts waited
    assert created < CONNECT_TIMEOUT / 2
    assert stopped < CONNECT_TIMEOUT / 2


async def test_a_stop_says_which_requests_it_waits_for(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                sql = 'CREATE STREAM s (v BIGINT) WITH (TYPE="memory", DATASOURCE="t/s")'
                assert (await http.post("/streams", json={"sql": sql})).status_code == 201
                async with http.stream("POST", "/query", json={"sql": "SELECT v FROM s"}) as resp:
                    assert resp.status_code == 200  # a query streams until its client leaves
                    daemon.process.send_signal(signal.SIGTERM)
                    assert await daemon.process.wait() == 0
    expected = f"waiting up to {GRACEFUL_TIMEOUT:g} s for 1 REST request(s) in flight".encode()
    assert expected in daemon.output, daemon.output.decode()[-800:]
