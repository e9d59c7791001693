"""Pieces of the rule runtime tested by plain calls: the dropping outbox of ``bufferFullPolicy``."""

from __future__ import annotations

import pytest
import trio

from runtime.metrics import OpMetrics
from runtime.model import Batch, Event
from runtime.rule.pipeline import DroppingOutbox


def _batch(*ids: int) -> Batch:
    return [Event({"id": i}, 0) for i in ids]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [("dropNewest", [[1], [2]]), ("dropOldest", [[3], [4]])],
)
async def test_dropping_outbox_never_blocks_and_counts(policy: str, kept: list[list[int]]) -> None:
    send, recv = trio.open_memory_channel[Batch](2)
    metrics = OpMetrics("source_s")
    outbox = DroppingOutbox(send, recv.clone(), policy, metrics)
    with trio.fail_after(1):  # would block forever if a full buffer made the source wait
        for i in range(1, 5):
            await outbox.send(_batch(i))
    outbox.close()
    received = [[e.data["id"] for e in recv.receive_nowait()] for _ in range(2)]  # type: ignore[union-attr]
    assert received == kept
    assert metrics.dropped == 2
    assert metrics.snapshot()["source_s_0_records_dropped_total"] == 2
