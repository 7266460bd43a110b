"""Generated, learnable image data for the examples and recipe tests: each class has its own bright
rectangle (position and channel mix) over uniform noise, so a small net's loss falls within a few
hundred iterations. Written as Caffe Datum LMDBs (uint8, like convert_imageset's output) or as PNG
files plus a `path label` list for tools/convert_imageset.

    python -m examples.synthetic_data lmdb OUT_DB N C H W [SEED]
    python -m examples.synthetic_data images OUT_FOLDER N C H W [SEED]   (writes OUT_FOLDER/list.txt)
"""
import os
import sys

import numpy as np


def make_images(n, channels, height, width, classes=10, seed=0):
    """(uint8 array N x C x H x W, int labels N)."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, classes, size=n)
    imgs = rng.randint(0, 96, size=(n, channels, height, width)).astype(np.uint8)
    bh, bw = max(height // 4, 2), max(width // 4, 2)
    for i, c in enumerate(labels):
        y = (c % 3) * (height - bh) // 2
        x = (c // 3 % 4) * (width - bw) // 3
        for ch in range(channels):
            imgs[i, ch, y:y + bh, x:x + bw] = 160 + 90 * ((c + ch) % 2)
    return imgs, labels


def write_lmdb(path, n, channels, height, width, seed=0):
    """Write an LMDB of raw Datums (keys '%08d'), like convert_imageset; returns the images' mean."""
    from recaffe.netspec.data.datum import array_to_datum
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    imgs, labels = make_images(n, channels, height, width, seed=seed)
    with LMDBWriter(path) as w:
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            w.put(f"{i:08d}", array_to_datum(img, int(lab)).SerializeToString())
    return imgs.astype(np.float64).mean(axis=0)


def write_images(folder, n, channels, height, width, seed=0):
    """PNG files + list.txt ('name label' lines) for tools/convert_imageset."""
    from PIL import Image
    imgs, labels = make_images(n, channels, height, width, seed=seed)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "list.txt"), "w") as f:
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            name = f"img_{i:05d}.png"
            arr = img[0] if channels == 1 else img.transpose(1, 2, 0)[:, :, ::-1]   # Caffe stores BGR
            Image.fromarray(np.ascontiguousarray(arr)).save(os.path.join(folder, name))
            f.write(f"{name} {lab}\n")


if __name__ == "__main__":
    kind, out, n, c, h, w = sys.argv[1:7]
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    fn = write_lmdb if kind == "lmdb" else write_images
    fn(out, int(n), int(c), int(h), int(w), seed)
