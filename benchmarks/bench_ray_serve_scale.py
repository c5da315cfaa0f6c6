"""serve --ray --autoscale 1:2 under an open-loop load step, and a replica killed under load.

    python benchmarks/bench_ray_serve_scale.py --model runs/scale/dlav0_34_shapes6.fp32.onnx \
        --images /work/shared/data/shapes6/images [--max-batch 4] [--plot F.png]

On the simulated cluster of ``bench_ray_scale.py`` (a 0-CPU head, two 1-CPU nodes on
loopback, each pinned to a core), with the app and settings of ``serve --ray``:

1. one replica's capacity: a fixed single replica under a closed loop of 2 x max-batch
   clients for ``--capacity-s``: images/s (mu), and one batch's service time
   (max-batch / mu);
2. autoscaling 1:2 (the CLI's defaults: target 2 requests a replica, 2 s up, 20 s down)
   under an open-loop load (``serve/openloop.py``): 0.5 mu, then 2 mu, then 0.5 mu again.
   The replica count every 0.5 s; when the second replica was up after the step (goal:
   15 s, its start and model load included); p99 latency of the high phase's requests
   once two replicas run (goal: <= 2 x (a batch's service time + the batch wait)); the
   answers (goal: 200, or 503 when a full queue sheds); when it was back to one replica
   after the step down (goal: the downscale delay + 10 s);
3. mu (more than one replica can do at once, well within two) with clients that retry (4
   times, 0.5 s to 4 s apart); once two replicas run, one replica process is killed
   (SIGKILL): when two run again (goal: the health-check period + a model load), and
   whether every request succeeded in the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

from bench_ray_scale import start_cluster  # the same simulated cluster

from centernet.measure import describe_machine
from centernet.serve import LoadConfig, Phase, load_uploads, run_load, run_phases


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def deploy(args, address: str, scale) -> str:
    from centernet.distributed.ray import RayConfig, deploy_on_ray_serve
    from centernet.serve.config import BatchConfig, ServeConfig

    config = ServeConfig(
        args.model,
        threshold=0.3,
        batching=BatchConfig(args.max_batch, args.max_delay_ms / 1e3, args.max_queue),
    )
    url = deploy_on_ray_serve(config, "127.0.0.1", args.port, scale, RayConfig(address=address))
    wait_until(lambda: running() >= max(1, scale.autoscale[0] if scale.autoscale else 1), 300)
    return url


def running() -> int:
    from centernet.distributed.serve import replica_states

    return replica_states().get("RUNNING", 0)


def wait_until(condition, limit_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.25)
    return None


class Sampler:
    """The RUNNING replica count every 0.5 s, with seconds since ``start``."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self.start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.start, running()))
            self._stop.wait(0.5)

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def first(self, after: float, count: int) -> float | None:
        """Seconds after ``after`` until ``count`` replicas ran."""
        return next((t - after for t, n in self.samples if t >= after and n == count), None)


def capacity(args, address: str, uploads) -> tuple[float, float]:
    """(images/s of one replica, seconds of one full batch)."""
    from centernet.distributed.ray import ReplicaConfig

    url = deploy(args, address, ReplicaConfig(replicas=1))
    run_load(url, uploads, LoadConfig(concurrency=2, requests=8))  # warm
    result = run_load(
        url,
        uploads,
        LoadConfig(concurrency=2 * args.max_batch, requests=10_000, duration_s=args.capacity_s),
    )
    mu = result.images_per_s
    print(f"one replica: {mu:.2f} img/s (closed loop, {2 * args.max_batch} clients), "
          f"p50 {result.latency_ms(50):.0f} ms; one batch of {args.max_batch}: "
          f"{args.max_batch / mu:.2f} s", flush=True)  # fmt: skip
    return mu, args.max_batch / mu


def step(args, address: str, uploads, mu: float, batch_s: float) -> dict:
    from centernet.distributed.ray import ReplicaConfig

    scale = ReplicaConfig(autoscale=(1, 2))
    url = deploy(args, address, scale)
    wait_until(lambda: running() == 1, 120)
    phases = [
        Phase("low", 0.5 * mu, args.low_s),
        Phase("high", 2 * mu, args.high_s),
        Phase("low again", 0.5 * mu, scale.downscale_delay_s + 25),
    ]
    sampler = Sampler()
    sent = run_phases(url, uploads, phases)
    samples = sampler.stop()
    high_start, high_end = args.low_s, args.low_s + args.high_s
    up = sampler.first(high_start, 2)
    down = sampler.first(high_end, 1)
    steady_from = high_start + (up if up is not None else args.high_s) + scale.look_back_s
    steady = [s.latency for s in sent if steady_from <= s.at < high_end and s.status == 200]
    p99 = statistics.quantiles(steady, n=100)[98] if len(steady) >= 2 else float("nan")
    bound = 2 * (batch_s + args.max_delay_ms / 1e3)
    print(f"\nstep 0.5 mu -> 2 mu at {high_start:.0f} s, back at {high_end:.0f} s "
          f"(mu = {mu:.2f} img/s):")  # fmt: skip
    print(f"- second replica running {fmt(up)} after the step (goal <= 15 s)")
    print(f"- p99 in the steady high phase ({len(steady)} requests from {steady_from:.0f} s): "
          f"{p99:.2f} s (goal <= 2 x (batch {batch_s:.2f} s + wait) = {bound:.2f} s)")  # fmt: skip
    answered = [s.at + s.latency for s in sent if s.phase == "high"]
    drained = max(answered) - high_end if answered else 0.0
    print(f"- back to one replica {fmt(down)} after the step down (goal <= "
          f"{scale.downscale_delay_s + 10:.0f} s); the high phase's last answer came "
          f"{drained:.1f} s after the step down")  # fmt: skip
    for phase in phases:
        statuses = [s.status for s in sent if s.phase == phase.name]
        counts = {k: statuses.count(k) for k in sorted(set(statuses), key=str)}
        print(f"- {phase.name} ({phase.rate:.2f} req/s): {counts}")
    timeline(samples, sent, (high_start, high_end))
    return {"samples": samples, "sent": sent, "step": (high_start, high_end)}


def fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def timeline(samples, sent, step: tuple[float, float], every: float = 5.0) -> None:
    print("\n| t (s) | replicas | sent | 200 | 503 | other | p99 of 200s (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    end = max(t for t, _ in samples)
    t = 0.0
    while t < end:
        window = [s for s in sent if t <= s.at < t + every]
        replicas = [n for u, n in samples if t <= u < t + every] or [0]
        ok = [s.latency for s in window if s.status == 200]
        p99 = f"{statistics.quantiles(ok, n=100)[98]:.2f}" if len(ok) >= 2 else "-"
        other = sum(1 for s in window if s.status not in (200, 503))
        marker = " (step up)" if t <= step[0] < t + every else (
            " (step down)" if t <= step[1] < t + every else "")  # fmt: skip
        print(f"| {t:.0f}{marker} | {max(replicas)} | {len(window)} | "
              f"{sum(1 for s in window if s.status == 200)} | "
              f"{sum(1 for s in window if s.status == 503)} | {other} | {p99} |")  # fmt: skip
        t += every


def kill_under_load(args, uploads, mu: float) -> None:
    from centernet.distributed.ray import ReplicaConfig

    url = f"http://127.0.0.1:{args.port}"
    killed: dict[str, float] = {}

    def killer(sampler: Sampler) -> None:
        if wait_until(lambda: running() == 2, 60) is None:
            return
        time.sleep(3)
        pids = replica_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed["at"] = time.perf_counter() - sampler.start

    sampler = Sampler()
    thread = threading.Thread(target=killer, args=(sampler,), daemon=True)
    thread.start()
    sent = run_phases(url, uploads, [Phase("steady", mu, args.high_s)], retries=4)
    samples = sampler.stop()
    thread.join()
    if "at" not in killed:
        print("\nreplica kill: two replicas never ran; nothing killed")
        return
    dipped = next((t for t, n in samples if t >= killed["at"] and n < 2), None)
    back = next((t for t, n in samples if dipped is not None and t >= dipped and n == 2), None)
    statuses = [s.status for s in sent]
    retried = sum(1 for s in sent if s.tries > 1)
    health = ReplicaConfig().health_check_period_s
    print(f"\nreplica killed at {killed['at']:.1f} s under 1 mu, clients retrying 4 times: "
          f"two replicas again {fmt(None if back is None else back - killed['at'])} after "
          f"(goal: health check {health:g} s + a model load); answers in the end: "
          f"{ {k: statuses.count(k) for k in sorted(set(statuses), key=str)} }, "
          f"{retried} requests needed a retry")  # fmt: skip


def replica_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::ServeReplica:"):
                pids.append(int(proc.name))
    return pids


def plot(result: dict, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    times, counts = zip(*result["samples"])
    axis.step(times, counts, where="post", label="replicas running")
    ok = [(s.at, s.latency) for s in result["sent"] if s.status == 200]
    twin = axis.twinx()
    twin.plot(*zip(*ok), ".", markersize=2, color="grey", label="latency (s)")
    for x in result["step"]:
        axis.axvline(x, linestyle=":", color="black")
    axis.set_xlabel("s")
    axis.set_ylabel("replicas")
    twin.set_ylabel("latency of each 200 (s)")
    figure.savefig(path, dpi=100, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help="a folder; its last 32 are sent")
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--max-queue", type=int, default=2,
        help="waiting per replica beyond a running batch (and per proxy); beyond: 503",
    )  # fmt: skip
    parser.add_argument("--capacity-s", type=float, default=30.0)
    parser.add_argument("--low-s", type=float, default=20.0)
    parser.add_argument("--high-s", type=float, default=60.0)
    parser.add_argument("--plot", default=None, help="also draw replicas and latency here")
    parser.add_argument("--ray-address", default=None, help="a real cluster (default: simulate)")
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())  # the replicas run elsewhere
    args.port = free_port()
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".jpg")
    uploads = load_uploads(images[-32:])
    load_before = os.getloadavg()[0]
    cluster, address = (None, args.ray_address) if args.ray_address else start_cluster()
    try:
        print(f"machine: {describe_machine()}; model {args.model}; max batch "
              f"{args.max_batch}, max queue {args.max_queue}", flush=True)  # fmt: skip
        mu, batch_s = capacity(args, address, uploads)
        result = step(args, address, uploads, mu, batch_s)
        kill_under_load(args, uploads, mu)
        from centernet.distributed.serve import stop_ray_serve

        stop_ray_serve()
    finally:
        if cluster is not None:
            import ray

            ray.shutdown()
            cluster.shutdown()
    print(f"\nload average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
