"""Data sets on disk: COCO annotations and results (``coco.py``), COCO scoring
(``coco_scoring.py``), and the deterministic
synthetic shapes set the bundled model was trained and is scored on (``synthetic.py``)."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "COCO_STAT_LABELS": "coco_scoring",
        "COCO_STAT_NAMES": "coco_scoring",
        "coco_evaluate": "coco_scoring",
        "CocoAnnotations": "coco",
        "annotation_entry": "coco",
        "category_ids_for": "coco",
        "class_fields": "coco",
        "detections_to_coco": "coco",
        "load_annotations": "coco",
        "with_class_fields": "coco",
        "SynthConfig": "synthetic",
        "render_sample": "synthetic",
        "write_dataset": "synthetic",
    },
)
