"""Data sets on disk: COCO annotations and results (``coco.py``), and the deterministic
synthetic shapes set the bundled model was trained and is scored on (``synthetic.py``)."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CocoAnnotations": "coco",
        "category_ids_for": "coco",
        "detections_to_coco": "coco",
        "load_annotations": "coco",
        "SynthConfig": "synthetic",
        "render_sample": "synthetic",
        "write_dataset": "synthetic",
    },
)
