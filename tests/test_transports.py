"""The one table of transports (rtkit.core.transports): names, order, colours, labels."""

from __future__ import annotations

import pytest

from rtkit.core.transports import (
    STREAMING,
    TRANSPORT_TABLE,
    TRANSPORTS,
    base_transport,
    check_transports,
    transport,
    transport_color,
    transport_label,
    transport_order,
)


def test_the_table_in_teaching_order() -> None:
    assert TRANSPORTS == ("poll", "longpoll", "sse", "ws")
    assert STREAMING == ("sse", "ws")
    assert [TRANSPORT_TABLE[t].path for t in TRANSPORTS] == ["/poll", "/longpoll", "/sse", "/ws"]


def test_every_transport_has_its_own_colour() -> None:
    colours = [transport_color(t) for t in TRANSPORTS]
    assert len(set(colours)) == 4
    assert colours == [TRANSPORT_TABLE[t].color for t in TRANSPORTS]
    assert transport_color("browser-sse") not in colours  # a lighter shade of SSE's blue
    assert transport_color("browser-sse") == transport_color("browser-sse")
    assert transport_color("browser-carrier-pigeon") != transport_color("mqtt")
    assert transport_color("mqtt") == transport_color("mqtt")  # stable for unknown names


def test_labels_and_browser_variants() -> None:
    assert [transport_label(t) for t in TRANSPORTS] == ["short poll", "long poll", "SSE", "WebSocket"]
    assert transport_label("browser-ws") == "WebSocket (browser)"
    assert base_transport("browser-longpoll") == "longpoll"
    assert transport("browser-sse") is TRANSPORT_TABLE["sse"]


def test_order_puts_the_transports_first() -> None:
    assert transport_order(["zzz", "ws", "browser-poll", "poll", "ws"]) == ["poll", "ws", "browser-poll", "zzz"]


@pytest.mark.parametrize("bad", [[], ["carrier-pigeon"], ["sse", "mqtt"]])
def test_an_unknown_transport_is_refused_naming_the_accepted(bad: list[str]) -> None:
    with pytest.raises(ValueError, match="poll, longpoll, sse, ws"):
        check_transports(bad)
    with pytest.raises(ValueError, match="unknown transport"):
        transport("mqtt")


def test_repeats_are_dropped_and_browser_names_accepted_when_asked() -> None:
    assert check_transports(["ws", "sse", "ws"]) == ("ws", "sse")
    assert check_transports(["browser-sse", "sse"], browser=True) == ("sse",)
    with pytest.raises(ValueError):
        check_transports(["browser-sse"])
