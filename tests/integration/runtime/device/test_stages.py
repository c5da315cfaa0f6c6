"""The device pipeline (torch on the CPU here) against the host pipeline: the same boxes
within 0.5 px and scores within 1e-4, the same errors for bad files, the same COCO AP.
CUDA-only checks at the end are skipped without a GPU."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from centernet.cli import main
from centernet.engines import EngineConfig
from centernet.errors import CenterNetError
from centernet.runtime.detector import Detector
from tests.helpers import TINY_SIZE, assert_detections_close, write_bad_and_odd_images

torch = pytest.importorskip("torch")

from centernet.runtime.device.jpeg import rgb_planes_to_bgr  # noqa: E402

OPTIONS = EngineConfig(input_size=TINY_SIZE)
BOX_PX, SCORE = 0.5, 1e-4  # the agreement the device pipeline promises
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")


def assert_same_boxes(host, device) -> None:
    assert len(host) == len(device)
    assert np.array_equal(host.class_ids, device.class_ids)
    if len(host):
        assert np.abs(host.xyxy - device.xyxy).max() <= BOX_PX
        assert np.abs(host.scores - device.scores).max() <= SCORE


def fake_device_decoder(refuse: frozenset[bytes] = frozenset()):
    """Stands in for nvJPEG on the CPU: hands on torchvision's layout the way the real
    decoder does, and refuses ``refuse`` (as nvJPEG refuses a file), to exercise the
    device-decode path and its host fall-back."""
    calls: list[int] = []

    def decode(encoded):
        calls.append(len(encoded))
        out = []
        for data in encoded:
            if data in refuse:
                out.append(None)
                continue
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            rgb_planes = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))
            out.append(rgb_planes_to_bgr(rgb_planes))
        return out

    decode.calls = calls
    return decode


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("keep_res", [False, True], ids=["fix_res", "keep_res"])
def test_device_pipeline_gives_the_host_boxes(tiny_checkpoint, photo_paths, keep_res, batch):
    sources = [str(path) for path in photo_paths[:3]]
    if keep_res:  # each image runs at its own size: half-size copies keep the test fast
        sources = [cv2.resize(cv2.imread(s), None, fx=0.5, fy=0.5) for s in sources]
    kwargs = {"batch_size": batch, "keep_res": keep_res, "options": OPTIONS}
    host = Detector(tiny_checkpoint, **kwargs)(sources)
    device = Detector(tiny_checkpoint, pipeline="device", **kwargs)(sources)
    for a, b in zip(host, device):
        assert len(a) == 100
        assert_same_boxes(a, b)


def test_every_kind_of_source_and_threshold(tiny_checkpoint, photo_paths):
    image = cv2.imread(str(photo_paths[1]))
    sources = [photo_paths[0].read_bytes(), image, str(photo_paths[2])]
    every = Detector(tiny_checkpoint, options=OPTIONS)(photo_paths[0])
    cut = float(np.median(every.scores))
    for threshold, max_dets in [(0.0, 100), (cut, 100), (0.0, 7)]:
        kwargs = {"threshold": threshold, "max_dets": max_dets, "batch_size": 3}
        host = Detector(tiny_checkpoint, options=OPTIONS, **kwargs)(sources)
        device = Detector(tiny_checkpoint, options=OPTIONS, pipeline="device", **kwargs)
        for a, b in zip(host, device(sources)):
            assert_same_boxes(a, b)
            assert len(b) <= max_dets and (b.scores >= threshold).all()


@pytest.mark.parametrize("on_device", [False, True], ids=["host decode", "device decode"])
def test_a_bad_file_mid_batch_fails_alone_with_the_hosts_reason(
    tiny_checkpoint, photo_paths, tmp_path, on_device
):
    cases = write_bad_and_odd_images(tmp_path, photo_paths[0])
    refused = photo_paths[3].read_bytes()  # the device refuses it: the host decodes it
    sources = [str(photo_paths[1])] + [str(tmp_path / n) for n in cases] + [str(photo_paths[2])]
    sources.insert(3, str(photo_paths[3]))
    host = list(Detector(tiny_checkpoint, batch_size=4, options=OPTIONS).stream(sources))
    detector = Detector(tiny_checkpoint, batch_size=4, options=OPTIONS, pipeline="device")
    if on_device:
        detector.stages.decoder = fake_device_decoder(frozenset({refused}))
    device = list(detector.stream(sources))
    assert [r.source for r in device] == sources
    assert [r.error for r in device] == [r.error for r in host]
    assert sum(not r.ok for r in device) == 4  # empty, truncated, text, missing
    for a, b in zip(host, device):
        if a.ok:
            assert_same_boxes(a.detections, b.detections)
    if on_device:
        calls = detector.stages.decoder.calls
        assert sum(calls) == 3 and max(calls) > 1  # three photos (one refused), batched
        by_source = {r.source: r for r in device}
        assert by_source[str(photo_paths[1])].image is None  # decoded on the device
        assert by_source[str(photo_paths[3])].image is not None  # refused: host-decoded


def test_the_device_pipeline_needs_a_torch_model(tiny_onnx_dynamic, tiny_checkpoint, capsys):
    with pytest.raises(CenterNetError, match="device pipeline runs a torch network"):
        Detector(tiny_onnx_dynamic, pipeline="device")
    with pytest.raises(CenterNetError, match="unknown pipeline 'gpu'"):
        Detector(tiny_checkpoint, pipeline="gpu")
    for command in ("detect", "bench"):
        args = [command, str(tiny_onnx_dynamic)]
        args += ["x.jpg", "--out", "unused"] if command == "detect" else []
        args += ["--pipeline", "device"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "give a .pth checkpoint" in err, err


def test_default_model_ap_is_the_hosts(tmp_path):
    """COCO AP of the bundled model on held-out synthetic images, at its own 768x768."""
    from centernet.datasets.coco import load_annotations
    from centernet.datasets.synthetic import write_dataset
    from centernet.demo import EVAL_SEED, default_model_path
    from centernet.measure.evaluate import evaluate_detector

    annotations = load_annotations(write_dataset(tmp_path, 20, seed=EVAL_SEED))
    ap = {
        pipeline: evaluate_detector(
            Detector(default_model_path(), batch_size=4, pipeline=pipeline),
            annotations,
            tmp_path / "images",
        ).stats["AP"]
        for pipeline in ("host", "device")
    }
    assert ap["host"] > 0.6 and abs(ap["device"] - ap["host"]) <= 0.002, ap


@pytest.fixture(scope="module")
def tiny_checkpoint_128(tiny_network, tmp_path_factory):
    """The tiny checkpoint recording its input size, so that the CLI runs it at 128x128."""
    from centernet.models.checkpoint import save_checkpoint
    from tests.helpers import TINY_CLASSES, TINY_WIDTH

    path = tmp_path_factory.mktemp("ckpt128") / "tiny128.pth"
    save_checkpoint(path, tiny_network, epoch=1, arch="dlav0_34", arch_args={"width": TINY_WIDTH},
                    class_names=TINY_CLASSES, input_size=TINY_SIZE)  # fmt: skip
    return path


def test_cli_detect_eval_and_bench_with_the_device_pipeline(
    tiny_checkpoint_128, photo_paths, tmp_path
):
    tiny_checkpoint = tiny_checkpoint_128
    from centernet.datasets.synthetic import write_dataset

    outputs = {}
    for pipeline in ("host", "device"):
        out = tmp_path / pipeline
        args = ["detect", str(tiny_checkpoint), str(photo_paths[0].parent), "--out", str(out)]
        assert main([*args, "--threshold", "0", "--pipeline", pipeline, "--save-images"]) == 0
        outputs[pipeline] = json.loads((out / "detections.json").read_text())
        assert len(list((out / "images").iterdir())) == len(photo_paths)
    assert len(outputs["host"]) == len(outputs["device"]) == 100 * len(photo_paths)
    for a, b in zip(outputs["host"], outputs["device"]):
        assert a["file_name"] == b["file_name"] and a["category_id"] == b["category_id"]
        assert (
            np.allclose(a["bbox"], b["bbox"], atol=2 * BOX_PX)
            and abs(a["score"] - b["score"]) <= SCORE
        )
    ann = write_dataset(tmp_path / "synth", 2, seed=7)
    coco = json.loads(ann.read_text())  # the tiny model's 3 classes: the first 3 categories
    coco["categories"] = coco["categories"][:3]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] <= 3]
    ann.write_text(json.dumps(coco))
    args = ["eval", str(tiny_checkpoint), "--images", str(tmp_path / "synth" / "images")]
    assert (
        main([*args, "--ann", str(ann), "--out", str(tmp_path / "ev"), "--pipeline", "device"]) == 0
    )
    report = tmp_path / "bench.json"
    threads = torch.get_num_threads()  # bench --threads sets torch's (process-wide) count
    args = ["bench", str(tiny_checkpoint), "--pipeline", "device", "--batches", "1,2"]
    args += ["--threads", "1", "--warmup", "0"]
    args += ["--iterations", "2", "--images", str(photo_paths[0].parent), "--json", str(report)]
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(report.read_text())["rows"]
    assert [r["batch"] for r in rows] == [1, 2] and all(
        r["end_to_end_images_per_s"] > 0 for r in rows
    )


@no_cuda
@pytest.mark.parametrize("command", ["detect", "eval", "bench"])
def test_cuda_without_a_gpu_is_one_line_and_exit_2(command, tiny_checkpoint, tmp_path, capsys):
    args = [command, str(tiny_checkpoint)]
    if command == "detect":
        args += ["x.jpg", "--out", str(tmp_path)]
    elif command == "eval":
        ann = tmp_path / "ann.json"
        ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 8,
                                               "height": 8}], "annotations": [],
                                   "categories": [{"id": 1, "name": "circle"}]}))  # fmt: skip
        args += ["--images", str(tmp_path), "--ann", str(ann), "--out", str(tmp_path / "e")]
    assert main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "centernet: error: torch has no CUDA device here; use --device cpu"


def test_onnxruntime_names_where_each_precision_runs(tiny_onnx_dynamic):
    hints = {"fp16": "use the torch engine", "tf32": 'with `device="cuda"`'}
    for precision, hint in hints.items():
        with pytest.raises(CenterNetError, match=f"no run-time {precision} mode; .*{hint}"):
            Detector(tiny_onnx_dynamic, options=EngineConfig(precision=precision))


# ---- CUDA only: skipped without a GPU (CI); passed on an H200 (BENCHMARKS.md "GPU"). ----


@cuda
def test_cuda_device_pipeline_agrees_with_the_host(tiny_checkpoint, photo_paths):
    options = EngineConfig(input_size=TINY_SIZE, device="cuda")
    host = Detector(tiny_checkpoint, options=OPTIONS, batch_size=2)(photo_paths)
    device = Detector(tiny_checkpoint, options=options, batch_size=2, pipeline="device")
    for a, b in zip(host, device(photo_paths)):
        # nvJPEG's IDCT may differ from libjpeg's by a grey level: boxes close, not equal
        assert_detections_close(a, b, atol=2.0, score_atol=5e-3)


@cuda
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_cuda_engine_graphs_per_batch_size(precision, tiny_checkpoint):
    from centernet.engines import open_engine

    options = EngineConfig(input_size=TINY_SIZE, device="cuda", precision=precision)
    engine = open_engine(tiny_checkpoint, "torch", options)
    eager = open_engine(tiny_checkpoint, "torch", EngineConfig(input_size=TINY_SIZE, device="cuda",
                                                                capture="eager"))  # fmt: skip
    x = torch.randn((4, 3, *TINY_SIZE), device="cuda")
    first = [t.clone() for t in engine.forward(x)]  # a new shape runs eagerly once
    assert (4, 3, *TINY_SIZE) not in engine.runner.graph_shapes
    graphed = [t.clone() for t in engine.forward(x)]  # seen again: captured, replayed
    assert (4, 3, *TINY_SIZE) in engine.runner.graph_shapes
    for a, b in zip(first, graphed):
        assert torch.allclose(a, b, atol=1e-5)
    tolerance = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 2e-2, "bf16": 1e-1}[precision]
    for got, want in zip(graphed, eager.forward(x)):
        assert got.dtype == torch.float32 and (got - want).abs().max() < tolerance * 20


@cuda
def test_nvjpeg_decodes_like_opencv(photo_paths):
    from centernet.runtime.device.jpeg import nvjpeg_decoder

    decode = nvjpeg_decoder(torch.device("cuda"))
    if decode is None:
        pytest.skip("torchvision with GPU decoding is not installed")
    data = [p.read_bytes() for p in photo_paths]
    for image, raw in zip(decode(data), data):
        want = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == want.shape
        assert np.abs(image.cpu().numpy().astype(int) - want).mean() < 2.0


def test_fake_decoder_layout_is_what_the_warp_reads(photo_paths):
    data = photo_paths[0].read_bytes()
    (image,) = fake_device_decoder()([data])
    want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(image.numpy(), want)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_onnxruntime_on_cuda_says_what_is_missing(tiny_onnx_dynamic, monkeypatch):
    import onnxruntime as ort

    from centernet.engines import open_engine

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    options = EngineConfig(device="cuda")
    with pytest.raises(CenterNetError, match="install onnxruntime-gpu"):
        open_engine(tiny_onnx_dynamic, "onnxruntime", options)
    # onnxruntime-gpu present but CUDA unusable: it would quietly run on the CPU
    available = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    with pytest.raises(CenterNetError, match="could not start its CUDA provider"):
        open_engine(tiny_onnx_dynamic, "onnxruntime", options)
