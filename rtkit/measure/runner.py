"""Run a workload against any mix of transports at once and record every message.

>>> result = run_experiment(["sse", "ws"], Workload(rate=100, duration=2))
>>> result.summary          # one row per transport
>>> result.df               # one row per delivered message per client

:class:`Experiment` is the non-blocking form a notebook uses to watch a run
live: :meth:`Experiment.start` returns once the clients are connected; the
publishing, draining and teardown happen in a background thread (never the
kernel's loop); :meth:`Experiment.dataframe` and :meth:`Experiment.progress`
are readable meanwhile; :meth:`Experiment.stop` ends it early.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rtkit.clients import CLIENTS, Client, make_client
from rtkit.core.api import DEFAULT_LONGPOLL_HOLD, DEFAULT_POLL_INTERVAL
from rtkit.core.exceptions import RtkitError
from rtkit.core.resource import Resource
from rtkit.core.transports import TRANSPORTS, check_transports
from rtkit.log import DEFAULT_CAPACITY
from rtkit.measure.pauses import CollectorWindow, PauseRecorder, freeze_collector, pauses_dataframe
from rtkit.measure.recorder import Recorder
from rtkit.measure.subscribing import held_connections, wait_released, wait_subscribed
from rtkit.measure.summary import client_delivery, summarize
from rtkit.measure.timetable import Timetable
from rtkit.measure.workload import Workload, make_payload
from rtkit.server import Server

__all__ = ["Experiment", "ExperimentResult", "run_experiment"]

_CONNECT_TIMEOUT = 10.0


def _reports_resets(transport: str) -> bool:
    """Whether this transport's client takes ``on_reset=`` (docs/design.md, section 5)."""
    return "on_reset" in inspect.signature(CLIENTS[transport]).parameters


@dataclass
class ExperimentResult:
    """What a run produced. ``df``: see :mod:`rtkit.measure.recorder`;
    ``summary``: see :func:`rtkit.measure.summary.summarize`; ``pauses``: the
    kernel's garbage collections during the run, on the same time axis as
    ``df`` (see :mod:`rtkit.measure.pauses`); ``gaps``: the gaps reported."""

    df: pd.DataFrame
    summary: pd.DataFrame
    per_client: pd.DataFrame
    gaps: pd.DataFrame
    workload: Workload
    settings: dict[str, Any]
    published_ids: range
    elapsed_s: float
    server_cpu_s: float | None
    stopped_early: bool
    client_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    pauses: pd.DataFrame = field(default_factory=lambda: pauses_dataframe([]))
    resets: pd.DataFrame = field(default_factory=lambda: Recorder().resets_dataframe())


