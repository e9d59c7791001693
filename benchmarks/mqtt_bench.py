"""P8: MQTT ingest (QoS 0 and 1) -> ``WHERE`` -> nop, against a raw paho-mqtt subscriber loop in the same run.

Both sides drain the same thing: a backlog of N messages the broker (Debian's Mosquitto, started here) queued
for a persistent session while its subscriber was away. A run subscribes once (session created), disconnects,
publishes the N messages with ``mosquitto_pub -l`` (C, faster than either subscriber), then reconnects and
times the drain: from the reconnect request to the N-th message processed. This measures what the subscriber
can take, not what a publisher can send. QoS 0 messages are queued too (``queue_qos0_messages``).

- Oort: a daemon rule ``SELECT * FROM s WHERE temperature > 50`` -> nop on an mqtt stream with
  ``enableClientSession``; the rule is stopped while the backlog is published and started to drain it. The end is
  the source's ``last_invocation``.
- Baseline: ``python -m benchmarks.mqtt_bench sub`` - paho-mqtt's own ``loop_forever`` (its socket, its thread-free
  select loop) with ``json.loads`` and the same filter per message, acknowledging as paho does by default.

eKuiper publishes 10-12k msgs/s per core for this path (its perf-daily workflow); issue 14's target is
>= 0.9x the raw paho loop.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import Daemon, free_port, log

SQL = "SELECT * FROM s{qos} WHERE temperature > 50"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@contextmanager
def broker() -> Iterator[int]:
    """A Mosquitto on a free port that queues QoS 0 and 1 messages for offline persistent sessions."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="oort-bench-mqtt-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nqueue_qos0_messages true\nmax_queued_messages 0\nmax_queued_bytes 0\n"
            "log_type error\n"
        )
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_port(port)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_port(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def publish_backlog(port: int, topic: str, count: int, qos: int) -> None:
    """N JSON messages, half of them above the filter's threshold, published with mosquitto_pub -l."""
    lines = "".join(
        f'{{"temperature": {(i * 7) % 100}, "humidity": {i % 60}, "id": {i}}}\n' for i in range(count)
    )
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos), "-l"],
        input=lines.encode(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _source(status: dict[str, Any], qos: int, key: str) -> int:
    return int(status.get(f"source_s{qos}_0_{key}", 0))


def oort_run(d: Daemon, port: int, qos: int, count: int) -> float:
    rule = f"p8q{qos}"
    d.call("POST", f"/rules/{rule}/stop", expect=200)
    publish_backlog(port, f"bench/q{qos}", count, qos)
    start = time.time()
    d.call("POST", f"/rules/{rule}/start", expect=200)
    status = d.wait_until(
        rule, lambda s: _source(s, qos, "records_in_total") >= count, timeout=300, poll=0.05
    )
    got = _source(status, qos, "records_in_total")
    if got < count:
        raise RuntimeError(f"{rule}: only {got}/{count} messages arrived")
    return count / (_source(status, qos, "last_invocation") / 1000.0 - start)


def baseline_run(port: int, qos: int, count: int) -> float:
    topic = f"bench/raw{qos}"
    args = ["-m", "benchmarks.mqtt_bench", "sub", "--port", str(port), "--qos", str(qos), "--topic", topic]
    sub = subprocess.Popen(
        [sys.executable, *args, "--count", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert sub.stdin is not None and sub.stdout is not None
    try:
        _event(sub, "subscribed")  # session created, then disconnected: now the backlog
        publish_backlog(port, topic, count, qos)
        sub.stdin.write("go\n")
        sub.stdin.flush()
        done = _event(sub, "done")
    finally:
        sub.kill()
        sub.wait()
    return count / (float(done["t"]) - float(done["start"]))


def _event(proc: subprocess.Popen[str], name: str) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        event = dict(json.loads(line))
        if event.get("event") == name:
            return event
    raise RuntimeError(f"the baseline subscriber exited ({proc.wait()}) before {name!r}")


def scenario(p: Any) -> dict[str, Any]:
    """P8 for QoS 0 and 1: medians of alternating Oort and baseline runs, one result with both ratios."""
    from benchmarks.scenarios import result

    count = 2_000 if p.quick else 100_000
    per_qos: dict[int, tuple[list[float], list[float]]] = {}
    with broker() as port, Daemon() as d:
        etc = Path(d._tmp.name) / "etc"
        groups = "".join(
            f'[b{q}]\nserver = "tcp://127.0.0.1:{port}"\nqos = {q}\nclientid = "oort-bench-q{q}"\n'
            "enableClientSession = true\n"
            for q in (0, 1)
        )
        (etc / "sources" / "mqtt.toml").write_text(groups)
        for qos in (0, 1):
            d.stream(
                f'CREATE STREAM s{qos} () WITH (DATASOURCE="bench/q{qos}", CONF_KEY="b{qos}", FORMAT="json")'
            )
            d.rule(f"p8q{qos}", SQL.format(qos=qos))
            d.wait_until(f"p8q{qos}", lambda s, q=qos: _source(s, q, "connection_status") == 1, timeout=30)
            oort_run(d, port, qos, min(count, 2_000))  # warm-up
            oort: list[float] = []
            base: list[float] = []
            for i in range(p.runs):
                oort.append(oort_run(d, port, qos, count))
                base.append(baseline_run(port, qos, count))
                log(
                    f"  QoS {qos} run {i + 1}/{p.runs}: oort {oort[-1]:,.0f} msgs/s, raw paho {base[-1]:,.0f} msgs/s"
                )
            per_qos[qos] = (oort, base)
    oort0, base0 = per_qos[0]
    oort1, base1 = per_qos[1]
    res = result(
        "P8",
        f"MQTT ingest (QoS 0; QoS 1 in extra): Mosquitto backlog of {count:,} msgs -> `{SQL.format(qos='')}` -> nop",
        "msgs/s",
        oort0,
        baseline=base0,
        baseline_name="raw paho-mqtt loop_forever + json.loads + filter",
        target=">= 0.9x baseline (issue 14)",
    )
    q1 = result("P8q1", "QoS 1", "msgs/s", oort1, baseline=base1)
    ratios = [r for r in (res["ratio"], q1["ratio"]) if r is not None]
    res["met"] = bool(ratios) and min(ratios) >= 0.9
    res["extra"]["qos1"] = {
        "oort": q1["oort"],
        "baseline": q1["baseline"],
        "ratio": q1["ratio"],
        "runs": q1["runs"],
    }
    return res


def _sub(args: argparse.Namespace) -> None:
    """The baseline subscriber: paho's own loop, json.loads and the filter per message."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client_id = f"raw-bench-{args.qos}"
    state = {"n": 0, "hits": 0, "start": 0.0}
    loads = json.loads

    def on_message(client: Any, _u: Any, message: Any) -> None:
        if loads(message.payload)["temperature"] > 50:
            state["hits"] += 1
        state["n"] += 1
        if state["n"] >= args.count:
            print(json.dumps({"event": "done", "t": time.time(), "start": state["start"]}), flush=True)
            client.disconnect()

    def on_subscribe(client: Any, *_: Any) -> None:
        client.disconnect()

    first = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    first.on_subscribe = on_subscribe
    first.on_connect = lambda c, *_: c.subscribe(args.topic, args.qos)
    first.connect("127.0.0.1", args.port)
    first.loop_forever()
    print(json.dumps({"event": "subscribed"}), flush=True)
    sys.stdin.readline()
    state["start"] = time.time()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt_bench")
    parser.add_argument("mode", choices=["sub"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--topic", default="bench/raw")
    parser.add_argument("--count", type=int, default=10_000)
    _sub(parser.parse_args(argv))


if __name__ == "__main__":
    main()
