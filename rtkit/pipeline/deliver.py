"""Deliver: from the store's outbox to the server's topics, and a subscriber that times it.

The workers put every closed window, alert and late event in the run's
``out`` stream in the same commit that stores it (a transactional outbox: a
window is never delivered without being stored, nor stored without being
queued for delivery). :class:`Deliverer` follows that stream from a thread and
publishes each entry on a topic of an rtkit server (``server.publish(payload,
topic=...)``). With a server started with ``redis=``, the topic lives in
Redis too and every node serves it: a browser's ``EventSource`` on
``/sse?topic=aggregates`` of any node sees the same windows.

:class:`Subscriber` is the student's screen: an SSE client on the windows and
alerts topics that notes when each window of this run arrived (the
"delivered" stage, on the one clock).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from rtkit.core.waiting import wait_until
from rtkit.pipeline.errors import PipelineError
from rtkit.pipeline.keys import RunKeys, connect

__all__ = ["Deliverer", "Publisher", "Subscriber", "Topics"]

_BLOCK_MS = 100


class Publisher(Protocol):
    """Anything with rtkit's ``publish(payload, topic=...)`` (a :class:`rtkit.Server`;
    its ``create_topic(name)`` and ``url`` are used when it has them)."""

    def publish(self, payload: Any, topic: str = ...) -> int: ...


@dataclass(frozen=True, slots=True)
class Topics:
    """The server topics a run delivers on (names follow the topic rule)."""

    windows: str = "aggregates"
    alerts: str = "alerts"
    late: str = "late"

    def for_kind(self, kind: str) -> str:
        return {"window": self.windows, "alert": self.alerts, "late": self.late}[kind]

    def all(self) -> tuple[str, str, str]:
        return (self.windows, self.alerts, self.late)


class Deliverer:
    """Publish the run's outbox (``out`` stream) on ``topics`` of ``publisher``, from a thread.

    Each payload is the stored document plus ``"kind"`` (window, alert or late).
    :attr:`delivered` counts per kind; :attr:`error` keeps what stopped it."""

    def __init__(self, redis_url: str, keys: RunKeys, publisher: Publisher, topics: Topics, *,
                 redis_timeout: float = 10.0) -> None:
        self.keys, self.publisher, self.topics = keys, publisher, topics
        self.url = redis_url
        self.redis_timeout = redis_timeout
        self.r = connect(redis_url)
        self.delivered = {"window": 0, "alert": 0, "late": 0}
        self.error: BaseException | None = None
        self.last_entry = "0-0"
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="rtkit-pipeline-deliver", daemon=True)

    def start(self) -> Deliverer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.r.close()

    def _run(self) -> None:
        unreachable_since: float | None = None
        while not self._stop.is_set():
            try:
                reply = self.r.xread({self.keys.out: self.last_entry}, count=500, block=_BLOCK_MS)
                unreachable_since = None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.redis_timeout:
                    self.error = PipelineError(f"delivery stopped: Redis at {self.url} unreachable ({exc})")
                    return
                self._stop.wait(0.1)  # a reconnection cadence
                continue
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    self._publish(fields)
                    self.last_entry = entry_id.decode()
            with self._changed:
                self._changed.notify_all()

    def _publish(self, fields: dict[bytes, bytes]) -> None:
        kind = fields[b"t"].decode()
        payload = json.loads(fields[b"j"])
        payload["kind"] = kind
        try:
            self.publisher.publish(payload, topic=self.topics.for_kind(kind))
        except Exception as exc:  # noqa: BLE001 - a stopped server: say so, keep the count honest
            self.error = PipelineError(f"delivery failed on topic {self.topics.for_kind(kind)!r}: {exc}")
            self._stop.set()
            return
        self.delivered[kind] += 1

    def wait_drained(self, timeout: float) -> bool:
        """Block until everything in the outbox now has been published; True."""
        target = self.r.xinfo_stream(self.keys.out)["last-generated-id"] if self.r.exists(self.keys.out) else None
        if target is None:
            return True
        target = target.decode() if isinstance(target, bytes) else target

        def reached() -> bool:
            return self.error is not None or _order(self.last_entry) >= _order(target)

        wait_until(reached, timeout, what="the deliverer publishing the whole outbox", condition=self._changed)
        if self.error is not None:
            raise self.error
        return True


def _order(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


class Subscriber:
    """An SSE client on the windows and alerts topics of ``url`` that notes when each
    window of ``run`` arrived: :attr:`arrivals` maps ``(key, start_ns)`` to the
    arrival time (ns, the one clock); :attr:`alerts` lists the alert payloads."""

    def __init__(self, url: str, run: str, topics: Topics) -> None:
        from rtkit.clients import make_client  # the student's screen is a client

        self.run = run
        self.arrivals: dict[tuple[str, int], int] = {}
        self.alerts: list[dict[str, Any]] = []
        self.duplicates = 0
        self._changed = threading.Condition()
        self.clients = [
            make_client("sse", url, topic=topics.windows, since=0, keep=False,
                        on_receipt=self._on_window),
            make_client("sse", url, topic=topics.alerts, since=0, keep=False,
                        on_receipt=self._on_alert),
        ]

    def start(self) -> Subscriber:
        for client in self.clients:
            client.start()
        return self

    def stop(self) -> None:
        for client in self.clients:
            client.stop()

    def _on_window(self, receipt: Any) -> None:
        data = receipt.data
        if not isinstance(data, dict) or data.get("run") != self.run:
            return
        where = (data["key"], int(data["start_ns"]))
        with self._changed:
            if where in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[where] = receipt.arrived_ns
            self._changed.notify_all()

    def _on_alert(self, receipt: Any) -> None:
        data = receipt.data
        if isinstance(data, dict) and data.get("run") == self.run:
            with self._changed:
                self.alerts.append(data)

    def snapshot(self) -> dict[tuple[str, int], int]:
        """A copy of :attr:`arrivals` (any thread, while windows still arrive)."""
        with self._changed:
            return dict(self.arrivals)

    def wait_for(self, windows: int, timeout: float) -> bool:
        """Block until ``windows`` distinct windows of the run arrived; True."""
        wait_until(lambda: len(self.arrivals) >= windows, timeout,
                   what=f"{windows} windows reaching the subscriber (it has {len(self.arrivals)})",
                   condition=self._changed)
        return True

    @property
    def errors(self) -> list[str]:
        return [f"{c.name}: {c.error}" for c in self.clients if getattr(c, "error", None)]
