"""The management endpoints beyond the core set (eKuiper docs api/restapi/overview.md): details, schemas,
validation, topology, tags,
bulk start/stop, ruleset export/import and Prometheus metrics."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any, final

import orjson

from runtime.api import views as manage
from runtime.api.app import MAX_BODY_BYTES, HttpError, Request, Response, Router, json_body, text
from runtime.api.process_metrics import process_metrics_text
from runtime.config import PY_LOG_LEVELS, ConfKind
from runtime.engine import Engine
from runtime.errors import EngineError, SandboxError, StorageError

# A ruleset file may be as large as a ruleset sent inline.
MAX_IMPORT_BYTES = MAX_BODY_BYTES
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _json(req: Request) -> Any:
    try:
        return orjson.loads(req.body) if req.body else {}
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 1001, f"Invalid body: {exc}") from exc


def _tags(req: Request) -> list[str]:
    doc = _json(req)
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HttpError(400, 1001, 'Invalid body: expect {"tags": ["..."]}')
    return tags


def _fail(exc: EngineError, prefix: str) -> HttpError:
    status = 500 if isinstance(exc, StorageError) else 404 if exc.code == 1002 else 400
    return HttpError(status, exc.code, f"{prefix}: {exc.message}" if prefix else exc.message)


@final
class _Manage:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def details(self, req: Request, *, kind: str) -> Response:
        return json_body(manage.stream_details(self._engine, kind, req.arg("kind")))

    async def schema(self, req: Request, *, kind: str) -> Response:
        try:
            return json_body(manage.schema(self._engine, kind, req.params["name"]))
        except EngineError as exc:
            raise _fail(exc, f"describe {kind} error") from exc

    async def validate(self, req: Request) -> Response:
        doc = _json(req)
        if not isinstance(doc, dict):
            raise HttpError(400, 1000, "invalid rule json: the rule must be a JSON object")
        try:
            sources = self._engine.validate_rule(doc)
        except EngineError as exc:  # eKuiper answers an invalid rule with 422 and the reason as text
            return text(exc.message, 422)
        return json_body({"sources": sources, "valid": True})

    async def status_v2(self, req: Request) -> Response:
        try:
            return json_body(self._engine.rule_status(req.params["id"]))
        except EngineError as exc:
            raise _fail(exc, "get rule status error") from exc

    async def topo(self, req: Request) -> Response:
        try:
            return json_body(manage.topology(self._engine, req.params["id"]))
        except EngineError as exc:
            raise _fail(exc, "get rule topo error") from exc

    async def explain(self, req: Request) -> Response:
        try:
            return text(manage.explain(self._engine, req.params["id"]))
        except EngineError as exc:
            raise _fail(exc, "explain rule error") from exc

    async def tags(self, req: Request) -> Response:
        try:
            manage.change_tags(self._engine, req.params["id"], _tags(req), req.method)
        except EngineError as exc:
            raise _fail(exc, "") from exc
        return Response(200)

    async def match(self, req: Request) -> Response:
        return json_body({"rules": manage.match_tags(self._engine, _tags(req))})

    async def bulk(self, req: Request, *, start: bool) -> Response:
        return json_body(await manage.bulk(self._engine, _tags(req), start=start))

    async def export(self, req: Request) -> Response:
        return json_body(manage.export_ruleset(self._engine))

    async def import_(self, req: Request) -> Response:
        doc = _json(req)
        if not isinstance(doc, dict) or not ({"content", "file"} & set(doc)):
            raise HttpError(
                400, 1001, 'Invalid body: expect {"content": "<ruleset JSON>"} or {"file": "<path>"}'
            )
        try:
            # A local ruleset file inside the file roots, size-capped: read inline (trio's async path would
            # use a worker thread).
            if "content" in doc:
                raw = doc["content"]
            else:
                raw = self._engine.services.file_roots.read(str(doc["file"]), MAX_IMPORT_BYTES)
            ruleset = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
        except (SandboxError, orjson.JSONDecodeError) as exc:
            raise HttpError(400, 1001, f"import ruleset error: {exc}") from exc
        if not isinstance(ruleset, dict):
            raise HttpError(400, 1001, "import ruleset error: the ruleset must be a JSON object")
        try:
            return text(await manage.import_ruleset(self._engine, ruleset))
        except EngineError as exc:
            raise _fail(exc, "import ruleset error") from exc

    async def conf_groups(self, req: Request, *, kind: ConfKind) -> Response:
        try:
            return json_body(manage.conf_groups(self._engine, kind, req.params["type"]))
        except EngineError as exc:
            raise _fail(exc, "") from exc

    async def put_conf_group(self, req: Request, *, kind: ConfKind) -> Response:
        props = _json(req)
        if not isinstance(props, dict):
            raise HttpError(400, 1001, "Invalid body: expect a JSON object of conf properties")
        try:
            manage.put_conf_group(self._engine, kind, req.params["type"], req.params["key"], props)
        except EngineError as exc:
            raise _fail(exc, "") from exc
        return Response(200)

    async def delete_conf_group(self, req: Request, *, kind: ConfKind) -> Response:
        try:
            manage.remove_conf_group(self._engine, kind, req.params["type"], req.params["key"])
        except EngineError as exc:
            raise _fail(exc, "") from exc
        return Response(200)

    async def connection(self, req: Request) -> Response:
        props = _json(req)
        if not isinstance(props, dict):
            raise HttpError(400, 1001, "Invalid body: expect a JSON object of conf properties")
        try:
            return text(await manage.test_connection(self._engine, req.params["type"], props))
        except EngineError as exc:
            raise _fail(exc, "") from exc

    async def configs(self, req: Request) -> Response:
        doc = _json(req)
        if not isinstance(doc, dict):
            raise HttpError(400, 1001, "Invalid body: expect a JSON object")
        level = doc.get("logLevel") or ("debug" if doc.get("debug") is True else None)
        if doc.get("debug") is False and level is None:
            level = "info"
        if level is not None:
            if not isinstance(level, str) or level.lower() not in PY_LOG_LEVELS:
                choices = ", ".join(PY_LOG_LEVELS)
                raise HttpError(400, 1001, f"Invalid body: logLevel must be one of {choices}")
            logging.getLogger().setLevel(PY_LOG_LEVELS[level.lower()])
        return Response(204)

    async def stop(self, req: Request) -> Response:
        self._engine.shutdown_requested.set()
        return text("stop success")

    async def query(self, req: Request) -> Response:
        """``POST /query``: run a SELECT as a temporary rule; stream each emission as one NDJSON line."""
        doc = _json(req)
        sql = doc.get("sql") if isinstance(doc, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            raise HttpError(400, 1001, 'Invalid body: expect {"sql": "SELECT ..."}')
        engine = self._engine
        try:
            engine.validate_rule({"id": "query", "sql": sql, "actions": [{"nop": {}}]})
        except EngineError as exc:
            raise _fail(exc, "query error") from exc

        async def lines() -> AsyncIterator[bytes]:
            async with engine.query(sql) as emissions:
                yield b""  # the rule is running: flush the headers so the client knows
                async for _, rows in emissions:
                    yield orjson.dumps(rows) + b"\n"

        return Response(200, content_type="application/x-ndjson", stream=lines)

    async def metrics(self, req: Request) -> Response:
        body = manage.prometheus_text(self._engine).encode() + process_metrics_text(self._engine)
        return Response(200, body, PROMETHEUS)


def add_manage_routes(router: Router, engine: Engine) -> None:
    """Register the management endpoints. Literal paths go before the core ``/rules/{id}`` routes."""
    m = _Manage(engine)
    for kind in ("stream", "table"):
        router.add("GET", f"/{kind}details", functools.partial(m.details, kind=kind))
        router.add("GET", f"/{kind}s/{{name}}/schema", functools.partial(m.schema, kind=kind))
    router.add("POST", "/rules/validate", m.validate)
    router.add("GET", "/rules/tags/match", m.match)
    router.add("POST", "/rules/bulkstart", functools.partial(m.bulk, start=True))
    router.add("POST", "/rules/bulkstop", functools.partial(m.bulk, start=False))
    for method in ("PUT", "PATCH", "DELETE"):
        router.add(method, "/rules/{id}/tags", m.tags)
    router.add("GET", "/rules/{id}/topo", m.topo)
    router.add("GET", "/rules/{id}/explain", m.explain)
    router.add("GET", "/v2/rules/{id}/status", m.status_v2)
    router.add("POST", "/ruleset/export", m.export)
    router.add("POST", "/ruleset/import", m.import_)
    router.add("GET", "/metrics", m.metrics)
    router.add("POST", "/query", m.query)
    conf_kinds: tuple[ConfKind, ...] = ("sources", "sinks")
    for kind in conf_kinds:
        router.add("GET", f"/metadata/{kind}/yaml/{{type}}", functools.partial(m.conf_groups, kind=kind))
        router.add(
            "PUT",
            f"/metadata/{kind}/{{type}}/confKeys/{{key}}",
            functools.partial(m.put_conf_group, kind=kind),
        )
        router.add(
            "DELETE",
            f"/metadata/{kind}/{{type}}/confKeys/{{key}}",
            functools.partial(m.delete_conf_group, kind=kind),
        )
    router.add("POST", "/metadata/sources/connection/{type}", m.connection)
    router.add("PATCH", "/configs", m.configs)
    router.add("POST", "/stop", m.stop)
