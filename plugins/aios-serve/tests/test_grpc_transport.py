"""gRPC's HTTP/2 transport (``aios_serve._grpc_server``) at its edges, against a real server on 127.0.0.1.

What real clients see is checked with grpcio's client (raw bytes through ``channel.unary_unary``,
its windows kept at HTTP/2's defaults where that matters) and tritonclient: answers larger than the
client's flow-control window, hundreds of calls on one channel, deadlines, compressed requests, the
refusals a unary service makes, the size limit. What no well-behaved client sends is checked with
hand-built HTTP/2 frames on a socket (``RawConnection``, this file's own minimal client): the
windows and frame size honoured exactly, oversized frames and header blocks, streams never opened
or already ended, bad HPACK, CONTINUATION, padding, PING and a ping flood, malformed compressed
messages (each answered as grpcio's own server answers it), the preface's timeout, the connection
limit, random frame sequences (hypothesis), and the drain: on SIGTERM in a server process, and
bounded by the drain time when a client never takes its answer.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import hpack
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from aios_serve_test_helpers import FEATURES, MODEL, VERSION, ServerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INFER = "/inference.GRPCInferenceService/ModelInfer"
LIMIT = 1024 * 1024
"""``max_body_bytes`` of the servers here: a 3000-row request (768 KB) fits."""
TIMEOUT = 10.0
"""The longest any socket read or call here waits: a hang fails the test instead of stalling it."""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6
STREAM_CLOSED, REFUSED_STREAM, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x5, 0x7, 0x9, 0xB
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x4, 0x5
FLOOD = 16 << 20
"""Bytes of PINGs the flood test sends at most (a server that keeps reading takes them all)."""


# ---------------------------------------------------------------- messages
def message_class(name: str) -> Any:
    from aios_serve._grpc import messages

    return messages()[name]


def infer_message(rows: np.ndarray, request_id: str = "") -> bytes:
    request = message_class("ModelInferRequest")(model_name=MODEL, id=request_id)
    request.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    request.raw_input_contents.append(np.ascontiguousarray(rows, dtype="<f4").tobytes())
    return request.SerializeToString()


def probabilities(answer: bytes) -> np.ndarray:
    response = message_class("ModelInferResponse").FromString(answer)
    (index,) = [i for i, o in enumerate(response.outputs) if o.name == "probabilities"]
    shape = list(response.outputs[index].shape)
    return np.frombuffer(response.raw_output_contents[index], dtype="<f4").reshape(shape)


def length_prefixed(message: bytes, compressed: bool = False) -> bytes:
    """gRPC's framing of one message: a compressed flag, the length (4 bytes), the message."""
    return bytes((compressed,)) + len(message).to_bytes(4, "big") + message


def many_rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, FEATURES)).astype(np.float32)


# ---------------------------------------------------------------- a raw HTTP/2 client
def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def setting(key: int, value: int) -> bytes:
    """One parameter of a SETTINGS frame."""
    return key.to_bytes(2, "big") + value.to_bytes(4, "big")


class Frame(NamedTuple):
    kind: int
    flags: int
    stream: int
    payload: bytes


class Answer(NamedTuple):
    headers: dict[str, str]
    message: bytes | None
    trailers: dict[str, str]
    frames: list[Frame]


