"""Who may call the server: with API keys every route but the health probes and the page
needs `Authorization: Bearer KEY`; a missing or wrong key is 401 (JSON, WWW-Authenticate),
counted, and never reaches the model; /metrics is open only with metrics_public; CORS for
other sites' pages; TLS with a self-signed certificate; keys never logged; a receive
deadline that answers slow clients 408 while others are served; the keep-alive timeout."""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import signal
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import replace

import pytest
from starlette.routing import Mount

from centernet.cli import main
from centernet.errors import CenterNetError
from centernet.runtime.detector import Detector
from centernet.serve.auth import BearerAuth, bearer_token, read_api_keys
from centernet.serve.client import detect as client_detect
from centernet.serve.config import AccessConfig, TransportConfig
from centernet.serve.service import DetectionService
from tests.helpers import assert_detections_close
from tests.serve.helpers import (
    THRESHOLD,
    RunningServer,
    metric,
    request,
    self_signed_certificate,
    serve_process,
    stderr_of,
    tiny_config,
)

KEY = "k3y-for-tests_0123456789"
FILE_KEY = "another.key~from/the+file="
JPEG = {"Content-Type": "image/jpeg"}
# Authorization headers that must not let a request in, and what the server calls them
REFUSED = [
    (f"Bearer {KEY[:-1]}", "wrong"),  # a prefix
    (f"Bearer {KEY}x", "wrong"),  # one character more
    (f"Bearer {KEY.upper()}", "wrong"),
    (f"Bearer {FILE_KEY[::-1]}", "wrong"),
    ("Bearer", "missing"),  # no token
    (f"Basic {base64.b64encode(KEY.encode()).decode()}", "missing"),  # not a bearer token
    (KEY, "missing"),  # no scheme
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def infer_body(photo: bytes) -> bytes:
    tensor = {"name": "IMAGE", "datatype": "BYTES", "shape": [1],
              "data": [base64.b64encode(photo).decode()]}  # fmt: skip
    return json.dumps({"inputs": [tensor]}).encode()


def closed_routes(photo: bytes) -> list[tuple[str, str, bytes | None, dict, int]]:
    """(method, path, body, headers, status with a right key) for every route that needs
    a key; an unknown route answers 401 before 404, so that it reveals nothing."""
    infer = infer_body(photo)
    return [
        ("POST", "/v1/detect", photo, JPEG, 200),
        ("GET", "/v2", None, {}, 200),
        ("POST", "/v2/repository/index", b"", {}, 200),
        ("GET", "/v2/models/tiny", None, {}, 200),
        ("GET", "/v2/models/tiny/ready", None, {}, 200),
        ("POST", "/v2/models/tiny/infer", infer, {}, 200),
        ("GET", "/v2/models/tiny/versions/1", None, {}, 200),
        ("GET", "/v2/models/tiny/versions/1/ready", None, {}, 200),
        ("POST", "/v2/models/tiny/versions/1/infer", infer, {}, 200),
        ("GET", "/metrics", None, {}, 200),
        ("GET", "/openapi.json", None, {}, 200),
        ("GET", "/v1/classify", None, {}, 404),
    ]


OPEN_ROUTES = ["/v2/health/live", "/v2/health/ready", "/", "/ui/app.js", "/ui/app.css"]


@pytest.fixture(scope="module")
def photo(photo_paths) -> bytes:
    return photo_paths[0].read_bytes()


@pytest.fixture(scope="module")
def keyed(tiny_onnx_dynamic):
    config = tiny_config(tiny_onnx_dynamic, access=AccessConfig(api_keys=(KEY, FILE_KEY)))
    with RunningServer(DetectionService(config)) as running:
        yield running


def assert_refused(answer, reason: str, sent: str = "") -> None:
    assert answer.status == 401, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="centernet"')
    assert ('error="invalid_token"' in challenge) == (reason == "wrong")
    error = answer.json["error"]
    assert ("wrong API key" if reason == "wrong" else "Authorization: Bearer KEY") in error
    for secret in (KEY, FILE_KEY, sent):  # no key is echoed, given or configured
        if len(secret) > 3:
            assert secret not in answer.body.decode() and secret not in challenge


def test_every_route_of_the_app_is_either_closed_or_open_here(keyed, photo):
    """A route added later must be put in one of the two lists (and so be tested)."""
    listed = {path for _, path, *_ in closed_routes(photo)} | set(OPEN_ROUTES)
    for route in keyed.server.config.app.routes:
        if isinstance(route, Mount):
            assert f"{route.path}/app.js" in listed, route.path
        else:
            path = route.path.replace("{name}", "tiny").replace("{version}", "1")
            assert path in listed, f"{route.path} is in neither list"


def test_each_route_with_no_key_wrong_keys_and_right_keys(keyed, photo):
    before = keyed.metrics(bearer(KEY))
    routes = closed_routes(photo)
    for method, path, body, headers, status in routes:
        assert_refused(keyed.request(method, path, body, headers), "missing")
        for authorization, reason in REFUSED:
            answer = keyed.request(method, path, body, {**headers, "Authorization": authorization})
            assert_refused(answer, reason, authorization.partition(" ")[2])
        for key in (KEY, FILE_KEY):  # both keys, the scheme in any case
            for scheme in ("Bearer", "bearer"):
                answer = keyed.request(
                    method, path, body, {**headers, "Authorization": f"{scheme} {key}"}
                )
                assert answer.status == status, (method, path, answer.status, answer.body)
    after = keyed.metrics(bearer(KEY))
    wrong = sum(reason == "wrong" for _, reason in REFUSED)
    counts = {"missing": len(routes) * (1 + len(REFUSED) - wrong), "wrong": len(routes) * wrong}
    for reason, count in counts.items():
        name = f'centernet_auth_failures_total{{reason="{reason}"}}'
        assert metric(after, name) - metric(before, name) == count, reason


def test_health_probes_and_the_page_need_no_key(keyed):
    for path in OPEN_ROUTES:
        answer = keyed.request("GET", path)
        assert answer.status == 200, (path, answer.body)
    assert keyed.request("GET", "/v2/health/ready").json == {"ready": True}


def test_metrics_are_open_only_with_metrics_public(tiny_onnx_dynamic, keyed, photo):
    assert_refused(keyed.request("GET", "/metrics"), "missing")
    access = AccessConfig(api_keys=(KEY,), metrics_public=True)
    with RunningServer(DetectionService(tiny_config(tiny_onnx_dynamic, access=access))) as s:
        answer = s.request("GET", "/metrics")
        assert answer.status == 200 and "centernet_auth_failures_total" in answer.body.decode()
        assert_refused(s.request("POST", "/v1/detect", photo, JPEG), "missing")
        assert s.request("POST", "/v1/detect", photo, {**JPEG, **bearer(KEY)}).status == 200


def test_wrong_keys_never_reach_the_model(tiny_onnx_dynamic, photo):
    service = DetectionService(tiny_config(tiny_onnx_dynamic, access=AccessConfig(api_keys=(KEY,))))
    calls: list[int] = []
    detect = service.detect

    async def counted(images, config):
        calls.append(len(images))
        return await detect(images, config)

    service.detect = counted  # type: ignore[method-assign]
    with RunningServer(service) as server:
        statuses: list[int] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            for i in range(50):
                authorization, _ = REFUSED[(index + i) % len(REFUSED)]
                if i % 2:
                    answer = server.request("POST", "/v2/models/tiny/infer", infer_body(photo),
                                            {"Authorization": authorization})  # fmt: skip
                else:
                    answer = server.request(
                        "POST", "/v1/detect", photo, {**JPEG, "Authorization": authorization}
                    )
                with lock:
                    statuses.append(answer.status)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [401] * 200
        text = server.metrics(bearer(KEY))
        assert calls == []
        assert metric(text, "centernet_images_total") == 0
        assert metric(text, "centernet_inference_seconds_count") == 0
        failures = "centernet_auth_failures_total"
        refused = sum(metric(text, failures, f'{{reason="{r}"}}') for r in ("missing", "wrong"))
        assert refused == 200
        # the same request with the key does reach it: the counters above can move
        answer = server.request("POST", "/v1/detect", photo, {**JPEG, **bearer(KEY)})
        assert answer.status == 200 and calls == [1]
        assert metric(server.metrics(bearer(KEY)), "centernet_images_total") == 1


def test_cors_only_for_the_origins_given(tiny_onnx_dynamic, keyed, photo):
    site = "https://viewer.example"
    preflight = {
        "Origin": site, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }  # fmt: skip
    # the default: no origin is allowed, no CORS header on any answer
    answer = keyed.request("POST", "/v1/detect", photo, {**JPEG, **bearer(KEY), "Origin": site})
    assert answer.status == 200 and "access-control-allow-origin" not in answer.headers
    access = AccessConfig(api_keys=(KEY,), cors_origins=(site,))
    with RunningServer(DetectionService(tiny_config(tiny_onnx_dynamic, access=access))) as s:
        answer = s.request("OPTIONS", "/v1/detect", None, preflight)  # a preflight has no key
        assert answer.status == 200, answer.body
        assert answer.headers["access-control-allow-origin"] == site
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        refused = s.request("POST", "/v1/detect", photo, {**JPEG, "Origin": site})
        assert_refused(refused, "missing")  # and its page can read why
        assert refused.headers["access-control-allow-origin"] == site
        assert "server-timing" in refused.headers["access-control-expose-headers"].lower()
        ok = s.request("POST", "/v1/detect", photo, {**JPEG, **bearer(KEY), "Origin": site})
        assert ok.status == 200 and ok.headers["access-control-allow-origin"] == site
        other = s.request("OPTIONS", "/v1/detect", None, {**preflight, "Origin": "https://evil"})
        assert other.status == 400 and "access-control-allow-origin" not in other.headers


def test_api_keys_from_arguments_and_a_file(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the viewer\n{FILE_KEY}\n\n  {KEY}  \n# old: none\n{FILE_KEY}\n")
    assert read_api_keys([None], keys) == (FILE_KEY, KEY)
    assert read_api_keys(["given"], keys) == ("given", FILE_KEY, KEY)
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    with pytest.raises(CenterNetError, match="holds no key"):
        read_api_keys([], tmp_path / "empty.txt")
    with pytest.raises(CenterNetError, match="cannot read the API key file"):
        read_api_keys([], tmp_path / "missing.txt")
    (tmp_path / "spaced.txt").write_text("good\nsecret with-space\n")
    with pytest.raises(CenterNetError, match="line 2 of .*without spaces") as error:
        read_api_keys([], tmp_path / "spaced.txt")
    assert "secret" not in str(error.value)  # the place is named, never the key
    assert KEY not in repr(AccessConfig(api_keys=(KEY,)))


def test_bearer_tokens_are_parsed_and_compared_with_every_key():
    def scope(*values: bytes) -> dict:
        return {"headers": [(b"authorization", v) for v in values]}

    assert bearer_token(scope(b"Bearer abc")) == b"abc"
    assert bearer_token(scope(b"bEaReR   abc  ")) == b"abc"
    assert bearer_token(scope(b"Basic abc")) is None
    assert bearer_token(scope(b"Bearer ")) is None
    assert bearer_token({"headers": []}) is None
    auth = BearerAuth(None, ["first", "second-key"], AccessConfig(), failures=None)
    assert auth.accepts(b"first") and auth.accepts(b"second-key")
    assert not auth.accepts(b"firs") and not auth.accepts(b"second-keyy")
    assert not auth.accepts(b"") and not auth.accepts("first".encode("utf-16"))


def test_a_public_address_without_a_key_or_tls_is_warned_about_in_one_line():
    from centernet.cli.serve import describe_access

    [line] = describe_access(AccessConfig(), "0.0.0.0")
    assert "warning" in line and "without --api-key" in line and "\n" not in line
    assert describe_access(AccessConfig(), "127.0.0.1") == []
    assert describe_access(AccessConfig(), "::1") == []
    keys = AccessConfig(api_keys=("a", "b"))
    assert describe_access(keys, "0.0.0.0", tls=True) == [
        "centernet: 2 API keys; /metrics needs a key"
    ]
    count, warning = describe_access(keys, "0.0.0.0")  # keys, but in the clear
    assert "warning" in warning and "unencrypted" in warning and "\n" not in warning
    assert describe_access(keys, "127.0.0.1") == [count]


def test_https_with_keys_from_the_environment_and_a_file(
    tiny_onnx_dynamic, photo_paths, tmp_path, monkeypatch, capsys
):
    """`centernet serve` with TLS and keys; the client and `loadtest` with --api-key and
    --cafile; nothing the server printed holds a key."""
    cert, private_key = self_signed_certificate(tmp_path)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# viewers\n{FILE_KEY}\n")
    monkeypatch.setenv("CENTERNET_API_KEY", KEY)
    options = ("--threshold", str(THRESHOLD), "--ssl-certfile", str(cert), "--ssl-keyfile",
               str(private_key), "--api-key-file", str(keys), "--access-log")  # fmt: skip
    with serve_process(tiny_onnx_dynamic, *options) as (process, url):
        assert url.startswith("https://127.0.0.1:")
        want = Detector(tiny_onnx_dynamic, threshold=THRESHOLD)([str(photo_paths[0])])[0]
        for key in (KEY, FILE_KEY):
            found = client_detect(url, photo_paths[0], api_key=key, cafile=cert)
            assert_detections_close(found, want, atol=0.006, score_atol=1e-5)
        with pytest.raises(CenterNetError, match="server answered 401: wrong API key"):
            client_detect(url, photo_paths[0], api_key="nope", cafile=cert)
        with pytest.raises(CenterNetError, match="CERTIFICATE_VERIFY_FAILED"):
            client_detect(url, photo_paths[0], api_key=KEY)  # not trusted without --cafile
        try:  # no plain HTTP on the TLS port
            status = request(url.replace("https://", "http://"), "GET", "/v2/health/live").status
        except (OSError, http.client.HTTPException):
            status = None
        assert status != 200
        context = ssl.create_default_context(cafile=str(cert))
        assert request(url, "GET", "/v2/health/live", context=context).status == 200
        folder = tmp_path / "images"
        folder.mkdir()
        os.symlink(photo_paths[0], folder / photo_paths[0].name)
        out = tmp_path / "load.json"
        monkeypatch.delenv("CENTERNET_API_KEY")
        code = main(["loadtest", url, "--images", str(folder), "--concurrency", "2",
                     "--requests", "4", "--warmup", "0", "--api-key", FILE_KEY,
                     "--cafile", str(cert), "--json", str(out)])  # fmt: skip
        assert code == 0, capsys.readouterr().out
        [level] = json.loads(out.read_text())["levels"]
        assert level["ok"] == 4 and level["mean_batch_size"] is not None  # /metrics read too
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        process.reader.join(10)
        logged = stderr_of(process) + "".join(process.printed)  # notes, the access log
        assert "1 API key; /metrics needs a key" not in logged  # two keys: env and file
        assert "2 API keys; /metrics needs a key" in logged
        assert "POST /v1/detect" in logged  # the access log was on
        for secret in (KEY, FILE_KEY, "nope"):
            assert secret not in logged


# -- slow clients ------------------------------------------------------------------------


def test_trickling_clients_get_408_by_the_deadline_while_others_are_served(
    tiny_onnx_dynamic, photo
):
    deadline_s, clients = 3.0, 20
    config = tiny_config(tiny_onnx_dynamic)
    config = replace(config, limits=replace(config.limits, receive_timeout_s=deadline_s))
    with RunningServer(DetectionService(config)) as server:
        parts = urllib.parse.urlsplit(server.url)
        served: list[int] = []
        done = threading.Event()

        def normal_client() -> None:
            while not done.is_set():
                served.append(server.request("POST", "/v1/detect", photo, JPEG).status)
                time.sleep(0.1)

        normal = threading.Thread(target=normal_client)
        normal.start()
        socks, started, answers = [], [], {}
        for _ in range(clients):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg"
                         b"\r\nContent-Length: 100000\r\n\r\n")  # fmt: skip
            socks.append(sock)
            started.append(time.perf_counter())
        sent = 0
        give_up = time.perf_counter() + deadline_s + 10
        while len(answers) < clients and time.perf_counter() < give_up:
            for i, sock in enumerate(socks):  # a byte a second, until just before the deadline
                # (a byte that crosses the server's 408 on the wire makes the server's
                # kernel answer it with a reset, which can discard the 408 unread: TCP)
                if i not in answers and time.perf_counter() - started[i] < deadline_s - 0.5:
                    sock.sendall(photo[sent : sent + 1])
            sent += 1
            until = time.perf_counter() + 1.0
            while len(answers) < clients and (left := until - time.perf_counter()) > 0:
                waiting = [s for i, s in enumerate(socks) if i not in answers]
                for sock in select.select(waiting, [], [], left)[0]:
                    i = socks.index(sock)
                    answers[i] = (time.perf_counter() - started[i], read_until_closed(sock))
        done.set()
        normal.join()
        for sock in socks:
            sock.close()
        assert len(answers) == clients, f"{clients - len(answers)} trickling clients unanswered"
        assert sent >= 3  # they did trickle: a byte a second until answered
        for seconds, response in answers.values():
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), head
            assert b"connection: close" in head.lower()
            assert "--receive-timeout-s" in json.loads(body)["error"]
            assert deadline_s - 0.05 <= seconds <= deadline_s + 1.5, seconds
        assert len(served) >= 5 and set(served) == {200}, served
        # every connection is gone (their body buffers with them)
        connections = server.server.server_state.connections
        wait_until(lambda: len(connections) == 0)


