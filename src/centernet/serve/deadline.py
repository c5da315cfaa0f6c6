"""Absolute deadlines for receiving a request: its headers, then its body.

uvicorn has neither: a client that trickles its body a byte a second keeps its connection,
a task and a growing body buffer for as long as it likes, and one that trickles its
headers (or opens a connection and sends nothing) keeps a connection forever.

- ``ReceiveDeadline``, ASGI middleware: ``seconds`` from the moment a request's headers are
  in to its last body byte; past that the route's read fails with 408 (a JSON error, as
  every error here), the answer says ``Connection: close`` and uvicorn closes the
  connection, which frees the buffer.
- ``header_deadline_protocol``: uvicorn's HTTP protocol with ``seconds`` from the
  connection (or the previous answer on it) to the end of the next request's headers;
  past that a started request is answered 408 and the connection closed (an idle one is
  closed without an answer, as uvicorn's keep-alive timeout does). It never reaches the
  app, so it is not in the request metrics.

They only limit waiting for the client: time spent in the model is ``--timeout-s``'s.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from centernet.serve.service import BadRequestError


class ReceiveTimeoutError(BadRequestError):
    """The body did not arrive in time (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request was not received within {seconds:g} s (--receive-timeout-s)", 408
        )


class ReceiveDeadline:
    """ASGI middleware: ``receive`` with a deadline, and the connection closed after a 408."""

    def __init__(self, app: Any, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the receive deadline must be positive")
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        received_all = timed_out = False

        async def receive_by_deadline() -> dict:
            nonlocal received_all, timed_out
            if received_all:  # only a disconnect can come now: nothing to limit
                return await receive()
            try:
                if hasattr(asyncio, "timeout_at"):  # Python 3.11+: no task per call
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                else:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                timed_out = True
                raise ReceiveTimeoutError(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                received_all = True
            return message

        async def send_closing(message: dict) -> None:
            if timed_out and message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_by_deadline, send_closing)


def header_deadline_protocol(base: type, seconds: float) -> type:
    """A subclass of uvicorn's HTTP protocol class ``base`` (httptools or h11: both keep
    the current request's cycle in ``.cycle``) that enforces the header deadline."""
    if seconds <= 0:
        raise ValueError("the receive deadline must be positive")
    message = f"the request's headers were not received within {seconds:g} s (--receive-timeout-s)"
    body = json.dumps({"error": message}).encode()
    late = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )

    class HeaderDeadline(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _bytes_since_armed = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._bytes_since_armed = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's headers are due from now

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._bytes_since_armed = False
            self._header_timer = self.loop.call_later(seconds, self._late, self.cycle)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _late(self, cycle_when_armed: Any) -> None:
            self._header_timer = None
            cycle = self.cycle
            started = cycle is not cycle_when_armed  # a request's headers came in time
            in_progress = cycle is not None and not cycle.response_complete
            if started or in_progress or self.transport.is_closing():
                return
            if self._bytes_since_armed:  # a request began and did not finish its headers
                self.transport.write(late)
            self.transport.close()

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
