"""The engine's supervisor: restart strategy, isolation between rules, stop releasing every task."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime.engine import Engine
from runtime.errors import NotFoundError, StreamError
from runtime.io.contract import Sink, SinkSpec
from runtime.io.registry import Registry
from runtime.model import Row
from tests.conftest import all_task_names

STREAM = 'CREATE STREAM s (temperature FLOAT, id STRING) WITH (TYPE="memory", DATASOURCE="in")'


class _FailingSink:
    """A sink whose every write fails with a bug (not a ``SinkError``, which would only be counted and dropped);
    it reports each open (in virtual time) to the test."""

    def __init__(self, opened: trio.MemorySendChannel[float], closed: list[float]) -> None:
        self._opened = opened
        self._closed = closed

    async def open(self) -> None:
        self._opened.send_nowait(trio.current_time())

    async def write(self, data: Row | list[Row]) -> None:
        raise RuntimeError("disk on fire")

    async def aclose(self) -> None:
        self._closed.append(trio.current_time())


async def test_failing_sink_is_restarted_per_strategy_while_other_rule_runs(
    engine: Engine, registry: Registry, autojump_clock: trio.testing.MockClock
) -> None:
    opened_send, opened = trio.open_memory_channel[float](10)
    closed: list[float] = []

    def factory(spec: SinkSpec) -> Sink:
        return _FailingSink(opened_send, closed)

    registry.register_sink("failing", factory)
    baseline = all_task_names()
    engine.create_stream("stream", STREAM)
    strategy = {"attempts": 3, "delay": 1000, "multiplier": 2, "maxDelay": 10000, "jitterFactor": 0}
    async with engine.services.memory.subscribe("out") as out:
        await engine.create_rule(
            {"id": "good", "sql": "SELECT id FROM s", "actions": [{"memory": {"topic": "out"}}]}
        )
        await engine.create_rule(
            {
                "id": "bad",
                "sql": "SELECT * FROM s",
                "actions": [{"failing": {}}],
                "options": {"restartStrategy": strategy},
            }
        )
        start = trio.current_time()
        open_times = []
        with trio.fail_after(60):
            for n in range(4):
                open_times.append(await opened.receive() - start)
                await engine.wait_status("bad", "running")  # its source is subscribed again
                await engine.publish("in", [{"temperature": 1.0, "id": f"d{n}"}])
                _, rows = await out.receive()
                assert rows == [{"id": f"d{n}"}]
            await engine.wait_stopped("bad")
        # First run at t=0, then restarts after 1 s, 2 s and 4 s (delay x multiplier^n, no jitter).
        assert open_times == [0, 1, 3, 7]
        assert len(closed) == 4, "every failed run closed its sink"
        bad = engine.rule_status("bad")
        assert bad["status"] == "stopped by error"
        assert "disk on fire" in bad["message"]
        assert bad["sink_failing_0_0_exceptions_total"] == 1
        good = engine.rule_status("good")
        assert good["status"] == "running"
        assert good["source_s_0_records_in_total"] == 4
        assert engine.all_rule_status()["bad"]["status"] == "stopped by error"

        await engine.stop_rule("good")
        assert engine.rule_status("good")["status"] == "stopped"
    assert engine.services.memory.subscription_count == 0
    assert all_task_names() == baseline


async def test_stop_and_start_again(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    baseline = all_task_names()
    async with engine.services.memory.subscribe("out") as out:
        await engine.create_rule(
            {"id": "r", "sql": "SELECT id FROM s", "actions": [{"memory": {"topic": "out"}}]}
        )
        assert engine.rule_status("r")["status"] == "running"
        assert engine.services.memory.subscription_count == 2  # ours and the rule's source
        await engine.stop_rule("r")
        assert engine.services.memory.subscription_count == 1
        assert engine.get_rule("r")["triggered"] is False
        await engine.start_rule("r")
        await engine.publish("in", [{"id": "x"}])
        with trio.fail_after(5):
            _, rows = await out.receive()
        assert rows == [{"id": "x"}]
        await engine.restart_rule("r")
        assert engine.rule_status("r")["status"] == "running"
        await engine.delete_rule("r")
    assert all_task_names() == baseline


async def test_a_rule_reads_the_streams_of_its_plan(engine: Engine) -> None:
    engine.create_stream("stream", 'CREATE STREAM s (a BIGINT) WITH (TYPE="memory", DATASOURCE="t/s")')
    rule = {"id": "r1", "sql": "SELECT a FROM s", "actions": [{"nop": {}}]}
    assert engine.validate_rule(rule) == ["s"]
    await engine.create_rule(rule)
    assert engine.rule_sources("r1") == ("s",)
    with pytest.raises(StreamError, match="referenced"):
        await engine.drop_stream("stream", "s")


class _SlowToCloseSink:
    """A sink whose close waits for the test: the stop of its rule stays in progress until then."""

    def __init__(self, release: trio.Event) -> None:
        self._release = release

    async def open(self) -> None:
        pass

    async def write(self, data: Row | list[Row]) -> None:
        pass

    async def aclose(self) -> None:
        await self._release.wait()


async def test_a_change_during_a_delete_or_update_cannot_bring_the_old_rule_back(
    engine: Engine, registry: Registry
) -> None:
    release = trio.Event()
    registry.register_sink("slowclose", lambda spec: _SlowToCloseSink(release))
    engine.create_stream("stream", 'CREATE STREAM s (v BIGINT) WITH (TYPE="memory", DATASOURCE="t/s")')
    rule = {"id": "r", "sql": "SELECT v FROM s", "actions": [{"slowclose": {}}]}
    await engine.create_rule(rule)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.delete_rule, "r")
            await trio.testing.wait_all_tasks_blocked()  # the delete waits for the sink to close
            with pytest.raises(NotFoundError):
                engine.set_tags("r", ["x"])  # the rule is already gone: nothing can save it again
            release.set()
        assert "r" not in engine.catalog.rules and not (engine.data_dir / "rules" / "r.json").exists()

        release = trio.Event()
        await engine.create_rule(rule)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.update_rule, "r", {**rule, "sql": "SELECT v * 2 AS w FROM s"})
            await trio.testing.wait_all_tasks_blocked()  # the update waits for the old run's sink
            engine.set_tags("r", ["y"])  # lands on the new definition, on disk too
            release.set()
    assert engine.catalog.rules["r"].sql == "SELECT v * 2 AS w FROM s"
    assert engine.catalog.rules["r"].tags == ("y",)
