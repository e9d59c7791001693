"""The OpenAPI 3.0 document of the REST API, served at ``/openapi.json``.

Paths come from the router itself; ``DOCS`` gives each (method, pattern) its summary, request body and
responses. A test fails when a route has no entry here or an entry names no route, so the document stays true.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from runtime.config import VERSION

_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_JSON_ANY: dict[str, Any] = {"application/json": {"schema": {}}}
_ERROR = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"error": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["error", "message"],
        }
    }
}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SQL_BODY = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "CREATE STREAM/TABLE … (any stream DDL)"}},
    "required": ["sql"],
}
_RULE_BODY = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "sql": {"type": "string"},
        "actions": {"type": "array", "items": {"type": "object"}},
        "options": {"type": "object"},
        "triggered": {"type": "boolean"},
        "tags": _STRINGS,
        "version": {"type": "string"},
    },
    "required": ["id", "sql", "actions"],
}
_TAGS_BODY = {"type": "object", "properties": {"tags": _STRINGS}, "required": ["tags"]}
_ROWS_BODY = {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
_IMPORT_BODY = {"type": "object", "properties": {"content": {"type": "string"}, "file": {"type": "string"}}}
_OBJECT = {"type": "object"}


def _doc(
    summary: str,
    ok: tuple[int, Mapping[str, Any] | None] = (200, _TEXT),
    *,
    body: Mapping[str, Any] | None = None,
    errors: tuple[int, ...] = (400,),
) -> dict[str, Any]:
    status, content = ok
    responses: dict[str, Any] = {str(status): {"description": "success"}}
    if content is not None:
        responses[str(status)]["content"] = content
    for code in errors:
        responses[str(code)] = {"description": "error", "content": _TEXT if code == 422 else _ERROR}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _stream_docs(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    base = f"/{kind}s"
    return {
        ("GET", base): _doc(f"list {kind}s (tables: ?kind=scan|lookup)", (200, _JSON_ANY)),
        ("POST", base): _doc(f"execute {kind} DDL", (201, _TEXT), body=_SQL_BODY),
        ("GET", base + "/{name}"): _doc(f"describe a {kind}", (200, _JSON_ANY), errors=(400, 404)),
        ("PUT", base + "/{name}"): _doc(f"replace a {kind}", body=_SQL_BODY, errors=(400, 404)),
        ("DELETE", base + "/{name}"): _doc(f"drop a {kind} (?force=true)", errors=(400, 404)),
        ("GET", f"/{kind}details"): _doc(f"{kind}s with type and format", (200, _JSON_ANY)),
        ("GET", base + "/{name}/schema"): _doc(f"schema of a {kind}", (200, _JSON_ANY), errors=(400, 404)),
    }


def _conf_docs(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("GET", f"/metadata/{kind}/yaml/{{type}}"): _doc(
            f"conf groups of a {kind[:-1]} type, secrets masked", (200, _JSON_ANY)
        ),
        ("PUT", f"/metadata/{kind}/{{type}}/confKeys/{{key}}"): _doc(
            "create or replace a conf group", (200, None), body=_OBJECT
        ),
        ("DELETE", f"/metadata/{kind}/{{type}}/confKeys/{{key}}"): _doc(
            "delete a conf group (refused while a running rule uses it)", (200, None), errors=(400, 404)
        ),
    }


DOCS: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("GET", "/ping"): _doc("liveness", (200, None), errors=()),
    ("GET", "/"): _doc("server information", (200, _JSON_ANY), errors=()),
    ("POST", "/"): _doc("server information", (200, _JSON_ANY), errors=()),
    **_stream_docs("stream"),
    **_stream_docs("table"),
    ("GET", "/rules"): _doc("list rules", (200, _JSON_ANY)),
    ("POST", "/rules"): _doc("create a rule", (201, _TEXT), body=_RULE_BODY),
    ("GET", "/rules/status/all"): _doc("status of every rule", (200, _JSON_ANY)),
    ("GET", "/rules/{id}"): _doc("a rule's JSON", (200, _JSON_ANY), errors=(400, 404)),
    ("PUT", "/rules/{id}"): _doc("update (or create) a rule", body=_RULE_BODY, errors=(400, 404)),
    ("DELETE", "/rules/{id}"): _doc("drop a rule", errors=(400, 404)),
    ("POST", "/rules/{id}/start"): _doc("start a rule", errors=(400, 404)),
    ("POST", "/rules/{id}/stop"): _doc("stop a rule", errors=(400, 404)),
    ("POST", "/rules/{id}/restart"): _doc("restart a rule", errors=(400, 404)),
    ("GET", "/rules/{id}/status"): _doc("status and metrics of a rule", (200, _JSON_ANY), errors=(400, 404)),
    ("GET", "/rules/{id}/scantables"): _doc(
        "current rows of a running rule's scan tables, by FROM/JOIN name", (200, _JSON_ANY), errors=(400, 404)
    ),
    ("GET", "/v2/rules/{id}/status"): _doc(
        "status and metrics (typed JSON)", (200, _JSON_ANY), errors=(400, 404)
    ),
    ("GET", "/rules/{id}/topo"): _doc("topology of a running rule", (200, _JSON_ANY), errors=(400, 404)),
    ("GET", "/rules/{id}/explain"): _doc("the logical plan, one JSON line per node", errors=(400, 404)),
    ("POST", "/rules/validate"): _doc(
        "validate a rule without creating it", (200, _JSON_ANY), body=_OBJECT, errors=(400, 422)
    ),
    ("PUT", "/rules/{id}/tags"): _doc("replace tags", (200, None), body=_TAGS_BODY, errors=(400, 404)),
    ("PATCH", "/rules/{id}/tags"): _doc("add tags", (200, None), body=_TAGS_BODY, errors=(400, 404)),
    ("DELETE", "/rules/{id}/tags"): _doc("remove tags", (200, None), body=_TAGS_BODY, errors=(400, 404)),
    ("GET", "/rules/tags/match"): _doc("rules having all tags", (200, _JSON_ANY), body=_TAGS_BODY),
    ("POST", "/rules/bulkstart"): _doc("start rules by tags", (200, _JSON_ANY), body=_TAGS_BODY),
    ("POST", "/rules/bulkstop"): _doc("stop rules by tags", (200, _JSON_ANY), body=_TAGS_BODY),
    ("POST", "/ruleset/export"): _doc("export streams, tables and rules", (200, _JSON_ANY), errors=()),
    ("POST", "/ruleset/import"): _doc("import an exported ruleset", body=_IMPORT_BODY),
    ("POST", "/memory/{topic}"): _doc("publish rows to a memory topic (Oort)", body=_ROWS_BODY),
    ("GET", "/metrics"): _doc(
        "Prometheus metrics", (200, {"text/plain": {"schema": {"type": "string"}}}), errors=()
    ),
    **_conf_docs("sources"),
    **_conf_docs("sinks"),
    ("POST", "/metadata/sources/connection/{type}"): _doc(
        "test whether a conf group connects (for source types with a connection test)", body=_OBJECT
    ),
    ("PATCH", "/configs"): _doc("change the log level", (204, None), body=_OBJECT),
    ("POST", "/stop"): _doc("shut the daemon down", errors=()),
    ("POST", "/query"): _doc(
        "run a SELECT as a temporary rule; emissions stream back as NDJSON lines",
        (200, {"application/x-ndjson": {"schema": {"type": "string"}}}),
        body=_SQL_BODY,
    ),
    ("GET", "/openapi.json"): _doc("this document", (200, _JSON_ANY), errors=()),
}


def openapi_path(pattern: str) -> str:
    """Router pattern -> OpenAPI path (``{topic...}`` is written ``{topic}``; it may hold ``/``)."""
    return pattern.replace("...}", "}")


def openapi_document(patterns: list[tuple[str, str]]) -> dict[str, Any]:
    """The document for the routed ``(method, pattern)`` pairs, with path parameters declared."""
    paths: dict[str, dict[str, Any]] = {}
    for method, pattern in patterns:
        path = openapi_path(pattern)
        op = dict(DOCS[(method, path)])
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        if names:
            op["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
            ]
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Oort REST API (eKuiper-compatible)", "version": VERSION},
        "paths": paths,
    }
