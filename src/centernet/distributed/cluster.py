"""Joining a Ray cluster (or starting Ray on this machine), the nodes it has, and whether
the node this process is attached to still answers.

Why the loopback handling: Ray turns a loopback address (``127.0.0.1:PORT``,
``localhost``) into this machine's interface address before it connects, also the node
address it is given. A cluster started on loopback (``node_ip_address`` 127.0.0.1: a
simulated cluster, a single machine that must not listen on its network) then cannot be
joined by its own address: ``ray.init`` retries the interface address and prints GCS
warnings for minutes. So ``connect`` first asks who answers: the address as Ray would
rewrite it (then Ray's own way works), or the loopback address as given (then this
process joins as a loopback node, Ray's rewrite switched off while it connects), or
nobody (an error at once, instead of Ray's minutes of retries).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from centernet.errors import CenterNetError, MissingDependencyError

if TYPE_CHECKING:
    from centernet.distributed.ray import RayConfig

PROBE_TIMEOUT_S = 2.0  # a TCP connect to a live GCS or raylet answers at once


@dataclass(frozen=True)
class NodeInfo:
    """A live node of the cluster and what it can hold."""

    node_id: str
    address: str
    cpus: float
    gpus: float
    head: bool
    port: int = 0  # its raylet's

    def answers(self) -> bool:
        """Whether its raylet still takes connections (a lost node's does not, well
        before the cluster lists it as dead)."""
        return bool(self.port) and answers(self.address, self.port, timeout=1.0)

    @property
    def short(self) -> str:
        """How messages name it: its id's first 8 characters and its address."""
        return f"{self.node_id[:8]} ({self.address})"


class ClusterLostError(CenterNetError):
    """The node this process is attached to (or the cluster's head) stopped answering."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


def connect(settings: RayConfig) -> list[NodeInfo]:
    """Join the cluster at ``settings.address`` or start Ray on this machine; its live
    nodes."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if settings.address:
            node_ip = settings.node_ip or _node_ip_for(settings.address)
            kwargs["address"] = settings.address
            if node_ip:
                kwargs["_node_ip_address"] = node_ip
            with _loopback_kept(node_ip):
                _init(ray, kwargs, settings.address)
        else:
            kwargs["num_cpus"] = os.cpu_count() or 1
            _init(ray, kwargs, None)
    return alive_nodes()


def _init(ray: Any, kwargs: dict[str, Any], address: str | None) -> None:
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"join the Ray cluster at {address}" if address else "start Ray"
        hint = (
            "; if this machine is in the cluster under another address, give it as `node_ip`"
            if address
            else ""
        )
        raise CenterNetError(f"cannot {where}: {exc}{hint}") from None


def _split(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``[v6]:port``; None for Ray's other forms
    (``auto``, ``ray://...``), which are passed on as they are."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def answers(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether something accepts a TCP connection at host:port."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _node_ip_for(address: str) -> str | None:
    """The node address this process must join as (None: leave it to Ray), or an error at
    once when nothing answers at ``address``."""
    parts = _split(address)
    if parts is None:
        return None
    host, port = parts
    if is_loopback(host):
        import ray.util

        if answers(ray.util.get_node_ip_address(), port):
            return None  # Ray's rewrite of the loopback address reaches the cluster
        if answers(host, port):
            return host  # a loopback cluster: join it as a loopback node
    elif answers(host, port):
        return None
    raise CenterNetError(
        f"nothing answers at {address} (`address`): start the cluster's head there first "
        f"(`ray start --head --port {port}`), or give the address `ray start` printed"
    )


@contextlib.contextmanager
def _loopback_kept(node_ip: str | None) -> Iterator[None]:
    """While connecting as a loopback node: Ray's rewrite of loopback addresses off (a
    private function of the pinned Ray; without it, the rewrite stays and the connection
    error says what to do)."""
    if not node_ip or not is_loopback(node_ip):
        yield
        return
    from ray._private import services

    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is None:
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


def alive_nodes() -> list[NodeInfo]:
    """The cluster's live nodes, the head first."""
    ray = require_ray()
    nodes = [
        NodeInfo(
            node_id=node["NodeID"],
            address=str(node.get("NodeManagerAddress", "?")),
            cpus=float(node["Resources"].get("CPU", 0.0)),
            gpus=float(node["Resources"].get("GPU", 0.0)),
            head="node:__internal_head__" in node["Resources"],
            port=int(node.get("NodeManagerPort") or 0),
        )
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return sorted(nodes, key=lambda n: (not n.head, n.node_id))


class AttachedNodeWatch:
    """Whether the node this process runs on (its raylet) and the cluster's GCS still
    answer. Ray itself only notices after a minute, and then ends the process from C++
    without a word; ``check`` raises ``ClusterLostError`` once they have not answered for
    ``grace_s``."""

    def __init__(self, grace_s: float, every_s: float = 1.0) -> None:
        ray = require_ray()
        context = ray.get_runtime_context()
        gcs_host, _, gcs_port = context.gcs_address.rpartition(":")
        self.targets = [(gcs_host.strip("[]"), int(gcs_port))]
        me = context.get_node_id()
        for node in ray.nodes():
            if node["NodeID"] == me and node.get("NodeManagerPort"):
                self.targets.append((node["NodeManagerAddress"], int(node["NodeManagerPort"])))
        self.grace_s, self.every_s = grace_s, every_s
        self._checked = 0.0
        self._silent_since: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return
        self._checked = now
        if all(answers(host, port, timeout=1.0) for host, port in self.targets):
            self._silent_since = None
            return
        self._silent_since = self._silent_since or now
        if now - self._silent_since >= self.grace_s:
            where = ", ".join(f"{h}:{p}" for h, p in self.targets)
            raise ClusterLostError(
                f"lost the Ray node this command runs on: {where} stopped answering "
                f"{self.grace_s:g} s ago"
            )
