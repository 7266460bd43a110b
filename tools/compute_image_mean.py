"""compute_image_mean: the mean image of an LMDB of Datums (Caffe's tools/compute_image_mean.cpp).

    python -m tools.compute_image_mean [--backend lmdb] [--npy FILE.npy] INPUT_DB [OUTPUT_FILE]

Writes a BlobProto (num 1, C, H, W) to OUTPUT_FILE (a name ending in .npy writes a numpy array of
shape (C, H, W) instead), optionally also --npy, and prints ``mean_value channel [c]: v`` per channel.
"""
import sys

import numpy as np

from netspec.data.convert import compute_image_mean
from netspec.data.flags import parse_flags
from netspec.data.meanfile import write_mean

USAGE = "usage: compute_image_mean [--backend lmdb] [--npy FILE.npy] INPUT_DB [OUTPUT_FILE]"
FLAGS = {"backend": "lmdb", "npy": "", "workers": -1}


def main(argv=None):
    from protos.errors import DataError
    flags, pos = parse_flags(sys.argv[1:] if argv is None else argv, FLAGS, USAGE)
    if len(pos) not in (1, 2):
        raise DataError(f"expected INPUT_DB [OUTPUT_FILE], got {len(pos)} argument(s)\n{USAGE}")
    mean, count = compute_image_mean(pos[0], None if flags["workers"] < 0 else flags["workers"], flags["backend"])
    outs = ([pos[1]] if len(pos) == 2 else []) + ([flags["npy"]] if flags["npy"] else [])
    for out in outs:
        if out.endswith(".npy"):
            np.save(out, mean)
        else:
            write_mean(mean, out)
    dim = mean.shape[1] * mean.shape[2]
    for c in range(mean.shape[0]):
        print(f"mean_value channel [{c}]: {float(mean[c].sum(dtype=np.float64)) / dim:g}")
    print(f"compute_image_mean: {count} images of shape {mean.shape}" + (f" -> {', '.join(outs)}" if outs else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        from tools._cli import run
    except ImportError:
        from tools.convert_imageset import _fallback_run as run
    run(main)
