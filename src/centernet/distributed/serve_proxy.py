"""The plain server's header deadline in Ray Serve's HTTP proxies.

A Ray Serve replica (our app) sees a request only once its headers are in, so its
``ReceiveDeadline`` limits the body but cannot cut off a client that trickles its headers
or opens a connection and sends nothing: that wait happens in the proxy's own uvicorn,
which has no limit. Ray Serve calls the function named by
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` in each proxy process before the proxy starts
its server; ``install`` (named there through the Serve controller's environment, which its
proxies inherit) makes that server's HTTP protocol ``deadline.header_deadline_protocol``,
as ``serve/server.py`` does for the plain server. It replaces ``uvicorn.Config`` in the
proxy process only, with a subclass that passes our protocol class when no other is asked
for (Ray Serve asks for none).
"""

from __future__ import annotations

import os
from typing import Any

SECONDS_ENV = "CENTERNET_RECEIVE_TIMEOUT_S"
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"


def proxy_environment(config: Any) -> dict[str, str]:
    """The environment of the Serve controller (and so of its proxies) that installs the
    header deadline of ``config`` (a ServeConfig) in every proxy."""
    return {
        CALLBACK_ENV: f"{__name__}:install",
        SECONDS_ENV: repr(float(config.limits.receive_timeout_s)),
    }


def install() -> list:
    """Ray Serve's proxy callback: the header deadline in this proxy's uvicorn; no
    middleware (the body deadline is the replicas' app's own)."""
    seconds = float(os.environ.get(SECONDS_ENV) or 0)
    if seconds <= 0:
        return []
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from centernet.serve.deadline import header_deadline_protocol

    protocol = header_deadline_protocol(AutoHTTPProtocol, seconds)
    base = uvicorn.Config

    class DeadlineConfig(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("http", "auto") == "auto":
                kwargs["http"] = protocol
            super().__init__(*args, **kwargs)

    uvicorn.Config = DeadlineConfig  # type: ignore[misc]
    return []
