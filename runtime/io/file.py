"""eKuiper's ``file`` sink: messages appended to a local file as JSON lines, one JSON array, or CSV.

Writes are plain synchronous ``write`` + ``flush`` calls: they are small and land in the page cache, so a
thread hop would cost more than it saves, and readers see every message as soon as ``write`` returns.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, final

import orjson

from runtime.errors import EncodeError, PlanError, SandboxError, SinkError, map_exceptions
from runtime.formats import Encoder, delimited, encoder
from runtime.io.contract import SinkSpec
from runtime.io.sinktemplate import message_text
from runtime.model import Row

FILE_TYPES = ("lines", "json", "csv")
_TAIL = 4096  # bytes read back from an existing JSON-array file to find where the array stands
_WHITESPACE = b" \t\r\n"


def _last_line(file: BinaryIO, stop: int) -> tuple[int, bytes]:
    """Where the last line of ``file[:stop]`` starts, and that line: found by reading ``_TAIL`` chunks backwards
    (each read once: linear in the distance to the newline), then read in one piece."""
    start, pos = 0, stop
    while pos > 0:
        step = min(_TAIL, pos)
        pos -= step
        file.seek(pos)
        cut = file.read(step).rfind(b"\n")
        if cut >= 0:
            start = pos + cut + 1
            break
    file.seek(start)
    return start, file.read(stop - start)


def _whole_value(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _prop(props: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = props.get(key, default)
    if value is None:
        return default
    # bool is an int subclass; a JSON `1` for a bool option is a mistake worth reporting.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise PlanError(f"{where}: property {key!r} must be a {kind.__name__}, got {value!r}")
    return value


@final
class FileSink:
    """Action ``"file"``.

    Properties:
      path: the file (required), inside the daemon's file roots (a relative path is taken in the first one,
        see ``runtime.io.sandbox``); parent directories are created.
      fileType: ``lines`` (default): one encoded message per line; ``json``: the whole file is one JSON
        array of all messages, valid after ``aclose``; ``csv``: one line per row, header first if wanted.
      format: ``json`` (default) or ``delimited``: how a message is encoded for ``lines``.
      hasHeader: ``csv``/``delimited``: write a header line (once per file for ``csv``). Default false.
      delimiter: ``csv``/``delimited`` column separator, default ``,``.

    An existing file is appended to (a restarted rule continues its output); for ``json`` the open array
    is reopened, so the file stays one array.

    A ``dataTemplate`` output (a ``str`` message) is written as it is: one line for ``lines`` and ``csv``, one
    array element for ``json``, where it must be JSON (it is rewritten on one line when it spans several).

    Raises (from the constructor):
      PlanError: a missing or wrongly typed property, or a path outside the file roots.
    """

    def __init__(self, spec: SinkSpec) -> None:
        where = f"rule {spec.ctx.rule_id}: file sink (action {spec.index})"
        props = spec.props
        path = props.get("path")
        if not isinstance(path, str) or not path:
            raise PlanError(f"{where}: property 'path' is required and must be a string")
        file_type = _prop(props, "fileType", str, "lines", where).lower()
        if file_type not in FILE_TYPES:
            raise PlanError(
                f"{where}: fileType {file_type!r} is invalid; expected one of {', '.join(FILE_TYPES)}"
            )
        fmt = _prop(props, "format", str, "json", where).lower()
        has_header = _prop(props, "hasHeader", bool, False, where)
        delimiter = _prop(props, "delimiter", str, ",", where)
        if file_type == "json" and fmt != "json":
            raise PlanError(f"{where}: fileType 'json' needs format 'json', got {fmt!r}")
        self._roots = spec.ctx.services.file_roots
        try:
            self._path = self._roots.place(path)
        except SandboxError as exc:
            raise SandboxError(f"{where}: {exc}") from exc
        self._file_type = file_type
        self._delimiter = delimiter
        self._has_header = has_header
        # csv encodes row by row itself (fixed columns across messages); the others use the format encoder.
        self._encode: Encoder = encoder(
            "json" if file_type == "csv" else fmt, delimiter=delimiter, has_header=has_header
        )
        self._ctx = spec.ctx
        self._where = where
        self._file: BinaryIO | None = None
        self._first = True  # json: no element written yet, so the next one needs no comma
        self._columns: list[str] | None = None  # csv: columns fixed by the first row written
        self._header_pending = False  # csv: the file was empty at open and wants a header

    async def open(self) -> None:
        """Create parent directories and open the file for appending.

        Raises:
          SinkError: the file cannot be created or opened, or (json) it holds something else than an array.
        """
        with map_exceptions({OSError: SinkError, SandboxError: SinkError}):
            self._open_file()
        self._ctx.connection.status = 1
        self._ctx.connection.last_connected_time = self._ctx.clock.now_ms()

    def _open_file(self) -> None:
        # Synchronous on purpose (see the module docstring): opening a local file is a short syscall.
        # Checked again: the file system may have changed since the rule was created. Read-write, not append:
        # a json array is reopened by truncating its closing bracket, which append mode forbids.
        file = self._roots.open_for_update(self._path)
        try:
            end = file.seek(0, os.SEEK_END)
            if self._file_type == "json":
                self._first = self._resume_array(file, end)
            else:
                end = self._drop_cut_line(file, end)
        except BaseException:
            file.close()
            raise
        self._header_pending = self._file_type == "csv" and self._has_header and end == 0
        self._file = file

    def _resume_array(self, file: BinaryIO, end: int) -> bool:
        """Leave ``file`` positioned to add the next array element; return True when the array is empty.

        Each element is written on its own line (``[``, ``{...}``, ``,{...}``, ``]``), so whatever a crash
        (kill -9, power loss) left is repaired from the last lines alone: a closing ``]`` line is reopened, a
        last line that is not a whole JSON value (cut mid-write) is dropped, and the array goes on from the
        last complete element. A file written on one line (before this layout) is checked as a whole.
        """
        file.seek(0)
        head = file.read(_TAIL).lstrip(_WHITESPACE)
        if not head:
            file.seek(0)
            file.truncate()
            file.write(b"[")
            file.flush()
            return True
        if not head.startswith(b"["):
            raise SinkError(f"{self._where}: {self._path} exists and is not a JSON array")
        stop = end
        while True:
            line_start, line = _last_line(file, stop)
            text = line.strip(_WHITESPACE)
            if line_start == 0 and text != b"[":
                return self._resume_one_line(file, stop)
            if text == b"[" or (text != b"]" and _whole_value(text.removeprefix(b","))):
                break
            stop = max(line_start - 1, 0)  # a closing bracket, or an element cut by a crash: drop the line
        file.seek(stop)
        file.truncate()
        file.flush()
        return text == b"["

    def _drop_cut_line(self, file: BinaryIO, end: int) -> int:
        """``lines``/``csv``: every message ends with a newline, so a last line without one was cut by a crash
        (kill -9 inside a write, a full disk); drop it so the next message starts on a line of its own.
        Returns the new end."""
        if end == 0:
            return 0
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return end
        start, cut = _last_line(file, end)
        if start == 0 and (len(cut) > _TAIL * 16 or cut.lstrip()[:1] not in (b"{", b"[")):
            # No complete line at all, and not the start of a JSON message: not this sink's output cut by a
            # crash but someone else's file. Appending would corrupt it, truncating would destroy it.
            raise SinkError(
                f"{self._where}: {self._path} does not end with a newline and is no output of this sink"
            )
        self._ctx.logger.warning(
            "%s: dropped a cut last line of %d bytes in %s", self._where, len(cut), self._path
        )
        file.seek(start)
        file.truncate()
        file.flush()
        return start

    def _resume_one_line(self, file: BinaryIO, stop: int) -> bool:
        file.seek(0)
        whole = file.read(stop).rstrip(_WHITESPACE)
        for candidate, closed in ((whole, True), (whole + b"]", False)):
            try:
                value = orjson.loads(candidate)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, list):
                kept = whole[:-1].rstrip(_WHITESPACE) if closed else whole
                file.seek(len(kept))
                file.truncate()
                file.flush()
                return not value
        raise SinkError(f"{self._where}: {self._path} is not a complete JSON array (cut by a crash?)")

    async def write(self, data: Row | list[Row] | str) -> None:
        """Append one message and flush it.

        Raises:
          SinkError: the write failed, the sink is not open, or a value cannot be encoded.
          EncodeError: a failed ``dataTemplate``, or (``json``) one whose output is not JSON.
        """
        file = self._file
        if file is None:
            raise SinkError(f"{self._where}: write before open or after close")
        with map_exceptions({OSError: SinkError, TypeError: SinkError}):
            if isinstance(data, str):
                payload = self._text_payload(message_text(data))
            elif self._file_type == "lines":
                encoded = self._encode(data)
                payload = encoded + b"\n" if encoded else b""  # an empty delimited message is no line
            elif self._file_type == "json":
                # One element per line: see _resume_array. The encoder never writes a raw newline.
                payload = (b"\n" if self._first else b"\n,") + self._encode(data)
                self._first = False
            else:
                payload = self._csv_lines(data if isinstance(data, list) else [data])
            file.write(payload)
            file.flush()

    def _text_payload(self, text: str) -> bytes:
        if self._file_type != "json":
            return text.encode() + b"\n"
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise EncodeError(
                f"{self._where}: fileType json needs JSON, the dataTemplate made {text[:200]!r}: {exc}"
            ) from None
        # One element per line (see _resume_array): an element spanning lines is written compactly instead.
        element = orjson.dumps(value) if "\n" in text or "\r" in text else text.encode()
        payload = (b"\n" if self._first else b"\n,") + element
        self._first = False
        return payload

    def _csv_lines(self, rows: list[Row]) -> bytes:
        if not rows:
            return b""
        lines: list[str] = []
        columns = self._columns
        if columns is None:
            columns = self._columns = list(rows[0])
            if self._header_pending:
                lines.append(delimited.header_line(columns, self._delimiter))
                self._header_pending = False
        delimiter = self._delimiter
        lines.extend(delimited.row_line(row, columns, delimiter) for row in rows)
        lines.append("")
        return "\n".join(lines).encode()

    async def aclose(self) -> None:
        """Terminate the JSON array (``json``) and close the file. Safe to call twice or without ``open``."""
        file, self._file = self._file, None
        self._ctx.connection.status = 0
        if file is None:
            return
        try:
            if self._file_type == "json":
                file.write(b"\n]\n")
                file.flush()
        finally:
            file.close()
