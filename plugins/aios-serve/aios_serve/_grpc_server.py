"""gRPC's transport for the protocol's gRPC form: unary calls over cleartext HTTP/2 (h2c), in the server's event loop.

Why not grpcio's server: a do-nothing grpc.aio (or thread-pool) servicer costs 250-400 us
of server CPU per call before any model code runs, two to three times aios-serve's whole
binary HTTP inference (benchmarks/serve/PROTOCOLS.md); the time goes to grpcio's Python
layers (the completion queue's hand-offs between threads and tasks), not to HTTP/2.
This module is the part of HTTP/2 and gRPC a unary service needs, as an asyncio protocol
like uvicorn's HTTP/1.1 one: a do-nothing call costs about what a do-nothing HTTP request
does. Header compression is python-hyper's ``hpack`` (decoding, with its dynamic table;
answers' headers are encoded by it once, never indexed, so they are constant bytes);
messages are protobuf, decoded and encoded by ``aios_serve._grpc``.

What it implements (RFC 9113 and gRPC's PROTOCOL-HTTP2.md): the connection preface and
SETTINGS (its own: large receive windows, ``MAX_CONCURRENT_STREAMS``; the peer's: initial
window, frame size), HEADERS with CONTINUATION, padding and priority, DATA, PING,
WINDOW_UPDATE and flow control both ways (answers larger than the peer's window wait for
it), RST_STREAM, GOAWAY; gRPC's length-prefixed messages, ``grpc-timeout`` deadlines,
status and message in trailers (trailers-only for errors), ``grpc-message``
percent-encoding, requests compressed with gzip or deflate (answers go uncompressed, which
gRPC allows). It refuses what a unary service does not take, each with the status
gRPC defines: a non-POST (405) or non-gRPC content type (415), another ``grpc-encoding``
(UNIMPLEMENTED), a message over the size limit, compressed or not (RESOURCE_EXHAUSTED),
more than one request message (INTERNAL).

Hostile or careless clients: a connection must send its preface within the header
timeout; a call's request must arrive whole within the body timeout (else
DEADLINE_EXCEEDED and the stream is reset); beyond ``max_connections`` a new connection
gets GOAWAY (ENHANCE_YOUR_CALM) and is closed; a frame or header block over the limits,
or a protocol violation, ends the connection with GOAWAY and its error code.
Shutdown (``stop``): the port closes, every connection gets GOAWAY naming its last
stream, calls in flight are answered (at most ``grace`` seconds), then connections close.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections.abc import Callable
from urllib.parse import quote

from hpack import Decoder, Encoder, HPACKError, NeverIndexedHeaderTuple

log = logging.getLogger("aios.serve")

Headers = list[tuple[bytes, bytes]]
Reply = Callable[[bytes | None, "GrpcError | None"], None]
"""How a call answered later hands over its answer (serialized message) or its error."""
Handler = Callable[[str, bytes, Headers, Reply, bool], bytes | None]
"""A unary call: ``handler(path, message, headers, reply, together)`` returns the answer, or None and calls
``reply`` later, or raises ``GrpcError``. ``together``: other calls are arriving too (the previous call came
from another connection, or others are open on this one), so this one may wait for the end of the event
loop's turn to share a model call with them."""

INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 3, 4, 5, 7, 8
UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 12, 13, 14, 16
"""gRPC's status codes that its calls answer with."""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, _PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6
STREAM_CLOSED, REFUSED_STREAM, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x5, 0x7, 0x9, 0xB
MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x3, 0x4, 0x5
MAX_WINDOW = 2**31 - 1
FRAME_LIMIT = 16384
"""Largest frame payload this server takes (HTTP/2's default, which it does not raise)."""
HEADER_BLOCK_LIMIT = 64 * 1024
"""Largest header block (after CONTINUATIONs) and decoded header list."""
STREAMS_PER_CONNECTION = 256
"""Calls open at once on one connection (``MAX_CONCURRENT_STREAMS``); beyond it a stream is refused."""
SWEEP_SECONDS = 0.5
SEEN_BLOCKS, SEEN_BLOCK_BYTES = 64, 1024
"""Header blocks whose decoding a connection keeps (``_Connection._decode``), and the largest kept."""
_TIMEOUT = re.compile(rb"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_WBITS = {b"identity": None, b"deflate": zlib.MAX_WBITS, b"gzip": 16 + zlib.MAX_WBITS}
"""zlib's window setting for each ``grpc-encoding`` a request may use (deflate: the zlib format, as gRPC means it)."""


class GrpcError(Exception):
    """A call's failure as gRPC reports it: a status code, a message, and trailing metadata."""

    def __init__(self, code: int, message: str, trailing: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.trailing = code, message, trailing


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


_encoder = Encoder()


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """HPACK bytes of ``headers``, never indexed: no table state, so the same headers always give the same bytes."""
    return _encoder.encode([NeverIndexedHeaderTuple(k.encode(), v.encode()) for k, v in headers], huffman=False)


_ANSWER_HEAD = header_block([(":status", "200"), ("content-type", "application/grpc"),
                             ("grpc-accept-encoding", "identity,deflate,gzip")])
_OK_TRAILERS = header_block([("grpc-status", "0")])


def _status_block(error: GrpcError) -> bytes:
    """A failed call's whole answer (gRPC's trailers-only form): status, percent-encoded message, trailing metadata."""
    return header_block([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", str(error.code)),
                         ("grpc-message", quote(error.message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")),
                         *error.trailing])


class _Stream:
    __slots__ = ("id", "headers", "body", "path", "encoding", "done", "pending", "window", "deadline", "timer")

    def __init__(self, stream_id: int, window: int, deadline: float) -> None:
        self.id = stream_id
        self.headers: Headers = []
        self.body = bytearray()
        self.path = ""
        self.encoding = b"identity"
        self.done = False
        """Answered (or refused): later DATA is read and dropped, a later reply ignored."""
        self.pending: list[bytes] = []
        """DATA payloads waiting for flow-control window, then the trailers' frame (last)."""
        self.window = window
        self.deadline = deadline
        """Loop time by which the request must have arrived whole (0: it has)."""
        self.timer: asyncio.TimerHandle | None = None


class _Connection(asyncio.Protocol):
    """One client's HTTP/2 connection: frames in, calls to the handler, answers out."""

    def __init__(self, server: GrpcServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.preface = False
        self.decoder = Decoder()
        self.decoder.max_header_list_size = HEADER_BLOCK_LIMIT
        self.seen_blocks: dict[bytes, tuple[int, Headers]] = {}
        self.table_changes = 0
        self.streams: dict[int, _Stream] = {}
        self.last_stream = 0
        self.block: tuple[int, int, bytearray] | None = None
        """A header block awaiting CONTINUATION: (stream id, the HEADERS frame's flags, the fragments)."""
        self.peer_window = 65535
        self.peer_frame = 16384
        self.send_window = 65535
        self.unacknowledged = 0
        self.going_away = False
        self.opened = 0.0

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        self.opened = server.loop.time()
        if len(server.connections) >= server.max_connections or server.closing:
            transport.write(frame(SETTINGS, 0, 0) + frame(GOAWAY, 0, 0, (0).to_bytes(4, "big")
                                                          + ENHANCE_YOUR_CALM.to_bytes(4, "big")
                                                          + b"too many connections; retry later"))
            transport.close()
            return
        server.connections.add(self)
        transport.write(
            frame(SETTINGS, 0, 0, MAX_CONCURRENT_STREAMS.to_bytes(2, "big") + STREAMS_PER_CONNECTION.to_bytes(4, "big")
                  + INITIAL_WINDOW_SIZE.to_bytes(2, "big") + MAX_WINDOW.to_bytes(4, "big"))
            + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - 65535).to_bytes(4, "big")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for stream in self.streams.values():
            stream.done = True
            if stream.timer is not None:
                stream.timer.cancel()
        self.streams.clear()
        self.server.changed()

    def pause_writing(self) -> None:
        """The client does not read what it is sent (e.g. PINGs without reading their ACKs): read nothing more from
        it until that drains, so what the server holds for a connection stays bounded."""
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.preface:
            if len(buffer) < 24:
                if not PREFACE.startswith(buffer):
                    self._close()
                self.buffer = buffer
                return
            if buffer[:24] != PREFACE:
                self._close()
                return
            self.preface = True
            buffer = buffer[24:]
        size, position = len(buffer), 0
        try:
            while size - position >= 9:
                length = int.from_bytes(buffer[position:position + 3], "big")
                if length > FRAME_LIMIT:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"a frame of {length} bytes (limit {FRAME_LIMIT})")
                end = position + 9 + length
                if end > size:
                    break
                kind, flags = buffer[position + 3], buffer[position + 4]
                stream_id = int.from_bytes(buffer[position + 5:position + 9], "big") & 0x7FFFFFFF
                payload = buffer[position + 9:end]
                position = end
                if self.block is not None and (kind != CONTINUATION or stream_id != self.block[0]):
                    raise _ConnectionError(PROTOCOL_ERROR, "a header block was interrupted")
                if kind == DATA:
                    self._data(stream_id, flags, payload)
                elif kind == HEADERS:
                    self._headers(stream_id, flags, payload)
                elif kind == CONTINUATION:
                    self._continuation(stream_id, flags, payload)
                elif kind == SETTINGS:
                    self._settings(stream_id, flags, payload)
                elif kind == PING:
                    if len(payload) != 8 or stream_id:
                        raise _ConnectionError(FRAME_SIZE_ERROR if len(payload) != 8 else PROTOCOL_ERROR, "bad PING")
                    if not flags & ACK:
                        self._write(frame(PING, ACK, 0, payload))
                elif kind == WINDOW_UPDATE:
                    self._window_update(stream_id, payload)
                elif kind == RST_STREAM:
                    self._reset(stream_id)
                elif kind == GOAWAY:
                    self.going_away = True
                    self._close_when_idle()
                elif kind == PUSH_PROMISE:
                    raise _ConnectionError(PROTOCOL_ERROR, "a client may not push")
                # PRIORITY and unknown frame types are ignored, as RFC 9113 asks
        except _ConnectionError as error:
            self._go_away(error.code, str(error))
            return
        except HPACKError as error:
            self._go_away(COMPRESSION_ERROR, f"header block: {error}")
            return
        self.buffer = buffer[position:]

    # ------------------------------------------------------------ frames
    def _headers(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        payload = _unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if flags & END_HEADERS:
            self._header_block(stream_id, flags, payload)
        else:
            self.block = (stream_id, flags, bytearray(payload))

    def _continuation(self, stream_id: int, flags: int, payload: bytes) -> None:
        if self.block is None:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        block = self.block[2]
        block += payload
        if len(block) > HEADER_BLOCK_LIMIT:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"a header block over {HEADER_BLOCK_LIMIT} bytes")
        if flags & END_HEADERS:
            first = self.block[1]
            self.block = None
            self._header_block(stream_id, first, bytes(block))

    def _decode(self, block: bytes) -> Headers:
        """The headers of a header block: HPACK-decoded, or, for a block seen before with the decoder's table as it
        is now, the headers it gave then (a client sends the same bytes call after call: indexed fields and
        literals the table does not keep; decoding those in Python costs as much as the rest of the call)."""
        seen = self.seen_blocks.get(block)
        if seen is not None and seen[0] == self.table_changes:
            return seen[1]
        table = self.decoder.header_table
        entries = table.dynamic_entries
        count, first, size = len(entries), entries[0] if entries else None, table.maxsize
        headers = self.decoder.decode(block, raw=True)
        if len(entries) != count or (entries[0] if entries else None) is not first or table.maxsize != size:
            self.table_changes += 1  # the block changed the table: blocks seen before may now mean other headers
        elif len(block) <= SEEN_BLOCK_BYTES:
            if len(self.seen_blocks) >= SEEN_BLOCKS:
                self.seen_blocks.clear()
            self.seen_blocks[block] = (self.table_changes, headers)
        return headers

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self._decode(block)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers after the request's messages
            if not stream.deadline:  # the request had ended
                self._finish(stream, [frame(RST_STREAM, 0, stream_id, STREAM_CLOSED.to_bytes(4, "big"))])
                return
            if not flags & END_STREAM:
                raise _ConnectionError(PROTOCOL_ERROR, "a second header block without END_STREAM")
            self._request_ended(stream)
            return
        if stream_id <= self.last_stream or not stream_id & 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"stream {stream_id} is not a new client stream")
        self.last_stream = stream_id
        if self.going_away or self.server.closing:
            self._write(frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4, "big")))
            return
        if len(self.streams) >= STREAMS_PER_CONNECTION:
            self._write(frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4, "big")))
            return
        server = self.server
        stream = _Stream(stream_id, self.peer_window, server.loop.time() + server.body_timeout)
        stream.headers = headers
        self.streams[stream_id] = stream
        method = content_type = b""
        for name, value in headers:
            if name == b":path":
                stream.path = value.decode("latin-1")
            elif name == b":method":
                method = value
            elif name == b"content-type":
                content_type = value
            elif name == b"grpc-timeout":
                self._deadline(stream, value)
            elif name == b"grpc-encoding":
                stream.encoding = value
                if value not in _WBITS:
                    self._fail(stream, GrpcError(UNIMPLEMENTED, f"grpc-encoding {value.decode('latin-1')} is not "
                                                 "supported; send identity, deflate or gzip"))
        if stream.done:
            return
        if method != b"POST" or not content_type.startswith(b"application/grpc"):
            status = b"405" if method != b"POST" else b"415"
            self._finish(stream, [frame(HEADERS, END_HEADERS | END_STREAM, stream_id,
                                        header_block([(":status", status.decode()), ("content-type", "text/plain")]))])
        elif flags & END_STREAM:
            self._request_ended(stream)

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        received = len(payload)
        self.unacknowledged += received
        if self.unacknowledged > MAX_WINDOW // 2:  # keep the connection's receive window wide open
            self._write(frame(WINDOW_UPDATE, 0, 0, self.unacknowledged.to_bytes(4, "big")))
            self.unacknowledged = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id == 0 or stream_id > self.last_stream:
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on stream {stream_id}, which was not opened")
            return  # a stream already answered and closed (e.g. refused); its data is dropped
        if not stream.deadline:  # the request had ended (half-closed): RFC 9113 5.1's stream error, no second call
            self._finish(stream, [frame(RST_STREAM, 0, stream_id, STREAM_CLOSED.to_bytes(4, "big"))])
            return
        if not stream.done:
            stream.body += _unpad(flags, payload)
            if len(stream.body) > self.server.max_message + 5:
                self._fail(stream, GrpcError(RESOURCE_EXHAUSTED, f"the request message is larger than the "
                                             f"server's limit of {self.server.max_message} bytes (max_body_bytes)"))
        if flags & END_STREAM:
            self._request_ended(stream)

    def _settings(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS of a length not a multiple of 6")
        for at in range(0, len(payload), 6):
            key, value = int.from_bytes(payload[at:at + 2], "big"), int.from_bytes(payload[at + 2:at + 6], "big")
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE over 2^31-1")
                change, self.peer_window = value - self.peer_window, value
                for stream in self.streams.values():
                    stream.window += change
            elif key == MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise _ConnectionError(PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                self.peer_frame = value
        self._write(frame(SETTINGS, ACK, 0))
        self._flush_pending()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE of a length other than 4")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "the connection's window over 2^31-1")
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            stream.window += increment
        self._flush_pending()

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.done = True
            if stream.timer is not None:
                stream.timer.cancel()
            self._close_when_idle()

    # ------------------------------------------------------------ calls
    def _deadline(self, stream: _Stream, value: bytes) -> None:
        match = _TIMEOUT.match(value)
        if match is None:
            return  # a malformed timeout is ignored (the client enforces its own deadline too)
        seconds = int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
        stream.timer = self.server.loop.call_later(seconds, self._fail, stream,
                                                   GrpcError(DEADLINE_EXCEEDED, "the call's deadline passed"))

    def _request_ended(self, stream: _Stream) -> None:
        stream.deadline = 0.0
        if stream.done:
            return
        body = stream.body
        if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
            message = ("the request holds no message" if len(body) < 5 else
                       "the request holds more than one message" if int.from_bytes(body[1:5], "big") < len(body) - 5
                       else "the request's message is shorter than its length prefix")
            self._fail(stream, GrpcError(INTERNAL, message))
            return
        if body[0]:
            try:
                message = self._decompress(stream.encoding, body)
            except GrpcError as error:
                self._fail(stream, error)
                return
        else:
            message = bytes(body[5:])
        stream.body = bytearray()
        server = self.server
        together = len(self.streams) > 1 or (server.recent is not self and len(server.connections) > 1)
        server.recent = self
        try:
            answer = server.handler(stream.path, message, stream.headers, lambda answer, error: (
                self._fail(stream, error) if error is not None else self._answer(stream, answer)), together)
        except GrpcError as error:
            self._fail(stream, error)
            return
        except Exception:  # the service's own failure: this call's, not the connection's
            log.exception("unexpected error answering gRPC %s", stream.path)
            self._fail(stream, GrpcError(INTERNAL, "internal error"))
            return
        if answer is not None:
            self._answer(stream, answer)

    def _decompress(self, encoding: bytes, body: bytearray) -> bytes:
        """A compressed request's message, at most the server's message limit once decompressed."""
        wbits = _WBITS[encoding]
        if wbits is None:
            raise GrpcError(INTERNAL, "a compressed message without grpc-encoding")
        limit = self.server.max_message
        inflater = zlib.decompressobj(wbits)
        try:
            message = inflater.decompress(memoryview(body)[5:], limit + 1)
        except zlib.error as error:
            raise GrpcError(INTERNAL, f"the {encoding.decode()} message does not decompress ({error})") from None
        if len(message) > limit:
            raise GrpcError(RESOURCE_EXHAUSTED, f"the request message is larger than the server's limit of {limit} "
                                                "bytes (max_body_bytes) once decompressed")
        if not inflater.eof or inflater.unused_data:  # zlib stops quietly at the input's end: a stream cut short
            raise GrpcError(INTERNAL, f"the {encoding.decode()} message is not one whole {encoding.decode()} stream ("
                                      + ("bytes after its end)" if inflater.eof else "cut short)"))
        return message

    def _answer(self, stream: _Stream, message: bytes | None) -> None:
        if stream.done:
            return
        assert message is not None
        data = len(message).to_bytes(5, "big") + message  # the first byte: not compressed
        trailers = frame(HEADERS, END_HEADERS | END_STREAM, stream.id, _OK_TRAILERS)
        head = frame(HEADERS, END_HEADERS, stream.id, _ANSWER_HEAD)
        size = len(data)
        if size <= self.peer_frame and size <= stream.window and size <= self.send_window:  # the common case
            stream.window -= size
            self.send_window -= size
            self._finish(stream, [head + frame(DATA, 0, stream.id, data) + trailers])
            return
        self._write(head)
        stream.done = True
        if stream.timer is not None:
            stream.timer.cancel()
        stream.pending = [data[at:at + self.peer_frame] for at in range(0, size, self.peer_frame)] + [trailers]
        self._flush_pending()

    def _fail(self, stream: _Stream, error: GrpcError) -> None:
        if stream.done:
            return
        self._finish(stream, [frame(HEADERS, END_HEADERS | END_STREAM, stream.id, _status_block(error))])

    def _finish(self, stream: _Stream, frames: list[bytes]) -> None:
        """Write a stream's last frames; the stream closes (a request still arriving is reset)."""
        stream.done = True
        if stream.timer is not None:
            stream.timer.cancel()
        if stream.deadline:  # answered before the request ended (refused): the rest of it is not wanted
            frames.append(frame(RST_STREAM, 0, stream.id, NO_ERROR.to_bytes(4, "big")))
        self._write(b"".join(frames))
        if self.streams.pop(stream.id, None) is not None:
            self._close_when_idle()

    def _flush_pending(self) -> None:
        """Send what flow control held back, as far as the windows allow."""
        for stream in [s for s in self.streams.values() if s.pending]:
            out = []
            while stream.pending and len(stream.pending) > 1:
                chunk = stream.pending[0]
                room = min(stream.window, self.send_window, self.peer_frame)  # the frame size may have shrunk since
                if room <= 0:
                    break
                part, rest = chunk[:room], chunk[room:]
                out.append(frame(DATA, 0, stream.id, part))
                stream.window -= len(part)
                self.send_window -= len(part)
                if rest:
                    stream.pending[0] = rest
                else:
                    stream.pending.pop(0)
            if len(stream.pending) == 1:  # only the trailers are left
                out.append(stream.pending.pop())
                del self.streams[stream.id]
            if out:
                self._write(b"".join(out))
        self._close_when_idle()

    # ------------------------------------------------------------ connection
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def go_away(self) -> None:
        """Graceful: no new streams (those above ``last_stream`` are refused); close once the open ones are answered."""
        if not self.going_away:
            self.going_away = True
            self._write(frame(GOAWAY, 0, 0, self.last_stream.to_bytes(4, "big") + NO_ERROR.to_bytes(4, "big")))
        self._close_when_idle()

    def _go_away(self, code: int, reason: str) -> None:
        log.debug("gRPC connection ended: %s", reason)
        self._write(frame(GOAWAY, 0, 0, self.last_stream.to_bytes(4, "big") + code.to_bytes(4, "big")
                          + reason.encode()[:256]))
        self._close()

    def _close_when_idle(self) -> None:
        if self.going_away and not self.streams:
            self._close()
        self.server.changed()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def sweep(self, now: float) -> None:
        """Deadlines: the preface within the header timeout; each request whole within the body timeout."""
        if not self.preface and now - self.opened > self.server.header_timeout:
            self._close()
            return
        for stream in [s for s in self.streams.values() if s.deadline and s.deadline <= now]:
            self._fail(stream, GrpcError(DEADLINE_EXCEEDED, f"the request did not arrive whole within "
                                         f"{self.server.body_timeout:g} s (body_timeout_s)"))


class _ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _unpad(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1:len(payload) - payload[0]]


class GrpcServer:
    """Unary gRPC calls on ``host:port``, answered by ``handler``; ``start``, then ``stop`` to drain."""

    def __init__(self, handler: Handler, *, max_message: int, max_connections: int, header_timeout: float,
                 body_timeout: float) -> None:
        self.handler = handler
        self.max_message = max_message
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.connections: set[_Connection] = set()
        self.recent: _Connection | None = None
        """The connection of the latest call."""
        self.closing = False
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    async def start(self, host: str, port: int, reuse_port: bool = False) -> int:
        """Listen (port 0: a free one) and return the port."""
        self._server = await self.loop.create_server(lambda: _Connection(self), host, port, reuse_port=reuse_port,
                                                     backlog=1024)
        self._sweeper = self.loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    def changed(self) -> None:
        if self.closing and not any(c.streams for c in self.connections):
            self._idle.set()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = self.loop.time()
            for connection in list(self.connections):
                connection.sweep(now)

    async def stop(self, grace: float) -> None:
        """Stop listening, send every connection GOAWAY, answer the calls in flight (``grace`` seconds at most)."""
        if self._server is None:
            return
        self.closing = True
        self._server.close()
        for connection in list(self.connections):
            connection.go_away()
        self.changed()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("gRPC calls still in flight after %.0f s of draining; closing their connections", grace)
        for connection in list(self.connections):
            connection._close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        log.debug("gRPC server stopped after %.2f s", time.monotonic() - started)
