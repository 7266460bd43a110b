"""Seeded synthetic image sets for the demo: a 10-class source task and a related 5-class target task.

Every image is a windowed sinusoidal grating (or, for the target task, a plaid of two gratings) on a
noisy background. Source class c has orientation c * 18 degrees and one of two colour pairs; target class
k crosses two of the source orientations with its own colours. Low-level features learned on the source
task (oriented, coloured edge detectors) are what the target task needs, which is why fine-tuning from
the source weights beats training from scratch on the small target set.
"""
import os

import numpy as np
from PIL import Image

SIZE = 36
SOURCE_CLASSES = 10
TARGET_CLASSES = 5
_SOURCE_COLOURS = [((230, 60, 40), (30, 40, 200)), ((40, 200, 60), (220, 200, 40))]
_TARGET_PAIRS = [(0, 5), (2, 7), (1, 4), (3, 8), (6, 9)]
_TARGET_COLOURS = [((230, 60, 40), (40, 200, 60)), ((30, 40, 200), (220, 200, 40)),
                   ((230, 60, 40), (220, 200, 40)), ((40, 200, 60), (30, 40, 200)),
                   ((200, 200, 200), (60, 60, 60))]


def _grating(rng, theta, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    freq = rng.uniform(0.12, 0.22)
    phase = rng.uniform(0, 2 * np.pi)
    t = np.cos(theta) * xx + np.sin(theta) * yy
    return 0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)


def _window(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    sigma = rng.uniform(0.22, 0.4) * size
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))


def render(rng, task, label, size=SIZE):
    """One H x W x 3 uint8 RGB image of ``label`` in ``task`` ("source" or "target")."""
    if task == "source":
        theta = np.deg2rad(label * 18.0 + rng.normal(0, 3))
        pattern = _grating(rng, theta, size)
        c0, c1 = _SOURCE_COLOURS[label % 2]
    else:
        a, b = _TARGET_PAIRS[label]
        pattern = 0.5 * (_grating(rng, np.deg2rad(a * 18.0 + rng.normal(0, 3)), size)
                         + _grating(rng, np.deg2rad(b * 18.0 + rng.normal(0, 3)), size))
        c0, c1 = _TARGET_COLOURS[label]
    w = _window(rng, size)[..., None]
    c0 = np.asarray(c0, np.float32)
    c1 = np.asarray(c1, np.float32)
    fg = c0 * pattern[..., None] + c1 * (1 - pattern[..., None])
    bg = rng.uniform(60, 190, size=3).astype(np.float32)
    img = w * fg + (1 - w) * bg + rng.normal(0, 28, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_split(root, task, split, per_class, seed):
    """Write PNGs under root/task/split/ and the list file root/task/split.txt (`relpath label` lines,
    relative to root/, as convert_imageset and ImageData expect). Returns the list file path."""
    rng = np.random.RandomState(seed)
    n_classes = SOURCE_CLASSES if task == "source" else TARGET_CLASSES
    folder = os.path.join(root, task, split)
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i in range(per_class):
        for label in range(n_classes):
            rel = f"{task}/{split}/{label}_{i:04d}.png"
            Image.fromarray(render(rng, task, label)).save(os.path.join(root, rel))
            lines.append(f"{rel} {label}")
    order = rng.permutation(len(lines))
    list_path = os.path.join(root, task, f"{split}.txt")
    with open(list_path, "w") as f:
        f.write("\n".join(lines[j] for j in order) + "\n")
    return list_path
