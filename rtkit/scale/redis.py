"""A real ``redis-server`` for this kernel: a free loopback port, its own temp dir.

>>> redis = start_redis()            # redis-server on 127.0.0.1, a free port
>>> redis.url
'redis://127.0.0.1:PORT'
>>> redis.restart()                  # a crash and a restart: empty again (no persistence)
>>> redis.stop()                     # idempotent; the temp dir goes too

``start_redis()`` keeps one server per ``name``, so a re-run cell replaces it.
Without persistence (the default) nothing is written to disk: a restart
starts empty, which is what the course's "history lost" experiments need. With
``persistence=True`` the server keeps an append-only file in its directory and
a restart brings the data back.

Without a ``redis-server`` binary, :meth:`RedisServer.start` raises
:class:`~rtkit.core.exceptions.ServerError` saying how to install one
(``apt-get install redis-server``; Binder installs what ``binder/apt.txt`` lists).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from rtkit.core.exceptions import ServerError
from rtkit.core.resource import Resource, start_managed
from rtkit.core.waiting import wait_until

__all__ = ["INSTALL_HINT", "RedisServer", "find_redis_server", "start_redis"]

INSTALL_HINT = (
    "install it with 'apt-get install redis-server' (Debian, Ubuntu; on Binder it comes "
    "from binder/apt.txt) or 'brew install redis' (macOS), or pass binary='/path/to/redis-server'"
)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def find_redis_server() -> str | None:
    """The ``redis-server`` executable: ``$RTKIT_REDIS_SERVER`` if set, else the
    one on the PATH, else Debian's ``/usr/bin/redis-server``; None if none exists."""
    configured = os.environ.get("RTKIT_REDIS_SERVER")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    """True when a Redis server answers PING on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer(Resource):
    """One ``redis-server`` process on 127.0.0.1 (see the module docstring).

    port         where to listen; 0 (the default) picks a free port
    persistence  keep an append-only file, so a restart keeps the data
    directory    where Redis keeps its files (default: a new temp dir, removed at stop)
    password     require this password (``requirepass``); the URL then carries it
    binary       the ``redis-server`` to run (default: :func:`find_redis_server`)
    """

    kind = "redis"
    stop_rank = 90

    def __init__(
        self,
        *,
        port: int = 0,
        persistence: bool = False,
        directory: str | os.PathLike[str] | None = None,
        password: str | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {port!r}")
        if password is not None and (not isinstance(password, str) or not password or any(c.isspace() for c in password)):
            raise ValueError("password must be a non-empty string without spaces")
        self.port = port
        self.persistence = bool(persistence)
        self.password = password
        self.binary = binary
        self._given_dir = None if directory is None else Path(directory)
        self._own_dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        #: How many times the process was started (1 after start, 2 after one restart, ...).
        self.starts = 0

    # -- what clients need -------------------------------------------------------------
    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (with the password when there is one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    @property
    def directory(self) -> Path:
        if self._given_dir is not None:
            return self._given_dir
        if self._own_dir is None:
            raise ServerError("the Redis server has no directory until it starts")
        return Path(self._own_dir)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- lifecycle ---------------------------------------------------------------------
    def _start(self) -> None:
        binary = self.binary or find_redis_server()
        if binary is None or not os.access(binary, os.X_OK):
            configured = os.environ.get("RTKIT_REDIS_SERVER")
            where = (binary if binary else f"RTKIT_REDIS_SERVER={configured} is not executable" if configured
                     else "not on the PATH")
            raise ServerError(f"redis-server was not found ({where}): {INSTALL_HINT}")
        self.binary = binary
        if self._given_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="rtkit-redis-")
        else:
            self._given_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._launch(pick_port=self.port == 0)
        except BaseException:
            self._cleanup_dir()
            raise

    def _launch(self, *, pick_port: bool) -> None:
        """Start the process and wait until it answers PING (a few tries when the
        port we picked was taken meanwhile)."""
        attempts = 3 if pick_port else 1
        for attempt in range(attempts):
            if pick_port:
                self.port = _free_port()
            proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=self.directory, start_new_session=True,
            )
            try:
                wait_until(lambda p=proc: p.poll() is not None or _ping(self.port), _START_TIMEOUT,  # type: ignore[misc]
                           what=f"redis-server answering on port {self.port}")
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            if proc.poll() is None:
                self._proc = proc
                self.starts += 1
                return
            if attempt == attempts - 1:
                raise ServerError(
                    f"redis-server exited at start (code {proc.returncode}) on port {self.port}: "
                    f"{self._log_tail()}"
                )

    def _command(self) -> list[str]:
        assert self.binary is not None
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--logfile", "redis.log",
            "--daemonize", "no", "--protected-mode", "yes",
        ]
        if self.persistence:
            command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        else:
            command += ["--appendonly", "no", "--save", ""]
        if self.password:
            command += ["--requirepass", self.password]
        return command

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = (self.directory / "redis.log").read_text(errors="replace")
        except OSError:
            return "no log"
        return " | ".join(text.strip().splitlines()[-lines:]) or "empty log"

    def _shutdown_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
            # NOSAVE: without persistence there is nothing to keep; with it the
            # append-only file already holds every write.
            sock.sendall(auth + b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):
                sock.recv(64)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _stop(self) -> None:
        try:
            self._shutdown_process()
        finally:
            self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    # -- faults, for experiments ---------------------------------------------------------
    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would; :meth:`restart` brings it back."""
        if not self.running:
            raise ServerError("the Redis server is not running")
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, *, flush: bool = False) -> None:
        """Stop the process (if it still runs) and start it again on the same port.

        Without persistence it comes back empty, as a Redis that restarted after
        a crash does; with ``flush`` the data is also removed with persistence on."""
        if not self.running:
            raise ServerError("the Redis server is not running; start() it first")
        with self._lifecycle_lock:
            self._shutdown_process()
            if flush:
                for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
                    path = self.directory / name
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    elif path.exists():
                        path.unlink()
            self._launch(pick_port=False)  # redis-server listens with SO_REUSEADDR

    def __repr__(self) -> str:
        where = f" {self.url}" if self.running else ""
        return f"<rtkit RedisServer {self.state.value}{where}>"


def start_redis(*, name: str = "default", **options: object) -> RedisServer:
    """Start a :class:`RedisServer` and return it; one per ``name``: starting again
    stops the previous one first (a re-run notebook cell). ``options`` are
    :class:`RedisServer`'s."""
    return start_managed(RedisServer(**options), name)  # type: ignore[arg-type]
