"""Which node address a command joins as: Ray's own choice where the cluster answers on
this machine's interface address, the loopback address where it listens on loopback
only, and an error at once where nothing answers (Ray itself retries for minutes)."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from centernet.distributed.cluster import _node_ip_for, is_loopback  # noqa: E402
from centernet.errors import CenterNetError, as_command_line  # noqa: E402


def listening(host: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_a_cluster_on_loopback_only_is_joined_as_a_loopback_node():
    with listening("127.0.0.1") as sock:
        assert _node_ip_for(f"127.0.0.1:{sock.getsockname()[1]}") == "127.0.0.1"


def test_a_cluster_on_every_interface_is_left_to_ray():
    with listening("0.0.0.0") as sock:
        assert _node_ip_for(f"127.0.0.1:{sock.getsockname()[1]}") is None


def test_nothing_answering_is_an_error_at_once_that_says_what_to_do():
    with listening("127.0.0.1") as sock:
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    started = time.monotonic()
    with pytest.raises(CenterNetError) as error:
        _node_ip_for(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10
    message = as_command_line(str(error.value))
    assert f"nothing answers at 127.0.0.1:{port} (--ray-address)" in message
    assert f"ray start --head --port {port}" in message


def test_other_address_forms_are_passed_to_ray():
    assert _node_ip_for("auto") is None and _node_ip_for("ray://head:10001") is None
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("10.0.0.1")
