"""Tables through the real engine: stream–table joins over file, memory and websocket tables (scan and lookup)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from runtime.config import load_config
from runtime.engine import Engine
from runtime.errors import EngineError
from runtime.io.memory.bus import Published
from runtime.io.registry import Registry
from runtime.metrics import RuleMetrics
from runtime.tools.replay import replay
from tests.io.websocket.test_data_server import connect

STREAM = 'CREATE STREAM s (id BIGINT, v FLOAT) WITH (TYPE="memory", DATASOURCE="in")'


@pytest.fixture
async def engine(tmp_path: Path, registry: Registry) -> AsyncIterator[Engine]:
    """An engine whose ``file`` source reads ``<tmp>/tables`` (conf key ``test``; the folder is the engine's
    file root) and whose websocket server binds an ephemeral loopback port."""
    etc = tmp_path / "etc"
    (etc / "sources").mkdir(parents=True)
    folder = tmp_path / "tables"
    (etc / "oort.toml").write_text(
        f'[basic]\nfileRoots = ["{folder}"]\n[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = 0\n'
    )
    folder.mkdir()
    (etc / "sources" / "file.toml").write_text(f'[default]\npath = "{folder}"\n\n[test]\nfileType = "json"\n')
    eng = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=registry, seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(eng.run)
        yield eng
        nursery.cancel_scope.cancel()


async def _rule(engine: Engine, sql: str, topic: str = "out") -> None:
    await engine.create_rule({"id": "j", "sql": sql, "actions": [{"memory": {"topic": topic}}]})
    await engine.wait_status("j", "running")


async def _until(engine: Engine, key: str, at_least: int) -> None:
    """Wait until the rule's metric ``key`` reaches ``at_least`` (its sources work in their own tasks)."""
    while engine.rule_status("j").get(key, 0) < at_least:
        await trio.testing.wait_all_tasks_blocked()


async def _next(out: trio.MemoryReceiveChannel[Published]) -> list[dict[str, Any]]:
    _, rows = await out.receive()
    return rows


async def test_stream_joined_with_a_file_scan_table(engine: Engine, tmp_path: Path) -> None:
    rows = [{"id": 1, "name": "one", "v": 0.5}, {"id": 2, "name": "two"}, {"id": 2, "name": "deux"}]
    (tmp_path / "tables" / "lookup.json").write_bytes(orjson.dumps(rows))
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table", 'CREATE TABLE t (id BIGINT, name STRING) WITH (DATASOURCE="lookup.json", CONF_KEY="test")'
    )
    with trio.fail_after(10):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, "SELECT * FROM s INNER JOIN t ON s.id = t.id")
            await engine.publish("in", [{"id": 2, "v": 9.5}])
            # One emission per event with every matching table row; the stream's columns win on conflict.
            assert await _next(out) == [
                {"id": 2, "v": 9.5, "name": "two"},
                {"id": 2, "v": 9.5, "name": "deux"},
            ]
            await engine.publish("in", [{"id": 7, "v": 1.0}, {"id": 1, "v": 2.0}])
            assert await _next(out) == [{"id": 1, "v": 2.0, "name": "one"}]  # no match, no emission
    status = engine.rule_status("j")
    assert status["source_t_0_records_in_total"] == 1  # the file was read once, as one batch
    assert status["source_s_0_records_in_total"] == 3


async def test_memory_scan_table_keeps_the_latest_rows_and_left_join_keeps_misses(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table",
        'CREATE TABLE dev (id BIGINT, name STRING) WITH (TYPE="memory", DATASOURCE="dev", RETAIN_SIZE="2")',
    )
    sql = "SELECT s.id AS sid, dev.name FROM s LEFT JOIN dev ON s.id = dev.id WHERE s.v > 0"
    with trio.fail_after(10):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, sql)
            await engine.publish(
                "dev", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
            )
            await _until(engine, "source_dev_0_records_in_total", 1)
            await engine.publish("in", [{"id": 1, "v": 1.0}, {"id": 3, "v": 1.0}, {"id": 3, "v": -1.0}])
            assert await _next(out) == [{"sid": 1}]  # row 1 fell out of the 2 retained rows
            assert await _next(out) == [{"sid": 3, "name": "c"}]
            await engine.publish("dev", [{"id": 1, "name": "a2"}])
            await _until(engine, "source_dev_0_records_in_total", 2)
            await engine.publish("in", [{"id": 1, "v": 1.0}])
            assert await _next(out) == [{"sid": 1, "name": "a2"}]


async def test_memory_lookup_table_is_probed_by_key(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table",
        'CREATE TABLE lk (id BIGINT, name STRING) WITH (TYPE="memory", DATASOURCE="lk", KIND="lookup", KEY="id")',
    )
    with trio.fail_after(10):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, "SELECT s.v, lk.name FROM s INNER JOIN lk ON s.id = lk.id")
            await engine.publish(
                "lk", [{"id": 1, "name": "old"}, {"id": 2, "name": "two"}, {"id": 1, "name": "new"}]
            )
            await _until(engine, "source_lk_0_records_in_total", 1)
            await engine.publish("in", [{"id": 1, "v": 1.5}, {"id": 9, "v": 0.0}, {"id": 2, "v": 2.5}])
            assert await _next(out) == [{"v": 1.5, "name": "new"}]  # one row per key: the latest
            assert await _next(out) == [{"v": 2.5, "name": "two"}]


