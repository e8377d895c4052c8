"""The stream processors as separate processes: start them, crash one, stop them all.

>>> pool = WorkerPool(redis.url, run, 2).start()   # python -m rtkit.pipeline.worker, twice
>>> pool.kill(0)                                    # SIGKILL: a crash, mid-whatever
>>> pool.stop()                                     # SIGTERM, then SIGKILL after a grace period

Each worker's stdout and stderr go to a file in the pool's temp directory
(:meth:`WorkerPool.stderr` reads it back), so a worker that fails says why.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rtkit.core.resource import Resource
from rtkit.pipeline.errors import PipelineError

__all__ = ["WorkerPool"]

_STOP_GRACE_S = 5.0


class WorkerPool(Resource):
    """``count`` worker processes of run ``run`` on the Redis at ``redis_url``.

    ``max_rate``: entries per second each worker processes at most (a slow
    consumer; None: as fast as it can). Workers are named ``w0``, ``w1``, ... in
    the consumer group; a restarted one gets a new name (``w0.1``)."""

    kind = "pipeline workers"
    stop_rank = 25

    def __init__(self, redis_url: str, run: str, count: int, *, max_rate: float | None = None,
                 redis_timeout: float = 10.0) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 32:
            raise ValueError(f"workers must be an int in [1, 32], got {count!r}")
        if max_rate is not None and (isinstance(max_rate, bool) or not isinstance(max_rate, (int, float))
                                     or max_rate <= 0):
            raise ValueError(f"max_rate must be a number of entries/s > 0, or None, got {max_rate!r}")
        self.redis_url, self.run, self.count = redis_url, run, count
        self.max_rate, self.redis_timeout = max_rate, redis_timeout
        self.names: list[str] = [f"w{i}" for i in range(count)]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._logs: list[Path | None] = [None] * count
        self._dir: str | None = None
        self._restarts = [0] * count

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="rtkit-pipeline-")
        try:
            for i in range(self.count):
                self._spawn(i)
        except BaseException:
            self._stop()
            raise

    def _spawn(self, i: int) -> None:
        assert self._dir is not None
        name = self.names[i]
        log = Path(self._dir) / f"{name}.log"
        command = [sys.executable, "-m", "rtkit.pipeline.worker", "--redis", self.redis_url,
                   "--run", self.run, "--name", name, "--index", str(i), "--workers", str(self.count),
                   "--redis-timeout", str(self.redis_timeout)]
        if self.max_rate is not None:
            command += ["--max-rate", str(self.max_rate)]
        with log.open("wb") as out:
            self._procs[i] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        self._logs[i] = log

    def _stop(self) -> None:
        for proc in self._procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            if proc is None:
                continue
            try:
                proc.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- faults and state ------------------------------------------------------------------
    def _proc(self, i: int) -> subprocess.Popen[bytes]:
        if not 0 <= i < self.count:
            raise ValueError(f"worker index must be in [0, {self.count - 1}], got {i!r}")
        proc = self._procs[i]
        if proc is None or not self.running:
            raise PipelineError("the workers are not running")
        return proc

    def kill(self, i: int) -> int:
        """Kill worker ``i`` at once (SIGKILL), as a crash would; returns its pid."""
        proc = self._proc(i)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return proc.pid

    def restart(self, i: int) -> None:
        """Start worker ``i`` again (after :meth:`kill`), under a new consumer name."""
        proc = self._proc(i)
        if proc.poll() is None:
            raise PipelineError(f"worker {i} is still running; kill({i}) it first")
        self._restarts[i] += 1
        self.names[i] = f"w{i}.{self._restarts[i]}"
        self._spawn(i)

    def alive(self, i: int) -> bool:
        return self._proc(i).poll() is None

    def pid(self, i: int) -> int:
        return self._proc(i).pid

    def exit_codes(self) -> list[int | None]:
        """Each worker's exit code (None while it runs)."""
        return [None if p is None else p.poll() for p in self._procs]

    def stderr(self, i: int, limit: int = 4000) -> str:
        """The end of what worker ``i`` printed."""
        log = self._logs[i]
        if log is None or not log.exists():
            return ""
        return log.read_bytes()[-limit:].decode("utf-8", "replace")

    def __repr__(self) -> str:
        pids = ",".join(str(p.pid) for p in self._procs if p is not None) if self.running else ""
        return f"<rtkit pipeline WorkerPool {self.state.value} {self.count} workers {pids}>"

