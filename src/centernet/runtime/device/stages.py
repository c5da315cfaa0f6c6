"""The device pipeline: the Detector's stages re-expressed in torch, so that on a GPU an
image goes from JPEG bytes to K boxes without its pixels or maps visiting the host.

    reader threads   ``prepare``: read the file; JPEGs the GPU takes stay encoded, others
                     are decoded on the host (the same reader and errors as the host stages)
    batching thread  ``assemble``: nvJPEG decode (batched), the letterbox warp and the
                     normalisation (``warp.py``, bit-identical to OpenCV) into one batch,
                     on a side CUDA stream so that it overlaps the network
    engine thread    ``run``: the network (``TorchEngine.forward``: precision, channels_last,
                     a CUDA graph per batch size), then peaks, top-K, boxes and the inverse
                     affine (``postprocess.py``); only K boxes per image are copied back
    post thread      ``to_detections``: the K boxes -> Detections with the threshold

The same code runs on the CPU (device "cpu"), where nothing is decoded on the device; that
is how CI checks it against the host pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from centernet.engines.torch import TorchEngine
from centernet.errors import ImageReadError
from centernet.runtime.device.jpeg import JpegDecoder, decodes_on_device, nvjpeg_decoder
from centernet.runtime.device.postprocess import TopBoxes, maps_to_top_boxes
from centernet.runtime.device.warp import WarpJob, warp_normalise
from centernet.runtime.images import decode_image
from centernet.runtime.postprocess import PostprocessConfig
from centernet.runtime.preprocess import PreprocessConfig, make_letterbox
from centernet.runtime.profiling import NO_PROFILE, Clock
from centernet.runtime.stages import (
    ImageSource,
    PreparedImage,
    device_pipeline_refusal,
    read_source,
)
from centernet.types import Detections, Letterbox

#: ``decoder="auto"``: nvJPEG where there is a GPU and torchvision, else the host.
AUTO = "auto"


@dataclass
class DeviceBatch:
    """A batch on the device: its input (rows past the members are zero padding), the
    members still readable after decoding, their letterboxes, and the event that marks
    the input ready (CUDA)."""

    input: torch.Tensor
    members: list[PreparedImage]
    boxes: list[Letterbox]
    ready: torch.cuda.Event | None = field(default=None, repr=False)


class DeviceStages:
    """prepare / assemble / run / to_detections on the torch engine's device (see the
    module docstring); the same interface as ``HostStages``."""

    def __init__(
        self,
        engine: object,
        preprocess: PreprocessConfig,
        postprocess_config: PostprocessConfig,
        batch_size: int,
        max_pixels: int | None,
        decoder: JpegDecoder | str | None = AUTO,
        arithmetic: str | None = None,
    ) -> None:
        if not isinstance(engine, TorchEngine):
            raise device_pipeline_refusal(getattr(engine, "name", type(engine).__name__))
        self.engine = engine
        self.device = engine.device
        self.preprocess = preprocess
        self.postprocess = postprocess_config
        self.max_dets = postprocess_config.max_dets
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.decoder = nvjpeg_decoder(self.device) if decoder == AUTO else decoder
        self.arithmetic = arithmetic  # warp arithmetic; None: the installed OpenCV's
        on_cuda = self.device.type == "cuda"
        self._side = torch.cuda.Stream(self.device) if on_cuda else None
        # a CUDA graph per batch size: pad short batches to one size (never keep_res sizes)
        self._graphs = engine.settings.capture == "graph" and not preprocess.keep_res
        if self._graphs:  # captured now, before the pipeline's threads use the device
            engine.runner.warm_up((batch_size, 3, *preprocess.input_size))

    def takes_encoded(self, data: bytes) -> bool:
        """Whether ``data`` stays encoded until the device decodes it."""
        return self.decoder is not None and decodes_on_device(data)

    def prepare(
        self,
        source: ImageSource,
        index: int = 0,
        clock: Clock = NO_PROFILE,
        name: str | None = None,
    ) -> PreparedImage:
        """Read one image: a JPEG the device decodes stays encoded (after the host's own
        checks), anything else is decoded here; it is warped on the device."""
        result, encoded = read_source(
            source, index, name, self.max_pixels, clock, keep_encoded=self.takes_encoded
        )
        if not result.ok:
            return PreparedImage(result)
        return PreparedImage(result, payload=encoded if encoded is not None else result.image)

    def assemble(
        self, members: Sequence[PreparedImage], clock: Clock = NO_PROFILE
    ) -> DeviceBatch | None:
        """Decode and pre-process ``members`` into one device batch (None if none of them
        can be decoded: each failure is recorded in its result, as the host reader does)."""
        with clock.timed("device decode + pre-process"):
            if self._side is None:
                return self._assemble(members)
            with torch.cuda.stream(self._side):
                batch = self._assemble(members)
                if batch is not None:
                    batch.ready = torch.cuda.Event()
                    batch.ready.record(self._side)
            return batch

    def _assemble(self, members: Sequence[PreparedImage]) -> DeviceBatch | None:
        images = self._decode(members)
        kept = [m for m in members if m.result.ok]
        if not kept:
            return None
        jobs, boxes = [], []
        for member in kept:
            image = images[id(member)]
            box = make_letterbox(int(image.shape[1]), int(image.shape[0]), self.preprocess)
            member.box = box
            member.payload = None  # the batch holds the pixels now
            jobs.append(WarpJob(image, box.to_input))
            boxes.append(box)
        width, height = boxes[0].input_size
        rows = self.batch_size if self._graphs else len(kept)
        batch = torch.empty((rows, 3, height, width), dtype=torch.float32, device=self.device)
        batch[len(kept) :] = 0.0
        warp_normalise(
            jobs, (width, height), self.preprocess.mean, self.preprocess.std, batch,
            self.arithmetic,
        )  # fmt: skip
        return DeviceBatch(batch, kept, boxes)

    def _decode(self, members: Sequence[PreparedImage]) -> dict[int, torch.Tensor]:
        """BGR uint8 (H, W, 3) on the device per member id: JPEGs on the device in one
        batched call, the rest (and what the device refuses) from the host."""
        images: dict[int, torch.Tensor] = {}
        encoded = [m for m in members if isinstance(m.payload, bytes)]
        decoded = self.decoder([m.payload for m in encoded]) if encoded and self.decoder else []
        if decoded and self._side is not None:
            # the decoded pixels must be there before the warp reads them: torchvision
            # decodes on the current (side) stream; waiting for it costs the batching
            # thread only, and not the network running on the engine's stream
            self._side.synchronize()
        for member, image in zip(encoded, decoded):
            if image is not None:
                images[id(member)] = image
        for member in members:
            if id(member) in images:
                continue
            payload = member.payload
            if isinstance(payload, bytes):  # the device refused it: the host's decoder
                try:
                    payload = decode_image(payload, member.result.source, self.max_pixels)
                except ImageReadError as exc:
                    member.result.error, member.result.exception = exc.reason, exc
                    continue
                member.result.image = payload
            images[id(member)] = torch.from_numpy(payload).to(self.device)
        return images

    @torch.no_grad()
    def run(self, batch: DeviceBatch) -> TopBoxes:
        """The network and the decoding of its maps; returns K boxes per member, on the
        host (this call waits for the device)."""
        if batch.ready is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(batch.ready)
            batch.input.record_stream(stream)  # made on the side stream, freed after use
        maps = self.engine.runner(batch.input, allow_graph=self._graphs)
        matrices = np.stack([box.output_to_original for box in batch.boxes])
        return maps_to_top_boxes(maps, matrices, self.max_dets)

    def to_detections(
        self,
        top: TopBoxes,
        boxes: Sequence[Letterbox],
        config: PostprocessConfig | None = None,
    ) -> list[Detections]:
        """The first ``len(boxes)`` rows of ``top`` as Detections under ``config`` (this
        pipeline's threshold and max_dets by default)."""
        config = config or self.postprocess
        return [
            top.detections(row, config.threshold, config.max_dets) for row in range(len(boxes))
        ]
