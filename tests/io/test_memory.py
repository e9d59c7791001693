"""The memory bus (topic filters, fan-out, backpressure, no leaks) and the memory source and sink."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.errors import PlanError, SinkError, SourceError
from runtime.io.contract import IoContext, SinkSpec, SourceSpec
from runtime.io.memory.bus import MemoryBus, Published, topic_matches
from runtime.io.memory.connector import MemorySink, MemorySource
from runtime.io.services import Services
from runtime.model import Batch, ErrorItem, Event


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("+/b", "a/b", True),
        ("+/b", "a/c", False),
        ("+/+", "a/b", True),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/d", False),
        ("a/#", "a/b", True),
        ("a/#", "a/b/c/d", True),
        ("a/#", "a", True),
        ("a/#", "b/a", False),
        ("#", "a", True),
        ("#", "a/b/c", True),
        ("+/#", "a/b", True),
        ("devices/s", "devices/s", True),
        ("devices", "devices/s", False),
        ("a//b", "a//b", True),
        ("a/+/b", "a//b", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b+", "a#", "+a/b"])
def test_malformed_filters_are_rejected(bad: str) -> None:
    with pytest.raises(SourceError):
        topic_matches(bad, "a/b")


async def test_two_subscribers_both_receive_in_order() -> None:
    bus = MemoryBus()
    async with (
        bus.subscribe("a/+", 10) as one,
        bus.subscribe("a/b", 10) as two,
        bus.subscribe("x/#", 10) as other,
    ):
        await bus.publish("a/b", [{"n": 1}])
        await bus.publish("a/c", [{"n": 2}])
        await bus.publish("a/b", [{"n": 3}, {"n": 4}])
        assert [one.receive_nowait() for _ in range(3)] == [
            ("a/b", [{"n": 1}]),
            ("a/c", [{"n": 2}]),
            ("a/b", [{"n": 3}, {"n": 4}]),
        ]
        assert [two.receive_nowait() for _ in range(2)] == [
            ("a/b", [{"n": 1}]),
            ("a/b", [{"n": 3}, {"n": 4}]),
        ]
        for channel in (one, two, other):
            with pytest.raises(trio.WouldBlock):
                channel.receive_nowait()


async def test_full_subscriber_blocks_publisher_until_it_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = MemoryBus()
    published: list[int] = []

    async def publisher() -> None:
        for n in range(3):
            await bus.publish("t", [{"n": n}])
            published.append(n)

    async with bus.subscribe("t", 1) as slow, bus.subscribe("#", 10) as fast:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            await trio.testing.wait_all_tasks_blocked()
            # Buffer 1: publish #0 fits, publish #1 waits on the slow subscriber.
            assert published == [0]
            await trio.sleep(100)  # virtual time: the publisher stays blocked, nothing is dropped
            assert published == [0]
            got: list[Published] = [await slow.receive()]
            await trio.testing.wait_all_tasks_blocked()
            assert published == [0, 1]
            got += [await slow.receive(), await slow.receive()]
        assert published == [0, 1, 2]
        assert got == [("t", [{"n": 0}]), ("t", [{"n": 1}]), ("t", [{"n": 2}])]
        assert [fast.receive_nowait()[1][0]["n"] for _ in range(3)] == [0, 1, 2]


async def test_unsubscribing_releases_a_blocked_publisher() -> None:
    bus = MemoryBus()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            async with bus.subscribe("t", 0) as recv:
                nursery.start_soon(bus.publish, "t", [{"n": 1}])
                await trio.testing.wait_all_tasks_blocked()
                assert recv.statistics().tasks_waiting_send == 1
            # leaving the block closed the subscription: the publisher returns instead of hanging
    assert bus.subscription_count == 0


async def test_no_leak_after_many_subscribe_cycles() -> None:
    bus = MemoryBus()
    async with bus.subscribe("keep/#", 10) as keep:
        for i in range(1000):
            async with bus.subscribe(f"t/{i % 7}/+", 1) as recv:
                await bus.publish(f"t/{i % 7}/x", [{"i": i}])
                assert recv.receive_nowait() == (f"t/{i % 7}/x", [{"i": i}])
            await bus.publish("keep/a", [{"i": i}])
            assert keep.receive_nowait() == ("keep/a", [{"i": i}])
        assert bus.subscription_count == 1
        assert bus.cached_topic_count == 1  # only the topic published since the last (un)subscribe
    assert bus.subscription_count == 0
    assert bus.cached_topic_count == 0


async def test_publish_without_subscribers_and_bad_topics() -> None:
    bus = MemoryBus()
    await bus.publish("nobody/listens", [{"a": 1}])
    for topic in ("", "a/+", "a/#"):
        with pytest.raises(SinkError):
            await bus.publish(topic, [])


async def test_match_cache_follows_subscriptions() -> None:
    bus = MemoryBus()
    async with bus.subscribe("a/+", 10) as first:
        await bus.publish("a/b", [{"n": 1}])
        async with bus.subscribe("a/b", 10) as second:
            # the new subscription must see the topic even though "a/b" was cached before it existed
            await bus.publish("a/b", [{"n": 2}])
            assert second.receive_nowait() == ("a/b", [{"n": 2}])
        await bus.publish("a/b", [{"n": 3}])
        assert [first.receive_nowait()[1] for _ in range(3)] == [[{"n": 1}], [{"n": 2}], [{"n": 3}]]


def _ctx(services: Services) -> IoContext:
    return IoContext(
        rule_id="r", clock=Clock(epoch_ms=1_000_000), services=services, logger=logging.getLogger("t")
    )


def _source(services: Services, datasource: str, props: dict[str, object] | None = None) -> MemorySource:
    spec = SourceSpec(
        stream="s",
        type="memory",
        datasource=datasource,
        format="json",
        props=dict(props or {}),
        options={},
        ctx=_ctx(services),
    )
    return MemorySource(spec)


async def test_memory_source_forwards_events_with_topic_meta(autojump_clock: trio.testing.MockClock) -> None:
    services = Services()
    source = _source(services, "devices/+")
    send, recv = trio.open_memory_channel[Batch](10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            assert services.memory.subscription_count == 1
            await trio.sleep(2)  # the events are stamped with the clock at arrival
            await services.memory.publish("devices/d1", [{"t": 1}, {"t": 2}])
            await services.memory.publish("other/d1", [{"t": 9}])
            await services.memory.publish("devices/d2", [{"t": 3}, 7])  # type: ignore[list-item]
            first = await recv.receive()
            second = await recv.receive()
            nursery.cancel_scope.cancel()
    assert services.memory.subscription_count == 0
    assert all(isinstance(e, Event) for e in first)
    events = [e for e in first if isinstance(e, Event)]
    assert [(e.data, e.ts, e.meta) for e in events] == [
        ({"t": 1}, 1_002_000, {"topic": "devices/d1"}),
        ({"t": 2}, 1_002_000, {"topic": "devices/d1"}),
    ]
    assert isinstance(second[0], Event) and second[0].meta == {"topic": "devices/d2"}
    assert isinstance(second[1], ErrorItem) and "expected a JSON object" in second[1].message


async def test_memory_source_rejects_bad_configuration() -> None:
    with pytest.raises(SourceError):
        _source(Services(), "a/#/b")
    with pytest.raises(PlanError, match="bufferLength"):
        _source(Services(), "a", {"bufferLength": "big"})


async def test_memory_sink_chains_into_a_memory_source() -> None:
    services = Services()
    sink = MemorySink(
        SinkSpec(type="memory", index=0, props={"topic": "out/r", "rowkindField": "k"}, ctx=_ctx(services))
    )
    source = _source(services, "out/#")
    send, recv = trio.open_memory_channel[Batch](10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            await sink.open()
            await sink.write([{"a": 1}, {"a": 2}])
            await sink.write({"a": 3})
            await sink.aclose()
            batches = [await recv.receive(), await recv.receive()]
            nursery.cancel_scope.cancel()
    rows = [[e.data for e in batch if isinstance(e, Event)] for batch in batches]
    assert rows == [[{"a": 1}, {"a": 2}], [{"a": 3}]]


@pytest.mark.parametrize(
    ("props", "message"),
    [({}, "'topic' is required"), ({"topic": 3}, "'topic' is required"), ({"topic": "a/+"}, "wildcards")],
)
async def test_memory_sink_validates_topic(props: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        MemorySink(SinkSpec(type="memory", index=0, props=props, ctx=_ctx(Services())))


async def test_memory_source_applies_strict_validation_to_the_fields_read() -> None:
    from runtime.sql.ast import StreamDef
    from runtime.sql.parser import parse_ddl

    definition = parse_ddl(
        'CREATE STREAM s (color STRING, size BIGINT) WITH (TYPE="memory", DATASOURCE="t", '
        'STRICT_VALIDATION="true")'
    )
    assert isinstance(definition, StreamDef)
    services = Services()
    spec = SourceSpec(
        stream="s",
        type="memory",
        datasource="t",
        format="json",
        props={},
        options={},
        ctx=_ctx(services),
        definition=definition,
        fields_read=frozenset({"size"}),
    )
    source = MemorySource(spec)
    send, recv = trio.open_memory_channel[Batch](10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            await services.memory.publish("t", [{"color": 7, "size": 6.0}, {"size": "red"}])
            batch = await recv.receive()
            nursery.cancel_scope.cancel()
    first, second = batch
    assert isinstance(first, Event) and first.data == {"color": 7, "size": 6}
    assert isinstance(second, ErrorItem)
    assert (
        second.message
        == "error in preprocessor: field size type mismatch: cannot convert string(red) to int64"
    )
