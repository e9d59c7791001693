"""The ``httppush`` source factory and conf check: clients push bodies to a path of the engine's data server.

A stream ``CREATE STREAM s () WITH (TYPE="httppush", DATASOURCE="/api/data", FORMAT="json")`` takes every
POST (or the conf group's ``method``) to ``/api/data`` on the data server (``[source] httpServerIp`` and
``httpServerPort`` of ``oort.toml``): each body is decoded with the stream's FORMAT (a JSON array gives one row
per element) and answered once the rules reading the stream took its rows.

The data server's modules are imported only when a source runs (through ``Services.data_server``): they pull in
wsproto, which the registry (imported by every engine, CLI and test) does not need until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, final

import trio

from runtime.errors import PlanError
from runtime.formats.decode import Decoder, make_decoder
from runtime.io.contract import Source, SourceSpec
from runtime.io.httppush.conf import PushConf, parse_push_conf
from runtime.model import Outbox
from runtime.sql.ast import StreamDef, StreamOptions

RELEASE_TIMEOUT = 10.0  # bound on releasing the server (freeing the port) when a rule stops


@final
class PushSource:
    """Stream source ``TYPE="httppush"``: the bodies clients send to the DATASOURCE path.

    Each accepted request becomes one batch: its decoded rows as events whose ``meta`` is ``method``, ``path``,
    ``query`` (secret values masked), ``remoteAddr``, ``contentType`` and ``headers`` (without secret-named
    ones such as ``Authorization`` or ``Cookie``). A body that cannot be decoded becomes one ``ErrorItem`` (the
    client gets 400). ``ctx.connection.status`` is 1 while the path is served.
    """

    def __init__(self, spec: SourceSpec, conf: PushConf, decoder: Decoder) -> None:
        self._spec = spec
        self._conf = conf
        self._decoder = decoder

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Take pushed bodies until cancelled; the caller owns and closes ``send``.

        ``task_status.started()`` is called once the server's port is bound and the path registered.

        Returns: This function never returns unless cancelled.

        Raises:
          ServerStartError: the data server could not be started (address in use, bad TLS files).
          SourceError: another conf group (token, origins, size cap) serves the path already.

        Cancellation: unregisters the path (requests waiting on this rule are answered without it); the last
        user of the data server stops it, so the port is free when this returns.
        """
        spec = self._spec
        ctx = spec.ctx
        stack = AsyncExitStack()
        await stack.enter_async_context(
            ctx.services.data_server.push(
                spec.datasource,
                self._conf.method,
                spec.stream,
                self._decoder,
                send,
                self._conf,
                clock=ctx.clock,
                metrics=ctx.connection,
                owner=f"rule {ctx.rule_id} (stream {spec.stream})",
            )
        )
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT):
                await stack.aclose()

    def __repr__(self) -> str:
        return f"<PushSource stream={self._spec.stream} {self._conf.method} {self._spec.datasource}>"


def httppush_source(spec: SourceSpec) -> Source:
    """Source factory for ``TYPE="httppush"``.

    Raises:
      PlanError: a DATASOURCE that is not a URL path (``/...``), a bad conf group (every problem listed) or a
        FORMAT that cannot be decoded; the message names the stream.
    """
    where = f"stream {spec.stream}"
    path = spec.datasource
    if not path.startswith("/"):
        raise PlanError(f"{where}: httppush DATASOURCE must be a URL path such as '/api/data', got {path!r}")
    conf = parse_push_conf(dict(spec.props), f"{where}: httppush conf group")
    definition = spec.definition or StreamDef(
        spec.stream, "stream", (), StreamOptions(datasource=path, format=spec.format or "json")
    )
    return PushSource(spec, conf, make_decoder(definition))


def check_httppush_conf(props: Mapping[str, Any], where: str) -> None:
    """The registry's conf group check: every wrong key or value of an httppush conf group at once.

    Raises:
      PlanError: unknown keys (naming the nearest valid one) and bad values, each prefixed by ``where``.
    """
    parse_push_conf(dict(props), where)
