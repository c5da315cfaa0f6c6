"""/v1/detect and the v2 Open Inference Protocol give the Detector's boxes; metrics count."""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest

from centernet.runtime.detector import Detector
from centernet.serve.client import detect as client_detect
from centernet.types import Detections
from tests.helpers import assert_detections_close
from tests.serve.helpers import THRESHOLD, metric, v1_detections, v2_outputs


@pytest.fixture(scope="module")
def expected(tiny_onnx_dynamic, photo_paths) -> list[Detections]:
    """What the library gives for each photo (batch 1), at the server's threshold."""
    detector = Detector(tiny_onnx_dynamic, threshold=THRESHOLD)
    found = detector([str(p) for p in photo_paths])
    assert all(len(d) > 0 for d in found)  # else the comparisons below prove little
    return found




def assert_same_boxes(got: Detections, want: Detections) -> None:
    # /v1 rounds as detections.json does: boxes to 0.01 px, scores to 1e-5
    assert_detections_close(got, want, atol=0.006, score_atol=1e-5)


def test_v1_detect_body_gives_the_detectors_boxes(server, photo_paths, expected):
    for path, want in zip(photo_paths, expected):
        answer = server.request(
            "POST", "/v1/detect", path.read_bytes(), {"Content-Type": "image/jpeg"}
        )
        assert answer.status == 200, answer.body
        body = answer.json
        import cv2

        height, width = cv2.imread(str(path)).shape[:2]
        assert (body["model"], body["width"], body["height"]) == ("tiny", width, height)
        scores = [d["score"] for d in body["detections"]]
        assert scores == sorted(scores, reverse=True)
        names = server.service.spec.class_names
        for d in body["detections"]:  # class_id: the deprecated name of class_index
            assert d["class_name"] == names[d["class_index"]] and d["class_id"] == d["class_index"]
            assert d["category_id"] == d["class_index"] + 1  # not COCO's 80 classes
        assert_same_boxes(v1_detections(answer), want)


def test_v1_multipart_query_parameters_and_client_helper(server, photo_paths, expected):
    data = photo_paths[0].read_bytes()
    boundary = "centernet-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = server.request(
        "POST",
        "/v1/detect?threshold=0.12&max_dets=3",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status == 200, answer.body
    want = expected[0][expected[0].scores >= 0.12][:3]
    assert_same_boxes(v1_detections(answer), want)
    # the Python client: a path, and an array (sent as lossless PNG)
    assert_same_boxes(client_detect(server.url, photo_paths[1]), expected[1])
    import cv2

    from_array = client_detect(server.url, cv2.imread(str(photo_paths[2])), threshold=THRESHOLD)
    assert_same_boxes(from_array, expected[2])




def assert_v2_matches(outputs: dict[str, np.ndarray], wants: list[Detections]) -> None:
    k = max(len(w) for w in wants)
    assert outputs["detection_boxes"].shape == (len(wants), k, 4)
    assert (
        outputs["detection_scores"].shape == outputs["detection_classes"].shape == (len(wants), k)
    )
    for row, want in enumerate(wants):
        n = int(outputs["num_detections"][row])
        assert n == len(want)
        got = Detections(
            outputs["detection_boxes"][row, :n].astype(np.float32),
            outputs["detection_scores"][row, :n].astype(np.float32),
            outputs["detection_classes"][row, :n].astype(np.int64),
        )
        assert_detections_close(got, want, atol=1e-3, score_atol=1e-5)
        # padding rows are zeros
        assert not outputs["detection_scores"][row, n:].any()
        assert not outputs["detection_boxes"][row, n:].any()


def test_v2_infer_json_base64(server, photo_paths, expected):
    chosen = [0, 2, 3]
    request = {
        "id": "req-7",
        "inputs": [
            {
                "name": "IMAGE",
                "datatype": "BYTES",
                "shape": [len(chosen)],
                "data": [base64.b64encode(photo_paths[i].read_bytes()).decode() for i in chosen],
            }
        ],
        "parameters": {"threshold": THRESHOLD},
    }
    answer = server.request(
        "POST", "/v2/models/tiny/infer", json.dumps(request).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status == 200, answer.body
    assert answer.json["id"] == "req-7" and answer.json["model_name"] == "tiny"
    outputs = v2_outputs(answer)
    assert [o["datatype"] for o in answer.json["outputs"]] == ["INT32", "FP32", "FP32", "INT32"]
    assert_v2_matches(outputs, [expected[i] for i in chosen])


def test_tritonclient_reads_health_metadata_and_infer(server, photo_paths, expected):
    httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient not installed")
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("tiny") and not client.is_model_ready("other")
        meta = client.get_model_metadata("tiny")
        assert meta["inputs"] == [{"name": "IMAGE", "datatype": "BYTES", "shape": [-1]}]
        assert [o["name"] for o in meta["outputs"]] == [
            "num_detections", "detection_boxes", "detection_scores", "detection_classes",
        ]  # fmt: skip
        assert meta["centernet"]["class_names"] == server.service.spec.class_names
        assert meta["centernet"]["input_size"] == list(server.service.spec.input_size)

        chosen = [1, 2]
        images = np.array([photo_paths[i].read_bytes() for i in chosen], dtype=np.object_)
        tensor = httpclient.InferInput("IMAGE", [len(chosen)], "BYTES")
        tensor.set_data_from_numpy(images, binary_data=True)
        wanted = [
            httpclient.InferRequestedOutput(name, binary_data=binary)
            for name, binary in (
                ("num_detections", False),
                ("detection_boxes", True),
                ("detection_scores", True),
                ("detection_classes", False),
            )
        ]
        result = client.infer("tiny", [tensor], outputs=wanted, parameters={"max_dets": 100})
        outputs = {o.name(): result.as_numpy(o.name()) for o in wanted}
        assert outputs["detection_boxes"].dtype == np.float32
        assert_v2_matches(outputs, [expected[i] for i in chosen])
    finally:
        client.close()




def test_concurrent_requests_are_batched_and_counted(server, photo_paths, expected):
    before = server.metrics()
    answers: list = [None] * 8
    start = threading.Barrier(8)

    def client(i: int) -> None:
        start.wait()
        answers[i] = server.request(
            "POST", "/v1/detect", photo_paths[i % len(photo_paths)].read_bytes(),
            {"Content-Type": "image/jpeg"},
        )  # fmt: skip

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status for a in answers] == [200] * 8
    for i, answer in enumerate(answers):  # batching changes nothing in the boxes
        assert_same_boxes(v1_detections(answer), expected[i % len(photo_paths)])
    after = server.metrics()
    images = metric(after, "centernet_batch_size_sum") - metric(before, "centernet_batch_size_sum")
    calls = metric(after, "centernet_batch_size_count") - metric(
        before, "centernet_batch_size_count"
    )
    assert images == 8 and images / calls > 1  # 8 clients within 20 ms share engine calls
    ok = '{code="200",endpoint="/v1/detect"}'
    assert (
        metric(after, "centernet_requests_total", ok)
        - metric(before, "centernet_requests_total", ok)
        == 8
    )
    assert metric(after, "centernet_images_total") - metric(before, "centernet_images_total") == 8
    for name in ("centernet_queue_seconds", "centernet_inference_seconds"):
        assert metric(after, f"{name}_count") > metric(before, f"{name}_count")
    assert metric(after, "centernet_request_seconds_count", '{endpoint="/v1/detect"}') >= 8
