"""Drawing the dashboard's frames away from the measurement.

Matplotlib holds the GIL while it draws a frame (tens of milliseconds). Drawn
in the kernel, five frames a second stop the server's and the clients' threads
five times a second, and the dashboard measures its own drawing: its latency
tail grows (``python -m rtkit bench`` prints the p99 with and without it). So :class:`ProcessRenderer` draws in a child process
(``python -m rtkit.viz.renderer``): the kernel sends each frame's few
thousand numbers down a pipe and reads the PNG back, waiting without the GIL.
:class:`ThreadRenderer` draws in the calling thread (``render="thread"``),
for comparison and where a child process cannot start.

Both answer :meth:`render` with the PNG bytes and the CPU seconds the drawing
took (in the child: its own CPU time), so the cost of drawing can be shown.

Protocol (the child's stdin/stdout): each message is an 8-byte big-endian
length and a pickle of a tuple: ``("reset", args)``, ``("render", frame)`` or
``("stop",)``; each answer ``("ok", value, cpu_s)`` or ``("error", text)``.
Pickles come only from the parent that started the child, over its own pipes.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from rtkit.core.exceptions import RtkitError
from rtkit.core.resource import Resource

__all__ = ["ProcessRenderer", "RendererError", "ThreadRenderer", "main"]

_HEADER = struct.Struct(">Q")


class RendererError(RtkitError):
    """The drawing process failed or went away; the message says how."""


def _send(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> tuple[Any, ...] | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None  # the other end closed its pipe
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    message = pickle.loads(data)
    return message if isinstance(message, tuple) else None


class ThreadRenderer(Resource):
    """Draws frames in the calling thread (holding the GIL while it draws)."""

    kind = "dashboard renderer"
    stop_rank = 12
    where = "in the kernel"

    def __init__(self, figsize: tuple[float, float], dpi: float) -> None:
        super().__init__()
        self.figsize, self.dpi = figsize, dpi
        self._figure: Any = None

    def _start(self) -> None:
        from rtkit.viz.liveframe import LiveFigure

        self._figure = LiveFigure(self.figsize, self.dpi)

    def _stop(self) -> None:
        self._figure = None

    def reset(self, *args: Any) -> None:
        """:meth:`rtkit.viz.liveframe.LiveFigure.reset` with these arguments."""
        if self._figure is None:
            raise RendererError("the renderer is not running")
        self._figure.reset(*args)

    def render(self, frame: dict[str, Any]) -> tuple[bytes, float]:
        """The frame as PNG bytes, and the CPU seconds drawing it took."""
        if self._figure is None:
            raise RendererError("the renderer is not running")
        cpu = time.thread_time()
        png = self._figure.render(frame)
        return png, time.thread_time() - cpu


class ProcessRenderer(ThreadRenderer):
    """Draws frames in a child process (see the module docstring). Start it
    early: the child needs a second or so to import matplotlib, and the first
    request waits for that. Requests are serialised (one thread at a time is
    served; others wait)."""

    where = "in a separate process"

    def __init__(self, figsize: tuple[float, float], dpi: float) -> None:
        super().__init__(figsize, dpi)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding this rtkit
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env["MPLBACKEND"] = "Agg"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "rtkit.viz.renderer", repr(tuple(self.figsize)), repr(self.dpi)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with self._lock:
            try:
                assert proc.stdin is not None
                _send(proc.stdin, ("stop",))
                proc.stdin.close()
            except (OSError, ValueError):
                pass  # it is gone already
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _request(self, message: tuple[Any, ...]) -> tuple[Any, float]:
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdout is None:
                raise RendererError("the drawing process is not running")
            try:
                _send(proc.stdin, message)
                answer = _receive(proc.stdout)  # blocks without the GIL
            except (OSError, ValueError) as exc:
                raise RendererError(f"the drawing process went away: {exc}") from None
        if answer is None:
            raise RendererError(f"the drawing process ended (exit status {proc.poll()})")
        if answer[0] != "ok":
            raise RendererError(f"the drawing process failed: {answer[1]}")
        return answer[1], float(answer[2])

    def reset(self, *args: Any) -> None:
        self._request(("reset", args))

    def render(self, frame: dict[str, Any]) -> tuple[bytes, float]:
        png, cpu = self._request(("render", frame))
        return bytes(png), cpu


def main(argv: list[str] | None = None) -> int:
    """The child: draw what the parent sends until it says stop or closes the pipe."""
    import ast

    from rtkit.viz.liveframe import LiveFigure

    args = sys.argv[1:] if argv is None else argv
    figure = LiveFigure(tuple(ast.literal_eval(args[0])), float(args[1]))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        message = _receive(stdin)
        if message is None or message[0] == "stop":
            return 0
        cpu = time.process_time()
        try:
            if message[0] == "reset":
                figure.reset(*message[1])
                value: Any = None
            elif message[0] == "render":
                value = figure.render(message[1])
            else:
                raise ValueError(f"unknown request {message[0]!r}")
        except Exception as exc:  # noqa: BLE001 -- told to the parent, which shows it
            _send(stdout, ("error", f"{type(exc).__name__}: {exc}"))
            continue
        _send(stdout, ("ok", value, time.process_time() - cpu))


if __name__ == "__main__":
    raise SystemExit(main())