class RawConnection:
    """One HTTP/2 connection on a plain socket: frames sent as built, frames read and parsed, nothing automatic
    (no SETTINGS acknowledgement, no window updates: the tests decide). Header blocks are hpack's."""

    def __init__(self, target: str, preface: bool = True, settings: bytes = b"") -> None:
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.buffer = b""
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.held: list[Frame] = []
        """Frames read while waiting for another stream's."""
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, *data: bytes) -> None:
        self.sock.sendall(b"".join(data))

    def read(self) -> Frame | None:
        """The next frame, None once the server closed the connection."""
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    head, self.buffer = self.buffer[:9 + length], self.buffer[9 + length:]
                    return Frame(head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, head[9:])
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                assert not self.buffer, f"the connection closed within a frame: {self.buffer[:40]!r}"
                return None
            self.buffer += chunk

    def until(self, wanted: Any) -> list[Frame]:
        """Frames up to the first for which ``wanted(frame)`` is true (it last); fails if the connection closes."""
        seen = []
        while True:
            got = self.read()
            assert got is not None, f"the connection closed before the frame awaited; frames: {seen}"
            seen.append(got)
            if wanted(got):
                return seen

    def rest(self) -> list[Frame]:
        """Every frame until the server closes the connection (a socket timeout fails the test: it did not)."""
        seen = []
        while (got := self.read()) is not None:
            seen.append(got)
        return seen

    def ping(self, payload: bytes = b"syncsync") -> list[Frame]:
        """A PING and the frames read up to its ACK: every frame the server wrote before handling it."""
        self.send(frame(PING, 0, 0, payload))
        return self.until(lambda f: f.kind == PING and f.flags & ACK and f.payload == payload)

    def headers(self, stream: int, path: str = INFER, extra: tuple[tuple[str, str], ...] = (),
                flags: int = END_HEADERS, method: str = "POST", content_type: str = "application/grpc") -> bytes:
        return frame(HEADERS, flags, stream, self.block(path, extra, method, content_type))

    def block(self, path: str = INFER, extra: tuple[tuple[str, str], ...] = (), method: str = "POST",
              content_type: str = "application/grpc") -> bytes:
        return self.encoder.encode([(":method", method), (":scheme", "http"), (":path", path),
                                    (":authority", "127.0.0.1"), ("content-type", content_type),
                                    ("te", "trailers"), *extra])

    def call(self, stream: int, message: bytes, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        """A whole unary call: HEADERS, then the message in DATA frames of at most 16384 bytes, the last ending it."""
        body = length_prefixed(message)
        pieces = [body[at:at + 16384] for at in range(0, len(body), 16384)]
        return self.headers(stream, extra=extra) + b"".join(
            frame(DATA, END_STREAM if at == len(pieces) - 1 else 0, stream, piece) for at, piece in enumerate(pieces))

    def answer(self, stream: int) -> Answer:
        """The server's frames on ``stream`` up to its end; header blocks decoded, DATA joined and unframed."""
        frames, kept = [f for f in self.held if f.stream == stream], [f for f in self.held if f.stream != stream]
        self.held = kept
        while not frames or not frames[-1].flags & END_STREAM and frames[-1].kind != RST_STREAM:
            got = self.read()
            assert got is not None, f"the connection closed before stream {stream} ended; its frames: {frames}"
            if got.stream == stream:
                frames.append(got)
            elif got.stream:
                self.held.append(got)
        blocks = [dict((k.decode(), v.decode()) for k, v in self.decoder.decode(f.payload, raw=True))
                  for f in frames if f.kind == HEADERS]
        body = b"".join(f.payload for f in frames if f.kind == DATA)
        message = None
        if body:
            assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5, "one uncompressed message"
            message = body[5:]
        head, trailers = (blocks[0], blocks[-1]) if len(blocks) > 1 else ({}, blocks[0] if blocks else {})
        if not head and trailers.get(":status"):  # trailers-only: the status and the call's end in one block
            head = trailers
        return Answer(head, message, trailers, frames)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def goaway(frames: list[Frame]) -> tuple[int, int]:
    """The (last stream, error code) of the GOAWAY among ``frames``."""
    (found,) = [f for f in frames if f.kind == GOAWAY]
    return int.from_bytes(found.payload[:4], "big") & 0x7FFFFFFF, int.from_bytes(found.payload[4:8], "big")


def assert_answered(answer: Answer, expected: np.ndarray) -> None:
    """A call answered with status OK and the model's probabilities."""
    assert answer.trailers.get("grpc-status") == "0", answer.trailers
    np.testing.assert_allclose(probabilities(answer.message or b""), expected, atol=1e-6)


def assert_served(target: str, reference: Any, rows: np.ndarray) -> None:
    """A fresh connection is answered: one ModelInfer, its probabilities the model's."""
    with RawConnection(target) as connection:
        connection.send(connection.call(1, infer_message(rows[:1])))
        answer = connection.answer(1)
    assert_answered(answer, reference(rows[:1]))


# ---------------------------------------------------------------- servers
def background(run_dir: Path, **fields: Any) -> Any:
    from aios_serve.server import BackgroundServer, ServerSettings

    return BackgroundServer([run_dir], settings=ServerSettings(grpc_port=0, max_body_bytes=LIMIT, **fields))


@pytest.fixture(scope="module")
def served(run_dir: Path) -> Iterator[Any]:
    """A server in this process: defaults but a 1 MiB message limit."""
    with background(run_dir) as running:
        assert running.grpc_target is not None
        yield running


@pytest.fixture(scope="module")
def target(served: Any) -> str:
    return served.grpc_target


@pytest.fixture(scope="module")
def impatient(run_dir: Path) -> Iterator[str]:
    """A server whose preface and request-body timeouts are half a second."""
    with background(run_dir, header_timeout=0.5, body_timeout=0.5) as running:
        yield running.grpc_target


@pytest.fixture
def channel(target: str) -> Iterator[Any]:
    with grpc.insecure_channel(target) as opened:
        yield opened


NARROW = [("grpc.http2.bdp_probe", 0)]
"""grpcio's channel options keeping HTTP/2's default windows (65535 bytes) and frame size: without them it
measures the link and opens its windows wider than the answers here."""
NARROWER = [*NARROW, ("grpc.http2.lookahead_bytes", 1024)]
"""Windows of about a kilobyte: every answer here waits for many WINDOW_UPDATEs."""


def raw_infer(channel: Any) -> Any:
    return channel.unary_unary(INFER)


# ---------------------------------------------------------------- flow control, concurrency (grpcio)
def test_an_answer_larger_than_the_clients_window_comes_back_whole(target: str, reference) -> None:
    rows = many_rows(3000, seed=2)
    with grpc.insecure_channel(target, options=NARROW) as channel:
        answer = raw_infer(channel)(infer_message(rows), timeout=TIMEOUT)
    assert len(answer) > 2 * 65535  # probabilities alone: 3000 x 10 float32
    np.testing.assert_allclose(probabilities(answer), reference(rows), atol=1e-6)
    client = grpcclient.InferenceServerClient(target)  # tritonclient's own window handling
    tensor = grpcclient.InferInput("input", [3000, FEATURES], "FP32")
    tensor.set_data_from_numpy(rows)
    np.testing.assert_allclose(client.infer(MODEL, [tensor]).as_numpy("probabilities"), reference(rows), atol=1e-6)
    client.close()


@pytest.mark.parametrize("options", [NARROW, NARROWER], ids=["64KiB-windows", "1KiB-windows"])
def test_several_large_answers_share_one_connection(options: list[tuple[str, int]], target: str, reference) -> None:
    """Four 3000-row answers at once on one channel: the connection's window is shared and each gets all of its own."""
    batches = [many_rows(3000, seed) for seed in range(4)]
    with grpc.insecure_channel(target, options=options) as channel:
        infer = raw_infer(channel)
        futures = [infer.future(infer_message(rows), timeout=TIMEOUT) for rows in batches]
        for future, rows in zip(futures, batches):
            np.testing.assert_allclose(probabilities(future.result()), reference(rows), atol=1e-6)


def test_two_hundred_concurrent_calls_on_one_channel_are_all_answered(channel: Any, reference) -> None:
    everything = many_rows(600, seed=5)
    infer = raw_infer(channel)
    spans = [(i * 3, i * 3 + 1 + i % 3) for i in range(200)]  # 1-3 rows each, every call its own rows
    futures = [infer.future(infer_message(everything[a:b], request_id=str(i)), timeout=TIMEOUT)
               for i, (a, b) in enumerate(spans)]
    expected = reference(everything)
    response = message_class("ModelInferResponse")
    for i, (future, (a, b)) in enumerate(zip(futures, spans)):
        answer = future.result()
        assert response.FromString(answer).id == str(i)
        np.testing.assert_allclose(probabilities(answer), expected[a:b], atol=1e-6)


def test_the_server_sends_no_more_than_the_window_and_the_rest_once_it_opens(target: str, reference) -> None:
    """Raw, with HTTP/2's default windows (65535 bytes, frames of 16384): exactly the window, then nothing until
    the stream's and then the connection's window grow; every DATA frame within the frame size."""
    rows = many_rows(3000, seed=3)
    with RawConnection(target) as connection:
        connection.send(connection.call(1, infer_message(rows)))
        frames: list[Frame] = []
        while sum(len(f.payload) for f in frames if f.kind == DATA) < 65535:
            frames += connection.until(lambda f: f.kind == DATA)
        assert sum(len(f.payload) for f in frames if f.kind == DATA) == 65535
        assert not [f for f in connection.ping() if f.kind != PING]  # nothing more while the windows are shut
        connection.send(frame(WINDOW_UPDATE, 0, 1, (1 << 20).to_bytes(4, "big")))
        assert not [f for f in connection.ping() if f.kind != PING]  # the stream's is open, the connection's not
        connection.send(frame(WINDOW_UPDATE, 0, 0, (1 << 20).to_bytes(4, "big")))
        connection.held = [f for f in frames if f.stream == 1]  # its head and first DATA frames
        answer = connection.answer(1)
    assert answer.trailers["grpc-status"] == "0"
    assert max(len(f.payload) for f in answer.frames if f.kind == DATA) <= 16384
    np.testing.assert_allclose(probabilities(answer.message or b""), reference(rows), atol=1e-6)


def test_a_window_opened_by_settings_releases_a_held_answer(target: str, reference, rows: np.ndarray) -> None:
    """INITIAL_WINDOW_SIZE 0: even a small answer waits; SETTINGS raising it (and the connection's window) sends it."""
    with RawConnection(target, settings=setting(INITIAL_WINDOW_SIZE, 0)) as connection:
        connection.send(connection.call(1, infer_message(rows[:2])))
        held = connection.until(lambda f: f.kind == HEADERS and f.stream == 1)
        assert not [f for f in held + connection.ping() if f.kind == DATA]
        connection.send(frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 1 << 16)))
        connection.held = held[-1:]
        answer = connection.answer(1)
    assert_answered(answer, reference(rows[:2]))


