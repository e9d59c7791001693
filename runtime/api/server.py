"""Runs the REST API on hypercorn's trio worker: ``serve_api`` binds, reports the port, serves until cancelled."""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Final, cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from runtime.api.auth import KEY_DIR, Guard
from runtime.api.routes import make_app
from runtime.api.tokens import is_loopback, local_token
from runtime.engine import Engine
from runtime.errors import ServerStartError, leaves

LOGGER = logging.getLogger("oort.api.server")
HYPERCORN_LOGGER = logging.getLogger("oort.api.hypercorn")
# Where each listener is announced, once; shown whatever the log level (runtime/logsetup.py).
LISTENING = logging.getLogger("oort.listening")
# hypercorn's own "Running on ..." would repeat our one "REST API listening on" line; its warnings still show.
HYPERCORN_LOGGER.setLevel(logging.WARNING)

# Seconds in-flight requests get once the server is cancelled; REST calls are short, and a long wait here would
# hold up the daemon's shutdown ladder.
GRACEFUL_TIMEOUT: Final = 1.0


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _preflight_bind(host: str, port: int) -> None:
    """Bind (and close) a socket exactly as hypercorn will, so a bad address fails here, cleanly.

    hypercorn's ``Config._create_sockets`` leaks its socket when ``bind`` fails (a ResourceWarning, an error
    under ``-W error``). Checking first turns the usual failures (address in use, not available, unresolvable)
    into ``ServerStartError`` with nothing leaked; the tiny race left is still caught after ``serve`` starts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
    except OSError as exc:
        raise ServerStartError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc


def _config(host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [_bind_address(host, port)]
    config.accesslog = None
    config.errorlog = HYPERCORN_LOGGER
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.alpn_protocols = ["http/1.1"]
    return config


def make_guard(engine: Engine, host: str) -> Guard:
    """The REST server's guard from ``[basic]``; makes the daemon's token file on first start.

    Raises:
      ServerStartError: ``host`` is reachable from other machines and authentication is off, or the token
        cannot be read or made.
    """
    basic = engine.config.basic
    if not basic.authentication and not is_loopback(host):
        raise ServerStartError(
            f"basic.restIp {host} is reachable from other machines: set basic.authentication = true "
            "(or bind 127.0.0.1); see docs/security.md"
        )
    return Guard(
        authentication=basic.authentication,
        token=local_token(engine.data_dir, os.environ),
        key_dir=engine.etc_dir / KEY_DIR,
        allowed_origins=basic.allowed_origins,
        allowed_hosts=basic.allowed_hosts,
        open_metrics=basic.open_metrics,
    )


async def serve_api(
    engine: Engine,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the eKuiper REST API for ``engine`` on ``host:port``.

    Args:
      engine: the running engine (its ``run`` already started).
      host: the address to bind, e.g. ``127.0.0.1`` or ``0.0.0.0``.
      port: the TCP port; 0 picks a free one.
      task_status: receives the bound port once the socket listens (use with ``nursery.start``).

    Returns:
      This function never returns unless cancelled.

    Raises:
      ServerStartError: the address cannot be bound (``cannot bind HOST:PORT: <reason>``), or it is not a
        loopback address and ``basic.authentication`` is off. Raised from ``nursery.start`` as a plain
        exception, not inside an exception group.

    Cancellation: cancelling stops accepting at once; requests in flight are cut off after at most
    ``GRACEFUL_TIMEOUT`` seconds.
    """
    # RestApp speaks plain ASGI mappings rather than hypercorn's TypedDict unions; the protocol is the same.
    config = _config(host, port)
    _preflight_bind(host, port)
    rest_app = make_app(engine, make_guard(engine, host))
    app = cast(ASGIFramework, rest_app)
    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(functools.partial(serve, app, config, mode="asgi"))
            bound = urlsplit(binds[0]).port if binds else None
            if bound is None:
                raise ServerStartError(f"cannot bind {host}:{port}: hypercorn reported no listening address")
            LISTENING.info("REST API listening on %s", ", ".join(binds))
            task_status.started(bound)
            try:
                await trio.sleep_forever()
            finally:  # stopping: say what the stop waits for, if anything
                if rest_app.in_flight:
                    LOGGER.info(
                        "waiting up to %g s for %d REST request(s) in flight",
                        GRACEFUL_TIMEOUT,
                        rest_app.in_flight,
                    )
    except BaseExceptionGroup as group:
        # hypercorn's bind failure arrives as ExceptionGroup(ExceptionGroup(OSError)) (hypercorn's trio worker); callers
        # should see one domain error, not the nesting of nurseries they do not own.
        failures = leaves(group)
        if all(isinstance(exc, OSError) for exc in failures):
            first = failures[0]
            reason = first.strerror if isinstance(first, OSError) and first.strerror else str(first)
            raise ServerStartError(f"cannot bind {host}:{port}: {reason}") from group
        if all(isinstance(exc, ServerStartError) for exc in failures):
            raise failures[0] from group
        raise
