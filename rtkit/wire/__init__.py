"""Pure wire formats: bytes in, values out. No I/O, no asyncio, no Tornado.

Modules: :mod:`rtkit.wire.sse` (Server-Sent Events), :mod:`rtkit.wire.wsframes`
(WebSocket handshake and frame inspection), :mod:`rtkit.wire.envelope` (the JSON
bodies of ``/poll``, ``/longpoll`` and ``/ws``). HTTP/1.1 itself is h11's
(:mod:`rtkit.clients.http`).
"""
