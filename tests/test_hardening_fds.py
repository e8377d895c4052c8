"""Issue 10, item 3: file descriptors.

The server holds at most ``max_connections`` (below the open-file limit) and
answers the rest 503 with the JSON error; it raises the soft open-file limit to
the hard one at start; out of descriptors it backs off instead of spinning and
printing tracebacks, and serves again once descriptors are free; idle,
header-less and half-sent connections are timed out. The limits are process
wide, so the tests that change them run a server in a subprocess.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import PROMPT, MakeServer, request

import rtkit


def idle_socket(server: rtkit.Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def get_on(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or (b"Content-Length" in answer and not answer.endswith(b"}")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


# ----------------------------------------------------------------------------- the cap


def test_connections_past_the_cap_get_a_json_503_and_the_server_recovers(
    make_server: MakeServer,
) -> None:
    server = make_server(max_connections=20)
    held = [idle_socket(server) for _ in range(20)]
    try:
        wait_until(lambda: server.stats()["open_connections"] >= 20, message="20 held")
        with idle_socket(server) as extra:
            answer = get_on(extra)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"application/json" in head
        error = json.loads(body)["error"]
        assert "20 connections" in error and "max_connections" in error
        assert server.stats()["refused_connections"] >= 1
        for sock in held[:5]:
            sock.close()
        wait_until(lambda: server.stats()["open_connections"] <= 15, message="five let go")
        assert request(server, "GET", "/poll").status == 200
    finally:
        for sock in held:
            sock.close()


def test_max_connections_must_stay_below_the_open_file_limit() -> None:
    with pytest.raises(rtkit.ServerError, match="open-file limit"):
        rtkit.Server(max_connections=10**7).start()


def test_stats_report_the_budget(make_server: MakeServer) -> None:
    server = make_server(max_connections=50)
    stats = server.stats()
    assert stats["max_connections"] == 50
    assert stats["open_connections"] >= 0 and stats["refused_connections"] == 0


# ----------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("sent", [
    b"",  # header-less
    b"GET /poll HTTP/1.1\r\nHost: 127",  # half a head
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc",  # half a body
])
def test_idle_and_half_sent_connections_are_closed(make_server: MakeServer, sent: bytes) -> None:
    server = make_server(idle_timeout=0.5)
    with idle_socket(server) as sock:
        sock.sendall(sent)
        sock.settimeout(PROMPT + 2)
        started = time.monotonic()
        while sock.recv(65536):  # whatever the server says, then its end of the connection
            pass
        assert time.monotonic() - started >= 0.4  # not before the timeout
    wait_until(lambda: server.stats()["open_connections"] == 0, message="the descriptor is free")
    assert server.log.last_id == 0


def test_an_idle_keep_alive_connection_is_closed(make_server: MakeServer) -> None:
    server = make_server(idle_timeout=0.5)
    with idle_socket(server) as sock:
        assert get_on(sock).startswith(b"HTTP/1.1 200 ")
        sock.settimeout(PROMPT + 2)
        assert sock.recv(65536) == b""  # closed by the server, not by us


# ----------------------------------------------------------------------------- the limit itself

SERVER_SCRIPT = textwrap.dedent(r"""
    import json, os, resource, sys, time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
    import rtkit
    server = rtkit.Server().start()
    print(json.dumps({"port": server.port, "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                      "max": server.stats().get("max_connections")}), flush=True)
    hog = []
    for line in sys.stdin:
        if line.strip() == "hog":  # take every descriptor left, as other code in a kernel might
            try:
                while True:
                    hog.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            cpu = server.cpu_seconds()
            print(json.dumps({"hogged": len(hog), "cpu": cpu}), flush=True)
        elif line.strip() == "cpu":
            print(json.dumps({"cpu": server.cpu_seconds()}), flush=True)
        elif line.strip() == "free":
            for fd in hog:
                os.close(fd)
            hog = []
            print(json.dumps({"freed": True}), flush=True)
    server.stop()
""")


def spawn(soft: int, hard: int) -> tuple[subprocess.Popen[str], dict[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(soft), str(hard)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else "no output"
    return proc, json.loads(line)


def ask(proc: subprocess.Popen[str], command: str) -> dict[str, object]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]


def finish(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.close()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stderr.read()


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    proc, started = spawn(256, hard)
    try:
        assert started["soft"] == hard
        assert started["max"] is not None and started["max"] < hard  # the cap stays below the limit
    finally:
        assert "Traceback" not in finish(proc)


def test_out_of_descriptors_the_server_backs_off_quietly_and_recovers() -> None:
    proc, started = spawn(300, 300)
    try:
        hogged = ask(proc, "hog")
        assert int(hogged["hogged"]) > 0  # type: ignore[call-overload]
        cpu_before = float(hogged["cpu"])  # type: ignore[arg-type]
        sock = socket.create_connection(("127.0.0.1", started["port"]), timeout=30)
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        window = 1.5
        time.sleep(window)  # the time over which a spinning accept loop would burn the CPU
        cpu = float(ask(proc, "cpu")["cpu"]) - cpu_before  # type: ignore[arg-type]
        assert cpu < 0.5 * window, f"the server thread used {cpu:.2f} s of CPU in {window} s"
        ask(proc, "free")
        sock.settimeout(PROMPT + 5)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]  # served once descriptors are free
        sock.close()
    finally:
        errors = finish(proc)
    assert "Traceback" not in errors and "Too many open files" not in errors, errors[:2000]
