"""What a pipeline run raises when it cannot go on (beside ``ValueError`` for bad settings).

    RtkitError
    └── PipelineError          a pipeline run failed; the message says where and why
        └── RedisLost          Redis came back without the run's data (restarted empty,
                               flushed) or stayed unreachable: the run cannot continue
"""

from __future__ import annotations

from rtkit.core.exceptions import RtkitError

__all__ = ["PipelineError", "RedisLost"]


class PipelineError(RtkitError):
    """A pipeline run failed (a worker, the producer, the delivery); the message says which."""


class RedisLost(PipelineError):
    """Redis lost the run's streams and state (a restart without persistence, a flush) or
    stayed unreachable: the message names the URL and what to do."""
