"""Issue 10, item 7: the server follows RFC 6455 for what a client sends.

Each frame is built by hand (:class:`server_support.RawWebSocket`) against a
real server on port 0. A protocol error is answered with a Close frame of the
right code and the end of the TCP connection, never a silent drop; a valid
close is echoed; the connection leaves nothing behind in ``/stats``.
"""

from __future__ import annotations

import json
import struct

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import MakeServer, RawWebSocket

import rtkit
from rtkit.wire.wsframes import Opcode

PING, PONG, CLOSE, TEXT, BINARY, CONTINUATION = 0x9, 0xA, 0x8, 0x1, 0x2, 0x0


def opened(server: rtkit.Server) -> RawWebSocket:
    ws = RawWebSocket(server)
    assert ws.head.startswith(b"HTTP/1.1 101 ")
    assert ws.next_json()["type"] == "hello"
    return ws


def assert_failed_with(server: rtkit.Server, ws: RawWebSocket, code: int) -> None:
    """The server sent a Close frame with ``code``, then ended the connection."""
    try:
        close = ws.close_frame()
        assert close.close_code == code, (close.close_code, close.close_reason)
        assert close.close_reason  # says what was wrong
        assert ws.closed(), "the server must end the TCP connection after failing it"
    finally:
        ws.close()
    wait_until(lambda: server.stats()["connections"] == {}, message="nothing is left open")


# ----------------------------------------------------------------------------- 1002 and 1007


def test_an_unmasked_client_frame_is_a_protocol_error(server: rtkit.Server) -> None:
    """§5.1: "The server MUST close the connection upon receiving a frame that is not masked.
    In this case, a server MAY send a Close frame with a status code of 1002"."""
    ws = opened(server)
    ws.send_frame(json.dumps({"type": "ping", "echo": 1}).encode(), masked=False)
    assert_failed_with(server, ws, 1002)


@pytest.mark.parametrize("fragments", [[b"\xff\xfe"], [b'{"type": "ping", "echo": "\xc3', b'\xa9"}\xed\xa0\x80']])
def test_a_text_message_that_is_not_utf8_is_1007(server: rtkit.Server, fragments: list[bytes]) -> None:
    """§8.1: not valid UTF-8 -> _Fail the WebSocket Connection_; §7.4.1: 1007."""
    ws = opened(server)
    for i, piece in enumerate(fragments):
        ws.send_frame(piece, TEXT if i == 0 else CONTINUATION, fin=i == len(fragments) - 1)
    assert_failed_with(server, ws, 1007)


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_an_unknown_opcode_is_a_protocol_error(server: rtkit.Server, opcode: int) -> None:
    """§5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_"."""
    ws = opened(server)
    ws.send_frame(b"x", opcode)
    assert_failed_with(server, ws, 1002)


@pytest.mark.parametrize("rsv", [0b100, 0b010, 0b001])
def test_rsv_bits_without_an_extension_are_a_protocol_error(server: rtkit.Server, rsv: int) -> None:
    """§5.2: RSV1-3 "MUST be 0 unless an extension is negotiated"."""
    ws = opened(server)
    ws.send_frame(json.dumps({"type": "ping"}).encode(), rsv=rsv)
    assert_failed_with(server, ws, 1002)


@pytest.mark.parametrize(("opcode", "payload", "fin"), [
    (PING, b"x" * 126, True),  # "All control frames MUST have a payload length of 125 bytes or less"
    (PING, b"x", False),  # "and MUST NOT be fragmented" (§5.5)
    (CLOSE, b"\x03\xe8" + b"r" * 124, True),
])
def test_bad_control_frames_are_a_protocol_error(
    server: rtkit.Server, opcode: int, payload: bytes, fin: bool
) -> None:
    ws = opened(server)
    ws.send_frame(payload, opcode, fin=fin)
    assert_failed_with(server, ws, 1002)


def test_a_continuation_without_a_message_is_a_protocol_error(server: rtkit.Server) -> None:
    ws = opened(server)
    ws.send_frame(b"x", CONTINUATION)
    assert_failed_with(server, ws, 1002)


# ----------------------------------------------------------------------------- closing


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_an_invalid_close_code_is_a_protocol_error(server: rtkit.Server, code: int) -> None:
    """§7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame";
    §7.4.2: 0-999 "are not used", 1000-2999 are the protocol's (1004 reserved, 1016+ unassigned)."""
    ws = opened(server)
    ws.send_frame(struct.pack("!H", code) + b"bye", CLOSE)
    assert_failed_with(server, ws, 1002)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1008, 1011, 1012, 3000, 4000, 4999])
def test_a_valid_close_is_echoed_and_the_server_closes_tcp(server: rtkit.Server, code: int) -> None:
    """§5.5.1: "the endpoint MUST send a Close frame in response ... typically echos the
    status code it received"; §7.1.1: "the server SHOULD close the underlying TCP connection first"."""
    ws = opened(server)
    ws.send_frame(struct.pack("!H", code) + b"au revoir", CLOSE)
    try:
        close = ws.close_frame()
        assert close.close_code == code
        assert ws.closed()
    finally:
        ws.close()
    wait_until(lambda: server.stats()["connections"] == {}, message="nothing is left open")


