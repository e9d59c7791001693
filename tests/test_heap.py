"""The shared byte budget readers of client data reserve from (runtime/heap.py)."""

from __future__ import annotations

import trio
import trio.testing

from runtime.heap import ByteBudget


async def test_a_holder_waits_for_room_and_an_empty_handed_reader_never_waits() -> None:
    budget = ByteBudget(100)
    await budget.acquire(80, holding=0)
    got = trio.Event()

    async def holder() -> None:
        await budget.acquire(30, holding=10)  # would make 110: waits
        got.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await trio.testing.wait_all_tasks_blocked()
            assert not got.is_set()
            await budget.acquire(64, holding=0)  # holds nothing: may always read once, past the budget
            assert budget.used == 144
            budget.release(64)
            await trio.testing.wait_all_tasks_blocked()
            assert not got.is_set()  # 80 + 30 still passes 100
            budget.release(50)
            await got.wait()
    assert budget.used == 60
