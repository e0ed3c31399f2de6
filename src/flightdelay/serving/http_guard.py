"""Slow-client limits for ``flightdelay serve``: uvicorn's httptools protocol plus deadlines.

uvicorn (0.54) has a keep-alive timeout and ``limit_concurrency`` but no deadline for reading a
request: a connection that never sends a byte, or trickles its headers or body one byte at a
time, stays open for ever, and enough of them exhaust the process's file descriptors (a real
request then gets a connection reset). This protocol, passed to uvicorn as its ``http`` class,
adds three limits, all per worker process:

* ``header_timeout_s``: a request's line and headers must arrive within this time of the
  connection opening (or of the first byte of the next request on a kept-alive connection);
* ``body_timeout_s``: its body must arrive within this time of the headers;
* ``max_connections``: a connection beyond this many open ones is answered ``503`` and closed at
  once, so file descriptors stay bounded and a caller sees an answer, not a reset.

A connection past a deadline is answered ``408`` when no response has started, then closed.
Hand-written because none of uvicorn's options does this (benchmarks/serve.py measures it
against the stock server); everything else is uvicorn's own code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("flightdelay.serving.serve")


def _answer(status: bytes, error: str) -> bytes:
    body = b'{"error": "%s", "detail": []}' % error.encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (status, len(body), body)
    )


_BUSY = _answer(b"503 Service Unavailable", "too many open connections, retry later")


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol with read deadlines and a connection cap (see module doc)."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    @classmethod
    def configure(cls, limits: Limits) -> None:
        """Set the limits of every connection opened from now on in this process."""
        cls.limits = limits

    # ------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.server_state.connections) >= self.limits.max_connections:
            self._refused = True
            log.warning(
                "refused a connection: %d open (FLIGHTDELAY_MAX_CONNECTIONS)",
                len(self.server_state.connections),
            )
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request starts now
            self._arm(self.limits.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # ------------------------------------------------------------ deadlines

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, part, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, part: str, seconds: float) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        setting = "HEADER" if part == "headers" else "BODY"
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(
                _answer(
                    b"408 Request Timeout",
                    f"request {part} not received within {seconds:g} s "
                    f"(FLIGHTDELAY_{setting}_TIMEOUT_S)",
                )
            )
        self.transport.close()
