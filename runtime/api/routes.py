"""The eKuiper REST endpoints (eKuiper docs api/restapi/overview.md) over the engine, and the one table
mapping engine errors to replies.

Engine methods raise ``EngineError``s carrying eKuiper's inner messages; ``ERRORS`` adds eKuiper's per-endpoint
prefix and picks the code and status (404 for code 1002, else 400), quirks included.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, final

import attrs
import orjson

from runtime.api import views as manage
from runtime.api.app import HttpError, Request, Response, RestApp, Router, json_body, text
from runtime.api.auth import Guard
from runtime.api.manage_routes import add_manage_routes
from runtime.api.openapi import openapi_document
from runtime.config import VERSION
from runtime.engine import Engine
from runtime.errors import EngineError, NotFoundError, RuleError, StorageError, StreamError

KINDS: Final = ("stream", "table")


@final
@attrs.frozen
class _Mapping:
    """Errors of class ``error`` get ``prefix`` (``{kind}``/``{Kind}`` filled in) and ``code`` (None: keep own)."""

    error: type[EngineError]
    prefix: str
    code: int | None = None


# eKuiper's handleError prefixes per endpoint (internal/server/rest.go), first matching class wins. Where eKuiper
# wraps an error in a plain Go error, the code collapses to 1000 (or 3000 for stream commands) and a not-found
# turns into 400: describe of a missing stream and delete of a missing rule are the documented cases.
ERRORS: Final[dict[str, tuple[_Mapping, ...]]] = {
    "stream.list": (_Mapping(EngineError, "{Kind} command error", 3000),),
    "stream.create": (_Mapping(EngineError, "{Kind} command error", 3000),),
    "stream.describe": (_Mapping(EngineError, "describe {kind} error", 3000),),
    "stream.replace": (
        _Mapping(NotFoundError, "{Kind} command error"),
        _Mapping(EngineError, "{Kind} command error", 3000),
    ),
    "stream.drop": (
        _Mapping(NotFoundError, "delete {kind} error"),
        # The engine's "stream x has been referenced by other rules": eKuiper answers it unprefixed, code 1000.
        _Mapping(StreamError, "", 1000),
        _Mapping(EngineError, "delete {kind} error"),
    ),
    "rule.list": (_Mapping(EngineError, "Show rules error"),),
    # Rule validation errors ("rule x already exists", "Missing rule id.") are plain Go errors: code 1000.
    "rule.create": (_Mapping(RuleError, "", 1000), _Mapping(EngineError, "")),
    "rule.get": (_Mapping(EngineError, "Describe rule error"),),
    "rule.update": (
        _Mapping(RuleError, "Update rule error", 1000),
        _Mapping(EngineError, "Update rule error"),
    ),
    "rule.delete": (
        _Mapping(NotFoundError, "Delete rule error", 1000),
        _Mapping(EngineError, "Delete rule error"),
    ),
    "rule.start": (_Mapping(EngineError, "start rule error"),),
    "rule.stop": (_Mapping(EngineError, "stop rule error"),),
    "rule.restart": (_Mapping(EngineError, "restart rule error"),),
    "rule.status": (_Mapping(EngineError, "get rule status error"),),
    "rule.status_all": (_Mapping(EngineError, "get rules status error"),),
    "rule.scantables": (_Mapping(EngineError, "get rule scan tables error"),),
    "memory.publish": (_Mapping(EngineError, "publish error"),),
    "info": (_Mapping(EngineError, ""),),
}


def to_http_error(exc: EngineError, op: str, kind: str = "stream") -> HttpError:
    """Apply ``ERRORS[op]`` to an engine error: eKuiper's status, code and ``<prefix>: <message>``; the data
    dir refusing a write is the server's failure (500), not the request's."""
    if isinstance(exc, StorageError):
        return HttpError(500, exc.code, exc.message)
    for mapping in ERRORS[op]:
        if isinstance(exc, mapping.error):
            prefix = mapping.prefix.format(kind=kind, Kind=kind.capitalize())
            code = exc.code if mapping.code is None else mapping.code
            message = f"{prefix}: {exc.message}" if prefix else exc.message
            return HttpError(404 if code == 1002 else 400, code, message)
    return HttpError(400, exc.code, exc.message)


@contextmanager
def _mapped(op: str, kind: str = "stream") -> Iterator[None]:
    try:
        yield
    except EngineError as exc:
        raise to_http_error(exc, op, kind) from exc


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool`` truth values (eKuiper reads ``?force=`` with it); anything else is false."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


def _statement(req: Request) -> str:
    """The ``sql`` of a ``{"sql": "..."}`` body (a missing one is empty, as Go's decoder leaves it)."""
    try:
        doc = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 1001, f"Invalid body: Error decoding the statement descriptor: {exc}") from exc
    sql = doc.get("sql", "") if isinstance(doc, dict) else None
    if not isinstance(sql, str):
        raise HttpError(
            400, 1001, 'Invalid body: Error decoding the statement descriptor: expect {"sql": "<text>"}'
        )
    return sql


def _rule_json(req: Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 1000, f"invalid rule json: {exc}") from exc
    if not isinstance(doc, dict):
        raise HttpError(400, 1000, "invalid rule json: the rule must be a JSON object")
    return doc


def _rows(req: Request) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 1001, f"Invalid body: {exc}") from exc
    rows = [doc] if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise HttpError(400, 1001, "Invalid body: expect a JSON object or an array of JSON objects")
    return rows