def test_an_empty_close_is_answered_with_an_empty_close(server: rtkit.Server) -> None:
    ws = opened(server)
    ws.send_frame(b"", CLOSE)
    try:
        close = ws.close_frame()
        assert (close.payload, close.close_code) == (b"", None)
        assert ws.closed()
    finally:
        ws.close()


def test_no_data_frame_follows_the_servers_close(server: rtkit.Server) -> None:
    """§5.5.1: "After sending a Close frame, the endpoint MUST NOT send any more data frames"."""
    ws = opened(server)
    ws.send_frame(struct.pack("!H", 1000), CLOSE)
    for i in range(20):
        server.publish(i)
    try:
        frames = []
        while not ws.eof:
            try:
                frames.append(ws.next_frame())
            except EOFError:
                break
        opcodes = [f.opcode for f in frames]
        assert Opcode.CLOSE in opcodes
        assert all(op != Opcode.TEXT for op in opcodes[opcodes.index(Opcode.CLOSE):])
    finally:
        ws.close()


# ----------------------------------------------------------------------------- what is accepted


def test_a_ping_is_answered_with_a_pong_of_the_same_data(server: rtkit.Server) -> None:
    """§5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response"
    with "identical "Application data"" (§5.5.3)."""
    ws = opened(server)
    try:
        ws.send_frame(b"are you there?", PING)
        pong = ws.next_frame()
        assert (pong.opcode, pong.payload, pong.masked) == (Opcode.PONG, b"are you there?", False)
    finally:
        ws.close()


def test_a_fragmented_message_with_a_ping_inside_is_one_message(server: rtkit.Server) -> None:
    """§5.4: control frames "MAY be injected in the middle of a fragmented message"."""
    ws = opened(server)
    try:
        text = json.dumps({"type": "ping", "echo": "é" * 10}).encode()
        ws.send_frame(text[:5], TEXT, fin=False)
        ws.send_frame(b"mid", PING)
        ws.send_frame(text[5:17], CONTINUATION, fin=False)  # cuts a two-byte character
        ws.send_frame(text[17:], CONTINUATION)
        pong = ws.next_frame()
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"mid")
        reply = ws.next_json()
        assert (reply["type"], reply["echo"]) == ("pong", "é" * 10)
    finally:
        ws.close()


def test_a_binary_message_of_json_is_accepted(server: rtkit.Server) -> None:
    ws = opened(server)
    try:
        ws.send_frame(json.dumps({"type": "publish", "data": [1, 2]}).encode(), BINARY)
        assert ws.next_json() == {"type": "ack", "id": 1}
    finally:
        ws.close()
    assert server.log.after(0).events[0].data == [1, 2]


def test_a_message_over_the_limit_in_fragments_is_1009(make_server: MakeServer) -> None:
    """§7.4.1: 1009, "a message that is too big for it to process"."""
    server = make_server(max_payload=1000)
    ws = opened(server)
    for _ in range(5):
        ws.send_frame(b"x" * 300, TEXT if _ == 0 else CONTINUATION, fin=False)
    assert_failed_with(server, ws, 1009)


# ----------------------------------------------------------------------------- the opening handshake


def handshake_answer(server: rtkit.Server, request: bytes) -> tuple[bytes, bytes]:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def test_a_wrong_version_is_426_naming_the_version_spoken(server: rtkit.Server) -> None:
    """§4.4: "send an appropriate HTTP error code (such as 426 Upgrade Required) and a
    |Sec-WebSocket-Version| header field indicating the version(s) the server is capable of
    understanding"."""
    request = RawWebSocket.handshake(server.port, **{"Sec-WebSocket-Version": "8"})
    head, _ = handshake_answer(server, request)
    assert head.startswith(b"HTTP/1.1 426 ")
    assert b"\r\nsec-websocket-version: 13" in head.lower()  # header names are case-insensitive
    assert server.stats()["connections"] == {}


@pytest.mark.parametrize(("change", "words"), [
    ({"Sec-WebSocket-Key": "too-short"}, b"Sec-WebSocket-Key"),  # §4.2.1 item 5: 16 bytes in base64
    ({"Sec-WebSocket-Key": ""}, b"Sec-WebSocket-Key"),
    ({"Connection": "keep-alive"}, b"Connection: Upgrade"),  # §4.2.1 item 4
])
def test_a_bad_handshake_is_a_json_400(server: rtkit.Server, change: dict[str, str], words: bytes) -> None:
    head, body = handshake_answer(server, RawWebSocket.handshake(server.port, **change))
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"application/json" in head and words in body


def test_the_accept_key_answers_the_clients_key(server: rtkit.Server) -> None:
    """§4.2.2 item 5: Sec-WebSocket-Accept is base64(SHA-1(key + the GUID)); no extension
    or subprotocol is agreed to."""
    import base64
    import hashlib

    key = base64.b64encode(b"0123456789abcdef").decode()
    head, _ = handshake_answer(server, RawWebSocket.handshake(
        server.port, **{"Sec-WebSocket-Key": key, "Sec-WebSocket-Extensions": "permessage-deflate"}))
    expected = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: " + expected in head
    assert b"Sec-WebSocket-Extensions" not in head and b"Sec-WebSocket-Protocol" not in head
