"""``POST /publish``: the body becomes one event; answers ``{"id": N}``.

A body sent as JSON (``Content-Type: application/json`` or ``*+json``) must be
valid JSON and is published as that value; any other body must be UTF-8 text
and is published as a string. Bodies over ``max_payload`` bytes get 413 before
they are read, when ``Content-Length`` tells.
"""

from __future__ import annotations

import json

from tornado.web import stream_request_body

from rtkit.log import encode_payload
from rtkit.server.base import BaseHandler
from rtkit.server.params import BadRequest

__all__ = ["PublishHandler"]


def _too_large(limit: int) -> BadRequest:
    return BadRequest(f"payload too large: the limit is {limit} bytes", status=413)


@stream_request_body
class PublishHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        # A page of another origin must not publish here (a cross-site POST).
        self.check_origin_header("publishing")
        self._body = bytearray()
        limit = self.config.max_payload
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        # A chunked body over the limit: Tornado drops the connection past this.
        self.request.connection.set_max_body_size(limit)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk

    def post(self) -> None:
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
        event = self.log.append_json(data_json)
        self.write_json(json.dumps({"id": event.id}))
