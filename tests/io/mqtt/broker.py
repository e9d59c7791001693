"""A real Mosquitto broker for the MQTT tests, and its command-line clients as independent peers.

``Broker`` writes a mosquitto.conf into a temporary folder with four listeners on free 127.0.0.1 ports:
``plain`` (anonymous), ``tls`` (server certificate of the test CA), ``mtls`` (client certificate required)
and ``auth`` (username/password from a password file), plus persistence in the folder, so a persistent session
and its queued messages survive a restart. ``start``/``kill``/``stop`` run and end the process; readiness is
Mosquitto's own "running" log line, never a sleep.

``publish`` and ``subscribe`` run ``mosquitto_pub``/``mosquitto_sub`` (Debian's mosquitto-clients), so what
Oort sends and receives is checked by a client that shares no code with it.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import final

import trio

from tests.daemon_process import free_port
from tests.tls_certs import Certs

MOSQUITTO = "/usr/sbin/mosquitto"
USER, PASSWORD = "oort", "s3cret-pw"


@final
class Broker:
    """One Mosquitto configuration; ``start`` it in a nursery, ``kill`` or ``stop`` it, start it again."""

    def __init__(self, folder: Path, certs: Certs, *, secured: bool = True) -> None:
        self.folder = folder
        self.secured = secured  # the tls, mtls and auth listeners (per-listener settings) besides plain
        self.certs = certs
        self.plain, self.tls, self.mtls, self.auth = (free_port() for _ in range(4))
        self.only_plain = False  # start with the plain listener alone on a second port (see ``side``)
        self.side = free_port()  # a listener Oort is never told about: publish "while Oort is away"
        self._process: trio.Process | None = None
        folder.mkdir(parents=True, exist_ok=True)
        passwords = folder / "passwords"
        passwords.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), USER, PASSWORD], check=True)
        passwords.chmod(0o600)
        self._passwords = passwords

    def url(self, listener: str = "plain") -> str:
        port = getattr(self, listener)
        return f"{'ssl' if listener in ('tls', 'mtls') else 'tcp'}://127.0.0.1:{port}"

    def _config(self, side_only: bool) -> Path:
        c = self.certs
        tls = f"cafile {c.ca}\ncertfile {c.server_cert}\nkeyfile {c.server_key}\n"
        lines = [
            # Per-listener settings (the auth listener's password file) also fence messages by listener: a
            # persistent session that is offline then gets nothing queued. So only a secured broker has them.
            "per_listener_settings true" if self.secured else "per_listener_settings false",
            # Run as root (CI), Mosquitto drops to the "mosquitto" user, who cannot read the test's files.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if side_only:
            lines += [f"listener {self.side} 127.0.0.1", "allow_anonymous true"]
        elif not self.secured:
            lines += [
                f"listener {self.plain} 127.0.0.1",
                f"listener {self.side} 127.0.0.1",
                "allow_anonymous true",
            ]
        else:
            lines += [
                f"listener {self.plain} 127.0.0.1",
                "allow_anonymous true",
                f"listener {self.side} 127.0.0.1",
                "allow_anonymous true",
                f"listener {self.tls} 127.0.0.1",
                "allow_anonymous true",
                tls,
                f"listener {self.mtls} 127.0.0.1",
                "allow_anonymous true",
                tls + "require_certificate true",
                f"listener {self.auth} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {self._passwords}",
            ]
        path = self.folder / ("side.conf" if side_only else "mosquitto.conf")
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start(self, nursery: trio.Nursery, *, side_only: bool = False) -> None:
        """Run Mosquitto and return once it logged that it is running."""
        assert self._process is None, "already running"
        running = trio.Event()
        failed: list[str] = []

        async def run(task_status: trio.TaskStatus[trio.Process]) -> None:
            await trio.run_process(
                [MOSQUITTO, "-c", str(self._config(side_only))],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
                task_status=task_status,
            )

        self._process = process = await nursery.start(run)

        async def pump() -> None:
            assert process.stderr is not None
            buffered = b""
            async for chunk in process.stderr:
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    if b" running" in line:
                        running.set()
                    if b"Error" in line:
                        failed.append(line.decode(errors="replace"))
            running.set()  # it exited

        nursery.start_soon(pump)
        await running.wait()
        if process.returncode is not None or failed:
            raise RuntimeError(f"mosquitto did not start: {failed}")

    async def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye (persistence as of its last save)."""
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM: a clean shutdown that saves sessions and queued messages."""
        await self._end(signal.SIGTERM)

    async def _end(self, sig: int) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(sig)
        await process.wait()


@asynccontextmanager
async def running_broker(folder: Path, certs: Certs, *, secured: bool = True) -> AsyncIterator[Broker]:
    """A started broker, stopped (and its tasks joined) on exit."""
    broker = Broker(folder, certs, secured=secured)
    async with trio.open_nursery() as nursery:
        await broker.start(nursery)
        try:
            yield broker
        finally:
            await broker.kill()


def _client_args(broker: Broker, listener: str, version: str) -> list[str]:
    port = broker.side if listener == "side" else getattr(broker, listener)
    args = ["-h", "127.0.0.1", "-p", str(port), "-V", version]
    if listener in ("tls", "mtls"):
        args += ["--cafile", str(broker.certs.ca)]
    if listener == "mtls":
        args += ["--cert", str(broker.certs.client_cert), "--key", str(broker.certs.client_key)]
    if listener == "auth":
        args += ["-u", USER, "-P", PASSWORD]
    return args


async def publish(
    broker: Broker,
    topic: str,
    messages: Sequence[str],
    *,
    qos: int = 1,
    listener: str = "plain",
    version: str = "mqttv311",
    retain: bool = False,
) -> None:
    """Publish each message (one per line, so no newlines in them) with ``mosquitto_pub -l``; returns once the
    client exited, i.e. after the broker acknowledged them (QoS 1/2)."""
    assert all("\n" not in m for m in messages)
    args = ["mosquitto_pub", *_client_args(broker, listener, version), "-t", topic, "-q", str(qos), "-l"]
    if retain:
        args.append("-r")
    await trio.run_process(args, stdin=("\n".join(messages) + "\n").encode(), capture_stdout=True)


@asynccontextmanager
async def subscribe(
    broker: Broker,
    topic: str,
    *,
    qos: int = 1,
    listener: str = "plain",
    version: str = "mqttv311",
) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[str, str]]]:
    """Run ``mosquitto_sub -v`` on ``topic``; yields a channel of (topic, payload) once it is subscribed."""
    send, recv = trio.open_memory_channel[tuple[str, str]](10_000)
    args = [
        "stdbuf",  # line-buffered stdout: each message is seen when it arrives, not when a pipe buffer fills
        "-oL",
        "mosquitto_sub",
        *_client_args(broker, listener, version),
        "-t",
        topic,
        "-q",
        str(qos),
        "-v",
        "-d",  # debug lines include "received SUBACK": the moment the subscription exists
    ]
    subscribed = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[trio.Process]) -> None:
            await trio.run_process(
                args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False, task_status=task_status
            )

        process: trio.Process = await nursery.start(run)

        async def pump() -> None:
            assert process.stdout is not None
            buffered = b""
            async with send:
                async for chunk in process.stdout:
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace")
                        if "received SUBACK" in line:
                            subscribed.set()
                        elif line.startswith("Client ") or line.startswith("Subscribed"):
                            continue  # other debug lines
                        elif line and " " in line:
                            got_topic, _, payload = line.partition(" ")
                            await send.send((got_topic, payload))

        nursery.start_soon(pump)
        with trio.fail_after(10):
            await subscribed.wait()
        try:
            yield recv
        finally:
            process.kill()
