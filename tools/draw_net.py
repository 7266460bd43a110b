"""draw_net: a diagram of a net (Caffe's python/draw_net.py).

    python -m recaffe.tools.draw_net NET.prototxt OUTPUT.{dot,gv,png,svg,pdf} [--rankdir LR|TB|BT|RL]
        [--phase TRAIN|TEST|ALL] [--display_lrm]

A .dot/.gv output is Graphviz text written by recaffe.draw (no Graphviz needed); any other extension is
rendered by Graphviz's ``dot`` program, with a one-line error when it is not installed.
"""
import sys

from recaffe.protos.errors import NetError
from recaffe.tools._cli import FlagParser, run


def parse(argv):
    p = FlagParser(prog="draw_net", description="draw a net as Graphviz DOT, PNG, SVG or PDF")
    p.add_argument("input_net_proto_file")
    p.add_argument("output_image_file")
    p.add_flag("rankdir", "LR", help="LR, TB, BT or RL")
    p.add_flag("phase", "ALL", help="TRAIN, TEST or ALL")
    p.add_flag("display_lrm", False, bool, help="show the lr_mult of each layer's params")
    return p.parse_args(argv)


def main(argv=None):
    from recaffe.protos.io import read_net
    from recaffe.draw import draw_net_to_file
    ns = parse(sys.argv[1:] if argv is None else argv)
    flags, pos = vars(ns), [ns.input_net_proto_file, ns.output_image_file]
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


def cli(argv=None):
    """Entry point (tools/draw_net, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "draw_net", argv)


if __name__ == "__main__":
    cli()
