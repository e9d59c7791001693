"""The log sink (JSON text at INFO on ``oort.sink.log`` with the rule id) and the nop sink."""

from __future__ import annotations

import logging

import pytest

from runtime.clock import Clock
from runtime.errors import SinkError
from runtime.io.contract import IoContext, SinkSpec
from runtime.io.log import LogSink
from runtime.io.nop import NopSink
from runtime.io.services import Services


def _spec(kind: str) -> SinkSpec:
    ctx = IoContext(rule_id="rule7", clock=Clock(), services=Services(), logger=logging.getLogger("t"))
    return SinkSpec(type=kind, index=0, props={}, ctx=ctx)


async def test_log_sink_logs_json_with_rule_id(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink(_spec("log"))
    await sink.open()
    with caplog.at_level(logging.INFO, logger="oort.sink.log"):
        await sink.write([{"a": 1, "s": "ü"}])
        await sink.write({"b": None})
    await sink.aclose()
    records = [r for r in caplog.records if r.name == "oort.sink.log"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert [r.getMessage() for r in records] == [
        'sink result for rule rule7: [{"a":1,"s":"ü"}]',
        'sink result for rule rule7: {"b":null}',
    ]


async def test_log_sink_skips_encoding_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink(_spec("log"))
    with caplog.at_level(logging.WARNING, logger="oort.sink.log"):
        await sink.write({"a": object()})  # would fail to encode if it were encoded
    assert not [r for r in caplog.records if r.name == "oort.sink.log"]
    with caplog.at_level(logging.INFO, logger="oort.sink.log"), pytest.raises(SinkError):
        await sink.write({"a": object()})


async def test_nop_sink_accepts_and_drops() -> None:
    spec = _spec("nop")
    sink = NopSink(spec)
    await sink.open()
    assert spec.ctx.connection.status == 1
    for n in range(3):
        await sink.write({"n": n})
    await sink.write([])
    await sink.aclose()
    assert sink.written == 4
    assert spec.ctx.connection.status == 0