async def test_websocket_server_mode_stream_feeds_a_scan_table(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table",
        'CREATE TABLE wt (id BIGINT, name STRING) WITH (TYPE="websocket", DATASOURCE="/tbl", RETAIN_SIZE="5")',
    )
    with trio.fail_after(15):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, "SELECT s.id, wt.name FROM s INNER JOIN wt ON s.id = wt.id")
            hub = engine.services.data_server
            async with connect(hub.port, "/tbl") as feed:
                await feed.send_message('[{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]')
                await _until(engine, "source_wt_0_records_in_total", 1)
                await engine.publish("in", [{"id": 2, "v": 0.0}])
                assert await _next(out) == [{"id": 2, "name": "two"}]
                await feed.send_message('{"id": 3, "name": "three"}')
                await _until(engine, "source_wt_0_records_in_total", 2)
                await engine.publish("in", [{"id": 3, "v": 0.0}])
                assert await _next(out) == [{"id": 3, "name": "three"}]
        await engine.stop_rule("j")
    assert not hub.running


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM s INNER JOIN s2 ON s.id = s2.id", "a time window or count window is required"),
        ("SELECT * FROM t INNER JOIN t2 ON t.id = t2.id", "a join needs at least one stream"),
        ("SELECT * FROM s INNER JOIN lk ON s.v > lk.id", "needs an equality on its key"),
        ("SELECT * FROM s INNER JOIN nowhere ON s.id = nowhere.id", "fail to get stream nowhere"),
    ],
)
async def test_join_rules_that_cannot_run_are_refused(engine: Engine, sql: str, message: str) -> None:
    engine.create_stream("stream", STREAM)
    engine.create_stream("stream", 'CREATE STREAM s2 (id BIGINT) WITH (TYPE="memory", DATASOURCE="in2")')
    engine.create_stream("table", 'CREATE TABLE t (id BIGINT) WITH (TYPE="memory", DATASOURCE="t")')
    engine.create_stream("table", 'CREATE TABLE t2 (id BIGINT) WITH (TYPE="memory", DATASOURCE="t2")')
    engine.create_stream(
        "table", 'CREATE TABLE lk (id BIGINT) WITH (TYPE="memory", DATASOURCE="lk", KIND="lookup", KEY="id")'
    )
    with pytest.raises(EngineError, match=message):
        await engine.create_rule({"id": "bad", "sql": sql, "actions": [{"log": {}}]})


async def test_file_lookup_table(engine: Engine, tmp_path: Path) -> None:
    rows = [{"code": "a", "label": "first"}, {"code": "b", "label": "second"}]
    (tmp_path / "tables" / "codes.lines").write_text("\n".join(orjson.dumps(r).decode() for r in rows))
    (tmp_path / "etc" / "sources" / "file.toml").write_text(
        f'[default]\npath = "{tmp_path / "tables"}"\n\n[lines]\nfileType = "lines"\n'
    )
    engine.create_stream("stream", 'CREATE STREAM ev (code STRING) WITH (TYPE="memory", DATASOURCE="ev")')
    engine.create_stream(
        "table",
        'CREATE TABLE codes (code STRING, label STRING) WITH (DATASOURCE="codes.lines", CONF_KEY="lines",'
        ' KIND="lookup", KEY="code")',
    )
    with trio.fail_after(10):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, "SELECT ev.code, label FROM ev LEFT JOIN codes ON ev.code = codes.code")
            await engine.publish("ev", [{"code": "b"}, {"code": "z"}])
            assert await _next(out) == [{"code": "b", "label": "second"}]
            assert await _next(out) == [{"code": "z"}]  # LEFT JOIN keeps the miss


async def test_unnest_in_a_stream_table_join_expands_the_joined_rows(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table",
        'CREATE TABLE dev (id BIGINT, tags ARRAY(STRING)) WITH (TYPE="memory", DATASOURCE="dev", '
        'RETAIN_SIZE="5")',
    )
    sql = "SELECT s.id, unnest(dev.tags) AS tag FROM s INNER JOIN dev ON s.id = dev.id"
    with trio.fail_after(10):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, sql)
            await engine.publish("dev", [{"id": 1, "tags": ["a", "b"]}, {"id": 1, "tags": ["c"]}])
            await _until(engine, "source_dev_0_records_in_total", 1)
            await engine.publish("in", [{"id": 1, "v": 1.0}])
            # The event's joined rows are one collection: projectset expands them into one emission.
            assert await _next(out) == [
                {"id": 1, "tag": "a"},
                {"id": 1, "tag": "b"},
                {"id": 1, "tag": "c"},
            ]
    status = engine.rule_status("j")
    assert status["op_4_projectset_0_records_in_total"] == 1
    assert status["op_4_projectset_0_records_out_total"] == 1