def test_a_smaller_max_frame_size_applies_to_an_answer_already_waiting(target: str, reference) -> None:
    """The client allows frames of 64 KiB, the answer waits for its window, then the client lowers the frame size
    back to 16384 and opens the window: what is sent after the SETTINGS must fit the new size (RFC 9113 4.2)."""
    rows = many_rows(3000, seed=4)
    with RawConnection(target, settings=setting(MAX_FRAME_SIZE, 1 << 16) + setting(INITIAL_WINDOW_SIZE, 0)) as \
            connection:
        connection.send(connection.call(1, infer_message(rows)))
        held = connection.until(lambda f: f.kind == HEADERS and f.stream == 1)
        connection.send(frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 16384) + setting(INITIAL_WINDOW_SIZE, 1 << 20)),
                        frame(WINDOW_UPDATE, 0, 0, (1 << 20).to_bytes(4, "big")))
        connection.held = held[-1:]
        answer = connection.answer(1)
    assert_answered(answer, reference(rows))
    assert max(len(f.payload) for f in answer.frames if f.kind == DATA) <= 16384


def test_a_client_that_does_not_read_cannot_make_the_server_buffer_without_bound(run_dir: Path) -> None:
    """PINGs sent without reading their ACKs (HTTP/2's "ping flood", CVE-2019-9512): the server stops reading
    while its answers wait to be sent, so what it holds for the client stays bounded."""
    with background(run_dir) as running:
        host, port = running.grpc_target.rsplit(":", 1)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((host, int(port)))
        client.settimeout(0.5)
        pings = frame(PING, 0, 0, b"12345678") * 4096
        sent = 0
        try:
            client.sendall(PREFACE + frame(SETTINGS, 0, 0))
            while sent < FLOOD:
                client.sendall(pings)
                sent += len(pings)
        except TimeoutError:
            pass
        time.sleep(0.2)
        (connection,) = running.state.grpc_server.connections
        buffered = connection.transport.get_write_buffer_size()
        client.close()
    assert buffered < 1 << 20, f"{buffered} bytes of answers held after {sent} bytes of PINGs"


