"""The HTTP client settings of the ``httppull`` source (conf group) and the ``rest`` sink (action properties).

Keys are eKuiper's (``etc/sources/httppull.yaml``, the rest sink's properties, both read by its
``internal/io/http/client.go``). ``parse_pull_conf`` and ``parse_rest_conf`` report every unknown key (naming the
nearest valid one) and every wrong value at once, each with its key.
"""

from __future__ import annotations

from typing import Any, final
from urllib.parse import urlsplit

import attrs

from runtime.config import parse_duration_ms
from runtime.config.secrets import redact_url
from runtime.errors import ConfigProblem, PlanError
from runtime.formats.gotemplate import has_template
from runtime.io.confcheck import (
    Keys,
    as_bool,
    as_str,
    as_str_map,
    describe,
    not_supported,
    one_of,
    parse_keys,
    unknown_key,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
BODY_TYPES = ("none", "json", "text", "html", "xml", "javascript", "form", "binary", "formdata")
# The Content-Type a body type sends unless the headers set one (eKuiper's httpx.BodyTypeMap; "form" without
# its odd ";param=value" suffix). formdata gets multipart/form-data with its boundary from httpx.
CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain",
    "html": "text/html",
    "xml": "application/xml",
    "javascript": "application/javascript",
    "form": "application/x-www-form-urlencoded",
    "binary": "application/octet-stream",
}
DEFAULT_TIMEOUT = 5.0  # seconds (eKuiper's DefaultTimeout, 5000 ms)
DEFAULT_INTERVAL = 10.0  # seconds between polls (eKuiper's shipped [default] group: 10s)


@final
@attrs.frozen
class TlsSettings:
    """How the client dials https URLs; equal settings build equal SSL contexts."""

    certification_path: str = ""
    private_key_path: str = ""
    root_ca_path: str = ""
    insecure_skip_verify: bool = False
    tls_min_version: str = "tls1.2"
    renegotiation: str = "never"


@final
@attrs.frozen
class OAuthConf:
    """eKuiper's ``oAuth``: how to get an access token (``access``) and, optionally, refresh it (``refresh``).

    Both requests are POSTs with a json body. The token response's fields render the templates of the request
    ``headers`` (and the httppull ``body``) and of the refresh request's ``headers`` and ``body``.
    """

    access_url: str
    access_body: str = attrs.field(default="", repr=False)
    access_headers: dict[str, str] = attrs.field(factory=dict, hash=False, repr=False)
    expire: int = 0  # seconds a token lives; it is renewed once half of it has passed (0: never)
    refresh_url: str = ""
    refresh_headers: dict[str, str] = attrs.field(factory=dict, hash=False, repr=False)
    refresh_body: str = attrs.field(default="", repr=False)