async def test_a_polled_file_table_survives_a_bad_or_missing_file(
    engine: Engine, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "tables" / "poll.json"
    path.write_bytes(orjson.dumps([{"id": 1, "name": "one"}]))
    (tmp_path / "etc" / "sources" / "file.toml").write_text(
        f'[default]\npath = "{tmp_path / "tables"}"\n\n[poll]\ninterval = 1000\n'
    )
    engine.create_stream("stream", STREAM)
    engine.create_stream(
        "table", 'CREATE TABLE t (id BIGINT, name STRING) WITH (DATASOURCE="poll.json", CONF_KEY="poll")'
    )

    async def lookup(out: trio.MemoryReceiveChannel[Published]) -> list[dict[str, Any]]:
        await engine.publish("in", [{"id": 1, "v": 1.0}])
        return await _next(out)

    async def poll_until(key: str, value: int) -> None:
        for _ in range(40):  # virtual time (autojump): the source re-reads every second
            if engine.rule_status("j").get(key) == value:
                return
            await trio.sleep(0.25)
        raise AssertionError(f"{key} never became {value}")

    with trio.fail_after(60):
        async with engine.services.memory.subscribe("out") as out:
            await _rule(engine, "SELECT t.name FROM s INNER JOIN t ON s.id = t.id")
            assert await lookup(out) == [{"name": "one"}]
            path.write_bytes(b"[not json")  # a read that only yields an error: the snapshot stays
            await poll_until("source_t_0_exceptions_total", 1)
            assert await lookup(out) == [{"name": "one"}]
            path.unlink()  # a failed re-read: reported, retried, the rule keeps running
            await poll_until("source_t_0_connection_status", -1)
            assert engine.rule_status("j")["status"] == "running"
            assert await lookup(out) == [{"name": "one"}]
            path.write_bytes(orjson.dumps([{"id": 1, "name": "uno"}]))
            await poll_until("source_t_0_connection_status", 1)
            assert await lookup(out) == [{"name": "uno"}]


async def test_event_time_stream_table_join_orders_by_watermark(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ddl = (
        'CREATE STREAM s (id BIGINT, ts BIGINT) WITH (TYPE="memory", DATASOURCE="s", TIMESTAMP="ts");\n'
        'CREATE TABLE names (id BIGINT, name STRING) WITH (TYPE="file", DATASOURCE="names.json");'
    )
    t0 = 1_700_000_000_000
    events: list[dict[str, Any]] = [
        {"stream": "names", "data": {"id": 1, "name": "one"}},
        {"stream": "names", "data": {"id": 2, "name": "two"}},
    ]
    arrivals = [
        (2000, 2),
        (1000, 1),
        (3000, 1),
        (500, 2),
        (6000, 2),
    ]  # (event time offset, id) in arrival order
    events += [
        {"stream": "s", "ts": t0 + i * 100, "data": {"id": id_, "ts": t0 + offset}}
        for i, (offset, id_) in enumerate(arrivals)
    ]
    rule = {
        "sql": "SELECT s.ts, names.name FROM s INNER JOIN names ON s.id = names.id",
        "options": {"isEventTime": True, "lateTolerance": 1000},
    }
    metrics = RuleMetrics()
    with trio.fail_after(60):
        out = await replay(ddl, rule, events, metrics=metrics)
    # Released in event-time order as the watermark (max seen - 1 s) passes them; 500 is late and dropped;
    # 6000 is still held when the recording ends.
    assert out == [
        [{"ts": t0 + 1000, "name": "one"}],
        [{"ts": t0 + 2000, "name": "two"}],
        [{"ts": t0 + 3000, "name": "one"}],
    ]
    snapshot = metrics.snapshot()
    assert snapshot["op_2_watermark_0_records_in_total"] == 5
    assert snapshot["op_2_watermark_0_records_out_total"] == 3


async def test_a_stream_joined_with_itself_under_two_aliases(autojump_clock: trio.testing.MockClock) -> None:
    ddl = 'CREATE STREAM s (id BIGINT, v BIGINT) WITH (TYPE="memory", DATASOURCE="s");'
    t0 = 1_700_000_000_000
    events: list[dict[str, Any]] = [
        {"stream": "s", "ts": t0 + i * 100, "data": {"id": i % 2, "v": i}} for i in range(4)
    ]
    events.append({"stream": "s", "ts": t0 + 2500, "data": {"id": 9, "v": 9}})  # closes the first window
    sql = (
        "SELECT a.v AS av, b.v AS bv FROM s AS a INNER JOIN s AS b ON a.id = b.id "
        "GROUP BY TUMBLINGWINDOW(ss, 1) ORDER BY av, bv"
    )
    with trio.fail_after(60):
        out = await replay(ddl, {"sql": sql}, events)
    pairs = [(0, 0), (0, 2), (1, 1), (1, 3), (2, 0), (2, 2), (3, 1), (3, 3)]
    assert out[0] == [{"av": a, "bv": b} for a, b in pairs]
