"""The host pipeline's stages: OpenCV decode and letterbox, a numpy batch, the engine,
numpy post-processing. No torch: ONNX Runtime and OpenVINO runs never import it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from centernet.runtime.postprocess import PostprocessConfig, postprocess
from centernet.runtime.preprocess import PreprocessConfig, preprocess_into
from centernet.runtime.profiling import NO_PROFILE, Clock
from centernet.runtime.stages import ImageSource, PreparedImage, read_source
from centernet.types import Detections, Letterbox


class HostStages:
    """prepare / assemble / run / to_detections on the host, for any engine."""

    def __init__(
        self,
        engine,
        preprocess: PreprocessConfig,
        postprocess_config: PostprocessConfig,
        max_pixels: int | None,
    ) -> None:
        self.engine = engine
        self.preprocess = preprocess
        self.postprocess = postprocess_config
        self.max_pixels = max_pixels  # larger files are refused before decoding

    def prepare(
        self,
        source: ImageSource,
        index: int = 0,
        clock: Clock = NO_PROFILE,
        name: str | None = None,
    ) -> PreparedImage:
        """Read (or convert) and pre-process one image. Never raises for a bad image: the
        failure is in the result (reason and exception). ``name`` labels an in-memory
        source in messages (default "<array i>"/"<bytes i>")."""
        result, _ = read_source(source, index, name, self.max_pixels, clock)
        if not result.ok:
            return PreparedImage(result)
        with clock.timed("pre-process"):
            tensor, box = preprocess_into(result.image, self.preprocess)
        return PreparedImage(result, tensor, box)

    def assemble(
        self, members: Sequence[PreparedImage], clock: Clock = NO_PROFILE
    ) -> np.ndarray:
        """The engine's input for ``members``: their tensors stacked, padded with zero rows
        to the engine's static batch size. Frees each member's tensor (the batch holds it)."""
        rows = self.engine.batch_size or len(members)
        first = members[0].tensor
        assert first is not None
        with clock.timed("batch assembly"):
            if rows == 1:
                batch = first[None]  # one image: its tensor is the batch, no copy
            else:
                batch = np.empty((rows, *first.shape), dtype=np.float32)
                for row, item in enumerate(members):
                    batch[row] = item.tensor
                batch[len(members) :] = 0.0  # padding rows of a static batch
            for item in members:
                item.tensor = None
        return batch

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.engine(batch)

    def to_detections(
        self,
        outputs: dict[str, np.ndarray],
        boxes: Sequence[Letterbox],
        config: PostprocessConfig | None = None,
    ) -> list[Detections]:
        """The engine's outputs for the first ``len(boxes)`` rows -> Detections per image,
        with this pipeline's threshold and max_dets unless ``config`` says otherwise."""
        return postprocess(outputs, list(boxes), config or self.postprocess)
