"""The Ray actor of batch detection: one Detector, opened once; each call detects one
shard's images and hands their records back to the driver, which writes the shard.

The driver, not the actor, writes the files: the nodes then need no shared folder for
the results, and a shard on disk never stems from an actor that was lost mid-write.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from centernet.runtime.detector import DetectorConfig


@dataclass(frozen=True)
class DetectJob:
    """What each actor needs to turn a shard of paths into COCO results."""

    model: str
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(threshold=0.3))
    category_ids: tuple[int, ...] = ()  # per class index; () : datasets.coco's default
    image_ids: dict[str, int] = field(default_factory=dict)  # file name -> COCO image id
    out: str = ""  # annotated copies go to OUT/images (on the actor's node)
    save_images: bool = False


@dataclass(frozen=True)
class Shard:
    """One actor call: the inputs of shard ``first`` still to detect."""

    first: int  # the shard's first input index: its file name
    indices: tuple[int, ...]
    paths: tuple[str, ...]  # what the actor reads (absolute where the driver found them)
    sources: tuple[str, ...]  # the paths as the command was given them (the records')

    def describe(self) -> str:
        return f"shard {self.first} ({len(self.indices)} images)"


class ShardDetector:
    """Made a Ray actor by the pool (``ray.remote(ShardDetector)``). Calls run in order:
    ``ready`` (placed: where and what), ``load`` (the model), then ``detect`` per shard."""

    def __init__(self, job: DetectJob, threads: int) -> None:
        self.job = job
        self.threads = threads
        self.detector: Any = None

    def ready(self) -> dict[str, Any]:
        """Where the actor runs and which centernet it imported (the driver checks that
        the workers run the same version)."""
        import ray

        import centernet

        return {
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "version": centernet.__version__,
            "package": str(Path(centernet.__file__).parent),
        }

    def load(self) -> float:
        """Open the model with this actor's engine threads; the seconds it took."""
        from dataclasses import replace

        from centernet.engines.base import EngineConfig
        from centernet.runtime.detector import Detector

        started = time.perf_counter()
        settings = self.job.detector
        options = replace(settings.options or EngineConfig(), threads=self.threads)
        self.detector = Detector(self.job.model, replace(settings, options=options))
        return time.perf_counter() - started

    def detect(self, shard: Shard) -> list[dict[str, Any]]:
        """The shard's records, in input order (``shards.py`` says what a record holds)."""
        from centernet.datasets.coco import category_ids_for, detections_to_coco

        records: list[dict[str, Any]] = []
        class_names = self.detector.spec.class_names
        category_ids = list(self.job.category_ids) or category_ids_for(class_names, None)
        stream = self.detector.stream(list(shard.paths))
        # the stream first: zip ends on its StopIteration, so it finishes (threads joined)
        for result, index, source in zip(stream, shard.indices, shard.sources):
            if not result.ok:
                records.append({"index": index, "source": source, "error": result.error})
                continue
            name = Path(source).name  # as the local command names it (not a link's target)
            entries = detections_to_coco(
                result.detections,
                category_ids,
                file_name=name,
                image_id=self.job.image_ids.get(name),
                class_names=class_names,
            )
            records.append(
                {"index": index, "source": source, "file_name": name, "detections": entries}
            )
            if self.job.save_images:
                self._save(result, index)
        return records

    def _save(self, result: Any, index: int) -> None:
        import cv2

        from centernet.runtime.draw import draw_detections

        folder = Path(self.job.out) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        drawn = draw_detections(result.image, result.detections, self.detector.spec.class_names)
        name = Path(result.source)
        cv2.imwrite(str(folder / f"{name.stem}_{index}{name.suffix}"), drawn)
