"""Where the Redis log keeps things in Redis, and the scripts that write them.

The layout (``P`` is the key prefix, ``rtkit:`` by default; ``T`` a topic name,
which :data:`rtkit.core.api.TOPIC_RULE` keeps free of ``:``):

=====================  ======  ===============================================================
key                    type    what it holds
=====================  ======  ===============================================================
``P topics``           zset    every topic, scored by the order it came to exist
``P topics:seq``       string  the counter behind that order
``P topics:log``       stream  one entry ``{topic, epoch}`` per topic made (how other nodes learn of it)
``P generation``       string  a token of this Redis's data set; missing or new after a flush or an
                               empty restart
``P topic:T``          hash    ``epoch``, ``last_id``, ``first`` (oldest retained id), ``bytes`` retained
``P stream:T``         stream  the events: entry id ``0-N`` for rtkit id N, fields ``d`` (the payload's
                               JSON), ``p`` (``published_ns``) and ``e`` (the topic's epoch then)
``P wake:NODE``        stream  written to wake one node's follower out of its blocking read
=====================  ======  ===============================================================

Entry ids ``0-N`` make a stream id and an rtkit id the same number, so "every
event after N" is ``XRANGE P stream:T (0-N +`` and ``XREAD ... 0-N``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["APPEND_SCRIPT", "RENEW_EPOCH_SCRIPT", "TOO_MANY_TOPICS", "Keys", "entry_id", "rtkit_id"]

#: The error the script answers when a new topic would be one too many.
TOO_MANY_TOPICS = "RTKIT_TOO_MANY_TOPICS"


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names under one prefix (see the module docstring)."""

    prefix: str = "rtkit:"

    @property
    def topics(self) -> str:
        return f"{self.prefix}topics"

    @property
    def topics_seq(self) -> str:
        return f"{self.prefix}topics:seq"

    @property
    def topics_log(self) -> str:
        return f"{self.prefix}topics:log"

    @property
    def generation(self) -> str:
        return f"{self.prefix}generation"

    def meta(self, topic: str) -> str:
        return f"{self.prefix}topic:{topic}"

    def stream(self, topic: str) -> str:
        return f"{self.prefix}stream:{topic}"

    def wake(self, node: str) -> str:
        return f"{self.prefix}wake:{node}"

    def append_keys(self, topic: str) -> list[str]:
        """The KEYS of :data:`APPEND_SCRIPT`, in its order."""
        return [self.topics, self.topics_seq, self.topics_log, self.generation,
                self.meta(topic), self.stream(topic)]


def entry_id(event_id: int) -> str:
    """The stream entry id of rtkit id ``event_id``."""
    return f"0-{event_id}"


def rtkit_id(entry: str | bytes) -> int:
    """The rtkit id of stream entry id ``entry`` (``"0-N"`` → N)."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[2])


# One call appends a batch of events to one topic, atomically: Redis runs a
# script to the end before serving anyone else, so the ids it hands out are
# strictly increasing across every node and process (docs/design.md, section 8:
# "a Lua script: INCR then XADD with the id"). With no events it only makes the
# topic exist. Then it trims the stream exactly as the memory log trims its ring:
# drop the oldest while more than `capacity` events or `max_bytes` payload bytes
# are retained, always keeping the newest.
#
# KEYS: topics, topics:seq, topics:log, generation, topic:T, stream:T
# ARGV: topic, candidate epoch, candidate generation, max_topics, capacity,
#       max_bytes (0: unbounded), then data_1, published_ns_1, data_2, ...
# Returns {first new id (0 when no events), epoch, first retained id}.
APPEND_SCRIPT = """
local topics, topics_seq, topics_log, generation, meta, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local topic, new_epoch, new_generation = ARGV[1], ARGV[2], ARGV[3]
local max_topics, capacity, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

redis.call('SET', generation, new_generation, 'NX')
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  if redis.call('ZSCORE', topics, topic) == false and redis.call('ZCARD', topics) >= max_topics then
    return redis.error_reply('""" + TOO_MANY_TOPICS + """ ' .. max_topics)
  end
  epoch = new_epoch
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'last_id', 0, 'first', 1, 'bytes', 0)
  if redis.call('ZSCORE', topics, topic) == false then
    redis.call('ZADD', topics, redis.call('INCR', topics_seq), topic)
  end
  redis.call('XADD', topics_log, 'MAXLEN', '~', 1000, '*', 'topic', topic, 'epoch', epoch)
end

local n = (#ARGV - 6) / 2
if n == 0 then
  return {0, epoch, tonumber(redis.call('HGET', meta, 'first'))}
end
local first_new = redis.call('HINCRBY', meta, 'last_id', n) - n + 1
local added = 0
for i = 0, n - 1 do
  local data = ARGV[7 + 2 * i]
  redis.call('XADD', stream, '0-' .. (first_new + i), 'd', data, 'p', ARGV[8 + 2 * i], 'e', epoch)
  added = added + #data
end
local bytes = redis.call('HINCRBY', meta, 'bytes', added)
local first = tonumber(redis.call('HGET', meta, 'first'))
local retained = redis.call('XLEN', stream)
if retained > capacity or (max_bytes > 0 and bytes > max_bytes) then
  local dropped, dropped_bytes, keep_from, from = 0, 0, nil, '-'
  -- read what is surely dropped and the one after it (a steady append of one event
  -- reads two entries), then more while the byte bound still says drop
  local count = math.min(256, math.max(retained - capacity, 0) + 1)
  while not keep_from do
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', count)
    count = 256
    for _, entry in ipairs(batch) do
      local left = retained - dropped
      if left > 1 and (left > capacity or (max_bytes > 0 and bytes - dropped_bytes > max_bytes)) then
        dropped = dropped + 1
        dropped_bytes = dropped_bytes + #entry[2][2]
      else
        keep_from = entry[1]
        break
      end
    end
    if not keep_from then from = '(' .. batch[#batch][1] end
  end
  redis.call('XTRIM', stream, 'MINID', keep_from)
  first = tonumber(string.sub(keep_from, 3))
  redis.call('HSET', meta, 'first', first)
  redis.call('HINCRBY', meta, 'bytes', -dropped_bytes)
end
return {first_new, epoch, first}
"""

# Give a topic a new epoch when its history in Redis went back (a Redis restored
# from an older copy: an append-only file that lost its last second, a backup),
# so its ids would be handed out again for other events: every node then loads
# it again and tells its clients, as for a flush. Only if the epoch is still the
# one that was found wanting (another node may have renewed it already).
#
# KEYS: topic:T, topics:log     ARGV: topic, the old epoch, a candidate new epoch
# Returns the topic's epoch now.
RENEW_EPOCH_SCRIPT = """
local meta, topics_log = KEYS[1], KEYS[2]
local topic, old_epoch, new_epoch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', meta, 'epoch') == old_epoch then
  redis.call('HSET', meta, 'epoch', new_epoch)
  redis.call('XADD', topics_log, 'MAXLEN', '~', 1000, '*', 'topic', topic, 'epoch', new_epoch)
end
return redis.call('HGET', meta, 'epoch')
"""
