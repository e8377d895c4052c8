"""The atomic commit of one batch of a shard's output: one Lua script, run by Redis at once.

It first checks that the worker still owns the shard (its lease: a worker that
lost it, paused too long, writes nothing), then writes every closed window
keyed by ``(key, start)`` (so writing it again changes nothing), the latest
window per key and the recent windows, the alerts, the late events and dead
letters, the outbox entries for delivery, the checkpoint, and only then
acknowledges (XACK) the entries those writes cover. Either all of it happens
or none: Kafka's transactional producer and Flink's two-phase commit sink give
the same guarantee, the exactly-once *effect* on an at-least-once engine.

Keys beyond ``KEYS`` (a key's ``recent:<key>`` set) are built in the script:
fine on one Redis, not on a Redis Cluster (which would need hash tags).
"""

from __future__ import annotations

import json
from typing import Any

from rtkit.pipeline.keys import GROUP, RunKeys
from rtkit.pipeline.windows import Output

__all__ = ["COMMIT_SCRIPT", "LEASE_LOST", "commit_args", "json_dumps"]

#: The start of the error a commit answers when the worker no longer owns the shard.
LEASE_LOST = "LEASE"
_ACK_CHUNK = 1000  # ids per XACK call inside the script (Lua's unpack has a limit)
_OUT_MAXLEN = 200_000

COMMIT_SCRIPT = """
-- KEYS: owner, checkpoint, agg, latest, latest_start, out, late, dead, shard stream, alerts, done
-- ARGV: token, shard, checkpoint, group, recent prefix, recent keep, finished, out maxlen,
--       then counted lists: windows (key, start, json), alerts (field, json), late (json),
--       dead (json), acks (entry id)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE shard ' .. ARGV[2] .. ' is no longer owned by this worker')
end
local i = 9
local n = tonumber(ARGV[i]); i = i + 1
local keep = tonumber(ARGV[6])
for _ = 1, n do
  local key, start, doc = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
  redis.call('HSET', KEYS[3], key .. '|' .. start, doc)
  local newest = redis.call('HGET', KEYS[5], key)
  if (not newest) or tonumber(newest) <= tonumber(start) then
    redis.call('HSET', KEYS[5], key, start)
    redis.call('HSET', KEYS[4], key, doc)
  end
  local recent = ARGV[5] .. key
  redis.call('ZREMRANGEBYSCORE', recent, start, start)
  redis.call('ZADD', recent, start, doc)
  redis.call('ZREMRANGEBYRANK', recent, 0, -(keep + 1))
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*', 't', 'window', 'j', doc)
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[10], ARGV[i], ARGV[i + 1])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*', 't', 'alert', 'j', ARGV[i + 1])
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('XADD', KEYS[7], '*', 'j', ARGV[i])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*', 't', 'late', 'j', ARGV[i])
  i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('XADD', KEYS[8], '*', 'j', ARGV[i])
  i = i + 1
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
if ARGV[7] == '1' then
  redis.call('SADD', KEYS[11], ARGV[2])
end
n = tonumber(ARGV[i]); i = i + 1
local acked = 0
local chunk = {}
for _ = 1, n do
  chunk[#chunk + 1] = ARGV[i]; i = i + 1
  if #chunk == ACK_CHUNK then
    acked = acked + redis.call('XACK', KEYS[9], ARGV[4], unpack(chunk)); chunk = {}
  end
end
if #chunk > 0 then
  acked = acked + redis.call('XACK', KEYS[9], ARGV[4], unpack(chunk))
end
return acked
""".replace("ACK_CHUNK", str(_ACK_CHUNK))


def json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def commit_args(keys: RunKeys, shard: int, token: str, out: Output, *, recent: int,
                run: str) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of :data:`COMMIT_SCRIPT` for ``out`` (one shard's output)."""
    ks = [keys.owner(shard), keys.checkpoint, keys.agg, keys.latest, keys.latest_start, keys.out,
          keys.late, keys.dead, keys.shard(shard), keys.alerts, keys.done]
    argv: list[Any] = [token, shard, out.checkpoint.to_text() if out.checkpoint else "", GROUP,
                       keys.recent_prefix, recent, "1" if out.finished else "0", _OUT_MAXLEN]
    argv.append(len(out.windows))
    for w in out.windows:
        argv += [w.key, w.start_ns, json_dumps({**w.to_dict(), "run": run})]
    argv.append(len(out.alerts))
    for a in out.alerts:
        argv += [f"{a.key}|{a.start_ns}", json_dumps({**a.to_dict(), "run": run})]
    argv.append(len(out.late))
    argv += [json_dumps({**e.to_dict(), "run": run}) for e in out.late]
    argv.append(len(out.dead))
    argv += [json_dumps(d.to_dict()) for d in out.dead]
    argv.append(len(out.acks))
    argv += out.acks
    return ks, argv
