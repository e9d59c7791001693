"""eKuiper's ``file`` source: the rows of a local file, read once or every ``interval`` ms (file tables, replays).

A read is one batch: a table fed by it (``CREATE TABLE ... WITH (TYPE="file")``, the default table type) takes
each read as its new content. Reads are plain synchronous calls like the file sink's writes: the files are
small, and a thread hop would let a mock clock jump past the first events before the table is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import final

import trio

from runtime.errors import PlanError, SandboxError, SourceError
from runtime.formats.decode import DecodeError, Decoder, json_rows, make_decoder
from runtime.io.contract import SourceSpec
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

FILE_SOURCE_TYPES = ("json", "lines")


def _json_rows(payload: bytes | str) -> list[Row]:
    return json_rows(payload, allow_empty=True)  # a file may hold an empty table


@final
class FileSource:
    """Source type ``file``: ``DATASOURCE`` names a file inside the conf group's ``path`` folder.

    Properties (``etc/sources/file.toml``):
      path: the folder; a relative one is taken inside the first of the daemon's file roots, and the file
        must lie inside a root (see ``runtime.io.sandbox``); an absolute DATASOURCE ignores it.
      fileType: ``json`` (default): the file is one JSON array of rows (or one object); ``lines``: one
        message per line, decoded with the stream's FORMAT.
      interval: re-read period in ms; 0 (default) reads once and the source ends.

    Raises (from the constructor):
      PlanError: a missing DATASOURCE, a wrongly typed property, or a file outside the file roots.
    """

    def __init__(self, spec: SourceSpec) -> None:
        props = spec.props
        where = f"file source of {spec.stream}"
        if not spec.datasource:
            raise PlanError(f"{where}: DATASOURCE (the file name) is required")
        folder = props.get("path", "")
        file_type = props.get("fileType", "json")
        interval = props.get("interval", 0)
        if not isinstance(folder, str) or not isinstance(file_type, str):
            raise PlanError(f"{where}: properties 'path' and 'fileType' must be strings")
        if file_type.lower() not in FILE_SOURCE_TYPES:
            raise PlanError(f"{where}: fileType {file_type!r} is invalid; expected one of json, lines")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
            raise PlanError(f"{where}: property 'interval' must be a non-negative int (ms)")
        self._roots = spec.ctx.services.file_roots
        try:
            self._path = self._roots.place(Path(folder) / spec.datasource)
        except SandboxError as exc:
            raise SandboxError(f"rule {spec.ctx.rule_id}: {where}: {exc}") from exc
        self._lines = file_type.lower() == "lines"
        self._interval_s = interval / 1000
        self._ctx = spec.ctx
        self._meta: Row = {"file": str(self._path)}
        self._decode: Decoder = make_decoder(spec.definition) if spec.definition is not None else _json_rows

    def read(self) -> Batch:
        """One read of the file: its rows as events, a frame that does not decode as an error item.

        Raises:
          SourceError: the file cannot be read.
        """
        try:
            data = self._roots.read(self._path)
        except SandboxError as exc:
            raise SourceError(f"file source: {exc}") from exc
        now = self._ctx.clock.now_ms()
        frames = [line for line in data.splitlines() if line.strip()] if self._lines else [data]
        batch: Batch = []
        for frame in frames:
            try:
                batch.extend(Event(row, now, self._meta) for row in self._decode(frame))
            except DecodeError as exc:
                batch.append(ErrorItem(f"file {self._path}: {exc}"))
        return batch

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver the file's rows (before reporting ready, so a table is loaded before streams start), then
        again every ``interval``; returns after the single read when ``interval`` is 0.

        A later read that fails (the file is gone, unreadable) is reported (connection status -1 with its
        message, a warning in the rule log) and tried again at the next interval; the table keeps its rows.

        Raises:
          SourceError: the first read fails.
        """
        ctx = self._ctx
        connection = ctx.connection
        await send.send(self.read())
        connection.status = 1
        connection.last_connected_time = ctx.clock.now_ms()
        task_status.started()
        try:
            while self._interval_s > 0:
                await trio.sleep(self._interval_s)
                connection.last_try_time = ctx.clock.now_ms()
                try:
                    batch = self.read()
                except SourceError as exc:
                    if connection.status != -1:
                        ctx.logger.warning("%s; retrying every %s s", exc, self._interval_s)
                    connection.status = -1
                    connection.last_disconnected_time = connection.last_try_time
                    connection.last_disconnected_message = str(exc)
                    continue
                if connection.status != 1:
                    connection.status = 1
                    connection.last_connected_time = connection.last_try_time
                await send.send(batch)
        finally:
            connection.status = 0
