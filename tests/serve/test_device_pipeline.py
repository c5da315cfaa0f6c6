"""The server over the device pipeline (what `serve MODEL.pth --device cuda` runs): the
batcher feeds whole batches to the device stages, and the answers are the host
pipeline's. Checked on the CPU, where the device stages run in torch too (CUDA adds nvJPEG
and streams, checked by the GPU script)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("torch")

from centernet.engines import EngineConfig  # noqa: E402
from centernet.runtime.postprocess import PostprocessConfig  # noqa: E402
from centernet.serve.config import ServeConfig  # noqa: E402
from centernet.serve.service import BadImageError, DetectionService  # noqa: E402
from tests.helpers import assert_detections_close  # noqa: E402
from tests.serve.helpers import tiny_config  # noqa: E402


def test_auto_is_the_device_pipeline_for_a_checkpoint_on_cuda_only():
    cuda = EngineConfig(device="cuda")
    assert ServeConfig("m.pth", options=cuda).resolved_pipeline() == "device"
    assert ServeConfig("m.pth").resolved_pipeline() == "host"  # the CPU
    assert ServeConfig("m.onnx", options=cuda).resolved_pipeline() == "host"
    assert ServeConfig("m.pth", engine="onnxruntime", options=cuda).resolved_pipeline() == "host"
    assert ServeConfig("m.pth", options=cuda, pipeline="host").resolved_pipeline() == "host"
    assert ServeConfig("m.pth", pipeline="device").detector_config().pipeline == "device"


async def _answers(service: DetectionService, images: list[bytes]) -> list:
    """Concurrent requests (one batch), two of them with their own threshold."""
    loose, strict = PostprocessConfig(threshold=0.05), PostprocessConfig(threshold=0.15)
    calls = [service.detect([data], loose if i % 2 else strict) for i, data in enumerate(images)]
    return [answer[0] for answer in await asyncio.gather(*calls)]


def test_the_device_pipeline_answers_as_the_host_pipeline(tiny_checkpoint, photo_paths):
    images = [p.read_bytes() for p in photo_paths[:4]]
    answers = {}
    for pipeline in ("host", "device"):
        config = tiny_config(tiny_checkpoint, pipeline=pipeline)
        config = replace(config, options=EngineConfig(device="cpu"))
        service = DetectionService(config)
        assert service.detector.pipeline == pipeline
        service.start()
        try:
            answers[pipeline] = asyncio.run(_answers(service, images))
        finally:
            service.close()
    for host, device in zip(answers["host"], answers["device"]):
        assert (host.width, host.height) == (device.width, device.height)
        assert len(host.detections.scores) > 0
        assert_detections_close(host.detections, device.detections, atol=1e-3)


def test_a_bad_image_is_a_bad_request_on_the_device_pipeline(tiny_checkpoint, photo_paths):
    config = tiny_config(tiny_checkpoint, pipeline="device")
    service = DetectionService(config)
    service.start()
    try:
        good = photo_paths[0].read_bytes()
        with pytest.raises(BadImageError):
            asyncio.run(service.detect([good, good[:2000]], PostprocessConfig()))
        (answer,) = asyncio.run(service.detect([good], PostprocessConfig()))
        assert answer.width > 0
    finally:
        service.close()
