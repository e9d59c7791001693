"""eKuiper's ``oAuth`` for the HTTP connectors: get an access token before the first request, renew it once half of
its life has passed, and render the request headers (and the httppull body) with the token response's fields.

As in eKuiper (``internal/io/http/client.go``): the access and refresh requests are POSTs with a json body; the
first object of the JSON answer holds the tokens; ``{{.token}}`` in a header value or body takes its field. A
token that cannot be renewed is kept (and the renewal tried again after the next request). Token values are
never logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, final

import httpx
import orjson
import trio

from runtime.config.secrets import redact_url
from runtime.errors import PlanError, SourceError
from runtime.formats.gotemplate import PropertyTemplate, TemplateExecError, TemplateSyntaxError
from runtime.io.http.client import failure_reason, status_text
from runtime.io.http.conf import OAuthConf


def _templates(values: Mapping[str, str], where: str) -> dict[str, PropertyTemplate]:
    try:
        return {name: PropertyTemplate(value, name=name) for name, value in values.items()}
    except TemplateSyntaxError as exc:
        raise PlanError(f"{where}: {exc.message}") from None


@final
class TokenKeeper:
    """The tokens of one source or sink and the headers (and body) rendered with them.

    Args:
      oauth: the ``oAuth`` settings. headers, body: the request's own, as templates over the token response.
      timeout: seconds each token request may take (0: no limit). label: names the connector in messages.

    Raises (when built):
      PlanError: a header, body or refresh template that does not parse.
    """

    def __init__(
        self,
        oauth: OAuthConf,
        headers: Mapping[str, str],
        body: str,
        *,
        timeout: float,
        label: str,
        logger: logging.Logger,
    ) -> None:
        self._oauth = oauth
        self._label = label
        self._logger = logger
        self._timeout = timeout if timeout > 0 else math.inf
        where = f"{label} oAuth"
        self._header_templates = _templates(headers, where)
        self._body_template = _templates({"body": body}, where)["body"]
        self._refresh_header_templates = _templates(oauth.refresh_headers, where)
        self._refresh_body_template = _templates({"body": oauth.refresh_body}, where)["body"]
        self._updated_at = -math.inf
        self._refresh_headers: dict[str, str] = {}
        self._refresh_body = ""
        self.headers: dict[str, str] = dict(headers)
        """The request headers, rendered with the latest tokens."""
        self.body = body
        """The httppull request body, rendered with the latest tokens."""

    async def authorize(self, client: httpx.AsyncClient) -> None:
        """Get a token from the access url and render the headers and body with it.

        Raises:
          SourceError: no token (no answer, a status outside 2xx, not a JSON object, a template failing for it).
        """
        oauth = self._oauth
        await self._fetch(
            client, oauth.access_url, oauth.access_headers, oauth.access_body, "an access token"
        )
        self._logger.info("%s: got an access token from %s", self._label, redact_url(oauth.access_url))

    async def renew_if_due(self, client: httpx.AsyncClient) -> None:
        """After a request: once half of the token's life has passed, refresh it (or authorize again when no
        refresh url is set). A failure is logged and the current token kept. Never raises."""
        oauth = self._oauth
        if oauth.expire <= 0 or (trio.current_time() - self._updated_at) * 2 <= oauth.expire:
            return
        try:
            if oauth.refresh_url:
                await self._fetch(
                    client, oauth.refresh_url, self._refresh_headers, self._refresh_body, "a refreshed token"
                )
            else:
                await self._fetch(
                    client, oauth.access_url, oauth.access_headers, oauth.access_body, "a new token"
                )
        except SourceError as exc:
            self._logger.warning("%s; keeping the current token", exc)

    async def _fetch(
        self, client: httpx.AsyncClient, url: str, headers: Mapping[str, str], body: str, what: str
    ) -> None:
        shown = redact_url(url)
        reason = ""
        tokens: Any = None
        with trio.move_on_after(self._timeout) as scope:
            try:
                response = await client.post(
                    url, headers={"Content-Type": "application/json", **headers}, content=body.encode()
                )
            except httpx.HTTPError as exc:
                reason = failure_reason(exc)
            else:
                if not response.is_success:
                    reason = f"answered {status_text(response)}"
                else:
                    try:
                        tokens = orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        reason = "the answer is not JSON"
        if scope.cancelled_caught:
            reason = f"timed out after {self._timeout:g}s"
        if isinstance(tokens, list) and tokens:
            tokens = tokens[0]
        if not reason and not isinstance(tokens, dict):
            reason = "the answer is not a JSON object"
        if reason:
            raise SourceError(f"{self._label}: cannot get {what} from {shown}: {reason}")
        try:
            self._render(tokens)
        except TemplateExecError as exc:
            raise SourceError(f"{self._label}: the token answer does not fit the templates: {exc}") from None
        self._updated_at = trio.current_time()

    def _render(self, tokens: dict[str, Any]) -> None:
        headers = {name: template.render(tokens) for name, template in self._header_templates.items()}
        body = self._body_template.render(tokens)
        refresh_headers = {name: t.render(tokens) for name, t in self._refresh_header_templates.items()}
        refresh_body = self._refresh_body_template.render(tokens)
        # All or nothing: a template failing for the new tokens leaves the previous rendering in place.
        self.headers, self.body = headers, body
        self._refresh_headers, self._refresh_body = refresh_headers, refresh_body

    def __repr__(self) -> str:
        return f"<TokenKeeper {redact_url(self._oauth.access_url)}>"