def test_more_streams_than_the_server_allows_at_once_are_refused_one_by_one(target: str, reference,
                                                                             rows: np.ndarray) -> None:
    """256 calls open at once (MAX_CONCURRENT_STREAMS): the 257th is refused (REFUSED_STREAM); the open ones finish."""
    with RawConnection(target) as connection:
        message = length_prefixed(infer_message(rows[:1]))
        connection.send(*(connection.headers(2 * i + 1) for i in range(257)))
        refused = connection.until(lambda f: f.kind == RST_STREAM)[-1]
        assert refused.stream == 2 * 256 + 1 and int.from_bytes(refused.payload, "big") == REFUSED_STREAM
        connection.send(*(frame(DATA, END_STREAM, 2 * i + 1, message) for i in range(256)))
        for i in range(256):
            answer = connection.answer(2 * i + 1)
            assert_answered(answer, reference(rows[:1]))


# ---------------------------------------------------------------- deadlines
def test_a_call_with_a_deadline_that_is_met_is_answered(channel: Any, reference, rows: np.ndarray) -> None:
    answer = raw_infer(channel)(infer_message(rows[:4]), timeout=5.0)  # grpcio sends grpc-timeout
    np.testing.assert_allclose(probabilities(answer), reference(rows[:4]), atol=1e-6)


def test_a_request_that_outlives_its_grpc_timeout_gets_deadline_exceeded(target: str, reference,
                                                                        rows: np.ndarray) -> None:
    with RawConnection(target) as connection:
        connection.send(connection.call(1, infer_message(rows[:1]), extra=(("grpc-timeout", "200m"),)))
        assert connection.answer(1).trailers["grpc-status"] == "0"  # met: its timer must not fire later
        started = time.monotonic()
        message = length_prefixed(infer_message(rows[:1]))
        connection.send(connection.headers(3, extra=(("grpc-timeout", "400m"),)), frame(DATA, 0, 3, message[:20]))
        answer = connection.answer(3)
        waited = time.monotonic() - started
        assert answer.trailers["grpc-status"] == "4" and "deadline" in answer.trailers["grpc-message"]
        assert answer.headers[":status"] == "200" and answer.message is None
        assert 0.35 < waited < 5.0
        assert not [f for f in connection.held + connection.ping() if f.stream == 1]  # nothing late on the first
        connection.send(frame(DATA, END_STREAM, 3, message[20:]))  # the rest, too late: dropped
        connection.send(connection.call(5, infer_message(rows[:1]), extra=(("grpc-timeout", "99999999H"),)))
        answer = connection.answer(5)
    assert_answered(answer, reference(rows[:1]))


def test_a_request_body_that_never_ends_gets_deadline_exceeded_after_the_body_timeout(impatient: str, reference,
                                                                                      rows: np.ndarray) -> None:
    with RawConnection(impatient) as connection:
        started = time.monotonic()
        message = length_prefixed(infer_message(rows[:1]))
        connection.send(connection.headers(1), frame(DATA, 0, 1, message[:10]))
        answer = connection.answer(1)
        waited = time.monotonic() - started
        assert answer.trailers["grpc-status"] == "4" and "body_timeout_s" in answer.trailers["grpc-message"]
        reset = [f for f in answer.frames + connection.ping() if f.kind == RST_STREAM]
        assert [f.stream for f in reset] == [1]  # the rest of the request is not wanted
        assert 0.4 < waited < 5.0
        connection.send(connection.call(3, infer_message(rows[:1])))  # the connection still serves
        answer = connection.answer(3)
    assert_answered(answer, reference(rows[:1]))


# ---------------------------------------------------------------- refusals (grpcio)
def test_unknown_method_and_bad_message_are_refused_and_the_channel_goes_on(channel: Any, reference,
                                                                           rows: np.ndarray) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        channel.unary_unary("/inference.GRPCInferenceService/NoSuchMethod%41")(b"", timeout=TIMEOUT)
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchMethod%41;" in unknown.value.details()  # grpc-message percent-encoded: "%" itself too
    with pytest.raises(grpc.RpcError) as garbled:
        raw_infer(channel)(b"\xff\xff\xff\xff", timeout=TIMEOUT)
    assert garbled.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_allclose(probabilities(raw_infer(channel)(infer_message(rows[:2]), timeout=TIMEOUT)),
                               reference(rows[:2]), atol=1e-6)


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate], ids=["gzip", "deflate"])
def test_compressed_requests_are_answered(compression: Any, target: str, reference) -> None:
    """grpcio compressing a 3000-row request (768 KB before, many frames after); the answer comes back whole."""
    rows = many_rows(3000, seed=6)
    with grpc.insecure_channel(target, options=NARROW) as channel:
        answer = raw_infer(channel)(infer_message(rows), timeout=TIMEOUT, compression=compression)
    np.testing.assert_allclose(probabilities(answer), reference(rows), atol=1e-6)


