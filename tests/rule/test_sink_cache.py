"""The sink cache (``enableCache``) end to end: a websocket client sink whose real peer is stopped and started
again, an engine on a tmp data dir, and the cache's pages under <data>/sinkcache/<rule>/<action>/."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from runtime.errors import PlanError
from tests.io.websocket.client_peer import Peer, free_port
from tests.rule.sink_support import STREAM, ids, rule, running_engine, sink_metric, until

SMALL = {"enableCache": True, "memoryCacheThreshold": 2, "bufferPageSize": 2, "resendInterval": "10ms"}


def _pages(data: Path, rule_id: str) -> list[str]:
    folder = data / "sinkcache" / rule_id / "0"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_cached_rows_arrive_once_and_in_order_after_the_peer_returns(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, running_engine(tmp_path) as engine:
            peer = Peer()
            await peer.start(nursery)
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("r", peer.port, **SMALL))
            await engine.publish("in", [{"id": 1}])
            await peer.wait_for(lambda: len(peer.received) == 1)

            await peer.stop()
            await until(lambda: sink_metric(engine, "r", "connection_status") != 1)
            for i in range(2, 13):
                await engine.publish("in", [{"id": i}])
            # 2 is refused and cached; 3 queues in memory behind it, 4-11 go to disk in pages of two, 12 waits
            # in the page being filled. The buffer length counts them all.
            await until(lambda: sink_metric(engine, "r", "buffer_length") == 11)
            assert len(_pages(tmp_path / "data", "r")) == 4
            status = engine.rule_status("r")
            assert status["status"] == "running"
            assert status["sink_websocket_0_0_exceptions_total"] == 1  # one refused write; the rest queued

            await peer.start(nursery)
            await peer.wait_for(lambda: len(peer.received) == 12)
            await until(lambda: sink_metric(engine, "r", "buffer_length") == 0)
            assert _pages(tmp_path / "data", "r") == []
            await engine.publish("in", [{"id": 13}])  # nothing left to resend: a new row goes straight out
            await peer.wait_for(lambda: len(peer.received) == 13)
            assert ids(peer.received) == list(range(1, 14))
            status = engine.rule_status("r")
            assert status["sink_websocket_0_0_records_in_total"] == 13
            assert status["sink_websocket_0_0_records_out_total"] == 13
            await engine.stop_rule("r")
            await peer.stop()
            nursery.cancel_scope.cancel()


async def test_the_cache_survives_an_engine_restart_unless_clean_cache_at_stop(tmp_path: Path) -> None:
    keep_port, clean_port = free_port(), free_port()
    with trio.fail_after(30):
        async with running_engine(tmp_path) as engine:  # both peers down: every row is cached
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("keep", keep_port, **SMALL))
            await engine.create_rule(rule("clean", clean_port, **SMALL, cleanCacheAtStop=True))
            for i in range(1, 8):
                await engine.publish("in", [{"id": i}])
            await until(lambda: sink_metric(engine, "keep", "buffer_length") == 7)
            await until(lambda: sink_metric(engine, "clean", "buffer_length") == 7)
        # Stopped: memory (1, 2) and the unfilled page (7) were written beside the disk pages (3-4, 5-6).
        assert len(_pages(tmp_path / "data", "keep")) == 4
        assert _pages(tmp_path / "data", "clean") == []

        async with trio.open_nursery() as nursery:
            keep_peer, clean_peer = Peer(port=keep_port), Peer(port=clean_port)
            await keep_peer.start(nursery)
            await clean_peer.start(nursery)
            async with running_engine(tmp_path) as engine:  # the rules start again from the catalog
                await keep_peer.wait_for(lambda: len(keep_peer.received) == 7)
                await until(lambda: sink_metric(engine, "clean", "connection_status") == 1)
                await engine.publish("in", [{"id": 8}])
                await keep_peer.wait_for(lambda: len(keep_peer.received) == 8)
                await clean_peer.wait_for(lambda: len(clean_peer.received) == 1)
                assert ids(keep_peer.received) == list(range(1, 9))
                assert ids(clean_peer.received) == [8]
                assert _pages(tmp_path / "data", "keep") == []
            await keep_peer.stop()
            await clean_peer.stop()
            nursery.cancel_scope.cancel()


async def test_past_max_disk_cache_the_oldest_pages_are_dropped_and_counted(tmp_path: Path) -> None:
    port = free_port()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, running_engine(tmp_path) as engine:
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("r", port, **SMALL, maxDiskCache=4))
            for i in range(1, 11):
                await engine.publish("in", [{"id": i}])
            # 1-2 in memory; pages 3-4, 5-6, 7-8, 9-10 on a disk that holds two: 3-6 are dropped
            await until(lambda: sink_metric(engine, "r", "buffer_length") == 6)
            status = engine.rule_status("r")
            assert (
                status["sink_websocket_0_0_exceptions_total"] == 1 + 4
            )  # the refused write + 4 dropped rows
            assert "maxDiskCache 4" in status["sink_websocket_0_0_last_exception"]
            assert status["status"] == "running"
            peer = Peer(port=port)
            await peer.start(nursery)
            await peer.wait_for(lambda: len(peer.received) == 6)
            assert ids(peer.received) == [1, 2, 7, 8, 9, 10]
            await until(lambda: sink_metric(engine, "r", "buffer_length") == 0)
            await engine.stop_rule("r")
            await peer.stop()
            nursery.cancel_scope.cancel()


async def test_the_alter_queue_resends_failed_rows_marked_while_new_rows_go_straight_out(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, running_engine(tmp_path) as engine:
            peer = Peer()
            await peer.start(nursery)
            engine.create_stream("stream", STREAM)
            # A long resend interval: the row published once the peer is back goes out before the next resend.
            alter = {
                **SMALL,
                "resendAlterQueue": True,
                "resendIndicatorField": "resent",
                "resendInterval": "1s",
            }
            await engine.create_rule(rule("r", peer.port, **alter))
            await engine.publish("in", [{"id": 1}])
            await peer.wait_for(lambda: len(peer.received) == 1)
            await peer.stop()
            await until(lambda: sink_metric(engine, "r", "connection_status") != 1)
            for i in (2, 3, 4):
                await engine.publish("in", [{"id": i}])
            # Each new row was tried (the alter queue holds nothing back): three refusals, three cached.
            await until(lambda: sink_metric(engine, "r", "exceptions_total") == 3)
            assert sink_metric(engine, "r", "buffer_length") == 3
            await peer.start(nursery)
            await until(lambda: sink_metric(engine, "r", "connection_status") == 1)
            await engine.publish("in", [{"id": 5}])
            await peer.wait_for(lambda: len(peer.received) == 5)
            await until(lambda: sink_metric(engine, "r", "buffer_length") == 0)
            rows = [orjson.loads(frame) for frame in peer.received]
            marked = [{"id": i, "resent": True} for i in (2, 3, 4)]  # resent in their order, marked
            assert rows == [{"id": 1}, {"id": 5}, *marked]
            assert sink_metric(engine, "r", "records_out_total") == 5
            nursery.cancel_scope.cancel()


async def test_bad_cache_properties_fail_rule_creation_all_at_once(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine:
        engine.create_stream("stream", STREAM)
        bad = {
            "enableCache": "yes",
            "memoryCacheThreshold": 10,
            "bufferPageSize": 4,
            "maxDiskCache": -1,
            "resendInterval": "soon",
            "resendPriority": 2,
        }
        with pytest.raises(PlanError) as caught:
            await engine.create_rule(rule("r", free_port(), **bad))
        message = str(caught.value)
        for part in (
            "'enableCache' must be a bool",
            "'maxDiskCache' must be a non-negative integer",
            "'memoryCacheThreshold' (10) must be a multiple of bufferPageSize (4)",
            "'resendInterval' must be a duration",
            "'resendPriority' must be -1, 0 or 1",
        ):
            assert part in message


async def test_resend_destination_is_the_topic_of_a_second_sink_instance(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine:
        engine.create_stream("stream", STREAM)
        alter = {"enableCache": True, "resendAlterQueue": True, "resendDestination": "again"}
        memory = {"id": "m", "sql": "SELECT id FROM s", "actions": [{"memory": {"topic": "out", **alter}}]}
        await engine.create_rule(memory)
        async with engine.services.memory.subscribe("out") as out:
            await engine.publish("in", [{"id": 1}])
            with trio.fail_after(5):
                assert (await out.receive())[1] == [{"id": 1}]
        with pytest.raises(PlanError, match="'resendDestination' is used as the websocket sink's 'topic'"):
            await engine.create_rule(rule("w", free_port(), **alter))


async def test_deleting_a_rule_removes_its_cache(tmp_path: Path) -> None:
    port = free_port()
    with trio.fail_after(20):
        async with running_engine(tmp_path) as engine:  # the peer is down: rows are cached, some on disk
            engine.create_stream("stream", STREAM)
            await engine.create_rule(rule("gone", port, **SMALL))
            for i in range(1, 8):
                await engine.publish("in", [{"id": i}])
            await until(lambda: sink_metric(engine, "gone", "buffer_length") == 7)
            assert _pages(tmp_path / "data", "gone")
            await engine.delete_rule("gone")
            assert _pages(tmp_path / "data", "gone") == []
            assert not (tmp_path / "data" / "sinkcache" / "gone").exists()
