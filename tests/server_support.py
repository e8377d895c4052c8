"""Shared support for the server tests: one request, an SSE stream, WebSocket clients.

Use its helpers with ``from server_support import get_json, ...`` and its
fixtures (``open_sse``, ``open_ws``, ``streams``, ``pool``) with::

    pytest_plugins = ("server_support",)

Everything talks to a real :class:`rtkit.Server` on 127.0.0.1 over real sockets:
``http.client`` for /poll, /longpoll, /sse and /publish, the ``websockets``
sync client for /ws. Waiting is for a condition, never a sleep.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import rtkit
from rtkit.sse import Event, SSEDecoder

__all__ = [
    "PROMPT",
    "Answer",
    "MakeServer",
    "RawWebSocket",
    "SSEStream",
    "assert_refusal",
    "assert_serving",
    "empty_batch",
    "event_ids",
    "get_json",
    "open_sse",
    "open_ws",
    "pool",
    "publish_http",
    "recv_json",
    "recv_until",
    "request",
    "stats_settled",
    "streams",
    "upgrade_headers",
]

MakeServer = Callable[..., rtkit.Server]

#: Upper bound for anything that should happen "at once" on a loaded 2-core machine.
PROMPT = 3.0

@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def request(
    server: rtkit.Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One request on a fresh connection; the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def get_json(server: rtkit.Server, path: str, **kwargs: Any) -> Any:
    answer = request(server, "GET", path, **kwargs)
    assert answer.status == 200, answer.body
    assert answer.content_type.startswith("application/json")
    return answer.json()


def publish_http(server: rtkit.Server, body: bytes, content_type: str | None) -> Answer:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return request(server, "POST", "/publish", body=body, headers=headers)


def empty_batch(server: rtkit.Server, last_id: int, topic: str = "default") -> dict[str, Any]:
    """A batch without events, as the server answers it for ``topic``."""
    return {"events": [], "last_id": last_id, "more": False, "gap": False,
            "epoch": server.log.epoch_of(topic), "topic": topic}


def event_ids(batch: dict[str, Any]) -> list[int]:
    return [e["id"] for e in batch["events"]]


def assert_refusal(answer: Answer, status: int, *words: str) -> str:
    """A refusal: ``status``, a JSON body ``{"error": str}`` naming each of ``words``."""
    assert answer.status == status, (answer.status, answer.body)
    assert answer.content_type.startswith("application/json"), answer.content_type
    body = answer.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, str)
    for word in words:
        assert word.lower() in error.lower(), f"{word!r} not in {error!r}"
    return error


def assert_serving(server: rtkit.Server, published: list[Any]) -> None:
    """The server still answers, with every event published so far, and accepts more."""
    batch = get_json(server, "/poll?since=0")
    assert [e["data"] for e in batch["events"]] == published
    assert event_ids(batch) == list(range(1, len(published) + 1))
    answer = publish_http(server, b'{"after": "refusal"}', "application/json")
    assert answer.status == 200, answer.body
    assert answer.json() == {"id": len(published) + 1}


class SSEStream:
    """A ``GET /sse`` response read as it arrives, decoded by :class:`SSEDecoder`."""

    def __init__(
        self, server: rtkit.Server, path: str = "/sse", headers: dict[str, str] | None = None
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        self.conn.request("GET", path, headers=headers or {})
        # The socket, kept: a close-delimited response takes it away from conn.
        self.sock = self.conn.sock
        assert self.sock is not None
        self.response = self.conn.getresponse()
        self.decoder = SSEDecoder()
        self.raw = bytearray()
        self.events: list[Event] = []

    def read_some(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.01))
        chunk = self.response.read1(65536)
        if not chunk:
            raise EOFError("the server ended the stream")
        self.raw += chunk
        self.events.extend(self.decoder.feed(chunk))
        return chunk

    def read_until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream condition not met within {timeout} s: {self.raw!r}")
            try:
                self.read_some(remaining)
            except TimeoutError:
                pass

    def messages(self) -> list[Event]:
        return [e for e in self.events if e.type == "message"]

    def read_messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        self.read_until(lambda: len(self.messages()) >= count, timeout)
        return [json.loads(e.data) for e in self.messages()]

    def comment_lines(self) -> list[bytes]:
        return [line for line in bytes(self.raw).splitlines() if line.startswith(b":")]

    def close(self) -> None:
        self.response.close()
        self.conn.close()
        self.sock.close()


@pytest.fixture
def streams() -> Iterator[list[SSEStream]]:
    opened: list[SSEStream] = []
    yield opened
    for stream in opened:
        stream.close()


@pytest.fixture
def open_sse(streams: list[SSEStream]) -> Callable[..., SSEStream]:
    def open_(server: rtkit.Server, path: str = "/sse", **kwargs: Any) -> SSEStream:
        stream = SSEStream(server, path, **kwargs)
        streams.append(stream)
        return stream

    return open_


@pytest.fixture
def open_ws() -> Iterator[Callable[..., ClientConnection]]:
    """Connect WebSocket clients (the ``websockets`` sync client); closed after the test."""
    with contextlib.ExitStack() as opened:

        def open_(server: rtkit.Server, path: str = "/ws", **kwargs: Any) -> ClientConnection:
            kwargs.setdefault("open_timeout", 10)
            uri = f"ws://127.0.0.1:{server.port}{path}"
            return opened.enter_context(connect(uri, proxy=None, **kwargs))

        yield open_


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str)  # text frames only
    obj = json.loads(message)
    assert isinstance(obj, dict)
    return obj


def recv_until(
    ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        got.append(recv_json(ws, max(deadline - time.monotonic(), 0.01)))
    return got


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def upgrade_headers(**extra: str) -> dict[str, str]:
    """The headers of a WebSocket opening handshake (RFC 6455 §4.1)."""
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **extra,
    }


def stats_settled(server: rtkit.Server) -> bool:
    """No open streams or held requests, nothing waiting for a publish."""
    stats = server.stats()
    return stats["connections"] == {} and stats["waiting"] == 0


class RawWebSocket:
    """A WebSocket client written by hand over a plain socket, to send what the
    ``websockets`` library never would (unmasked frames, bad close codes, ...).

    ``frames()`` returns the server's frames as they arrive (unmasked, as RFC
    6455 §5.1 demands of a server); ``closed()`` says whether the server ended
    the TCP connection.
    """

    def __init__(self, server: rtkit.Server, path: str = "/ws", rcvbuf: int | None = None) -> None:
        import socket

        from rtkit.wire.wsframes import FrameParser

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", server.port))
        self.sock.sendall(self.handshake(server.port, path))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: the frames that follow stay in the socket
            if not chunk:
                raise ConnectionError(f"the server closed the connection: {head!r}")
            head += chunk
        self.head = head
        self.parser = FrameParser(expect_masked=False)
        self.pending: list[Any] = []
        self.eof = False

    @staticmethod
    def handshake(port: int, path: str = "/ws", **extra: str) -> bytes:
        headers = {
            "Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13", **extra,
        }
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"GET {path} HTTP/1.1\r\n{lines}\r\n".encode()

    def send_frame(
        self, payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv: int = 0,
        masked: bool = True,
    ) -> None:
        """One frame, built by hand (any opcode, RSV bits, length, masked or not)."""
        import struct

        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mask_bit = 0x80 if masked else 0
        if n < 126:
            header = struct.pack("!BB", first, mask_bit | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", first, mask_bit | 126, n)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, n)
        if masked:
            key = os.urandom(4)
            stream = int.from_bytes((key * (n // 4 + 1))[:n], "big")  # RFC 6455 §5.3
            payload = (int.from_bytes(payload, "big") ^ stream).to_bytes(n, "big")
            header += key
        self.sock.sendall(header + payload)

    def send_json(self, obj: Any) -> None:
        self.send_frame(json.dumps(obj).encode())

    def next_frame(self, timeout: float = 5.0) -> Any:
        """The next frame from the server (``EOFError`` if it closed the connection first)."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                raise EOFError("the server closed the connection")
            self.pending.extend(self.parser.feed(data))
        return self.pending.pop(0)

    def next_json(self, timeout: float = 5.0) -> Any:
        return json.loads(self.next_frame(timeout).payload)

    def close_frame(self, timeout: float = 5.0) -> Any:
        """Skip to the server's Close frame and return it."""
        from rtkit.wire.wsframes import Opcode

        while True:
            frame = self.next_frame(timeout)
            if frame.opcode == Opcode.CLOSE:
                return frame

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the TCP connection within ``timeout`` (reading what is left)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                if not self.sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
        return False

    def close(self) -> None:
        self.sock.close()
