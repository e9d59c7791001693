"""``dataTemplate`` end to end: rules on a real engine render each message with a Go template and their sinks
send the output as it is (file), or read JSON output back into rows (memory); a message the template fails on
is counted and dropped while the rule goes on; a template that does not parse refuses the rule."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime.engine import Engine
from runtime.errors import PlanError

STREAM = 'CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="in")'
POLL = 0.005  # seconds between looks at a file or a metric, which have no change event; bounded by fail_after

LEVEL = '{"device":{{.id}},"level":"{{if gt .t 30.0}}high{{else}}normal{{end}}","tags":{{toJson .tags}}}'


async def _until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - files and rule metrics have no change event to wait on
        await trio.sleep(POLL)


def _metric(engine: Engine, rule_id: str, name: str) -> Any:
    return engine.rule_status(rule_id)[name]


async def test_rules_render_each_message_with_the_template(engine: Engine) -> None:
    out_file = engine.services.file_roots.place("lines.txt")
    engine.create_stream("stream", STREAM)
    with trio.fail_after(15):
        async with engine.services.memory.subscribe("out", 16) as out:
            await engine.create_rule(
                {
                    "id": "levels",
                    "sql": "SELECT id, t, tags FROM s",
                    "actions": [
                        {"memory": {"topic": "out", "sendSingle": True, "dataTemplate": LEVEL}},
                        {
                            "file": {
                                "path": "lines.txt",
                                # not JSON at all: the file sink writes it as it is, one line per message
                                "dataTemplate": '{{range .}}{{.id}};{{printf "%.1f" .t}};{{index .tags 0}} {{end}}',
                            }
                        },
                    ],
                }
            )
            await engine.wait_status("levels", "running")
            await engine.publish(
                "in", [{"id": 1, "t": 25, "tags": ["x"]}, {"id": 2, "t": 31.5, "tags": ["y", "z"]}]
            )
            assert await out.receive() == ("out", [{"device": 1, "level": "normal", "tags": ["x"]}])
            assert await out.receive() == ("out", [{"device": 2, "level": "high", "tags": ["y", "z"]}])
            # each row is an emission of its own (no window): one message, one line each
            await _until(lambda: out_file.exists() and out_file.read_text().count("\n") == 2)
            assert out_file.read_text() == "1;25.0;x \n2;31.5;y \n"

            # No tags: `index .tags 0` fails for the file's message; the memory sink's template copes.
            await engine.publish("in", [{"id": 3, "t": 40}])
            assert await out.receive() == ("out", [{"device": 3, "level": "high", "tags": None}])
            await _until(lambda: _metric(engine, "levels", "sink_file_1_0_exceptions_total") == 1)
            status = engine.rule_status("levels")
            assert status["status"] == "running"
            assert status["sink_file_1_0_last_exception"] == (
                'fail to encode data with dataTemplate: template: sink:1:43: executing "sink" at '
                "<index .tags 0>: error calling index: index of untyped nil"
            )

            await engine.publish("in", [{"id": 4, "t": 1.5, "tags": ["w"]}])  # the rule went on
            assert await out.receive() == ("out", [{"device": 4, "level": "normal", "tags": ["w"]}])
            await _until(lambda: out_file.read_text().count("\n") == 3)
            assert out_file.read_text() == "1;25.0;x \n2;31.5;y \n4;1.5;w \n"
            await engine.stop_rule("levels")


async def test_a_template_that_does_not_parse_refuses_the_rule(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    bad = {"log": {"dataTemplate": '{"a": {{.a | nosuch}}}'}}
    with pytest.raises(
        PlanError, match=r"'dataTemplate': template: sink:1:14: function \"nosuch\" not defined"
    ):
        await engine.create_rule({"id": "bad", "sql": "SELECT * FROM s", "actions": [bad]})


async def test_a_window_is_one_message_and_fields_apply_to_the_output(engine: Engine) -> None:
    engine.create_stream("stream", STREAM)
    with trio.fail_after(15):
        async with engine.services.memory.subscribe("out", 16) as out:
            template = '[{{range $i, $r := .}}{{if $i}},{{end}}{"n":{{$r.id}},"x2":{{mul $r.id 2}}}{{end}}]'
            await engine.create_rule(
                {
                    "id": "batch",
                    "sql": "SELECT id FROM s GROUP BY COUNTWINDOW(2)",
                    "actions": [{"memory": {"topic": "out", "dataTemplate": template, "fields": ["x2"]}}],
                }
            )
            await engine.wait_status("batch", "running")
            await engine.publish("in", [{"id": 1}, {"id": 5}])
            # the output is read back and `fields` applies to it, as eKuiper does after a template
            assert await out.receive() == ("out", [{"x2": 2}, {"x2": 10}])
            assert engine.rule_status("batch")["sink_memory_0_0_exceptions_total"] == 0
            await engine.stop_rule("batch")
