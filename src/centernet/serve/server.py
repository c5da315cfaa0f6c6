"""Run the app under uvicorn on a socket bound before start-up, so that the address (and a
free port, with port 0) is known and reported only once the model is warm and the socket
accepts. SIGTERM and Ctrl-C stop accepting, let in-flight requests finish, then return.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from centernet.errors import CenterNetError
from centernet.serve.app import create_app
from centernet.serve.deadline import header_deadline_protocol
from centernet.serve.service import DetectionService

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CenterNetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, tls: bool = False) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_ready is not None and not self.should_exit:
            self._on_ready()


def make_server(
    service: DetectionService,
    on_ready: Callable[[], None] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> uvicorn.Server:
    """A uvicorn server of ``service``'s app: ``.run(sockets=[sock])`` serves until
    ``.should_exit`` is set (tests run it in a thread this way). TLS and the keep-alive
    timeout are the config's ``transport``; the receive deadline holds for headers here
    (uvicorn's protocol) and for bodies in the app (``deadline.ReceiveDeadline``)."""
    transport = service.config.transport
    receive_s = service.config.limits.receive_timeout_s
    config = uvicorn.Config(
        create_app(service),
        http=header_deadline_protocol(AutoHTTPProtocol, receive_s),
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=transport.keep_alive_s,
        ssl_certfile=transport.ssl_certfile,
        ssl_keyfile=transport.ssl_keyfile,
    )
    if transport.tls:
        try:
            config.load()  # reads the certificate and key now: a bad file is a one-line error
        except (OSError, ValueError) as exc:
            raise CenterNetError(f"cannot use the TLS certificate or key: {exc}") from None
    return _Server(config, on_ready)


def serve(
    service: DetectionService,
    sock: socket.socket,
    on_ready: Callable[[], None] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> str | None:
    """Serve until SIGTERM / SIGINT (main thread); returns the signal's name.

    In-flight requests are finished before it returns (the service is closed then).
    """
    server = make_server(service, on_ready, log_level, access_log)
    with _recorded_stop_signals() as received:
        server.run(sockets=[sock])
    return received[-1] if received else None


@contextmanager
def _recorded_stop_signals() -> Iterator[list[str]]:
    """Stop signals recorded instead of ending the process: uvicorn re-raises the signal
    that stopped it after draining, which would otherwise end us with status 143 / 130."""
    received: list[str] = []

    def record(number: int, _frame: object) -> None:
        received.append(signal.Signals(number).name)

    previous = {sig: signal.signal(sig, record) for sig in _STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