def gzipped(data: bytes, whole: bool = True) -> bytes:
    """``data`` as a gzip stream; ``whole=False``: flushed but without its last block and trailer."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + (compressor.flush() if whole else compressor.flush(zlib.Z_SYNC_FLUSH))


COMPRESSED = {  # what the request says and holds: (grpc-encoding, compressed flag, its message bytes), grpc-status
    "gzip": (("gzip", True, gzipped), "0"),
    "gzip named, the message not compressed": (("gzip", False, lambda m: m), "0"),  # the flag says so: allowed
    "deflate": (("deflate", True, zlib.compress), "0"),
    "an encoding not served": (("snappy", True, gzipped), "12"),
    "not gzip at all": (("gzip", True, lambda m: b"not gzip at all"), "13"),
    "gzip named deflate": (("deflate", True, gzipped), "13"),  # deflate is zlib's format, as gRPC means it
    "gzip cut short": (("gzip", True, lambda m: gzipped(m)[:40]), "13"),
    "gzip without its last block": (("gzip", True, lambda m: gzipped(m, whole=False)), "13"),
    "bytes after the gzip stream": (("gzip", True, lambda m: gzipped(m) + b"garbage!"), "13"),
}


@pytest.mark.parametrize("case", COMPRESSED)
def test_a_compressed_request_is_answered_or_refused_as_grpcio_does(case: str, target: str, reference,
                                                                     rows: np.ndarray) -> None:
    """Raw; the connection goes on after each. The statuses are grpcio 1.85's own server's for the same bytes
    (INTERNAL: "data error" for a stream cut short or without its last block, "not all input consumed" for bytes
    after it), but for an encoding not served: UNIMPLEMENTED, as gRPC's compression spec says (grpcio: INTERNAL)."""
    (encoding, compressed, encode), status = COMPRESSED[case]
    message = infer_message(rows[:1])
    with RawConnection(target) as connection:
        connection.send(connection.headers(1, extra=(("grpc-encoding", encoding),)),
                        frame(DATA, END_STREAM, 1, length_prefixed(encode(message), compressed)))
        answer = connection.answer(1)
        connection.send(connection.call(3, message))
        after = connection.answer(3)
    assert answer.trailers["grpc-status"] == status, answer.trailers
    if status == "0":
        np.testing.assert_allclose(probabilities(answer.message or b""), reference(rows[:1]), atol=1e-6)
    np.testing.assert_allclose(probabilities(after.message or b""), reference(rows[:1]), atol=1e-6)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip],
                         ids=["plain", "gzip"])
def test_a_message_over_the_limit_is_refused_and_one_at_the_limit_is_not(compression: Any, channel: Any, reference,
                                                                         rows: np.ndarray) -> None:
    """Compressed, the message is 1 MiB of one letter in a few kilobytes: the limit holds once decompressed."""
    request = message_class("ModelInferRequest").FromString(infer_message(rows[:8]))
    request.id = "x" * (LIMIT - request.ByteSize() - 4)  # the id's length takes 3 bytes, its tag 1
    at_limit = request.SerializeToString()
    assert len(at_limit) == LIMIT
    infer = raw_infer(channel)
    with pytest.raises(grpc.RpcError) as refused:
        infer(at_limit + b"\x00", timeout=TIMEOUT, compression=compression)  # one byte more (a trailing zero)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_body_bytes" in refused.value.details()
    answer = infer(at_limit, timeout=TIMEOUT, compression=compression)  # the same connection
    assert message_class("ModelInferResponse").FromString(answer).id == request.id
    np.testing.assert_allclose(probabilities(answer), reference(rows[:8]), atol=1e-6)


def test_refusals_of_a_unary_service_each_with_its_status(target: str, rows: np.ndarray) -> None:
    """Raw: what grpcio never sends, each answered on the stream and the connection kept."""
    message = infer_message(rows[:1])
    with RawConnection(target) as connection:
        connection.send(connection.headers(1, method="GET", flags=END_HEADERS | END_STREAM))
        assert connection.answer(1).headers[":status"] == "405"
        connection.send(connection.headers(3, content_type="application/json"),
                        frame(DATA, END_STREAM, 3, length_prefixed(message)))
        assert connection.answer(3).headers[":status"] == "415"
        cases = {  # stream: (what the request's DATA holds, grpc-status)
            5: (length_prefixed(message, compressed=True), "13"),  # compressed flag, no grpc-encoding
            7: (length_prefixed(message) * 2, "13"),  # two messages in a unary call
            9: (length_prefixed(message)[:-1], "13"),  # shorter than its length prefix
            11: (b"\x00\x00", "13"),  # no whole message
        }
        for stream, (body, status) in cases.items():
            connection.send(connection.headers(stream), frame(DATA, END_STREAM, stream, body))
            answer = connection.answer(stream)
            assert answer.trailers["grpc-status"] == status, (stream, answer)
        connection.send(connection.headers(13, flags=END_HEADERS | END_STREAM))  # no DATA at all
        assert connection.answer(13).trailers["grpc-status"] == "13"
        connection.send(connection.headers(15), frame(DATA, 0, 15, length_prefixed(message)),  # trailers end it
                        frame(HEADERS, END_HEADERS | END_STREAM, 15, connection.encoder.encode([("x-end", "1")])))
        assert connection.answer(15).trailers["grpc-status"] == "0"
        connection.send(connection.headers(17), frame(RST_STREAM, 0, 17, (0x8).to_bytes(4, "big")),  # cancelled
                        connection.call(19, message))
        assert connection.answer(19).trailers["grpc-status"] == "0"
        assert not [f for f in connection.held + connection.ping() if f.stream == 17]


# ---------------------------------------------------------------- malformed HTTP/2 (raw)
def test_http1_on_the_grpc_port_is_closed_and_the_server_goes_on(target: str, reference, rows: np.ndarray) -> None:
    for request in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"):
        with RawConnection(target, preface=False) as connection:
            connection.send(request)
            assert [f.kind for f in connection.rest()] == [SETTINGS, WINDOW_UPDATE]  # its own, sent on accepting
    assert_served(target, reference, rows)


def oversized(connection: RawConnection) -> bytes:
    return frame(DATA, 0, 1, b"\x00" * 16385)


def data_on_a_stream_never_opened(connection: RawConnection) -> bytes:
    return connection.call(1, b"") + frame(DATA, 0, 3, b"\x00" * 5)


def bad_hpack(connection: RawConnection) -> bytes:
    return frame(HEADERS, END_HEADERS, 1, bytes((0x80 | 70,)))  # index 70: past the static table, none dynamic


