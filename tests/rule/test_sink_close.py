"""A stopping rule says what it waits for: a sink slow to close is named after SLOW_CLOSE, one that never closes
is left behind after SINK_CLOSE_TIMEOUT with a warning, and the stop is not held longer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from runtime.rule.pipeline import SINK_CLOSE_TIMEOUT, SLOW_CLOSE, _close_sink


class _SlowSink:
    """A sink whose close takes ``seconds`` (the part under test is the pipeline's waiting, not a connector)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.closed = False

    async def open(self) -> None:
        pass

    async def write(self, data: Any) -> None:
        pass

    async def aclose(self) -> None:
        await trio.sleep(self.seconds)
        self.closed = True


async def test_a_slow_close_is_named_and_a_stuck_one_left_behind(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oort.rule")
    quick = _SlowSink(SLOW_CLOSE / 2)
    await _close_sink(quick, "sink_quick_0")  # type: ignore[arg-type]
    assert quick.closed and not caplog.records
    slow = _SlowSink(SLOW_CLOSE * 2)
    await _close_sink(slow, "sink_slow_0")  # type: ignore[arg-type]
    assert slow.closed
    assert [r.getMessage() for r in caplog.records] == [
        f"waiting up to {SINK_CLOSE_TIMEOUT:g} s for sink_slow_0 to flush and close"
    ]
    caplog.clear()
    stuck = _SlowSink(SINK_CLOSE_TIMEOUT * 10)
    started = trio.current_time()
    with trio.CancelScope() as scope:
        scope.cancel()  # the rule is being stopped: the close is shielded, but bounded
        await _close_sink(stuck, "sink_stuck_0")  # type: ignore[arg-type]
    assert trio.current_time() - started == pytest.approx(SINK_CLOSE_TIMEOUT)
    assert not stuck.closed
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
    assert "sink_stuck_0 did not close within" in caplog.records[-1].getMessage()
