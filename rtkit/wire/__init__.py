"""Pure wire formats: bytes in, values out. No I/O, no asyncio, no Tornado.

Modules: :mod:`rtkit.wire.sse` (Server-Sent Events), :mod:`rtkit.wire.http1`
(incremental HTTP/1.1 response parsing), :mod:`rtkit.wire.wsframes` (WebSocket
handshake and frame inspection), :mod:`rtkit.wire.envelope` (the JSON bodies of
``/poll``, ``/longpoll`` and ``/ws``).
"""
