"""One server node as a process: ``python -m rtkit.scale.node --redis URL --port P``.

The node is an ordinary :class:`rtkit.Server` whose log is the Redis Streams log
(``ServerConfig(redis=URL)``); without ``--redis`` its log is in its own memory (a
node alone, the baseline that several nodes on Redis are compared with). It serves until it gets SIGTERM or SIGINT, or its
standard input closes (the process that started it went away), then stops its
server and exits 0; a start that fails prints the reason to stderr and exits 2.
The import is light: the server and the Redis client, no pandas or matplotlib.
:func:`rtkit.scale.start_nodes` starts and watches these processes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rtkit.scale.node",
                                description="An rtkit server node whose log is shared through Redis Streams.")
    p.add_argument("--redis", help="the Redis URL (redis://[:password@]host:port, rediss://...); "
                                   "without it, the log is in this process's memory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    p.add_argument("--topic", action="append", default=[], help="a topic to declare (repeatable)")
    p.add_argument("--capacity", type=int, help="events retained per topic")
    p.add_argument("--history-bytes", type=int, help="payload bytes retained per topic")
    p.add_argument("--allowed-host", action="append", default=[], help="a Host header to accept besides loopback")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rtkit.core.exceptions import RtkitError
    from rtkit.server import Server, ServerConfig

    settings: dict[str, object] = {"host": args.host, "port": args.port}
    if args.redis:
        settings["redis"] = args.redis
    if args.topic:
        settings["topics"] = tuple(args.topic)
    if args.capacity is not None:
        settings["capacity"] = args.capacity
    if args.history_bytes is not None:
        settings["history_bytes"] = args.history_bytes
    if args.allowed_host:
        settings["allowed_hosts"] = tuple(args.allowed_host)
    try:
        server = Server(ServerConfig(**settings)).start()  # type: ignore[arg-type]
    except (RtkitError, ValueError, TypeError) as exc:
        print(f"rtkit node could not start: {exc}", file=sys.stderr, flush=True)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        done.set()  # the parent is gone (or closed our stdin): stop

    threading.Thread(target=watch_stdin, name="rtkit-node-stdin", daemon=True).start()
    print(f"rtkit node serving {server.url}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
