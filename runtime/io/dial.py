"""Dialling a server for a client connector (websocket client mode, MQTT): TCP, then TLS, and why it failed.

``dial`` completes the TLS handshake before returning, so a verify failure surfaces at once as
``trio.BrokenResourceError`` caused by the ``ssl`` error that names it. ``describe_failure`` turns any of the
``CONNECT_FAILURES`` into the one line a connection's status shows (``last_disconnected_message``).
"""

from __future__ import annotations

import os
import ssl

import trio

from runtime.errors import leaves

Transport = trio.SocketStream | trio.SSLStream[trio.SocketStream]

CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    ssl.SSLError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)
"""What dialling or a broken connection raises: refused/unreachable, TLS, the peer gone. All retried."""


async def dial(host: str, port: int, ssl_context: ssl.SSLContext | None) -> Transport:
    """Open a TCP connection and, with ``ssl_context``, complete the TLS handshake before returning.

    The caller bounds the whole dial with its connect timeout.

    Raises:
      OSError: refused or unreachable. trio.BrokenResourceError: the TLS handshake failed (see ``__cause__``).
    """
    tcp = await trio.open_tcp_stream(host, port)
    if ssl_context is None:
        return tcp
    tls = trio.SSLStream(tcp, ssl_context, server_hostname=host, https_compatible=True)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed connection attempt, fit for ``last_disconnected_message``."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc}"
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError) and exc.__cause__ is not None:
        return describe_failure(exc.__cause__)  # trio wraps the ssl error that says what went wrong
    if isinstance(exc, OSError) and isinstance(exc.__cause__, BaseExceptionGroup):
        # trio.open_tcp_stream: "all attempts to connect to h:p failed", caused by one error per address.
        # Each leaf's text repeats the address; its errno says all that is new.
        details = "; ".join(
            os.strerror(leaf.errno) if isinstance(leaf, OSError) and leaf.errno else str(leaf)
            for leaf in leaves(exc.__cause__)
        )
        return f"{exc}: {details}" if details else str(exc)
    if isinstance(exc, OSError):
        return str(exc)
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
        return "connection lost"
    return f"{type(exc).__name__}: {exc}"