@final
class _Handlers:
    """One method per endpoint; ``kind`` ("stream"/"table") is bound per route by ``build_router``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def ping(self, req: Request) -> Response:
        return Response(200)

    async def info(self, req: Request) -> Response:
        with _mapped("info"):
            return json_body(_info(self._engine))

    async def list_streams(self, req: Request, *, kind: str) -> Response:
        with _mapped("stream.list", kind):
            return json_body(manage.list_streams(self._engine, kind, req.arg("kind")))

    async def create_stream(self, req: Request, *, kind: str) -> Response:
        sql = _statement(req)
        with _mapped("stream.create", kind):
            return text(self._engine.create_stream(kind, sql), 201)

    async def describe_stream(self, req: Request, *, kind: str) -> Response:
        with _mapped("stream.describe", kind):
            return json_body(self._engine.describe_stream(kind, req.params["name"]))

    async def replace_stream(self, req: Request, *, kind: str) -> Response:
        sql = _statement(req)
        with _mapped("stream.replace", kind):
            return text(self._engine.replace_stream(kind, req.params["name"], sql))

    async def drop_stream(self, req: Request, *, kind: str) -> Response:
        force = _parse_bool(req.arg("force"))
        with _mapped("stream.drop", kind):
            return text(await self._engine.drop_stream(kind, req.params["name"], force=force))

    async def list_rules(self, req: Request) -> Response:
        with _mapped("rule.list"):
            return json_body(self._engine.list_rules())

    async def create_rule(self, req: Request) -> Response:
        rule = _rule_json(req)
        with _mapped("rule.create"):
            return text(await self._engine.create_rule(rule), 201)

    async def get_rule(self, req: Request) -> Response:
        with _mapped("rule.get"):
            return json_body(self._engine.get_rule(req.params["id"]))

    async def update_rule(self, req: Request) -> Response:
        rule = _rule_json(req)
        with _mapped("rule.update"):
            return text(await self._engine.update_rule(req.params["id"], rule))

    async def delete_rule(self, req: Request) -> Response:
        with _mapped("rule.delete"):
            return text(await self._engine.delete_rule(req.params["id"]))

    async def start_rule(self, req: Request) -> Response:
        with _mapped("rule.start"):
            return text(await self._engine.start_rule(req.params["id"]))

    async def stop_rule(self, req: Request) -> Response:
        with _mapped("rule.stop"):
            return text(await self._engine.stop_rule(req.params["id"]))

    async def restart_rule(self, req: Request) -> Response:
        with _mapped("rule.restart"):
            return text(await self._engine.restart_rule(req.params["id"]))

    async def rule_status(self, req: Request) -> Response:
        with _mapped("rule.status"):
            return json_body(self._engine.rule_status(req.params["id"]), pretty=True)

    async def rule_scan_tables(self, req: Request) -> Response:
        with _mapped("rule.scantables"):
            return json_body(self._engine.rule_scan_tables(req.params["id"]))

    async def all_rule_status(self, req: Request) -> Response:
        with _mapped("rule.status_all"):
            return json_body(self._engine.all_rule_status())

    async def publish(self, req: Request) -> Response:
        rows = _rows(req)
        with _mapped("memory.publish"):
            await self._engine.publish(req.params["topic"], rows)
        return text(f"published {len(rows)} rows")


def build_router(engine: Engine) -> Router:
    """The route table of the eKuiper core endpoints plus Oort's ``POST /memory/{topic...}``."""
    h = _Handlers(engine)
    router = Router()
    router.add("GET", "/ping", h.ping)
    router.add("GET", "/", h.info)
    router.add("POST", "/", h.info)
    for kind in KINDS:
        base = f"/{kind}s"
        router.add("GET", base, functools.partial(h.list_streams, kind=kind))
        router.add("POST", base, functools.partial(h.create_stream, kind=kind))
        router.add("GET", base + "/{name}", functools.partial(h.describe_stream, kind=kind))
        router.add("PUT", base + "/{name}", functools.partial(h.replace_stream, kind=kind))
        router.add("DELETE", base + "/{name}", functools.partial(h.drop_stream, kind=kind))
    router.add("GET", "/rules", h.list_rules)
    router.add("POST", "/rules", h.create_rule)
    router.add("GET", "/rules/status/all", h.all_rule_status)  # before /rules/{id}/... (literal wins)
    router.add("GET", "/rules/{id}", h.get_rule)
    router.add("PUT", "/rules/{id}", h.update_rule)
    router.add("DELETE", "/rules/{id}", h.delete_rule)
    router.add("POST", "/rules/{id}/start", h.start_rule)
    router.add("POST", "/rules/{id}/stop", h.stop_rule)
    router.add("POST", "/rules/{id}/restart", h.restart_rule)
    router.add("GET", "/rules/{id}/status", h.rule_status)
    router.add("GET", "/rules/{id}/scantables", h.rule_scan_tables)
    router.add("POST", "/memory/{topic...}", h.publish)
    add_manage_routes(router, engine)
    document = orjson.dumps(openapi_document([*router.patterns, ("GET", "/openapi.json")]))

    async def openapi(req: Request) -> Response:
        return Response(200, document, "application/json")

    router.add("GET", "/openapi.json", openapi)
    return router


def make_app(engine: Engine, guard: Guard | None = None) -> RestApp:
    """The ASGI app serving ``engine`` (what ``serve_api`` hands to hypercorn), behind ``guard``."""
    return RestApp(
        build_router(engine), guard=guard, body_timeout=engine.config.basic.rest_body_timeout / 1000
    )


def _info(engine: Engine) -> dict[str, Any]:
    """``GET /``: eKuiper's info object."""
    return {
        "version": VERSION,
        "os": platform.system().lower(),
        "arch": platform.machine(),
        "upTimeSeconds": (engine.clock.now_ms() - engine.started_at) // 1000,
        "cpuCores": os.cpu_count(),
    }
