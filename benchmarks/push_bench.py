"""P9: HTTP push ingest -> ``WHERE`` -> nop, against a raw hypercorn handler in the same run (issue 14).

Both sides take the same load from the same generator (``python -m benchmarks.loadgen http-post``, a separate
process): ``CLIENTS`` keep-alive HTTP/1.1 connections POST N requests in total, **one JSON object per request**
(what eKuiper's users mostly send), one request in flight per connection (no pipelining: a client sends its next
row when the previous one was answered, as an HTTP client library does).

- Oort: a daemon stream ``TYPE="httppush", DATASOURCE="/bench"`` on its data server and the rule
  ``SELECT * FROM s WHERE temperature > 50`` -> nop. A request is answered once its row is in the rule's buffer;
  the run ends when every request was answered *and* the rule read every row (the source's ``last_invocation``
  once ``records_in_total`` reached N), so a buffer still holding rows is not counted as done.
- Baseline: ``python -m benchmarks.baselines hypercorn-post``, a bare ASGI app on hypercorn's trio worker that
  reads each body, ``json.loads`` it and answers ``200 ok``. The run ends when the last answer arrived.

Rate = N / (end - the generator's start). Runs alternate Oort and baseline after one warm-up each; the result is
their medians. Two extras: the generator's own ceiling (the same load against ``loadgen http-ok``, a trivial
server that answers without parsing), to show the generator is not what limits either side; and one alternating
pair with ``BATCH`` rows per request (a JSON array), in rows/s, for the per-request versus per-row cost.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.harness import Daemon, Proc, free_port, loadgen, log, summary

if TYPE_CHECKING:
    from benchmarks.scenarios import Params, Result

SQL = "SELECT * FROM s WHERE temperature > 50"
DDL = 'CREATE STREAM s () WITH (TYPE="httppush", DATASOURCE="/bench", FORMAT="json")'
PATH = "/bench"
CLIENTS = 8  # concurrent keep-alive connections of the generator
BATCH = 10  # rows per request in the batched extra
FULL_COUNT, QUICK_COUNT = 40_000, 600  # requests per run


def _post(port: int, count: int, batch: int = 1, quiet: bool = False) -> Proc:
    args = [
        "http-post",
        "--port",
        str(port),
        "--path",
        PATH,
        "--clients",
        str(CLIENTS),
        "--count",
        str(count),
    ]
    return loadgen(*args, "--batch", str(batch), quiet=quiet)


def _generated(lg: Proc, count: int, timeout: float) -> tuple[float, float]:
    """(start, done) wall times of a generator run that must have had all ``count`` requests answered 200."""
    start = float(lg.wait_event("start", timeout=30)["t"])
    done = lg.wait_event("done", timeout=timeout)
    if done["answered"] != count or done["statuses"]:
        raise RuntimeError(
            f"http-post: {done['answered']}/{count} answered, non-200 answers {done['statuses']}"
        )
    return start, float(done["t"])


def _rows_in(status: dict[str, Any]) -> int:
    return int(status.get("source_s_0_records_in_total", 0))


def oort_run(d: Daemon, count: int, batch: int = 1) -> float:
    """Rows/s through Oort: from the generator's start to the later of its last answer and the rule's last read."""
    rows = count * batch
    before = _rows_in(d.status("p9"))
    with _post(d.ws_port, count, batch) as lg:
        start, done = _generated(lg, count, timeout=600)
    status = d.wait_until("p9", lambda s: _rows_in(s) >= before + rows, timeout=60, poll=0.05)
    got = _rows_in(status) - before
    if got < rows:
        raise RuntimeError(f"p9: only {got}/{rows} rows reached the rule")
    end = max(done, status["source_s_0_last_invocation"] / 1000.0)
    return float(rows / (end - start))


def baseline_run(port: int, count: int, batch: int = 1) -> float:
    """Rows/s through the hypercorn handler (each request is answered after its body was decoded)."""
    before = int(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()["count"])
    with _post(port, count, batch) as lg:
        start, done = _generated(lg, count, timeout=600)
    decoded = int(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()["count"]) - before
    if decoded != count:
        raise RuntimeError(f"baseline: {decoded}/{count} bodies decoded")
    return count * batch / (done - start)


def generator_ceiling(count: int) -> float:
    """Requests/s of the generator against a server that answers without parsing (``loadgen http-ok``)."""
    with loadgen("http-ok", "--timeout", "600") as server:
        port = int(server.wait_event("ready")["port"])
        with _post(port, count, quiet=True) as lg:
            start, done = _generated(lg, count, timeout=600)
    return count / (done - start)


def _wait_port(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def scenario(p: Params) -> Result:
    """P9: HTTP push ingest, Oort's httppush source against a raw hypercorn handler."""
    from benchmarks.scenarios import result

    count = QUICK_COUNT if p.quick else FULL_COUNT
    ceiling = generator_ceiling(count)
    log(f"  generator alone (trivial server): {ceiling:,.0f} requests/s")
    oort: list[float] = []
    base: list[float] = []
    bport = free_port()
    baseline_args = [
        "-m",
        "benchmarks.baselines",
        "hypercorn-post",
        "--port",
        str(bport),
        "--timeout",
        "3600",
    ]
    with Daemon() as d, Proc(baseline_args):
        d.stream(DDL)
        d.rule("p9", SQL)
        d.wait_until("p9", lambda s: s.get("source_s_0_connection_status") == 1, timeout=30, poll=0.05)
        _wait_port(bport)
        warm = min(count, 2_000)
        oort_run(d, warm)  # warm-up: connections, caches, the rule's first batches
        baseline_run(bport, warm)
        for i in range(p.runs):
            oort.append(oort_run(d, count))
            base.append(baseline_run(bport, count))
            log(f"  run {i + 1}/{p.runs}: oort {oort[-1]:,.0f} msgs/s, hypercorn+json {base[-1]:,.0f} msgs/s")
        batch_count = max(1, count // BATCH)
        oort_batched = oort_run(d, batch_count, BATCH)
        base_batched = baseline_run(bport, batch_count, BATCH)
        log(
            f"  {BATCH} rows per request: oort {oort_batched:,.0f} rows/s, hypercorn+json {base_batched:,.0f} rows/s"
        )
        rss = d.rss_kb()
    highest = max(summary(oort)["max"], summary(base)["max"])
    notes = []
    if ceiling < 2 * highest:
        notes.append(
            f"the generator alone reached only {ceiling:,.0f} requests/s, under 2x the best measured side: "
            "it may be part of what is measured"
        )
    return result(
        "P9",
        f"HTTP push ingest: {CLIENTS} keep-alive clients POST {count:,} one-row JSON bodies -> `{SQL}` -> nop",
        "msgs/s",
        oort,
        baseline=base,
        baseline_name="raw hypercorn ASGI handler: read body + json.loads + 200",
        target="report (issue 14)",
        extra={
            "clients": CLIENTS,
            "rows_per_request": 1,
            "generator_ceiling_requests_per_s": round(ceiling),
            f"batch{BATCH}_rows_per_s": {
                "oort": round(oort_batched),
                "baseline": round(base_batched),
                "ratio": round(oort_batched / base_batched, 3),
            },
            "daemon_rss_mb_after": round(rss / 1024, 1),
        },
        notes=notes,
    )
