"""Server nodes as processes, sharing one Redis Streams log.

>>> redis = start_redis()
>>> nodes = start_nodes(3, redis=redis.url)    # three `python -m rtkit.scale.node` processes
>>> nodes.urls                                  # ['http://127.0.0.1:P1', ...]
>>> nodes.kill(0)                               # SIGKILL: a crash, its clients cut off
>>> nodes.restart(0)                            # the same port again, ready when it answers
>>> nodes.stop()                                # every process it started; idempotent

A node is ready when its ``GET /stats`` answers; every wait is on that
condition (or on the process exiting, whose log then says why). Each node's
standard input is a pipe from this process: if this process dies, the nodes
see it close and stop too. ``start_nodes`` keeps one set per ``name``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from rtkit.core.exceptions import ServerError, WaitTimeout
from rtkit.core.resource import Resource, start_managed
from rtkit.core.waiting import wait_until

__all__ = ["NodeSet", "start_nodes"]

_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_RTKIT_ROOT = str(Path(__file__).resolve().parents[2])  # so a node imports this rtkit


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/stats", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class _Node:
    """One node process and where it listens."""

    def __init__(self, index: int, port: int) -> None:
        self.index = index
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NodeSet(Resource):
    """``n`` node processes on ``host`` sharing the log in Redis at ``redis`` (see the module docstring).

    redis          the Redis URL; None: one node (``n`` = 1) whose log is in its own memory,
                   the baseline for comparisons (nodes share events only through Redis)
    topics         topics every node declares at start
    capacity       events retained per topic; ``history_bytes``: payload bytes per topic
    allowed_hosts  Host headers the nodes accept besides loopback
    """

    kind = "nodes"
    stop_rank = 80

    def __init__(
        self,
        n: int,
        *,
        redis: str | None,
        host: str = "127.0.0.1",
        topics: Iterable[str] = (),
        capacity: int | None = None,
        history_bytes: int | None = None,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise ValueError(f"n must be an int from 1 to 64 (nodes to start), got {n!r}")
        if redis is None:
            if n != 1:
                raise ValueError(f"nodes share events only through Redis: without redis= start one node, not {n}")
        elif not isinstance(redis, str) or "://" not in redis:
            raise ValueError(f"redis must be a Redis URL such as start_redis().url (or None), got {redis!r}")
        self.n = n
        self.redis = redis
        self.host = host
        self._args: list[str] = [*(["--redis", redis] if redis else []), "--host", host]
        for topic in topics:
            self._args += ["--topic", topic]
        if capacity is not None:
            self._args += ["--capacity", str(capacity)]
        if history_bytes is not None:
            self._args += ["--history-bytes", str(history_bytes)]
        for allowed in allowed_hosts:
            self._args += ["--allowed-host", allowed]
        self._nodes: list[_Node] = []
        self._dir: str | None = None

    # -- what clients need -------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        """The base URL of every node, in order (a killed node keeps its URL)."""
        return [f"http://{self.host}:{node.port}" for node in self._nodes]

    @property
    def pids(self) -> list[int | None]:
        return [node.proc.pid if node.alive and node.proc else None for node in self._nodes]

    def alive(self, i: int) -> bool:
        """True while node ``i``'s process runs."""
        return self._node(i).alive

    def log_tail(self, i: int, lines: int = 10) -> str:
        """The last lines node ``i`` wrote (its stdout and stderr)."""
        path = Path(self._dir or "") / f"node-{i}.log"
        try:
            return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "nothing"
        except OSError:
            return "no log"

    # -- lifecycle -------------------------------------------------------------------------------
    def _start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="rtkit-nodes-")
        try:
            for i in range(self.n):
                node = _Node(i, _free_port(self.host))
                self._nodes.append(node)
                self._launch(node)
            for node in self._nodes:
                self._wait_ready(node)
        except BaseException:
            self._stop()
            raise

    def _launch(self, node: _Node) -> None:
        assert self._dir is not None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_RTKIT_ROOT, env.get("PYTHONPATH")) if p)
        if node.log_file is not None:
            node.log_file.close()
        node.log_file = open(Path(self._dir) / f"node-{node.index}.log", "ab")  # noqa: SIM115 - kept open
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "rtkit.scale.node", *self._args, "--port", str(node.port)],
            stdin=subprocess.PIPE, stdout=node.log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a Ctrl-C in the kernel is not theirs
            cwd=_RTKIT_ROOT,  # `python -m` imports from the working directory first: this rtkit's
        )

    def _wait_ready(self, node: _Node) -> None:
        url = f"http://{self.host}:{node.port}"
        try:
            wait_until(lambda: not node.alive or _answers(url), _READY_TIMEOUT, what=f"node {node.index} answering at {url}")
        except WaitTimeout:
            raise ServerError(f"node {node.index} did not answer at {url} within {_READY_TIMEOUT:g} s: "
                              f"{self.log_tail(node.index)}") from None
        if not node.alive:
            code = node.proc.returncode if node.proc else None
            raise ServerError(f"node {node.index} exited at start (code {code}): {self.log_tail(node.index)}")

    def _end(self, node: _Node, *, kill: bool) -> None:
        proc = node.proc
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                with contextlib.suppress(OSError):
                    assert proc.stdin is not None
                    proc.stdin.close()  # the node stops when its stdin closes ...
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)  # ... or on SIGTERM, whichever it sees first
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def _stop(self) -> None:
        for node in self._nodes:
            self._end(node, kill=False)
            if node.log_file is not None:
                node.log_file.close()
                node.log_file = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- faults, for experiments ---------------------------------------------------------------------
    def _node(self, i: int) -> _Node:
        if not self.running:
            raise ServerError("the nodes are not running; start() them first")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self._nodes):
            raise IndexError(f"node index must be from 0 to {len(self._nodes) - 1}, got {i!r}")
        return self._nodes[i]

    def kill(self, i: int) -> None:
        """Kill node ``i`` at once (SIGKILL), as a crash would: its connections are cut."""
        with self._lifecycle_lock:
            self._end(self._node(i), kill=True)

    def restart(self, i: int) -> None:
        """Stop node ``i`` if it runs and start it again on the same port; returns once it answers."""
        with self._lifecycle_lock:
            node = self._node(i)
            self._end(node, kill=False)
            self._launch(node)
            self._wait_ready(node)

    def __repr__(self) -> str:
        where = f" {', '.join(self.urls)}" if self.running else ""
        return f"<rtkit NodeSet {self.state.value} n={self.n}{where}>"


def start_nodes(n: int, *, redis: str | None, name: str = "default", **options: object) -> NodeSet:
    """Start ``n`` node processes on the Redis at ``redis`` (None: one node on its own
    memory); one set per ``name`` (a re-run cell stops the previous set first).
    ``options`` are :class:`NodeSet`'s."""
    return start_managed(NodeSet(n, redis=redis, **options), name)  # type: ignore[arg-type]
