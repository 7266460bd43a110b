"""convert_imageset: image list -> LMDB (or LevelDB) of Caffe Datums (Caffe's tools/convert_imageset.cpp).

    python -m recaffe.tools.convert_imageset [flags] ROOTFOLDER/ LISTFILE DB_NAME

Caffe's flags (``-flag=value``, ``--flag value``, ``--noflag``): --gray --shuffle --backend
--resize_width --resize_height --check_size --encoded --encode_type; ours: --skip-bad (skip and count
unreadable images and malformed lines instead of stopping), --workers N (decoding processes),
--seed N (for --shuffle), --quiet (no progress bar). Images are decoded, resized (INTER_LINEAR) and
encoded by OpenCV as in Caffe, so the datums are Caffe's byte for byte (--exact_resize, which chose
that when resizing was approximate, is still accepted and changes nothing). The database is built
next to DB_NAME and renamed into place when complete. --backend leveldb needs plyvel (the leveldb
extra).
"""
import sys

from recaffe.netspec.data.convert import convert_imageset, tune_malloc
from recaffe.tools._cli import FlagParser, run


def parser():
    p = FlagParser(prog="convert_imageset", description="Convert a set of images to an LMDB or LevelDB of Datums.")
    p.add_flag("gray", False, bool, "read images as grey (1 channel)")
    p.add_flag("shuffle", False, bool, "shuffle the list before writing")
    p.add_flag("backend", "lmdb", str, "database backend: lmdb or leveldb")
    p.add_flag("resize_width", 0, int, "resize images to this width (with --resize_height)")
    p.add_flag("resize_height", 0, int, "resize images to this height (with --resize_width)")
    p.add_flag("check_size", False, bool, "check that all datums have the same size")
    p.add_flag("encoded", False, bool, "store the encoded image in the datum")
    p.add_flag("encode_type", "", str, "re-encode images as this type (png, jpg, ...)")
    p.add_flag("skip-bad", False, bool, "skip (and count) unreadable images and malformed lines")
    p.add_flag("workers", None, int, "decoding processes (default: min(4, cores))")
    p.add_flag("seed", None, int, "seed for --shuffle")
    p.add_flag("quiet", False, bool, "no progress bar")
    p.add_flag("exact_resize", False, bool, "accepted for compatibility: resizing is always OpenCV's")
    p.add_argument("root", metavar="ROOTFOLDER/")
    p.add_argument("list_file", metavar="LISTFILE")
    p.add_argument("db", metavar="DB_NAME")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    tune_malloc()   # this process writes the LMDB: its large values' buffers stay allocated
    s = convert_imageset(a.root, a.list_file, a.db, gray=a.gray, shuffle=a.shuffle, resize_height=a.resize_height,
                         resize_width=a.resize_width, check_size=a.check_size, encoded=a.encoded,
                         encode_type=a.encode_type, backend=a.backend, skip_bad=a.skip_bad, workers=a.workers,
                         seed=a.seed, progress=not a.quiet)
    for msg in s["skipped"][:20]:
        print("skipped: " + msg, file=sys.stderr)
    if len(s["skipped"]) > 20:
        print(f"skipped: ... and {len(s['skipped']) - 20} more", file=sys.stderr)
    rate = s["written"] / max(s["seconds"], 1e-9)
    print(f"convert_imageset: wrote {s['written']} images to {a.db} ({len(s['skipped'])} skipped) in "
          f"{s['seconds']:.1f} s ({rate:.0f} images/s)", file=sys.stderr)
    return 0


def cli(argv=None):
    """Entry point (tools/convert_imageset, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "convert_imageset", argv)


if __name__ == "__main__":
    cli()