def an_interrupted_header_block(connection: RawConnection) -> bytes:
    block = connection.block()
    return frame(HEADERS, 0, 1, block[:5]) + frame(DATA, 0, 1, b"\x00" * 5)


def a_header_block_over_64_kib(connection: RawConnection) -> bytes:
    piece = b"\x00" * 16384
    return frame(HEADERS, 0, 1, piece) + b"".join(frame(CONTINUATION, 0, 1, piece) for _ in range(4))


def an_hpack_bomb(connection: RawConnection) -> bytes:
    """One 4000-byte field put in the table, then named 100 times by its index (a byte each): 400 KB decoded."""
    block = connection.block(extra=(("x-big", "b" * 4000),)) + bytes((0x80 | 62,)) * 100  # 62: the newest entry
    assert len(block) < 16384
    return frame(HEADERS, END_HEADERS, 1, block)


MALFORMED = {
    "frame over 16384 bytes": (oversized, FRAME_SIZE_ERROR),
    "DATA on a stream never opened": (data_on_a_stream_never_opened, PROTOCOL_ERROR),
    "bad HPACK": (bad_hpack, COMPRESSION_ERROR),
    "header block interrupted": (an_interrupted_header_block, PROTOCOL_ERROR),
    "header block over 64 KiB": (a_header_block_over_64_kib, ENHANCE_YOUR_CALM),
    "header list over 64 KiB decoded (HPACK bomb)": (an_hpack_bomb, COMPRESSION_ERROR),
    "CONTINUATION without HEADERS": (lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block()), PROTOCOL_ERROR),
    "HEADERS on stream 0": (lambda c: frame(HEADERS, END_HEADERS, 0, c.block()), PROTOCOL_ERROR),
    "an even stream": (lambda c: c.headers(2), PROTOCOL_ERROR),
    "a stream id going back": (lambda c: c.call(5, b"") + c.headers(3), PROTOCOL_ERROR),
    "padding longer than the frame": (lambda c: frame(HEADERS, END_HEADERS | PADDED, 1, b"\x09" + c.block()[:8]),
                                      PROTOCOL_ERROR),
    "PUSH_PROMISE": (lambda c: frame(PUSH_PROMISE, END_HEADERS, 1, b"\x00\x00\x00\x02"), PROTOCOL_ERROR),
    "PING of 7 bytes": (lambda c: frame(PING, 0, 0, b"\x00" * 7), FRAME_SIZE_ERROR),
    "SETTINGS of 5 bytes": (lambda c: frame(SETTINGS, 0, 0, b"\x00" * 5), FRAME_SIZE_ERROR),
    "SETTINGS on a stream": (lambda c: frame(SETTINGS, 0, 1), PROTOCOL_ERROR),
    "window over 2^31-1": (lambda c: frame(WINDOW_UPDATE, 0, 0, (2**31 - 1).to_bytes(4, "big")), FLOW_CONTROL_ERROR),
    "INITIAL_WINDOW_SIZE over 2^31-1": (lambda c: frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 2**31)),
                                        FLOW_CONTROL_ERROR),
    "MAX_FRAME_SIZE below 16384": (lambda c: frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 100)),
                                   PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_protocol_violation_ends_the_connection_with_goaway_and_its_code(case: str, target: str, reference,
                                                                          rows: np.ndarray) -> None:
    build, code = MALFORMED[case]
    with RawConnection(target) as connection:
        connection.send(build(connection))
        frames = connection.rest()
    assert goaway(frames)[1] == code, frames
    assert_served(target, reference, rows)


def test_a_header_block_split_over_continuation_frames_is_one_call(target: str, reference, rows: np.ndarray) -> None:
    with RawConnection(target) as connection:
        block = connection.block(extra=(("x-long", "v" * 40000),))  # a block longer than one frame
        pieces = [block[at:at + 16384] for at in range(0, len(block), 16384)]
        assert len(pieces) == 3
        connection.send(frame(HEADERS, 0, 1, pieces[0]), frame(CONTINUATION, 0, 1, pieces[1]),
                        frame(CONTINUATION, END_HEADERS, 1, pieces[2]),
                        frame(DATA, END_STREAM, 1, length_prefixed(infer_message(rows[:3]))))
        answer = connection.answer(1)
    assert_answered(answer, reference(rows[:3]))


def test_the_same_header_bytes_are_decoded_anew_once_the_table_changed(target: str, reference,
                                                                       rows: np.ndarray) -> None:
    """HPACK's indices name the dynamic table's entries newest first: after an entry is added, the bytes of an
    earlier block name other fields (the server's cache of decoded blocks must not answer for them)."""
    with RawConnection(target) as connection:
        message = infer_message(rows[:1])
        connection.send(connection.call(1, message))  # the fields enter the table
        indexed = connection.block()  # the same fields again: each an index into the table
        assert len(indexed) < 16
        data = frame(DATA, END_STREAM, 3, length_prefixed(message))
        connection.send(frame(HEADERS, END_HEADERS, 3, indexed), data)
        first, second = connection.answer(1), connection.answer(3)
        connection.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, connection.encoder.encode([("x-new", "1")])))
        connection.send(frame(HEADERS, END_HEADERS, 7, indexed), frame(DATA, END_STREAM, 7, length_prefixed(message)))
        shifted = connection.answer(7)  # its indices now name x-new, te, content-type and :authority: no :path
    assert first.trailers["grpc-status"] == second.trailers["grpc-status"] == "0"
    np.testing.assert_allclose(probabilities(second.message or b""), reference(rows[:1]), atol=1e-6)
    assert shifted.trailers["grpc-status"] == "12" and "no method ;" in shifted.trailers["grpc-message"]


