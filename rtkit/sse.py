"""Public home of the SSE codec (see rtkit.wire.sse)."""

from rtkit.wire.sse import Event, SSEDecoder, encode, encode_comment

__all__ = ["Event", "SSEDecoder", "encode", "encode_comment"]