def test_trickled_headers_and_idle_connections_are_cut_off_by_the_deadline(tiny_onnx_dynamic):
    deadline_s = 2.0
    config = tiny_config(tiny_onnx_dynamic)
    config = replace(config, limits=replace(config.limits, receive_timeout_s=deadline_s))
    with RunningServer(DetectionService(config)) as server:
        parts = urllib.parse.urlsplit(server.url)
        address = (parts.hostname, parts.port)
        idle = socket.create_connection(address, timeout=10)  # sends nothing at all
        trickler = socket.create_connection(address, timeout=10)
        busy = socket.create_connection(address, timeout=10)  # keep-alive, a request each 0.4 s
        started = time.perf_counter()
        head = b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
        answers = []
        for i in range(len(head)):
            if select.select([trickler], [], [], 0)[0]:
                break
            trickler.sendall(head[i : i + 1])
            if i % 2 == 0:  # the other client's requests, on one connection, keep working
                busy.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
                answers.append(busy.recv(65536))
            time.sleep(0.2)
        response = read_until_closed(trickler)
        cut = time.perf_counter() - started
        head_of, _, body = response.partition(b"\r\n\r\n")
        assert head_of.startswith(b"HTTP/1.1 408 "), response
        assert "headers were not received within 2 s" in json.loads(body)["error"]
        assert deadline_s - 0.05 <= cut <= deadline_s + 1.5, cut
        assert read_until_closed(idle) == b""  # closed, without an answer to nothing
        assert time.perf_counter() - started <= deadline_s + 1.5
        assert len(answers) >= 3 and all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
        busy.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")  # still open after the deadline
        for sock in (idle, trickler, busy):
            sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached"
        time.sleep(0.02)


