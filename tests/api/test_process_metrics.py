"""``GET /metrics`` of the real daemon carries the process and runtime metrics, parseable by prometheus_client."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_process import start_daemon, wait_for, write_etc

pytestmark = pytest.mark.slow


async def test_process_and_trio_metrics_are_served(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:

                async def scraped() -> dict[str, float]:
                    text = (await http.get("/metrics")).text
                    families = {f.name: f for f in text_string_to_metric_families(text)}
                    return {
                        name: family.samples[0].value
                        for name, family in families.items()
                        if family.samples and not family.samples[0].labels
                    }

                async def served() -> bool:
                    return "oort_event_loop_lag_max_seconds" in await scraped()

                await wait_for(served)
                values = await scraped()
                status = Path(f"/proc/{daemon.process.pid}/status").read_text()  # noqa: ASYNC240 - procfs
                text = (await http.get("/metrics")).text
            await daemon.terminate()
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    assert 0.8 * rss < values["process_resident_memory_bytes"] < 1.25 * rss
    assert values["process_open_fds"] > 3
    assert values["process_cpu_seconds"] > 0
    assert values["oort_trio_tasks"] > 5  # the engine, the REST server and its connections
    assert 0 <= values["oort_event_loop_lag_seconds"] <= values["oort_event_loop_lag_max_seconds"]
    assert "# HELP oort_event_loop_lag_seconds" in text and "python_gc_collections_total" in text