def test_padded_and_prioritized_frames_are_read_past_their_padding(target: str, reference, rows: np.ndarray) -> None:
    with RawConnection(target) as connection:
        message = length_prefixed(infer_message(rows[:2]))
        priority = (0).to_bytes(4, "big") + b"\x10"  # depends on stream 0, weight 17
        connection.send(frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1,
                              b"\x07" + priority + connection.block() + b"\x00" * 7),
                        frame(PRIORITY, 0, 1, priority),
                        frame(DATA, PADDED, 1, b"\x03" + message[:30] + b"pad"),
                        frame(DATA, PADDED, 1, b"\x00" + message[30:]),  # zero padding
                        frame(DATA, END_STREAM, 1))  # the request's end in an empty frame
        answer = connection.answer(1)
    assert_answered(answer, reference(rows[:2]))


def test_a_ping_is_answered_with_its_payload_and_unknown_frames_are_ignored(target: str) -> None:
    with RawConnection(target) as connection:
        connection.send(frame(0x42, 0xFF, 1, b"an extension frame"), frame(PING, ACK, 0, b"notmine!"))
        frames = connection.ping(b"\x01\x02\x03\x04\x05\x06\x07\x08")
        assert [f for f in frames if f.kind == PING] == [Frame(PING, ACK, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08")]
        assert [f.kind for f in frames if f.kind != PING] == [SETTINGS, WINDOW_UPDATE, SETTINGS]  # + our SETTINGS' ACK


@pytest.mark.parametrize("late", ["DATA", "HEADERS"])
def test_a_frame_after_a_requests_end_resets_its_stream_and_starts_no_second_call(
        late: str, served: Any, target: str, rows: np.ndarray) -> None:
    """RFC 9113 5.1: DATA or HEADERS on a stream whose request has ended (half-closed) is a stream error,
    STREAM_CLOSED. Stream 1 held open makes stream 3's call wait for the end of the loop's turn, so the frame
    after its END_STREAM arrives while it is open."""
    timed = served.timing(MODEL, VERSION)
    before = timed()[0]
    with RawConnection(target) as connection:
        after = (frame(DATA, END_STREAM, 3, length_prefixed(infer_message(rows[:2], "second"))) if late == "DATA" else
                 frame(HEADERS, END_HEADERS | END_STREAM, 3, connection.encoder.encode([("x-late", "1")])))
        connection.send(connection.headers(1), connection.headers(3),
                        frame(DATA, END_STREAM, 3, length_prefixed(infer_message(rows[:1], "first"))), after)
        ended = connection.answer(3).frames[-1]
        connection.ping()  # the connection goes on
    assert ended.kind == RST_STREAM and int.from_bytes(ended.payload, "big") == STREAM_CLOSED, ended
    assert timed()[0] - before == 1  # the first request's model call only


def test_a_client_goaway_closes_the_connection_once_its_calls_are_answered(target: str, reference,
                                                                           rows: np.ndarray) -> None:
    with RawConnection(target) as connection:
        message = length_prefixed(infer_message(rows[:1]))
        connection.send(connection.headers(1), frame(GOAWAY, 0, 0, (0).to_bytes(8, "big")))
        connection.ping()
        connection.send(frame(DATA, END_STREAM, 1, message))
        answer = connection.answer(1)
        assert connection.rest() == []
    assert answer.trailers["grpc-status"] == "0"


# ---------------------------------------------------------------- slow and many connections
def test_a_connection_without_the_preface_is_closed_after_the_header_timeout(impatient: str, reference,
                                                                          rows: np.ndarray) -> None:
    started = time.monotonic()
    with RawConnection(impatient, preface=False) as silent, RawConnection(impatient, preface=False) as partial, \
            RawConnection(impatient, preface=False) as idle:
        partial.send(PREFACE[:10])
        idle.send(PREFACE)  # the preface sent: an idle HTTP/2 connection stays
        assert [f.kind for f in silent.rest()] == [SETTINGS, WINDOW_UPDATE]
        assert partial.rest()
        waited = time.monotonic() - started
        assert 0.45 < waited < 5.0
        idle.send(idle.call(1, infer_message(rows[:1])))
        assert_answered(idle.answer(1), reference(rows[:1]))


def test_beyond_max_connections_a_connection_gets_goaway_enhance_your_calm(run_dir: Path, reference,
                                                                          rows: np.ndarray) -> None:
    with background(run_dir, max_connections=2) as running, RawConnection(running.grpc_target) as first, \
            RawConnection(running.grpc_target) as second:
        target = running.grpc_target
        first.ping(), second.ping()  # both accepted
        with RawConnection(target) as third:
            assert goaway(third.rest()) == (0, ENHANCE_YOUR_CALM)
        second.send(second.call(1, infer_message(rows[:1])))
        assert_answered(second.answer(1), reference(rows[:1]))  # the others are not disturbed
        first.close()
        for _ in range(100):  # the server sees the close within a turn of its loop
            if len(running.state.grpc_server.connections) < 2:
                break
            time.sleep(0.02)
        assert_served(target, reference, rows)


# ---------------------------------------------------------------- fuzzing
def _seed_payloads() -> list[bytes]:
    encoder = hpack.Encoder()
    request = [(":method", "POST"), (":scheme", "http"), (":path", INFER), (":authority", "x"),
               ("content-type", "application/grpc")]
    rows = np.zeros((1, FEATURES), np.float32)
    return [encoder.encode(request), encoder.encode(request),  # the second: indexed, the table's
            encoder.encode([*request, ("grpc-timeout", "1m")]), encoder.encode([*request, ("grpc-encoding", "gzip")]),
            encoder.encode([(":method", "GET"), (":path", "/")]), b"\x3f\xe1\x1f",  # a table size update
            *(encoder.encode([*request[:2], (":path", f"/inference.GRPCInferenceService/{name}"), *request[3:]])
              for name in ("ServerLive", "ModelReady", "ModelMetadata", "RepositoryIndex", "RepositoryModelUnload")),
            length_prefixed(infer_message(rows)), length_prefixed(gzipped(infer_message(rows)), compressed=True),
            length_prefixed(b"\xff\xff"), b"\x00\x00\x00\x00\x05",
            (65535).to_bytes(4, "big"), (0x7FFFFFFF).to_bytes(4, "big"), b"\x00\x04\x00\x00\x00\x00",
            b"\x00\x05\x00\x00\x40\x00", b"\x00\x01\x00\x00\x00\x00", b"12345678", b"\x00\x00\x00\x08"]


fuzz_frames = st.builds(
    frame,
    st.integers(0, 9) | st.integers(10, 255),
    st.sampled_from([0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS, PADDED, PADDED | END_HEADERS,
                     PRIORITY_FLAG | END_HEADERS]) | st.integers(0, 255),
    st.sampled_from([0, 1, 1, 3, 5, 2, 0x7FFFFFFF]) | st.integers(0, 2**32 - 1),
    st.sampled_from(_seed_payloads()) | st.binary(max_size=48)
    | st.tuples(st.binary(max_size=4), st.sampled_from(_seed_payloads())).map(b"".join))


@given(sequence=st.lists(fuzz_frames, min_size=1, max_size=8))
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_random_frame_sequences_neither_break_nor_hang_the_server(sequence: list[bytes], target: str, reference,
                                                                  rows: np.ndarray,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Each: a fresh connection, the preface, the frames, a PING; the server answers the PING or closes the
    connection (never hangs), logs no error, and a fresh connection is served after."""
    with RawConnection(target) as connection:
        connection.send(*sequence)
        connection.send(frame(PING, 0, 0, b"fuzzing!"))
        while (got := connection.read()) is not None:
            if got.kind == PING and got.flags & ACK and got.payload == b"fuzzing!":
                break
    assert_served(target, reference, rows)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


# ---------------------------------------------------------------- drain
def test_sigterm_answers_the_call_in_flight_refuses_new_ones_and_exits_0(run_dir: Path, reference,
                                                                         rows: np.ndarray) -> None:
    process = ServerProcess(str(run_dir), "--grpc-port", "0")
    assert process.grpc is not None
    try:
        message = length_prefixed(infer_message(rows[:5]))
        in_flight = RawConnection(process.grpc)  # closed by the server: checked below
        in_flight.send(in_flight.headers(1), frame(DATA, 0, 1, message[:100]))
        in_flight.ping()  # the server has stream 1 open
        with grpc.insecure_channel(process.grpc) as channel:
            infer = raw_infer(channel)
            infer(infer_message(rows[:1]), timeout=TIMEOUT)  # connected
            process.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            assert goaway(in_flight.until(lambda f: f.kind == GOAWAY)) == (1, NO_ERROR)
            in_flight.send(in_flight.call(3, infer_message(rows[:1])))  # a new call on the draining connection
            (refused,) = in_flight.until(lambda f: f.stream == 3)
            assert refused.kind == RST_STREAM and int.from_bytes(refused.payload, "big") == REFUSED_STREAM
            with pytest.raises(grpc.RpcError) as unavailable:
                infer(infer_message(rows[:1]), timeout=TIMEOUT)
            assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(ConnectionRefusedError):
            RawConnection(process.grpc)
        in_flight.send(frame(DATA, END_STREAM, 1, message[100:]))
        answer = in_flight.answer(1)
        assert_answered(answer, reference(rows[:5]))
        assert in_flight.rest() == []  # closed once its last call was answered
        in_flight.close()
        assert process.process.wait(TIMEOUT) == 0
        assert time.monotonic() - stopped < TIMEOUT  # the CLI's drain time is 30 s: no waiting for it
    finally:
        process.terminate()
    assert process.process.stderr is not None
    log = process.process.stderr.read()
    assert "Traceback" not in log, log[-2000:]


def test_an_answer_the_client_never_takes_holds_the_drain_no_longer_than_the_drain_time(
        run_dir: Path, rows: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    """A client with a shut window (INITIAL_WINDOW_SIZE 0) never lets its answer out: stopping waits the drain
    time, says so, and closes the connection."""
    from aios_serve.server import BackgroundServer, ServerSettings

    with BackgroundServer([run_dir], settings=ServerSettings(grpc_port=0), drain_seconds=1.0) as running, \
            RawConnection(running.grpc_target, settings=setting(INITIAL_WINDOW_SIZE, 0)) as connection:
        connection.send(connection.call(1, infer_message(rows[:1])))
        connection.until(lambda f: f.kind == HEADERS and f.stream == 1)  # answered, held by the window
        started = time.monotonic()
        running.stop()  # (and again on leaving the block: a no-op then)
        stopped = time.monotonic() - started
        frames = connection.rest()
    assert goaway(frames) == (1, NO_ERROR) and not [f for f in frames if f.kind == DATA]
    assert 0.9 < stopped < 5.0
    assert any("still in flight after 1 s of draining" in r.getMessage() for r in caplog.records)
