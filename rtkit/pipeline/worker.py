"""A stream processor process: ``python -m rtkit.pipeline.worker --redis URL --run RUN --name W ...``.

One of several workers in the consumer group ``analyzers``. It owns shards by
lease (``SET owner:<shard> <token> NX PX lease``, renewed while it lives): its
own (``shard % workers == index``) from the start, another's once that lease
has lapsed (the other worker died). For each owned shard it:

1. **takes over**: loads the shard's checkpoint and claims every pending entry
   (``XAUTOCLAIM ... 0``: read by a worker, never acknowledged) and feeds them,
   in stream order, to a fresh :class:`~rtkit.pipeline.windows.ShardProcessor`;
2. **reads** new entries: it waits for any (``XREAD BLOCK 100`` after the last
   entry it has, which claims nothing), then takes them with a script that
   checks the lease and runs ``XREADGROUP GROUP analyzers W ... >`` in one
   atomic step, so a worker that lost its lease (paused too long) can never
   take entries away from the shard's new owner;
3. **aggregates** them (the processor, no I/O);
4. **stores** what closed and only then **acknowledges** it, in one atomic
   script (:mod:`rtkit.pipeline.store`) that first checks the lease.

When Redis goes away the worker retries for ``--redis-timeout`` seconds; when
it is back it rebuilds every owned shard from the store (step 1), since it
cannot know which of its last writes arrived. If the run's config is gone
(Redis restarted empty), it exits with code 3 and says so on stderr.

Stage times (read, window closed, stored) go to the ``timing`` stream,
what happened (takeovers, lost leases) to the ``log`` stream.
Exit codes: 0 stopped (SIGTERM or the run's stop), 3 Redis lost the run,
4 Redis unreachable, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from typing import Any

import redis

from rtkit.core.clock import now_ns
from rtkit.pipeline.commit import COMMIT_SCRIPT, LEASE_LOST, commit_args, json_dumps
from rtkit.pipeline.config import PipelineConfig
from rtkit.pipeline.keys import GROUP, RunKeys, connect
from rtkit.pipeline.windows import Checkpoint, Output, ShardProcessor

__all__ = ["EXIT_REDIS_LOST", "EXIT_UNREACHABLE", "Worker", "main"]

EXIT_REDIS_LOST = 3
EXIT_UNREACHABLE = 4
_BLOCK_MS = 100
_TIMING_EVERY_NS = 100_000_000
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_FENCED_READ_SCRIPT = """
-- KEYS: stream, owner, stream, owner, ...; ARGV: token, group, consumer, count
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i + 1]) == ARGV[1] then
    local got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4],
                           'STREAMS', KEYS[i], '>')
    if got then out[#out + 1] = got[1] end
  end
end
return out
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Lost(Exception):
    """Redis lost the run (exit 3)."""


class _Unreachable(Exception):
    """Redis stayed unreachable (exit 4)."""


class Worker:
    """The worker's loop (module doc). ``max_rate``: process at most this many entries
    a second (a slow consumer, for back-pressure experiments; None: as fast as it can)."""

    def __init__(self, url: str, run: str, name: str, index: int, workers: int, *,
                 max_rate: float | None = None, redis_timeout: float = 10.0) -> None:
        self.url, self.name, self.index, self.workers = url, name, index, workers
        self.keys = RunKeys(run)
        self.run = run
        self.max_rate = max_rate
        self.redis_timeout = redis_timeout
        self.token = f"{name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.r = connect(url)
        self.commit = self.r.register_script(COMMIT_SCRIPT)
        self.renew = self.r.register_script(_RENEW_SCRIPT)
        self.release = self.r.register_script(_RELEASE_SCRIPT)
        self.fenced_read = self.r.register_script(_FENCED_READ_SCRIPT)
        self.config: PipelineConfig | None = None
        self.owned: dict[int, ShardProcessor] = {}
        self.stopping = False
        self.fed = 0
        self._timing: dict[str, list[Any]] = {"reads": [], "claims": [], "windows": []}
        self._timing_at = 0
        self._finished: list[int] = []  # shards finished whose times are not sent yet
        self._lease_at = 0.0
        self._rate_began = 0.0
        self._rate_count = 0

    # -- the loop ------------------------------------------------------------------------
    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        try:
            self._guarded(self._load_config)
            while not self.stopping:
                self._guarded(self._step)
            self._guarded(self._flush_timing)
            self._guarded(self._release_all)
            return 0
        except _Lost as exc:
            print(f"rtkit pipeline worker {self.name}: {exc}", file=sys.stderr, flush=True)
            return EXIT_REDIS_LOST
        except _Unreachable as exc:
            print(f"rtkit pipeline worker {self.name}: {exc}", file=sys.stderr, flush=True)
            return EXIT_UNREACHABLE

    def _on_term(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _guarded(self, step: Any) -> None:
        """Run ``step``; on a lost connection wait for Redis, then rebuild every owned shard."""
        try:
            step()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._wait_for_redis(exc)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise _Lost(f"the consumer group is gone from {self.url}: Redis lost the run "
                            f"{self.run!r} (restarted empty or flushed)") from None
            raise

    def _wait_for_redis(self, exc: BaseException) -> None:
        deadline = time.monotonic() + self.redis_timeout
        delay = 0.05
        while True:
            try:
                self.r.ping()
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline or self.stopping:
                    raise _Unreachable(f"Redis at {self.url} unreachable for "
                                       f"{self.redis_timeout:g} s ({exc})") from None
                time.sleep(delay)  # a reconnection cadence, growing
                delay = min(delay * 2, 0.5)
        if not self.r.exists(self.keys.config):
            raise _Lost(f"Redis at {self.url} came back without the run {self.run!r} "
                        f"(restarted without persistence, or flushed): its streams and "
                        f"window state are gone")
        shards = sorted(self.owned)
        self.owned.clear()  # which of the last writes arrived is unknown: rebuild from the store
        self._note("reconnected", f"Redis back; rebuilding shards {shards} from the store")
        self._lease_at = 0.0

    def _load_config(self) -> None:
        text = self.r.get(self.keys.config)
        if text is None:
            raise _Lost(f"no config for run {self.run!r} in Redis at {self.url}")
        self.config = PipelineConfig.from_json(text)

    def _step(self) -> None:
        assert self.config is not None
        if time.monotonic() - self._lease_at >= self.config.lease_ms / 4000:
            self._leases()
            self._status()
        if not self.owned:
            time.sleep(self.config.lease_ms / 4000)  # a standby's cadence of looking for work
            return
        shards = sorted(self.owned)
        after = {self.keys.shard(s): self.owned[s].last_entry or "0-0" for s in shards}
        if self.r.xread(after, count=1, block=_BLOCK_MS):  # wait for new entries, take none
            keys = [k for s in shards for k in (self.keys.shard(s), self.keys.owner(s))]
            reply = self.fenced_read(keys=keys, args=[self.token, GROUP, self.name,
                                                      self.config.read_count])
        else:
            reply = []
        read_ns = now_ns()
        outputs: dict[int, Output] = {}
        count = 0
        for stream, entries in reply:
            shard = int(stream.decode().rsplit(":", 1)[1])
            proc = self.owned.get(shard)
            if proc is None or not entries:
                continue
            for entry_id, flat in entries:
                self._feed(proc, entry_id.decode(), dict(zip(flat[::2], flat[1::2])) if flat else None)
            count += len(entries)
            self._timing["reads"].append([shard, entries[0][0].decode(), entries[-1][0].decode(),
                                          read_ns, len(entries)])
        for shard, proc in self.owned.items():
            outputs[shard] = proc.take(now_ns())
        self._commit(outputs)
        self._throttle(count)
        if now_ns() - self._timing_at >= _TIMING_EVERY_NS:
            self._flush_timing()

    def _feed(self, proc: ShardProcessor, entry: str, fields: dict[bytes, bytes] | None) -> None:
        self.fed += 1
        if not fields:  # an entry trimmed away while pending: nothing left to read
            return
        if b"eos" in fields:
            proc.end_of_stream(entry)
        else:
            proc.feed(entry, fields.get(b"d", b""))

    def _throttle(self, count: int) -> None:
        if self.max_rate is None or count == 0:
            return
        now = time.monotonic()
        if now - self._rate_began > 1.0:
            self._rate_began, self._rate_count = now, 0
        self._rate_count += count
        ahead = self._rate_count / self.max_rate - (now - self._rate_began)
        if ahead > 0:
            time.sleep(ahead)  # the modelled slowness of a slow consumer

    # -- writing -------------------------------------------------------------------------
    def _commit(self, outputs: dict[int, Output]) -> None:
        assert self.config is not None
        todo = [(s, out) for s, out in outputs.items() if not out.empty]
        if not todo:
            return
        pipe = self.r.pipeline(transaction=False)
        for shard, out in todo:
            ks, argv = commit_args(self.keys, shard, self.token, out, recent=self.config.recent,
                                   run=self.run)
            self.commit(keys=ks, args=argv, client=pipe)
        results = pipe.execute(raise_on_error=False)
        stored_ns = now_ns()
        for (shard, out), result in zip(todo, results):
            if isinstance(result, redis.ResponseError):
                if str(result).startswith(LEASE_LOST):
                    self.owned.pop(shard, None)
                    self._note("lease lost", f"shard {shard} is no longer mine: dropped its state")
                    continue
                raise result
            self._timing["windows"] += [[w.key, w.start_ns, w.closed_ns, stored_ns, shard]
                                        for w in out.windows]
            if out.finished:
                self._finished.append(shard)
        if self._finished:  # the run's end waits for these times: send them now
            self._flush_timing()

    def _flush_timing(self) -> None:
        self._timing_at = now_ns()
        if not any(self._timing.values()) and not self._finished:
            return
        doc = json_dumps({"w": self.name, **self._timing})
        self.r.xadd(self.keys.timing, {"j": doc})
        self._timing = {"reads": [], "claims": [], "windows": []}
        if self._finished:
            self.r.sadd(self.keys.timed, *self._finished)
            self._finished = []

    # -- owning shards ---------------------------------------------------------------------
    def _leases(self) -> None:
        assert self.config is not None
        self._lease_at = time.monotonic()
        lease = self.config.lease_ms
        for shard in sorted(self.owned):
            if not self.renew(keys=[self.keys.owner(shard)], args=[self.token, lease]):
                self.owned.pop(shard)
                self._note("lease lost", f"shard {shard} is no longer mine: dropped its state")
        for shard in range(self.config.shards):
            if shard in self.owned:
                continue
            mine = shard % self.workers == self.index
            if not mine and not self.r.exists(self.keys.ever(shard)):
                continue  # its own worker has not started yet
            owner = self.keys.owner(shard)
            # Still mine after a reconnect (renewed), or free (taken):
            if self.renew(keys=[owner], args=[self.token, lease]) or self.r.set(
                    owner, self.token, nx=True, px=lease):
                self._take_over(shard, mine)

    def _take_over(self, shard: int, mine: bool) -> None:
        """Own ``shard``: its checkpoint, then every pending entry in stream order."""
        assert self.config is not None
        self.r.set(self.keys.ever(shard), 1)
        text = self.r.hget(self.keys.checkpoint, shard)
        checkpoint = Checkpoint.from_text(text) if text else None
        proc = ShardProcessor(self.config, shard, checkpoint)
        start, claimed, trimmed = "0-0", 0, 0
        while True:
            reply = self.r.xautoclaim(self.keys.shard(shard), GROUP, self.name, 0, start,
                                      count=self.config.read_count)
            next_start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            read_ns = now_ns()
            for entry_id, fields in entries:
                self._feed(proc, entry_id.decode(), fields)
            if entries:
                self._timing["claims"].append([shard, [e[0].decode() for e in entries], read_ns])
            claimed += len(entries)
            trimmed += len(deleted)
            start = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
            if start == "0-0":
                break
        if trimmed:
            self.r.hincrby(self.keys.trimmed, str(shard), trimmed)
        self.owned[shard] = proc
        self._commit({shard: proc.take(now_ns())})
        if self.r.sismember(self.keys.done, shard):  # finished before its owner died: say so
            self._finished.append(shard)
            self._flush_timing()
        if claimed or not mine or checkpoint is not None:
            self._note("took over", f"shard {shard}: {claimed} pending entries claimed "
                       f"({proc.replayed} before its checkpoint), {trimmed} trimmed away")

    def _release_all(self) -> None:
        for shard in list(self.owned):
            self.release(keys=[self.keys.owner(shard)], args=[self.token])
        self.owned.clear()

    # -- telling -----------------------------------------------------------------------------
    def _note(self, what: str, detail: str) -> None:
        self.r.xadd(self.keys.log, {"j": json_dumps({"worker": self.name, "what": what,
                                                      "detail": detail, "at_ns": now_ns()})})

    def _status(self) -> None:
        doc = {"pid": os.getpid(), "shards": sorted(self.owned), "fed": self.fed, "at_ns": now_ns(),
               "open_windows": sum(p.open_windows for p in self.owned.values())}
        self.r.hset(self.keys.workers, self.name, json_dumps(doc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtkit.pipeline.worker",
                                     description="one stream processor of an rtkit pipeline run")
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT of the run")
    parser.add_argument("--run", required=True, help="the run's name")
    parser.add_argument("--name", required=True, help="this worker's consumer name")
    parser.add_argument("--index", type=int, required=True, help="this worker's index (0-based)")
    parser.add_argument("--workers", type=int, required=True, help="how many workers the run has")
    parser.add_argument("--max-rate", type=float, default=None, help="entries/s at most (a slow consumer)")
    parser.add_argument("--redis-timeout", type=float, default=10.0, help="seconds to wait for Redis")
    args = parser.parse_args(argv)
    if not 0 <= args.index < args.workers:
        parser.error(f"--index must be in [0, {args.workers - 1}]")
    worker = Worker(args.redis, args.run, args.name, args.index, args.workers,
                    max_rate=args.max_rate, redis_timeout=args.redis_timeout)
    return worker.run_forever()


if __name__ == "__main__":
    sys.exit(main())
