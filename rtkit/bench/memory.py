"""Memory per idle connection: the server process's resident memory, per connection
held open by a subprocess that uses only the standard library (so the clients'
memory is not counted)."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
from collections import deque
from typing import Any

from rtkit.bench.figures import RAW, WEBSOCKETS
from rtkit.bench.targets import Target
from rtkit.core.waiting import wait_until

__all__ = ["idle_memory", "rss_bytes"]

HOST = "127.0.0.1"
_TIMEOUT = 30.0

_OPENER = r"""
import base64, os, signal, socket, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it closes our stdin
host, ports = sys.argv[1], {"raw": int(sys.argv[2]), "http": int(sys.argv[3]), "websockets": int(sys.argv[4])}
upgrade = ("GET {path} HTTP/1.1\r\nHost: {h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n\r\n")
requests = {
    "sse": "GET /sse HTTP/1.1\r\nHost: {h}\r\nAccept: text/event-stream\r\n\r\n",
    "longpoll": "GET /longpoll?timeout=120 HTTP/1.1\r\nHost: {h}\r\nAccept: application/json\r\n\r\n",
    "ws": upgrade.replace("{path}", "/ws"),
    "websockets": upgrade.replace("{path}", "/"),
}
held = []
for line in sys.stdin:
    kind, n = line.split()
    port = ports["raw" if kind == "raw" else "websockets" if kind == "websockets" else "http"]
    try:
        for start in range(0, int(n), 50):
            batch = []
            for _ in range(min(50, int(n) - start)):
                s = socket.create_connection((host, port), timeout=20)
                if kind != "raw":
                    key = base64.b64encode(os.urandom(16)).decode()
                    s.sendall(requests[kind].format(h=f"{host}:{port}", k=key).encode())
                batch.append(s)
            for s in batch:
                if kind in ("sse", "ws", "websockets"):  # read the answer's head: the server holds it
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise ConnectionError("server closed the connection")
                        head += chunk
                    if b" 200 " not in head[:20] and b" 101 " not in head[:20]:
                        raise ConnectionError(head[:80].decode("latin-1"))
            held.extend(batch)
        print("ok", flush=True)
    except Exception as exc:
        print("error", type(exc).__name__, exc, flush=True)
for s in held:
    s.close()
"""


def rss_bytes() -> int | None:
    """Resident set size of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return None


def _settled_rss() -> int | None:
    """RSS once the collector has run and three reads in a row agree (the servers'
    loops have finished with the new connections): a condition, not a fixed wait."""
    gc.collect()
    reads: deque[int | None] = deque(maxlen=3)

    def steady() -> bool:
        reads.append(rss_bytes())
        return len(reads) == 3 and len(set(reads)) == 1

    with contextlib.suppress(TimeoutError):  # never steady on a busy machine: take the last read
        wait_until(steady, 5.0, what="resident memory steady")
    return reads[-1] if reads else rss_bytes()


def idle_memory(targets: dict[str, Target], n: int, warm: int = 10) -> dict[str, dict[str, Any]]:
    """Server-side RSS per idle connection for each kind in ``targets`` (``raw``,
    ``websockets``, ``sse``, ``ws``, ``longpoll``), ``n`` connections each."""
    ports = {RAW: 0, "http": 0, WEBSOCKETS: 0}
    for kind, target in targets.items():
        port = int(getattr(target.server, "port", 0))
        ports[kind if kind in (RAW, WEBSOCKETS) else "http"] = port
    out: dict[str, dict[str, Any]] = {}
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPENER, HOST, str(ports[RAW]), str(ports["http"]), str(ports[WEBSOCKETS])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def open_idle(kind: str, count: int) -> None:
            before = targets[kind].held().get(kind, 0)
            stdin.write(f"{kind} {count}\n")
            stdin.flush()
            answer = stdout.readline().strip()
            if answer != "ok":
                raise RuntimeError(f"opening {count} idle {kind} connections failed: {answer or 'no answer'}")
            wait_until(lambda: targets[kind].held().get(kind, 0) >= before + count, _TIMEOUT,
                       what=f"the server holds {count} more {kind} connections")

        # Warm-up connections stay open: one-time costs (code paths, caches) are
        # paid before measuring, and no freed memory is reused by the measured ones.
        for kind in targets:
            open_idle(kind, warm)
        for kind in targets:
            before = _settled_rss()
            open_idle(kind, n)
            after = _settled_rss()
            if before is None or after is None:
                raise RuntimeError("resident memory is not readable on this system (/proc or psutil)")
            out[kind] = {"kib_per_conn": (after - before) / 1024 / n, "rss_delta_bytes": after - before,
                         "connections": n}
    finally:
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # the servers finish closing those connections before anything else is timed
    wait_until(lambda: all(t.held().get(k, 0) == 0 for k, t in targets.items()), _TIMEOUT,
               what="the servers closed the idle connections")
    return out
