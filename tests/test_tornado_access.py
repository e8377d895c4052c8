"""Tests for rtkit.server.tornado_access, the one module that reads Tornado's private parts.

It fails loudly on a Tornado version it was not checked against, and what it
reads (the bytes Tornado buffered after a request) is checked against the
real thing: a WebSocket client whose first frame arrives in the same TCP
segment as its handshake, and a server started on this Tornado.
"""

from __future__ import annotations

import base64
import json
import os
import socket

import pytest
import tornado
from tornado.iostream import IOStream

import rtkit
from rtkit.server.tornado_access import CHECKED_TORNADO, check_tornado_version
from rtkit.wire.wsframes import FrameParser, Opcode, encode_frame


def test_the_installed_tornado_is_one_this_module_was_checked_against() -> None:
    # Fails on an upgrade until someone reads the private attributes again.
    check_tornado_version()
    assert ".".join(tornado.version.split(".")[:2]) in CHECKED_TORNADO


@pytest.mark.parametrize("version", ["6.4.2", "7.0.0", "5.1", "6.60.1"])
def test_another_tornado_version_is_refused_saying_what_to_check(version: str) -> None:
    with pytest.raises(RuntimeError) as caught:
        check_tornado_version(version)
    message = str(caught.value)
    assert version in message and "_read_buffer" in message and "CHECKED_TORNADO" in message


def test_the_private_attributes_read_exist_on_this_tornado() -> None:
    left, right = socket.socketpair()
    try:
        stream = IOStream(left)
        assert isinstance(stream._read_buffer, bytearray)  # what take_socket reads
    finally:
        right.close()
        left.close()


def test_frames_sent_with_the_handshake_are_not_lost(server: rtkit.Server) -> None:
    """The client's first frame travels in the same write as its handshake, so
    Tornado reads it with the request; the server must still answer it."""
    key = base64.b64encode(os.urandom(16)).decode()
    ping = json.dumps({"type": "ping", "echo": "early"}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .encode() + encode_frame(ping, Opcode.TEXT, mask_key=os.urandom(4))
        )
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        parser = FrameParser(expect_masked=False)
        frames = parser.feed(rest)
        while len(frames) < 2:
            frames += parser.feed(sock.recv(65536))
    hello, pong = (json.loads(f.payload) for f in frames[:2])
    assert hello["type"] == "hello"
    assert (pong["type"], pong["echo"]) == ("pong", "early")
