"""The exception tree every Oort component raises, and the boundary translator ``map_exceptions``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class EngineError(Exception):
    """Base of every error Oort raises on purpose.

    ``code`` is eKuiper's REST error code (see its REST API docs): 1000 undefined, 1001 general,
    1002 not found, 2001 parser, 2101 planner, 3000 stream/table, 4000 rule, 5000 config.
    """

    code: int = 1000

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFoundError(EngineError):
    """A stream, table, rule or conf group that does not exist (REST answers 404)."""

    code = 1002


class ConfigError(EngineError):
    """A configuration file or value is wrong; the message lists every problem with its path."""

    code = 5000

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class SqlError(EngineError):
    """A DDL or SQL statement is malformed or invalid.

    ``line`` and ``column`` are 1-based (0 when unknown); ``context`` is an excerpt with a caret.
    """

    code = 2001

    def __init__(self, message: str, line: int = 0, column: int = 0, context: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.context = context


class PlanError(EngineError):
    """A parsed statement cannot be turned into a running plan (unknown stream, bad option…)."""

    code = 2101


class StorageError(EngineError):
    """A definition could not be saved to or removed from the data dir; nothing changed (REST answers 500)."""


class SandboxError(PlanError):
    """A file path outside the configured file roots, or one that names something else than a regular file."""


class StreamError(EngineError):
    """A stream/table catalog operation failed (duplicate, referenced by a rule…)."""

    code = 3000


class RuleError(EngineError):
    """A rule definition or rule operation failed."""

    code = 4000

    def __init__(self, message: str, rule_id: str = "") -> None:
        super().__init__(message)
        self.rule_id = rule_id


class ServerStartError(EngineError):
    """A server (REST or the global data server) could not bind or start."""

    code = 1003


class SourceError(EngineError):
    """A source connector failed (cannot connect, bad configuration, decode failure…)."""

    code = 1003


class SinkError(EngineError):
    """A sink connector failed to deliver."""

    code = 1003


class SinkUnavailable(SinkError):
    """The sink's target could not take the message right now (unreachable, not connected, timed out, busy).

    eKuiper's IO error: resending the same message later may succeed. With the sink cache on, the runtime
    keeps the message and resends it; with it off, the message is counted as an exception and dropped, and the
    rule keeps running.
    """


class EncodeError(SinkError):
    """One sink message has no form in the sink's format (e.g. a row without ``self`` for ``binary``).

    Unlike other sink failures it is about that message alone: the sink counts it as an exception, drops the
    message and keeps the rule running, as eKuiper does with a transform error.
    """


class EvalError(EngineError):
    """A runtime error while evaluating an expression for one row (the row becomes an error row)."""

    code = 2201  # eKuiper "executor" error


class DecodeError(EngineError):
    """A frame could not be decoded; the frame is dropped and counted, the stream goes on."""

    code = 1004


class TypeMismatch(ValueError):
    """A value does not fit its declared type; the message is the part after ``field <name> type mismatch: ``."""


class HttpError(Exception):
    """Raised by a REST handler (or the app) to answer with an error body instead of a result."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CliUsageError(Exception):
    """The command line itself is wrong: the CLI prints its usage and exits 2."""


class CliFailure(Exception):
    """A reply or transport error of the CLI; its text is printed to stderr and the exit code is 1."""


@contextmanager
def map_exceptions(mapping: Mapping[type[BaseException], type[EngineError]]) -> Iterator[None]:
    """Translate third-party exceptions into Oort's at a library boundary (httpcore style).

    The first matching entry wins; the original exception is kept as ``__cause__``.
    """
    try:
        yield
    except Exception as exc:
        for from_exc, to_exc in mapping.items():
            if isinstance(exc, from_exc):
                raise to_exc(str(exc)) from exc
        raise


def leaves(exc: BaseException) -> list[BaseException]:
    """The real failures inside ``exc``: every non-group exception of a (nested) exception group, in order, or
    ``[exc]`` itself when it is no group. Trio's strict nurseries wrap what a task raised; this unwraps it."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    found: list[BaseException] = []
    for inner in exc.exceptions:
        found.extend(leaves(inner))
    return found


class ConfigProblem(ValueError):
    """One configuration value is wrong; ``str()`` is the reason shown after its path in a ``ConfigError``."""


class ConnectAttemptFailed(Exception):
    """One attempt of a connector to connect failed for a reason it detected itself (a timeout, a missing pong);
    the message is the reason. Such attempts are retried, never raised to the rule."""


class BadHandshake(Exception):
    """The websocket upgrade could not be sent, or the server's answer is not a valid websocket handshake."""


class HandshakeRejected(Exception):
    """The server answered the websocket upgrade request with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"websocket handshake rejected with HTTP {status}")
        self.status = status


class PeerClosed(Exception):
    """The websocket peer closed the connection (its close frame, or code 1006 when the connection just ended).

    The message is what the connection metrics show: ``connection closed by peer (code N[: reason])``.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        text = f": {reason}" if reason else ""
        super().__init__(f"connection closed by peer (code {code}{text})")
        self.code = code
        self.reason = reason


class PeerTooSlow(Exception):
    """A websocket connection is dropped for holding the server up: ``code`` is the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class MessageTooBig(Exception):
    """A websocket message grew past its size cap; ``before`` holds the messages completed earlier in the same
    read (they are still delivered)."""

    def __init__(self, before: list[bytes | str], limit: int) -> None:
        super().__init__(f"a message was larger than maxMessageSize {limit}: closed with 1009")
        self.before = before
        self.limit = limit