class Experiment(Resource):
    """One run of ``workload`` against ``transports`` (see the module docstring).

    transports        any of "poll", "longpoll", "sse", "ws"
    clients           clients per transport
    poll_interval     seconds between short polls
    longpoll_hold     seconds the server may hold a long poll
    server            a running server to use; by default one is started and stopped
    drain_timeout     seconds to wait after the last publish for deliveries
                      (default: poll interval + 2 s)
    via               a URL the clients connect to instead of the server's, e.g. a
                      :class:`rtkit.net.emulator.NetworkEmulator` in front of it
    client_options    more keyword arguments for every client (``dead_after``,
                      ``reconnect_delay``, ...)
    freeze_gc         keep long garbage collections out of the run (default True):
                      once the clients are subscribed, collect and freeze what
                      setup allocated; unfreeze and collect after the run
                      (:func:`rtkit.measure.pauses.freeze_collector`). Either way
                      every collection during the run is in ``result.pauses``.
    """

    kind = "experiment"
    stop_rank = 20

    def __init__(
        self,
        transports: Iterable[str] = TRANSPORTS,
        workload: Workload | None = None,
        *,
        clients: int = 1,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        longpoll_hold: float = DEFAULT_LONGPOLL_HOLD,
        server: Server | None = None,
        drain_timeout: float | None = None,
        via: str | None = None,
        client_options: dict[str, Any] | None = None,
        freeze_gc: bool = True,
    ) -> None:
        super().__init__()
        self.transports = check_transports(transports)
        if isinstance(clients, bool) or not isinstance(clients, int) or not 1 <= clients <= 5000:
            raise ValueError(f"clients must be an int from 1 to 5000 per transport; got {clients!r}")
        self.workload = workload or Workload()
        self.clients_per_transport = clients
        self.poll_interval = poll_interval
        self.longpoll_hold = longpoll_hold
        self.drain_timeout = poll_interval + 2.0 if drain_timeout is None else drain_timeout
        self._given_server = server
        self.via = via
        self.client_options = dict(client_options or {})
        self.server: Server | None = None
        self.clients: list[Client] = []
        self.recorder = Recorder()
        self.pause_recorder = PauseRecorder(self.recorder.start_ns)
        self.freeze_gc = bool(freeze_gc)
        self._window: CollectorWindow = freeze_collector()
        #: What the server held before our clients started (others' connections).
        self._baseline: dict[str, int] = {}
        self._schedule = self.workload.schedule()
        self._published = 0
        self._first_id = 0
        self._last_id = 0
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: ExperimentResult | None = None
        self._error: BaseException | None = None
        self._t0 = 0.0

    # -- lifecycle ---------------------------------------------------------------
    def _start(self) -> None:
        """Start the server (unless given) and the clients; return once they are
        subscribed, with publishing under way in a background thread."""
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._run, name="rtkit-experiment", daemon=True)
        self._thread.start()

    def _setup(self) -> None:
        if self._given_server is not None:
            self.server = self._given_server
        else:
            capacity = max(DEFAULT_CAPACITY, len(self._schedule) + 1000)
            self.server = Server(capacity=capacity).start()
        since = self.server.log.last_id  # every client starts from the same cursor
        baseline = self._baseline = held_connections(self.server)  # others' connections to the same server
        options = {"poll": {"poll_interval": self.poll_interval}, "longpoll": {"hold": self.longpoll_hold}}
        for transport in self.transports:
            for _ in range(self.clients_per_transport):
                notices: dict[str, Any] = {"on_gap": self.recorder.add_gap}
                if _reports_resets(transport):
                    notices["on_reset"] = self.recorder.add_reset
                client = make_client(
                    transport, self.via or self.server.url, since=since, keep=False,
                    on_receipt=self.recorder.add, **notices,
                    **options.get(transport, {}), **self.client_options,
                )
                self.clients.append(client.start())
        server = self.server
        wait_subscribed(self.clients, lambda: held_connections(server), baseline=baseline,
                        timeout=_CONNECT_TIMEOUT, stop=self._stopping.is_set)
        if self.freeze_gc:
            self._window.open()  # the setup's garbage is collected now, not mid-run
        self.pause_recorder.start()

    def _run(self) -> None:
        assert self.server is not None
        cpu0 = self.server.cpu_seconds()
        self._t0 = time.perf_counter()
        size = self.workload.payload
        try:
            for seq in Timetable(self._schedule, stop=self._stopping):
                event_id = self.server.publish(make_payload(seq, size))
                self._first_id = self._first_id or event_id
                self._last_id = event_id
                self._published += 1
            self._drain()
            self.pause_recorder.stop()
            cpu1 = self.server.cpu_seconds()
            self._result = self._collect(
                None if cpu0 is None or cpu1 is None else cpu1 - cpu0
            )
        except BaseException as exc:  # noqa: BLE001 -- kept for result(), raised there
            self._error = exc
        finally:
            try:
                self._teardown()
            finally:
                self._done.set()  # even if a client fails to stop: `running` must end
                self._ended()

    def _drain(self) -> None:
        deadline = time.monotonic() + self.drain_timeout
        for client in self.clients:
            remaining = deadline - time.monotonic()
            if self._stopping.is_set() or remaining <= 0:
                break
            if client.running and self._last_id:
                client.wait_for(last_id=self._last_id, timeout=remaining)

    def _teardown(self) -> None:
        self.pause_recorder.stop()
        try:
            for client in self.clients:
                client.stop()
            if self._given_server is None and self.server is not None:
                self.server.stop()
            elif self.server is not None:  # a shared server: leave it as we found it
                wait_released(self.server, self._baseline)
        finally:
            self._window.close()  # unfreeze and collect: after the run, never in it

    def stop(self, timeout: float = 30.0) -> None:
        """End the run early (publishing stops, clients and owned server stop);
        returns once they have. Idempotent; harmless after the run ended."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        super().stop()

    def _stop(self) -> None:
        pass  # the run's own thread stops what it started (see _run)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended (True) or ``timeout`` seconds passed (False)."""
        if self._thread is None:
            return True
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> ExperimentResult:
        """Wait for the run to end and return its result (raises what the run raised)."""
        if self._thread is None:
            raise RtkitError("the experiment was not started")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the experiment is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    # -- live views ----------------------------------------------------------------
    def dataframe(self) -> pd.DataFrame:
        """Every receipt so far (readable while running)."""
        return self.recorder.to_dataframe()

    def progress(self) -> dict[str, Any]:
        """Elapsed seconds, messages published of those planned, delivered per transport."""
        received: dict[str, int] = dict.fromkeys(self.transports, 0)
        for client in self.clients:
            received[client.transport] += client.stats.events
        return {
            "elapsed_s": time.perf_counter() - self._t0 if self._t0 else 0.0,
            "published": self._published,
            "planned": len(self._schedule),
            "received": received,
            "running": self.running,
        }

    # -- result --------------------------------------------------------------------
    def _collect(self, server_cpu: float | None) -> ExperimentResult:
        df = self.recorder.to_dataframe()
        gaps = self.recorder.gaps_dataframe()
        published = range(self._first_id, self._last_id + 1) if self._last_id else range(0)
        names: dict[str, list[str]] = {t: [] for t in self.transports}
        totals: dict[str, dict[str, int]] = {
            t: {"requests": 0, "bytes_in": 0, "bytes_out": 0, "empty_responses": 0}
            for t in self.transports
        }
        for c in self.clients:
            names[c.transport].append(c.name)
            for key in ("requests", "bytes_in", "bytes_out", "empty_responses"):
                totals[c.transport][key] += getattr(c.stats, key)
        cpu = {self.transports[0]: server_cpu} if server_cpu is not None and len(self.transports) == 1 else None
        return ExperimentResult(
            df=df,
            summary=summarize(df, published, clients=names, gaps=gaps, server_cpu_s=cpu, totals=totals),
            per_client=client_delivery(df, published),
            gaps=gaps,
            workload=self.workload,
            settings={
                "transports": list(self.transports),
                "clients": self.clients_per_transport,
                "poll_interval": self.poll_interval,
                "longpoll_hold": self.longpoll_hold,
            },
            published_ids=published,
            elapsed_s=time.perf_counter() - self._t0,
            server_cpu_s=server_cpu,
            stopped_early=self._stopping.is_set(),
            client_stats={c.name: vars(c.stats).copy() for c in self.clients},
            pauses=self.pause_recorder.to_dataframe(),
            resets=self.recorder.resets_dataframe(),
        )


def run_experiment(
    transports: Iterable[str] = TRANSPORTS, workload: Workload | None = None, **options: Any
) -> ExperimentResult:
    """Run an :class:`Experiment` to the end and return its result (blocking)."""
    return Experiment(transports, workload, **options).start().result()
