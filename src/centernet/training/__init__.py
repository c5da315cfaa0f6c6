"""Training CenterNet: targets (targets.py), augmentation (augment.py), the dataset
(data.py), losses (losses.py) and the loop (loop.py). Needs torch."""
