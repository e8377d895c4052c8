"""``POST /publish?topic=T``: the body becomes one event of topic T (``default``
when absent; a new name makes the topic); answers ``{"id": N}``.

A body sent as JSON (``Content-Type: application/json`` or ``*+json``) must be
valid JSON and is published as that value; any other body must be UTF-8 text
and is published as a string. Bodies over ``max_payload`` bytes get 413 before
they are read, when ``Content-Length`` tells.
"""

from __future__ import annotations

import json

from tornado.http1connection import HTTP1Connection
from tornado.web import stream_request_body

from rtkit.core.exceptions import LogUnavailable
from rtkit.log import encode_payload
from rtkit.server.base import BaseHandler
from rtkit.server.params import BadRequest, parse_topic

__all__ = ["PublishHandler"]


def _too_large(limit: int) -> BadRequest:
    return BadRequest(f"payload too large: the limit is {limit} bytes", status=413)


@stream_request_body
class PublishHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        # A page of another origin must not publish here (a cross-site POST).
        self.check_origin_header("publishing")
        self._topic = parse_topic(self.get_query_argument("topic", None))
        self._body = bytearray()
        limit = self.config.max_payload
        length = self.request.headers.get("Content-Length")
        # Checked as text first: int() of thousands of digits is an error, not a number.
        if length is not None and length.isdigit() and (len(length) > 18 or int(length) > limit):
            raise _too_large(limit)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            # A chunked body over the limit: Tornado drops the connection past this.
            connection.set_max_body_size(limit)

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk

    async def post(self) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = bytes(self._body)
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                payload = json.loads(body)
            except RecursionError:
                raise BadRequest(
                    "body JSON is nested too deeply to decode; send a flatter JSON value"
                ) from None
            except ValueError as exc:
                raise BadRequest(
                    f"body is not valid JSON ({exc}); send a JSON value with "
                    f"Content-Type: application/json, or text with any other type"
                ) from None
        else:
            try:
                payload = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(
                    "body is not valid UTF-8 text; send UTF-8 text, or JSON with "
                    "Content-Type: application/json"
                ) from None
        try:
            data_json = encode_payload(payload)
        except TypeError as exc:  # NaN / Infinity parsed from the body
            raise BadRequest(str(exc)) from None
        try:
            event = await self.log.append_json_async(data_json, self._topic)
        except LogUnavailable as exc:
            raise BadRequest(f"cannot publish now: {exc}", status=503) from None
        except ValueError as exc:  # one topic too many
            raise BadRequest(str(exc)) from None
        self.write_json(json.dumps({"id": event.id}))
