"""draw_net: a diagram of a net (Caffe's python/draw_net.py).

    python -m tools.draw_net NET.prototxt OUTPUT.{dot,gv,png,svg,pdf} [--rankdir LR|TB|BT|RL]
        [--phase TRAIN|TEST|ALL] [--display_lrm]

A .dot/.gv output is Graphviz text written by recaffe.draw (no Graphviz needed); any other extension is
rendered by Graphviz's ``dot`` program, with a one-line error when it is not installed.
"""
import sys

from netspec.data.flags import parse_flags
from protos.errors import NetError

USAGE = "usage: draw_net NET.prototxt OUTPUT.{dot,png,svg,pdf} [--rankdir LR] [--phase ALL] [--display_lrm]"
FLAGS = {"rankdir": "LR", "phase": "ALL", "display_lrm": False}


def main(argv=None):
    from protos.io import read_net
    from recaffe.draw import draw_net_to_file
    flags, pos = parse_flags(sys.argv[1:] if argv is None else argv, FLAGS, USAGE)
    if len(pos) != 2:
        raise NetError(f"expected NET.prototxt and OUTPUT, got {len(pos)} argument(s)\n{USAGE}")
    if flags["rankdir"] not in ("LR", "TB", "BT", "RL"):
        raise NetError(f"--rankdir must be LR, TB, BT or RL, got {flags['rankdir']!r}")
    phase = flags["phase"].upper()
    if phase not in ("TRAIN", "TEST", "ALL"):
        raise NetError(f"--phase must be TRAIN, TEST or ALL, got {flags['phase']!r}")
    net = read_net(pos[0])
    print(f"Drawing net to {pos[1]}")
    draw_net_to_file(net, pos[1], flags["rankdir"], phase=None if phase == "ALL" else phase,
                     display_lrm=flags["display_lrm"])
    return 0


def _run():
    try:
        from tools._cli import run
    except ImportError:
        from tools.convert_imageset import _fallback_run as run
    return run(main)


if __name__ == "__main__":
    _run()
