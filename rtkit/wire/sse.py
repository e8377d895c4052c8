"""Server-Sent Events: encode events, and decode an event stream incrementally.

An event stream (``Content-Type: text/event-stream``) is UTF-8 text made of
lines. A line is ``field: value``; a blank line ends ("dispatches") an event; a
line starting with ``:`` is a comment, which servers send as a heartbeat::

    : keep-alive
    event: price
    id: 42
    retry: 3000
    data: {"ticker": "ABC",
    data:  "price": 10.5}

That block is one ``price`` event whose data is the two ``data:`` lines joined
by ``"\\n"``; the client remembers ``42`` and sends it back as the
``Last-Event-ID`` header when it reconnects, ``3000`` ms after losing the stream.

:class:`SSEDecoder` implements the WHATWG HTML Living Standard, section 9.2.6
"Interpreting an event stream", and gives the same events however the bytes are
cut into chunks:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
The spec's sentences are quoted beside the lines that implement them.

:func:`encode` writes one event, :func:`encode_comment` one comment line.

Nothing here does I/O: feed the bytes you received to :meth:`SSEDecoder.feed`
and send the bytes :func:`encode` returns.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass

__all__ = ["Event", "SSEDecoder", "encode", "encode_comment"]


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event, as a browser's ``MessageEvent`` would see it.

    ``type`` is the ``event:`` field, ``"message"`` when the server sent none.
    ``data`` is the ``data:`` lines joined by ``"\\n"``.
    ``last_event_id`` is the last ``id:`` the stream had set when this event
    was dispatched; it may come from an earlier event (ids persist).
    """

    type: str = "message"
    data: str = ""
    last_event_id: str = ""


