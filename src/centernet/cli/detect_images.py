"""``detect`` on image files: each image's boxes appended to ``OUT/detections.jsonl`` as it
is done (``runtime/results_log.py``), ``OUT/detections.json`` (COCO results, input order)
at the end, annotated copies on request; ``--resume`` skips the images a stopped run
finished. Formats: docs/output-formats.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

from centernet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    open_detector,
    profile_table,
    report_skipped,
)
from centernet.cli.progress import progress
from centernet.errors import CenterNetError

LOG_NAME = "detections.jsonl"
RESULTS_NAME = "detections.json"


class AnnotatedNames:
    """File names for the annotated copies, unique in the folder (``a.jpg``, then ``a_1.jpg``
    for another ``a.jpg``), given in input order to the images that were read, as the C++
    program names them; a resumed run first counts the images done before each one, so
    the names are those of one uninterrupted run."""

    def __init__(self, paths: list[str], done_before: list[int]) -> None:
        self.paths = paths
        self.done_before = deque(sorted(done_before))
        self.taken: set[str] = set()

    def name(self, index: int) -> str:
        while self.done_before and self.done_before[0] < index:
            self._unique(self.paths[self.done_before.popleft()])
        return self._unique(self.paths[index])

    def _unique(self, path: str) -> str:
        name = Path(path).name
        stem, suffix, n = Path(name).stem, Path(name).suffix, 1
        while name in self.taken:
            name = f"{stem}_{n}{suffix}"
            n += 1
        self.taken.add(name)
        return name


def detect_images(args: argparse.Namespace) -> int:
    """The image part of ``detect``: detect, log, write, summarise; the exit status."""
    from centernet.datasets.coco import category_ids_for, load_annotations
    from centernet.runtime.images import collect_image_paths
    from centernet.runtime.profiling import StageProfile
    from centernet.runtime.results_log import ResultsLog, pending

    if not args.images and not args.file_list:
        raise CenterNetError("no images given (files, folders, globs or --file-list)")
    inputs = collect_image_paths(args.images, args.file_list)
    paths = inputs.paths
    detector = open_detector(args, args.threshold, args.max_dets)
    for item, reason in inputs.unmatched:  # same rule as an unreadable file: named, skipped
        report_skipped(item, reason)
    annotations = load_annotations(args.ann) if args.ann else None
    out = Path(args.out)
    (out / "images" if args.save_images else out).mkdir(parents=True, exist_ok=True)
    (out / RESULTS_NAME).unlink(missing_ok=True)  # written again at the end, or not at all
    run = _ImageRun(args, detector, category_ids_for(detector.spec.class_names, annotations))
    run.ids_by_name = {im.file_name: im.id for im in annotations.images} if annotations else {}
    with ResultsLog(out / LOG_NAME, resume=args.resume) as log:
        todo = pending(paths, log.previous.done())
        run.take_previous(paths, todo, log.previous.records)
        profile = StageProfile() if args.profile else None
        try:
            run.detect(paths, todo, log, profile)
        except KeyboardInterrupt:
            print(
                f"centernet: {run.logged} images written to {log.path}; the same command "
                "with --resume goes on from there",
                file=sys.stderr,
            )
            raise
    entries = [entry for index in range(len(paths)) for entry in run.entries.get(index, [])]
    temporary = out / (RESULTS_NAME + ".tmp")
    temporary.write_text(json.dumps(entries))
    temporary.replace(out / RESULTS_NAME)
    print(_summary(args, run, len(paths), todo.count(False), len(inputs.unmatched), out))
    if profile is not None:
        print(profile_table(profile))
    if "weights" in detector.spec.extra:
        print(f"note: {detector.spec.extra['weights']}")
    return EXIT_SOME_FAILED if run.failed or inputs.unmatched else EXIT_OK


class _ImageRun:
    """One detect run over image files: what it found per input index, and its counts."""

    def __init__(self, args: argparse.Namespace, detector, category_ids: list[int]) -> None:
        self.args, self.detector, self.category_ids = args, detector, category_ids
        self.ids_by_name: dict[str, int] = {}
        self.entries: dict[int, list[dict]] = {}  # input index -> COCO results entries
        self.failed = self.boxes = self.logged = self.seconds = 0

    def take_previous(self, paths: list[str], todo: list[bool], records: list[dict]) -> None:
        """The entries of the inputs an earlier run finished (``todo`` False), in order."""
        by_source: dict[str, list[dict]] = {}
        for record in records:
            by_source.setdefault(str(record["source"]), []).append(record)
        for index, (path, left) in enumerate(zip(paths, todo)):
            if not left:
                self.entries[index] = by_source[path].pop(0)["detections"]

    def detect(self, paths: list[str], todo: list[bool], log, profile) -> None:
        """Detect the inputs still to do; log each finished one at once."""
        from centernet.datasets.coco import detections_to_coco

        indices = [i for i, left in enumerate(todo) if left]
        names = AnnotatedNames(paths, [i for i, left in enumerate(todo) if not left])
        class_names = self.detector.spec.class_names
        started = time.perf_counter()
        stream = self.detector.stream([paths[i] for i in indices], profile)
        # the stream first: zip ends on its StopIteration, so it finishes (threads joined)
        for result, index in zip(progress(stream, len(indices), "detect"), indices):
            if not result.ok:
                self.failed += 1
                report_skipped(result.source, result.error)
                continue
            name = Path(result.source).name
            entries = detections_to_coco(
                result.detections,
                self.category_ids,
                file_name=name,
                image_id=self.ids_by_name.get(name),
                class_names=class_names,
            )
            log.write({"source": paths[index], "file_name": name, "detections": entries})
            self.entries[index] = entries
            self.logged += 1
            self.boxes += len(result.detections)
            if self.args.save_images:
                self.save_image(result, names.name(index))
        self.seconds = time.perf_counter() - started

    def save_image(self, result, name: str) -> None:
        import cv2

        from centernet.runtime.draw import draw_detections
        from centernet.runtime.images import read_image

        image = result.image  # None where the device pipeline decoded it on the GPU
        image = read_image(result.source) if image is None else image
        drawn = draw_detections(image, result.detections, self.detector.spec.class_names)
        cv2.imwrite(str(Path(self.args.out) / "images" / name), drawn)


def _summary(args, run: _ImageRun, total: int, before: int, unmatched: int, out: Path) -> str:
    ran = total - before
    done = ran - run.failed
    resumed = f"; {before} done before (--resume)" if args.resume else ""
    return (
        f"detected {done} of {ran} images in {run.seconds:.1f} s "
        f"({done / max(run.seconds, 1e-9):.1f} img/s): {run.boxes} boxes >= {args.threshold}; "
        f"{run.failed} unreadable"
        + (f", {unmatched} folders/patterns matched nothing" if unmatched else "")
        + resumed
        + f"; wrote {out / RESULTS_NAME} and {out / LOG_NAME}"
        + (f" and {done} images in {out / 'images'}" if args.save_images else "")
    )
