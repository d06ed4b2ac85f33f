"""HTTP connections under the server's control: a header deadline, a connection cap, JSON for malformed requests.

uvicorn's HTTP protocol (httptools' when installed, else h11's: what uvicorn itself would
pick), with three changes a hostile or careless client needs:

- a connection that has not finished sending a request's headers within
  ``header_timeout`` seconds (idle from the start, or slow headers) gets
  ``408 {"error": ...}`` and is closed (idle keep-alive connections are closed by
  uvicorn's keep-alive timeout; slow bodies by the app's ``body_timeout``);
- beyond ``max_connections`` open connections, a new one gets ``503 {"error": ...}``
  with ``Retry-After`` and is closed at once;
- a request the parser refuses (a bad ``Content-Length``, a request line and headers over
  16 KiB, ...) gets the protocol's ``400 {"error": ...}`` instead of plain text;
- a response goes out in one write (one ``send`` system call) instead of uvicorn's two
  (status line and headers, then the body): the connection's transport holds the head
  until the body follows (``_OneWrite``), which on small answers saves about a tenth of
  the server's time per request;
- an inference request whose body arrived whole is answered without an ASGI task when its
  model is quick (``answer_now``); a small body that follows its headers in a later read
  (httpx writes the two separately) is waited for up to ``HOLD_SECONDS`` without a task,
  so such requests are answered the same way; when other clients are sending too (the previous
  inference request came from another connection), the requests read in one turn of the
  event loop run as one model call at the end of the turn (``Batcher.soon``) and each is
  written as its share comes back (``_reply``). One busy client is answered at once, as
  before, even with other connections open.
"""

from __future__ import annotations

import asyncio
from functools import partial
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.http.h11_impl import H11Protocol

from aios_serve._batching import LATER
from aios_serve._inference import ServerState


MAX_HEADER_BYTES = 16 * 1024
"""Largest request line and headers (h11's own limit; httptools has none)."""
HOLD_SECONDS = 0.05
"""How long an inference POST whose small body did not arrive with its headers waits for the rest of it without
an ASGI task (then its task starts, and the body's deadline, ``body_timeout``, runs from there)."""
HOLD_MAX_BYTES = 64 * 1024
"""Largest declared body held so (the app's ``OFF_LOOP_BYTES``: larger bodies are read and decoded by the task)."""
COUNTS_HEADERS = AutoHTTPProtocol is not H11Protocol
"""Whether this guard counts header bytes (under httptools); h11 refuses more than 16 KiB itself."""


_STATUS_LINE = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus}


