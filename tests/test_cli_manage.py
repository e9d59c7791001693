"""The management verbs of ``oort`` as real subprocesses: topo, validate, ruleset import/export, conf keys,
human and ``--json`` output, and the interactive ``query`` prompt."""

from __future__ import annotations

import json
import os
import signal
import sys
import tomllib
from pathlib import Path

import pytest
import trio

from tests.api.harness import IO_TIMEOUT, running_api
from tests.daemon_process import wait_for
from tests.test_cli import REPO, WITH_MEMORY, _ok, _oort

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

RULE = {"sql": "SELECT * FROM demo WHERE a > 1", "actions": [{"nop": {}}], "tags": ["t1"]}


async def test_topo_validate_tables_and_json(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        with trio.fail_after(IO_TIMEOUT):
            await _ok(api, "create", "stream", "demo", WITH_MEMORY)
            await _ok(api, "create", "rule", "r1", json.dumps(RULE))
            table = await _ok(api, "show", "rules")
            assert table.splitlines() == ["ID  STATUS   TAGS", "r1  running  t1"]
            assert json.loads(await _ok(api, "--json", "show", "rules"))[0]["id"] == "r1"
            topo = json.loads(await _ok(api, "gettopo", "rule", "r1"))
            assert topo["sources"] == ["source_demo"]
            assert json.loads(await _ok(api, "validate", "rule", "v", json.dumps(RULE))) == {
                "sources": ["demo"],
                "valid": True,
            }
            code, _, err = await _oort(api.url, "validate", "rule", "v", '{"sql": "SELECT * FROM demo"}')
            assert code == 1 and "Missing rule actions." in err


async def test_ruleset_export_import_and_confkeys(tmp_path: Path) -> None:
    out = tmp_path / "ruleset.json"
    async with running_api(tmp_path / "a") as api:
        with trio.fail_after(IO_TIMEOUT):
            await _ok(api, "create", "stream", "demo", WITH_MEMORY)
            await _ok(api, "create", "rule", "r1", json.dumps(RULE))
            assert await _ok(api, "export", "ruleset", str(out)) == f"ruleset exported to {out}\n"
            assert set(json.loads(out.read_text())["rules"]) == {"r1"}

            saved = await _ok(api, "create", "confkey", "sources", "memory", "feed", '{"bufferLength": 4}')
            assert saved == "conf key feed of sources memory is saved.\n"
            overlay = api.engine.services.conf_overlay  # REST changes land in the data dir, over etc/
            assert overlay is not None
            conf_file = overlay / "sources" / "memory.toml"
            assert tomllib.loads(conf_file.read_text()) == {"feed": {"bufferLength": 4}}
            shown = json.loads(await _ok(api, "show", "confkeys", "sources", "memory"))
            assert shown == {"feed": {"bufferLength": 4}}
            await _ok(api, "drop", "confkey", "sources", "memory", "feed")
            assert tomllib.loads(conf_file.read_text()) == {}
            code, _, err = await _oort(api.url, "drop", "confkey", "sources", "memory", "feed")
            assert code == 1 and "not found" in err
    async with running_api(tmp_path / "b") as fresh:
        with trio.fail_after(IO_TIMEOUT):
            reply = await _ok(fresh, "import", "ruleset", "-f", str(out))
            assert reply == "imported 1 streams, 0 tables and 1 rules\n"
            assert "r1  running" in await _ok(fresh, "show", "rules")


async def test_interactive_query_prints_rows_until_interrupted(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        with trio.fail_after(IO_TIMEOUT):
            await _ok(api, "create", "stream", "demo", WITH_MEMORY)
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "runtime", "--host", api.url, "query"],
                stdin=-1,
                stdout=-1,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send_all(b"SELECT a FROM demo WHERE a > 1\n")

            # The query runs as a temporary rule, created when the other process's request arrives.
            async def query_rule_exists() -> bool:
                return any(r["id"].startswith("__query") for r in api.engine.list_rules())

            async def no_query_rule() -> bool:
                return not await query_rule_exists()

            await wait_for(query_rule_exists)
            # Running, i.e. its memory source subscribed: rows published before that are not for it.
            (query_id,) = [r["id"] for r in api.engine.list_rules() if r["id"].startswith("__query")]
            await api.engine.wait_status(query_id, "running")
            await api.engine.publish("cli/demo", [{"a": 1}, {"a": 5}])
            received = b""
            while b'[{"a":5}]' not in received:
                received += await process.stdout.receive_some()
            assert received.strip() == b'[{"a":5}]'
            process.send_signal(signal.SIGINT)  # ends the query, back to the prompt
            await process.stdin.send_all(b"quit\n")
            assert await process.wait() == 0
            await wait_for(no_query_rule)  # the server saw the client leave and dropped the rule
            assert api.engine.list_rules() == []
