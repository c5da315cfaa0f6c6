"""An absolute deadline for receiving a request's body.

uvicorn has none: a client that trickles its body a byte a second keeps its connection, a
task and a growing body buffer for as long as it likes. This ASGI middleware gives each
request ``seconds`` from the moment its headers are in to its last body byte; past that the
route's read fails with 408 (a JSON error, as every error here), the answer says
``Connection: close`` and uvicorn closes the connection, which frees the buffer.

It only limits waiting for the client: time spent in the model is ``--timeout-s``'s.
"""

from __future__ import annotations

import asyncio
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
