"""Tests for rtkit.wire.wsframes: RFC 6455's own examples, round trips, protocol errors."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtkit.core.exceptions import ProtocolError
from rtkit.wire.wsframes import (
    Frame,
    FrameParser,
    Opcode,
    accept_key,
    encode_frame,
    new_key,
    split_handshake,
    upgrade_request,
)

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def pieces(raw: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield raw[start:cut]
        start = cut
    yield raw[start:]


def parse(raw: bytes, cuts: Sequence[int] = (), **kwargs: object) -> list[Frame]:
    parser = FrameParser(**kwargs)  # type: ignore[arg-type]
    frames: list[Frame] = []
    for piece in pieces(raw, cuts):
        frames += parser.feed(piece)
    assert parser.buffered == 0
    assert parser.bytes_received == len(raw)
    return frames


def frame(
    payload: bytes,
    opcode: Opcode = Opcode.TEXT,
    *,
    fin: bool = True,
    mask_key: bytes | None = None,
    rsv1: bool = False,
) -> Frame:
    """The Frame the parser must return for encode_frame(...) with the same arguments."""
    n = len(payload)
    header = 2 + (0 if n < 126 else 2 if n < 65536 else 8) + (4 if mask_key else 0)
    return Frame(
        fin, rsv1, False, False, opcode, mask_key is not None, mask_key, payload, header, header + n
    )


# --------------------------------------------------------------------------- #
# RFC 6455 §5.7 examples, both directions
# --------------------------------------------------------------------------- #

PAYLOAD_256 = bytes(range(256))
PAYLOAD_64K = bytes(range(256)) * 256

RFC_EXAMPLES = [
    (
        "single-frame-unmasked-text",
        bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
        [frame(b"Hello")],
        [{"payload": b"Hello"}],
    ),
    (
        "single-frame-masked-text",
        bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        [frame(b"Hello", mask_key=MASK)],
        [{"payload": b"Hello", "mask_key": MASK}],
    ),
    (
        "fragmented-unmasked-text",
        bytes([0x01, 0x03, 0x48, 0x65, 0x6C]) + bytes([0x80, 0x02, 0x6C, 0x6F]),
        [frame(b"Hel", fin=False), frame(b"lo", Opcode.CONTINUATION)],
        [{"payload": b"Hel", "fin": False}, {"payload": b"lo", "opcode": Opcode.CONTINUATION}],
    ),
    (
        "unmasked-ping",
        bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),
        [frame(b"Hello", Opcode.PING)],
        [{"payload": b"Hello", "opcode": Opcode.PING}],
    ),
    (
        "masked-pong",
        bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        [frame(b"Hello", Opcode.PONG, mask_key=MASK)],
        [{"payload": b"Hello", "opcode": Opcode.PONG, "mask_key": MASK}],
    ),
    (
        "256-bytes-binary-16-bit-length",
        bytes([0x82, 0x7E, 0x01, 0x00]) + PAYLOAD_256,
        [frame(PAYLOAD_256, Opcode.BINARY)],
        [{"payload": PAYLOAD_256, "opcode": Opcode.BINARY}],
    ),
    (
        "64KiB-binary-64-bit-length",
        bytes([0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]) + PAYLOAD_64K,
        [frame(PAYLOAD_64K, Opcode.BINARY)],
        [{"payload": PAYLOAD_64K, "opcode": Opcode.BINARY}],
    ),
]
RFC_IDS = [example[0] for example in RFC_EXAMPLES]


@pytest.mark.parametrize(("name", "raw", "expected", "encode_args"), RFC_EXAMPLES, ids=RFC_IDS)
def test_rfc_example_parses(
    name: str, raw: bytes, expected: list[Frame], encode_args: list[dict]
) -> None:
    assert parse(raw) == expected
    assert sum(f.frame_bytes for f in expected) == len(raw)


@pytest.mark.parametrize(("name", "raw", "expected", "encode_args"), RFC_EXAMPLES, ids=RFC_IDS)
def test_rfc_example_encodes(
    name: str, raw: bytes, expected: list[Frame], encode_args: list[dict]
) -> None:
    assert b"".join(encode_frame(**args) for args in encode_args) == raw


@pytest.mark.parametrize(
    ("name", "raw", "expected", "encode_args"), RFC_EXAMPLES[:6], ids=RFC_IDS[:6]
)
def test_rfc_example_byte_by_byte(
    name: str, raw: bytes, expected: list[Frame], encode_args: list[dict]
) -> None:
    assert parse(raw, range(len(raw) + 1)) == expected


def test_frame_is_returned_only_when_complete() -> None:
    parser = FrameParser()
    raw = bytes([0x82, 0x7E, 0x01, 0x00]) + PAYLOAD_256
    assert parser.feed(raw[:1]) == []
    assert parser.feed(raw[1:3]) == []
    assert parser.feed(raw[3:100]) == []
    assert parser.buffered == 100
    assert parser.feed(raw[100:] + raw[:2]) == [frame(PAYLOAD_256, Opcode.BINARY)]
    assert parser.buffered == 2


def test_accept_key_rfc_example() -> None:
    # RFC 6455 §1.3 / §4.2.2
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# --------------------------------------------------------------------------- #
# Frame helpers
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("raw", "summary"),
    [
        (encode_frame(b"hello", mask_key=MASK), "FIN TEXT masked len=5 'hello'"),
        (encode_frame(b"Hel", fin=False), "NOFIN TEXT len=3 'Hel'"),
        (encode_frame(b"\x00\xff", Opcode.BINARY), "FIN BINARY len=2 b'\\x00\\xff'"),
        (encode_frame(b"", Opcode.PING), "FIN PING len=0"),
        (encode_frame(b"\x03\xe8bye", Opcode.CLOSE), "FIN CLOSE len=5 code=1000 'bye'"),
        (encode_frame(b"\x03\xe9", Opcode.CLOSE), "FIN CLOSE len=2 code=1001"),
        (encode_frame(b"", Opcode.CLOSE), "FIN CLOSE len=0"),
        (encode_frame(b"\xf2H\xcd", Opcode.TEXT, rsv1=True), "FIN RSV1 TEXT len=3 b'\\xf2H\\xcd'"),
        (encode_frame(b"x" * 50), "FIN TEXT len=50 '" + "x" * 40 + "'..."),
    ],
)
def test_describe(raw: bytes, summary: str) -> None:
    [parsed] = parse(raw)
    assert parsed.describe() == summary


def test_close_code_and_reason() -> None:
    [close] = parse(encode_frame(b"\x03\xf1too big", Opcode.CLOSE))
    assert (close.close_code, close.close_reason) == (1009, "too big")
    [empty] = parse(encode_frame(b"", Opcode.CLOSE))
    assert (empty.close_code, empty.close_reason) == (None, None)
    [text] = parse(encode_frame(b"\x03\xe8"))
    assert (text.close_code, text.close_reason) == (None, None)
    [bare] = parse(encode_frame(b"\x03\xe8", Opcode.CLOSE))
    assert (bare.close_code, bare.close_reason) == (1000, "")


def test_frame_is_frozen() -> None:
    [parsed] = parse(encode_frame(b"x"))
    with pytest.raises(AttributeError):
        parsed.payload = b"y"  # type: ignore[misc]
    assert not hasattr(parsed, "__dict__")


def test_opcode_is_control() -> None:
    assert [op.name for op in Opcode if op.is_control] == ["CLOSE", "PING", "PONG"]


def test_split_handshake() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    frames = encode_frame(b"hi")
    assert split_handshake(head + frames) == (head, frames)
    assert split_handshake(head) == (head, b"")


def test_split_handshake_without_complete_head() -> None:
    with pytest.raises(
        ProtocolError, match=r"no complete HTTP head: received b'HTTP/1.1 101.*expected"
    ):
        split_handshake(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")


# --------------------------------------------------------------------------- #
# Round trips: encode -> parse across random chunkings
# --------------------------------------------------------------------------- #

mask_keys = st.none() | st.binary(min_size=4, max_size=4)
payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([0, 125, 126, 127, 65535, 65536]).map(
        lambda n: (bytes(range(251)) * (n // 251 + 1))[:n]
    ),
)


@st.composite
def control_frames(draw: st.DrawFn) -> list[tuple[bytes, Frame]]:
    opcode = draw(st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]))
    if opcode == Opcode.CLOSE:
        code = draw(st.none() | st.integers(1000, 4999))
        reason = draw(st.text(max_size=30).filter(lambda t: len(t.encode()) <= 123)) if code else ""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    else:
        payload = draw(st.binary(max_size=125))
    mask_key = draw(mask_keys)
    return [
        (
            encode_frame(payload, opcode, mask_key=mask_key),
            frame(payload, opcode, mask_key=mask_key),
        )
    ]


@st.composite
def data_messages(draw: st.DrawFn) -> list[tuple[bytes, Frame]]:
    """One TEXT/BINARY message, possibly fragmented, possibly with control frames in between."""
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    fragments = draw(st.lists(payloads, min_size=1, max_size=3))
    rsv1 = draw(st.booleans())
    out: list[tuple[bytes, Frame]] = []
    for i, payload in enumerate(fragments):
        op = opcode if i == 0 else Opcode.CONTINUATION
        fin = i == len(fragments) - 1
        first_rsv1 = rsv1 and i == 0  # permessage-deflate sets RSV1 on the first frame only
        mask_key = draw(mask_keys)
        out.append(
            (
                encode_frame(payload, op, fin=fin, mask_key=mask_key, rsv1=first_rsv1),
                frame(payload, op, fin=fin, mask_key=mask_key, rsv1=first_rsv1),
            )
        )
        if not fin and draw(st.booleans()):
            out += draw(control_frames())  # RFC 6455 §5.4: control frames MAY be injected
    return out


streams = st.lists(control_frames() | data_messages(), min_size=1, max_size=5).map(
    lambda items: [pair for item in items for pair in item]
)


@settings(max_examples=60, deadline=None)
@given(stream=streams, data=st.data())
def test_round_trip_random_chunking(stream: list[tuple[bytes, Frame]], data: st.DataObject) -> None:
    raw = b"".join(encoded for encoded, _ in stream)
    expected = [parsed for _, parsed in stream]
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20), label="cuts")
    frames = parse(raw, cuts)
    assert frames == expected
    assert sum(f.frame_bytes for f in frames) == len(raw)


@settings(max_examples=40, deadline=None)
@given(
    payload=st.binary(max_size=2000),
    mask_key=mask_keys,
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
)
def test_round_trip_single_frame_byte_by_byte(
    payload: bytes, mask_key: bytes | None, opcode: Opcode
) -> None:
    raw = encode_frame(payload, opcode, mask_key=mask_key)
    assert parse(raw, range(len(raw) + 1)) == [frame(payload, opcode, mask_key=mask_key)]
    if (
        mask_key is not None and payload
    ):  # RFC 6455 §5.3: j = i MOD 4; octet-i XOR masking-key-octet-j
        assert raw[-len(payload) :] == bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))


# --------------------------------------------------------------------------- #
# Protocol errors
# --------------------------------------------------------------------------- #

ERRORS = [
    ("reserved-opcode-3", bytes([0x83, 0x00]), {}, ["reserved opcode 0x3", "expected"]),
    ("reserved-opcode-0xb", bytes([0x8B, 0x00]), {}, ["reserved opcode 0xb"]),
    (
        "control-frame-too-long",
        bytes([0x89, 0x7E, 0x00, 0x7E]) + b"x" * 126,
        {},
        ["PING control frame with a 126-byte payload", "at most 125"],
    ),
    ("fragmented-ping", bytes([0x09, 0x00]), {}, ["fragmented PING control frame"]),
    ("fragmented-close", bytes([0x08, 0x02, 0x03, 0xE8]), {}, ["fragmented CLOSE control frame"]),
    (
        "continuation-without-message",
        bytes([0x80, 0x01]) + b"x",
        {},
        ["CONTINUATION frame with no fragmented message"],
    ),
    (
        "new-message-inside-fragmented",
        bytes([0x01, 0x01]) + b"a" + bytes([0x81, 0x01]) + b"b",
        {},
        ["TEXT frame while a fragmented message is in progress"],
    ),
    (
        "non-minimal-16-bit-length",
        bytes([0x81, 0x7E, 0x00, 0x05]) + b"hello",
        {},
        ["non-minimal length: 5"],
    ),
    (
        "non-minimal-64-bit-length",
        bytes([0x82, 0x7F]) + struct.pack("!Q", 300) + b"x" * 300,
        {},
        ["non-minimal length: 300"],
    ),
    (
        "64-bit-length-msb-set",
        bytes([0x82, 0x7F]) + struct.pack("!Q", 1 << 63),
        {},
        ["most significant bit"],
    ),
    (
        "close-one-byte-payload",
        bytes([0x88, 0x01, 0x03]),
        {},
        ["CLOSE frame with a 1-byte payload"],
    ),
    ("close-reason-not-utf8", bytes([0x88, 0x04, 0x03, 0xE8, 0xC3, 0x28]), {}, ["not valid UTF-8"]),
    (
        "max-payload",
        encode_frame(b"x" * 1000),
        {"max_payload": 999},
        ["1000-byte payload", "limit is 999"],
    ),
    (
        "client-frame-unmasked",
        encode_frame(b"hi"),
        {"expect_masked": True},
        ["unmasked TEXT frame"],
    ),
    (
        "server-frame-masked",
        encode_frame(b"hi", mask_key=MASK),
        {"expect_masked": False},
        ["masked TEXT frame"],
    ),
]
ERROR_IDS = [case[0] for case in ERRORS]


@pytest.mark.parametrize(("name", "raw", "kwargs", "fragments"), ERRORS, ids=ERROR_IDS)
def test_protocol_error(name: str, raw: bytes, kwargs: dict, fragments: list[str]) -> None:
    for cuts in ((), range(len(raw) + 1)):
        with pytest.raises(ProtocolError) as info:
            parse(raw, cuts, **kwargs)
        for fragment in fragments:
            assert fragment in str(info.value)


def test_max_payload_fails_on_the_header_before_the_payload_arrives() -> None:
    parser = FrameParser(max_payload=1024)
    assert parser.feed(encode_frame(b"x" * 1024)) != []
    with pytest.raises(ProtocolError, match="limit is 1024"):
        parser.feed(bytes([0x82, 0x7F]) + struct.pack("!Q", 1 << 40))


def test_parser_refuses_input_after_an_error() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError):
        parser.feed(bytes([0x83, 0x00]))
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed(encode_frame(b"ok"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"payload": b"x", "mask_key": b"abc"}, ValueError, "exactly 4 bytes"),
        ({"payload": b"x" * 126, "opcode": Opcode.PING}, ValueError, "at most 125"),
        ({"payload": b"", "opcode": Opcode.CLOSE, "fin": False}, ValueError, "fin=True"),
        ({"payload": b"", "opcode": 3}, ValueError, "reserved or unknown opcode"),
        ({"payload": "text"}, TypeError, "bytes"),
    ],
)
def test_encode_frame_refuses_bad_arguments(
    kwargs: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        encode_frame(**kwargs)


def test_encode_frame_accepts_int_opcode() -> None:
    assert encode_frame(b"", 0x9) == bytes([0x89, 0x00])


# --------------------------------------------------------------------------- #
# A real handshake and real frames from a `websockets` server
# --------------------------------------------------------------------------- #


async def _capture_real_connection() -> tuple[bytes, str, list[Frame]]:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        await ws.send("hello")
        message = await ws.recv()
        await ws.send(str(message).upper())
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request, key = upgrade_request(f"127.0.0.1:{port}", "/", key="dGhlIHNhbXBsZSBub25jZQ==")
            writer.write(request)
            capture = bytearray()
            parser = FrameParser(expect_masked=False)  # server frames are never masked
            frames: list[Frame] = []

            async def read_until(predicate) -> None:  # type: ignore[no-untyped-def]
                while not predicate():
                    data = await reader.read(65536)
                    assert data, "server closed early"
                    capture.extend(data)
                    if b"\r\n\r\n" in capture:
                        _, rest = split_handshake(bytes(capture))
                        frames[:] = FrameParser(expect_masked=False).feed(rest)

            await read_until(lambda: len(frames) >= 1)
            head, _ = split_handshake(bytes(capture))
            writer.write(encode_frame(b"abc", mask_key=os.urandom(4)))
            await read_until(lambda: len(frames) >= 2)
            writer.write(encode_frame(b"\x03\xe8done", Opcode.CLOSE, mask_key=os.urandom(4)))
            await read_until(lambda: len(frames) >= 3)
            assert await reader.read() == b""  # the server closes the TCP connection
            _, rest = split_handshake(bytes(capture))
            assert parser.feed(rest) == frames
            return head, key, frames
        finally:
            writer.close()
            await writer.wait_closed()


def test_real_websockets_server_handshake_and_frames() -> None:
    head, key, frames = asyncio.run(asyncio.wait_for(_capture_real_connection(), timeout=10))
    assert head.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {accept_key(key)}\r\n".encode() in head
    assert [f.describe() for f in frames] == [
        "FIN TEXT len=5 'hello'",
        "FIN TEXT len=3 'ABC'",
        "FIN CLOSE len=6 code=1000 'done'",
    ]
    assert all(not f.masked and f.header_bytes == 2 for f in frames)


# ----------------------------------------------------------------------------- the upgrade request


def test_upgrade_request_is_the_rfc_6455_handshake() -> None:
    request, key = upgrade_request("127.0.0.1:8888", "/ws?since=0", key="dGhlIHNhbXBsZSBub25jZQ==")
    assert request == (
        b"GET /ws?since=0 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    # RFC 6455 §1.3's own example of the accept value for this key.
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    head, rest = split_handshake(request)
    assert (head, rest) == (request, b"")


def test_upgrade_request_makes_a_fresh_key_and_takes_extra_headers() -> None:
    (one, k1), (_, k2) = upgrade_request("h:1"), upgrade_request("h:1")
    assert k1 != k2 and len(base64.b64decode(k1)) == 16 and len(base64.b64decode(new_key())) == 16
    assert one.startswith(b"GET /ws HTTP/1.1\r\n") and f"Sec-WebSocket-Key: {k1}".encode() in one
    with_origin, _ = upgrade_request("h:1", headers=(("Origin", "http://h:1"),))
    assert with_origin.endswith(b"Sec-WebSocket-Version: 13\r\nOrigin: http://h:1\r\n\r\n")


@pytest.mark.parametrize("kwargs, word", [
    ({"host": "a b"}, "host"), ({"host": "h\r\nX: 1"}, "host"), ({"path": "ws"}, "path"),
    ({"path": "/ws\r\n"}, "path"), ({"key": ""}, "key"),
    ({"headers": (("X", "a\nb"),)}, "header"),
])
def test_upgrade_request_refuses_broken_pieces(kwargs: dict, word: str) -> None:
    args = {"host": "h:1", **kwargs}
    with pytest.raises(ValueError, match=word):
        upgrade_request(**args)