class _LineSplitter:
    """Cut decoded text into lines ending in CRLF, LF or CR, across chunks.

    ``feed(text)`` returns the lines completed by ``text``, without their line
    ends; the unfinished tail waits for the next call. A CR at the end of a
    chunk already ends a line, but an LF at the start of the next chunk then
    belongs to that same line end (a CRLF split in two), so it is skipped.
    """

    __slots__ = ("_after_cr", "_partial")

    def __init__(self) -> None:
        # Pieces of the unfinished line (no CR or LF in them), joined once it ends.
        self._partial: list[str] = []
        # The last character seen was a CR, which ended a line.
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        # "a single U+000A LINE FEED (LF) character not preceded by a U+000D
        # CARRIAGE RETURN (CR) character [...] being the ways in which a line can end":
        # an LF right after a CR is the second half of one CRLF, not another line end.
        if self._after_cr and text:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if "\n" not in text and "\r" not in text:
            if text:
                self._partial.append(text)
            return []
        self._after_cr = text[-1] == "\r"
        if self._partial:
            self._partial.append(text)
            text = "".join(self._partial)
            self._partial.clear()
        # "The stream must then be parsed by reading everything line by line, with a
        # U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single
        # U+000A LINE FEED (LF) character not preceded by a U+000D CARRIAGE RETURN (CR)
        # character, and a single U+000D CARRIAGE RETURN (CR) character not followed
        # by a U+000A LINE FEED (LF) character being the ways in which a line can end."
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        tail = lines.pop()  # text after the last line end: not a line yet
        if tail:
            self._partial.append(tail)
        return lines

    def reset(self) -> None:
        """Forget the unfinished line and any pending CR (a new stream begins)."""
        self._partial.clear()
        self._after_cr = False


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: bytes in, :class:`Event` out.

    Call :meth:`feed` with each chunk of the response body as it arrives, in
    order; it returns the events those bytes completed. When the connection
    ends, call :meth:`close`; the same decoder may then be fed the body of the
    next connection (a reconnect), keeping :attr:`last_event_id` and
    :attr:`retry`.

    Attributes a client reads:

    ``last_event_id``
        The last event ID string (``str``): set from the ``id:`` field when an
        event is dispatched (at a blank line, even when no event results
        because there was no data) and kept until the server sends another.
        It is what a reconnecting client sends as ``Last-Event-ID``. An ``id:``
        line whose event has not yet ended is not reflected here until the
        blank line arrives, so a client that reconnects mid-event asks again
        for the event it did not get.
    ``retry``
        The reconnection time in milliseconds from the last valid ``retry:``
        field, or ``None`` if the server never sent one.

    A decoder belongs to one connection at a time and is not thread-safe: call
    it from one thread (the client's loop). It never raises on bad input:
    invalid UTF-8 becomes U+FFFD and lines the spec ignores are ignored.
    """

    def __init__(self, *, last_event_id: str = "") -> None:
        """Start a decoder; ``last_event_id`` resumes where another one stopped."""
        self.last_event_id: str = last_event_id
        self.retry: int | None = None
        # "Streams must be decoded using the UTF-8 decode algorithm." An incremental
        # decoder keeps a multi-byte character split across chunks until it is whole.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # No character of this stream decoded yet, so a BOM may still come.
        self._at_start = True
        self._lines = _LineSplitter()
        # "When a stream is parsed, a data buffer, an event type buffer, and a last
        # event ID buffer must be associated with it."
        self._data: list[str] = []  # data buffer, kept as the list of its data lines
        self._event_type = ""  # event type buffer
        self._id_buffer = last_event_id  # last event ID buffer (see close())

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        """Decode the next chunk of the stream; return the events it dispatched.

        ``chunk`` is any bytes-like object, possibly empty, cut anywhere (even
        inside a UTF-8 character or between the CR and LF of a line end).
        Raises ``TypeError`` if given ``str``: feed the raw bytes.
        """
        if isinstance(chunk, str):
            raise TypeError("SSEDecoder.feed() takes bytes as received, not str")
        text = self._utf8.decode(chunk)
        if self._at_start and text:
            self._at_start = False
            # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark
            # (BOM), if any." Only the stream's very first character can be one.
            if text[0] == "\ufeff":
                text = text[1:]
        events: list[Event] = []
        for line in self._lines.feed(text):
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Event]:
        """End the stream (the connection closed); always return ``[]``.

        "Once the end of the file is reached, any pending data must be
        discarded. (If the file ends in the middle of an event, before the final
        empty line, the incomplete event is not dispatched.)" So the unfinished
        line and event are dropped, including an ``id:`` the event carried.

        The decoder is then ready for the next connection's stream (a leading
        BOM is stripped again). :attr:`last_event_id` and :attr:`retry` are kept,
        and the new stream's last event ID buffer starts from
        :attr:`last_event_id` (as Chromium's parser does; the spec's text starts
        every stream's buffer empty), so an event without ``id:`` on the new
        connection does not blank it.
        """
        self._utf8.reset()
        self._at_start = True
        self._lines.reset()
        self._data.clear()
        self._event_type = ""
        self._id_buffer = self.last_event_id
        return []

    def _process_line(self, line: str) -> Event | None:
        """Interpret one complete line; return the event it dispatched, if any."""
        # "If the line is empty (a blank line) -> Dispatch the event"
        if not line:
            return self._dispatch()
        # "If the line starts with a U+003A COLON character (:) -> Ignore the line."
        if line[0] == ":":
            return None
        # "If the line contains a U+003A COLON character (:) -> Collect the characters
        # on the line before the first U+003A COLON character (:), and let field be
        # that string. Collect the characters on the line after the first U+003A COLON
        # character (:), and let value be that string."
        # "Otherwise, the string is not empty but does not contain a U+003A COLON
        # character (:) -> [...] using the whole line as the field name, and the empty
        # string as the field value." (partition gives exactly that: (line, "", "").)
        field, colon, value = line.partition(":")
        # "If value starts with a U+0020 SPACE character, remove it from value."
        if colon and value[:1] == " ":
            value = value[1:]
        self._process_field(field, value)
        return None

    def _process_field(self, field: str, value: str) -> None:
        # "Field names must be compared literally, with no case folding performed."
        if field == "event":
            # "Set the event type buffer to field value."
            self._event_type = value
        elif field == "data":
            # "Append the field value to the data buffer, then append a single
            # U+000A LINE FEED (LF) character to the data buffer." (Kept as a list of
            # values; _dispatch joins them, which is the same string.)
            self._data.append(value)
        elif field == "id":
            # "If the field value does not contain U+0000 NULL, then set the last event
            # ID buffer to the field value. Otherwise, ignore the field."
            if "\x00" not in value:
                self._id_buffer = value
        # "If the field value consists of only ASCII digits, then interpret the field
        # value as an integer in base ten, and set the event stream's reconnection
        # time to that integer. Otherwise, ignore the field."
        # (An empty value has no digits to interpret: ignored.)
        elif field == "retry" and value.isascii() and value.isdigit():
            # More digits than Python converts (sys.get_int_max_str_digits()) cannot
            # be a real delay: ignored, as browsers ignore values that overflow.
            with contextlib.suppress(ValueError):
                self.retry = int(value)
        # "Otherwise -> The field is ignored."

    def _dispatch(self) -> Event | None:
        # "1. Set the last event ID string of the event source to the value of the
        # last event ID buffer. The buffer does not get reset, so the last event ID
        # string of the event source remains set to this value until the next time
        # it is set by the server."
        self.last_event_id = self._id_buffer
        # "2. If the data buffer is an empty string, set the data buffer and the event
        # type buffer to the empty string and return."
        if not self._data:
            self._event_type = ""
            return None
        # "3. If the data buffer's last character is a U+000A LINE FEED (LF) character,
        # then remove the last character from the data buffer." Every data line added
        # one LF, so the buffer is the values joined by LF.
        data = "\n".join(self._data)
        # "5. Initialize event's type attribute to "message", [...] and its lastEventId
        # attribute to the last event ID string of the event source.
        # 6. If the event type buffer has a value other than the empty string,
        # change the type of the newly created event to equal the value of the event
        # type buffer."
        event = Event(self._event_type or "message", data, self.last_event_id)
        # "7. Set the data buffer and the event type buffer to the empty string."
        self._data.clear()
        self._event_type = ""
        return event


_LINE_END = re.compile(r"\r\n|\r|\n")


def _check_one_line(name: str, value: str, *, forbid_null: bool = False) -> None:
    """Raise ValueError if ``value`` holds a CR or LF (or NULL, when forbidden)."""
    forbidden = "\r\n\x00" if forbid_null else "\r\n"
    for index, char in enumerate(value):
        if char in forbidden:
            accepted = "CR (U+000D), LF (U+000A)"
            if forbid_null:
                accepted += " or NULL (U+0000)"
            raise ValueError(
                f"{name} contains {char!r} at index {index}; "
                f"accepted: any text without {accepted}"
            )


def encode(
    data: str,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as UTF-8: its fields, then the blank line that dispatches it.

    Fields come in the order ``event:``, ``id:``, ``retry:``, then one ``data:``
    line per line of ``data``. ``data`` may hold line breaks of any kind (CRLF,
    LF or CR); a decoder gives it back with every line break as ``"\\n"``,
    because that is how the stream format splits lines. ``encode("")`` still
    makes an event, with empty data. A ``None`` argument leaves its field out.

    Raises ``ValueError`` if ``event`` or ``id`` contains CR or LF, if ``id``
    contains NULL (a decoder would ignore it), or if ``retry`` is not an int
    >= 0 (milliseconds). Raises ``TypeError`` if ``data``/``event`` is not a
    ``str`` or ``id`` neither ``str`` nor ``int``.
    """
    if not isinstance(data, str):
        raise TypeError(f"data must be str, not {type(data).__name__}")
    lines: list[str] = []
    if event is not None:
        if not isinstance(event, str):
            raise TypeError(f"event must be str or None, not {type(event).__name__}")
        _check_one_line("event", event)
        lines.append(f"event: {event}")
    if id is not None:
        if isinstance(id, bool) or not isinstance(id, (str, int)):
            raise TypeError(f"id must be str, int or None, not {type(id).__name__}")
        id_text = str(id)
        _check_one_line("id", id_text, forbid_null=True)
        lines.append(f"id: {id_text}")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(
                f"retry is {retry!r}; "
                "accepted: an int >= 0 (reconnection delay in milliseconds)"
            )
        lines.append(f"retry: {retry}")
    lines.extend(f"data: {line}" for line in _LINE_END.split(data))
    lines.append("\n")  # the last field's line end, then the blank line
    return "\n".join(lines).encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """Encode one comment line, ``: text``; e.g. a heartbeat that keeps proxies open.

    Decoders ignore it; it dispatches nothing and does not end an event.
    Raises ``ValueError`` if ``text`` contains CR or LF.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    _check_one_line("comment text", text)
    return f": {text}\n".encode() if text else b":\n"
