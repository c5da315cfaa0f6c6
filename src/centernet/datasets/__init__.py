"""Datasets: COCO annotations and results (coco.py)."""
