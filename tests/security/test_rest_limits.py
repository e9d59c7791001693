"""REST bodies against the real daemon: slow bodies get 408 within the body timeout and give their memory back,
the API keeps answering meanwhile, and one large body does not leave the daemon large."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from tests.daemon_process import Daemon, start_daemon, wait_for, write_etc

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
SLOW_CLIENTS = 1000
WAVE = 50
SENT = 60_000  # bytes of the announced 16 MB each slow client sends before it stalls (all held at once)
# Peak RSS while the slow clients hold their bodies: idle (~50 MB) + what they sent (~60 MB) + hypercorn's
# per-connection buffers (measured 165-185 MB in all). The target is 250 MB.
RSS_BOUND = 250 * MIB
# What may stay once they are gone: freed heap pages are given back (runtime/heap.py), but what hypercorn frees
# after the last request ended stays (measured 20-25 MiB of the ~130 MiB the attack added).
RSS_RETURNED_SLOW = 40 * MIB
RSS_RETURNED = 25 * MIB  # after one large body (measured 1-17 MiB)


def _rss(daemon: Daemon) -> int:
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _slow_client(port: int, statuses: list[int], sent: trio.Semaphore) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        head = (
            "POST /memory/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 16000000\r\n\r\n"
        )
        await stream.send_all(head.encode() + b"[" + b" " * SENT)
        sent.release()
        reply = b""
        while b"\r\n" not in reply:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            reply += chunk
        statuses.append(int(reply.split()[1]) if reply else 0)


async def test_slow_bodies_time_out_with_408_and_the_api_keeps_answering(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc", extra_toml="restBodyTimeout = 5000\n")
    statuses: list[int] = []
    peak = [0]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            port = int(daemon.url.rsplit(":", 1)[1])
            before = _rss(daemon)
            sent = trio.Semaphore(0, max_value=SLOW_CLIENTS)
            async with trio.open_nursery() as clients:
                # In waves: the listen backlog (100) resets connections that all arrive at once.
                for _ in range(SLOW_CLIENTS // WAVE):
                    for _ in range(WAVE):
                        clients.start_soon(_slow_client, port, statuses, sent)
                    for _ in range(WAVE):
                        await sent.acquire()
                async with daemon.client() as http:
                    with trio.fail_after(2):  # before the slow bodies time out
                        assert (await http.get("/ping")).status_code == 200
                        resp = await http.post("/memory/t", json={"v": 1})
                        assert resp.status_code == 200, resp.text

                async def sampled() -> bool:
                    peak[0] = max(peak[0], _rss(daemon))
                    return len(statuses) == SLOW_CLIENTS

                await wait_for(sampled)
            assert statuses == [408] * SLOW_CLIENTS
            assert peak[0] < RSS_BOUND, f"{peak[0] / MIB:.0f} MiB"

            async def returned() -> bool:
                return _rss(daemon) < before + RSS_RETURNED_SLOW

            await wait_for(returned)
            print(
                f"RSS idle {before / MIB:.0f} MiB, peak {peak[0] / MIB:.0f} MiB, after {_rss(daemon) / MIB:.0f} MiB"
            )
            await daemon.terminate()


async def test_one_large_body_does_not_leave_the_daemon_large(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    rows = orjson.dumps([{"id": i, "name": f"sensor-{i}", "value": i * 0.5} for i in range(300_000)])
    assert 12 * MIB < len(rows) < 16 * MIB
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            before = _rss(daemon)
            async with daemon.client() as http:
                resp = await http.post(
                    "/memory/t", content=rows, headers={"Content-Type": "application/json"}
                )
                assert resp.status_code == 200, resp.text

            async def returned() -> bool:
                return _rss(daemon) < before + RSS_RETURNED

            await wait_for(returned)
            print(
                f"RSS idle {before / MIB:.0f} MiB, after a {len(rows) / MIB:.0f} MiB body {_rss(daemon) / MIB:.0f} MiB"
            )
            await daemon.terminate()
