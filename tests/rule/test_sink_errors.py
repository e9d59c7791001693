"""eKuiper v2's sink error semantics with a real target that goes away: a websocket client sink whose peer is
stopped and started again. A failed write is counted and dropped; the rule keeps running (no cache here)."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import trio

from tests.io.websocket.client_peer import Peer
from tests.rule.sink_support import STREAM, ids, rule, running_engine, sink_metric, until


async def test_writes_to_a_down_target_are_counted_and_dropped_and_the_rule_goes_on(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, running_engine(tmp_path) as engine:
            peer = Peer()
            await peer.start(nursery)
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("r", peer.port))
            await engine.publish("in", [{"id": 1}])
            await peer.wait_for(lambda: len(peer.received) == 1)

            await peer.stop()
            await until(lambda: sink_metric(engine, "r", "connection_status") != 1)
            await engine.publish("in", [{"id": 2}])
            await engine.publish("in", [{"id": 3}])
            await until(lambda: sink_metric(engine, "r", "exceptions_total") == 2)
            status = engine.rule_status("r")
            assert status["status"] == "running"
            assert status["sink_websocket_0_0_last_exception"] == (
                f"websocket ws://127.0.0.1:{peer.port}/x is not connected"
            )
            assert status["sink_websocket_0_0_buffer_length"] == 0  # dropped, not kept

            await peer.start(nursery)  # same port: the shared client comes back by itself
            await until(lambda: sink_metric(engine, "r", "connection_status") == 1)
            await engine.publish("in", [{"id": 4}])
            await peer.wait_for(lambda: len(peer.received) == 2)
            assert ids(peer.received) == [1, 4]
            status = engine.rule_status("r")
            assert status["status"] == "running"
            assert status["sink_websocket_0_0_records_in_total"] == 4
            assert status["sink_websocket_0_0_records_out_total"] == 2
            assert status["sink_websocket_0_0_exceptions_total"] == 2
            await engine.stop_rule("r")
            await peer.stop()
            nursery.cancel_scope.cancel()


async def test_write_failures_are_logged_at_a_bounded_rate_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(20), caplog.at_level(logging.WARNING, logger="oort.rule.r"):
        async with trio.open_nursery() as nursery, running_engine(tmp_path) as engine:
            peer = Peer()
            await peer.start(nursery)
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("r", peer.port, requestHeaders={"Authorization": "Bearer s3cret"}))
            await engine.publish("in", [{"id": 0}])
            await peer.wait_for(lambda: len(peer.received) == 1)
            await peer.stop()
            await until(lambda: sink_metric(engine, "r", "connection_status") != 1)
            for i in range(1, 21):
                await engine.publish("in", [{"id": i}])
            await until(lambda: sink_metric(engine, "r", "exceptions_total") == 20)
            failures = [r.getMessage() for r in caplog.records if "write failed" in r.getMessage()]
            assert len(failures) == 1  # 20 failures within LOG_EVERY seconds: one line
            assert failures[0] == (
                f"sink_websocket_0: write failed, message dropped: websocket ws://127.0.0.1:{peer.port}/x is not connected"
            )
            assert not any("s3cret" in r.getMessage() for r in caplog.records)
            assert "s3cret" not in orjson.dumps(engine.rule_status("r")).decode()
            nursery.cancel_scope.cancel()
