"""Process plumbing for the scenarios: the daemon under test, helper processes, RSS, medians and progress."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"REST API listening on (http://[\d.]+:\d+)")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_fd_limit() -> None:
    """Let this process and its children hold a few thousand sockets (P6 opens 1,000 clients)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


class Proc:
    """A helper process whose stdout carries one JSON event per line; stderr (progress) is passed through."""

    def __init__(self, args: list[str], *, quiet: bool = False) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.events: list[dict[str, Any]] = []

    def wait_event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the process prints ``{"event": name}`` (or fail when it exits first / time runs out)."""
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("event") == name:
                return event
        assert self.popen.stdout is not None
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.args[:2]} exited ({self.popen.wait()}) before {name!r}")
            try:
                event = dict(json.loads(line))
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == name:
                return event
        raise TimeoutError(f"{self.args[:2]}: no {name!r} within {timeout} s")

    def wait(self, timeout: float = 60.0) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loadgen(*args: str, quiet: bool = False) -> Proc:
    return Proc(["-m", "benchmarks.loadgen", *args], quiet=quiet)


class Daemon:
    """``python -m runtime serve`` with its own etc/ and data/ in a temp dir, REST on a free port.

    ``ws_port`` is the websocket data server's port; ``feeds`` maps client-mode conf keys to ``host:port``.
    """

    def __init__(self, *, feeds: dict[str, str] | None = None, log_level: str = "warn") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="oort-bench-")
        root = Path(self._tmp.name)
        etc, data = root / "etc", root / "data"
        (etc / "sources").mkdir(parents=True)
        self.ws_port = free_port()
        (etc / "oort.toml").write_text(
            f'[basic]\nrestIp = "127.0.0.1"\nrestPort = 0\nlogLevel = "{log_level}"\n'
            f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {self.ws_port}\n'
        )
        ws_conf = '[default]\naddr = ""\npingInterval = 0\n'
        for key, addr in (feeds or {}).items():
            ws_conf += f'[{key}]\naddr = "{addr}"\n'
        (etc / "sources" / "websocket.toml").write_text(ws_conf)
        self._stderr: IO[bytes] = open(root / "daemon.log", "w+b")  # noqa: SIM115 - closed in stop()
        self._log_path = root / "daemon.log"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(data)],
            cwd=os.environ.get("OORT_BENCH_ENGINE") or REPO,  # another checkout, for before/after comparisons
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"daemon did not start: {self._log_path.read_text()[-2000:]}")
            match = LISTENING.search(self._log_path.read_text(errors="replace"))
            if match:
                url = match.group(1)
            else:
                time.sleep(0.02)
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        try:
            resp = self.http.request(method, path, json=body)
        except (httpx.RemoteProtocolError, httpx.ConnectError):
            # A keep-alive connection the server closed while idle (hypercorn's 5 s keep-alive timeout) during a
            # long run: the request never reached the app, so sending it again on a new connection is safe.
            resp = self.http.request(method, path, json=body)
        if expect is not None and resp.status_code != expect:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def stream(self, sql: str) -> None:
        self.call("POST", "/streams", {"sql": sql}, expect=201)

    def rule(
        self, rule_id: str, sql: str, actions: list[dict[str, Any]] | None = None, **options: Any
    ) -> None:
        body: dict[str, Any] = {"id": rule_id, "sql": sql, "actions": actions or [{"nop": {}}]}
        if options:
            body["options"] = options
        self.call("POST", "/rules", body, expect=201)

    def status(self, rule_id: str) -> dict[str, Any]:
        status: dict[str, Any] = self.call("GET", f"/rules/{rule_id}/status", expect=200)
        return status

    def wait_until(
        self, rule_id: str, done: Callable[[dict[str, Any]], bool], timeout: float, poll: float = 0.1
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(rule_id)
            if done(status) or time.monotonic() > deadline:
                return status
            time.sleep(poll)

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
