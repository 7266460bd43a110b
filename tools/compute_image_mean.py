"""compute_image_mean: the mean image of an LMDB or LevelDB of Datums (Caffe's tools/compute_image_mean.cpp).

    python -m recaffe.tools.compute_image_mean [--backend lmdb] [--npy FILE.npy] INPUT_DB [OUTPUT_FILE]

Writes a BlobProto (num 1, C, H, W) to OUTPUT_FILE (a name ending in .npy writes a numpy array of
shape (C, H, W) instead), optionally also --npy, and prints ``mean_value channel [c]: v`` per channel.
"""
import sys

import numpy as np

from recaffe.netspec.data.convert import compute_image_mean
from recaffe.netspec.data.meanfile import write_mean
from recaffe.tools._cli import FlagParser, run


def parser():
    p = FlagParser(prog="compute_image_mean", description="Compute the mean image of an LMDB or LevelDB of Datums.")
    p.add_flag("backend", "lmdb", str, "database backend: lmdb or leveldb (the database is read as what it is)")
    p.add_flag("npy", "", str, "also write the mean as a (C, H, W) .npy file")
    p.add_flag("workers", None, int, "decoding threads for encoded datums (default: min(4, cores))")
    p.add_argument("input_db", metavar="INPUT_DB")
    p.add_argument("output", metavar="OUTPUT_FILE", nargs="?")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    mean, count = compute_image_mean(a.input_db, a.workers, a.backend)
    outs = ([a.output] if a.output else []) + ([a.npy] if a.npy else [])
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


def cli(argv=None):
    """Entry point (tools/compute_image_mean, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "compute_image_mean", argv)


if __name__ == "__main__":
    cli()
