"""Foundations every other part of rtkit builds on (standard library only).

- :mod:`rtkit.core.clock`: the one clock every timestamp is read from;
- :mod:`rtkit.core.loopthread`: an asyncio loop in a daemon thread, and its one door;
- :mod:`rtkit.core.exceptions`: the error tree, rooted at ``RtkitError``;
- :mod:`rtkit.core.resource`: start/stop/running/with for every resource, one per name;
- :mod:`rtkit.core.waiting`: waiting on a condition, never on a fixed sleep;
- :mod:`rtkit.core.transports`: the one table of transports;
- :mod:`rtkit.core.api`: the one table of routes, parameters and limits;
- :mod:`rtkit.core.records`: the receipt and gap records every client produces.
"""
