"""Node-RED's equivalent of P1 (websocket-in -> json -> switch -> function), when ``node-red`` is installed.

Node-RED is looked for in ``$OORT_BENCH_NODERED`` or ``~/.cache/oort-bench/nodered`` (``npm install node-red``
there); the harness never installs it. Without it the comparison is skipped with a note.

Two ways, as issue 6 asks: all messages at once (Node-RED has no backpressure: the rate and its peak RSS), and
paced (the highest steady rate each side keeps up with, from a descending list of rates).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import Daemon, Proc, free_port, log, rss_kb

WS_PATH = "/ws/bench"
PACED_RATES = (80_000, 70_000, 60_000, 45_000, 30_000, 20_000, 15_000, 10_000, 5_000)


def nodered_dir() -> Path | None:
    root = Path(os.environ.get("OORT_BENCH_NODERED", Path.home() / ".cache" / "oort-bench" / "nodered"))
    red = root / "node_modules" / "node-red" / "red.js"
    return root if red.exists() and shutil.which("node") else None


def _flows() -> list[dict[str, Any]]:
    count_fn = (
        "const c = (global.get('c') || 0) + 1; global.set('c', c); global.set('t', Date.now()); return null;"
    )
    report_fn = "msg.payload = {count: global.get('c') || 0, t: global.get('t') || 0}; return msg;"
    return [
        {"id": "b0000001", "type": "tab", "label": "bench"},
        {"id": "b0000002", "type": "websocket-listener", "path": WS_PATH, "wholemsg": "false"},
        {
            "id": "b0000003",
            "type": "websocket in",
            "z": "b0000001",
            "server": "b0000002",
            "client": "",
            "wires": [["b0000004"]],
        },
        {
            "id": "b0000004",
            "type": "json",
            "z": "b0000001",
            "property": "payload",
            "action": "obj",
            "wires": [["b0000005"]],
        },
        {
            "id": "b0000005",
            "type": "switch",
            "z": "b0000001",
            "property": "payload.temperature",
            "propertyType": "msg",
            "rules": [{"t": "gt", "v": "50", "vt": "num"}],
            "checkall": "true",
            "outputs": 1,
            "wires": [["b0000006"]],
        },
        {
            "id": "b0000006",
            "type": "function",
            "z": "b0000001",
            "func": count_fn,
            "outputs": 1,
            "wires": [[]],
        },
        {
            "id": "b0000007",
            "type": "http in",
            "z": "b0000001",
            "url": "/count",
            "method": "get",
            "wires": [["b0000008"]],
        },
        {
            "id": "b0000008",
            "type": "function",
            "z": "b0000001",
            "func": report_fn,
            "outputs": 1,
            "wires": [["b0000009"]],
        },
        {"id": "b0000009", "type": "http response", "z": "b0000001", "statusCode": "", "wires": []},
    ]


class NodeRed:
    """A Node-RED process with the P1 flow, on a free port of 127.0.0.1, in a temp user dir."""

    def __init__(self, root: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="oort-bench-nodered-")
        user = Path(self._tmp.name)
        self.port = free_port()
        (user / "flows.json").write_text(json.dumps(_flows()))
        (user / "settings.js").write_text(
            "module.exports = {uiHost: '127.0.0.1', uiPort: PORT, flowFile: 'flows.json', "
            "credentialSecret: false, logging: {console: {level: 'LEVEL'}}, editorTheme: {tours: false}};\n".replace(
                "PORT", str(self.port)
            ).replace("LEVEL", os.environ.get("OORT_BENCH_NODERED_LOG", "warn"))
        )
        self.popen = subprocess.Popen(
            ["node", str(root / "node_modules" / "node-red" / "red.js"), "--userDir", str(user)],
            stdout=None if os.environ.get("OORT_BENCH_NODERED_LOG") else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.state()
                break
            except (httpx.HTTPError, ValueError):
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("node-red did not start") from None
                time.sleep(0.2)

    def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/count", timeout=10).json()
        return doc

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._tmp.cleanup()


def _send(port: int, path: str, count: int, rate: float) -> Proc:
    args = ["send", "--port", str(port), "--path", path, "--clients", "4", "--count", str(count)]
    return Proc(["-m", "benchmarks.loadgen", *args, "--rate", str(rate), "--linger", "300"], quiet=True)


def _nodered_run(red: NodeRed, count: int, rate: float, timeout: float) -> tuple[float, float, float, int]:
    """(rate achieved, send seconds, seconds to catch up after sending, peak RSS KiB) of one run."""
    expect = red.state()["count"] + count // 2  # half of the messages pass the switch
    peak = rss_kb(red.popen.pid)
    with _send(red.port, WS_PATH, count, rate) as lg:
        start = lg.wait_event("start")["t"]
        done = lg.wait_event("done", timeout=timeout)
        sent_at = time.time()
        deadline = time.monotonic() + timeout
        while True:
            peak = max(peak, rss_kb(red.popen.pid))
            state = red.state()
            if state["count"] >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    if state["count"] < expect:
        raise RuntimeError(f"node-red counted {state['count']} of {expect}")
    end = state["t"] / 1000.0
    return count / (end - start), done["seconds"], max(0.0, end - sent_at), peak


def _oort_paced(d: Daemon, rate: float, seconds: float) -> bool:
    from benchmarks.scenarios import _paced_run

    kept, _, _ = _paced_run(d, "p1", rate, seconds)
    return kept


def _nodered_paced(red: NodeRed, rate: float, seconds: float) -> bool:
    count = int(rate * seconds)
    _, send_seconds, backlog, _ = _nodered_run(red, count, rate, timeout=seconds * 10 + 60)
    return send_seconds <= seconds * 1.05 and backlog < 0.5


def p1_compare(params: Any, oort: list[float], daemon: Daemon | None = None) -> dict[str, Any]:
    root = nodered_dir()
    if root is None:
        return {"skipped": "node-red is not installed (npm install node-red in ~/.cache/oort-bench/nodered)"}
    count = params.p1_count
    out: dict[str, Any] = {}
    red = NodeRed(root)
    try:
        _nodered_run(red, 2000, 0, 60)  # warm-up
        rates, peaks = [], []
        for i in range(params.runs):
            rate, _, _, peak = _nodered_run(red, count, 0, 600)
            rates.append(rate)
            peaks.append(peak / 1024)
            log(
                f"  node-red all at once, run {i + 1}/{params.runs}: {rate:,.0f} msgs/s, peak RSS {peak / 1024:.0f} MB"
            )
        rates.sort()
        median = rates[len(rates) // 2]
        oort_median = sorted(oort)[len(oort) // 2]
        out["all_at_once_msgs_per_s"] = round(median)
        out["all_at_once_peak_rss_mb"] = round(max(peaks))
        out["oort_over_nodered_all_at_once"] = round(oort_median / median, 2)
        out["target_all_at_once"] = ">= 4x"
        if not params.quick and daemon is not None:
            seconds = 3.0
            best = {"oort": 0.0, "node_red": 0.0}
            for rate in PACED_RATES:
                if not best["node_red"] and _nodered_paced(red, rate, seconds):
                    best["node_red"] = rate
                if not best["oort"] and _oort_paced(daemon, rate, seconds):
                    best["oort"] = rate
                log(f"  paced {rate:,}/s: best so far {best}")
                if best["oort"] and best["node_red"]:
                    break
            out["paced_highest_rate_oort"] = best["oort"]
            out["paced_highest_rate_node_red"] = best["node_red"]
            if best["node_red"]:
                out["paced_ratio"] = round(best["oort"] / best["node_red"], 2)
    finally:
        red.stop()
    return out
