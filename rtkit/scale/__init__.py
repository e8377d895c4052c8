"""Scaling out: a real Redis for this kernel, and server nodes that share one log in it.

- :func:`start_redis` / :class:`RedisServer`: ``redis-server`` on a free loopback port;
- :func:`start_nodes` / :class:`NodeSet`: server processes (``python -m rtkit.scale.node``)
  whose log is the Redis Streams log (:class:`rtkit.log.redis.RedisLog`); an in-kernel
  node is ``rtkit.start_server(name=..., redis=url)``.
"""

from rtkit.scale.nodes import NodeSet, start_nodes
from rtkit.scale.redis import RedisServer, start_redis

__all__ = ["NodeSet", "RedisServer", "start_nodes", "start_redis"]
