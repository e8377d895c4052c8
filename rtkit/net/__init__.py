"""What stands between a client and the server, and the baseline without either.

- :mod:`rtkit.net.relay`: the one loopback TCP relay (accept, connect, two pumps
  with a per-chunk hook, half-close passed on, cut, counts, lifecycle);
- :mod:`rtkit.net.tap`: :class:`~rtkit.net.tap.WireTap`, the relay that records
  every chunk (and :func:`~rtkit.net.tap.http_responses` to read them);
- :mod:`rtkit.net.emulator`: :class:`~rtkit.net.emulator.NetworkEmulator`, the
  relay that delays, throttles, stalls, cuts and refuses WebSocket upgrades;
- :mod:`rtkit.net.exchange`: one HTTP request and its answer, byte for byte;
- :mod:`rtkit.net.raw`: the raw TCP push baseline of the benchmark.
"""
