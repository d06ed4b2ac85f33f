"""A gRPC client that costs little: unary calls as pre-encoded HTTP/2 frames on one socket.

The HTTP benchmarks drive servers with raw HTTP/1.1 on a socket (pre-built requests, the
answer read by its Content-Length), so what they measure is the server. grpcio's Python
client costs more per call than a whole binary HTTP inference does, which would hide the
server; this client is the gRPC counterpart of the raw HTTP one: the connection preface
and SETTINGS once, then per call one HEADERS frame (HPACK literals, no dynamic table: the
same bytes each time but the stream id) and one DATA frame, and the answer's frames read
up to the stream's end. Flow control is opened wide once (large initial windows), PINGs
and SETTINGS are acknowledged. A call that ends without a DATA frame (gRPC's
trailers-only answer: an error) returns None.
"""

from __future__ import annotations

import asyncio
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
WINDOW = 2**31 - 1


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload


def _literal(value: bytes) -> bytes:
    assert len(value) < 127
    return bytes((len(value),)) + value


def header_block(path: str, authority: str) -> bytes:
    """HPACK: :method POST and :scheme http indexed; the rest literals without indexing."""
    return (b"\x83\x86"                                      # :method POST, :scheme http (static table 3, 6)
            + b"\x04" + _literal(path.encode())               # :path (static name 4)
            + b"\x01" + _literal(authority.encode())          # :authority (static name 1)
            + b"\x0f\x10" + _literal(b"application/grpc")     # content-type (static name 31)
            + b"\x00" + _literal(b"te") + _literal(b"trailers"))


class RawGrpcChannel:
    """One HTTP/2 connection making unary calls one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str) -> None:
        self.reader, self.writer, self.authority = reader, writer, authority
        self.stream = -1
        self.blocks: dict[str, bytes] = {}

    @classmethod
    async def connect(cls, target: str) -> RawGrpcChannel:
        host, port = target.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, WINDOW))  # INITIAL_WINDOW_SIZE
                     + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", WINDOW - 65535)))
        return cls(reader, writer, target)

    async def call(self, path: str, message: bytes) -> bytes | None:
        """The answer message of one unary call (None: the call failed)."""
        block = self.blocks.get(path)
        if block is None:
            block = self.blocks[path] = header_block(path, self.authority)
        self.stream += 2
        stream = self.stream
        self.writer.write(frame(HEADERS, END_HEADERS, stream, block)
                          + frame(DATA, END_STREAM, stream, b"\x00" + struct.pack(">I", len(message)) + message))
        body = b""
        while True:
            head = await self.reader.readexactly(9)
            length = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            payload = await self.reader.readexactly(length) if length else b""
            if kind == PING and not flags & ACK:
                self.writer.write(frame(PING, ACK, 0, payload))
            elif kind == SETTINGS and not flags & ACK:
                self.writer.write(frame(SETTINGS, ACK, 0, b""))
            elif kind == GOAWAY:
                raise ConnectionError("the server sent GOAWAY")
            elif int.from_bytes(head[5:9], "big") & 0x7FFFFFFF == stream:
                if kind == DATA:
                    body += payload
                if flags & END_STREAM:
                    return body[5:] if body else None

    def close(self) -> None:
        self.writer.close()