def test_idle_keep_alive_connections_close_after_the_timeout(tiny_onnx_dynamic):
    config = tiny_config(tiny_onnx_dynamic, transport=TransportConfig(keep_alive_s=1))
    with RunningServer(DetectionService(config)) as server:
        parts = urllib.parse.urlsplit(server.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in first
            answered = time.perf_counter()
            assert read_until_closed(sock) == b""  # nothing more; then the server closes
            assert 0.8 <= time.perf_counter() - answered <= 3.0


def test_the_command_line_makes_the_access_settings(tmp_path, monkeypatch):
    from centernet.cli.parser import build_parser
    from centernet.cli.serve import access_config

    parser = build_parser()

    def settings(*options: str):
        return access_config(parser.parse_args(["serve", "m.onnx", *options]))

    monkeypatch.delenv("CENTERNET_API_KEY", raising=False)
    access, transport = settings()
    assert access == AccessConfig() and transport == TransportConfig()  # open, no TLS, the page on
    keys = tmp_path / "keys"
    keys.write_text(f"{FILE_KEY}\n")
    monkeypatch.setenv("CENTERNET_API_KEY", KEY)
    assert settings()[0].api_keys == (KEY,)  # the environment's key
    access, _ = settings("--api-key", "given", "--api-key-file", str(keys))
    assert access.api_keys == ("given", FILE_KEY)  # --api-key wins over the environment
    access, transport = settings(
        "--metrics-public", "--no-ui", "--cors-origins", "https://a.example, https://b.example",
        "--keep-alive-s", "7",
    )  # fmt: skip
    assert access.metrics_public and not access.ui and transport.keep_alive_s == 7
    assert access.cors_origins == ("https://a.example", "https://b.example")
    with pytest.raises(CenterNetError, match="no such TLS file"):
        settings("--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(keys))
    with pytest.raises(CenterNetError, match="both --ssl-certfile and --ssl-keyfile"):
        settings("--ssl-certfile", str(keys))
    with pytest.raises(CenterNetError, match="--receive-timeout-s must be > 0"):
        settings("--receive-timeout-s", "0")
