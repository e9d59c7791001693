"""``/openapi.json`` documents every route, and every documented operation is routed."""

from __future__ import annotations

import trio

from runtime.api.openapi import DOCS, openapi_path
from runtime.api.routes import build_router
from tests.api.harness import IO_TIMEOUT, Api


async def test_every_route_is_documented_and_served(api: Api) -> None:
    routed = {(method, openapi_path(pattern)) for method, pattern in build_router(api.engine).patterns}
    assert routed == set(DOCS), {
        "undocumented routes": sorted(routed - set(DOCS)),
        "documented but not routed": sorted(set(DOCS) - routed),
    }
    with trio.fail_after(IO_TIMEOUT):
        doc = (await api.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.0")
    served = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert served == set(DOCS)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["summary"] and op["responses"], path
            params = {p["name"] for p in op.get("parameters", [])}
            assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, path
