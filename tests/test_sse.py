"""Tests for rtkit.wire.sse: the SSE encoder and the incremental decoder.

Every table case is fed whole, byte by byte and in random chunks (hypothesis);
all three must give the same events. A plain, non-incremental transcription of
the spec (``reference_decode``) is the oracle for random streams.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtkit.sse
import rtkit.wire.sse
from rtkit.sse import Event, SSEDecoder, encode, encode_comment

BOM = b"\xef\xbb\xbf"
EURO = "\u20ac".encode()  # 3 bytes: e2 82 ac

# ----------------------------------------------------------------------------- helpers

Expected = tuple[str, str, str]  # (type, data, last_event_id)


def as_tuples(events: list[Event]) -> list[Expected]:
    return [(e.type, e.data, e.last_event_id) for e in events]


def decode_chunks(chunks: list[bytes]) -> tuple[list[Expected], int | None, str]:
    """Feed ``chunks`` to a new decoder; return events, retry and last_event_id."""
    decoder = SSEDecoder()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    assert decoder.close() == []
    return as_tuples(events), decoder.retry, decoder.last_event_id


def byte_by_byte(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def draw_chunks(data: st.DataObject, stream: bytes) -> list[bytes]:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    return split_at(stream, cuts)


def reference_decode(stream: bytes) -> tuple[list[Expected], int | None, str]:
    """The spec transcribed as directly as possible, for a whole stream at once."""
    text = stream.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece never ended: discarded
    data_buf, type_buf, id_buf, last_id, retry = "", "", "", "", None
    events: list[Expected] = []
    for line in lines:
        if line == "":
            last_id = id_buf
            if data_buf == "":
                type_buf = ""
                continue
            data_buf = data_buf.removesuffix("\n")
            events.append((type_buf or "message", data_buf, last_id))
            data_buf, type_buf = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            value = value.removeprefix(" ")
        else:
            field, value = line, ""
        if field == "event":
            type_buf = value
        elif field == "data":
            data_buf += value + "\n"
        elif field == "id":
            if "\x00" not in value:
                id_buf = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, retry, last_id


# ------------------------------------------------------------------------ decode table

M = "message"

# (name, stream, expected events, expected final retry, expected final last_event_id)
CASES: list[tuple[str, bytes, list[Expected], int | None, str]] = [
    # dispatch and basic fields
    ("empty stream", b"", [], None, ""),
    ("one event", b"data: hello\n\n", [(M, "hello", "")], None, ""),
    ("event type", b"event: tick\ndata: 1\n\n", [("tick", "1", "")], None, ""),
    ("empty event type is message", b"event:\ndata: x\n\n", [(M, "x", "")], None, ""),
    (
        "event type reset after dispatch",
        b"event: a\ndata: 1\n\ndata: 2\n\n",
        [("a", "1", ""), (M, "2", "")],
        None,
        "",
    ),
    (
        "event type reset even when nothing dispatched",
        b"event: a\n\ndata: 2\n\n",
        [(M, "2", "")],
        None,
        "",
    ),
    (
        "last event type field wins",
        b"event: a\nevent: b\ndata: x\n\n",
        [("b", "x", "")],
        None,
        "",
    ),
    (
        "field names are case sensitive",
        b"Data: x\nEVENT: y\ndata: z\n\n",
        [(M, "z", "")],
        None,
        "",
    ),
    (
        "multiple data lines joined by LF",
        b"data: a\ndata: b\ndata: c\n\n",
        [(M, "a\nb\nc", "")],
        None,
        "",
    ),
    (
        "data with an empty line kept",
        b"data: a\ndata:\ndata: b\n\n",
        [(M, "a\n\nb", "")],
        None,
        "",
    ),
    ("data colon inside value", b"data: a:b: c\n\n", [(M, "a:b: c", "")], None, ""),
    ("several blank lines dispatch once", b"data: x\n\n\n\n", [(M, "x", "")], None, ""),
    # leading space
    ("data without colon", b"data\n\n", [(M, "", "")], None, ""),
    ("data colon no space", b"data:\n\n", [(M, "", "")], None, ""),
    ("data colon one space", b"data: \n\n", [(M, "", "")], None, ""),
    (
        "only one space removed",
        b"data:  two spaces\n\n",
        [(M, " two spaces", "")],
        None,
        "",
    ),
    ("no space is fine", b"data:x\n\n", [(M, "x", "")], None, ""),
    ("tab is not removed", b"data:\tx\n\n", [(M, "\tx", "")], None, ""),
    ("trailing space kept", b"data: x \n\n", [(M, "x ", "")], None, ""),
    ("two data lines without value", b"data\ndata\n\n", [(M, "\n", "")], None, ""),
    # line ends
    ("CRLF line ends", b"data: a\r\ndata: b\r\n\r\n", [(M, "a\nb", "")], None, ""),
    ("CR line ends", b"data: a\rdata: b\r\r", [(M, "a\nb", "")], None, ""),
    (
        "mixed line ends",
        b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\n",
        [(M, "a\nb\nc", ""), (M, "d", "")],
        None,
        "",
    ),
    ("LF CR is two line ends", b"data: a\n\r", [(M, "a", "")], None, ""),
    ("CR CR LF is a CR then a CRLF", b"data: a\r\r\n", [(M, "a", "")], None, ""),
    (
        "CRLF CRLF dispatches once",
        b"data: a\r\n\r\ndata: b\r\n\r\n",
        [(M, "a", ""), (M, "b", "")],
        None,
        "",
    ),
    ("trailing CR ends the blank line", b"data: a\n\r", [(M, "a", "")], None, ""),
    # comments and unknown fields
    ("comment ignored", b": hello\ndata: x\n\n", [(M, "x", "")], None, ""),
    ("bare colon comment", b":\ndata: x\n:\n\n", [(M, "x", "")], None, ""),
    ("comment only stream", b": ping\n\n: ping\n\n", [], None, ""),
    (
        "comment does not end an event",
        b"data: a\n: c\ndata: b\n\n",
        [(M, "a\nb", "")],
        None,
        "",
    ),
    ("unknown field ignored", b"foo: bar\ndata: x\nbaz\n\n", [(M, "x", "")], None, ""),
    (
        "field name with space is unknown",
        b"data : x\ndata: y\n\n",
        [(M, "y", "")],
        None,
        "",
    ),
    ("leading space field is unknown", b" data: x\n\n", [], None, ""),
    # id
    ("id set", b"id: 1\ndata: x\n\n", [(M, "x", "1")], None, "1"),
    (
        "id persists across events",
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
        [(M, "a", "1"), (M, "b", "1"), (M, "c", "2")],
        None,
        "2",
    ),
    ("id without data still updates last_event_id", b"id: 5\n\n", [], None, "5"),
    ("id then later event", b"id: 5\n\ndata: x\n\n", [(M, "x", "5")], None, "5"),
    ("id after data in same event", b"data: x\nid: 9\n\n", [(M, "x", "9")], None, "9"),
    (
        "id with NULL ignored",
        b"id: 1\n\nid: a\x00b\ndata: x\n\n",
        [(M, "x", "1")],
        None,
        "1",
    ),
    (
        "empty id resets",
        b"id: 1\ndata: a\n\nid:\ndata: b\n\n",
        [(M, "a", "1"), (M, "b", "")],
        None,
        "",
    ),
    (
        "id without colon resets",
        b"id: 1\ndata: a\n\nid\ndata: b\n\n",
        [(M, "a", "1"), (M, "b", "")],
        None,
        "",
    ),
    (
        "id keeps spaces after the first",
        b"id:  7 \ndata: x\n\n",
        [(M, "x", " 7 ")],
        None,
        " 7 ",
    ),
    (
        "id in unfinished event not applied",
        b"id: 1\ndata: a\n\nid: 2\ndata: b\n",
        [(M, "a", "1")],
        None,
        "1",
    ),
    # retry
    ("retry valid", b"retry: 1000\n", [], 1000, ""),
    ("retry no space", b"retry:1000\n", [], 1000, ""),
    ("retry zero", b"retry: 0\n", [], 0, ""),
    ("retry leading zeros", b"retry: 007\n", [], 7, ""),
    (
        "retry huge",
        b"retry: 123456789012345678901234567890\n",
        [],
        123456789012345678901234567890,
        "",
    ),
    ("retry letters ignored", b"retry: 1000\nretry: 10a0\n", [], 1000, ""),
    ("retry negative ignored", b"retry: -1\n", [], None, ""),
    ("retry empty ignored", b"retry: 5\nretry:\n", [], 5, ""),
    ("retry no colon ignored", b"retry\n", [], None, ""),
    ("retry leading space removed", b"retry:  100\n", [], None, ""),
    ("retry one space then digits valid", b"retry: 100\n", [], 100, ""),
    ("retry decimal ignored", b"retry: 1.5\n", [], None, ""),
    ("retry underscore ignored", b"retry: 1_000\n", [], None, ""),
    ("retry trailing space ignored", b"retry: 100 \n", [], None, ""),
    ("retry non-ASCII digits ignored", "retry: \u0661\u0662\n".encode(), [], None, ""),
    ("retry last valid wins", b"retry: 1\nretry: 2\nretry: x\n", [], 2, ""),
    ("retry alongside an event", b"retry: 3000\ndata: x\n\n", [(M, "x", "")], 3000, ""),
    ("retry applies without dispatch", b"data: x\nretry: 10\n", [], 10, ""),
    # end of stream
    ("unfinished event not dispatched", b"data: a\n", [], None, ""),
    ("unfinished line not dispatched", b"data: a\n\ndata: b", [(M, "a", "")], None, ""),
    ("unfinished retry line ignored", b"retry: 10", [], None, ""),
    # BOM and UTF-8
    ("BOM stripped", BOM + b"data: x\n\n", [(M, "x", "")], None, ""),
    ("BOM only once", BOM + BOM + b"data: x\n\n", [], None, ""),
    (
        "second BOM is a data char",
        BOM + b"data: " + BOM + b"x\n\n",
        [(M, "\ufeffx", "")],
        None,
        "",
    ),
    (
        "BOM later in stream kept",
        b"data: a\n\n" + BOM + b"data: b\n\n",
        [(M, "a", "")],
        None,
        "",
    ),
    ("BOM-prefixed field name later", b"\n" + BOM + b"data: b\n\n", [], None, ""),
    ("BOM only", BOM, [], None, ""),
    (
        "UTF-8 text",
        "data: h\u00e9 \u20ac \U0001f600\n\n".encode(),
        [(M, "h\u00e9 \u20ac \U0001f600", "")],
        None,
        "",
    ),
    (
        "UTF-8 event type and id",
        "event: \u00e9\nid: \u20ac\ndata: x\n\n".encode(),
        [("\u00e9", "x", "\u20ac")],
        None,
        "\u20ac",
    ),
    ("invalid UTF-8 replaced", b"data: a\xffb\n\n", [(M, "a\ufffdb", "")], None, ""),
    (
        "truncated sequence replaced once",
        b"data: \xe2\x82x\n\n",
        [(M, "\ufffdx", "")],
        None,
        "",
    ),
    (
        "surrogate bytes replaced",
        b"data: \xed\xa0\x80\n\n",
        [(M, "\ufffd" * 3, "")],
        None,
        "",
    ),
    (
        "multi-byte chars",
        b"data: " + EURO * 3 + b"\n\n",
        [(M, "\u20ac" * 3, "")],
        None,
        "",
    ),
    ("invalid byte before line end", b"data: \xe2\n\n", [(M, "\ufffd", "")], None, ""),
    ("NULL in data kept", b"data: a\x00b\n\n", [(M, "a\x00b", "")], None, ""),
    (
        "NULL in event type kept",
        b"event: a\x00\ndata: x\n\n",
        [("a\x00", "x", "")],
        None,
        "",
    ),
    (
        "other unicode line breaks are not line ends",
        "data: a\u2028b\x85c\x0bd\x0ce\n\n".encode(),
        [(M, "a\u2028b\x85c\x0bd\x0ce", "")],
        None,
        "",
    ),
]


@pytest.mark.parametrize(
    ("stream", "events", "retry", "last_id"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
class TestDecodeTable:
    def test_whole(
        self, stream: bytes, events: list[Expected], retry: int | None, last_id: str
    ) -> None:
        assert decode_chunks([stream]) == (events, retry, last_id)

    def test_byte_by_byte(
        self, stream: bytes, events: list[Expected], retry: int | None, last_id: str
    ) -> None:
        assert decode_chunks(byte_by_byte(stream)) == (events, retry, last_id)

    def test_reference_agrees(
        self, stream: bytes, events: list[Expected], retry: int | None, last_id: str
    ) -> None:
        assert reference_decode(stream) == (events, retry, last_id)

    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def test_random_chunks(
        self,
        stream: bytes,
        events: list[Expected],
        retry: int | None,
        last_id: str,
        data: st.DataObject,
    ) -> None:
        assert decode_chunks(draw_chunks(data, stream)) == (events, retry, last_id)


# -------------------------------------------------------------------- chunk boundaries


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF: not a blank line
    assert as_tuples(decoder.feed(b"\r\n")) == [(M, "a", "")]


def test_cr_at_end_of_feed_ends_the_line_at_once() -> None:
    decoder = SSEDecoder()
    assert as_tuples(decoder.feed(b"data: a\r\r")) == [(M, "a", "")]
    assert decoder.feed(b"\n") == []  # the second CR's LF: still one line end


def test_pending_cr_survives_empty_feeds() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert (
        decoder.feed(EURO[:1]) == []
    )  # decodes to nothing yet: still right after the CR
    assert decoder.feed(b"\n") == []  # the CR's own LF, even after empty decodes
    assert as_tuples(decoder.feed(b"\n")) == [(M, "a", "")]


def test_lf_after_a_character_following_cr_is_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # "\u20ac" is an (ignored) field line of its own; then the blank line dispatches.
    assert as_tuples(decoder.feed(EURO + b"\n\n")) == [(M, "a", "")]


def test_pending_cr_then_character_then_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"data: b\n") == []
    assert as_tuples(decoder.feed(b"\n")) == [(M, "a\nb", "")]


def test_bom_split_across_feeds_is_stripped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(BOM[:1]) == []
    assert decoder.feed(BOM[1:2]) == []
    assert as_tuples(decoder.feed(BOM[2:] + b"data: x\n\n")) == [(M, "x", "")]


def test_multibyte_char_split_across_feeds() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: " + EURO[:2]) == []
    assert as_tuples(decoder.feed(EURO[2:] + b"\n\n")) == [(M, "\u20ac", "")]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []
    assert as_tuples(decoder.feed(memoryview(b"\n"))) == [(M, "a", "")]


def test_feed_rejects_str() -> None:
    with pytest.raises(TypeError, match="bytes"):
        SSEDecoder().feed("data: x\n\n")  # type: ignore[arg-type]


def test_events_are_frozen_dataclasses() -> None:
    event = Event("message", "x", "1")
    assert event == Event(type="message", data="x", last_event_id="1")
    assert Event() == Event("message", "", "")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]


# ------------------------------------------------------------------- close / reconnect


def test_close_discards_pending_event_and_returns_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: a\ndata: x\n")
    assert decoder.close() == []
    assert as_tuples(decoder.feed(b"data: y\n\n")) == [(M, "y", "")]


def test_close_discards_pending_id() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")  # event 2 never finished
    decoder.close()
    assert decoder.last_event_id == "1"  # a reconnect asks again for event 2
    assert as_tuples(decoder.feed(b"data: c\n\n")) == [(M, "c", "1")]


def test_close_keeps_retry_and_last_event_id() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 500\nid: 7\ndata: a\n\n")
    decoder.close()
    assert (decoder.retry, decoder.last_event_id) == (500, "7")
    decoder.feed(b"retry: x\n")
    assert decoder.retry == 500


def test_close_drops_partial_line_pending_cr_and_partial_char() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\rdat")
    decoder.close()
    assert decoder.feed(b"\ndata: b\n\n") == [
        Event(M, "b", "")
    ]  # "\n" is a new blank line
    decoder.feed(b"data: " + EURO[:2])
    decoder.close()
    # The two bytes of the unfinished character are gone: the third is invalid alone.
    assert decoder.feed(b"data: " + EURO[2:] + b"\n\n") == [Event(M, "\ufffd", "")]


def test_close_reenables_bom_stripping() -> None:
    decoder = SSEDecoder()
    decoder.feed(BOM + b"data: a\n\n")
    decoder.close()
    assert as_tuples(decoder.feed(BOM + b"data: b\n\n")) == [(M, "b", "")]


def test_resume_with_last_event_id() -> None:
    decoder = SSEDecoder(last_event_id="41")
    assert decoder.last_event_id == "41"
    assert as_tuples(decoder.feed(b"data: x\n\nid: 42\ndata: y\n\n")) == [
        (M, "x", "41"),
        (M, "y", "42"),
    ]


def test_fresh_decoder_state() -> None:
    decoder = SSEDecoder()
    assert (decoder.retry, decoder.last_event_id) == (None, "")


# ---------------------------------------------------------------------- random streams

# Fragments that make streams hit every rule often, including split CRLFs,
# split BOMs and split multi-byte characters once chunked.
FRAGMENTS = [
    b"\r",
    b"\n",
    b"\r\n",
    b":",
    b" ",
    b"data",
    b"event",
    b"id",
    b"retry",
    b"x",
    b"7",
    b"-",
    b"\x00",
    BOM,
    BOM[:2],
    EURO,
    EURO[:2],
    b"\xff",
]
streams = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(stream=streams, data=st.data())
def test_random_streams_match_reference_in_any_chunking(
    stream: bytes, data: st.DataObject
) -> None:
    expected = reference_decode(stream)
    assert decode_chunks([stream]) == expected
    assert decode_chunks(draw_chunks(data, stream)) == expected


@settings(max_examples=30, deadline=None)
@given(stream=streams)
def test_random_streams_byte_by_byte(stream: bytes) -> None:
    assert decode_chunks(byte_by_byte(stream)) == reference_decode(stream)


# ------------------------------------------------------------------------------ encode


def normalise(text: str) -> str:
    return re.sub(r"\r\n?", "\n", text)


no_breaks = st.text().filter(lambda s: "\r" not in s and "\n" not in s)
ids = st.one_of(no_breaks.filter(lambda s: "\x00" not in s), st.integers())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hi"}, b"data: hi\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb\rc\n"}, b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        ({"data": " x"}, b"data:  x\n\n"),
        (
            {"data": "x", "event": "e", "id": 3, "retry": 10},
            b"event: e\nid: 3\nretry: 10\ndata: x\n\n",
        ),
        ({"data": "x", "id": ""}, b"id: \ndata: x\n\n"),
        ({"data": "x", "retry": 0}, b"retry: 0\ndata: x\n\n"),
        ({"data": "\u20ac"}, b"data: \xe2\x82\xac\n\n"),
    ],
)
def test_encode_exact_bytes(kwargs: dict[str, object], expected: bytes) -> None:
    assert encode(**kwargs) == expected  # type: ignore[arg-type]


def test_encode_empty_data_dispatches_an_event() -> None:
    assert as_tuples(SSEDecoder().feed(encode(""))) == [(M, "", "")]


def test_encode_id_only_with_empty_string_resets_id() -> None:
    decoder = SSEDecoder(last_event_id="5")
    assert as_tuples(decoder.feed(encode("x", id=""))) == [(M, "x", "")]


@settings(max_examples=100, deadline=None)
@given(
    data=st.text(),
    event=st.none() | no_breaks,
    id_=st.none() | ids,
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_encode_decode_round_trip(
    data: str, event: str | None, id_: str | int | None, retry: int | None
) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(encode(data, event=event, id=id_, retry=retry))
    assert events == [
        Event(event or "message", normalise(data), "" if id_ is None else str(id_))
    ]
    assert decoder.retry == retry


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.text(), st.none() | no_breaks, st.none() | ids), max_size=8
    ),
    data=st.data(),
)
def test_encoded_sequence_round_trips_in_any_chunking(
    items: list[tuple[str, str | None, str | int | None]], data: st.DataObject
) -> None:
    stream = b"".join(encode(d, event=e, id=i) for d, e, i in items)
    expected: list[Expected] = []
    last_id = ""
    for d, e, i in items:
        if i is not None:
            last_id = str(i)
        expected.append((e or "message", normalise(d), last_id))
    assert decode_chunks(draw_chunks(data, stream))[0] == expected


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"event": "a\nb"}, ["event", "'\\n'", "index 1", "accepted"]),
        ({"event": "ab\r"}, ["event", "'\\r'", "index 2", "accepted"]),
        ({"id": "1\r\n"}, ["id", "'\\r'", "index 1", "accepted"]),
        ({"id": "1\n"}, ["id", "'\\n'", "accepted"]),
        ({"id": "a\x00"}, ["id", "'\\x00'", "NULL", "accepted"]),
        ({"retry": -1}, ["retry", "-1", "int >= 0", "accepted"]),
        ({"retry": 1.5}, ["retry", "1.5", "int >= 0"]),
        ({"retry": "100"}, ["retry", "'100'", "int >= 0"]),
        ({"retry": True}, ["retry", "True", "int >= 0"]),
    ],
)
def test_encode_rejects_bad_fields(kwargs: dict[str, object], names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        encode("x", **kwargs)  # type: ignore[arg-type]
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode(b"x"),  # type: ignore[arg-type]
        lambda: encode("x", event=1),  # type: ignore[arg-type]
        lambda: encode("x", id=1.0),  # type: ignore[arg-type]
        lambda: encode("x", id=True),
        lambda: encode_comment(None),  # type: ignore[arg-type]
    ],
)
def test_encode_rejects_wrong_types(call: object) -> None:
    with pytest.raises(TypeError):
        call()  # type: ignore[operator]


def test_encode_event_may_contain_null_and_spaces() -> None:
    events = SSEDecoder().feed(encode("x", event=" a\x00 "))
    assert as_tuples(events) == [(" a\x00 ", "x", "")]


# ---------------------------------------------------------------------- encode_comment


def test_encode_comment() -> None:
    assert encode_comment("keep-alive") == b": keep-alive\n"
    assert encode_comment() == b":\n"
    assert encode_comment("\u20ac") == b": \xe2\x82\xac\n"


def test_comment_is_ignored_mid_event() -> None:
    stream = b"data: a\n" + encode_comment("ping") + b"data: b\n\n" + encode_comment()
    assert decode_chunks([stream]) == ([(M, "a\nb", "")], None, "")


@pytest.mark.parametrize("text", ["a\nb", "a\r", "\r\n"])
def test_encode_comment_rejects_line_breaks(text: str) -> None:
    with pytest.raises(ValueError, match="comment text contains .*accepted"):
        encode_comment(text)


# ------------------------------------------------------------------ volume and exports


def test_ten_thousand_events_in_one_chunk() -> None:
    stream = b"".join(encode(f"payload {n}", id=n) for n in range(1, 10_001))
    decoder = SSEDecoder()
    events = decoder.feed(stream)
    assert len(events) == 10_000
    assert events[-1] == Event("message", "payload 10000", "10000")
    assert decoder.last_event_id == "10000"


def test_long_line_fed_in_small_pieces() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: ")
    for _ in range(20_000):
        assert decoder.feed(b"ab") == []
    (event,) = decoder.feed(b"\n\n")
    assert event.data == "ab" * 20_000


def test_many_data_lines_in_one_event() -> None:
    (event,) = SSEDecoder().feed(b"data: x\n" * 20_000 + b"\n")
    assert event.data == "\n".join(["x"] * 20_000)


def test_public_exports() -> None:
    expected = ["Event", "SSEDecoder", "encode", "encode_comment"]
    assert rtkit.wire.sse.__all__ == expected
    assert rtkit.sse.__all__ == expected
    for name in expected:
        assert getattr(rtkit.sse, name) is getattr(rtkit.wire.sse, name)
