"""The file sandbox against the real daemon: file sinks, file sources and ruleset imports only touch regular
files inside the file roots (default: the data dir's ``files`` folder, or ``basic.fileRoots``), and a refusal is
a 400 naming the path and the rule, at creation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from runtime.api.manage_routes import MAX_IMPORT_BYTES
from tests.daemon_process import start_daemon, wait_for, write_etc

pytestmark = pytest.mark.slow

STREAM = {"sql": 'CREATE STREAM s (v BIGINT) WITH (TYPE="memory", DATASOURCE="t/s")'}


def _sink_rule(rule_id: str, path: str, **props: Any) -> dict[str, Any]:
    return {"id": rule_id, "sql": "SELECT v FROM s", "actions": [{"file": {"path": path, **props}}]}


def _touch(path: Path) -> Path:
    path.touch()
    return path


async def _refused(http: httpx.AsyncClient, rule: dict[str, Any], *, names: str) -> None:
    resp = await http.post("/rules", json=rule)
    assert resp.status_code == 400, resp.text
    message = resp.json()["message"]
    assert names in message and f"rule {rule['id']}" in message, message
    assert (await http.get(f"/rules/{rule['id']}")).status_code == 404  # nothing was created


async def test_file_sinks_write_only_regular_files_inside_the_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    root = data / "files"
    root.mkdir(parents=True)
    (root / "escape").symlink_to(outside)  # a link inside the root pointing out of it
    os.mkfifo(root / "pipe")
    etc = write_etc(tmp_path / "etc")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                assert (await http.post("/streams", json=STREAM)).status_code == 201
                await _refused(
                    http, _sink_rule("abs", str(outside / "x.jsonl")), names=str(outside / "x.jsonl")
                )
                await _refused(
                    http, _sink_rule("dots", "../../outside/x.jsonl"), names="../../outside/x.jsonl"
                )
                await _refused(http, _sink_rule("link", "escape/x.jsonl"), names="outside the file roots")
                await _refused(http, _sink_rule("fifo", "pipe"), names="not a regular file")
                await _refused(http, _sink_rule("dev", "/dev/null"), names="/dev/null")
                assert list(outside.iterdir()) == []

                # A relative path is taken inside the root; its folders are made there.
                ok = _sink_rule("ok", "out/a.jsonl", fileType="lines", sendSingle=True)
                assert (await http.post("/rules", json=ok)).status_code == 201
                assert (await http.post("/memory/t/s", json={"v": 1})).status_code == 200

                async def written() -> bool:
                    return (root / "out" / "a.jsonl").exists()

                await wait_for(written)

                # Checked again at open: a link swapped in after creation is refused when the rule starts.
                late = _sink_rule("late", "later.jsonl", fileType="lines", sendSingle=True)
                late["triggered"] = False
                assert (await http.post("/rules", json=late)).status_code == 201
                (root / "later.jsonl").symlink_to(outside / "stolen.jsonl")
                assert (await http.post("/rules/late/start")).status_code == 200

                async def failed() -> bool:
                    status = (await http.get("/rules/late/status")).json()
                    return status["status"] != "running" and "outside the file roots" in status["message"]

                await wait_for(failed)
                assert not (outside / "stolen.jsonl").exists()
            daemon.process.terminate()
            await daemon.process.wait()
    assert orjson.loads((root / "out" / "a.jsonl").read_bytes()) == {"v": 1}


async def test_file_sources_and_queries_read_only_inside_the_roots(tmp_path: Path) -> None:
    roots = tmp_path / "tables", tmp_path / "more"
    for root in roots:
        root.mkdir()
    (roots[1] / "t.json").write_bytes(orjson.dumps([{"v": 7}]))
    listed = ", ".join(f'"{root}"' for root in roots)
    etc = write_etc(tmp_path / "etc", extra_toml=f"fileRoots = [{listed}]\n")
    secret = tmp_path / "secret.json"
    secret.write_bytes(orjson.dumps([{"v": 1}]))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                for name, where in (
                    ("pw", "/etc/passwd"),
                    ("sec", str(secret)),
                    ("ok", str(roots[1] / "t.json")),
                ):
                    ddl = f'CREATE STREAM {name} (v BIGINT) WITH (TYPE="file", DATASOURCE="{where}")'
                    assert (await http.post("/streams", json={"sql": ddl})).status_code == 201
                for name, where in (("pw", "/etc/passwd"), ("sec", str(secret))):
                    resp = await http.post("/query", json={"sql": f"SELECT * FROM {name}"})
                    assert resp.status_code == 400, resp.text
                    assert (
                        where in resp.json()["message"] and "outside the file roots" in resp.json()["message"]
                    )
                rule = {"id": "peek", "sql": "SELECT * FROM sec", "actions": [{"log": {}}]}
                await _refused(http, rule, names=str(secret))
                # A root other than the first one is fine for an absolute path; a relative one is in the first.
                copy = _sink_rule("copy", "got.jsonl", fileType="lines", sendSingle=True)
                copy["sql"] = "SELECT * FROM ok"
                assert (await http.post("/rules", json=copy)).status_code == 201

                async def copied() -> bool:
                    return (roots[0] / "got.jsonl").exists() and (
                        roots[0] / "got.jsonl"
                    ).read_bytes().endswith(b"\n")

                await wait_for(copied)
                assert orjson.loads((roots[0] / "got.jsonl").read_bytes()) == {"v": 7}
            daemon.process.terminate()
            await daemon.process.wait()


async def test_ruleset_import_reads_only_small_regular_files_inside_the_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = data / "files"
    root.mkdir(parents=True)
    os.mkfifo(root / "pipe")  # opening it for reading would block the daemon forever
    (root / "zero").symlink_to("/dev/zero")  # reading it would fill the daemon's memory
    os.truncate(_touch(root / "huge.json"), MAX_IMPORT_BYTES + 1)  # sparse: costs no disk
    ruleset = {"streams": {"s": STREAM["sql"]}, "tables": {}, "rules": {}}
    (root / "ok.json").write_bytes(orjson.dumps(ruleset))
    etc = write_etc(tmp_path / "etc")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                refusals = {
                    "/etc/passwd": "outside the file roots",
                    "../../etc/passwd": "outside the file roots",
                    "pipe": "not a regular file",
                    "zero": "outside the file roots",
                    "huge.json": f"more than the {MAX_IMPORT_BYTES} allowed",
                }
                for path, why in refusals.items():
                    resp = await http.post("/ruleset/import", json={"file": path})
                    assert resp.status_code == 400, resp.text
                    assert why in resp.json()["message"] and path in resp.json()["message"]
                assert (await http.get("/ping")).status_code == 200  # nothing blocked
                resp = await http.post("/ruleset/import", json={"file": "ok.json"})
                assert resp.status_code == 200, resp.text
                assert (await http.get("/streams")).json() == ["s"]
            daemon.process.terminate()
            await daemon.process.wait()
