"""Scaling out: a real Redis for this kernel, and server nodes that share one log in it.

- :func:`start_redis` / :class:`RedisServer`: ``redis-server`` on a free loopback port.
"""

from rtkit.scale.redis import RedisServer, start_redis

__all__ = ["RedisServer", "start_redis"]
