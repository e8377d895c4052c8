"""rtkit.scale.bench at tiny sizes, against a real redis-server: every figure's function runs,
with its in-memory baseline, and what it counts is right (no speed is asserted)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from rtkit.scale import NodeSet, RedisServer
from rtkit.scale.bench import fanout_on_nodes, hop_latency, publish_throughput

pytestmark = pytest.mark.redis


def test_publish_throughput_through_redis_and_into_memory(redis_server: RedisServer) -> None:
    shared = publish_throughput(redis_server.url, processes=2, seconds=0.3, burst=50)
    assert shared["store"] == "redis" and shared["events"] > 0 and shared["every_id_once"]
    assert len(shared["per_process"]) == 2
    alone = publish_throughput(None, processes=2, seconds=0.3, burst=50)
    assert alone["store"] == "memory" and alone["events"] > 0 and alone["every_id_once"]


def test_fanout_on_two_redis_nodes_and_on_one_memory_node(redis_server: RedisServer) -> None:
    two = fanout_on_nodes(redis_server.url, per_transport=4, nodes=2, rate=10, seconds=0.5, processes_per_node=1)
    assert two["store"] == "redis" and two["subscribers"] == 8 and two["everything_delivered"]
    assert two["delivered"] == 8 * two["messages"]
    # the nodes' CPU in the round: measured (a few events may take less than one clock tick)
    assert 0 <= two["nodes_cpu_s"] < two["round_s"] * 2 * os.cpu_count()
    one = fanout_on_nodes(None, nodes=1, per_transport=4, rate=10, seconds=0.5, processes_per_node=1)
    assert one["store"] == "memory" and one["everything_delivered"] and one["delivered"] == 8 * one["messages"]
    with pytest.raises(ValueError, match="one node"):
        fanout_on_nodes(None, nodes=2)


def test_hop_latency_counts_every_message(redis_server: RedisServer) -> None:
    hop = hop_latency(redis_server.url, transports=("sse",), rate=100, seconds=0.3, rounds=1)
    assert hop["sse"]["messages"] == 30
    assert hop["sse"]["memory_p50_ms"] > 0 and hop["sse"]["redis_p50_ms"] > 0


def test_a_node_set_without_redis_is_one_node() -> None:
    with pytest.raises(ValueError, match="only through Redis"):
        NodeSet(2, redis=None)
    with pytest.raises(ValueError, match="Redis URL"):
        NodeSet(1, redis="localhost:6379")


def test_helpers_run_this_rtkit_whatever_the_working_directory(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    decoy = tmp_path / "rtkit"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy rtkit was imported')\n")
    monkeypatch.chdir(tmp_path)
    assert publish_throughput(None, processes=1, seconds=0.1, burst=10)["events"] > 0
