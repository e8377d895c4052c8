"""``POST /browser/receipts`` against a real server: every field checked, bad
batches refused with a 400 naming the field, what is kept bounded (issue 10, item 6).

Before: ``arrived_ms: 1e300`` was accepted and broke every later DataFrame with
``OverflowError``; ids no server issued, negative arrivals and absurd byte counts
were kept; and every batch was kept for ever (+2 MiB per 10,000 receipts).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from browser_support import batch, http, post_batch

import rtkit
from rtkit import browser as rb
from rtkit.browser.clock import ClockEstimate
from rtkit.browser.receipts import (
    CLOCK_SLACK_MS,
    MAX_BYTES,
    ReceiptBatch,
    TopicView,
    parse_receipt_batch,
)
from rtkit.browser.state import MAX_KEPT_RECEIPTS, BrowserState, state_for
from rtkit.core.records import GapNotice, ResetNotice
from rtkit.measure import Recorder

OFFSET_MS = 1000.0  # batch(): the page's clock runs 1 s behind the server's


def published(server: rtkit.Server, n: int = 1) -> list[tuple[int, int]]:
    """Publish ``n`` events; their (id, published_ns)."""
    ids = [server.publish({"n": i}) for i in range(n)]
    events = server.log.after(ids[0] - 1).events
    return [(e.id, e.published_ns) for e in events]


def receipt(event: tuple[int, int], latency_ms: float = 2.0, transport: str = "sse", **extra: Any) -> dict[str, Any]:
    """What the page reports for ``event`` arriving ``latency_ms`` after its publish."""
    event_id, published_ns = event
    return {"transport": transport, "id": event_id, "published_ns": published_ns,
            "arrived_ms": published_ns / 1e6 + latency_ms - OFFSET_MS, **extra}


def refused(server: rtkit.Server, body: Any) -> str:
    status, answer = post_batch(server, body)
    assert status == 400, answer
    return str(answer["error"])


def test_receipts_are_put_on_the_server_clock_and_fed_to_recorders(server: rtkit.Server) -> None:
    recorder = Recorder()
    receipts = rb.BrowserReceipts(server)
    receipts.feed(recorder)
    receipts.feed(recorder)  # feeding the same recorder twice adds it once
    [event] = published(server)
    items = [receipt(event, 2.5, bytes_in=40, requests=1), receipt(event, 250.0, "poll", empty=3)]
    status, answer = post_batch(server, batch(items))
    assert status == 200
    assert answer["accepted"] == 2 and answer["batch"] == 1 and answer["kept"] == 2 and answer["dropped"] == 0
    df = receipts.dataframe()
    assert list(df["transport"]) == ["browser-sse", "browser-poll"]
    assert list(df["client"]) == ["test-page", "test-page"]
    assert list(df["topic"]) == [rtkit.DEFAULT_TOPIC] * 2
    assert df["latency_ms"].tolist() == pytest.approx([2.5, 250.0], abs=1e-3)
    assert df["clock_uncertainty_ms"].tolist() == [0.25, 0.25]
    assert df[["bytes_in", "requests", "empty_responses"]].values.tolist() == [[40, 1, 0], [0, 0, 3]]
    fed = recorder.to_dataframe()
    assert fed["transport"].tolist() == ["browser-sse", "browser-poll"]
    assert fed["latency_ms"].tolist() == pytest.approx([2.5, 250.0], abs=1e-3)
    clients = receipts.clients()
    assert clients.loc["test-page", "receipts"] == 2 and clients.loc["test-page", "protocol"] == "http/1.1"
    assert receipts.clock("test-page") == ClockEstimate(1000.0, 0.25, 0.5, 12)
    assert receipts.ids("sse") == [event[0]] and len(receipts) == 2


def test_gaps_and_resets_the_page_saw_become_notices_beside_the_receipts(server: rtkit.Server) -> None:
    recorder = Recorder()
    receipts = rb.BrowserReceipts(server)
    receipts.feed(recorder)
    events = published(server, 10)
    arrived_ms = events[-1][1] / 1e6 - OFFSET_MS
    body = batch([receipt(events[-1])],
                 gaps=[{"transport": "sse", "after": 2, "first_id": 8, "missed": 5, "arrived_ms": arrived_ms}],
                 resets=[{"transport": "ws", "after": 40, "old_epoch": "e-old", "new_epoch": "e-new",
                          "arrived_ms": arrived_ms}])
    status, answer = post_batch(server, body)
    assert status == 200 and (answer["gaps"], answer["resets"]) == (1, 1)
    [gap] = receipts.gaps()
    assert isinstance(gap, GapNotice) and (gap.transport, gap.after, gap.first_id, gap.missed) == (
        "browser-sse", 2, 8, 5)
    [reset] = receipts.resets()
    assert isinstance(reset, ResetNotice) and (reset.transport, reset.old_epoch, reset.new_epoch) == (
        "browser-ws", "e-old", "e-new")
    assert recorder.gaps_dataframe()["transport"].tolist() == ["browser-sse"]
    assert recorder.resets_dataframe()["transport"].tolist() == ["browser-ws"]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda e: b"{not json", ["JSON object"]),
        (lambda e: [1, 2], ["JSON object"]),
        (lambda e: batch(client="<script>"), ["client"]),
        (lambda e: batch(client=""), ["client"]),
        (lambda e: batch(clock=None), ["clock"]),
        (lambda e: batch(clock={"offset_ms": "soon", "uncertainty_ms": 1}), ["clock.offset_ms", "finite"]),
        (lambda e: batch(clock={"offset_ms": 1e300, "uncertainty_ms": 1}), ["clock.offset_ms", "1e+13"]),
        (lambda e: batch(clock={"offset_ms": 1, "uncertainty_ms": -1}), ["clock.uncertainty_ms", "from 0"]),
        (lambda e: batch(clock={"offset_ms": 1, "uncertainty_ms": 1e9}), ["clock.uncertainty_ms", "60000"]),
        (lambda e: batch(clock={"offset_ms": 1, "uncertainty_ms": 1, "samples": 0}), ["clock.samples"]),
        (lambda e: b'{"client": "a", "clock": {"offset_ms": NaN, "uncertainty_ms": 1}, "receipts": []}',
         ["finite"]),
        (lambda e: {**batch(), "receipts": None}, ["receipts", "list"]),
        (lambda e: batch(gaps="many"), ["gaps", "list"]),
        (lambda e: batch([receipt(e, transport="carrier-pigeon")]),
         ["receipts[0].transport", "poll, longpoll, sse, ws"]),
        (lambda e: batch([receipt(e), {**receipt(e), "id": 0}]), ["receipts[1].id", "from 1 to"]),
        (lambda e: batch([{**receipt(e), "id": 1.5}]), ["receipts[0].id", "integer"]),
        # an id this server never issued (it has issued 1 event)
        (lambda e: batch([{**receipt(e), "id": 2}]), ["receipts[0].id", "from 1 to 1", "issued"]),
        (lambda e: batch([{**receipt(e), "id": 2**70}]), ["receipts[0].id", "from 1 to 1"]),
        (lambda e: batch([{k: v for k, v in receipt(e).items() if k != "published_ns"}]),
         ["receipts[0].published_ns"]),
        (lambda e: batch([{k: v for k, v in receipt(e).items() if k != "arrived_ms"}]), ["receipts[0].arrived_ms"]),
        # the receipt: accepted before, then every DataFrame raised OverflowError
        (lambda e: batch([{**receipt(e), "arrived_ms": 1e300}]), ["receipts[0].arrived_ms", "from 0 to"]),
        (lambda e: batch([{**receipt(e), "arrived_ms": -5.0}]), ["receipts[0].arrived_ms", "from 0 to"]),
        (lambda e: batch([{**receipt(e), "arrived_ms": float("inf")}]), ["receipts[0].arrived_ms"]),
        # on the server clock, an arrival long before its publish, or after the report
        (lambda e: batch([receipt(e, latency_ms=-CLOCK_SLACK_MS - 50)]),
         ["receipts[0].arrived_ms", "before the event was published", "clock"]),
        (lambda e: batch([receipt(e, latency_ms=3_600_000.0)]),
         ["receipts[0].arrived_ms", "after this batch reached the server"]),
        (lambda e: batch([receipt(e, bytes_in=MAX_BYTES + 1)]), ["receipts[0].bytes_in", str(MAX_BYTES)]),
        (lambda e: batch([receipt(e, bytes_out=-1)]), ["receipts[0].bytes_out"]),
        (lambda e: batch([receipt(e, requests=2**62)]), ["receipts[0].requests"]),
        (lambda e: batch([receipt(e, empty=True)]), ["receipts[0].empty"]),
        (lambda e: batch([receipt(e, topic="no such topic!")]), ["receipts[0].topic", "[A-Za-z0-9_.-]"]),
        (lambda e: batch([receipt(e, topic="never-made")]), ["receipts[0].topic", "never-made"]),
        (lambda e: batch([receipt(e, epoch=["x"])]), ["receipts[0].epoch", "string"]),
        (lambda e: batch(["not an object"]), ["receipts[0]", "JSON object"]),
        (lambda e: batch(gaps=[{"transport": "sse", "after": 0, "first_id": 1, "arrived_ms": 1}]),
         ["gaps[0].first_id"]),
        (lambda e: batch(resets=[{"transport": "sse", "after": 0, "old_epoch": "a", "arrived_ms": 1}]),
         ["resets[0].new_epoch"]),
    ],
)
def test_a_bad_batch_is_refused_naming_the_field_and_what_is_accepted(
    server: rtkit.Server, make: Callable[[tuple[int, int]], Any], words: list[str]
) -> None:
    [event] = published(server)
    recorder = Recorder()
    rb.BrowserReceipts(server).feed(recorder)
    error = refused(server, make(event))
    for word in words:
        assert word in error, error
    receipts = rb.BrowserReceipts(server)
    assert len(receipts) == 0 and len(recorder) == 0  # nothing of a refused batch is kept
    assert receipts.refused == 1 and receipts.last_refusal == error
    assert http(server.url + "/browser/clock")[0] == 200  # and the server serves on
    assert post_batch(server, batch([receipt(event)]))[0] == 200


def test_a_huge_receipt_is_refused_and_every_dataframe_still_builds(server: rtkit.Server) -> None:
    events = published(server, 3)
    recorder = Recorder()
    receipts = rb.BrowserReceipts(server)
    receipts.feed(recorder)
    assert post_batch(server, batch([receipt(events[0])]))[0] == 200
    assert "receipts[1].arrived_ms" in refused(server, batch([receipt(events[1]),
                                                              {**receipt(events[1]), "arrived_ms": 1e300}]))
    assert post_batch(server, batch([receipt(events[2])]))[0] == 200
    for df in (receipts.dataframe(), recorder.to_dataframe()):  # raised OverflowError before the fix
        assert df["id"].tolist() == [events[0][0], events[2][0]]
        assert df["latency_ms"].between(0, 10).all()


def test_receipts_from_a_page_of_another_origin_are_refused(server: rtkit.Server) -> None:
    status, answer = post_batch(server, batch(), headers={"Origin": "http://evil.example"})
    assert status == 403 and "Origin" in answer["error"]
    own = f"http://127.0.0.1:{server.port}"
    assert post_batch(server, batch(), headers={"Origin": own})[0] == 200


def test_an_oversized_receipt_batch_is_refused(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server(max_payload=1000)
    [event] = published(server)
    status, answer = post_batch(server, batch([receipt(event)] * 40))
    assert status == 413 and "limit" in answer["error"]
    status, _, body = http(server.url + "/browser/receipts", method="POST", body=b"{}",
                           headers={"Content-Length": "9" * 5000})
    assert status in (400, 413) and "error" in json.loads(body or b'{"error": "closed"}')


@pytest.mark.slow
def test_what_the_server_keeps_is_bounded_oldest_dropped_and_counted(
    make_server: Callable[..., rtkit.Server],
) -> None:
    # Before: +2 MiB per 10,000 receipts, for ever. Now the newest MAX_KEPT_RECEIPTS stay.
    server = make_server(max_payload=4 << 20)
    events = published(server, 5)
    recorder = Recorder()
    receipts = rb.BrowserReceipts(server)
    receipts.feed(recorder)
    per_batch = 10_000
    sent = 0
    answer: dict[str, Any] = {}
    while sent < MAX_KEPT_RECEIPTS + 2 * per_batch + 1234:
        n = min(per_batch, MAX_KEPT_RECEIPTS + 2 * per_batch + 1234 - sent)
        items = [receipt(events[(sent + i) % 5], bytes_in=sent + i) for i in range(n)]
        status, answer = post_batch(server, batch(items))
        assert status == 200, answer
        sent += n
    expected_dropped = sent - MAX_KEPT_RECEIPTS
    assert answer["kept"] == MAX_KEPT_RECEIPTS and answer["dropped"] == expected_dropped
    assert answer["max_kept"] == MAX_KEPT_RECEIPTS
    assert len(receipts) == MAX_KEPT_RECEIPTS and receipts.dropped == expected_dropped
    assert f"{expected_dropped} dropped" in repr(receipts)
    df = receipts.dataframe()
    # the oldest went: what is kept is the newest, in order, with its batch's clock
    assert df["bytes_in"].tolist() == list(range(expected_dropped, sent))
    assert df["clock_offset_ms"].eq(OFFSET_MS).all()
    assert len(recorder) == sent  # a recorder fed from the start keeps them all


def test_the_state_bounds_batches_notices_and_pages_too() -> None:
    state = BrowserState(max_receipts=5, max_batches=3, max_clients=2)
    clock = ClockEstimate(0.0, 0.1, 0.2, 1)

    def add(client: str, gaps: int = 0) -> None:
        gap = GapNotice("browser-sse", client, 0, 2, 1, 1)
        state.add(ReceiptBatch(client, clock, {}, (), (gap,) * gaps, ()))

    for i in range(5):
        add(f"page-{i}")
    assert [b.number for b in state.batches()] == [3, 4, 5]  # the newest three batches
    assert [c.client for c in state.clients()] == ["page-3", "page-4"]  # the two heard from last
    add("page-9", gaps=7)
    assert state.dropped_notices == 7 and state.batches() == []  # a batch over the cap goes whole
    state.clear()
    assert state.counts() == {"kept": 0, "dropped": 0, "refused": 0, "max_kept": 5}


def test_a_receipt_of_an_earlier_epoch_is_kept_with_its_ids_bounded_but_unchecked() -> None:
    # After a reset the page may still hold arrivals of the lost history: their ids
    # are not this epoch's, and cannot be checked against a history that is gone.
    body = batch([{"transport": "ws", "id": 500, "published_ns": 10**9, "arrived_ms": 1.0, "epoch": "old"},
                  {"transport": "ws", "id": 2, "published_ns": 10**9, "arrived_ms": 1.0, "epoch": "new"}])
    parsed = parse_receipt_batch(json.dumps(body).encode(), view=lambda t: TopicView(3, "new"),
                                 received_ns=10**10)
    assert [r.id for r in parsed.receipts] == [500, 2]
    body["receipts"][1]["id"] = 4  # beyond this epoch's ids
    with pytest.raises(Exception, match=r"receipts\[1\].id must be an integer from 1 to 3"):
        parse_receipt_batch(json.dumps(body).encode(), view=lambda t: TopicView(3, "new"), received_ns=10**10)


def test_parse_receipt_batch_accepts_integral_javascript_numbers() -> None:
    body = json.dumps(batch([{"transport": "ws", "id": 7.0, "published_ns": 1e15,
                              "arrived_ms": 1e9 - 1000 + 2.0}])).encode()
    parsed = parse_receipt_batch(body, view=lambda t: TopicView(7), received_ns=10**15 + 10**7)
    [arrival] = parsed.receipts
    assert (parsed.client, arrival.id, arrival.published_ns, arrival.transport) == (
        "test-page", 7, 10**15, "browser-ws")
    assert arrival.arrived_ns == parsed.clock.to_server_ns(1e9 - 1000 + 2.0) == 10**15 + 2_000_000


def test_state_for_is_one_per_server(make_server: Callable[..., rtkit.Server]) -> None:
    a, b = make_server(), make_server()
    assert state_for(a.log) is state_for(a.log) and state_for(a.log) is not state_for(b.log)