def _raw_response(status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = orjson.dumps({"error": message})
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _OneWrite:
    """The connection's transport, holding a response's status line and headers until the next write.

    uvicorn writes a response's head and body separately; joined, they leave in one
    system call. Whatever is held is written before anything else: with the next write,
    on ``close``, and when the response completes (``flush``). Interim answers (``100 Continue``) are never held.
    """

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # never an interim 1xx answer
            self._held = data
        else:
            self._transport.write(data)

    def write_now(self, data: bytes) -> None:
        """Write a whole response at once (after anything held)."""
        held, self._held = self._held, None
        self._transport.write(data if held is None else held + data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Recent:
    """The connection of the server's latest inference request (one per server, shared by its connections)."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: Any = None


class _Guarded:
    """The changes, over either of uvicorn's HTTP protocols (``state`` is set by ``protocol_for``)."""

    state: ServerState
    connections: set[Any]
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport = _OneWrite(transport)  # type: ignore[assignment]
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_cycle: Any = None
        self._receiving = False
        self._header_bytes = 0
        self._in_headers = COUNTS_HEADERS
        if len(self.connections) > self.state.settings.max_connections:
            self.state.metrics.http_error(503)
            transport.write(_raw_response(503, f"too many connections (max_connections "
                                               f"{self.state.settings.max_connections}); retry shortly",
                                          (("retry-after", "1"),)))
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._release()  # its task sees the disconnection and answers and counts it as before
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        self._receiving = True
        if (self.cycle is None or self.cycle.response_complete) and self._header_timer is None:
            self._arm()
        if self._in_headers:
            self._header_bytes += len(data)
        self._feeding = True
        try:
            super().data_received(data)  # type: ignore[misc]
        finally:
            self._feeding = False
        if self._deferred is not None:
            cycle, app = self._deferred
            self._deferred = None
            if cycle.more_body and _may_hold(cycle):
                self._held = (cycle, app, self.loop.call_later(HOLD_SECONDS, self._release))
            else:
                self._answer_now(cycle, app)
        elif self._held is not None and not self._held[0].more_body:
            cycle, app, timer = self._held
            self._held = None
            timer.cancel()
            self._answer_now(cycle, app)
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self.send_400_response(f"the request line and headers exceed {MAX_HEADER_BYTES // 1024} KiB")

    # answering a quick inference request without an ASGI task (httptools only; h11's protocol starts its
    # tasks elsewhere and keeps the ASGI path)
    _feeding = False
    _deferred: tuple[Any, Any] | None = None
    _held: tuple[Any, Any, asyncio.TimerHandle] | None = None
    """A request waiting for the rest of its small body without a task (``HOLD_SECONDS``), its app and timer."""
    _defaults: Any = None
    _default_lines = b""
    _recent: _Recent

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """While a read is being parsed, hold an inference POST's task back: its body may be complete once
        the parser is done with the data (``_answer_now``)."""
        if self._feeding and self._deferred is None and cycle.scope["method"] == "POST" \
                and self.state.answer_now is not None:
            self._deferred = (cycle, app)
            return
        super()._start_asgi_task(cycle, app)  # type: ignore[misc]

    def _release(self) -> None:
        """Start the held request's ASGI task: its body did not follow within ``HOLD_SECONDS``, or the
        connection was lost."""
        if self._held is not None:
            cycle, app, timer = self._held
            self._held = None
            timer.cancel()
            super()._start_asgi_task(cycle, app)  # type: ignore[misc]

    def _answer_now(self, cycle: Any, app: Any) -> None:
        """Answer the held request at once when its body is whole and the app can (``answer_now``), as
        uvicorn's ``send`` would have written it; else start its ASGI task after all."""
        answer = None
        if not cycle.more_body and not cycle.disconnected and self.cycle is cycle and not self.transport.is_closing():
            # requests read in this turn of the loop may share one model call when other clients are sending too:
            # the previous request came from another connection (one busy client among idle ones is never held)
            reply = None
            recent = self._recent
            if recent.connection is not self:
                recent.connection = self
                if len(self.connections) > 1:
                    reply = partial(self._reply, cycle)
            answer = self.state.answer_now(cycle.scope, cycle.body, reply)  # type: ignore[misc]
        if answer is None:
            super()._start_asgi_task(cycle, app)  # type: ignore[misc]
            return
        if answer is not LATER:
            self._write_answer(cycle, answer)

    def _reply(self, cycle: Any, answer: tuple[int, bytes, bytes]) -> None:
        """Write the answer to a request that ran later in the turn, unless its client went away meanwhile."""
        if self.cycle is cycle and not cycle.disconnected and not self.transport.is_closing():
            self._write_answer(cycle, answer)

    def _write_answer(self, cycle: Any, answer: tuple[int, bytes, bytes]) -> None:
        status, lines, content = answer
        defaults = cycle.default_headers
        if defaults is not self._defaults:  # uvicorn replaces the list when its Date header changes
            self._defaults, self._default_lines = defaults, b"".join(k + b": " + v + b"\r\n" for k, v in defaults)
        head = (_STATUS_LINE[status], self._default_lines, lines,
                b"\r\n" if cycle.keep_alive else b"connection: close\r\n\r\n", content)
        cycle.response_started = True
        cycle.response_complete = True
        cycle.message_event.set()
        self.transport.write_now(b"".join(head))  # type: ignore[attr-defined]
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    # httptools' parser callbacks (h11 enforces the same limit itself: _in_headers stays false there)
    def on_message_begin(self) -> None:
        self._in_headers = True
        super().on_message_begin()  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        super().on_message_complete()  # type: ignore[misc]
        self._in_headers = COUNTS_HEADERS  # the next bytes start the next request's headers
        self._header_bytes = 0

    def on_response_complete(self) -> None:
        self._receiving = False
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()  # type: ignore[misc]

    def _arm(self) -> None:
        self._armed_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.state.settings.header_timeout, self._header_expired)

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # the headers arrived: the body's deadline is the app's
        if self.cycle is not self._armed_cycle:
            self._arm()  # requests were answered meanwhile: time the current one afresh
            return
        if self.cycle is not None and not self._receiving:
            self.transport.close()  # an idle keep-alive connection: closed without an answer
            return
        self.state.metrics.http_error(408)
        self.transport.write(_raw_response(408, "the request's headers did not arrive within "
                                                f"{self.state.settings.header_timeout:g} s"))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.state.metrics.http_error(400)
        message = (f"malformed HTTP request ({msg.rstrip('.')}): check Content-Length, header sizes (16 KiB at "
                   "most) and the request line")
        self.transport.write(_raw_response(400, message))
        self.transport.close()


def _may_hold(cycle: Any) -> bool:
    """Whether a request whose body is still arriving may wait for it without a task: a declared length of at most
    ``HOLD_MAX_BYTES`` (no chunked body), and no ``Expect: 100-continue`` (its client waits for the task's
    ``100 Continue`` before sending the body)."""
    if cycle.waiting_for_100_continue or cycle.disconnected:
        return False
    for key, value in cycle.scope["headers"]:
        if key == b"content-length":
            return value.isdigit() and int(value) <= HOLD_MAX_BYTES
    return False


def protocol_for(state: ServerState) -> type[asyncio.Protocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``state``."""
    return type("AiosServeProtocol", (_Guarded, AutoHTTPProtocol), {"state": state, "_recent": _Recent()})
