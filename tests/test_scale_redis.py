"""rtkit.scale.start_redis: a real redis-server on a free port, its lifecycle, and the missing-binary error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from conftest import refuses_connections

from rtkit.core.exceptions import ServerError
from rtkit.scale import RedisServer, start_redis
from rtkit.scale.redis import find_redis_server

needs_redis = pytest.mark.skipif(find_redis_server() is None, reason="redis-server is not installed")


def test_missing_binary_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-redis-server"
    with pytest.raises(ServerError, match=r"redis-server was not found.*apt-get install redis-server.*binder/apt.txt"):
        RedisServer(binary=str(missing)).start()
    monkeypatch.setenv("RTKIT_REDIS_SERVER", str(missing))
    assert find_redis_server() is None
    with pytest.raises(ServerError, match="RTKIT_REDIS_SERVER"):
        RedisServer().start()
    assert not list(tmp_path.iterdir())  # a failed start leaves nothing behind


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="port"):
        RedisServer(port=70000)
    with pytest.raises(ValueError, match="password"):
        RedisServer(password="has space")


@pytest.mark.redis
@needs_redis
def test_start_restart_stop() -> None:
    server = start_redis(name="test-scale")
    try:
        directory = server.directory
        assert server.url == f"redis://127.0.0.1:{server.port}"
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        port = server.port
        server.restart()  # a crash and a restart: same port, empty without persistence
        assert server.port == port and server.starts == 2
        assert redis.Redis.from_url(server.url).get("k") is None
        # one per name: starting again stops the previous one
        again = start_redis(name="test-scale")
        assert not server.running and again.running and again.port != 0
        assert not directory.exists()  # its temp dir went with it
        again.stop()
        again.stop()  # idempotent
        assert refuses_connections(again.port)
    finally:
        server.stop()


@pytest.mark.redis
@needs_redis
def test_kill_then_restart_and_persistence(tmp_path: Path) -> None:
    with RedisServer(persistence=True, directory=tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.restart()
        assert redis.Redis.from_url(server.url).get("k") == b"v"  # the append-only file kept it
        server.kill()
        assert refuses_connections(server.port)
        server.restart(flush=True)
        assert redis.Redis.from_url(server.url).get("k") is None
    assert os.path.isdir(tmp_path)  # a directory it was given stays
