"""The ``httppull`` source and ``rest`` sink factories, the httppull conf group check and its connection test.

A source reads its conf group (``etc/sources/httppull.toml``, CONF_KEY, merged with EXTRA by the planner) and
polls ``url`` + DATASOURCE. A sink is configured in the rule action itself.

The connector modules are imported inside the factories: they pull in httpx, which the registry (imported by
every engine, CLI and test) does not need until an HTTP rule is actually built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import trio

from runtime.clock import Clock
from runtime.errors import EngineError, PlanError, SourceError
from runtime.formats import encoder_formats
from runtime.formats.decode import make_decoder
from runtime.io.contract import Sink, SinkSpec, Source, SourceSpec
from runtime.io.http.conf import parse_pull_conf, parse_rest_conf
from runtime.io.services import Services
from runtime.sql.ast import StreamDef, StreamOptions

LOGGER = logging.getLogger("oort.http")


def httppull_source(spec: SourceSpec) -> Source:
    """Source factory for ``TYPE="httppull"``.

    Raises:
      PlanError: a bad conf group (every problem listed), a FORMAT that cannot be decoded, or
        ``responseType = "body"`` with a FORMAT other than json; the message names the stream.
    """
    where = f"stream {spec.stream}: httppull conf group"
    conf = parse_pull_conf(dict(spec.props), spec.datasource, where)
    definition = spec.definition or StreamDef(
        spec.stream, "stream", (), StreamOptions(datasource=spec.datasource, format=spec.format or "json")
    )
    fmt = (definition.options.format or "json").lower()
    if conf.request.response_type == "body" and fmt != "json":
        raise PlanError(
            f"{where}: responseType 'body' reads a JSON code field; FORMAT must be json, got {fmt}"
        )
    from runtime.io.http.pull import HttpPullSource

    return HttpPullSource(spec, conf, make_decoder(definition))


def rest_sink(spec: SinkSpec) -> Sink:
    """Sink factory for the ``rest`` action.

    Raises:
      PlanError: unknown keys or bad values (every problem listed), a format that does not fit ``bodyType``, or a
        ``url`` or header template that does not parse.
    """
    where = f"rest sink (action {spec.index})"
    conf = parse_rest_conf(dict(spec.props), where, encoders=tuple(encoder_formats()))
    from runtime.io.http.rest import RestSink

    return RestSink(spec, conf)


def check_httppull_conf(props: Mapping[str, Any], where: str) -> None:
    """The registry's conf group check: every wrong key or value of an httppull conf group at once.

    Raises:
      PlanError: unknown keys (naming the nearest valid one) and bad values, each prefixed by ``where``.
    """
    parse_pull_conf(dict(props), "", where)


async def test_httppull_connection(services: Services, clock: Clock, props: Mapping[str, Any]) -> str:
    """The registry's connection test: one request as a poll would make it (``datasource`` is appended to url).

    Succeeds on an answer a poll would accept (status 2xx and, with ``responseType = "body"``, a 2xx code).

    Raises:
      EngineError: invalid properties, or no acceptable answer within the conf group's timeout.
    """
    import httpx

    from runtime.io.http.client import body_code_problem, failure_reason, open_client, request_headers

    values = dict(props)
    datasource = str(values.pop("datasource", "") or "")
    conf = parse_pull_conf(values, datasource, "connection test").request
    try:
        client = open_client(conf.tls, "httppull")
    except SourceError as exc:
        raise EngineError(f"connection test: {exc.message}") from None
    reason = f"no answer within {conf.timeout:g}s"
    body = None if conf.body_type == "none" else str(values.get("body", "")).encode()
    async with client:
        with trio.move_on_after(conf.timeout if conf.timeout > 0 else math.inf):
            try:
                response = await client.request(
                    conf.method, conf.url, headers=request_headers(conf), content=body
                )
            except httpx.HTTPError as exc:  # every failure has one answer below; the reason goes to the log
                reason = failure_reason(exc)
            else:
                problem = None
                if not response.is_success:
                    problem = f"status {response.status_code}"
                elif conf.response_type == "body":
                    problem = body_code_problem(response.content)
                if problem is None:
                    return f"{conf.method} {conf.redacted} answered {response.status_code}"
                reason = problem
    # One answer for every failure (refused, DNS, TLS, status): a detailed one would let a REST caller map which
    # hosts and ports the daemon's network has open. The reason goes to the daemon's log.
    LOGGER.info("httppull connection test to %s failed: %s", conf.redacted, reason)
    raise EngineError(
        f"cannot get an acceptable answer from {conf.redacted} (the daemon's log has the reason)"
    )
