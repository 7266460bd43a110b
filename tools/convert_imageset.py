"""convert_imageset: image list -> LMDB of Caffe Datums (Caffe's tools/convert_imageset.cpp).

    python -m tools.convert_imageset [flags] ROOTFOLDER/ LISTFILE DB_NAME

Caffe's flags (``-flag=value`` or ``--flag value``): --gray --shuffle --backend --resize_width
--resize_height --check_size --encoded --encode_type; ours: --skip-bad (skip and count unreadable
images and malformed lines instead of stopping), --workers N (decoding processes), --seed N (for
--shuffle), --quiet (no progress bar). The database is built next to DB_NAME and renamed into place.
"""
import sys

from netspec.data.convert import convert_imageset
from netspec.data.flags import parse_flags

USAGE = "usage: convert_imageset [flags] ROOTFOLDER/ LISTFILE DB_NAME"
FLAGS = {"gray": False, "shuffle": False, "backend": "lmdb", "resize_width": 0, "resize_height": 0,
         "check_size": False, "encoded": False, "encode_type": "", "skip_bad": False, "workers": -1,
         "seed": -1, "quiet": False}


def main(argv=None):
    from protos.errors import DataError
    flags, pos = parse_flags(sys.argv[1:] if argv is None else argv, FLAGS, USAGE)
    if len(pos) != 3:
        raise DataError(f"expected 3 arguments ROOTFOLDER/ LISTFILE DB_NAME, got {len(pos)}\n{USAGE}")
    root, list_file, db = pos
    s = convert_imageset(root, list_file, db, gray=flags["gray"], shuffle=flags["shuffle"],
                         resize_height=flags["resize_height"], resize_width=flags["resize_width"],
                         check_size=flags["check_size"], encoded=flags["encoded"],
                         encode_type=flags["encode_type"], backend=flags["backend"], skip_bad=flags["skip_bad"],
                         workers=None if flags["workers"] < 0 else flags["workers"],
                         seed=None if flags["seed"] < 0 else flags["seed"], progress=not flags["quiet"])
    for msg in s["skipped"][:20]:
        print("skipped: " + msg, file=sys.stderr)
    rate = s["written"] / max(s["seconds"], 1e-9)
    print(f"convert_imageset: wrote {s['written']} images to {db} ({len(s['skipped'])} skipped) in "
          f"{s['seconds']:.1f} s ({rate:.0f} images/s)", file=sys.stderr)
    return 0


def _run():
    try:
        from tools._cli import run
    except ImportError:
        run = _fallback_run
    return run(main)


def _fallback_run(fn):
    from protos.errors import RecaffeError
    try:
        sys.exit(fn())
    except RecaffeError as e:
        print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; nothing was written at the target path", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    _run()
