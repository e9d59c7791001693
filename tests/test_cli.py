"""The ``oort`` client verbs, run as real subprocesses (``python -m runtime``) against an in-process server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from tests.api.harness import IO_TIMEOUT, Api, running_api

# Slow (a daemon process or generated load): `pytest -m "not slow"` leaves it out of the quick loop.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WITH_MEMORY = '() WITH (TYPE="memory", DATASOURCE="cli/demo", FORMAT="JSON")'
RULE = {"sql": "SELECT * FROM demo", "actions": [{"nop": {}}]}


async def _oort(api_url: str, *args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "runtime", "--host", api_url, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def _ok(api: Api, *args: str) -> str:
    code, out, err = await _oort(api.url, *args)
    assert (code, err) == (0, ""), (args, out, err)
    return out


async def test_stream_verbs_with_kuiper_quoting(tmp_path: Path) -> None:
    with trio.fail_after(IO_TIMEOUT * 2):
        async with running_api(tmp_path) as api:
            # The shell form  create stream demo '() WITH (...)'  arrives as one word after the name.
            assert await _ok(api, "create", "stream", "demo", WITH_MEMORY) == "Stream demo is created.\n"
            # The glued form  create stream demo2'() WITH (...)'  has no space before the parenthesis.
            assert await _ok(api, "create", "stream", "demo2" + WITH_MEMORY) == "Stream demo2 is created.\n"
            ddl_file = tmp_path / "t1.sql"
            ddl_file.write_text('t1 () WITH (TYPE="memory", DATASOURCE="cli/t1", KEY="id")\n')
            assert await _ok(api, "create", "table", "-f", str(ddl_file)) == "Table t1 is created.\n"

            code, out, err = await _oort(api.url, "create", "stream", "demo", WITH_MEMORY)
            assert (code, out) == (1, "")
            assert err == "Stream command error: Create stream fails: Item demo already exists.\n"

            assert await _ok(api, "show", "streams") == "demo\ndemo2\n"
            assert await _ok(api, "show", "tables") == "t1\n"
            described = json.loads(await _ok(api, "describe", "stream", "demo"))
            assert described["Name"] == "demo"
            code, _, err = await _oort(api.url, "describe", "table", "ghost")
            assert (code, err) == (1, "describe table error: Describe table fails, ghost is not found.\n")

            assert await _ok(api, "drop", "stream", "demo2") == "Stream demo2 is dropped.\n"
            assert await _ok(api, "drop", "table", "t1") == "Table t1 is dropped.\n"
            assert await _ok(api, "show", "tables") == "No table definitions are found.\n"


async def test_rule_verbs(tmp_path: Path) -> None:
    with trio.fail_after(IO_TIMEOUT * 2):
        async with running_api(tmp_path) as api:
            await _ok(api, "create", "stream", "demo", WITH_MEMORY)
            out = await _ok(api, "create", "rule", "r1", json.dumps(RULE))
            assert out == (
                "Rule r1 was created successfully, please use 'oort getstatus rule r1' command to get rule status.\n"
            )
            rule_file = tmp_path / "r2.json"
            rule_file.write_text(json.dumps({"id": "r2", **RULE}))
            assert (await _ok(api, "create", "rule", "r2", "-f", str(rule_file))).startswith(
                "Rule r2 was created"
            )
            code, _, err = await _oort(api.url, "create", "rule", "r3", "{not json")
            assert code == 1 and err.startswith("invalid rule json: ")

            rules = json.loads(await _ok(api, "--json", "show", "rules"))
            assert [(r["id"], r["status"]) for r in rules] == [("r1", "running"), ("r2", "running")]
            assert json.loads(await _ok(api, "describe", "rule", "r1"))["sql"] == RULE["sql"]
            assert await _ok(api, "stop", "rule", "r1") == "Rule r1 was stopped.\n"
            assert json.loads(await _ok(api, "getstatus", "rule", "r1"))["status"] == "stopped"
            assert await _ok(api, "start", "rule", "r1") == "Rule r1 was started\n"
            assert await _ok(api, "restart", "rule", "r1") == "Rule r1 was restarted\n"
            assert json.loads(await _ok(api, "getstatus", "rule", "r1"))["status"] == "running"

            code, _, err = await _oort(api.url, "drop", "stream", "demo")
            assert (code, err) == (1, "stream demo has been referenced by other rules\n")
            assert await _ok(api, "drop", "rule", "r1") == "Rule r1 is dropped.\n"
            code, _, err = await _oort(api.url, "getstatus", "rule", "r1")
            assert (code, err) == (
                1,
                "get rule status error: Rule r1 is not found in registry, please check if it is created\n",
            )
            assert await _ok(api, "drop", "stream", "demo", "-force") == "Stream demo is dropped.\n"


async def test_connection_refused_names_the_host_and_usage_errors() -> None:
    with trio.fail_after(IO_TIMEOUT):
        # A port that was just free and nobody listens on.
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()
        code, out, err = await _oort(f"http://127.0.0.1:{port}", "show", "streams")
        assert (code, out) == (1, "")
        assert err.startswith(f"cannot connect to http://127.0.0.1:{port}: ") and "refused" in err

        code, _, err = await _oort("http://127.0.0.1:1", "fly", "away")
        assert code == 2 and "unknown command 'fly'" in err and "usage: oort" in err
        code, _, err = await _oort("http://127.0.0.1:1", "create", "stream")
        assert code == 2 and "create stream|table NAME" in err
        code, _, err = await _oort("http://127.0.0.1:1", "serve", "--bogus")
        assert code == 2 and "unknown option --bogus" in err
        code, out, _ = await _oort("http://127.0.0.1:1", "--help")
        assert code == 0 and out.startswith("usage: oort")


async def test_version_command_help_oort_host_anywhere_and_a_closed_pipe(tmp_path: Path) -> None:
    code, out, _ = await _oort("http://127.0.0.1:1", "--version")
    assert code == 0 and out.startswith("oort ")
    code, out, _ = await _oort("http://127.0.0.1:1", "drop", "--help")
    assert code == 0 and "drop stream NAME" in out and "create rule" not in out
    # The host from OORT_HOST, and --host after the command wins over it.
    result = await trio.run_process(
        [sys.executable, "-m", "runtime", "show", "streams", "--host", "http://127.0.0.1:1"],
        env={**os.environ, "OORT_HOST": "http://127.0.0.1:2"},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1 and b"127.0.0.1:1" in result.stderr
    # Output into a pipe whose reader has gone: no traceback, as `oort --help | head -1` would leave.
    script = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"
        "os.dup2(w, 1)\n"
        "from runtime.cli import main\n"
        "sys.exit(main(['--version']))\n"
    )
    result = await trio.run_process([sys.executable, "-c", script], capture_stderr=True, check=False)
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr, result.stderr
