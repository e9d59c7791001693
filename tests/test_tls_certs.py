"""The generated certificates really do TLS: server verified by the CA, client cert accepted, other CA refused."""

from __future__ import annotations

import ssl

import trio

from tests.tls_certs import Certs


async def _handshake(certs: Certs, client_ctx: ssl.SSLContext) -> BaseException | None:
    """Run one TLS handshake against a local mTLS server; returns the client's error, if any."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def serve_one(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        stream = await listeners[0].accept()
        tls = trio.SSLStream(stream, server_ctx, server_side=True)
        try:
            await tls.do_handshake()
            await tls.send_all(b"ok")
        except trio.BrokenResourceError:
            pass
        finally:
            await tls.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_one)
            stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=client_ctx)
            try:
                await stream.do_handshake()
                assert await stream.receive_some(2) == b"ok"
            except trio.BrokenResourceError as exc:
                return exc
            finally:
                await trio.aclose_forcefully(stream)
                await listeners[0].aclose()
    return None


async def test_mutual_tls_with_generated_certs(certs: Certs) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.load_cert_chain(certs.client_cert, certs.client_key)
    assert await _handshake(certs, ctx) is None


async def test_other_ca_is_refused(certs: Certs) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.other_ca))
    ctx.load_cert_chain(certs.client_cert, certs.client_key)
    error = await _handshake(certs, ctx)
    assert error is not None
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
