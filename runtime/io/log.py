"""eKuiper's ``log`` sink: writes every message as JSON text to the log, tagged with its rule id."""

from __future__ import annotations

import logging
from typing import final

from runtime.errors import SinkError, map_exceptions
from runtime.formats import json
from runtime.io.contract import SinkSpec
from runtime.io.sinktemplate import message_text
from runtime.model import Row

LOGGER_NAME = "oort.sink.log"


@final
class LogSink:
    """Action ``"log"``: logs ``sink result for rule <id>: <json>`` at INFO on logger ``oort.sink.log``.

    No properties of its own. The message is only encoded when INFO is enabled for that logger; a
    ``dataTemplate`` output (a ``str`` message) is logged as it is.
    """

    __slots__ = ("_ctx", "_logger", "_rule_id")

    def __init__(self, spec: SinkSpec) -> None:
        self._ctx = spec.ctx
        self._rule_id = spec.ctx.rule_id
        self._logger = logging.getLogger(LOGGER_NAME)

    async def open(self) -> None:
        self._ctx.connection.status = 1
        self._ctx.connection.last_connected_time = self._ctx.clock.now_ms()

    async def write(self, data: Row | list[Row] | str) -> None:
        """Log one message (see ``write_nowait``)."""
        self.write_nowait(data)

    def write_nowait(self, data: Row | list[Row] | str) -> None:
        """Log one message; never waits, so the rule's operator task calls it inline.

        Raises:
          SinkError: the message has a value with no JSON form.
          EncodeError: its ``dataTemplate`` failed.
        """
        # A failed template is an error whether or not INFO is on, as eKuiper renders before the sink.
        text = message_text(data) if isinstance(data, str) else None
        if not self._logger.isEnabledFor(logging.INFO):
            return
        if text is None:
            with map_exceptions({TypeError: SinkError}):
                text = json.encode(data).decode()
        # eKuiper's log sink wording, so log scrapers written for it keep working.
        self._logger.info("sink result for rule %s: %s", self._rule_id, text)

    async def aclose(self) -> None:
        self._ctx.connection.status = 0