@final
@attrs.frozen
class RequestConf:
    """What every request of one source or sink shares. ``timeout`` is the whole request's, in seconds (0: none).

    ``url`` keeps its query string (it may carry a token): show ``redacted`` to humans. Header values are never
    shown anywhere (``repr`` included).
    """

    url: str
    method: str
    body_type: str
    headers: dict[str, str] = attrs.field(factory=dict, hash=False, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    response_type: str = "code"
    tls: TlsSettings = TlsSettings()
    oauth: OAuthConf | None = None

    @property
    def redacted(self) -> str:
        """The URL without secrets (userinfo password, secret-named query parameters)."""
        return redact_url(self.url)


@final
@attrs.frozen
class PullConf:
    """One ``httppull`` conf group, validated. ``interval`` in seconds; 0 polls once.

    ``states``: the initial values the ``url`` template is rendered with; a response field of the same name
    replaces a value for the next poll (eKuiper's state update).
    """

    request: RequestConf
    body: str = ""
    interval: float = DEFAULT_INTERVAL
    incremental: bool = False
    states: dict[str, Any] = attrs.field(factory=dict, hash=False)


@final
@attrs.frozen
class RestConf:
    """One ``rest`` action's connector properties, validated."""

    request: RequestConf
    format: str = "json"
    delimiter: str = ","
    has_header: bool = False
    debug_resp: bool = False
    form_data: dict[str, str] = attrs.field(factory=dict, hash=False)
    file_field_name: str = "file"
    compression: str = ""


def _millis(value: Any) -> float:
    """A duration as eKuiper's DurationConf reads it: a number of milliseconds or a Go duration string; seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigProblem(
            f"expected milliseconds or a duration like '5s' or '500ms', got {describe(value)}"
        )
    if isinstance(value, str):
        try:
            ms = float(parse_duration_ms(value.strip()))
        except ValueError:
            raise ConfigProblem(f"expected a duration like '5s' or '500ms', got {value!r}") from None
    else:
        ms = float(value)
    if ms < 0:
        raise ConfigProblem(f"must not be negative, got {value!r}")
    return ms / 1000.0


def _method(value: Any) -> str:
    method = as_str(value).strip().upper()
    if method not in METHODS:
        raise ConfigProblem(f"expected one of {', '.join(m.lower() for m in METHODS)}, got {value!r}")
    return method


def _ignored(value: Any) -> Any:
    return value


def _states(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigProblem(f"expected a table of state = initial value, got {describe(value)}")
    return dict(value)


def check_url(url: str) -> str:
    """``url`` if it is an absolute http or https URL with a host; else ``ConfigProblem`` (never echoing a query)."""
    shown = redact_url(url.split("?", 1)[0])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigProblem(f"invalid URL {shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigProblem(f"expected an http:// or https:// URL, got {shown!r}")
    if not parts.hostname:
        raise ConfigProblem(f"the URL {shown!r} has no host")
    if port == 0:
        raise ConfigProblem(f"the URL {shown!r} has port 0")
    return url


_TLS_KEYS: Keys = {
    "certificationPath": ("certification_path", as_str),
    "privateKeyPath": ("private_key_path", as_str),
    "rootCaPath": ("root_ca_path", as_str),
    "insecureSkipVerify": ("insecure_skip_verify", as_bool),
    "tlsMinVersion": ("tls_min_version", one_of("tls1.0", "tls1.1", "tls1.2", "tls1.3")),
    "renegotiationSupport": ("renegotiation", one_of("never", "once", "freely")),
    "certficationRaw": ("_raw", not_supported("give the certificate as a file with certificationPath")),
    "privateKeyRaw": ("_raw", not_supported("give the key as a file with privateKeyPath")),
    "rootCARaw": ("_raw", not_supported("give the CA as a file with rootCaPath")),
}


def _expire(value: Any) -> int:
    # eKuiper reads the expiry as a string of seconds (cast.ToInt); a number is fine too.
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not text.lstrip("-").isdigit() or int(text) < 0:
        raise ConfigProblem(f"expected a number of seconds, got {value!r}")
    return int(text)


_ACCESS_KEYS = {"url": as_str, "body": as_str, "expire": _expire, "headers": as_str_map}
_REFRESH_KEYS = {"url": as_str, "body": as_str, "headers": as_str_map}


def _section(value: Any, name: str, keys: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigProblem(f"{name}: expected a table, got {describe(value)}")
    out, problems = {}, []
    for key, raw in value.items():
        check = keys.get(key)
        if check is None:
            problems.append(f"{name}.{key}: {unknown_key(key, tuple(keys))}")
            continue
        try:
            out[key] = check(raw)
        except ConfigProblem as exc:
            problems.append(f"{name}.{key}: {exc}")
    if problems:
        raise ConfigProblem("; ".join(problems))
    return out


def _oauth(value: Any) -> OAuthConf | None:
    if not isinstance(value, dict):
        raise ConfigProblem(f"expected a table with 'access' (and 'refresh'), got {describe(value)}")
    unknown = [key for key in value if key not in ("access", "refresh")]
    if unknown:
        raise ConfigProblem("; ".join(f"{key}: {unknown_key(key, ('access', 'refresh'))}" for key in unknown))
    if "access" not in value:
        raise ConfigProblem("'access' is required (the token request)")
    access = _section(value["access"], "access", _ACCESS_KEYS)
    refresh = _section(value.get("refresh", {}), "refresh", _REFRESH_KEYS)
    if not access.get("url"):
        return None  # eKuiper ignores an oAuth without an access url (so that a UI may save an empty one)
    return OAuthConf(
        access_url=check_url(access["url"]),
        access_body=access.get("body", ""),
        access_headers=access.get("headers", {}),
        expire=access.get("expire", 0),
        refresh_url=check_url(refresh["url"]) if refresh.get("url") else "",
        refresh_headers=refresh.get("headers", {}),
        refresh_body=refresh.get("body", ""),
    )


_REQUEST_KEYS: Keys = {
    **_TLS_KEYS,
    "url": ("url", as_str),
    "method": ("method", _method),
    "bodyType": ("body_type", one_of(*BODY_TYPES)),
    "headers": ("headers", as_str_map),
    "timeout": ("timeout", _millis),
    "responseType": ("response_type", one_of("code", "body")),
    "oAuth": ("oauth", _oauth),
    "oauth": ("oauth", _oauth),
}

PULL_KEYS: Keys = {
    **_REQUEST_KEYS,
    "body": ("body", as_str),
    "interval": ("interval", _millis),
    "incremental": ("incremental", as_bool),
    # httpx decodes gzip and deflate responses by their Content-Encoding, as eKuiper's decompressor does.
    "compression": ("_ignored", one_of("", "gzip", "zlib", "flate")),
    # eKuiper's own source buffer; Oort's rule option bufferLength bounds what a source may hold.
    "bufferLength": ("_ignored", _ignored),
    "states": ("states", _states),
}

REST_KEYS: Keys = {
    **_REQUEST_KEYS,
    "format": ("format", as_str),
    "delimiter": ("delimiter", as_str),
    "hasHeader": ("has_header", as_bool),
    "debugResp": ("debug_resp", as_bool),
    "formData": ("form_data", as_str_map),
    "fileFieldName": ("file_field_name", as_str),
    "compression": ("compression", one_of("", "gzip", "zlib", "flate")),
}

# ``schemaId``: a format helper Oort's json, delimited and binary encoders do not use, accepted unchecked. (The
# runtime's own keys, sendSingle, dataTemplate and the cache's among them, never reach a connector.)
REST_IGNORED = frozenset({"schemaId"})

_TLS_ATTRS = frozenset(name for name, _ in _TLS_KEYS.values() if not name.startswith("_"))


def _request(values: dict[str, Any], url: str, problems: list[str], default_method: str) -> RequestConf:
    method = values.get("method", default_method)
    # eKuiper: GET and HEAD send no body unless told; every other method sends json.
    body_type = values.get("body_type") or ("none" if method in ("GET", "HEAD") else "json")
    if url and not has_template(url):  # a template is checked once rendered
        try:
            check_url(url)
        except ConfigProblem as exc:
            problems.append(f"url: {exc}")
    tls = TlsSettings(**{k: v for k, v in values.items() if k in _TLS_ATTRS})
    if tls.private_key_path and not tls.certification_path:
        problems.append("privateKeyPath: set without certificationPath")
    headers: dict[str, str] = values.get("headers", {})
    for key, value in headers.items():
        if "\n" in value or "\r" in value or not key.strip():
            problems.append(
                f"headers: {key!r} is not a valid header (empty name or a line break in its value)"
            )
    return RequestConf(
        url=url,
        method=method,
        body_type=body_type,
        headers=headers,
        timeout=values.get("timeout", DEFAULT_TIMEOUT),
        response_type=values.get("response_type", "code"),
        tls=tls,
        oauth=values.get("oauth"),
    )


def _checked(
    props: dict[str, Any], keys: Keys, where: str, required: str, ignored: frozenset[str]
) -> dict[str, Any]:
    """``parse_keys``, with a missing ``url`` reported in the same message as the other problems."""
    missing = [] if props.get("url") else [f"{where}: url: required ({required})"]
    try:
        values = parse_keys(props, keys, where, ignored=ignored)
    except PlanError as exc:
        raise PlanError("; ".join([exc.message, *missing])) from None
    if missing:
        raise PlanError(missing[0])
    return values


def _raise(problems: list[str], where: str) -> None:
    if problems:
        raise PlanError("; ".join(f"{where}: {problem}" for problem in problems))


def parse_pull_conf(props: dict[str, Any], datasource: str, where: str) -> PullConf:
    """A source's merged conf group (``[default]`` + CONF_KEY group + EXTRA), validated.

    The URL polled is ``url`` + ``datasource`` (the stream's DATASOURCE, as eKuiper appends it).

    Raises:
      PlanError: every unknown key and wrong value (``url`` is required), each prefixed by ``where``.
    """
    values = _checked(
        props, PULL_KEYS, where, "the server address, e.g. 'http://127.0.0.1:9090'", frozenset()
    )
    problems: list[str] = []
    url = values["url"] + datasource
    states = values.get("states", {})
    if has_template(url) and not states:
        problems.append("url: a template needs 'states' to render it with (eKuiper sends it unrendered)")
    request = _request(values, url, problems, "GET")
    _raise(problems, where)
    return PullConf(
        request=request,
        body=values.get("body", ""),
        interval=values.get("interval", DEFAULT_INTERVAL),
        incremental=values.get("incremental", False),
        states=states,
    )


def parse_rest_conf(props: dict[str, Any], where: str, *, encoders: tuple[str, ...]) -> RestConf:
    """A rest action's connector properties, validated.

    Args:
      encoders: the format names the engine can encode (``urlencoded`` is the sink's own, for ``form``).

    Raises:
      PlanError: every unknown key and wrong value (``url`` is required; ``format`` must fit ``bodyType`` as in
        eKuiper: ``json`` for json, ``urlencoded`` for form), each prefixed by ``where``.
    """
    values = _checked(props, REST_KEYS, where, "the endpoint, e.g. 'http://127.0.0.1:9090/api'", REST_IGNORED)
    problems: list[str] = []
    request = _request(values, values["url"], problems, "POST")
    body_type = request.body_type
    fmt = values.get("format", "").strip().lower() or ("urlencoded" if body_type == "form" else "json")
    required = {"json": "json", "form": "urlencoded"}.get(body_type)
    if required is not None and fmt != required:
        problems.append(f"format: must be {required!r} when bodyType is {body_type!r}, got {fmt!r}")
    elif fmt != "urlencoded" and fmt not in encoders:
        problems.append(f"format: unknown format {fmt!r}; known: {', '.join([*encoders, 'urlencoded'])}")
    if not values.get("delimiter", ","):
        problems.append("delimiter: must not be empty")
    if not values.get("file_field_name", "file"):
        problems.append("fileFieldName: must not be empty")
    if values.get("compression") and body_type == "formdata":
        problems.append(
            "compression: not supported with bodyType 'formdata' (multipart bodies are not compressed)"
        )
    _raise(problems, where)
    return RestConf(
        request=request,
        format=fmt,
        delimiter=values.get("delimiter", ","),
        has_header=values.get("has_header", False),
        debug_resp=values.get("debug_resp", False),
        form_data=values.get("form_data", {}),
        file_field_name=values.get("file_field_name", "file"),
        compression=values.get("compression", ""),
    )
